"""KServe: serving runtimes, runtime templates and InferenceServices.

Runtimes (ServingRuntime, ClusterServingRuntime, and the ServingRuntimes inside
OpenShift AI's runtime Templates) are read into `Runtime` values. Those offered to
everyone (cluster-scoped, templates, runtimes in the applications namespace) earn the
`defined` baseline; runtimes in project namespaces count only through the
InferenceServices that use them.

An InferenceService becomes a `ModelServer`: which runtime it names or which model format
it needs, its overrides, its model storage (`storageUri`, `spec.predictor.storageUris[]`,
each URI classified by `agent.storage`) and its worker pod (`spec.predictor.workerSpec`).
Matching it to a runtime needs every runtime first, so that happens in `agent.resolve`,
which also merges where the predictor and worker pods may run with the runtime's
(`agent.placement.merge_kserve`, as KServe builds the pods) and decides what the storage
needs (ModelCars, the storage initializer). What it names itself in custom predictor,
transformer and explainer containers becomes usages here directly, placed by that
component's own pod spec; the explainer's `storageUris` (kserve/kserve
`pkg/apis/serving/v1beta1/explainer.go`; the transformer has none, `transformer.go`) is a
`StorageUser` placed by the explainer's pod. An `oci+fetch://` URI is recorded as not
pre-pullable (`Findings.skip`), never as a rejection.

An offered runtime's images (a cluster runtime, a runtime template, a runtime of the
applications namespace) go where its `opendatahub.io/recommended-accelerators` annotation
sends them, else where a plain pod could run.

What a runtime records is what KServe's auto-selection reads (kserve/kserve,
`pkg/apis/serving/v1beta1/predictor_model.go` `GetSupportingRuntimes`, and
`pkg/apis/serving/v1alpha1/servingruntime_types.go`): the supported model formats with
their optional version and priority, `multiModel`, `protocolVersions`, whether it has a
`workerSpec`, and its creation time (the tie-break). Its images are kept with the pod they
go to: `spec.containers`/`initContainers` to the predictor (head) pod, the
`spec.workerSpec` ones to the worker pod, where KServe keeps only the `worker-container`
merged with the InferenceService's first worker container
(`pkg/controller/v1beta1/inferenceservice/components/predictor.go` `multiNodeProcess`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from agent.model import KindName, NotPrepullable, ObjectRef, Rejection, Role, State, Usage
from agent.placement import Placement, PlacementError, PodScheduling, read_resources
from agent.refs import ImageRef
from agent.sources.common import (
    MAX_CONTAINERS,
    MAX_MODEL_FORMATS,
    MAX_NAME,
    MAX_NAME_IN_FIELD,
    MAX_PROTOCOLS,
    MAX_STORAGE_URIS,
    MAX_TEMPLATE_OBJECTS,
    MAX_TEXT,
    Findings,
    as_list,
    as_str,
    bounded,
    clip,
    containers,
    dig,
    hinted,
    intern,
    is_ready,
    object_ref,
    parse_image,
    scheduling,
)
from agent.sources.llm import read_llm_inference_service  # noqa: F401 - where callers found it first
from agent.storage import MAX_URI, STORAGE_INITIALIZER_CONTAINER, Scheme, normalized_oci, scheme_of

SERVING_RUNTIME = KindName.SERVING_RUNTIME
CLUSTER_SERVING_RUNTIME = KindName.CLUSTER_SERVING_RUNTIME
TEMPLATE = KindName.TEMPLATE
INFERENCE_SERVICE = KindName.INFERENCE_SERVICE
TEMPLATE_LABEL_SELECTOR = "opendatahub.io/dashboard=true"
RECOMMENDED_ACCELERATORS = "opendatahub.io/recommended-accelerators"
MAIN_CONTAINER = "kserve-container"
WORKER_CONTAINER = "worker-container"  # kserve/kserve pkg/constants WorkerContainerName
FETCH_REASON = (
    "is downloaded by KServe's storage initializer into the pod's scratch volume at every start "
    "(oci+fetch://, kserve/kserve pkg/webhook/admission/pod/oci_fetch.go): the model image never "
    "reaches the node's image store, so pre-pulling it cannot help"
)
# KServe `ModelSpec.GetProtocol()`: a predictor that names no protocolVersion speaks v1.
DEFAULT_PROTOCOL = "v1"
# KServe `constants.GetProtocolVersionInt`: a runtime ranks by the lowest of its protocols;
# none, or only unknown ones, rank last (`Unknown`).
PROTOCOL_RANK = {"v1": 1, "v2": 2, "grpc-v1": 3, "grpc-v2": 4}
UNKNOWN_PROTOCOL_RANK = 5
# metav1.Time as the API server writes it: RFC 3339, UTC, whole seconds. In this exact form
# string order is time order; anything else is treated as unknown.
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
# Predictor fields of the older v1beta1 shape: the key is the model format.
FRAMEWORKS = (
    "sklearn",
    "xgboost",
    "lightgbm",
    "tensorflow",
    "pytorch",
    "triton",
    "onnx",
    "pmml",
    "paddle",
    "huggingface",
)


@dataclass(frozen=True, slots=True)
class ModelFormat:
    name: str
    version: str | None  # None: not given (not the same as "" to KServe)
    auto_select: bool
    priority: int | None  # None: not given; ranks after any given priority


@dataclass(frozen=True, slots=True)
class RuntimeImage:
    container: str
    field: str
    image: ImageRef
    main: bool = False  # the `kserve-container` of `spec.containers`: what runtimeVersion and model.image replace
    worker: bool = False  # from `spec.workerSpec`: goes to the worker pod, never the head
    init: bool = False  # an init container (of either pod)
    worker_main: bool = False  # the `worker-container` of `spec.workerSpec.containers`: the worker pod's container


@dataclass(frozen=True, slots=True)
class Runtime:
    source: ObjectRef
    namespace: str  # "" for a ClusterServingRuntime
    name: str
    images: tuple[RuntimeImage, ...]
    formats: tuple[ModelFormat, ...]
    disabled: bool
    has_main_container: bool = False  # `spec.containers` has a `kserve-container`, whatever its image
    multi_model: bool = False  # `multiModel: true`: a ModelMesh runtime
    multi_node: bool = False  # has a `workerSpec`
    protocols: tuple[str, ...] = ()  # `protocolVersions`; empty: any
    created: str = ""  # `metadata.creationTimestamp` (RFC 3339 UTC), "" when unknown
    # Where its pods may run, before the InferenceService's own spec is merged in; None when
    # its scheduling fields cannot be read (KServe's pods could not be created).
    scheduling: PodScheduling | None = PodScheduling()
    worker_scheduling: PodScheduling | None = PodScheduling()  # `spec.workerSpec`'s
    has_worker_container: bool = False  # `spec.workerSpec.containers` has a `worker-container`
    # Computed once from `formats` (resolution asks for them per predictor):
    labels: frozenset[str] = field(init=False, repr=False, compare=False)  # see `supports`
    priorities: Mapping[str, int | None] = field(init=False, repr=False, compare=False)  # see `priority_for`
    # KServe's `GetProtocolVersionPriority`: lower ranks first; the lowest of its protocols.
    protocol_rank: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        offered: set[str] = set()
        priorities: dict[str, int | None] = {}
        for f in self.formats:
            if f.auto_select:
                offered.add(model_label(f.name, None))
                if f.version is not None:
                    offered.add(model_label(f.name, f.version))
            priorities.setdefault(f.name, f.priority)
        object.__setattr__(self, "labels", frozenset(offered))
        object.__setattr__(self, "priorities", priorities)
        rank = min((PROTOCOL_RANK.get(p, UNKNOWN_PROTOCOL_RANK) for p in self.protocols), default=UNKNOWN_PROTOCOL_RANK)
        object.__setattr__(self, "protocol_rank", rank)

    @property
    def cluster_scoped(self) -> bool:
        return self.source.kind == CLUSTER_SERVING_RUNTIME

    def supports(self, model_format: str, version: str | None) -> bool:
        """KServe's `RuntimeSupportsModel` for a predictor that names no runtime.

        KServe compares labels: the runtime offers `mt:NAME` for every auto-selectable
        format, plus `mt:NAME:VERSION` when the format has a version; the model asks for
        `mt:NAME:VERSION` if it has a version, else `mt:NAME`. So a versioned model needs a
        runtime format of exactly that version, an unversioned model takes any version of
        the name, and names are compared case-sensitively.
        """
        return model_label(model_format, version) in self.labels

    def priority_for(self, model_format: str) -> int | None:
        """KServe's `GetPriority`: the priority of the first format entry of that name,
        whatever its version or autoSelect."""
        return self.priorities.get(model_format)

    def supports_protocol(self, protocol: str) -> bool:
        """KServe's `IsProtocolVersionSupported`."""
        return not protocol or not self.protocols or protocol in self.protocols


