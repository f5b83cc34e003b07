"""LLMInferenceServices and the LLMInferenceServiceConfigs they take their images from.

Both kinds share one spec type upstream (kserve/kserve `pkg/apis/serving/v1alpha2/
llm_inference_service_types.go`: `LLMInferenceServiceConfig.Spec` is an
`LLMInferenceServiceSpec`), so both are read into one value, `LLMSpec`: the model URI, the
storage initializer switch, the five pod templates (`template`, `worker`,
`prefill.template`, `prefill.worker`, `router.scheduler.template`, each a `corev1.PodSpec`)
with their images and scheduling fields, and the fields KServe decides which well-known
configs apply from (`prefill`, `worker`, `parallelism`, `router.scheduler`,
`scheduler.pool.ref`, `router.route`, `route.http.refs`).

`merge` combines two of them as KServe's `mergeSpecs` does (`pkg/controller/v1alpha2/
llmisvc/config_merge.go`): a strategic merge patch made from the override against an empty
spec, so a field the override leaves out never clears the base's, and for the parts read
here:

- containers and init containers merge by `name` (`patchMergeKey`); an override that sets
  a container's `image` replaces it, its `resources.requests`/`limits` merge key by key;
- `nodeSelector` merges key by key; `tolerations` (atomic) is replaced by an override that
  lists any; a required node affinity (its `nodeSelectorTerms` is atomic) by one that sets
  one;
- scalars (`model.uri`, `storageInitializer.enabled`, each `parallelism` field) are
  replaced when the override sets them; a section present in any layer stays present.

Which configs are merged, from where and in what order is `agent.resolve_llm`'s. Nothing
here follows a config's own `spec.baseRefs`: KServe does not either (`combineBaseRefsConfig`
looks up only the service's `baseRefs`), so there are no chains to bound.

Readers are bounded like every source: at most MAX_CONTAINERS containers per list,
MAX_BASE_REFS base refs (the excess is one rejection naming the field), and the status
annotations are read only under the keys KServe writes (one per well-known config).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from agent.model import KindName, ObjectRef
from agent.placement import PodScheduling, Resources
from agent.refs import ImageRef
from agent.sources.common import (
    MAX_NAME,
    Findings,
    as_str,
    bounded,
    clip,
    containers,
    dig,
    is_ready,
    object_ref,
    parse_image,
    scheduling,
)
from agent.storage import MAX_URI

SERVICE = KindName.LLM_INFERENCE_SERVICE
CONFIG = KindName.LLM_INFERENCE_SERVICE_CONFIG
MAX_BASE_REFS = 16  # `spec.baseRefs` of one object (KServe sets no limit; real services name one or two)
# The pod templates of an LLMInferenceServiceSpec, by their path under `spec`.
WORKLOAD_PODS = ("template", "worker", "prefill.template", "prefill.worker")
SCHEDULER_POD = "router.scheduler.template"
PODS = (*WORKLOAD_PODS, SCHEDULER_POD)
PARALLELISM = ("data", "dataLocal", "pipeline")  # what `IsDataParallel` / `IsPipelineParallel` read
# `WellKnownConfigResolver` keys status annotations "serving.kserve.io/" + the config's suffix.
STATUS_ANNOTATION_PREFIX = "serving.kserve.io/"
WELL_KNOWN_SUFFIXES = (
    "config-llm-template",
    "config-llm-decode-template",
    "config-llm-prefill-template",
    "config-llm-worker-data-parallel",
    "config-llm-decode-worker-data-parallel",
    "config-llm-prefill-worker-data-parallel",
    "config-llm-worker-pipeline-parallel",
    "config-llm-decode-worker-pipeline-parallel",
    "config-llm-prefill-worker-pipeline-parallel",
    "config-llm-scheduler",
    "config-llm-router-route",
)


@dataclass(frozen=True, slots=True)
class PodContainer:
    """One container of a pod template, as far as its image goes."""

    name: str
    init: bool
    image: ImageRef | None  # None: no image here, or a rejected one
    image_set: bool  # the layer names an image (a rejected one too: it replaces the base's)
    field: str
    supplier: ObjectRef | None = None  # the config the image came from; None: the service itself


@dataclass(frozen=True, slots=True)
class PodPart:
    """One pod template: its containers and where it may run. `scheduling` None: a layer's
    scheduling fields cannot be read (the object is rejected there; KServe's dry run of the
    merged spec would fail), so the pod's images are not used."""

    containers: tuple[PodContainer, ...] = ()
    scheduling: PodScheduling | None = PodScheduling()


