"""Start-up time saved: which `Pulled` events to trust, what a cycle adds to the summary, the
pull figures the planner ranks with, and what each target's list saved.

Pure. `agent.events` lists the events and keeps the summary; this module decides.

**Trust.** A tenant who may create Events in a namespace can write any `Pulled` message. An
event counts only when its node exists (the Nodes were listed this cycle and one has that
name), it is not from a puller's own namespace (the puller's DaemonSet pulls every image
with `imagePullPolicy: Always` whenever it is recreated: those pulls are not workload
starts; che-incubator/kubernetes-image-puller `utils/clusterutils.go`), and its image,
normalised (`agent.refs`) and aliased as the usages are (`agent.resolve.image_as_used`: an
internal-registry spelling of a stream tag is that tag's image), is one the agent found in
use by a workload of the event's own namespace. So a namespace's events speak only of
images it runs; what they can change is bounded further by the planner (`agent.plan`:
tiers first, and a pull time moves an image's rank value by at most
`startup.max_rank_factor`) and by `agent.pulls` (each namespace one vote in a median).

**Counting.** A container start is one occurrence of an event (`count: 5` is five); warm is
"already present", cold is "Successfully pulled". Each event is counted once however often
it is listed (`Summary.occurrences`); at most `MAX_NEW_PER_EVENT` occurrences of one event
per cycle. An event combined by client-go's aggregator names only its latest occurrence:
that one counts, the others are ignored (counted as such).

**Saved.** A warm start saves a pull when the agent listed its image for the target whose
nodes it ran on, listed it before the start (as far as its own records say: the time it
first saw the image among its entries), and lists it still. Saved is counted once per pod
and image, on the pod's first start with it, and not when the same pod pulled that image
cold: a ModelCar's init container and sidecar are two warm starts of one image but one pull
avoided, and a container restarting in a pod that already had its image saved nothing. The
saving is the image's median cold pull (measured), or, with no cold pull seen, its size
divided by the observed pull rate (estimated); both are reported apart.

What this is not: it reads no API and formats nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from agent.kubelet import PulledEvent
from agent.model import WORKLOAD_STATES, Usage
from agent.plan import Candidate, Plan
from agent.pulls import ImageRecord, Summary, TargetImage, TargetRecord
from agent.refs import ImageRef, InvalidReference, parse_reference

__all__ = [
    "CyclePulls",
    "EventCounts",
    "ImagePulls",
    "PullFigures",
    "Start",
    "TargetStartup",
    "Trust",
    "account",
    "count_cycle",
    "kept_images",
]

MAX_NEW_PER_EVENT = 100
DAY = 86_400.0

# Why a well-formed event is not trusted (a fixed set).
NODES_UNKNOWN = "the nodes are unknown this cycle"
NO_SUCH_NODE = "its node does not exist"
PULLER_POD = "a puller's own pod"
NOT_A_REFERENCE = "its image is not a valid reference"
NOT_IN_USE = "its image is not in use in its namespace"
# Occurrences of trusted events that are not counted.
COMBINED = "occurrences a combined event no longer names"
CAPPED = f"occurrences past {MAX_NEW_PER_EVENT} of one event in one cycle"

Alias = Callable[[ImageRef, str], ImageRef]


def _same(ref: ImageRef, namespace: str) -> ImageRef:
    return ref


@dataclass(frozen=True)
class Trust:
    """What makes an event believable (see the module docstring)."""

    nodes: frozenset[str] | None  # None: the Nodes could not be listed this cycle
    in_use: Mapping[str, frozenset[ImageRef]]  # namespace -> images its workloads use
    puller_namespaces: frozenset[str] = frozenset()
    alias: Alias = _same

    @classmethod
    def of(
        cls,
        usages: Iterable[Usage],
        *,
        nodes: Iterable[str] | None,
        puller_namespaces: Iterable[str],
        alias: Alias = _same,
    ) -> Trust:
        in_use: dict[str, set[ImageRef]] = {}
        for usage in usages:
            if usage.state in WORKLOAD_STATES and usage.source.namespace:
                in_use.setdefault(usage.source.namespace, set()).add(usage.image)
        return cls(
            nodes=frozenset(nodes) if nodes is not None else None,
            in_use={ns: frozenset(images) for ns, images in in_use.items()},
            puller_namespaces=frozenset(puller_namespaces),
            alias=alias,
        )

    def image(self, event: PulledEvent) -> tuple[ImageRef | None, str]:
        """The event's image as the usages spell it, or why the event is not trusted."""
        if self.nodes is None:
            return None, NODES_UNKNOWN
        if event.node not in self.nodes:
            return None, NO_SUCH_NODE
        if event.namespace in self.puller_namespaces:
            return None, PULLER_POD
        try:
            ref = parse_reference(event.message.image)
        except InvalidReference:
            return None, NOT_A_REFERENCE
        ref = self.alias(ref, event.namespace)
        if ref not in self.in_use.get(event.namespace, ()):
            return None, NOT_IN_USE
        return ref, ""


