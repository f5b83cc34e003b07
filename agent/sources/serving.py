"""KServe: serving runtimes, runtime templates, InferenceServices, LLMInferenceServices.

Runtimes (ServingRuntime, ClusterServingRuntime, and the ServingRuntimes inside
OpenShift AI's runtime Templates) are read into `Runtime` values. Those offered to
everyone (cluster-scoped, templates, runtimes in the applications namespace) earn the
`defined` baseline; runtimes in project namespaces count only through the
InferenceServices that use them.

An InferenceService becomes a `ModelServer`: which runtime it names or which model format
it needs, and its overrides. Matching it to a runtime needs every runtime first, so that
happens in `agent.resolve`. What it names itself (ModelCar `oci://` storage, custom
predictor and transformer containers) becomes usages here directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.model import ObjectRef, Role, State, Usage
from agent.refs import ImageRef, is_modelcar_uri
from agent.sources.common import (
    Findings,
    as_list,
    as_str,
    containers,
    dig,
    is_ready,
    object_ref,
    parse_image,
)

SERVING_RUNTIME = "ServingRuntime"
CLUSTER_SERVING_RUNTIME = "ClusterServingRuntime"
TEMPLATE = "Template"
INFERENCE_SERVICE = "InferenceService"
LLM_INFERENCE_SERVICE = "LLMInferenceService"
TEMPLATE_LABEL_SELECTOR = "opendatahub.io/dashboard=true"
MAIN_CONTAINER = "kserve-container"
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
    version: str
    auto_select: bool
    priority: int


@dataclass(frozen=True, slots=True)
class RuntimeImage:
    container: str
    field: str
    image: ImageRef


@dataclass(frozen=True, slots=True)
class Runtime:
    source: ObjectRef
    namespace: str  # "" for a ClusterServingRuntime
    name: str
    images: tuple[RuntimeImage, ...]
    formats: tuple[ModelFormat, ...]
    disabled: bool

    def supports(self, model_format: str, version: str) -> ModelFormat | None:
        """The auto-selectable format entry matching, as KServe's auto-selection checks it."""
        for f in self.formats:
            if (
                f.auto_select
                and f.name.lower() == model_format.lower()
                and (not version or not f.version or f.version == version)
            ):
                return f
        return None


@dataclass(frozen=True, slots=True)
class ModelServer:
    """An InferenceService predictor whose runtime is still to be found."""

    source: ObjectRef
    runtime: str  # "" = auto-select by model format
    model_format: str
    format_version: str
    runtime_version: str
    image_override: ImageRef | None
    ready: bool


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
    return _runtime(obj.get("spec"), source=source, path="spec", offered=offered)


def read_template(obj: Mapping[str, Any]) -> ServingFindings:
    """An OpenShift Template holding ServingRuntimes in `objects[]` (a runtime offered to all)."""
    out = ServingFindings()
    source = object_ref(TEMPLATE, obj)
    for i, item in enumerate(as_list(obj.get("objects"))):
        if isinstance(item, Mapping) and item.get("kind") == SERVING_RUNTIME:
            found = _runtime(item.get("spec"), source=source, path=f"objects[{i}].spec", offered=True)
            out.usages.extend(found.usages)
            out.rejections.extend(found.rejections)  # template runtimes are not addressable by name
    return out


