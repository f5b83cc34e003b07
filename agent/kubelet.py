"""The kubelet's `Pulled` events, read strictly: Go durations, the message shapes, the fields.

Pure: text and plain dicts in, small frozen records out. What the kubelet writes (checked
against the sources, kubernetes/kubernetes v1.35.4 and k8s.io/client-go v0.35.4):

- Reason `Pulled`, type `Normal` (`pkg/kubelet/events/event.go`: `PulledImage = "Pulled"`).
- Messages (`pkg/kubelet/images/image_manager.go`), newest first:
  - `Successfully pulled image %q in %v (%v including waiting). Image size: %v bytes.`
    (the first duration is the pull itself, the second includes the wait in the pull queue;
    both `time.Duration` truncated to the millisecond, printed by `Duration.String()`);
  - `Successfully pulled image %q in %v (%v including waiting)` (older, no size);
  - `Successfully pulled image %q in %v` (oldest);
  - `Container image %q already present on machine`, and from 1.35 (feature gate
    `KubeletEnsureSecretPulledImages`, beta and on) `... on machine and can be accessed by
    the pod`.
  In 1.35 "Successfully pulled" quotes the image with `:latest` added when it has neither tag
  nor digest (`applyDefaultImageTag`); "already present" quotes it as the pod wrote it. The
  caller normalises both with `agent.refs`.
- After 10 similar events (same source, object, type and reason, other messages) within
  600 s, client-go's aggregator rewrites the message to `(combined from similar events): `
  + the message (`tools/record/events_cache.go`, `defaultAggregateMaxEvents`), and every
  later similar event only increments that event's `count` and replaces its message: the
  count then covers occurrences whose messages are gone. `combined` says so.
- Fields (`tools/record/event.go` `generateEvent`; `cmd/kubelet/app/server.go`): `source`
  `{component: kubelet, host: NODE}`, `reportingComponent: kubelet` (the Go field
  `ReportingController`, k8s.io/api `core/v1/types.go`), `reportingInstance: NODE`,
  `involvedObject` the Pod (`fieldPath` `spec.containers{NAME}`), `count` from 1 and
  `firstTimestamp` / `lastTimestamp`; the legacy recorder never sets `series`.

Everything else is refused with `NotPulled`, whose `reason` is one of a few fixed phrases
(`REASONS`), so the counts of what was ignored stay a small table whatever a tenant writes.

What this is not: it decides nothing about trust (which node, which image, which namespace:
`agent.startup`), and parses no image reference.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

__all__ = [
    "COMBINED_PREFIX",
    "DurationError",
    "NotPulled",
    "PullMessage",
    "PulledEvent",
    "REASONS",
    "parse_go_duration",
    "parse_message",
    "read_event",
]

PULLED_REASON: Final = "Pulled"
KUBELET: Final = "kubelet"
COMBINED_PREFIX: Final = "(combined from similar events): "
MAX_MESSAGE: Final = 2048  # longer than any message the kubelet writes for a valid reference
MAX_COUNT: Final = 1 << 31  # `count` is an int32
# How far before its creation an event may say it first happened (the kubelet's clock and
# the aggregation delay); earlier times are taken as the creation time.
MAX_CLOCK_SKEW: Final = timedelta(hours=1)

# Why an event was not read, as counted (a fixed set: tenants cannot grow it).
NOT_PULLED = "not a Pulled event"
NOT_KUBELET = "not from a kubelet"
NOT_A_POD = "not about a pod"
NO_NODE = "names no node"
BAD_COUNT = "count is not a positive integer"
BAD_TIME = "timestamps cannot be read"
BAD_MESSAGE = "message is none of the kubelet's shapes"
BAD_DURATION = "duration is not a Go duration"
NEGATIVE = "duration is negative"
BAD_SIZE = "image size is not a number of bytes"
REASONS: Final = (
    NOT_PULLED, NOT_KUBELET, NOT_A_POD, NO_NODE, BAD_COUNT, BAD_TIME, BAD_MESSAGE, BAD_DURATION, NEGATIVE, BAD_SIZE,
)


class DurationError(ValueError):
    """Text that Go's `time.ParseDuration` refuses; the message is Go's own."""


class NotPulled(ValueError):
    """An event or message that is not one the kubelet writes. `reason` is one of `REASONS`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- Go durations ------------------------------------------------------------------------------

_UNITS: Final = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # U+00B5 micro sign
    "\u03bcs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_MAX: Final = 1 << 63


