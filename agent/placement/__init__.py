"""Placement: which nodes a pod could be scheduled on, as the Kubernetes scheduler decides.

What this package is for: planning one puller list per node pool. For each target it tells
the nodes the puller's DaemonSet runs on (`puller_placement`), for each workload the nodes
its pod could run on (`read_pod_scheduling(...).placement()`, `merge_kserve` for
InferenceServices, `hint_placement` for offered images nobody uses yet), whether and why
not (`misfit`, `pool_misfit`), and, for nodes no target covers, the node groups they form
and a KubernetesImagePuller that would cover each (`uncovered_groups`, `suggest_puller`).

* `values`: the frozen, hashable values (`Placement`, `Toleration`, `NodeAffinity`...);
* `reading`: wire dicts and the puller CR's JSON strings into values, bounded, with
  `PlacementError` naming the object and field;
* `matching`: the scheduler's node filters, with a reason when a node does not fit;
* `workloads`: the DaemonSet controller's tolerations, KServe's runtime merge, hints;
* `groups`: node groups and the suggested puller.

What it is not: it makes no API calls, logs nothing, reads no settings, and decides nothing
about images. Wiring placements into the plan is the planner's job.
"""

from agent.placement.groups import NodeGroup, group_nodes, suggest_puller, uncovered_groups
from agent.placement.matching import (
    TRANSIENT_TAINT_KEYS,
    UNSCHEDULABLE_TAINT,
    Misfit,
    MisfitKind,
    can_run_on,
    matching_nodes,
    misfit,
    pool_misfit,
)
from agent.placement.reading import (
    MAX_CONTAINERS,
    MAX_REQUIREMENTS,
    MAX_RESOURCES,
    MAX_SELECTOR_LABELS,
    MAX_TERMS,
    MAX_TOLERATIONS,
    MAX_VALUES,
    PlacementError,
    is_extended_resource,
    quantity_is_positive,
    read_affinity_json,
    read_node_affinity,
    read_node_selector,
    read_pod_scheduling,
    read_resources,
    read_tolerations,
    read_tolerations_json,
)
from agent.placement.values import (
    BLOCKING_EFFECTS,
    NodeAffinity,
    Placement,
    PodScheduling,
    Requirement,
    Resources,
    Term,
    Toleration,
)
from agent.placement.workloads import (
    DAEMONSET_TOLERATIONS,
    KSERVE_CONTAINER,
    MAX_HINTS,
    RECOMMENDED_ACCELERATORS,
    TOLERATE_EVERYTHING,
    TRANSFORMER_CONTAINER,
    WORKER_CONTAINER,
    hint_placement,
    merge_kserve,
    merge_kserve_worker,
    puller_placement,
)

__all__ = [
    "BLOCKING_EFFECTS",
    "DAEMONSET_TOLERATIONS",
    "KSERVE_CONTAINER",
    "MAX_CONTAINERS",
    "MAX_HINTS",
    "MAX_REQUIREMENTS",
    "MAX_RESOURCES",
    "MAX_SELECTOR_LABELS",
    "MAX_TERMS",
    "MAX_TOLERATIONS",
    "MAX_VALUES",
    "RECOMMENDED_ACCELERATORS",
    "TOLERATE_EVERYTHING",
    "TRANSFORMER_CONTAINER",
    "TRANSIENT_TAINT_KEYS",
    "UNSCHEDULABLE_TAINT",
    "WORKER_CONTAINER",
    "Misfit",
    "MisfitKind",
    "NodeAffinity",
    "NodeGroup",
    "Placement",
    "PlacementError",
    "PodScheduling",
    "Requirement",
    "Resources",
    "Term",
    "Toleration",
    "can_run_on",
    "group_nodes",
    "hint_placement",
    "is_extended_resource",
    "matching_nodes",
    "merge_kserve",
    "merge_kserve_worker",
    "misfit",
    "pool_misfit",
    "puller_placement",
    "quantity_is_positive",
    "read_affinity_json",
    "read_node_affinity",
    "read_node_selector",
    "read_pod_scheduling",
    "read_resources",
    "read_tolerations",
    "read_tolerations_json",
    "suggest_puller",
    "uncovered_groups",
]
