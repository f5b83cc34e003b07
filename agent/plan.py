"""The planner: what one KubernetesImagePuller should hold after this cycle, and why.

Pure: no API client, no clock, no logging. A test builds a `PlanInput` and asserts on the
`Plan`; nothing else is needed.

The input is one complete value: the usages that count for the target (resolved to one
spelling per image and past the `references` policy: every rejection is decided before
planning, see `agent.policy`), the CR as read, the nodes its puller runs on and the sizes
nodes report, the kinds that could not be listed or are not served, the settings and the
time. The steps, one function each:

1. **Candidates** (`_candidates`). Usages grouped by image. A tag that nodes report with a
   digest becomes that digest (`agent.sizes`: a tag's size is only trusted with its
   digest). Pinned images join, and so does every managed image that a failed or missing
   kind may still be using: a partial view never shrinks the list.
2. **Score** (`_score`). Each object using an image adds the weight of how it uses it
   (`weights`), once per object, at its heaviest use.
3. **Tier** (`_tier`). *Shared*: used by workloads of several namespaces, of the
   applications namespace, the recommended tag of an offered workbench image, or an image
   KServe's own configuration supplies (the storage initializer). *Project*: used by the
   workloads of one project only. *Offered*: offered by the platform (image streams,
   runtime templates, cluster runtimes) but not in use. An image in use always comes
   before one merely offered, and shared images before any project's own, so neither an
   unused offer nor a busy project pushes out what several use.
4. **Forced, excluded, the administrator's** (`_settled`). Pinned and protected images go
   in first; excluded images never; images an administrator already listed are left to
   the administrator's entry.
5. **Ranked selection** (`_select`). The rest, by tier, then score (ties: by reference),
   go in while they reach `min_score` and fit `max_images`, the per-node disk budget, and
   what one project may take: `max_per_namespace` places and `max_namespace_share` of the
   budget for images only that project uses. A project's image that no node reports is
   estimated at the largest estimate of any role (of any accelerated role too when its pod
   needs an accelerator), since the project chooses its role; any other at its role's, the
   accelerated one when it is recommended for or requests an accelerator. A
   managed image ranks as if its score were `retain_margin` higher, keeps a minimum that
   much lower and may overrun the budget by as much, so wobbling scores and sizes do not
   rewrite the list. Where the disk budget forces a choice (the ranked images that reach
   the minimum do not all fit in it, or a project's own in its share of it), each tier is
   ordered by start-up seconds saved per byte instead (`_pull_factors`): score x pull
   seconds / size, the pull seconds being the measured median cold pull where there is
   one (`PlanInput.pull_seconds`, from the kubelet's events, `agent.startup`) and size /
   `pull_rate` otherwise. That is score x a
   factor, exactly 1 for an image without a measured pull, bounded by
   `startup.max_rank_factor` either way: with no events the order is the score's.
6. **Entries** (`_desired`). Entries the agent did not write stay verbatim and in place;
   managed entries still chosen keep their name, text and place; new ones are appended in
   decision order, named from their repository. A list the puller would read no entry
   from crash-loops it (`agent.puller.has_entry`), so an empty result holds one harmless
   entry instead (`_never_empty`): the puller's own image (`spec.imagePullerImage`, else
   `status.imagePullerImage`, else the puller's default), which its DaemonSet's
   `copy-sleep` init container already pulls on every node. It is the agent's, recorded as
   found in no kind, and goes as soon as anything else is listed.
7. **Fewer rollouts** (`_paced`). Every write makes the puller recreate its DaemonSet on
   every node. Within `puller.min_write_interval_seconds` of the agent's last write of the
   target (`PlanInput.last_written`, from the CR's managedFields), a change waits:
   `Plan.deferred` holds it and when it may be written. Never deferred: removing a managed
   entry that is now invalid (a reference that no longer parses or that the policy now
   refuses) or that shares its name with an administrator's entry (the puller keeps only
   one of two equal names), and giving a list with no entry one; a deferred cycle writes
   exactly those.

The result is `Plan.desired`, the one value of what the CR should hold after this cycle:
the writer sends it, the report diffs it against `Plan.current`, and the check after the
write compares the server's copy with it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from agent.model import WORKLOAD_STATES, KindName, NodeInfo, ObjectRef, Role, State, Usage
from agent.policy import first_match, policy_problem
from agent.puller import DEFAULT_PULLER_IMAGE, RESERVED_NAMES, Entry, PullerCR, PullerState, entry_name, has_entry
from agent.quantity import format_bytes, format_duration
from agent.refs import ImageRef, InvalidReference, parse_reference
from agent.settings import Settings
from agent.sizes import ImageSizes

NODE_KIND = KindName.NODE
DSCI_KIND = KindName.DSC_INITIALIZATION



class Tier(StrEnum):
    """Where an image stands in the decision order (see the module docstring)."""

    PINNED = "pinned"
    KEPT = "kept"  # managed, and a kind it was found in could not be listed
    SHARED = "shared"
    PROJECT = "project"
    OFFERED = "offered"
    PLACEHOLDER = "placeholder"  # the puller's own image, so that the list is never empty


# Kinds whose images a workload uses but only an administrator chooses (`Usage.supplier`).
PLATFORM_SUPPLIERS = frozenset({KindName.CONFIG_MAP, KindName.CLUSTER_STORAGE_CONTAINER})
_RANKED_ORDER = {Tier.SHARED: 0, Tier.PROJECT: 1, Tier.OFFERED: 2}


@dataclass(frozen=True, slots=True)
class PlanInput:
    """Everything one target's plan is decided from (`agent.pools` says which usages count
    for the target and which nodes its puller runs on)."""

    usages: Sequence[Usage]  # those that count for this target
    puller: PullerCR
    nodes: Sequence[NodeInfo]  # where the target's puller runs: the disk budget is the smallest of theirs
    sizes: ImageSizes
    settings: Settings
    now: datetime
    applications_namespace: str
    failed: Mapping[str, str] = field(default_factory=dict)  # kind -> why it could not be listed
    missing: Mapping[str, str] = field(default_factory=dict)  # kind -> why it is not served
    elsewhere: Sequence[Usage] = ()  # usages of images that do not count here, shown as left out
    elsewhere_reasons: Mapping[ImageRef, str] = field(default_factory=dict)  # why, by image
    hold: str = ""  # when set, why nothing changes this cycle: every managed entry stays, nothing is added
    pull_seconds: Mapping[ImageRef, float] = field(default_factory=dict)  # measured median cold pull, by image
    pull_rate: float = 0.0  # bytes per second a size-based pull estimate assumes; 0: rank by score alone
    last_written: datetime | None = None  # when the agent last wrote this CR (None: never, or unknown)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One image considered for the list, with the decision and why."""

    image: ImageRef
    score: float
    size_bytes: int
    size_known: bool  # reported by a node; else an estimate
    roles: tuple[str, ...]
    sources: tuple[ObjectRef, ...]
    selected: bool
    reason: str
    tier: Tier = Tier.OFFERED
    namespace: str = ""  # the one project using it (tier `project`)
    name: str = ""  # the entry name when selected
    managed: bool = False  # the agent had it in the list before this cycle
    tags: tuple[ImageRef, ...] = ()  # tag spellings listed as this digest (nodes report it)
    pull_seconds: float | None = None  # the measured median cold pull the ranking used, if any
    pull_factor: float = 1.0  # how far that moved its rank value (1: not at all)


