"""What the puller really did: its Deployment and DaemonSet, and the listed images on the nodes.

Pure. The cycle GETs the puller's Deployment and DaemonSet by the names the CR gives
(`agent.apply.read_workloads`); this module reads them and judges, for one target:

- **Sync.** The puller never updates its DaemonSet in place: on every change of the list it
  deletes it and creates a new one, one container per entry, named by the entry, plus its
  `copy-sleep` init container (che-incubator/kubernetes-image-puller `utils/clusterutils.go`).
  The DaemonSet is *in sync* when its containers are exactly the entries the puller reads
  from `spec.images` (`agent.puller.puller_view`), *out of sync* when not, *missing* when it
  does not exist, *unknown* when it could not be read.
- **Since when.** In sync: since the DaemonSet was created (it holds the same containers
  all its life). Missing or out of sync: since the agent first saw it so in this process
  (`Record`, kept by `serve` between cycles), else since the later of when `spec.images`
  last changed (managedFields) and when the DaemonSet was created, both at most then; with
  neither known, "unknown". The duration is thereby never longer than the truth, so a
  warning is never early.
- **Stalled.** Missing or out of sync for longer than `puller.sync_grace_seconds` is a
  warning with what to do (`PullerStatus.stalled`, `PullerStatus.hint`).
- **Nodes.** Desired, scheduled and ready from the DaemonSet's status.
- **Degraded.** The CR's `Degraded` condition where it has conditions (no stored version of
  the operator writes any; see `agent.puller._conditions`).
- **Presence** (`presence`). For each listed image, on how many of the target's nodes
  `Node.status.images` names it. A node lists only its 50 largest images: an image that is
  not among them is *missing* only when the list is shorter than 50, or when the image is
  known to be larger than the smallest image listed; otherwise *unknown*, never missing.

What this is not: it reads nothing from the API, writes nothing, and decides nothing about
the list (`agent.plan` does).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from agent.model import NodeInfo
from agent.puller import PullerCR, parse_time, puller_view
from agent.refs import InvalidReference, parse_reference
from agent.sizes import ImageSizes

__all__ = [
    "DaemonSetView",
    "DeploymentView",
    "ImagePresence",
    "PullerStatus",
    "Record",
    "Seen",
    "Sync",
    "judge",
    "presence",
    "read_daemonset",
    "read_deployment",
]

COPY_SLEEP = "copy-sleep"  # the puller's init container; its image is the puller's own
MAX_CONTAINERS = 1024  # containers read from one DaemonSet (the API server allows more; no list needs them)
MAX_NAMES_SHOWN = 10  # entry names in one message


class Sync(StrEnum):
    IN_SYNC = "in-sync"
    OUT_OF_SYNC = "out-of-sync"
    MISSING = "missing"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class DeploymentView:
    """The puller's Deployment, as far as the report needs it."""

    name: str
    replicas: int  # spec.replicas (1 when unset, as the API defaults it)
    ready: int  # status.readyReplicas


@dataclass(frozen=True, slots=True)
class DaemonSetView:
    """The puller's DaemonSet: the entries it runs and how far it got on the nodes."""

    name: str
    created: datetime | None  # metadata.creationTimestamp
    containers: Mapping[str, str]  # container name -> image: the entries it caches
    desired: int  # status.desiredNumberScheduled
    scheduled: int  # status.currentNumberScheduled
    ready: int  # status.numberReady
    puller_image: str = ""  # the copy-sleep init container's image


@dataclass(frozen=True, slots=True)
class Seen:
    """What one cycle read of a target's puller workloads. `*_error` says why one could not
    be read ("" when it was read, or does not exist: then the view is None)."""

    deployment: DeploymentView | None = None
    daemonset: DaemonSetView | None = None
    deployment_error: str = ""
    daemonset_error: str = ""


@dataclass(frozen=True, slots=True)
class Record:
    """What `serve` remembers of one target between cycles."""

    key: tuple[object, ...]  # the sync state and the entries it was judged against
    since: datetime | None
    first_seen: datetime  # when this process first saw the target in that state
    seen_at: datetime  # the cycle that saw it last


@dataclass(frozen=True, slots=True)
class ImagePresence:
    """One listed image on the target's nodes."""

    name: str  # the entry name
    image: str  # the entry's image, as listed
    present: int
    missing: int
    unknown: int  # the node lists its 50 largest images and this one may be smaller

    @property
    def nodes(self) -> int:
        return self.present + self.missing + self.unknown

    def __str__(self) -> str:
        text = f"{self.name}: on {self.present}/{self.nodes} nodes"
        return text + (f" ({self.unknown} unknown)" if self.unknown else "")