def model_label(model_format: str, version: str | None) -> str:
    """The label KServe matches a model format by: `mt:NAME`, or `mt:NAME:VERSION`."""
    return f"mt:{model_format}" if version is None else f"mt:{model_format}:{version}"


@dataclass(frozen=True, slots=True)
class StorageURI:
    """One model storage URI, classified (`agent.storage.scheme_of`)."""

    uri: str  # as written, at most `agent.storage.MAX_URI` characters
    field: str
    scheme: Scheme
    image: ImageRef | None = None  # an OCI URI's image (None when rejected, or not an OCI URI)


@dataclass(frozen=True, slots=True)
class ModelStorage:
    """The storage URIs one pod's model comes from, in KServe's order, and whether the pod
    already has an init container named `storage-initializer` (KServe adds none then)."""

    uris: tuple[StorageURI, ...]
    own_initializer: bool = False


@dataclass(frozen=True, slots=True)
class Worker:
    """`spec.predictor.workerSpec`: the worker pod of a multi-node predictor."""

    # Its pod spec, `model` being the first container's resources (what KServe merges onto
    # the runtime's worker-container); None when it cannot be read.
    scheduling: PodScheduling | None = PodScheduling()
    image: ImageRef | None = None  # `containers[0].image`: replaces the runtime's worker-container image
    image_set: bool = False  # `containers[0]` names an image (a rejected one too: KServe would run it)
    field: str = "spec.predictor.workerSpec.containers[0].image"
    init_images: tuple[tuple[ImageRef, str], ...] = ()  # `initContainers` (kept in the worker pod)


