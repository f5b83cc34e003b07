"""The kinds of object the agent reads or writes, and their REST paths.

A `Kind` is group/version/plural/scope; `path()` builds the collection or object URL the
API server serves for it. On OpenShift, ImageStreams and Templates come from the OpenShift
API server rather than CRDs, but the paths are the same.

`versions` lists the versions the agent can read a kind at, in its order of preference;
`version` is the first. A kind with several is listed at the one API discovery prefers
among them (`agent.observe`): LLMInferenceService and LLMInferenceServiceConfig are stored
as v1alpha2 on current clusters, v1alpha1 served through KServe's conversion webhook
(kserve/kserve `config/crd/full/llmisvc/llmisvc_conversion_webhook_patch.yaml`);
DSCInitialization as v2, v1 through the operator's (opendatahub-io/opendatahub-operator
`api/dscinitialization/v2/dscinitialization_types.go`, `+kubebuilder:storageversion`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from agent.model import KindName


@dataclass(frozen=True, slots=True)
class Kind:
    kind: str
    group: str  # "" for the core group
    version: str
    plural: str
    namespaced: bool
    versions: tuple[str, ...] = field(default=(), compare=False)  # readable versions, preferred first

    def __post_init__(self) -> None:
        if not self.versions:
            object.__setattr__(self, "versions", (self.version,))

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def at(self, version: str) -> Kind:
        """This kind at another of its versions."""
        if version not in self.versions:
            raise ValueError(f"{self.kind} is not read at {version}; it is at {', '.join(self.versions)}")
        return replace(self, version=version)

    def path(self, *, namespace: str = "", name: str = "", subresource: str = "") -> str:
        """`/apis/G/V[/namespaces/NS]/PLURAL[/NAME[/SUB]]`; no namespace lists across all."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base


IMAGE_STREAM = Kind(KindName.IMAGE_STREAM, "image.openshift.io", "v1", "imagestreams", namespaced=True)
TEMPLATE = Kind(KindName.TEMPLATE, "template.openshift.io", "v1", "templates", namespaced=True)
NOTEBOOK = Kind(KindName.NOTEBOOK, "kubeflow.org", "v1", "notebooks", namespaced=True)
SERVING_RUNTIME = Kind(KindName.SERVING_RUNTIME, "serving.kserve.io", "v1alpha1", "servingruntimes", namespaced=True)
CLUSTER_SERVING_RUNTIME = Kind(
    KindName.CLUSTER_SERVING_RUNTIME, "serving.kserve.io", "v1alpha1", "clusterservingruntimes", namespaced=False
)
INFERENCE_SERVICE = Kind(
    KindName.INFERENCE_SERVICE, "serving.kserve.io", "v1beta1", "inferenceservices", namespaced=True
)
LLM_INFERENCE_SERVICE = Kind(
    KindName.LLM_INFERENCE_SERVICE, "serving.kserve.io", "v1alpha2", "llminferenceservices", namespaced=True,
    versions=("v1alpha2", "v1alpha1"),
)
LLM_INFERENCE_SERVICE_CONFIG = Kind(
    KindName.LLM_INFERENCE_SERVICE_CONFIG, "serving.kserve.io", "v1alpha2", "llminferenceserviceconfigs",
    namespaced=True, versions=("v1alpha2", "v1alpha1"),
)
CLUSTER_STORAGE_CONTAINER = Kind(
    KindName.CLUSTER_STORAGE_CONTAINER, "serving.kserve.io", "v1alpha1", "clusterstoragecontainers", namespaced=False
)
DSC_INITIALIZATION = Kind(
    KindName.DSC_INITIALIZATION, "dscinitialization.opendatahub.io", "v2", "dscinitializations", namespaced=False,
    versions=("v2", "v1"),
)
CONFIG_MAP = Kind(KindName.CONFIG_MAP, "", "v1", "configmaps", namespaced=True)
IMAGE_PULLER = Kind(KindName.IMAGE_PULLER, "che.eclipse.org", "v1alpha1", "kubernetesimagepullers", namespaced=True)
NODE = Kind(KindName.NODE, "", "v1", "nodes", namespaced=False)
LEASE = Kind(KindName.LEASE, "coordination.k8s.io", "v1", "leases", namespaced=True)
# The puller's own workloads (read by name only) and the Events the agent posts on its CR.
DEPLOYMENT = Kind(KindName.DEPLOYMENT, "apps", "v1", "deployments", namespaced=True)
DAEMON_SET = Kind(KindName.DAEMON_SET, "apps", "v1", "daemonsets", namespaced=True)
EVENT = Kind(KindName.EVENT, "events.k8s.io", "v1", "events", namespaced=True)