@dataclass(frozen=True, slots=True)
class Deferred:
    """A change held back by the minimum interval between two writes (see `_paced`)."""

    state: PullerState  # what the CR would hold if the change were written now
    last_written: datetime
    until: datetime  # the first time it may be written


@dataclass(frozen=True, slots=True)
class Plan:
    target_namespace: str
    target_name: str
    generated_at: datetime
    budget_bytes: int | None
    budget_used_bytes: int
    candidates: tuple[Candidate, ...]  # in decision order: forced, then by rank
    current: PullerState
    desired: PullerState
    failed_sources: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    deferred: Deferred | None = None  # a change that waits; `desired` then holds only what may not wait

    @property
    def changed(self) -> bool:
        """Whether the CR must be written: the desired state differs from the current one."""
        return self.desired != self.current

    @property
    def selected(self) -> tuple[Candidate, ...]:
        return tuple(c for c in self.candidates if c.selected)


def make_plan(given: PlanInput) -> Plan:
    listed = _Listed.of(given.puller)
    protected = _protected(listed, given)
    images = _candidates(given, listed, protected)
    budget, warnings = _budget(given)
    room = _Room.of(given.settings, budget, used=_foreign_bytes(listed, given.sizes))
    unknown_budget = budget is None and _budget_needs_nodes(given)
    held = given.hold or ("Nodes could not be listed, so the disk budget is unknown" if unknown_budget else "")
    decided = _settled(images, listed, protected, given.settings, room)
    settled = {d.image for d in decided}
    ranked = [i for i in images if i.ref not in settled]
    factors = _pull_factors(ranked, given, room, listed)
    if factors:
        ranked = _by_saving(ranked, factors, listed, margin=room.margin)
    decided += _select(ranked, room, listed, settings=given.settings, held=held, factors=factors)
    decided += _elsewhere(given, {d.image for d in decided}, listed)
    unlisted = frozenset({*given.missing, *given.failed})
    wanted, names = _desired(listed, [d.image for d in decided if d.selected], images, given.puller, unlisted)
    wanted, filler = _never_empty(wanted, given)
    candidates = tuple(_named(d, names) for d in decided) + filler
    current = PullerState.of(given.puller)
    desired, deferred = _paced(current, wanted, _urgent(listed, given), given)
    return Plan(
        target_namespace=given.puller.namespace,
        target_name=given.puller.name,
        generated_at=given.now,
        budget_bytes=budget,
        budget_used_bytes=room.used,
        candidates=candidates,
        current=current,
        desired=desired,
        failed_sources=dict(given.failed),
        warnings=warnings,
        deferred=deferred,
    )