@dataclass(frozen=True, slots=True)
class StorageUser:
    """A component other than a model predictor whose storage KServe sets up: the
    explainer's `storageUris`, a custom predictor's. Placed by its own pod spec."""

    source: ObjectRef
    ready: bool
    storage: ModelStorage
    placement: Placement


@dataclass(frozen=True, slots=True)
class ModelServer:
    """An InferenceService predictor whose runtime is still to be found."""

    source: ObjectRef
    runtime: str  # "" = auto-select by model format
    model_format: str
    format_version: str | None  # None: not given
    runtime_version: str
    image_override: ImageRef | None
    ready: bool
    protocol: str = DEFAULT_PROTOCOL  # `protocolVersion`
    multi_node: bool = False  # `spec.predictor.workerSpec` is set
    # The predictor's pod spec (its model container's resources included), merged with the
    # runtime's in `agent.resolve`; None when it cannot be read (the images are then not used).
    scheduling: PodScheduling | None = PodScheduling()
    # The predictor pod's storage: `model.storageUri` (KServe's webhook path) and
    # `spec.predictor.storageUris` (the reconciler's), each set up on its own.
    storage: tuple[ModelStorage, ...] = ()
    worker: Worker | None = None  # `spec.predictor.workerSpec`

    @property
    def modelcars(self) -> tuple[tuple[ImageRef, str], ...]:
        """(image, field) of every OCI image URI of its storage (ModelCars and image volumes)."""
        return tuple(
            (u.image, u.field)
            for group in self.storage
            for u in group.uris
            if u.image is not None and u.scheme in (Scheme.MODELCAR, Scheme.IMAGE_VOLUME)
        )


@dataclass
class ServingFindings(Findings):
    runtimes: list[Runtime] = field(default_factory=list)
    model_servers: list[ModelServer] = field(default_factory=list)
    storage_users: list[StorageUser] = field(default_factory=list)

    def extend(self, other: Findings) -> None:
        super().extend(other)
        if isinstance(other, ServingFindings):
            self.runtimes.extend(other.runtimes)
            self.model_servers.extend(other.model_servers)
            self.storage_users.extend(other.storage_users)


