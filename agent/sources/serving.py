"""KServe: serving runtimes, runtime templates, InferenceServices, LLMInferenceServices.

Runtimes (ServingRuntime, ClusterServingRuntime, and the ServingRuntimes inside
OpenShift AI's runtime Templates) are read into `Runtime` values. Those offered to
everyone (cluster-scoped, templates, runtimes in the applications namespace) earn the
`defined` baseline; runtimes in project namespaces count only through the
InferenceServices that use them.

An InferenceService becomes a `ModelServer`: which runtime it names or which model format
it needs, its overrides and its ModelCar images. Matching it to a runtime needs every
runtime first, so that happens in `agent.resolve`, which also merges where the predictor
pod may run with the runtime's (`agent.placement.merge_kserve`, as KServe builds the pod).
What it names itself in custom predictor, transformer and explainer containers becomes
usages here directly, placed by that component's own pod spec.

An offered runtime's images (a cluster runtime, a runtime template, a runtime of the
applications namespace) go where its `opendatahub.io/recommended-accelerators` annotation
sends them, else where a plain pod could run.

What a runtime records is what KServe's auto-selection reads (kserve/kserve,
`pkg/apis/serving/v1beta1/predictor_model.go` `GetSupportingRuntimes`, and
`pkg/apis/serving/v1alpha1/servingruntime_types.go`): the supported model formats with
their optional version and priority, `multiModel`, `protocolVersions`, whether it has a
`workerSpec`, and its creation time (the tie-break).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.model import KindName, ObjectRef, Role, State, Usage
from agent.placement import Placement, PodScheduling
from agent.refs import ImageRef, is_modelcar_uri
from agent.sources.common import (
    MAX_CONTAINERS,
    MAX_MODEL_FORMATS,
    MAX_NAME,
    MAX_PROTOCOLS,
    MAX_STORAGE_URIS,
    MAX_TEMPLATE_OBJECTS,
    MAX_TEXT,
    Findings,
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

SERVING_RUNTIME = KindName.SERVING_RUNTIME
CLUSTER_SERVING_RUNTIME = KindName.CLUSTER_SERVING_RUNTIME
TEMPLATE = KindName.TEMPLATE
INFERENCE_SERVICE = KindName.INFERENCE_SERVICE
LLM_INFERENCE_SERVICE = KindName.LLM_INFERENCE_SERVICE
TEMPLATE_LABEL_SELECTOR = "opendatahub.io/dashboard=true"
RECOMMENDED_ACCELERATORS = "opendatahub.io/recommended-accelerators"
MAIN_CONTAINER = "kserve-container"
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
    modelcars: tuple[tuple[ImageRef, str], ...] = ()  # (image, field) of its `oci://` storage


@dataclass
class ServingFindings(Findings):
    runtimes: list[Runtime] = field(default_factory=list)
    model_servers: list[ModelServer] = field(default_factory=list)

    def extend(self, other: Findings) -> None:
        super().extend(other)
        if isinstance(other, ServingFindings):
            self.runtimes.extend(other.runtimes)
            self.model_servers.extend(other.model_servers)


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
    main_seen = False
    for pod_path, pod_spec in ((path, spec), (f"{path}.workerSpec", dig(spec, "workerSpec"))):
        for name, field_path, value in containers(pod_spec, pod_path, source=source, findings=out):
            main = name == MAIN_CONTAINER and field_path == main_field and not main_seen
            main_seen = main_seen or main
            image = parse_image(value, source=source, field=field_path, findings=out)
            if image is not None:
                images.append(RuntimeImage(name, field_path, image, main))
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
            multi_node=isinstance(dig(spec, "workerSpec"), Mapping),
            protocols=tuple(clip(p, MAX_TEXT) for p in protocols if isinstance(p, str)),
            created=created,
            scheduling=scheduling(spec, field=path, source=source, findings=out),
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

    for path, key, model, model_format in _models(predictor):
        override = None
        if model.get("image") is not None:
            override = parse_image(model.get("image"), source=source, field=f"{path}.image", findings=out)
        protocol = model.get("protocolVersion")
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
                multi_node=isinstance(dig(predictor, "workerSpec"), Mapping),
                scheduling=scheduling(predictor, field="spec.predictor", source=source, findings=out, model_key=key),
                modelcars=_storage(model, path=path, source=source, out=out),
            )
        )

    for component in ("predictor", "transformer", "explainer"):
        pod_spec = dig(obj, "spec", component)
        found = list(containers(pod_spec, f"spec.{component}", source=source, findings=out))
        if not found:
            continue
        pod = scheduling(pod_spec, field=f"spec.{component}", source=source, findings=out)
        if pod is None:
            continue
        placement = intern(pod.placement())
        for _, field_path, value in found:
            image = parse_image(value, source=source, field=field_path, findings=out)
            if image is not None:
                out.use(Usage(image, source, field_path, Role.CUSTOM_CONTAINER, state, placement=placement))
    return out


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


def _storage(
    model: Mapping[str, Any], *, path: str, source: ObjectRef, out: Findings
) -> tuple[tuple[ImageRef, str], ...]:
    """The ModelCar images of a predictor's storage, with their fields."""
    found: list[tuple[ImageRef, str]] = []
    uris: list[tuple[str, Any]] = [(f"{path}.storageUri", model.get("storageUri"))]
    listed = bounded(
        model.get("storageUris"), limit=MAX_STORAGE_URIS, source=source, field=f"{path}.storageUris", findings=out
    )
    for i, item in enumerate(listed):
        uris.append((f"{path}.storageUris[{i}]", item.get("uri") if isinstance(item, Mapping) else item))
    for field_path, uri in uris:
        if isinstance(uri, str) and is_modelcar_uri(uri):
            image = parse_image(uri, source=source, field=field_path, findings=out, modelcar=True)
            if image is not None:
                found.append((image, field_path))
    return tuple(found)


