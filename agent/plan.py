"""The planner: usages + the puller CR as it is + settings -> a `Plan` that explains itself.

Pure: no API client, no clock (`now` is a parameter), no logging. A test feeds records in
and asserts on the Plan.

How a plan is made:

1. **Policy.** References from registries outside `references.allowed_registries`, or
   matching a `references.deny` pattern, are rejected like malformed ones.
2. **Score.** Usages are grouped by image. Each object using an image adds the weight of
   how it uses it (`weights`), counted once per object: a running workbench, a Ready model
   server, the recommended tag of an offered workbench image...
3. **Forced in.** Pinned images, and when any source failed this cycle every image the
   agent already manages (a partial view never shrinks the list), go in first.
   Excluded images (`selection.exclude`) are always out; images an administrator already
   listed are left to the administrator's entry.
4. **Ranked selection.** The rest, best score first (ties: by reference), go in while
   they meet `min_score`, fit `max_images`, the per-node disk budget, and the
   per-namespace limit (no single project may take more than `max_per_namespace` places
   with images only it uses). An image the agent already manages ranks as if its score
   were `retain_margin` higher, and its minimum score is `retain_margin` lower, so scores
   wobbling near the cut do not rewrite the list.
5. **Entries.** Entries the agent did not write stay verbatim and in place; managed
   entries that stay keep their name and place; new ones are appended in rank order,
   named from their repository. `changed` is False when the result reads the same as the
   CR: then nothing is written.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from agent.model import NodeInfo, ObjectRef, Rejection, Role, Usage
from agent.puller import Entry, PullerCR, entry_name, same_list
from agent.refs import ImageRef, InvalidReference, parse_reference
from agent.settings import Settings

NODE_KIND = "Node"
DSCI_KIND = "DSCInitialization"


@dataclass(frozen=True, slots=True)
class Candidate:
    """One image considered for the list, with the decision and why."""

    image: str
    score: float
    size_bytes: int
    size_known: bool  # from a node's status.images; else a per-role estimate
    roles: tuple[str, ...]
    sources: tuple[ObjectRef, ...]
    selected: bool
    reason: str
    name: str = ""  # the entry name when selected
    managed: bool = False  # the agent had it in the list before this cycle


@dataclass(frozen=True, slots=True)
class Plan:
    target_namespace: str
    target_name: str
    generated_at: datetime
    budget_bytes: int | None
    budget_used_bytes: int
    candidates: tuple[Candidate, ...]  # in decision order: forced, then by rank
    rejected: tuple[Rejection, ...]
    problems: tuple[str, ...]  # e.g. an InferenceService whose runtime is not found
    failed_sources: Mapping[str, str]
    entries_before: tuple[Entry, ...]
    entries_after: tuple[Entry, ...]
    owned_before: Mapping[str, str]
    owned_after: Mapping[str, str]
    entry_kinds_before: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    entry_kinds_after: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # which kinds use each
    warnings: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return (
            not same_list(self.entries_before, self.entries_after)
            or dict(self.owned_before) != dict(self.owned_after)
            or dict(self.entry_kinds_before) != dict(self.entry_kinds_after)
        )

    @property
    def selected(self) -> tuple[Candidate, ...]:
        return tuple(c for c in self.candidates if c.selected)


@dataclass
class _Group:
    ref: ImageRef
    usages: list[Usage] = field(default_factory=list)


def make_plan(
    *,
    usages: Iterable[Usage],
    rejections: Iterable[Rejection],
    problems: Iterable[str] = (),
    puller: PullerCR,
    nodes: Sequence[NodeInfo],
    sizes: Mapping[str, int],
    failed_sources: Mapping[str, str],
    missing_sources: Mapping[str, str] = {},  # noqa: B006 - read only
    applications_namespace: str,
    settings: Settings,
    now: datetime,
) -> Plan:
    """`failed_sources`/`missing_sources`: kinds that could not be listed / are not served
    this cycle, by kind name, with the reason."""
    selection = settings.selection
    rejected = list(rejections)
    groups = _group(_allowed(usages, settings, rejected))
    warnings: list[str] = []

    before = puller.entries()
    ownership = _Ownership.of(before, puller.owned)
    managed_by_image = _by_canonical_image(ownership.managed)
    foreign = [before[i] for i in ownership.foreign]
    foreign_by_image = _foreign_images(foreign)
    unavailable = {**missing_sources, **failed_sources}
    protected = {
        image: kinds
        for image, name in managed_by_image.items()
        if (kinds := _protecting_kinds(puller.entry_kinds.get(name), unavailable, failed_sources))
    }

    budget = selection.disk_budget.resolve(_smallest_capacity(nodes, puller.node_selector))
    # Without the nodes, a budget relative to their disk is unknown, not unlimited: add nothing.
    budget_unknown = budget is None and selection.disk_budget.fraction is not None and NODE_KIND in failed_sources
    if budget is None and selection.disk_budget.fraction is not None and not budget_unknown:
        warnings.append("no target node reports ephemeral-storage capacity: the disk budget is not applied")
    estimate = _Sizes(sizes, settings)
    used = sum(estimate.of_text(e.image) for e in foreign)

    pinned = [parse_reference(text) for text in selection.pinned]  # valid: Settings checks them
    for pin in pinned:
        groups.setdefault(str(pin), _Group(pin))
    for image in protected:
        managed_ref = parse_reference(image)  # canonical already
        if image not in groups and not _policy_problem(managed_ref, settings):
            groups[image] = _Group(managed_ref)

    scored = {key: _score(g.usages, settings) for key, g in groups.items()}
    margin = selection.retain_margin
    decided: list[Candidate] = []
    chosen: list[str] = []  # images selected, in decision order

    def decide(key: str, *, selected: bool, reason: str) -> None:
        nonlocal used
        group = groups[key]
        size, known = estimate.of(group)
        if selected:
            used += size
            chosen.append(key)
        decided.append(
            Candidate(
                image=key,
                score=scored[key],
                size_bytes=size,
                size_known=known,
                roles=tuple(sorted({u.role.value for u in group.usages})),
                sources=tuple(sorted({u.source for u in group.usages}, key=_object_key)),
                selected=selected,
                reason=reason,
                managed=key in managed_by_image,
            )
        )

    remaining = []
    for key in sorted(groups, key=lambda k: (-scored[k], k)):
        pattern = _match(key, selection.exclude)
        if pattern:
            decide(key, selected=False, reason=f"excluded by pattern {pattern!r}")
        elif key in foreign_by_image:
            decide(key, selected=False, reason=f"already listed by the administrator as {foreign_by_image[key]!r}")
        elif groups[key].ref in pinned:
            decide(key, selected=True, reason="pinned in the configuration")
        elif key in protected:
            decide(key, selected=True, reason=f"kept: {', '.join(protected[key])} could not be listed this cycle")
        else:
            remaining.append(key)

    def rank_key(key: str) -> tuple[float, str]:
        bonus = 1 + margin if key in managed_by_image else 1
        return (-scored[key] * bonus, key)

    per_namespace: dict[str, int] = defaultdict(int)
    for key in sorted(remaining, key=rank_key):
        score = scored[key]
        is_managed = key in managed_by_image
        floor = selection.min_score * (1 - margin) if is_managed else selection.min_score
        size, _ = estimate.of(groups[key])
        tenant = _tenant(groups[key].usages, applications_namespace=applications_namespace)
        if score < floor:
            decide(key, selected=False, reason=f"score {score:g} is below the minimum {floor:g}")
        elif len(chosen) >= selection.max_images:
            decide(key, selected=False, reason=f"over the limit of {selection.max_images} images")
        elif tenant and selection.max_per_namespace and per_namespace[tenant] >= selection.max_per_namespace:
            decide(
                key,
                selected=False,
                reason=f"namespace {tenant} already has {selection.max_per_namespace} images of its own in the list",
            )
        elif budget_unknown and not is_managed:
            decide(
                key,
                selected=False,
                reason="not added this cycle: Nodes could not be listed, so the disk budget is unknown",
            )
        elif budget is not None and used + size > budget * (1 + margin if is_managed else 1):
            # a managed image may overrun by the margin too: sizes move (estimated until a
            # node reports one) and a smaller node may join, and neither should flap the list
            decide(key, selected=False, reason=f"does not fit the disk budget ({_gib(budget - used)} left)")
        else:
            if tenant:
                per_namespace[tenant] += 1
            rank = len(chosen) + 1
            decide(key, selected=True, reason=f"rank {rank}, score {score:g}" + (" (kept)" if is_managed else ""))

    after, owned_after, names = _entries_after(before=before, chosen=chosen, groups=groups, ownership=ownership)
    candidates = tuple(_named(c, names) for c in decided)
    kinds_after = {
        name: _kinds_of(groups[image].usages) or puller.entry_kinds.get(name, ()) for name, image in owned_after.items()
    }
    return Plan(
        target_namespace=puller.namespace,
        target_name=puller.name,
        generated_at=now,
        budget_bytes=budget,
        budget_used_bytes=used,
        candidates=candidates,
        rejected=tuple(rejected),
        problems=tuple(problems),
        failed_sources=dict(failed_sources),
        entries_before=before,
        entries_after=after,
        owned_before=dict(puller.owned),
        owned_after=owned_after,
        entry_kinds_before=dict(puller.entry_kinds),
        entry_kinds_after=kinds_after,
        warnings=tuple(warnings),
    )


# -- steps ---------------------------------------------------------------------------------


def _allowed(usages: Iterable[Usage], settings: Settings, rejected: list[Rejection]) -> Iterable[Usage]:
    for usage in usages:
        reason = _policy_problem(usage.image, settings)
        if reason:
            rejected.append(Rejection(str(usage.image), reason, usage.source, usage.field))
        else:
            yield usage


def _policy_problem(ref: ImageRef, settings: Settings) -> str:
    allowed = settings.references.allowed_registries
    if allowed and ref.registry not in allowed:
        return f"registry {ref.registry!r} is not in references.allowed_registries"
    if pattern := _match(str(ref), settings.references.deny):
        return f"matches references.deny pattern {pattern!r}"
    return ""


def _group(usages: Iterable[Usage]) -> dict[str, _Group]:
    groups: dict[str, _Group] = {}
    for usage in usages:
        key = str(usage.image)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(usage.image)
        group.usages.append(usage)
    return groups


def _score(usages: Sequence[Usage], settings: Settings) -> float:
    """Sum over the objects using the image of the heaviest way each one uses it."""
    best: dict[ObjectRef, float] = {}
    for usage in usages:
        weight = settings.weights.for_state(usage.state.value)
        if weight > best.get(usage.source, float("-inf")):
            best[usage.source] = weight
    return round(sum(best.values()), 6)


@dataclass(frozen=True)
class _Ownership:
    """Which entries of the list (by index) the agent wrote, and which are not its own."""

    managed: dict[str, str]  # name -> image, every entry the agent wrote
    managed_at: frozenset[int]  # those that may stay where they are
    foreign: tuple[int, ...]

    @classmethod
    def of(cls, entries: Sequence[Entry], owned: Mapping[str, str]) -> _Ownership:
        """An entry is the agent's when its name is recorded with this very image: one whose
        image an administrator changed is theirs now. A managed entry that shares its name
        with an administrator's entry is given up (and its image re-added under a new name
        if still chosen): the puller keeps only the last of two equal names, so keeping both
        could silently override the administrator's."""
        first_mine: dict[str, int] = {}  # a second copy of an entry cannot be told from the administrator's
        for i, e in enumerate(entries):
            if e.name is not None and e.image is not None and owned.get(e.name) == e.image:
                first_mine.setdefault(e.name, i)
        mine_set = set(first_mine.values())
        foreign = tuple(i for i in range(len(entries)) if i not in mine_set)
        foreign_names = {entries[i].name for i in foreign}
        managed_at = frozenset(i for i in mine_set if entries[i].name not in foreign_names)
        managed = {entries[i].name or "": entries[i].image or "" for i in sorted(mine_set)}
        return cls(managed, managed_at, foreign)


