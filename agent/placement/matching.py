"""Can a pod with this `Placement` run on this node, and if not, why.

The checks are the scheduler's filters that depend only on the pod and the node (not on
what else runs there): NodeAffinity (the pod's nodeSelector and required node affinity,
k8s.io/component-helpers `nodeaffinity` `GetRequiredNodeAffinity(pod).Match`),
TaintToleration (every NoSchedule and NoExecute taint tolerated; PreferNoSchedule only
scores), NodeUnschedulable (a cordoned node takes only pods that tolerate
`node.kubernetes.io/unschedulable:NoSchedule`), and the extended-resource part of
NodeResourcesFit (a requested resource must be allocatable; free capacity is not looked
at, since pods come and go). The DaemonSet controller's `predicates` are the same checks
(k8s.io/kubernetes `pkg/controller/daemon/daemon_controller.go`).

Node state is left out by default: the taints the node lifecycle controller and cloud
providers put on a node while it is not ready, unreachable, under pressure, cordoned or
being initialised, and `spec.unschedulable`, say where a pod may start *this minute*, not
which pool the node belongs to. A GPU workbench still belongs on the GPU pool while its
only node is drained for an upgrade, and dropping its images then would make the puller
pull them again when the node returns. `include_transient=True` checks them too, as the
scheduler would right now (the DaemonSet's own tolerations then keep cordoned and
not-ready nodes, see `agent.placement.workloads.DAEMONSET_TOLERATIONS`).

Pure: no API calls, no logging.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from agent.model import NodeInfo, Taint
from agent.placement.values import BLOCKING_EFFECTS, NO_SCHEDULE, Placement

__all__ = [
    "TRANSIENT_TAINT_KEYS",
    "UNSCHEDULABLE_TAINT",
    "Misfit",
    "MisfitKind",
    "can_run_on",
    "matching_nodes",
    "misfit",
    "pool_misfit",
]

# k8s.io/api core/v1 `well_known_taints.go` (node conditions, cordoning, non-graceful
# shutdown) and k8s.io/cloud-provider `api/well_known_taints.go`.
TRANSIENT_TAINT_KEYS = frozenset(
    {
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
        "node.kubernetes.io/unschedulable",
        "node.kubernetes.io/memory-pressure",
        "node.kubernetes.io/disk-pressure",
        "node.kubernetes.io/pid-pressure",
        "node.kubernetes.io/network-unavailable",
        "node.kubernetes.io/out-of-service",
        "node.cloudprovider.kubernetes.io/uninitialized",
        "node.cloudprovider.kubernetes.io/shutdown",
    }
)
# What the scheduler's NodeUnschedulable filter checks for a cordoned node
# (k8s.io/kubernetes `pkg/scheduler/framework/plugins/nodeunschedulable`).
UNSCHEDULABLE_TAINT = Taint("node.kubernetes.io/unschedulable", "", NO_SCHEDULE)


class MisfitKind(StrEnum):
    RESOURCE = "resource"  # an extended resource the pod requests is not allocatable
    ONE_OF = "one-of"  # none of the resources an accelerator hint names is allocatable
    LABEL = "label"  # a nodeSelector label is missing or differs
    AFFINITY = "affinity"  # no required node affinity term matches
    TAINT = "taint"  # a NoSchedule or NoExecute taint is not tolerated
    CORDONED = "cordoned"  # spec.unschedulable, and the pod does not tolerate it


_NODE_TEXT = {
    MisfitKind.RESOURCE: "no {} allocatable",
    MisfitKind.ONE_OF: "no {} allocatable",
    MisfitKind.LABEL: "label {} not on the node",
    MisfitKind.AFFINITY: "required node affinity not met{}",
    MisfitKind.TAINT: "taint {} not tolerated",
    MisfitKind.CORDONED: "cordoned (spec.unschedulable){}",
}
_POOL_TEXT = {
    MisfitKind.RESOURCE: "no node of this pool has {}",
    MisfitKind.ONE_OF: "no node of this pool has {}",
    MisfitKind.LABEL: "no node of this pool has label {}",
    MisfitKind.AFFINITY: "no node of this pool meets the required node affinity{}",
    MisfitKind.TAINT: "taint {} not tolerated",
    MisfitKind.CORDONED: "every node of this pool is cordoned{}",
}


@dataclass(frozen=True, slots=True, order=True)
class Misfit:
    """Why a pod cannot run on a node: the first check that failed, and what it was about."""

    kind: MisfitKind
    subject: str = ""

    def __str__(self) -> str:
        return _NODE_TEXT[self.kind].format(self.subject)

    def pool_text(self) -> str:
        """The reason when every node of a pool fails this way."""
        return _POOL_TEXT[self.kind].format(self.subject)


def _untolerated(placement: Placement, taints: Iterable[Taint], include_transient: bool) -> Taint | None:
    for taint in taints:
        if taint.effect not in BLOCKING_EFFECTS:
            continue
        if not include_transient and taint.key in TRANSIENT_TAINT_KEYS:
            continue
        if not any(t.tolerates(taint) for t in placement.tolerations):
            return taint
    return None


def misfit(placement: Placement, node: NodeInfo, *, include_transient: bool = False) -> Misfit | None:
    """None when a pod with `placement` can run on `node`, else the first reason it cannot
    (checked in this order: extended resources, accelerator hint, nodeSelector, required
    node affinity, taints, cordoning). See the module docstring for `include_transient`."""
    missing = sorted(placement.resources - node.extended)
    if missing:
        return Misfit(MisfitKind.RESOURCE, ", ".join(missing))
    if placement.one_of_resources and placement.one_of_resources.isdisjoint(node.extended):
        return Misfit(MisfitKind.ONE_OF, " or ".join(sorted(placement.one_of_resources)))
    labels = node.labels
    for key, value in placement.node_selector:
        if labels.get(key) != value:
            return Misfit(MisfitKind.LABEL, f"{key}={value}")
    affinity = placement.affinity
    if affinity is not None and not affinity.matches(node.name, labels):
        problems = [term.problem for term in affinity.terms if term.problem]
        return Misfit(MisfitKind.AFFINITY, f" ({problems[0]})" if problems else "")
    taint = _untolerated(placement, node.taints, include_transient)
    if taint is not None:
        return Misfit(MisfitKind.TAINT, str(taint))
    cordon = (UNSCHEDULABLE_TAINT,)
    if include_transient and node.unschedulable and _untolerated(placement, cordon, True) is not None:
        return Misfit(MisfitKind.CORDONED)
    return None


def can_run_on(placement: Placement, node: NodeInfo, *, include_transient: bool = False) -> bool:
    return misfit(placement, node, include_transient=include_transient) is None


def matching_nodes(
    placement: Placement, nodes: Iterable[NodeInfo], *, include_transient: bool = False
) -> tuple[NodeInfo, ...]:
    """The nodes a pod with `placement` can run on, in the given order."""
    return tuple(n for n in nodes if misfit(placement, n, include_transient=include_transient) is None)


def pool_misfit(placement: Placement, nodes: Sequence[NodeInfo], *, include_transient: bool = False) -> str | None:
    """None when a pod with `placement` can run on at least one of `nodes`; else why not, for
    a plan's explanation: "no node of this pool has nvidia.com/gpu" when every node fails
    the same way, else the most frequent reasons with their counts."""
    if not nodes:
        return "the pool has no nodes"
    counts: Counter[Misfit] = Counter()
    for node in nodes:
        found = misfit(placement, node, include_transient=include_transient)
        if found is None:
            return None
        counts[found] += 1
    if len(counts) == 1:
        return next(iter(counts)).pool_text()
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    parts = [f"{reason} on {count} node{'s' if count > 1 else ''}" for reason, count in ranked[:3]]
    if len(ranked) > 3:
        parts.append(f"{len(ranked) - 3} other reasons")
    return "; ".join(parts)