def parse_go_duration(text: str) -> int:
    """Nanoseconds, exactly as Go's `time.ParseDuration` (go/src/time/format.go) reads `text`:
    `[-+]?([0-9]*(\\.[0-9]*)?[a-z]+)+` with units ns, us, µs, μs, ms, s, m, h, or a lone "0";
    the same overflow rules (int64 nanoseconds) and the same float rounding of fractions.
    Only ASCII digits are digits. Raises `DurationError` with Go's message."""
    orig, s, neg = text, text, False
    if s and s[0] in "+-":
        neg, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if not s:
        raise _invalid(orig)
    total = 0
    while s:
        if not (s[0] == "." or _digit(s[0])):
            raise _invalid(orig)
        whole, rest = _leading_int(s, orig)
        pre = len(rest) != len(s)
        s, frac, scale, post = rest, 0, 1.0, False
        if s and s[0] == ".":
            s = s[1:]
            frac, scale, rest = _leading_fraction(s)
            post, s = len(rest) != len(s), rest
        if not pre and not post:
            raise _invalid(orig)
        i = 0
        while i < len(s) and not (s[i] == "." or _digit(s[i])):
            i += 1
        if i == 0:
            raise DurationError(f'time: missing unit in duration "{orig}"')
        unit_text, s = s[:i], s[i:]
        unit = _UNITS.get(unit_text)
        if unit is None:
            raise DurationError(f'time: unknown unit "{unit_text}" in duration "{orig}"')
        if whole > _MAX // unit:
            raise _invalid(orig)
        value = whole * unit
        if frac > 0:
            value += int(float(frac) * (float(unit) / scale))  # Go: float64 is nanosecond-accurate here
            if value > _MAX:
                raise _invalid(orig)
        total += value
        if total > _MAX:
            raise _invalid(orig)
    if neg:
        return -total
    if total > _MAX - 1:
        raise _invalid(orig)
    return total


def _digit(c: str) -> bool:
    return "0" <= c <= "9"


def _invalid(orig: str) -> DurationError:
    return DurationError(f'time: invalid duration "{orig}"')


def _leading_int(s: str, orig: str) -> tuple[int, str]:
    x, i = 0, 0
    while i < len(s) and _digit(s[i]):
        if x > _MAX // 10:
            raise _invalid(orig)
        x = x * 10 + ord(s[i]) - 48
        if x > _MAX:
            raise _invalid(orig)
        i += 1
    return x, s[i:]


def _leading_fraction(s: str) -> tuple[int, float, str]:
    """Digits after the point: Go stops accumulating (but keeps consuming) on overflow."""
    x, scale, i, overflow = 0, 1.0, 0, False
    while i < len(s) and _digit(s[i]):
        if not overflow:
            if x > (_MAX - 1) // 10:
                overflow = True
            else:
                y = x * 10 + ord(s[i]) - 48
                if y > _MAX:
                    overflow = True
                else:
                    x, scale = y, scale * 10
        i += 1
    return x, scale, s[i:]


# -- messages ------------------------------------------------------------------------------------

# %q of a valid reference is the reference between double quotes: no escapes, no quotes.
_QUOTED = r'"(?P<image>[^"\\]{1,1024})"'
_DURATION = r"(?P<pull>[^\s()]{1,64})"
_PULLED_RE: Final = re.compile(
    rf"Successfully pulled image {_QUOTED} in {_DURATION}"
    r"(?: \((?P<waited>[^\s()]{1,64}) including waiting\)(?:\. Image size: (?P<size>[0-9]{1,20}) bytes\.)?)?"
)
_PRESENT_RE: Final = re.compile(
    rf"Container image {_QUOTED} already present on machine(?: and can be accessed by the pod)?"
)


@dataclass(frozen=True, slots=True)
class PullMessage:
    """One `Pulled` message: a cold start (the image was pulled) or a warm one (present)."""

    image: str  # as quoted: not yet parsed or normalised
    cold: bool
    pull_seconds: float | None = None  # cold only: the pull itself, not the wait
    waited_seconds: float | None = None  # cold, when the kubelet says it
    size_bytes: int | None = None  # cold, when the kubelet says it (1.30+)
    combined: bool = False  # "(combined from similar events): ": the count spans other messages