def _by_canonical_image(managed: Mapping[str, str]) -> dict[str, str]:
    """Canonical image -> entry name, for managed entries whose image parses."""
    found: dict[str, str] = {}
    for name, image in managed.items():
        ref = _parse_or_none(image)
        if ref is not None:
            found.setdefault(str(ref), name)
    return found


def _protecting_kinds(
    recorded: tuple[str, ...] | None, unavailable: Mapping[str, str], failed: Mapping[str, str]
) -> tuple[str, ...]:
    """The kinds that keep a managed entry this cycle: those it was found in that could not
    be listed or are not served now. An entry with no record (written before records were
    kept) is kept whenever anything failed. A failed DSCInitialization (the applications
    namespace is then a guess) keeps every entry."""
    if DSCI_KIND in failed:
        return (DSCI_KIND,)
    if recorded is None:
        return tuple(sorted(failed))
    return tuple(sorted(set(recorded) & set(unavailable)))


def _kinds_of(usages: Sequence[Usage]) -> tuple[str, ...]:
    return tuple(sorted({u.source.kind for u in usages}))


def _foreign_images(foreign: Sequence[Entry]) -> dict[str, str]:
    """Canonical image -> entry name, for administrator entries the agent can read."""
    found: dict[str, str] = {}
    for entry in foreign:
        ref = _parse_or_none(entry.image)
        if ref is not None and entry.name:
            found.setdefault(str(ref), entry.name)
    return found