@dataclass(frozen=True, slots=True)
class Start:
    """One trusted event of this cycle's listing, and what of it is new."""

    event: PulledEvent
    image: ImageRef  # as the usages spell it
    new: int  # occurrences counted this cycle (0: all counted before)
    fresh: bool  # none of it was counted before, and it names every occurrence

    @property
    def cold(self) -> bool:
        return self.event.message.cold

    @property
    def pod(self) -> str:
        return self.event.pod_uid or f"{self.event.namespace}/{self.event.pod}"


@dataclass(frozen=True)
class EventCounts:
    """One cycle's listing of Pulled events, for the log and the report."""

    listed: int = 0  # events the API server returned
    trusted: int = 0
    counted: int = 0  # occurrences new this cycle
    ignored: Mapping[str, int] = field(default_factory=dict)  # not read, by why (agent.kubelet.REASONS...)
    untrusted: Mapping[str, int] = field(default_factory=dict)  # read but not believed, by why
    complete: bool = True  # every event was listed and read
    error: str = ""  # why the listing failed or stopped


@dataclass(frozen=True)
class PullFigures:
    """What the planner ranks with: measured median pull seconds per image, and the pull rate."""

    seconds: Mapping[ImageRef, float] = field(default_factory=dict)
    rate: float = 0.0  # bytes per second
    rate_observed: bool = False  # else the configured `startup.assumed_pull_rate`


@dataclass
class CyclePulls:
    """A cycle's events counted into the summary; `account` then says what each target saw."""

    summary: Summary
    starts: tuple[Start, ...]
    counts: EventCounts
    figures: PullFigures


def count_cycle(
    summary: Summary,
    events: Iterable[PulledEvent],
    trust: Trust,
    *,
    assumed_rate: float,
    listed: int,
    listed_uids: Iterable[str] | None,
    ignored: Mapping[str, int],
    error: str = "",
) -> CyclePulls:
    """Count this cycle's events into `summary` (in place). `listed_uids`: every uid of a
    complete listing (events missing from it have expired), None when it was not complete."""
    untrusted: Counter[str] = Counter()
    skipped: Counter[str] = Counter(ignored)
    starts: list[Start] = []
    for event in events:
        image, why = trust.image(event)
        if image is None:
            untrusted[why] += 1
            continue
        starts.append(_count(summary, event, image, skipped))
    if listed_uids is not None:
        summary.forget_except(listed_uids)
    rate = summary.rate()
    counts = EventCounts(
        listed=listed,
        trusted=len(starts),
        counted=sum(s.new for s in starts),
        ignored=dict(skipped),
        untrusted=dict(untrusted),
        complete=listed_uids is not None,
        error=error,
    )
    figures = PullFigures(_medians(summary), rate if rate is not None else assumed_rate, rate is not None)
    return CyclePulls(summary, tuple(starts), counts, figures)