def read_llm_inference_service(obj: Mapping[str, Any]) -> Findings:
    """`spec.model.uri` (a ModelCar when `oci://`) and the images of the pod templates it
    spells out, each placed by its own template; the ModelCar goes with the main workload
    (`spec.template`). Images inherited through `spec.baseRefs` (LLMInferenceServiceConfig)
    are not followed, and a ModelCar whose template comes from them is placed nowhere in
    particular (it counts for every pool)."""
    out = Findings()
    source = object_ref(LLM_INFERENCE_SERVICE, obj)
    state = State.READY if is_ready(obj) else State.NOT_READY
    spec = dig(obj, "spec")
    pods: list[tuple[str, Any, Placement]] = []
    unreadable = False
    for path, pod_spec in (
        ("spec.template", dig(spec, "template")),
        ("spec.worker", dig(spec, "worker")),
        ("spec.prefill.template", dig(spec, "prefill", "template")),
        ("spec.prefill.worker", dig(spec, "prefill", "worker")),
    ):
        if not isinstance(pod_spec, Mapping):
            continue
        pod = scheduling(pod_spec, field=path, source=source, findings=out)
        if pod is None:
            unreadable = unreadable or path == "spec.template"
            continue
        pods.append((path, pod_spec, intern(pod.placement())))
    uri = dig(spec, "model", "uri")
    if isinstance(uri, str) and is_modelcar_uri(uri) and not unreadable:
        image = parse_image(uri, source=source, field="spec.model.uri", findings=out, modelcar=True)
        main = next((placement for path, _, placement in pods if path == "spec.template"), None)
        if image is not None:
            out.use(Usage(image, source, "spec.model.uri", Role.MODELCAR, state, placement=main))
    for path, pod_spec, placement in pods:
        for _, field_path, value in containers(pod_spec, path, source=source, findings=out):
            image = parse_image(value, source=source, field=field_path, findings=out)
            if image is not None:
                out.use(Usage(image, source, field_path, Role.SERVING_RUNTIME, state, placement=placement))
    return out