def read_serving_runtime(obj: Mapping[str, Any], *, kind: str, applications_namespace: str) -> ServingFindings:
    """A ServingRuntime or ClusterServingRuntime."""
    source = object_ref(kind, obj)
    offered = kind == CLUSTER_SERVING_RUNTIME or source.namespace == applications_namespace
    created = as_str(dig(obj, "metadata", "creationTimestamp"))
    return _runtime(
        obj.get("spec"),
        source=source,
        path="spec",
        offered=obj if offered else None,
        created=created if _TIMESTAMP.fullmatch(created) else "",
    )


def read_template(obj: Mapping[str, Any]) -> ServingFindings:
    """An OpenShift Template holding ServingRuntimes in `objects[]` (a runtime offered to all)."""
    out = ServingFindings()
    source = object_ref(TEMPLATE, obj)
    listed = bounded(obj.get("objects"), limit=MAX_TEMPLATE_OBJECTS, source=source, field="objects", findings=out)
    for i, item in enumerate(listed):
        if isinstance(item, Mapping) and item.get("kind") == SERVING_RUNTIME:
            # The hint sits on the template's ServingRuntime (odh-model-controller
            # config/runtimes/), else on the template itself.
            hint = item if _has_hint(item) else obj
            found = _runtime(item.get("spec"), source=source, path=f"objects[{i}].spec", offered=hint)
            found.runtimes.clear()  # template runtimes are not addressable by name
            out.extend(found)
    return out


def _has_hint(obj: Mapping[str, Any]) -> bool:
    notes = dig(obj, "metadata", "annotations")
    return isinstance(notes, Mapping) and RECOMMENDED_ACCELERATORS in notes


def _runtime(
    spec: Any, *, source: ObjectRef, path: str, offered: Mapping[str, Any] | None, created: str = ""
) -> ServingFindings:
    """`offered`: the object whose accelerator hint places the runtime's images when it is
    offered to everyone (None: a project's runtime, which counts only through its users)."""
    out = ServingFindings()
    placement = hinted(offered, source=source, findings=out) if offered is not None else None
    images: list[RuntimeImage] = []
    # The main container is the first `spec.containers[kserve-container]`, as KServe's
    # GetContainerIndexByName finds it: never an init container nor a worker's. KServe
    # refuses a runtime without one (MergeServingRuntimeAndInferenceServiceSpecs), so there
    # is no fallback to "the first image".
    main_field = f"{path}.containers[{MAIN_CONTAINER}].image"
    worker_field = f"{path}.workerSpec.containers[{WORKER_CONTAINER}].image"
    main_seen = worker_seen = False
    worker_spec = dig(spec, "workerSpec")
    for pod_path, pod_spec in ((path, spec), (f"{path}.workerSpec", worker_spec)):
        worker = pod_spec is worker_spec
        for name, field_path, value in containers(pod_spec, pod_path, source=source, findings=out):
            main = not worker and name == MAIN_CONTAINER and field_path == main_field and not main_seen
            worker_main = worker and name == WORKER_CONTAINER and field_path == worker_field and not worker_seen
            main_seen, worker_seen = main_seen or main, worker_seen or worker_main
            image = parse_image(value, source=source, field=field_path, findings=out)
            if image is not None:
                init = f"{pod_path}.initContainers[" in field_path
                images.append(RuntimeImage(name, field_path, image, main, worker, init, worker_main))
                if placement is not None:
                    out.use(Usage(image, source, field_path, Role.SERVING_RUNTIME, State.DEFINED, placement=placement))
    listed = bounded(
        dig(spec, "supportedModelFormats"),
        limit=MAX_MODEL_FORMATS,
        source=source,
        field=f"{path}.supportedModelFormats",
        findings=out,
    )
    formats = tuple(
        ModelFormat(
            name=clip(as_str(f.get("name")), MAX_NAME),
            version=_optional_str(f.get("version")),
            auto_select=f.get("autoSelect") is True,
            priority=_optional_int(f.get("priority")),
        )
        for f in listed
        if isinstance(f, Mapping)
    )
    protocols = bounded(
        dig(spec, "protocolVersions"),
        limit=MAX_PROTOCOLS,
        source=source,
        field=f"{path}.protocolVersions",
        findings=out,
    )
    out.runtimes.append(
        Runtime(
            source,
            source.namespace,
            source.name,
            tuple(images),
            formats,
            disabled=dig(spec, "disabled") is True,
            has_main_container=any(
                isinstance(c, Mapping) and c.get("name") == MAIN_CONTAINER for c in _containers(spec)
            ),
            multi_model=dig(spec, "multiModel") is True,
            multi_node=isinstance(worker_spec, Mapping),
            protocols=tuple(clip(p, MAX_TEXT) for p in protocols if isinstance(p, str)),
            created=created,
            scheduling=scheduling(spec, field=path, source=source, findings=out),
            worker_scheduling=(
                scheduling(worker_spec, field=f"{path}.workerSpec", source=source, findings=out)
                if isinstance(worker_spec, Mapping)
                else PodScheduling()
            ),
            has_worker_container=any(
                isinstance(c, Mapping) and c.get("name") == WORKER_CONTAINER for c in _containers(worker_spec)
            ),
        )
    )
    return out