def _count(summary: Summary, event: PulledEvent, image: ImageRef, skipped: Counter[str]) -> Start:
    new, fresh = summary.occurrences(event.uid, event.count, first=event.first, last=event.last)
    combined = event.message.combined
    if combined and new > 1:
        skipped[COMBINED] += new - 1
        new = 1
    if new > MAX_NEW_PER_EVENT:
        skipped[CAPPED] += new - MAX_NEW_PER_EVENT
        new = MAX_NEW_PER_EVENT
    summary.mark(event.uid, event.count, last=event.last)
    if new:
        record = summary.images.setdefault(str(image), ImageRecord())
        message = event.message
        if message.cold:
            record.cold += new
            if fresh and message.pull_seconds is not None:
                record.add_sample(event.namespace, message.pull_seconds, message.size_bytes or 0)
        else:
            record.warm += new
        record.add_node(event.node)
        record.widen(event.first)
    return Start(event, image, new, fresh and not combined)


def _medians(summary: Summary) -> dict[ImageRef, float]:
    found = {}
    for name, record in summary.images.items():
        median = record.median()
        if median is None:
            continue
        try:
            found[parse_reference(name)] = median
        except InvalidReference:  # a stored summary someone edited: that image is not ranked by it
            continue
    return found


# -- what a target saw ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImagePulls:
    """One candidate's figures on one target."""

    cold: int = 0  # cold pulls seen on the target's nodes, over the window
    warm: int = 0
    median_seconds: float | None = None  # cluster-wide median cold pull (each namespace one vote)
    high_seconds: float | None = None  # its 90th percentile
    seconds_saved: float = 0.0  # on this target, over the window
    estimated: bool = False  # the saving came from its size and the pull rate, not a measured pull


@dataclass(frozen=True)
class TargetStartup:
    """A target's start-up figures over its window, and what this cycle added to them."""

    window_seconds: float
    starts: int
    warm: int
    saved_measured: float
    saved_estimated: float
    rate: float
    rate_observed: bool
    images: Mapping[ImageRef, ImagePulls] = field(default_factory=dict)  # by candidate image
    new_cold: int = 0
    new_warm: int = 0
    new_saved: float = 0.0
    new_pull_seconds: tuple[float, ...] = ()  # one per new cold occurrence

    @property
    def seconds_saved(self) -> float:
        return self.saved_measured + self.saved_estimated

    @property
    def warm_share(self) -> float | None:
        return self.warm / self.starts if self.starts else None

    def saved_per_day(self, pulls: ImagePulls) -> float:
        """Seconds saved per day: over the window, or over one day when it is shorter (never
        an extrapolation of a few minutes)."""
        return pulls.seconds_saved * DAY / max(self.window_seconds, DAY)


def account(
    cycle: CyclePulls,
    *,
    target: str,
    nodes: frozenset[str] | None,
    plan: Plan,
    written: bool,
    now: datetime,
) -> TargetStartup:
    """Add this cycle's starts on the target's `nodes` to its record and say what it saw.
    `written`: the plan was written (its new images are listed from now on)."""
    record = cycle.summary.targets.setdefault(target, TargetRecord())
    here = [s for s in cycle.starts if nodes is not None and s.event.node in nodes]
    index = _index(plan.candidates)
    new = _add_starts(record, here, index)
    saved = _add_savings(record, here, index, cycle)
    listed = {str(c.image) for c in plan.candidates if c.selected and (c.managed or written)}
    since = now.replace(microsecond=0)
    record.listed = {k: record.listed.get(k, since) for k in sorted(listed)}
    return TargetStartup(
        window_seconds=max(0.0, (now - record.since).total_seconds()) if record.since else 0.0,
        starts=record.starts,
        warm=record.warm,
        saved_measured=record.saved_measured,
        saved_estimated=record.saved_estimated,
        rate=cycle.figures.rate,
        rate_observed=cycle.figures.rate_observed,
        images={c.image: _pulls_of(c, record, cycle.summary) for c in plan.candidates},
        new_cold=new["cold"],
        new_warm=new["warm"],
        new_saved=saved,
        new_pull_seconds=tuple(
            s.event.message.pull_seconds for s in here if s.cold and s.event.message.pull_seconds is not None
            for _ in range(s.new)
        ),
    )


