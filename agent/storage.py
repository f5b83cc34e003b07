"""KServe's model storage rules: what a storage URI makes the kubelet pull.

Pure: strings and values in, decisions out. Each rule names the KServe file it follows.

**Schemes** (kserve/kserve `pkg/utils/utils.go` `ParseOciScheme`, `utils_test.go`
`TestParseOciScheme`; prefixes compared with `strings.HasPrefix`, so case-sensitively):

- `oci://`, `oci+modelcar://`: a ModelCar, the model image run as a sidecar and an init
  container (`pkg/webhook/admission/pod/storage_initializer_injector.go` `InjectModelcar`,
  `pkg/utils/utils.go` `ConfigureModelcarToContainer`). The image lands in the node's image
  store: pre-pulling it helps. Only while the ConfigMap's `storageInitializer.enableModelcar`
  is on (the webhook registers `InjectModelcar` only then, `pkg/webhook/admission/pod/
  mutator.go`); off, the storage initializer downloads it instead.
- `oci+native://`: a Kubernetes image volume (`docs/samples/storage/oci-image-volume/
  README.md`): the kubelet pulls it into the same image store, so pre-pulling helps too.
- `oci+fetch://`: the storage initializer pulls the model's layers into the pod's scratch
  volume at every start (`pkg/webhook/admission/pod/oci_fetch.go`): the model image never
  reaches the node's image store, so pre-pulling it cannot help; the storage initializer's
  own image is pulled.
- `pvc://`: the claim is mounted, nothing is pulled (`CommonStorageInitialization`).
- anything else (`s3://`, `gs://`, `hf://`, `https://`, `hdfs://`...): downloaded by the
  storage initializer.

**The storage initializer** (`storage_initializer_injector.go` `CommonStorageInitialization`)
is added to a pod unless the modelcar switch is on and the *first* URI is an OCI image, the
pod already has an init container named `storage-initializer`, or every URI is a `pvc://`.
Its image is the ConfigMap's `storageInitializer.image`, replaced by the container image of
the first enabled `ClusterStorageContainer` (by name, the order the API server lists them
in) whose `supportedUriFormats` match the URI that selects it (`GetStorageContainerSpec`;
`mergeContainerSpecs` patches the container over the default one): the URI itself for a
single `storageUri`, the first of `storageUris` (`components/predictor.go`
`reconcileRawDeployment`).

What this is not: it reads no object (the sources do) and decides nothing about placement.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from agent.refs import ImageRef

__all__ = [
    "MAX_URI",
    "OCI_SCHEME",
    "STORAGE_INITIALIZER_CONTAINER",
    "Scheme",
    "StorageConfig",
    "StorageContainer",
    "initializer_uri",
    "llm_model_scheme",
    "normalized_oci",
    "scheme_of",
    "storage_container_for",
]

OCI_SCHEME = "oci://"
_IMAGE_SCHEMES = ("oci+modelcar://", "oci+native://")
FETCH_SCHEME = "oci+fetch://"
PVC_SCHEME = "pvc://"
# constants.StorageInitializerContainerName
STORAGE_INITIALIZER_CONTAINER = "storage-initializer"
# Characters of a URI kept to match a ClusterStorageContainer's formats against: a storage
# URI is a tenant's string, and the formats' regular expressions are run over it.
MAX_URI = 1024


class Scheme(StrEnum):
    """What a storage URI makes KServe do."""

    MODELCAR = "modelcar"  # oci://, oci+modelcar://: an image, while the modelcar switch is on
    IMAGE_VOLUME = "image-volume"  # oci+native://: an image volume
    FETCH = "fetch"  # oci+fetch://: downloaded by the storage initializer at every start
    PVC = "pvc"  # mounted
    DOWNLOAD = "download"  # any other scheme: downloaded by the storage initializer
    NONE = "none"  # empty


def scheme_of(uri: str) -> Scheme:
    if not uri:
        return Scheme.NONE
    if uri.startswith(OCI_SCHEME) or uri.startswith(_IMAGE_SCHEMES[0]):
        return Scheme.MODELCAR
    if uri.startswith(_IMAGE_SCHEMES[1]):
        return Scheme.IMAGE_VOLUME
    if uri.startswith(FETCH_SCHEME):
        return Scheme.FETCH
    if uri.startswith(PVC_SCHEME):
        return Scheme.PVC
    return Scheme.DOWNLOAD


def normalized_oci(uri: str) -> str:
    """`oci+MODE://R` as `oci://R` (`ParseOciScheme`'s normalised URI); other URIs unchanged."""
    for prefix in (*_IMAGE_SCHEMES, FETCH_SCHEME):
        if uri.startswith(prefix):
            return OCI_SCHEME + uri[len(prefix) :]
    return uri


def llm_model_scheme(uri: str) -> Scheme:
    """An LLMInferenceService's `spec.model.uri`, as its controller reads it
    (`pkg/controller/v1alpha2/llmisvc` `attachModelArtifacts`: a switch on the exact
    scheme): `oci://` a ModelCar, `pvc://` mounted, `hf://` and `s3://` through the storage
    initializer; anything else is refused ("unsupported schema", NONE here)."""
    scheme, sep, _ = uri.partition("://")
    if not sep:
        return Scheme.NONE
    return {"oci": Scheme.MODELCAR, "pvc": Scheme.PVC, "hf": Scheme.DOWNLOAD, "s3": Scheme.DOWNLOAD}.get(
        scheme, Scheme.NONE
    )


def initializer_uri(uris: Sequence[str], *, enable_modelcar: bool, own_initializer: bool) -> str | None:
    """The URI that selects the storage initializer's container when KServe adds one to a
    pod with these storage URIs (in KServe's order), else None."""
    if not uris or own_initializer:
        return None
    first = scheme_of(uris[0])
    if first is Scheme.IMAGE_VOLUME or (enable_modelcar and first is Scheme.MODELCAR):
        return None
    if all(scheme_of(u) in (Scheme.PVC, Scheme.NONE) for u in uris):
        return None
    return uris[0]


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """The `storageInitializer` document of KServe's `inferenceservice-config` ConfigMap."""

    image: ImageRef | None  # None: not set, or not a valid reference (then rejected)
    enable_modelcar: bool = True  # `enableModelcar` (the documented default is true)


@dataclass(frozen=True, slots=True)
class StorageContainer:
    """A ClusterStorageContainer, as `GetStorageContainerSpec` reads it."""

    name: str
    image: ImageRef | None  # `spec.container.image`; None: unset (the default image stays) or rejected
    image_set: bool  # `spec.container.image` is a non-empty string (a rejected one replaces the default too)
    prefixes: tuple[str, ...]  # `spec.supportedUriFormats[].prefix`
    patterns: tuple[re.Pattern[str] | None, ...]  # `...regex`, compiled; None: Python cannot compile it
    disabled: bool = False  # `disabled` (top level, not in spec)
    init_container: bool = True  # `spec.workloadType` is initContainer (its default)

    def supports(self, uri: str) -> bool:
        """`IsStorageUriSupported`: a prefix, else a regular expression matching anywhere
        (Go's `regexp.MatchString`). A pattern Python cannot compile matches nothing
        (KServe would fail the pod with an error)."""
        text = uri[:MAX_URI]
        if any(p and text.startswith(p) for p in self.prefixes):
            return True
        return any(p is not None and p.search(text) is not None for p in self.patterns)


def storage_container_for(uri: str, containers: Sequence[StorageContainer]) -> StorageContainer | None:
    """The first enabled init-container ClusterStorageContainer, by name, supporting `uri`."""
    for container in sorted(containers, key=lambda c: c.name):
        if not container.disabled and container.init_container and container.supports(uri):
            return container
    return None