def _entries_after(
    *,
    before: Sequence[Entry],
    chosen: Sequence[str],
    groups: Mapping[str, _Group],
    ownership: _Ownership,
) -> tuple[tuple[Entry, ...], dict[str, str], dict[str, str]]:
    """Keep every foreign entry and every managed entry still chosen, in place; append the
    new ones in decision order. Returns (entries, owned annotation, image -> name)."""
    chosen_set = set(chosen)
    foreign = set(ownership.foreign)
    taken = {e.name for e in before if e.name is not None}
    names: dict[str, str] = {}
    after: list[Entry] = []
    owned: dict[str, str] = {}
    for i, entry in enumerate(before):
        if i in foreign:
            after.append(entry)
        elif i in ownership.managed_at and entry.image in chosen_set and entry.name is not None:
            after.append(entry)
            owned[entry.name] = entry.image
            names[entry.image] = entry.name
    for key in chosen:
        if key in names:
            continue
        name = entry_name(groups[key].ref, taken=taken)
        taken.add(name)
        names[key] = name
        after.append(Entry.of(name, key))
        owned[name] = key
    return tuple(after), owned, names


def _named(candidate: Candidate, names: Mapping[str, str]) -> Candidate:
    return replace(candidate, name=names.get(candidate.image, "")) if candidate.selected else candidate