def _index(candidates: Sequence[Candidate]) -> dict[str, Candidate]:
    """Every spelling of each candidate (its image and the tags listed as it) -> the candidate."""
    found: dict[str, Candidate] = {}
    for c in candidates:
        for ref in (c.image, *c.tags):
            found.setdefault(str(ref), c)
    return found


def _add_starts(record: TargetRecord, here: Sequence[Start], index: Mapping[str, Candidate]) -> Counter[str]:
    new: Counter[str] = Counter()
    for s in here:
        if not s.new:
            continue
        record.starts += s.new
        record.widen(s.event.first)
        if not s.cold:
            record.warm += s.new
        new["cold" if s.cold else "warm"] += s.new
        c = index.get(str(s.image))
        if c is not None:
            image = record.images.setdefault(str(c.image), TargetImage())
            if s.cold:
                image.cold += s.new
            else:
                image.warm += s.new
    return new


def _add_savings(
    record: TargetRecord, here: Sequence[Start], index: Mapping[str, Candidate], cycle: CyclePulls
) -> float:
    """Pull seconds saved by this cycle's new pod starts (the module docstring says which)."""
    by_pod: dict[tuple[str, str], list[Start]] = {}
    for s in here:
        by_pod.setdefault((s.pod, str(s.image)), []).append(s)
    total = 0.0
    for (_, image), starts in by_pod.items():
        if any(s.cold for s in starts) or not all(s.fresh and s.new for s in starts):
            continue
        c = index.get(image)
        since = record.listed.get(str(c.image)) if c is not None and c.selected and c.managed else None
        if c is None or since is None or min(s.event.first for s in starts) < since:
            continue
        seconds, estimated = _saving(c, cycle)
        if seconds <= 0:
            continue
        entry = record.images.setdefault(str(c.image), TargetImage())
        entry.saved += seconds
        entry.estimated = estimated
        if estimated:
            record.saved_estimated += seconds
        else:
            record.saved_measured += seconds
        total += seconds
    return total


def _saving(c: Candidate, cycle: CyclePulls) -> tuple[float, bool]:
    """(seconds one avoided pull of `c` is worth, whether that is estimated from its size)."""
    median = _record_of(c, cycle.summary)
    seconds = median.median() if median is not None else None
    if seconds is not None:
        return seconds, False
    rate = cycle.figures.rate
    return (c.size_bytes / rate if rate > 0 else 0.0), True


def _record_of(c: Candidate, summary: Summary) -> ImageRecord | None:
    """The summary's record of `c` with the most pull samples, over its spellings."""
    records = [r for ref in (c.image, *c.tags) if (r := summary.images.get(str(ref))) is not None]
    if not records:
        return None
    return max(records, key=lambda r: sum(len(kept) for kept in r.samples.values()))


def _pulls_of(c: Candidate, record: TargetRecord, summary: Summary) -> ImagePulls:
    mine = record.images.get(str(c.image), TargetImage())
    found = _record_of(c, summary)
    return ImagePulls(
        cold=mine.cold,
        warm=mine.warm,
        median_seconds=found.median() if found is not None else None,
        high_seconds=found.high() if found is not None else None,
        seconds_saved=mine.saved,
        estimated=mine.estimated,
    )


def kept_images(plans: Iterable[Plan]) -> set[str]:
    """Every spelling of every candidate of `plans`: what the summary keeps."""
    return {str(ref) for plan in plans for c in plan.candidates for ref in (c.image, *c.tags)}