# -- the CR as the planner sees it ---------------------------------------------------------


@dataclass(frozen=True)
class _Listed:
    """The entries of the CR, each image parsed once, and which of them the agent owns.

    An entry is the agent's when its name is recorded in the ownership annotation with this
    very image text: one whose image an administrator changed is theirs now. A managed entry
    that shares its name with an administrator's entry is given up (and its image listed
    again under a new name if still chosen): the puller keeps only the last of two equal
    names, so keeping both could silently override the administrator's.
    """

    entries: tuple[Entry, ...]
    refs: tuple[ImageRef | None, ...]  # each entry's image, canonical; None when it does not parse
    mine: frozenset[int]  # every entry the agent wrote
    in_place: frozenset[int]  # those that may stay where they are
    managed: Mapping[ImageRef, str]  # image -> name, over every entry the agent wrote
    foreign: Mapping[ImageRef, str]  # image -> name, over the administrator's readable entries
    tag_digests: Mapping[ImageRef, ImageRef]  # tag -> the digest a managed entry lists for it

    @classmethod
    def of(cls, puller: PullerCR) -> _Listed:
        entries = puller.entries()
        refs = tuple(_parse_or_none(e.image) for e in entries)
        first_mine: dict[str, int] = {}  # a second copy of an entry cannot be told from the administrator's
        for i, e in enumerate(entries):
            if e.name is not None and e.image is not None and puller.owned.get(e.name) == e.image:
                first_mine.setdefault(e.name, i)
        mine = frozenset(first_mine.values())
        foreign_names = {entries[i].name for i in range(len(entries)) if i not in mine}
        managed: dict[ImageRef, str] = {}
        foreign: dict[ImageRef, str] = {}
        for i, (entry, ref) in enumerate(zip(entries, refs, strict=True)):
            if ref is not None and entry.name:
                (managed if i in mine else foreign).setdefault(ref, entry.name)
        return cls(
            entries=entries,
            refs=refs,
            mine=mine,
            in_place=frozenset(i for i in mine if entries[i].name not in foreign_names),
            managed=managed,
            foreign=foreign,
            tag_digests=_recorded_tags(puller, {name: ref for ref, name in managed.items()}),
        )


def _recorded_tags(puller: PullerCR, managed: Mapping[str, ImageRef]) -> dict[ImageRef, ImageRef]:
    """tag -> digest, for managed digest entries recorded as listed for a tag of the same
    repository (anything else in the record is ignored)."""
    found: dict[ImageRef, ImageRef] = {}
    for name, text in puller.entry_tags.items():
        tag, digest = _parse_or_none(text), managed.get(name)
        if tag is not None and digest is not None and tag.tag is not None and digest.digest is not None:
            if (tag.registry, tag.repository) == (digest.registry, digest.repository):
                found.setdefault(tag, digest)
    return found


def _protected(listed: _Listed, given: PlanInput) -> dict[ImageRef, str]:
    """Managed images that stay whatever their score, with why: the kinds they were found in
    that could not be listed or are not served this cycle. An entry with no record (written
    before records were kept) is kept whenever anything failed. A failed DSCInitialization
    (the applications namespace is then a guess) keeps every entry, and so does a hold. An
    image the policy now refuses is never kept."""
    unavailable = {*given.missing, *given.failed}
    found: dict[ImageRef, str] = {}
    for ref, name in listed.managed.items():
        recorded = given.puller.entry_kinds.get(name)
        if given.hold:
            why = given.hold
        elif recorded == ():  # found in no kind: the placeholder, which no failure keeps
            why = ""
        elif DSCI_KIND in given.failed:
            why = _could_not((DSCI_KIND,))
        elif recorded is None:
            why = _could_not(sorted(given.failed))
        else:
            why = _could_not(sorted(set(recorded) & unavailable))
        if why and not policy_problem(ref, given.settings.references):
            found[ref] = why
    return found


def _could_not(kinds: Sequence[str]) -> str:
    return f"{', '.join(kinds)} could not be listed this cycle" if kinds else ""