def _containers(spec: Any) -> list[Any]:
    """`spec.containers` as far as `containers()` reads it (its excess is already reported)."""
    value = dig(spec, "containers")
    return value[:MAX_CONTAINERS] if isinstance(value, list) else []


def _optional_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _optional_str(value: Any) -> str | None:
    """A string, clipped (a clipped name matches nothing), or None when not a string."""
    return clip(value, MAX_NAME) if isinstance(value, str) else None


def read_inference_service(obj: Mapping[str, Any]) -> ServingFindings:
    out = ServingFindings()
    source = object_ref(INFERENCE_SERVICE, obj)
    ready = is_ready(obj)
    state = State.READY if ready else State.NOT_READY
    predictor = dig(obj, "spec", "predictor")
    uris = _storage_uris(predictor, path="spec.predictor", source=source, out=out)
    own_initializer = _has_init_container(predictor, STORAGE_INITIALIZER_CONTAINER)
    worker_spec = dig(predictor, "workerSpec")
    worker = _worker(worker_spec, source=source, out=out) if isinstance(worker_spec, Mapping) else None
    models = _models(predictor)

    for path, key, model, model_format in models:
        override = None
        if model.get("image") is not None:
            override = parse_image(model.get("image"), source=source, field=f"{path}.image", findings=out)
        protocol = model.get("protocolVersion")
        single = _storage_uri(model.get("storageUri"), field=f"{path}.storageUri", source=source, out=out)
        groups = ((single,) if single else (), uris)
        storage = tuple(ModelStorage(group, own_initializer=own_initializer) for group in groups if group)
        out.model_servers.append(
            ModelServer(
                source=source,
                runtime=clip(as_str(model.get("runtime")), MAX_NAME),
                model_format=clip(model_format, MAX_NAME),
                format_version=_optional_str(dig(model, "modelFormat", "version")),
                runtime_version=clip(as_str(model.get("runtimeVersion")), MAX_NAME),
                image_override=override,
                ready=ready,
                protocol=clip(protocol, MAX_TEXT) if isinstance(protocol, str) else DEFAULT_PROTOCOL,
                multi_node=worker is not None,
                scheduling=scheduling(predictor, field="spec.predictor", source=source, findings=out, model_key=key),
                storage=storage,
                worker=worker,
            )
        )

    for component in ("predictor", "transformer", "explainer"):
        pod_spec = dig(obj, "spec", component)
        found = list(containers(pod_spec, f"spec.{component}", source=source, findings=out))
        own = _component_storage(component, pod_spec, uris=uris if not models else (), source=source, out=out)
        if not found and own is None:
            continue
        pod = scheduling(pod_spec, field=f"spec.{component}", source=source, findings=out)
        if pod is None:
            continue
        placement = intern(pod.placement())
        for _, field_path, value in found:
            image = parse_image(value, source=source, field=field_path, findings=out)
            if image is not None:
                out.use(Usage(image, source, field_path, Role.CUSTOM_CONTAINER, state, placement=placement))
        if own is not None:
            out.storage_users.append(StorageUser(source, ready, own, placement))
    return out


