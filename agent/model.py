"""Domain values shared by the sources, the planner and the output.

Frozen dataclasses with names from the domain. Nothing here talks to the API or reads
settings: wire data (plain dicts) is turned into these values by `agent.sources`, and
`agent.plan` turns them into a `Plan`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from agent.refs import ImageRef

if TYPE_CHECKING:  # agent.placement builds on this module; only the annotation needs it
    from agent.placement import Placement


class KindName(StrEnum):
    """The kinds of object the agent reads or writes, by the name the API gives them. One
    place for every name: the sources tag what they find with it, the API edge lists it
    (`agent.kube.kinds` pairs each with its REST path), and the planner's safety rule
    compares the kinds that failed with these constants, never with string literals."""

    IMAGE_STREAM = "ImageStream"
    TEMPLATE = "Template"
    NOTEBOOK = "Notebook"
    SERVING_RUNTIME = "ServingRuntime"
    CLUSTER_SERVING_RUNTIME = "ClusterServingRuntime"
    INFERENCE_SERVICE = "InferenceService"
    LLM_INFERENCE_SERVICE = "LLMInferenceService"
    LLM_INFERENCE_SERVICE_CONFIG = "LLMInferenceServiceConfig"
    CLUSTER_STORAGE_CONTAINER = "ClusterStorageContainer"
    CONFIG_MAP = "ConfigMap"  # KServe's inferenceservice-config: the storage initializer
    DSC_INITIALIZATION = "DSCInitialization"
    IMAGE_PULLER = "KubernetesImagePuller"
    NODE = "Node"
    LEASE = "Lease"
    DEPLOYMENT = "Deployment"  # the puller's, read by name
    DAEMON_SET = "DaemonSet"  # the puller's, read by name
    EVENT = "Event"  # posted on the KubernetesImagePuller


@dataclass(frozen=True, order=True, slots=True)
class ObjectRef:
    """The Kubernetes object an image was found in. `namespace` is "" when cluster-scoped."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"


class Role(StrEnum):
    """What the image is for, as the workload that uses it sees it."""

    WORKBENCH = "workbench"
    SIDECAR = "sidecar"
    PIPELINE_RUNTIME = "pipeline-runtime"
    SERVING_RUNTIME = "serving-runtime"
    MODELCAR = "modelcar"
    CUSTOM_CONTAINER = "custom-container"
    STORAGE_INITIALIZER = "storage-initializer"  # KServe's init container that downloads a model
    ROUTER = "router"  # an LLMInferenceService's scheduler (endpoint picker) pod


class State(StrEnum):
    """How the object that names the image uses it right now.

    The scoring weights in the configuration are keyed by these values.
    """

    RUNNING = "running"  # a workbench whose status says it runs (a ready replica, or its container running)
    STARTING = "starting"  # a workbench that should run (not stopped) but does not yet: pending, pulling, failing
    STOPPED = "stopped"  # a workbench that is stopped
    READY = "ready"  # a model server whose Ready condition is True
    NOT_READY = "not-ready"  # a model server that exists but is not Ready
    RECOMMENDED = "recommended"  # an image stream tag offered as the default to new users
    OFFERED = "offered"  # an image stream tag offered to new users, not the default
    OUTDATED = "outdated"  # a tag marked outdated, or a hidden stream: counts only when used
    DEFINED = "defined"  # a serving runtime or template that exists; nothing may use it yet


# The states of an object that runs or defines a workload (every other state only offers an
# image): what makes an image a project's own or shared (`agent.plan`), and what the coverage
# gap counts (`agent.pools`).
WORKLOAD_STATES = frozenset({State.RUNNING, State.STARTING, State.STOPPED, State.READY, State.NOT_READY})


@dataclass(frozen=True, order=True, slots=True)
class StreamTag:
    """An ImageStream tag. `namespace` "" means the applications namespace."""

    namespace: str
    stream: str
    tag: str

    def __str__(self) -> str:
        return f"{self.namespace or '<applications>'}/{self.stream}:{self.tag}"