# -- candidates ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Image:
    """One candidate image before the decision."""

    ref: ImageRef
    usages: tuple[Usage, ...]
    score: float
    size: int
    size_known: bool
    tier: Tier
    namespace: str  # the one project using it, for tier `project`
    tags: tuple[ImageRef, ...]
    pull_seconds: float | None = None  # measured median cold pull, over its spellings


def _candidates(given: PlanInput, listed: _Listed, protected: Mapping[ImageRef, object]) -> list[_Image]:
    """Every image to decide on, in rank order within its tier (pinned and kept first)."""
    groups: dict[ImageRef, list[Usage]] = {}
    tags: dict[ImageRef, set[ImageRef]] = {}
    for usage in given.usages:
        listed_as = _listed_as(usage.image, given.sizes, listed.tag_digests)
        groups.setdefault(listed_as, []).append(usage)
        if listed_as != usage.image:
            tags.setdefault(listed_as, set()).add(usage.image)
    for extra in (*given.settings.selection.pinned_refs, *protected):
        groups.setdefault(extra, [])
    pinned = set(given.settings.selection.pinned_refs)
    images = [
        _image(
            ref,
            tuple(usages),
            given,
            pinned=ref in pinned,
            kept=ref in protected,
            tags=tuple(sorted(tags.get(ref, ()))),
        )
        for ref, usages in groups.items()
    ]
    margin = given.settings.selection.retain_margin
    text = {i.ref: str(i.ref) for i in images}

    def rank(image: _Image) -> tuple[int, float, str]:
        bonus = 1 + margin if image.ref in listed.managed else 1
        return (_RANKED_ORDER.get(image.tier, -1), -image.score * bonus, text[image.ref])

    return sorted(images, key=rank)


def _listed_as(ref: ImageRef, sizes: ImageSizes, recorded: Mapping[ImageRef, ImageRef]) -> ImageRef:
    """The image to list for `ref`: a tag as the digest nodes report it with; while no node
    reports the tag, as the digest the agent listed for it before (so the entry does not
    flip when the Nodes cannot be listed or the image drops out of their 50 largest); else
    the tag itself, whose size is then unknown."""
    if ref.digest is not None:
        return ref
    seen = sizes.tag_digest(ref)
    if seen is False:
        return recorded.get(ref, ref)
    if not isinstance(seen, str):
        return ref
    try:
        return ImageRef(ref.registry, ref.repository, None, seen)
    except InvalidReference:  # a node reported a digest the agent cannot write: keep the tag
        return ref


def _image(
    ref: ImageRef, usages: tuple[Usage, ...], given: PlanInput, *, pinned: bool, kept: bool, tags: tuple[ImageRef, ...]
) -> _Image:
    tier, namespace = _tier(usages, applications_namespace=given.applications_namespace)
    if pinned:
        tier = Tier.PINNED
    elif kept:
        tier = Tier.KEPT
    report = given.sizes.of(ref)
    if report is not None:
        size, known = report.size, True
    else:
        size, known = _estimate(usages, given.settings, own_project=tier is Tier.PROJECT), False
    pulled = next((s for r in (ref, *tags) if (s := given.pull_seconds.get(r)) is not None), None)
    return _Image(ref, usages, _score(usages, given.settings), size, known, tier, namespace, tags, pulled)


def _score(usages: Sequence[Usage], settings: Settings) -> float:
    """Sum over the objects using the image of the heaviest way each one uses it."""
    best: dict[ObjectRef, float] = {}
    for usage in usages:
        weight = settings.weights.for_state(usage.state.value)
        if weight > best.get(usage.source, float("-inf")):
            best[usage.source] = weight
    return round(sum(best.values()), 6)


def _tier(usages: Sequence[Usage], *, applications_namespace: str) -> tuple[Tier, str]:
    """The image's tier, and for tier `project` the one project using it.

    Only use by workloads makes an image shared: a platform object (a stream tag, a
    template, a cluster runtime) naming an image that one project alone runs does not lift
    it out of that project's share; the recommended tag does, since the platform offers it
    to every new workbench, and so does an image KServe's own configuration puts into the
    project's pods (the storage initializer, from `inferenceservice-config` or a
    ClusterStorageContainer): the project cannot choose it, only use it.
    """
    workloads = {u.source.namespace for u in usages if u.state in WORKLOAD_STATES}
    if not workloads:
        return Tier.OFFERED, ""
    recommended = any(u.state is State.RECOMMENDED or u.supplier in PLATFORM_SUPPLIERS for u in usages)
    if len(workloads) > 1 or recommended or applications_namespace in workloads or "" in workloads:
        return Tier.SHARED, ""
    (namespace,) = workloads
    return Tier.PROJECT, namespace