def _component_storage(
    component: str, pod_spec: Any, *, uris: tuple[StorageURI, ...], source: ObjectRef, out: Findings
) -> ModelStorage | None:
    """The storage KServe sets up for a component that is not a model predictor: the
    explainer's `storageUris`, and a custom predictor's (`uris`, read already)."""
    if component == "explainer":
        uris = _storage_uris(pod_spec, path="spec.explainer", source=source, out=out)
    elif component != "predictor":
        return None
    if not uris:
        return None
    return ModelStorage(uris, own_initializer=_has_init_container(pod_spec, STORAGE_INITIALIZER_CONTAINER))


def _models(predictor: Any) -> list[tuple[str, str, Mapping[str, Any], str]]:
    """`(field path, key, model spec, model format)` for `predictor.model` and the older
    framework keys."""
    found = []
    model = dig(predictor, "model")
    if isinstance(model, Mapping):
        found.append(("spec.predictor.model", "model", model, as_str(dig(model, "modelFormat", "name"))))
    for framework in FRAMEWORKS:
        legacy = dig(predictor, framework)
        if isinstance(legacy, Mapping):
            found.append((f"spec.predictor.{framework}", framework, legacy, framework))
    return found


def _storage_uris(component: Any, *, path: str, source: ObjectRef, out: Findings) -> tuple[StorageURI, ...]:
    """`storageUris[]` of a predictor or explainer: objects `{uri, mountPath}` (kserve/kserve
    `pkg/apis/serving/v1beta1/predictor.go` `StorageUri`), at most MAX_STORAGE_URIS."""
    listed = bounded(
        dig(component, "storageUris"), limit=MAX_STORAGE_URIS, source=source, field=f"{path}.storageUris", findings=out
    )
    found = []
    for i, item in enumerate(listed):
        uri = _storage_uri(dig(item, "uri"), field=f"{path}.storageUris[{i}].uri", source=source, out=out)
        if uri is not None:
            found.append(uri)
    return tuple(found)


def _storage_uri(value: Any, *, field: str, source: ObjectRef, out: Findings) -> StorageURI | None:
    """One storage URI, classified; an OCI one's image parsed (a bad one is a rejection), an
    `oci+fetch://` one recorded as not pre-pullable."""
    if not isinstance(value, str) or not value:
        return None
    uri = value[:MAX_URI]
    scheme = scheme_of(uri)
    image = None
    if scheme in (Scheme.MODELCAR, Scheme.IMAGE_VOLUME, Scheme.FETCH):
        image = parse_image(normalized_oci(value), source=source, field=field, findings=out, modelcar=True)
    if scheme is Scheme.FETCH and image is not None:
        out.skip(NotPrepullable(str(image), FETCH_REASON, source, field))
        image = None
    return StorageURI(uri, field, scheme, image)


def _has_init_container(pod_spec: Any, name: str) -> bool:
    listed = as_list(dig(pod_spec, "initContainers"))[:MAX_CONTAINERS]
    return any(isinstance(c, Mapping) and c.get("name") == name for c in listed)


def _worker(spec: Mapping[str, Any], *, source: ObjectRef, out: Findings) -> Worker:
    """`spec.predictor.workerSpec`: KServe merges its first container onto the runtime's
    worker-container and keeps only that container (`multiNodeProcess`); its init
    containers stay in the worker pod."""
    path = "spec.predictor.workerSpec"
    pod = scheduling(spec, field=path, source=source, findings=out)
    listed = [c for c in as_list(spec.get("containers"))[:MAX_CONTAINERS] if isinstance(c, Mapping)]
    first = listed[0] if listed else {}
    name = clip(as_str(first.get("name")), MAX_NAME_IN_FIELD) or "0"
    field = f"{path}.containers[{name}].image"
    if pod is not None and first:
        try:
            pod = replace(pod, model=read_resources(first, field=f"{path}.containers[{name}]", source=str(source)))
        except PlacementError as e:
            out.reject(Rejection(reference="", reason=clip(e.problem), source=source, field=clip(e.field)))
            pod = None
    image_set = first.get("image") is not None
    image = parse_image(first.get("image"), source=source, field=field, findings=out) if image_set else None
    init_images = []
    for _, init_field, value in containers(
        {"initContainers": spec.get("initContainers")}, path, source=source, findings=out
    ):
        parsed = parse_image(value, source=source, field=init_field, findings=out)
        if parsed is not None:
            init_images.append((parsed, init_field))
    return Worker(pod, image, image_set, field, tuple(init_images))