@dataclass(frozen=True, slots=True)
class LLMSpec:
    """What the agent reads of an LLMInferenceServiceSpec (see the module docstring)."""

    model_uri: str = ""  # `spec.model.uri`, at most MAX_URI characters; "" when unset
    model_supplier: ObjectRef | None = None
    storage_initializer: bool | None = None  # `spec.storageInitializer.enabled`; None: unset (on)
    pods: tuple[tuple[str, PodPart], ...] = ()  # by PODS key, only those set
    prefill: bool = False  # `spec.prefill` set
    parallelism: tuple[tuple[str, int], ...] = ()  # `spec.parallelism` (the main workload)
    prefill_parallelism: tuple[tuple[str, int], ...] = ()
    scheduler: bool = False  # `spec.router.scheduler` set
    pool_ref: bool = False  # `router.scheduler.pool.ref.name` non-empty (`HasRef`)
    route: bool = False  # `spec.router.route` set
    http_refs: bool = False  # `router.route.http.refs` non-empty (`HasRefs`)

    def pod(self, key: str) -> PodPart | None:
        return next((part for k, part in self.pods if k == key), None)

    def data_parallel(self, *, prefill: bool = False) -> bool:
        values = dict(self.prefill_parallelism if prefill else self.parallelism)
        return values.get("data", 0) > 0 or values.get("dataLocal", 0) > 0

    def pipeline_parallel(self, *, prefill: bool = False) -> bool:
        return dict(self.prefill_parallelism if prefill else self.parallelism).get("pipeline", 0) > 0


@dataclass(frozen=True, slots=True)
class LLMServer:
    source: ObjectRef
    ready: bool
    spec: LLMSpec
    base_refs: tuple[str, ...] = ()  # `spec.baseRefs[].name`, in order
    pinned: tuple[tuple[str, str], ...] = ()  # well-known suffix -> config name, from `status.annotations`


@dataclass(frozen=True, slots=True)
class LLMConfig:
    source: ObjectRef
    spec: LLMSpec


@dataclass
class LLMFindings(Findings):
    services: list[LLMServer] = field(default_factory=list)
    configs: list[LLMConfig] = field(default_factory=list)

    def extend(self, other: Findings) -> None:
        super().extend(other)
        if isinstance(other, LLMFindings):
            self.services.extend(other.services)
            self.configs.extend(other.configs)


def read_llm_inference_service(obj: Mapping[str, Any]) -> LLMFindings:
    out = LLMFindings()
    source = object_ref(SERVICE, obj)
    spec = dig(obj, "spec")
    refs = bounded(dig(spec, "baseRefs"), limit=MAX_BASE_REFS, source=source, field="spec.baseRefs", findings=out)
    names = tuple(clip(name, MAX_NAME) for ref in refs if (name := as_str(dig(ref, "name"))))
    notes = dig(obj, "status", "annotations")
    pinned = tuple(
        (suffix, clip(value, MAX_NAME))
        for suffix in WELL_KNOWN_SUFFIXES
        if isinstance(notes, Mapping) and (value := as_str(notes.get(STATUS_ANNOTATION_PREFIX + suffix)))
    )
    read = read_spec(spec, source=source, out=out, supplier=None)
    out.services.append(LLMServer(source, is_ready(obj), read, names, pinned))
    return out


def read_llm_inference_service_config(obj: Mapping[str, Any]) -> LLMFindings:
    out = LLMFindings()
    source = object_ref(CONFIG, obj)
    out.configs.append(LLMConfig(source, read_spec(dig(obj, "spec"), source=source, out=out, supplier=source)))
    return out