def _estimate(usages: Sequence[Usage], settings: Settings, *, own_project: bool) -> int:
    """The size assumed for an image no node reports: the largest estimate of its roles,
    a role's accelerated one when a usage in that role is recommended for or requests an
    accelerator (`_accelerated`). A project's own image takes the largest estimate of any
    role: the project chooses the role (any container of a Notebook that is not the
    workbench is a "sidecar"), so it must not choose the estimate too. The accelerated
    estimates count when one of its pods needs an accelerator: asking for none only puts the
    image on nodes without one, where the largest CPU estimate holds (and a GPU request can
    only raise the estimate)."""
    estimates = settings.sizes
    if own_project:
        return estimates.largest(accelerated=any(_accelerated(u) for u in usages))
    found = [estimates.for_role(u.role.value, accelerated=_accelerated(u)) for u in usages]
    return max(found) if found else estimates.for_role(Role.CUSTOM_CONTAINER.value)


def _accelerated(usage: Usage) -> bool:
    """Whether the pod pulling the image needs an accelerator: an extended resource its
    containers request (`nvidia.com/gpu`...), or the `recommended-accelerators` hint of an
    offered image (`agent.placement`)."""
    placement = usage.placement
    return placement is not None and bool(placement.resources or placement.one_of_resources)


# -- limits ----------------------------------------------------------------------------------


def _budget(given: PlanInput) -> tuple[int | None, tuple[str, ...]]:
    """The per-node disk budget in bytes (None: none applies), and a warning when a budget
    relative to the nodes' disk cannot be applied."""
    budget_setting = given.settings.selection.disk_budget
    budget = budget_setting.resolve(_smallest_capacity(given.nodes))
    if budget is None and budget_setting.fraction is not None and not _budget_needs_nodes(given):
        return None, ("no target node reports ephemeral-storage capacity: the disk budget is not applied",)
    return budget, ()


def _budget_needs_nodes(given: PlanInput) -> bool:
    """Without the Nodes, a budget relative to their disk is unknown, not unlimited."""
    return given.settings.selection.disk_budget.fraction is not None and NODE_KIND in given.failed


def _smallest_capacity(nodes: Sequence[NodeInfo]) -> int | None:
    """The smallest ephemeral-storage capacity: that node holds every image of the list."""
    capacities = [n.ephemeral_storage for n in nodes if n.ephemeral_storage]
    return min(capacities) if capacities else None


def _foreign_bytes(listed: _Listed, sizes: ImageSizes) -> int:
    """What the administrator's entries take on a node, where a node reports their size."""
    total = 0
    for i, ref in enumerate(listed.refs):
        if i not in listed.mine and ref is not None and (report := sizes.of(ref)) is not None:
            total += report.size
    return total


@dataclass
class _Room:
    """What is left of the limits as images are chosen, in decision order."""

    max_images: int
    budget: int | None
    margin: float
    places_per_namespace: int  # 0: no limit
    share: float  # of the budget, for one project's own images
    used: int = 0
    count: int = 0
    places: Counter[str] = field(default_factory=Counter)
    bytes_of: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, settings: Settings, budget: int | None, *, used: int) -> _Room:
        selection = settings.selection
        return cls(
            max_images=selection.max_images,
            budget=budget,
            margin=selection.retain_margin,
            places_per_namespace=selection.max_per_namespace,
            share=selection.max_namespace_share,
            used=used,
        )

    def refusal(self, image: _Image, *, managed: bool) -> str:
        """Why `image` does not fit what is left, or "" when it does."""
        slack = 1 + self.margin if managed else 1
        if self.count >= self.max_images:
            return f"over the limit of {self.max_images} images"
        if image.tier is Tier.PROJECT:
            ns = image.namespace
            if self.places_per_namespace and self.places[ns] >= self.places_per_namespace:
                return f"namespace {ns} already has {self.places_per_namespace} images of its own in the list"
            if self.budget is not None and self.bytes_of[ns] + image.size > self.budget * self.share * slack:
                return (
                    f"namespace {ns}'s own images would take more than its {self.share:.0%} share of "
                    f"the disk budget ({format_bytes(int(self.budget * self.share) - self.bytes_of[ns])} left)"
                )
        if self.budget is not None and self.used + image.size > self.budget * slack:
            return f"does not fit the disk budget ({format_bytes(self.budget - self.used)} left)"
        return ""

    def take(self, image: _Image) -> None:
        self.used += image.size
        self.count += 1
        if image.tier is Tier.PROJECT:
            self.places[image.namespace] += 1
            self.bytes_of[image.namespace] += image.size


