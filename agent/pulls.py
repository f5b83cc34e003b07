"""The start-up summary: what the agent has counted from the kubelet's `Pulled` events,
kept across cycles and restarts, and never larger than a bound.

Pure: a `Summary` value, what it says (medians, rates), and its stored form (`encode`,
`decode`: one JSON document of at most `MAX_STORED_BYTES`, the ConfigMap `agent.events`
reads and writes). It holds:

- `seen`: each Event's uid and the `count` already counted, so an event is counted once
  however often it is listed: a later listing adds only the increase. Events the API server
  no longer lists (they expire, an hour by default) are forgotten. At most
  `MAX_SEEN_STORED` are stored, the most recent first; `cut` is the newest `lastTimestamp`
  of those left out, and an event missing from `seen` is then taken as new only if it began
  after `cut` (if it began before and went on after, only its last occurrence is new, so
  nothing is counted twice).
- `images`: per image (as the usages spell it), cold pulls, warm starts, the window start,
  up to `MAX_NODES_PER_IMAGE` node names and the pull samples: up to
  `MAX_SAMPLES_PER_NAMESPACE` (pull seconds, bytes) pairs from each of up to
  `MAX_NAMESPACES_PER_IMAGE` namespaces. The median is the median of the namespaces'
  medians: each namespace is one vote, so one project's events cannot outvote others'.
- `targets`: per KubernetesImagePuller, the container starts and warm starts seen on its
  nodes, the pull seconds saved (measured, and estimated from size), the window start, per
  image what its candidates showed, and when the agent listed each of its images there.

What this is not: it decides nothing about trust or savings (`agent.startup` does), and
reads no API.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

__all__ = ["ImageRecord", "Summary", "SummaryError", "TargetImage", "TargetRecord", "decode", "encode"]

VERSION: Final = 1
MAX_IMAGES: Final = 256
MAX_TARGET_IMAGES: Final = 256
MAX_NODES_PER_IMAGE: Final = 16
MAX_NAMESPACES_PER_IMAGE: Final = 8
MAX_SAMPLES_PER_NAMESPACE: Final = 8
MAX_SEEN_STORED: Final = 8_000
MAX_STORED_BYTES: Final = 800_000  # a ConfigMap holds at most 1 MiB
MIN_RATE_SECONDS: Final = 1.0  # a shorter pull found its layers cached: it says nothing of the rate
HIGH_PERCENTILE: Final = 0.9
UID_CHARS: Final = 16  # of an Event uid, dashes dropped: 64 random bits tell 8,000 apart


class SummaryError(ValueError):
    """A stored summary that cannot be read; the message names the field."""


@dataclass
class ImageRecord:
    cold: int = 0
    warm: int = 0
    since: datetime | None = None
    nodes: list[str] = field(default_factory=list)
    # namespace -> (pull seconds, bytes or 0), oldest first
    samples: dict[str, list[tuple[float, int]]] = field(default_factory=dict)

    def add_node(self, node: str) -> None:
        if node not in self.nodes and len(self.nodes) < MAX_NODES_PER_IMAGE:
            self.nodes.append(node)

    def add_sample(self, namespace: str, seconds: float, size: int) -> None:
        """One cold pull; the oldest of the namespace's goes when it has `MAX_SAMPLES_PER_NAMESPACE`,
        and a namespace new to a full record replaces the one with the fewest samples."""
        kept = self.samples.get(namespace)
        if kept is None:
            if len(self.samples) >= MAX_NAMESPACES_PER_IMAGE:
                del self.samples[min(self.samples, key=lambda ns: (len(self.samples[ns]), ns))]
            kept = self.samples[namespace] = []
        kept.append((seconds, size))
        del kept[:-MAX_SAMPLES_PER_NAMESPACE]

    def median(self) -> float | None:
        """The median of the namespaces' median pull seconds; None without a cold pull."""
        medians = [statistics.median(s for s, _ in kept) for kept in self.samples.values() if kept]
        return statistics.median(medians) if medians else None

    def high(self) -> float | None:
        """The `HIGH_PERCENTILE` of every sample kept (nearest rank)."""
        values = sorted(s for kept in self.samples.values() for s, _ in kept)
        if not values:
            return None
        return values[max(0, math.ceil(HIGH_PERCENTILE * len(values)) - 1)]

    @property
    def size(self) -> int:
        """The size the kubelet last reported for it, 0 when it never did."""
        sizes = [b for kept in self.samples.values() for _, b in kept if b > 0]
        return sizes[-1] if sizes else 0

    def widen(self, when: datetime) -> None:
        self.since = when if self.since is None else min(self.since, when)


@dataclass
class TargetImage:
    cold: int = 0
    warm: int = 0
    saved: float = 0.0  # seconds
    estimated: bool = False  # the last saving was estimated from size, not a measured pull