@dataclass(frozen=True, slots=True)
class PullerStatus:
    """The puller's state for one target, as the report, the metrics and the Events say it."""

    namespace: str
    deployment_name: str
    daemonset_name: str
    sync: Sync
    since: datetime | None  # in that state since (None: unknown)
    first_seen: datetime  # when this process first saw it so (the grace period's start when `since` is unknown)
    deployment: DeploymentView | None = None
    daemonset: DaemonSetView | None = None
    error: str = ""  # why the state is unknown (the DaemonSet could not be read)
    deployment_error: str = ""  # why the Deployment could not be read
    not_in_daemonset: tuple[str, ...] = ()  # entries of the list the DaemonSet lacks (or runs another image of)
    not_in_list: tuple[str, ...] = ()  # containers of the DaemonSet the list does not have
    degraded: str = ""  # the CR's Degraded condition, "reason: message", when it is True
    has_conditions: bool = False  # whether the CR has status.conditions at all
    stalled: str = ""  # the warning, when missing or out of sync past the grace period
    hint: str = ""  # what the administrator can do about it

    def stalled_for(self, now: datetime) -> float:
        """Seconds the DaemonSet has been missing or out of sync (0 when in sync or unknown)."""
        if self.sync not in (Sync.MISSING, Sync.OUT_OF_SYNC):
            return 0.0
        start = self.since or self.first_seen
        return max((now - start).total_seconds(), 0.0)


# -- reading the workloads ---------------------------------------------------------------------


def read_deployment(obj: Mapping[str, Any]) -> DeploymentView:
    spec, status = _mapping(obj.get("spec")), _mapping(obj.get("status"))
    replicas = spec.get("replicas")
    return DeploymentView(
        name=_str(_mapping(obj.get("metadata")).get("name")),
        replicas=_count(replicas) if _is_count(replicas) else 1,
        ready=_count(status.get("readyReplicas")),
    )


def read_daemonset(obj: Mapping[str, Any]) -> DaemonSetView:
    metadata, status = _mapping(obj.get("metadata")), _mapping(obj.get("status"))
    pod = _mapping(_mapping(_mapping(obj.get("spec")).get("template")).get("spec"))
    containers: dict[str, str] = {}
    for container in _list(pod.get("containers"))[:MAX_CONTAINERS]:
        c = _mapping(container)
        if isinstance(c.get("name"), str):
            containers[c["name"]] = _str(c.get("image"))
    init = [_mapping(c) for c in _list(pod.get("initContainers"))]
    return DaemonSetView(
        name=_str(metadata.get("name")),
        created=parse_time(metadata.get("creationTimestamp")),
        containers=containers,
        desired=_count(status.get("desiredNumberScheduled")),
        scheduled=_count(status.get("currentNumberScheduled")),
        ready=_count(status.get("numberReady")),
        puller_image=next((_str(c.get("image")) for c in init if c.get("name") == COPY_SLEEP), ""),
    )


# -- judging -------------------------------------------------------------------------------------


def judge(
    puller: PullerCR, seen: Seen, *, previous: Record | None, now: datetime, grace: timedelta
) -> tuple[PullerStatus, Record]:
    """The puller's state for `puller` (the CR as read this cycle, before any write), and
    what to remember of it for the next cycle."""
    expected = puller_view(puller.images)
    sync, lacking, extra = _compare(expected, seen)
    key = (sync.value, tuple(sorted(expected.items())))
    same = previous is not None and previous.key == key
    first_seen = previous.first_seen if same and previous is not None else now
    if sync is Sync.IN_SYNC and seen.daemonset is not None:
        since = seen.daemonset.created
    elif same and previous is not None:
        since = previous.since
    elif sync is Sync.UNKNOWN:
        since = None
    else:
        since = _start(puller, seen, floor=previous.seen_at if previous is not None else None)
    status = PullerStatus(
        namespace=puller.namespace,
        deployment_name=puller.deployment_name,
        daemonset_name=puller.daemonset_name,
        sync=sync,
        since=since,
        first_seen=first_seen,
        deployment=seen.deployment,
        daemonset=seen.daemonset,
        error=seen.daemonset_error if sync is Sync.UNKNOWN else "",
        deployment_error=seen.deployment_error,
        not_in_daemonset=lacking,
        not_in_list=extra,
        degraded=_degraded(puller),
        has_conditions=bool(puller.conditions),
    )
    status = _with_warning(status, puller, now=now, grace=grace)
    return status, Record(key, since, first_seen, now)


def _compare(expected: Mapping[str, str], seen: Seen) -> tuple[Sync, tuple[str, ...], tuple[str, ...]]:
    if seen.daemonset_error:
        return Sync.UNKNOWN, (), ()
    if seen.daemonset is None:
        return Sync.MISSING, tuple(sorted(expected)), ()
    running = seen.daemonset.containers
    lacking = tuple(sorted(name for name, image in expected.items() if running.get(name) != image))
    extra = tuple(sorted(name for name in running if name not in expected))
    return (Sync.OUT_OF_SYNC if lacking or extra else Sync.IN_SYNC), lacking, extra