# -- decisions -------------------------------------------------------------------------------


def _settled(
    images: Sequence[_Image],
    listed: _Listed,
    protected: Mapping[ImageRef, str],
    settings: Settings,
    room: _Room,
) -> list[Candidate]:
    """The decisions no ranking changes: excluded, the administrator's, pinned, kept."""
    decided = []
    for image in images:
        if pattern := first_match(str(image.ref), settings.selection.exclude):
            decided.append(_decision(image, listed, selected=False, reason=f"excluded by pattern {pattern!r}"))
        elif image.ref in listed.foreign:
            reason = f"already listed by the administrator as {listed.foreign[image.ref]!r}"
            decided.append(_decision(image, listed, selected=False, reason=reason))
        elif image.tier is Tier.PINNED:
            room.take(image)
            decided.append(_decision(image, listed, selected=True, reason="pinned in the configuration"))
        elif image.tier is Tier.KEPT:
            room.take(image)
            reason = f"kept: {protected[image.ref]}"
            decided.append(_decision(image, listed, selected=True, reason=reason))
    return decided


def _pull_factors(images: Sequence[_Image], given: PlanInput, room: _Room, listed: _Listed) -> dict[ImageRef, float]:
    """Where the disk budget forces a choice, how far each measured image's rank value moves:
    its measured pull seconds over the size-based estimate (size / `pull_rate`), within
    `startup.max_rank_factor` either way. {} (rank by score) without a budget, without
    measured pulls, or when the ranked images that reach the minimum all fit (in the budget,
    and each project's own in its share of it)."""
    if room.budget is None or given.pull_rate <= 0 or not given.pull_seconds:
        return {}
    min_score, margin = given.settings.selection.min_score, room.margin
    wanted = [
        i for i in images if i.score >= (min_score * (1 - margin) if i.ref in listed.managed else min_score)
    ]
    own: Counter[str] = Counter()
    for i in wanted:
        if i.tier is Tier.PROJECT:
            own[i.namespace] += i.size
    fits = room.used + sum(i.size for i in wanted) <= room.budget
    if fits and all(size <= room.budget * room.share for size in own.values()):
        return {}
    bound = given.settings.startup.max_rank_factor
    return {
        i.ref: min(max(i.pull_seconds * given.pull_rate / i.size, 1 / bound), bound)
        for i in images
        if i.pull_seconds is not None and i.size > 0
    }


def _by_saving(
    images: Sequence[_Image], factors: Mapping[ImageRef, float], listed: _Listed, *, margin: float
) -> list[_Image]:
    """Tier first, then start-up seconds saved per byte (score x factor), then the reference."""

    def rank(image: _Image) -> tuple[int, float, str]:
        bonus = 1 + margin if image.ref in listed.managed else 1
        return (_RANKED_ORDER.get(image.tier, -1), -image.score * bonus * factors.get(image.ref, 1.0), str(image.ref))

    return sorted(images, key=rank)


def _select(
    images: Sequence[_Image],
    room: _Room,
    listed: _Listed,
    *,
    settings: Settings,
    held: str,
    factors: Mapping[ImageRef, float] | None = None,
) -> list[Candidate]:
    """The ranked images, in order, each in or out with the reason. `held`: why nothing new
    may be added this cycle ("" when it may); `factors`: how measured pulls moved them."""
    factors = factors or {}
    decided = []
    min_score = settings.selection.min_score
    for image in images:
        managed = image.ref in listed.managed
        floor = min_score * (1 - room.margin) if managed else min_score
        if image.score < floor:
            reason = f"score {image.score:g} is below the minimum {floor:g}"
        elif held and not managed:
            reason = f"not added this cycle: {held}"
        else:
            reason = room.refusal(image, managed=managed)
        factor = factors.get(image.ref, 1.0)
        if reason:
            decided.append(_decision(image, listed, selected=False, reason=reason, factor=factor))
            continue
        room.take(image)
        reason = f"rank {room.count}, score {image.score:g}{_pull_note(image, factor)}" + (" (kept)" if managed else "")
        decided.append(_decision(image, listed, selected=True, reason=reason, factor=factor))
    return decided


def _pull_note(image: _Image, factor: float) -> str:
    if factor == 1.0 or image.pull_seconds is None:
        return ""
    return f", pulls in {format_duration(image.pull_seconds)} ({factor:.2g}x its size's estimate)"