@dataclass
class TargetRecord:
    since: datetime | None = None
    starts: int = 0
    warm: int = 0
    saved_measured: float = 0.0
    saved_estimated: float = 0.0
    images: dict[str, TargetImage] = field(default_factory=dict)
    listed: dict[str, datetime] = field(default_factory=dict)  # image -> since when the agent lists it here

    def widen(self, when: datetime) -> None:
        self.since = when if self.since is None else min(self.since, when)


@dataclass
class Summary:
    images: dict[str, ImageRecord] = field(default_factory=dict)
    targets: dict[str, TargetRecord] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)  # event uid (shortened) -> count counted
    cut: datetime | None = None
    seen_last: dict[str, datetime] = field(default_factory=dict, compare=False)  # lastTimestamp, this process's

    # -- counting each event once ----------------------------------------------------------

    def occurrences(self, uid: str, count: int, *, first: datetime, last: datetime) -> tuple[int, bool]:
        """(occurrences not counted yet, whether none of the event was counted before)."""
        known = self.seen.get(_short(uid))
        if known is not None:
            return max(0, count - known), False
        if self.cut is None or first > self.cut:
            return count, True
        return (1 if last > self.cut else 0), False

    def mark(self, uid: str, count: int, *, last: datetime) -> None:
        key = _short(uid)
        self.seen[key] = max(count, self.seen.get(key, 0))
        self.seen_last[key] = last

    def forget_except(self, listed: Iterable[str]) -> None:
        """Forget the events not in a complete listing: the API server has let them expire."""
        keep = {_short(uid) for uid in listed}
        for key in [k for k in self.seen if k not in keep]:
            del self.seen[key]
            self.seen_last.pop(key, None)

    # -- what it says ------------------------------------------------------------------------

    def rate(self) -> float | None:
        """Bytes per second: the median over namespaces of each one's median rate, from pulls
        that gave their size and took at least `MIN_RATE_SECONDS`; None without any."""
        by_namespace: dict[str, list[float]] = {}
        for record in self.images.values():
            for namespace, kept in record.samples.items():
                rates = [b / s for s, b in kept if b > 0 and s >= MIN_RATE_SECONDS]
                by_namespace.setdefault(namespace, []).extend(rates)
        medians = [statistics.median(r) for r in by_namespace.values() if r]
        return statistics.median(medians) if medians else None

    def keep_only(self, images: set[str], targets: Mapping[str, set[str]]) -> None:
        """Age out: images no target has as a candidate, targets no longer configured, and each
        target's images that are not its candidates; then the bounds, the most started first."""
        self.images = _bounded({k: v for k, v in self.images.items() if k in images}, MAX_IMAGES,
                               key=lambda r: r.cold + r.warm)
        self.targets = {name: record for name, record in self.targets.items() if name in targets}
        for name, record in self.targets.items():
            wanted = targets[name]
            record.images = _bounded({k: v for k, v in record.images.items() if k in wanted}, MAX_TARGET_IMAGES,
                                     key=lambda r: r.cold + r.warm)
            record.listed = {k: v for k, v in record.listed.items() if k in wanted}


def _bounded(records: dict[str, Any], limit: int, *, key: Any) -> dict[str, Any]:
    if len(records) <= limit:
        return records
    keep = sorted(records, key=lambda k: (-key(records[k]), k))[:limit]
    return {k: records[k] for k in sorted(keep)}


def _short(uid: str) -> str:
    return uid.replace("-", "")[:UID_CHARS]


# -- the stored form -----------------------------------------------------------------------------


