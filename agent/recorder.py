"""The Event recorder: the Events the agent posts on the KubernetesImagePuller, what it changed
and what is wrong with the puller.

The agent posts `events.k8s.io/v1` Events regarding the CR: `Normal` `ImagesUpdated` when
it writes the list (naming the entries added and removed), `Warning` when the puller's
DaemonSet is missing or out of sync past the grace period. `oc describe
kubernetesimagepuller` shows them under Events, and `oc get events` lists them.

Repeated identical Events are aggregated the way client-go's events library does it
(k8s.io/client-go `tools/events/event_broadcaster.go`, `recordToSink`): the first is created;
a repeat patches the same Event's `series` (`count` 2, 3...; `lastObservedTime`) instead of
creating another; if that Event is gone (404: the API server keeps Events an hour by
default, `--event-ttl`), a new one is created. The series live in the process, as in
client-go: `serve` aggregates across cycles, each `once` run starts afresh. Stated
differences from client-go: "identical" includes the note (client-go's key leaves it out,
and ours names the entries changed: two different changes are two Events, not a count);
the regarding reference carries no resourceVersion (each write changes it, which would
make every repeat a new Event); a repeat is patched at once rather than every 30 minutes.

Posting an Event never decides anything: `agent.cycle` posts after the fact, and a failure
(RBAC without `create`/`patch` on events, say) is the caller's to log. What this module is
not: it reads no Events (the kubelet's `Pulled` events are another module's).
"""

from __future__ import annotations

import os
import socket
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from agent.kube import kinds
from agent.kube.client import JSON, Kube
from agent.kube.errors import NotFound
from agent.puller import PullerCR
from agent.version import EVENT_CONTROLLER

__all__ = ["EventSeries", "NORMAL", "WARNING", "post_event", "reporting_instance"]

NORMAL, WARNING = "Normal", "Warning"
NOTE_MAX_BYTES = 1024  # the API server's limit (k8s pkg/apis/core/validation/events.go NoteLengthLimit)
INSTANCE_MAX = 128  # ReportingInstanceLengthLimit, same file
NAME_MAX = 253
MAX_SERIES = 256  # series remembered; the oldest are forgotten (a new Event starts for them)
SERIES_WINDOW = timedelta(hours=1)  # the API server's default --event-ttl: older Events are gone anyway


@dataclass
class _Sent:
    name: str
    count: int
    last: datetime


class EventSeries:
    """The Events this process posted, by what makes two Events identical."""

    def __init__(self) -> None:
        self._sent: OrderedDict[tuple[str, ...], _Sent] = OrderedDict()
        self._last_stamp = 0  # the last Event name's stamp: names never repeat in a process

    def stamp(self, now: datetime) -> int:
        """The number a new Event's name ends with: `now` in Unix nanoseconds, as client-go's
        GenerateEventName, or one more than the last when that is not later. Events posted
        in one cycle share its `now`: their names must still differ (a 409 otherwise)."""
        self._last_stamp = max(int(now.timestamp() * 1e9), self._last_stamp + 1)
        return self._last_stamp

    def __len__(self) -> int:
        return len(self._sent)

    def repeat_of(self, key: tuple[str, ...], now: datetime) -> _Sent | None:
        sent = self._sent.get(key)
        if sent is None or now - sent.last > SERIES_WINDOW:
            return None
        return sent

    def remember(self, key: tuple[str, ...], sent: _Sent) -> None:
        self._sent[key] = sent
        self._sent.move_to_end(key)
        while len(self._sent) > MAX_SERIES:
            self._sent.popitem(last=False)


def reporting_instance() -> str:
    """Who posts: `prepull-agent-<pod name>` (POD_NAME, which the Deployment sets; else the
    host name, which is the pod's name in a pod), as client-go names its recorders."""
    return f"prepull-agent-{os.environ.get('POD_NAME') or socket.gethostname()}"[:INSTANCE_MAX]


def post_event(
    kube: Kube,
    series: EventSeries,
    puller: PullerCR,
    *,
    type: str,
    reason: str,
    action: str,
    note: str,
    now: datetime,
    instance: str,
) -> int:
    """Post one Event regarding `puller`, or count a repeat of an identical one; returns the
    count of the series (1 for a new Event). Raises `KubeError` when the API refuses."""
    note = _clip(note)
    key = (puller.namespace, puller.uid or puller.name, type, reason, action, note)
    sent = series.repeat_of(key, now)
    if sent is not None:
        body: JSON = {"series": {"count": sent.count + 1, "lastObservedTime": _micro(now)}}
        try:
            kube.patch_merge(kinds.EVENT.path(namespace=puller.namespace, name=sent.name), body)
        except NotFound:  # expired: start again
            sent = None
        else:
            series.remember(key, _Sent(sent.name, sent.count + 1, now))
            return sent.count + 1
    created = kube.create(
        kinds.EVENT.path(namespace=puller.namespace),
        _event(puller, type=type, reason=reason, action=action, note=note, now=now, instance=instance,
               stamp=series.stamp(now)),
    )
    name = str(created.get("metadata", {}).get("name", ""))
    series.remember(key, _Sent(name, 1, now))
    return 1


def _event(
    puller: PullerCR, *, type: str, reason: str, action: str, note: str, now: datetime, instance: str, stamp: int
) -> JSON:
    suffix = f".{stamp:x}"  # client-go's GenerateEventName: <regarding>.<unix nanos in hex>
    regarding: JSON = {
        "apiVersion": kinds.IMAGE_PULLER.api_version,
        "kind": kinds.IMAGE_PULLER.kind,
        "namespace": puller.namespace,
        "name": puller.name,
    }
    if puller.uid:
        regarding["uid"] = puller.uid
    return {
        "apiVersion": kinds.EVENT.api_version,
        "kind": kinds.EVENT.kind,
        "metadata": {"name": puller.name[: NAME_MAX - len(suffix)] + suffix, "namespace": puller.namespace},
        "eventTime": _micro(now),
        "reportingController": EVENT_CONTROLLER,
        "reportingInstance": instance,
        "action": action,
        "reason": reason,
        "type": type,
        "note": note,
        "regarding": regarding,
    }


def _micro(when: datetime) -> str:
    """metav1.MicroTime: RFC 3339 with microseconds, in UTC."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _clip(note: str) -> str:
    raw = note.encode()
    if len(raw) <= NOTE_MAX_BYTES:
        return note
    return raw[: NOTE_MAX_BYTES - 3].decode(errors="ignore") + "..."