def _elsewhere(given: PlanInput, decided: set[ImageRef], listed: _Listed) -> list[Candidate]:
    """Images whose workloads cannot run where this target's puller runs: left out, with why."""
    groups: dict[ImageRef, list[Usage]] = {}
    tags: dict[ImageRef, set[ImageRef]] = {}
    reasons: dict[ImageRef, str] = {}
    for usage in given.elsewhere:
        ref = _listed_as(usage.image, given.sizes, listed.tag_digests)
        if ref in decided:
            continue
        groups.setdefault(ref, []).append(usage)
        if ref != usage.image:
            tags.setdefault(ref, set()).add(usage.image)
        reasons.setdefault(ref, given.elsewhere_reasons.get(usage.image, "its workloads run on other nodes"))
    found = []
    for ref in sorted(groups, key=str):
        image = _image(ref, tuple(groups[ref]), given, pinned=False, kept=False, tags=tuple(sorted(tags.get(ref, ()))))
        found.append(_decision(image, listed, selected=False, reason=reasons[ref]))
    return found


def _decision(image: _Image, listed: _Listed, *, selected: bool, reason: str, factor: float = 1.0) -> Candidate:
    return Candidate(
        image=image.ref,
        score=image.score,
        size_bytes=image.size,
        size_known=image.size_known,
        roles=tuple(sorted({u.role.value for u in image.usages})),
        sources=tuple(sorted({u.source for u in image.usages}, key=_object_key)),
        selected=selected,
        reason=reason,
        tier=image.tier,
        namespace=image.namespace,
        managed=image.ref in listed.managed,
        tags=image.tags,
        pull_seconds=image.pull_seconds,
        pull_factor=factor,
    )


# -- entries ---------------------------------------------------------------------------------


def _desired(
    listed: _Listed, chosen: Sequence[ImageRef], images: Sequence[_Image], puller: PullerCR, unlisted: frozenset[str]
) -> tuple[PullerState, dict[ImageRef, str]]:
    """Keep every foreign entry and every managed entry still chosen, in place; append the
    new ones in decision order. Returns the state and the entry name of each chosen image.
    An entry's record keeps the kinds `unlisted` this cycle: what they hold is unknown."""
    wanted = set(chosen)
    names: dict[ImageRef, str] = {}
    entries: list[Entry] = []
    owned: dict[str, str] = {}
    for i, (entry, ref) in enumerate(zip(listed.entries, listed.refs, strict=True)):
        if i not in listed.mine:
            entries.append(entry)
        elif i in listed.in_place and ref in wanted and ref not in names and entry.name and entry.image:
            entries.append(entry)  # verbatim, even if an older version spelled the image otherwise
            owned[entry.name] = entry.image
            names[ref] = entry.name
    taken = {e.name for e in entries if e.name is not None}  # a dropped entry's name is free again
    by_ref = {i.ref: i for i in images}
    for ref in chosen:
        if ref in names:
            continue
        tag, hints = _readable(by_ref.get(ref))
        name = entry_name(ref, taken=taken, tag=tag, hints=hints)
        taken.add(name)
        names[ref] = name
        entries.append(Entry.of(name, str(ref)))
        owned[name] = str(ref)
    kinds = {
        name: found
        for ref, name in names.items()
        if (found := _recorded_kinds(_kinds_of(by_ref.get(ref)), puller.entry_kinds.get(name, ()), unlisted))
    }
    tags = {name: str(min(by_ref[ref].tags)) for ref, name in names.items() if ref in by_ref and by_ref[ref].tags}
    return PullerState(tuple(entries), owned, kinds, tags), names


def _readable(image: _Image | None) -> tuple[str | None, tuple[str, ...]]:
    """What names a digest entry readably: the tag nodes report it under, else the stream
    tag it was found under; and the names of the ImageStreams offering it (two custom
    images of one repository then read `workbench-images` and `workbench-images-nlp-2-0`,
    or `...-custom-nlp`, rather than a hash)."""
    if image is None:
        return None, ()
    streams = sorted({u.stream_tag for u in image.usages if u.stream_tag is not None})
    tag = image.tags[0].tag if image.tags else (streams[0].tag if streams else None)
    return tag, tuple(dict.fromkeys(s.stream for s in streams))
FILLER_REASON = (
    "the puller needs at least one entry (with none it crash-loops): its own image, which every "
    "node of its DaemonSet already has"
)


def _never_empty(state: PullerState, given: PlanInput) -> tuple[PullerState, tuple[Candidate, ...]]:
    """`state`, or, when the puller would read no entry from it, `state` plus one entry of
    the puller's own image (recorded as the agent's, found in no kind), with its Candidate."""
    if has_entry(state.entries):
        return state, ()
    ref = _parse_or_none(given.puller.puller_image)
    if ref is None or not _writable(ref):  # an image text the agent cannot write: the puller's default
        ref = parse_reference(DEFAULT_PULLER_IMAGE)
    taken = {e.name for e in state.entries if e.name is not None}
    name = entry_name(ref, taken=taken)
    entry = Entry.of(name, str(ref))
    report = given.sizes.of(ref)
    filler = Candidate(
        image=ref,
        score=0.0,
        size_bytes=report.size if report else 0,
        size_known=report is not None,
        roles=(),
        sources=(),
        selected=True,
        reason=FILLER_REASON,
        tier=Tier.PLACEHOLDER,
        name=name,
        managed=given.puller.owned.get(name) == str(ref),
    )
    filled = PullerState(
        (*state.entries, entry),
        {**state.owned, name: str(ref)},
        {**state.entry_kinds, name: ()},
        dict(state.entry_tags),
    )
    return filled, (filler,)