def _start(puller: PullerCR, seen: Seen, *, floor: datetime | None) -> datetime | None:
    """At the latest, when a missing or out-of-sync DaemonSet became so: after the list's
    last change, after the DaemonSet's creation, and after the last cycle that saw it
    otherwise (`floor`). None when none of these is known."""
    known = [t for t in (puller.images_set, seen.daemonset.created if seen.daemonset else None, floor) if t]
    return max(known) if known else None


def _degraded(puller: PullerCR) -> str:
    for condition in puller.conditions:
        if condition.type == "Degraded" and condition.status == "True":
            return ": ".join(p for p in (condition.reason, condition.message) if p) or "Degraded"
    return ""


def _with_warning(status: PullerStatus, puller: PullerCR, *, now: datetime, grace: timedelta) -> PullerStatus:
    """The warning and what to do, once the DaemonSet has been missing or out of sync for
    longer than `grace`."""
    if status.sync not in (Sync.MISSING, Sync.OUT_OF_SYNC):
        return status
    start = status.since or status.first_seen
    if now - start <= grace:
        return status
    where = f"{puller.namespace}/{puller.daemonset_name}"
    # No duration in the text: it is the same every cycle while the state lasts, so the
    # Warning Event repeats identically and is counted rather than posted again.
    since = f"since {_when(status.since)}" if status.since else f"first seen so {_when(status.first_seen)}"
    past = f"past the {grace.total_seconds() / 60:g} min grace period"
    if status.sync is Sync.MISSING:
        stalled = (
            f"the puller's DaemonSet {where} does not exist ({since}, {past}): no listed image is kept on the "
            "nodes, and the kubelet may remove them"
        )
    else:
        stalled = (
            f"the puller's DaemonSet {where} does not hold the entries of spec.images ({since}, {past}; "
            f"{_difference(status)}): the nodes cache an older list"
        )
    return replace(status, stalled=stalled, hint=_hint(status, puller))


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _difference(status: PullerStatus) -> str:
    parts = []
    if status.not_in_daemonset:
        parts.append("not in the DaemonSet: " + _names(status.not_in_daemonset))
    if status.not_in_list:
        parts.append("not in the list: " + _names(status.not_in_list))
    return "; ".join(parts)


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:MAX_NAMES_SHOWN])
    return shown + (f" and {len(names) - MAX_NAMES_SHOWN} more" if len(names) > MAX_NAMES_SHOWN else "")


def _hint(status: PullerStatus, puller: PullerCR) -> str:
    ns, deployment = puller.namespace, puller.deployment_name
    logs = f"oc -n {ns} logs deployment/{deployment}"
    if status.deployment is None and status.deployment_error:
        return f"{status.deployment_error}; see {logs}"
    if status.deployment is None:
        return (
            f"the puller's Deployment {ns}/{deployment} does not exist either: the Kubernetes Image Puller "
            "operator has not deployed the puller (is it installed and running, and does spec.deploymentName "
            "name its Deployment?)"
        )
    if status.deployment.ready < 1:
        return f"the puller is not running (0/{status.deployment.replicas} ready): see {logs} --previous"
    if status.sync is Sync.MISSING:
        return (
            "the puller runs but its DaemonSet is gone: a puller pod that stops deletes the DaemonSet by name, "
            "which can remove the one its successor just created (an upstream race); the puller recreates it at "
            f"its next refresh (spec.cachingIntervalHours), or now: oc -n {ns} delete pod "
            "-l app=kubernetes-image-puller"
        )
    return (
        f"the puller has not recreated its DaemonSet since spec.images changed: see {logs}, and check that "
        f"the operator copied the list: oc -n {ns} get configmap {puller.config_map_name} "
        "-o jsonpath='{.data.IMAGES}'"
    )


# -- presence on the nodes -----------------------------------------------------------------------


def presence(
    entries: Mapping[str, str], nodes: Sequence[NodeInfo], sizes: ImageSizes
) -> tuple[ImagePresence, ...]:
    """For each entry (name -> image, as the puller reads the list), on how many of `nodes`
    the image is present, missing, or unknown (see the module docstring)."""
    found = []
    for name, image in entries.items():
        counts = {"present": 0, "missing": 0, "unknown": 0}
        try:
            ref = parse_reference(image)
        except InvalidReference:
            counts["unknown"] = len(nodes)
        else:
            report = sizes.of(ref)
            text, repository = str(ref), ref.name
            for node in nodes:
                counts[_on_node(node, text, repository, report.size if report else None)] += 1
        found.append(ImagePresence(name, image, **counts))
    return tuple(found)


def _on_node(node: NodeInfo, image: str, repository: str, size: int | None) -> str:
    held = node.images
    if held is None:
        return "unknown"
    if image in held.names:
        return "present"
    if repository in held.clipped:  # an entry of the repository lists only some of its names
        return "unknown"
    if held.complete or (size is not None and size > held.smallest):
        return "missing"
    return "unknown"


# -- small helpers -------------------------------------------------------------------------------


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _count(value: Any) -> int:
    return value if _is_count(value) else 0
