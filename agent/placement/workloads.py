"""The placements of the workloads the agent plans for, each built as its controller builds
the pod: the puller's DaemonSet, a KServe component merged with its serving runtime, and an
offered image nobody uses yet (placed by its accelerator hint).

Pure: no API calls, no logging.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from agent.placement.reading import PlacementError, is_extended_resource
from agent.placement.values import (
    EXISTS,
    NO_EXECUTE,
    NO_SCHEDULE,
    NodeAffinity,
    Placement,
    PodScheduling,
    Resources,
    Toleration,
)

__all__ = [
    "DAEMONSET_TOLERATIONS",
    "KSERVE_CONTAINER",
    "MAX_HINTS",
    "RECOMMENDED_ACCELERATORS",
    "TOLERATE_EVERYTHING",
    "TRANSFORMER_CONTAINER",
    "WORKER_CONTAINER",
    "hint_placement",
    "merge_kserve",
    "merge_kserve_worker",
    "puller_placement",
]

# What the DaemonSet controller adds to every DaemonSet pod: k8s.io/kubernetes
# `pkg/controller/daemon/util/daemonset_util.go` `AddOrUpdateDaemonPodTolerations`
# (called from `NewPod` in `pkg/controller/daemon/daemon_controller.go`, so the
# controller's own node checks see them too). network-unavailable is added only to
# hostNetwork pods, which the puller's are not.
DAEMONSET_TOLERATIONS = (
    Toleration("node.kubernetes.io/not-ready", EXISTS, "", NO_EXECUTE),
    Toleration("node.kubernetes.io/unreachable", EXISTS, "", NO_EXECUTE),
    Toleration("node.kubernetes.io/disk-pressure", EXISTS, "", NO_SCHEDULE),
    Toleration("node.kubernetes.io/memory-pressure", EXISTS, "", NO_SCHEDULE),
    Toleration("node.kubernetes.io/pid-pressure", EXISTS, "", NO_SCHEDULE),
    Toleration("node.kubernetes.io/unschedulable", EXISTS, "", NO_SCHEDULE),
)


def puller_placement(
    *, node_selector: Mapping[str, str], affinity: NodeAffinity | None, tolerations: Iterable[Toleration]
) -> Placement:
    """Where the puller's DaemonSet runs: the CR's `spec.nodeSelector`, `spec.affinity` and
    `spec.tolerations` (the puller copies them into its DaemonSet's pod template) plus the
    DaemonSet controller's own tolerations. A cordoned node therefore still gets a puller
    pod, and holds every image of the list."""
    return Placement(
        node_selector=tuple(node_selector.items()),
        affinity=affinity,
        tolerations=(*tolerations, *DAEMONSET_TOLERATIONS),
    )


# --- KServe ------------------------------------------------------------------------------

# kserve/kserve `pkg/constants`: InferenceServiceContainerName, TransformerContainerName.
KSERVE_CONTAINER = "kserve-container"
TRANSFORMER_CONTAINER = "transformer-container"
WORKER_CONTAINER = "worker-container"


def _first_by_name(containers: Iterable[tuple[str, Resources]]) -> dict[str, Resources]:
    found: dict[str, Resources] = {}
    for name, resources in containers:
        found.setdefault(name, resources)  # KServe's GetContainerIndexByName takes the first
    return found


def merge_kserve(component: PodScheduling, runtime: PodScheduling | None) -> Placement:
    """The placement of an InferenceService component's pod, merged with its runtime's the
    way KServe builds it (kserve/kserve `pkg/controller/v1beta1/inferenceservice/utils/
    utils.go` `MergeServingRuntimeAndInferenceServiceSpecs`, `MergePodSpec`,
    `MergeRuntimeContainers`, and `components/predictor.go` `buildPodSpec`).

    KServe strategic-merge-patches the component's pod spec onto the runtime's
    `nodeSelector`, `affinity` and `tolerations`, so:

    * `nodeSelector` merges key by key, the component winning on a key both set;
    * `tolerations` is replaced: a component that lists any keeps only its own (PodSpec's
      `tolerations` has no patch strategy, `+listType=atomic` in k8s.io/api core/v1
      `types.go`; an empty list is omitted and keeps the runtime's);
    * the required node affinity is the component's when it sets one (its
      `nodeSelectorTerms` list is atomic too), else the runtime's;
    * the runtime's `kserve-container` has the component's `model` container patched onto
      it: requests and limits merge key by key (where the dashboard puts
      `nvidia.com/gpu: 1`); a `transformer-container` in both is merged the same way; the
      runtime's other containers and the component's other containers are added as they
      are. Every container's extended resources are needed.

    Without a runtime (a transformer, an explainer, a custom predictor) the component's
    own spec is the pod's.
    """
    if runtime is None:
        return component.placement()
    runtime_containers = _first_by_name(runtime.containers)
    component_containers = _first_by_name(component.containers)
    main = runtime_containers.get(KSERVE_CONTAINER, Resources()).overlay(component.model or Resources())
    transformer = runtime_containers.get(TRANSFORMER_CONTAINER, Resources()).overlay(
        component_containers.get(TRANSFORMER_CONTAINER, Resources())
    )
    needed = [main.needed(), transformer.needed()]
    needed += [r.needed() for n, r in runtime.containers if n not in (KSERVE_CONTAINER, TRANSFORMER_CONTAINER)]
    needed += [r.needed() for n, r in component.containers if n != TRANSFORMER_CONTAINER]
    return Placement(
        node_selector=tuple({**dict(runtime.node_selector), **dict(component.node_selector)}.items()),
        affinity=component.affinity if component.affinity is not None else runtime.affinity,
        tolerations=component.tolerations or runtime.tolerations,
        resources=frozenset().union(*needed),
    )


def merge_kserve_worker(component: PodScheduling, runtime: PodScheduling) -> Placement:
    """The worker pod of a multi-node InferenceService (kserve/kserve
    `pkg/controller/v1beta1/inferenceservice/components/predictor.go` `multiNodeProcess`):
    the runtime's `workerSpec` pod spec merged with the InferenceService's `workerSpec` as
    for the head (`MergeServingRuntimeAndInferenceServiceSpecs`), keeping one container, the
    runtime's `worker-container` with the InferenceService's first worker container
    (`component.model`) patched onto it. The other containers are dropped; init containers
    are not told apart from them, so only the worker container's extended resources count.
    """
    main = _first_by_name(runtime.containers).get(WORKER_CONTAINER, Resources()).overlay(component.model or Resources())
    return Placement(
        node_selector=tuple({**dict(runtime.node_selector), **dict(component.node_selector)}.items()),
        affinity=component.affinity if component.affinity is not None else runtime.affinity,
        tolerations=component.tolerations or runtime.tolerations,
        resources=main.needed(),
    )


# --- accelerator hints -----------------------------------------------------------------------

RECOMMENDED_ACCELERATORS = "opendatahub.io/recommended-accelerators"
MAX_HINTS = 16
TOLERATE_EVERYTHING = Toleration("", EXISTS, "", "")


def hint_placement(
    annotations: Mapping[str, Any] | None,
    *,
    source: str = "",
    field: str = f"metadata.annotations[{RECOMMENDED_ACCELERATORS}]",
) -> Placement:
    """Where an offered image nobody uses yet belongs, from the OpenShift AI annotation
    `opendatahub.io/recommended-accelerators` (on ImageStreams, runtime Templates and their
    ServingRuntime): a JSON list of extended resource names such as `["nvidia.com/gpu"]`.

    With names: the nodes that have at least one of them allocatable, whatever their taints
    (the dashboard adds the accelerator's tolerations when a user picks it). Without the
    annotation, or with `[]`: where a plain pod could run (no tolerations, no extended
    resources). Raises PlacementError naming `source` and the annotation when the value is
    not a JSON list of at most MAX_HINTS extended resource names.
    """
    raw = annotations.get(RECOMMENDED_ACCELERATORS) if isinstance(annotations, Mapping) else None
    try:
        names = _hint_names(raw, field)
    except PlacementError as e:
        raise e.named(source) from None
    if not names:
        return Placement()
    return Placement(tolerations=(TOLERATE_EVERYTHING,), one_of_resources=names)


def _hint_names(raw: Any, field: str) -> frozenset[str]:
    if raw is None:
        return frozenset()
    if not isinstance(raw, str):
        raise PlacementError(field, f"is not a string: {type(raw).__name__}")
    try:
        decoded: Any = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise PlacementError(field, f"is not a JSON list: {raw[:200]!r} ({exc})") from None
    if not isinstance(decoded, list):
        raise PlacementError(field, f"is not a JSON list: {raw[:200]!r}")
    if len(decoded) > MAX_HINTS:
        raise PlacementError(field, f"has {len(decoded)} entries, more than the {MAX_HINTS} read")
    for i, name in enumerate(decoded):
        if not isinstance(name, str) or not is_extended_resource(name):
            raise PlacementError(f"{field}[{i}]", f"is not an extended resource name: {name!r}"[:200])
    return frozenset(decoded)