def _writable(ref: ImageRef) -> bool:
    try:
        Entry.of("x", str(ref))
    except ValueError:
        return False
    return True


# -- fewer rollouts --------------------------------------------------------------------------


def _urgent(listed: _Listed, given: PlanInput) -> PullerState:
    """The CR with only the changes no interval defers: managed entries that are now
    invalid, or that share their name with an administrator's entry, removed; and, if the
    puller would then read no entry, the placeholder."""
    refs = given.settings.references
    entries: list[Entry] = []
    owned: dict[str, str] = {}
    for i, (entry, ref) in enumerate(zip(listed.entries, listed.refs, strict=True)):
        if i not in listed.mine:
            entries.append(entry)
        elif i in listed.in_place and ref is not None and not policy_problem(ref, refs) and _fine_name(entry.name):
            entries.append(entry)
            if entry.name and entry.image:
                owned[entry.name] = entry.image
    puller = given.puller
    kinds = {name: k for name, k in puller.entry_kinds.items() if name in owned}
    tags = {name: t for name, t in puller.entry_tags.items() if name in owned}
    state, _ = _never_empty(PullerState(tuple(entries), owned, kinds, tags), given)
    return state


def _fine_name(name: str | None) -> bool:
    """A name the puller's DaemonSet accepts as a container name of its own."""
    if name is None or name in RESERVED_NAMES:
        return False
    try:
        Entry.of(name, "x")
    except ValueError:
        return False
    return True


def _paced(
    current: PullerState, wanted: PullerState, urgent: PullerState, given: PlanInput
) -> tuple[PullerState, Deferred | None]:
    """What to write this cycle, and the change that waits for the minimum interval.

    Within the interval of the last write, only the urgent part of the change is written
    (when it changes any entry; otherwise nothing is), and the rest waits. The interval is
    measured on the server's clock (managedFields) against `given.now`."""
    interval = given.settings.puller.min_write_interval_seconds
    last = given.last_written
    if wanted == current or not interval or last is None:
        return wanted, None
    until = last + timedelta(seconds=interval)
    if given.now >= until:
        return wanted, None
    write = urgent if _texts(urgent) != _texts(current) else current
    if write == wanted:
        return wanted, None
    return write, Deferred(state=wanted, last_written=last, until=until)


def _texts(state: PullerState) -> tuple[str, ...]:
    return tuple(e.text for e in state.entries)


def _kinds_of(image: _Image | None) -> tuple[str, ...]:
    """The kinds an entry's image was found in: what keeps it when one cannot be listed. An
    image listed as the digest nodes report for a tag depends on the Nodes too: without
    them it would read as the tag, and the entry must not flip."""
    if image is None:
        return ()
    kinds = {u.source.kind for u in image.usages} | {u.supplier for u in image.usages if u.supplier}
    if image.tags:
        kinds.add(NODE_KIND)
    return tuple(sorted(kinds))


def _recorded_kinds(found: tuple[str, ...], recorded: tuple[str, ...], unlisted: frozenset[str]) -> tuple[str, ...]:
    """The kinds found this cycle, and those of the record that could not be listed (else a
    failed kind would leave the record, and a later cycle drop the entry while that kind is
    still unseen); the record alone when the image was not found at all."""
    if not found:
        return recorded
    return tuple(sorted({*found, *(k for k in recorded if k in unlisted)}))


def _named(candidate: Candidate, names: Mapping[ImageRef, str]) -> Candidate:
    return replace(candidate, name=names.get(candidate.image, "")) if candidate.selected else candidate


# -- small helpers -------------------------------------------------------------------------


def _object_key(ref: ObjectRef) -> tuple[str, str, str]:
    """ObjectRef's own order as a plain tuple, compared in C: sorting the 10,000 sources of a
    sidecar image through the dataclass's generated __lt__ costs 200,000 Python calls."""
    return (ref.kind, ref.namespace, ref.name)


def _parse_or_none(text: str | None) -> ImageRef | None:
    if not text:
        return None
    try:
        return parse_reference(text)
    except InvalidReference:
        return None