def encode(summary: Summary, *, now: datetime) -> str:
    """The summary as one compact JSON document of at most `MAX_STORED_BYTES`: the most
    recent events of `seen` first, fewer of them (moving `cut`) until it fits, and past
    that, fewer images (the least started go first)."""
    order = sorted(summary.seen, key=lambda k: summary.seen_last.get(k, _EPOCH), reverse=True)
    images = sorted(summary.images, key=lambda k: (-(summary.images[k].cold + summary.images[k].warm), k))
    limit = MAX_SEEN_STORED
    while True:
        kept, dropped = order[:limit], order[limit:]
        cut = summary.cut
        for key in dropped:
            last = summary.seen_last.get(key, now)  # not listed since a restart: take it as just now
            cut = last if cut is None else max(cut, last)
        doc = {
            "version": VERSION,
            "updated": _epoch(now),
            "cut": _epoch(cut) if cut is not None else None,
            "seen": {k: summary.seen[k] for k in kept},
            "images": {name: _image_doc(summary.images[name]) for name in sorted(images)},
            "targets": {name: _target_doc(r) for name, r in sorted(summary.targets.items())},
        }
        text = json.dumps(doc, separators=(",", ":"), sort_keys=False)
        if len(text) <= MAX_STORED_BYTES or (limit == 0 and not images):
            return text
        if limit:
            limit //= 2
        else:
            del images[len(images) // 2 :]


def decode(text: str) -> Summary:
    """A stored summary, checked field by field (it lives in a ConfigMap someone may edit);
    bounds are applied as it is read. Raises `SummaryError` naming the field."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise SummaryError(f"is not JSON: {e}") from None
    doc = _obj(doc, "the document")
    if doc.get("version") != VERSION:
        raise SummaryError(f"version is {doc.get('version')!r}, not {VERSION}")
    seen = {str(k): _int(v, f"seen[{k}]") for k, v in list(_obj(doc.get("seen", {}), "seen").items())[:MAX_SEEN_STORED]}
    images = {
        str(k): _image_of(_obj(v, f"images[{k}]"), f"images[{k}]")
        for k, v in list(_obj(doc.get("images", {}), "images").items())[:MAX_IMAGES]
    }
    targets = {
        str(k): _target_of(_obj(v, f"targets[{k}]"), f"targets[{k}]")
        for k, v in _obj(doc.get("targets", {}), "targets").items()
    }
    return Summary(images=images, targets=targets, seen=seen, cut=_when(doc.get("cut"), "cut"))


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch(when: datetime) -> int:
    return int(when.timestamp())


def _image_doc(r: ImageRecord) -> dict[str, Any]:
    return {
        "cold": r.cold, "warm": r.warm, "since": _epoch(r.since) if r.since else None, "nodes": r.nodes,
        "samples": {ns: [[round(s, 3), b] for s, b in kept] for ns, kept in r.samples.items()},
    }


def _target_doc(r: TargetRecord) -> dict[str, Any]:
    return {
        "since": _epoch(r.since) if r.since else None, "starts": r.starts, "warm": r.warm,
        "saved_measured": round(r.saved_measured, 3), "saved_estimated": round(r.saved_estimated, 3),
        "images": {k: [i.cold, i.warm, round(i.saved, 3), int(i.estimated)] for k, i in sorted(r.images.items())},
        "listed": {k: _epoch(v) for k, v in sorted(r.listed.items())},
    }


def _image_of(doc: Mapping[str, Any], where: str) -> ImageRecord:
    record = ImageRecord(
        cold=_int(doc.get("cold", 0), f"{where}.cold"),
        warm=_int(doc.get("warm", 0), f"{where}.warm"),
        since=_when(doc.get("since"), f"{where}.since"),
        nodes=[_str(n, f"{where}.nodes") for n in _list(doc.get("nodes", []), f"{where}.nodes")][:MAX_NODES_PER_IMAGE],
    )
    for namespace, kept in list(_obj(doc.get("samples", {}), f"{where}.samples").items())[:MAX_NAMESPACES_PER_IMAGE]:
        pairs = _list(kept, f"{where}.samples[{namespace}]")[-MAX_SAMPLES_PER_NAMESPACE:]
        record.samples[str(namespace)] = [_sample(p, f"{where}.samples[{namespace}]") for p in pairs]
    return record


def _target_of(doc: Mapping[str, Any], where: str) -> TargetRecord:
    images = {}
    for name, row in list(_obj(doc.get("images", {}), f"{where}.images").items())[:MAX_TARGET_IMAGES]:
        cold, warm, saved, estimated = _row(row, f"{where}.images[{name}]")
        images[str(name)] = TargetImage(cold, warm, saved, estimated)
    listed = {}
    for name, value in _obj(doc.get("listed", {}), f"{where}.listed").items():
        when = _when(value, f"{where}.listed[{name}]")
        if when is not None:
            listed[str(name)] = when
    return TargetRecord(
        since=_when(doc.get("since"), f"{where}.since"),
        starts=_int(doc.get("starts", 0), f"{where}.starts"),
        warm=_int(doc.get("warm", 0), f"{where}.warm"),
        saved_measured=_seconds(doc.get("saved_measured", 0), f"{where}.saved_measured"),
        saved_estimated=_seconds(doc.get("saved_estimated", 0), f"{where}.saved_estimated"),
        images=images,
        listed=listed,
    )


def _row(value: Any, where: str) -> tuple[int, int, float, bool]:
    row = _list(value, where)
    if len(row) != 4:
        raise SummaryError(f"{where} must be [cold, warm, saved, estimated]")
    return _int(row[0], where), _int(row[1], where), _seconds(row[2], where), bool(_int(row[3], where))


def _sample(value: Any, where: str) -> tuple[float, int]:
    pair = _list(value, where)
    if len(pair) != 2:
        raise SummaryError(f"{where} must hold [seconds, bytes] pairs")
    return _seconds(pair[0], where), _int(pair[1], where)


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SummaryError(f"{where} must be a mapping")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise SummaryError(f"{where} must be a list")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise SummaryError(f"{where} must hold strings")
    return value


def _int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SummaryError(f"{where} must be an integer >= 0")
    return value


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise SummaryError(f"{where} must be a number of seconds >= 0")
    return float(value)


def _when(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(_int(value, where), tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise SummaryError(f"{where} must be a time in seconds since 1970") from None