# -- small helpers -------------------------------------------------------------------------


class _Sizes:
    """Bytes an image takes on a node: what a node reports, else the role's estimate."""

    ORDER = (
        Role.MODELCAR,
        Role.SERVING_RUNTIME,
        Role.WORKBENCH,
        Role.PIPELINE_RUNTIME,
        Role.CUSTOM_CONTAINER,
        Role.SIDECAR,
    )

    def __init__(self, reported: Mapping[str, int], settings: Settings) -> None:
        self._reported = reported
        self._settings = settings

    def of(self, group: _Group) -> tuple[int, bool]:
        known = self._lookup(group.ref)
        if known is not None:
            return known, True
        roles = {u.role for u in group.usages}
        estimates = [self._settings.sizes.for_role(r.value) for r in self.ORDER if r in roles]
        return (max(estimates) if estimates else self._settings.sizes.for_role(Role.CUSTOM_CONTAINER.value)), False

    def of_text(self, image: str | None) -> int:
        ref = _parse_or_none(image)
        return (self._lookup(ref) or 0) if ref is not None else 0

    def _lookup(self, ref: ImageRef) -> int | None:
        return self._reported.get(str(ref)) or (self._reported.get(ref.digest) if ref.digest else None)


def _smallest_capacity(nodes: Sequence[NodeInfo], selector: Mapping[str, str]) -> int | None:
    capacities = [
        n.ephemeral_storage
        for n in nodes
        if n.ephemeral_storage and all(n.labels.get(k) == v for k, v in selector.items())
    ]
    return min(capacities) if capacities else None


def _tenant(usages: Sequence[Usage], *, applications_namespace: str) -> str:
    """The one project namespace all usages come from, or "" when the image is shared by
    several, offered to all (applications namespace, cluster-scoped objects) or pinned."""
    namespaces = {u.source.namespace for u in usages}
    if len(namespaces) != 1:
        return ""
    (namespace,) = namespaces
    return "" if namespace == applications_namespace else namespace


def _object_key(ref: ObjectRef) -> tuple[str, str, str]:
    """ObjectRef's own order as a plain tuple, compared in C: sorting the 10,000 sources of a
    sidecar image through the dataclass's generated __lt__ costs 200,000 Python calls."""
    return (ref.kind, ref.namespace, ref.name)


def _match(text: str, patterns: Sequence[str]) -> str:
    for pattern in patterns:
        if fnmatch.fnmatchcase(text, pattern):
            return pattern
    return ""


def _parse_or_none(text: str | None) -> ImageRef | None:
    if not text:
        return None
    try:
        return parse_reference(text)
    except InvalidReference:
        return None


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"