def read_spec(spec: Any, *, source: ObjectRef, out: Findings, supplier: ObjectRef | None) -> LLMSpec:
    """An LLMInferenceServiceSpec; `supplier`: the config it belongs to (None: a service)."""
    pods = []
    for key in PODS:
        pod_spec = dig(spec, *key.split("."))
        if isinstance(pod_spec, Mapping):
            pods.append((key, _pod(pod_spec, path=f"spec.{key}", source=source, out=out, supplier=supplier)))
    uri = dig(spec, "model", "uri")
    enabled = dig(spec, "storageInitializer", "enabled")
    return LLMSpec(
        model_uri=uri[:MAX_URI] if isinstance(uri, str) else "",
        model_supplier=supplier if isinstance(uri, str) and uri else None,
        storage_initializer=enabled if isinstance(enabled, bool) else None,
        pods=tuple(pods),
        prefill=isinstance(dig(spec, "prefill"), Mapping),
        parallelism=_parallelism(dig(spec, "parallelism")),
        prefill_parallelism=_parallelism(dig(spec, "prefill", "parallelism")),
        scheduler=isinstance(dig(spec, "router", "scheduler"), Mapping),
        pool_ref=bool(as_str(dig(spec, "router", "scheduler", "pool", "ref", "name"))),
        route=isinstance(dig(spec, "router", "route"), Mapping),
        http_refs=bool(dig(spec, "router", "route", "http", "refs")),
    )


def _pod(
    pod_spec: Mapping[str, Any], *, path: str, source: ObjectRef, out: Findings, supplier: ObjectRef | None
) -> PodPart:
    found = []
    for name, field_path, value in containers(pod_spec, path, source=source, findings=out):
        image = parse_image(value, source=source, field=field_path, findings=out) if value is not None else None
        init = f"{path}.initContainers[" in field_path
        found.append(PodContainer(name, init, image, value is not None, field_path, supplier))
    return PodPart(tuple(found), scheduling(pod_spec, field=path, source=source, findings=out))


def _parallelism(value: Any) -> tuple[tuple[str, int], ...]:
    if not isinstance(value, Mapping):
        return ()
    return tuple(
        (key, n) for key in PARALLELISM if isinstance(n := value.get(key), int) and not isinstance(n, bool)
    )


# -- merging -------------------------------------------------------------------------------


def merge(base: LLMSpec, override: LLMSpec) -> LLMSpec:
    """`override` merged onto `base` as KServe's `mergeSpecs` does (module docstring)."""
    pods = dict(base.pods)
    for key, part in override.pods:
        pods[key] = merge_pod(pods[key], part) if key in pods else part
    return LLMSpec(
        model_uri=override.model_uri or base.model_uri,
        model_supplier=override.model_supplier if override.model_uri else base.model_supplier,
        storage_initializer=(
            override.storage_initializer if override.storage_initializer is not None else base.storage_initializer
        ),
        pods=tuple((key, pods[key]) for key in PODS if key in pods),
        prefill=base.prefill or override.prefill,
        parallelism=tuple({**dict(base.parallelism), **dict(override.parallelism)}.items()),
        prefill_parallelism=tuple({**dict(base.prefill_parallelism), **dict(override.prefill_parallelism)}.items()),
        scheduler=base.scheduler or override.scheduler,
        pool_ref=base.pool_ref or override.pool_ref,
        route=base.route or override.route,
        http_refs=base.http_refs or override.http_refs,
    )


def merge_pod(base: PodPart, override: PodPart) -> PodPart:
    merged: dict[tuple[bool, str], PodContainer] = {(c.init, c.name): c for c in base.containers}
    for container in override.containers:
        key = (container.init, container.name)
        held = merged.get(key)
        if held is None or container.image_set:
            merged[key] = container if held is None else replace(held, **_image_of(container))
    return PodPart(tuple(merged.values()), _merge_scheduling(base.scheduling, override.scheduling))


def _image_of(container: PodContainer) -> dict[str, Any]:
    return {"image": container.image, "image_set": True, "field": container.field, "supplier": container.supplier}


def _merge_scheduling(base: PodScheduling | None, override: PodScheduling | None) -> PodScheduling | None:
    if base is None or override is None:
        return None
    resources: dict[str, Resources] = dict(base.containers)
    for name, top in override.containers:
        resources[name] = resources[name].overlay(top) if name in resources else top
    return PodScheduling(
        node_selector=tuple({**dict(base.node_selector), **dict(override.node_selector)}.items()),
        affinity=override.affinity if override.affinity is not None else base.affinity,
        tolerations=override.tolerations or base.tolerations,
        containers=tuple(resources.items()),
    )