@dataclass(frozen=True, slots=True)
class Usage:
    """One object naming one image in one field.

    `stream_tag` is set when the object says which ImageStream tag the image came from
    (a Notebook's `last-image-selection`), so the planner can tie the two spellings of
    one image together. `placement` is where the pod that pulls it could run (for an image
    merely offered, where its accelerator hint sends it); None when unknown: it then
    counts for every target.
    """

    image: ImageRef
    source: ObjectRef
    field: str
    role: Role
    state: State
    stream_tag: StreamTag | None = None
    placement: Placement | None = None
    # The kind of the object the image text came from when it is not `source`'s own (a
    # runtime's image used by an InferenceService, a config's by an LLMInferenceService,
    # the storage initializer from KServe's ConfigMap): if that kind cannot be read, the
    # entry stays (the planner's safety rule).
    supplier: str = ""


@dataclass(frozen=True, slots=True)
class NotPrepullable:
    """An image a workload uses that pre-pulling cannot help, and why (e.g. an
    `oci+fetch://` model, downloaded into the pod's scratch volume at every start). Not a
    rejection: the reference is valid, it is just not kept in any node's image store."""

    reference: str
    reason: str
    source: ObjectRef
    field: str

    def __str__(self) -> str:
        return f"{self.source}: {self.field} {self.reference!r} {self.reason}"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A reference that could not be accepted; it never reaches the puller."""

    reference: str
    reason: str
    source: ObjectRef
    field: str

    def __str__(self) -> str:
        """`Notebook ns/nb: FIELD 'REFERENCE' REASON`; a rejection of a whole object or of a
        list's length has no reference (and a whole object no field)."""
        parts = [self.field, repr(self.reference) if self.reference else "", self.reason]
        return f"{self.source}: " + " ".join(p for p in parts if p)


@dataclass(frozen=True, order=True, slots=True)
class Taint:
    """One entry of a Node's `spec.taints`. `effect` is NoSchedule, PreferNoSchedule or
    NoExecute (anything else is kept as written: it blocks nothing)."""

    key: str
    value: str
    effect: str

    def __str__(self) -> str:  # as kubectl shows it: key=value:Effect, or key:Effect
        return f"{self.key}={self.value}:{self.effect}" if self.value else f"{self.key}:{self.effect}"


# The kubelet reports at most this many images in status.images, the largest first
# (kubernetes/kubernetes pkg/kubelet/apis/config/v1beta1/defaults.go: NodeStatusMaxImages 50;
# pkg/kubelet/nodestatus/setters.go `Images`), each with at most 5 names, digests first.
NODE_STATUS_MAX_IMAGES = 50
NODE_STATUS_MAX_NAMES = 5


@dataclass(frozen=True, slots=True)
class NodeImages:
    """What a node's `status.images` says it holds. A list of fewer than
    NODE_STATUS_MAX_IMAGES entries is complete; a full one leaves out whatever is smaller
    than its smallest entry, and an entry with NODE_STATUS_MAX_NAMES names may leave out
    other names of its repositories (`clipped`)."""

    names: frozenset[str]  # every name reported, as reported
    count: int  # entries reported
    smallest: int  # sizeBytes of the smallest entry; 0 when none
    clipped: frozenset[str] = frozenset()  # `registry/repository` of entries with the maximum of names

    @property
    def complete(self) -> bool:
        return self.count < NODE_STATUS_MAX_IMAGES


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A node: its labels (for nodeSelectors and affinity), disk, and what decides which pods
    may run on it (`agent.placement`): taints, whether it is cordoned, and the extended
    resources (GPUs and other accelerators) it has allocatable."""

    name: str
    labels: Mapping[str, str]
    ephemeral_storage: int | None  # bytes of status.capacity, None when not reported
    taints: tuple[Taint, ...] = ()  # spec.taints, every effect, as listed
    unschedulable: bool = False  # spec.unschedulable: cordoned
    extended: frozenset[str] = frozenset()  # extended resources with status.allocatable above zero
    images: NodeImages | None = None  # status.images; None when the node reports none at all