def parse_message(text: str) -> PullMessage:
    """One of the kubelet's messages (see the module docstring), or `NotPulled`."""
    if not isinstance(text, str) or len(text) > MAX_MESSAGE:
        raise NotPulled(BAD_MESSAGE)
    combined = text.startswith(COMBINED_PREFIX)
    body = text[len(COMBINED_PREFIX) :] if combined else text
    if (present := _PRESENT_RE.fullmatch(body)) is not None:
        return PullMessage(sys.intern(present["image"]), cold=False, combined=combined)
    pulled = _PULLED_RE.fullmatch(body)
    if pulled is None:
        raise NotPulled(BAD_MESSAGE)
    pull = _seconds(pulled["pull"])
    waited = _seconds(pulled["waited"]) if pulled["waited"] is not None else None
    size = int(pulled["size"]) if pulled["size"] is not None else None
    if size is not None and size >= _MAX:
        raise NotPulled(BAD_SIZE)
    return PullMessage(sys.intern(pulled["image"]), cold=True, pull_seconds=pull, waited_seconds=waited,
                       size_bytes=size, combined=combined)


def _seconds(text: str) -> float:
    try:
        nanoseconds = parse_go_duration(text)
    except DurationError:
        raise NotPulled(BAD_DURATION) from None
    if nanoseconds < 0:
        raise NotPulled(NEGATIVE)
    return nanoseconds / 1e9


# -- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PulledEvent:
    """A core/v1 Event the kubelet wrote for one container of one pod."""

    uid: str  # the Event's own
    namespace: str
    pod: str
    pod_uid: str  # "" when not given
    container: str  # involvedObject.fieldPath, e.g. spec.containers{main}
    node: str
    count: int
    first: datetime  # when it first happened (clamped: see `read_event`)
    last: datetime
    message: PullMessage


def read_event(obj: Mapping[str, Any]) -> PulledEvent:
    """An Event as the kubelet writes it (the module docstring), or `NotPulled`.

    Times are `firstTimestamp` / `lastTimestamp` (else `eventTime`, else the creation time),
    clamped to no earlier than an hour before the Event was created (`MAX_CLOCK_SKEW`) and
    `last` to no earlier than `first`: a tenant who writes 1970 does not stretch a window.
    """
    if _text(obj.get("reason")) != PULLED_REASON or _text(obj.get("type"), "Normal") != "Normal":
        raise NotPulled(NOT_PULLED)
    source = _mapping(obj.get("source"))
    if KUBELET not in (_text(source.get("component")), _text(obj.get("reportingComponent"))):
        raise NotPulled(NOT_KUBELET)
    meta = _mapping(obj.get("metadata"))
    involved = _mapping(obj.get("involvedObject"))
    namespace = _text(meta.get("namespace"))
    if _text(involved.get("kind")) != "Pod" or _text(involved.get("namespace"), namespace) != namespace:
        raise NotPulled(NOT_A_POD)
    pod = _text(involved.get("name"))
    node = _text(source.get("host")) or _text(obj.get("reportingInstance"))
    if not pod or not namespace:
        raise NotPulled(NOT_A_POD)
    if not node:
        raise NotPulled(NO_NODE)
    count = obj.get("count", 1)
    if count is None:
        count = 1
    if not isinstance(count, int) or isinstance(count, bool) or not 0 < count < MAX_COUNT:
        raise NotPulled(BAD_COUNT)
    first, last = _times(obj, meta)
    message = parse_message(_text(obj.get("message")))
    return PulledEvent(  # the strings thousands of events repeat are kept once
        uid=_text(meta.get("uid")) or f"{namespace}/{_text(meta.get('name'))}",
        namespace=sys.intern(namespace),
        pod=pod,
        pod_uid=_text(involved.get("uid")),
        container=sys.intern(_text(involved.get("fieldPath"))),
        node=sys.intern(node),
        count=count,
        first=first,
        last=last,
        message=message,
    )


def _times(obj: Mapping[str, Any], meta: Mapping[str, Any]) -> tuple[datetime, datetime]:
    created = _time(meta.get("creationTimestamp"))
    first = _time(obj.get("firstTimestamp")) or _time(obj.get("eventTime")) or created
    last = _time(obj.get("lastTimestamp")) or first
    if first is None or last is None:
        raise NotPulled(BAD_TIME)
    if created is not None:
        first = max(first, created - MAX_CLOCK_SKEW)
    return first, max(last, first)


def _time(value: Any) -> datetime | None:
    """RFC 3339 with a zone (metav1.Time and MicroTime); anything else is None."""
    if not isinstance(value, str) or not 20 <= len(value) <= 40 or value[4:5] != "-" or value[10:11] != "T":
        return None
    try:
        found = datetime.fromisoformat(value)
    except ValueError:
        return None
    return found if found.tzinfo is not None else None


def _text(value: Any, default: str = "") -> str:
    if value is None:
        return default
    return value if isinstance(value, str) else ""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