def _runtime(spec: Any, *, source: ObjectRef, path: str, offered: bool) -> ServingFindings:
    out = ServingFindings()
    images: list[RuntimeImage] = []
    for pod_path, pod_spec in ((path, spec), (f"{path}.workerSpec", dig(spec, "workerSpec"))):
        for name, field_path, value in containers(pod_spec, pod_path):
            image = parse_image(value, source=source, field=field_path, findings=out)
            if image is not None:
                images.append(RuntimeImage(name, field_path, image))
                if offered:
                    out.usages.append(Usage(image, source, field_path, Role.SERVING_RUNTIME, State.DEFINED))
    formats = tuple(
        ModelFormat(
            name=as_str(f.get("name")),
            version=as_str(f.get("version")),
            auto_select=f.get("autoSelect") is True,
            priority=_int(f.get("priority")),
        )
        for f in as_list(dig(spec, "supportedModelFormats"))
        if isinstance(f, Mapping)
    )
    out.runtimes.append(
        Runtime(source, source.namespace, source.name, tuple(images), formats, dig(spec, "disabled") is True)
    )
    return out


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def read_inference_service(obj: Mapping[str, Any]) -> ServingFindings:
    out = ServingFindings()
    source = object_ref(INFERENCE_SERVICE, obj)
    ready = is_ready(obj)
    state = State.READY if ready else State.NOT_READY
    predictor = dig(obj, "spec", "predictor")

    for path, model, model_format in _models(predictor):
        override = None
        if model.get("image") is not None:
            override = parse_image(model.get("image"), source=source, field=f"{path}.image", findings=out)
        out.model_servers.append(
            ModelServer(
                source=source,
                runtime=as_str(model.get("runtime")),
                model_format=model_format,
                format_version=as_str(dig(model, "modelFormat", "version")),
                runtime_version=as_str(model.get("runtimeVersion")),
                image_override=override,
                ready=ready,
            )
        )
        _storage(model, path=path, source=source, state=state, out=out)

    for component in ("predictor", "transformer", "explainer"):
        for _, field_path, value in containers(dig(obj, "spec", component), f"spec.{component}"):
            image = parse_image(value, source=source, field=field_path, findings=out)
            if image is not None:
                out.usages.append(Usage(image, source, field_path, Role.CUSTOM_CONTAINER, state))
    return out


def _models(predictor: Any) -> list[tuple[str, Mapping[str, Any], str]]:
    """`(field path, model spec, model format)` for `predictor.model` and the older framework keys."""
    found = []
    model = dig(predictor, "model")
    if isinstance(model, Mapping):
        found.append(("spec.predictor.model", model, as_str(dig(model, "modelFormat", "name"))))
    for framework in FRAMEWORKS:
        legacy = dig(predictor, framework)
        if isinstance(legacy, Mapping):
            found.append((f"spec.predictor.{framework}", legacy, framework))
    return found


def _storage(model: Mapping[str, Any], *, path: str, source: ObjectRef, state: State, out: Findings) -> None:
    uris: list[tuple[str, Any]] = [(f"{path}.storageUri", model.get("storageUri"))]
    for i, item in enumerate(as_list(model.get("storageUris"))):
        uris.append((f"{path}.storageUris[{i}]", item.get("uri") if isinstance(item, Mapping) else item))
    for field_path, uri in uris:
        if isinstance(uri, str) and is_modelcar_uri(uri):
            image = parse_image(uri, source=source, field=field_path, findings=out, modelcar=True)
            if image is not None:
                out.usages.append(Usage(image, source, field_path, Role.MODELCAR, state))


def read_llm_inference_service(obj: Mapping[str, Any]) -> Findings:
    """`spec.model.uri` (a ModelCar when `oci://`) and the images of the pod templates it
    spells out. Images inherited through `spec.baseRefs` (LLMInferenceServiceConfig) are
    not followed."""
    out = Findings()
    source = object_ref(LLM_INFERENCE_SERVICE, obj)
    state = State.READY if is_ready(obj) else State.NOT_READY
    uri = dig(obj, "spec", "model", "uri")
    if isinstance(uri, str) and is_modelcar_uri(uri):
        image = parse_image(uri, source=source, field="spec.model.uri", findings=out, modelcar=True)
        if image is not None:
            out.usages.append(Usage(image, source, "spec.model.uri", Role.MODELCAR, state))
    spec = dig(obj, "spec")
    for path, pod_spec in (
        ("spec.template", dig(spec, "template")),
        ("spec.worker", dig(spec, "worker")),
        ("spec.prefill.template", dig(spec, "prefill", "template")),
        ("spec.prefill.worker", dig(spec, "prefill", "worker")),
    ):
        for _, field_path, value in containers(pod_spec, path):
            image = parse_image(value, source=source, field=field_path, findings=out)
            if image is not None:
                out.usages.append(Usage(image, source, field_path, Role.SERVING_RUNTIME, state))
    return out
