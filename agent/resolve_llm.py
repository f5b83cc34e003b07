"""Resolve LLMInferenceServices: each merged with the configs KServe applies to it.

Pure. KServe builds an LLMInferenceService's pods from a merge of LLMInferenceServiceConfigs
and the service (kserve/kserve `pkg/controller/v1alpha2/llmisvc/config_merge.go`
`combineBaseRefsConfig`), so the vLLM image usually comes from a config, not the service:

1. The service's `spec.baseRefs` are merged onto its spec to learn what is enabled.
2. From that, the well-known configs, in KServe's order: the scheduler's
   (`config-llm-scheduler`) when `router.scheduler` is set without `pool.ref`; the route's
   (`config-llm-router-route`) when `router.route` is set without `http.refs`; then the
   workload's: with `prefill`, a prefill config (`config-llm-prefill-template` without a
   `prefill.worker`, else `...-prefill-worker-data-parallel` / `...-pipeline-parallel` by
   `prefill.parallelism`) and a decode one (`config-llm-decode-template`,
   `...-decode-worker-...`); without it `config-llm-template`, or with a `worker`
   `config-llm-worker-data-parallel` / `...-pipeline-parallel` by `parallelism`.
3. Each name is the one KServe pinned in the service's `status.annotations`
   (`serving.kserve.io/<suffix>`, `WellKnownConfigResolver`) when there is one, else the
   controller's prefix (`LLM_INFERENCE_SERVICE_CONFIG_PREFIX`, default `kserve-`;
   OpenShift AI's operator sets it to its version, e.g. `v3-4-0-kserve-`) and the suffix.
   The route config is never pinned.
4. Each config is looked up in the service's namespace first, then KServe's (`getConfig`).
5. Merge order: the well-known configs, then `baseRefs` in order, then the service; later
   wins (`MergeSpecs`, `agent.sources.llm.merge`).

Not followed, and why: the tokenizer, latency-predictor and tracing configs (KServe applies
them from plugin names inside the scheduler's configuration text, or from fields the local
CRDs do not model; their images are sidecars of the scheduler); Go template expressions in a
config's image (KServe renders them per service; such an image is rejected as unparsable);
a config's own `spec.baseRefs` (KServe does not follow them either).

A config that is in neither namespace is reported (KServe stops with `ConfigNotFound`); the
images the others give still count, since the service's pods from an earlier reconcile keep
running. Merges of the same configs for one namespace are done once (`_Configs`), so the
cost is the services' size plus the distinct config lists, never services times configs.

The model: `spec.model.uri` of the merged spec, `oci://` a ModelCar (while the modelcar
switch is on), `hf://`/`s3://` the storage initializer unless `storageInitializer.enabled`
is false (`attachModelArtifacts`), placed with every workload pod (main, worker, prefill);
the scheduler's images go where the scheduler's template runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from agent.model import KindName, ObjectRef, Role, State, Usage
from agent.placement import Placement
from agent.refs import ImageRef
from agent.sources.common import Findings, clip, intern, parse_image
from agent.sources.llm import (
    SCHEDULER_POD,
    WORKLOAD_PODS,
    LLMConfig,
    LLMFindings,
    LLMServer,
    LLMSpec,
    merge,
)
from agent.storage import Scheme, llm_model_scheme

__all__ = ["LLMContext", "llm_usages", "well_known_configs"]

CONFIG_KIND = KindName.LLM_INFERENCE_SERVICE_CONFIG
ROUTE_SUFFIX = "config-llm-router-route"
MAX_CACHED_MERGES = 4096  # distinct (namespace, config list) merges kept; a cluster has a handful


@dataclass(frozen=True, slots=True)
class LLMContext:
    kserve_namespace: str
    prefix: str = "kserve-"  # `settings.kserve.llm_config_prefix`
    configs_listed: bool = True  # False: configs could not be listed, so a missing one is not reported
    storage_image: ImageRef | None = None  # the storage initializer's image (KServe's ConfigMap)
    storage_supplier: str = ""  # "ConfigMap NS/inferenceservice-config", for the fields
    enable_modelcar: bool = True


def well_known_configs(resolved: LLMSpec, *, pinned: Mapping[str, str], prefix: str) -> list[str]:
    """The well-known config names KServe applies to a service whose spec, merged with its
    base refs, is `resolved` (step 2 and 3 of the module docstring), in KServe's order."""

    def name(suffix: str) -> str:
        return pinned.get(suffix) or prefix + suffix

    names = []
    if resolved.scheduler and not resolved.pool_ref:
        names.append(name("config-llm-scheduler"))
    if resolved.route and not resolved.http_refs:
        names.append(prefix + ROUTE_SUFFIX)
    if resolved.prefill:
        names += _workload(resolved, prefill=True, name=name)
        names += _workload(resolved, prefill=False, name=name, role="decode-")
    else:
        names += _workload(resolved, prefill=False, name=name)
    return names


def _workload(spec: LLMSpec, *, prefill: bool, name: Callable[[str], str], role: str = "") -> list[str]:
    kind = "prefill-" if prefill else role
    worker = spec.pod("prefill.worker" if prefill else "worker")
    if worker is None:
        return [name(f"config-llm-{kind}template")]
    if spec.data_parallel(prefill=prefill):
        return [name(f"config-llm-{kind}worker-data-parallel")]
    if spec.pipeline_parallel(prefill=prefill):
        return [name(f"config-llm-{kind}worker-pipeline-parallel")]
    return []


class _Configs:
    """The configs by (namespace, name), and merges of config lists, each done once."""

    def __init__(self, configs: Iterable[LLMConfig], kserve_namespace: str) -> None:
        self._by_name: dict[tuple[str, str], LLMConfig] = {}
        for config in configs:
            self._by_name.setdefault((config.source.namespace, config.source.name), config)
        self._kserve_namespace = kserve_namespace
        self._merged: dict[tuple[str, tuple[str, ...]], tuple[LLMSpec | None, tuple[str, ...]]] = {}

    def lookup(self, namespace: str, name: str) -> LLMConfig | None:
        """`getConfig`: the service's namespace first, then KServe's."""
        return self._by_name.get((namespace, name)) or self._by_name.get((self._kserve_namespace, name))

    def merged(self, namespace: str, names: tuple[str, ...]) -> tuple[LLMSpec | None, tuple[str, ...]]:
        """The configs named, merged in order (None: none found), and the names not found."""
        key = (namespace, names)
        if key not in self._merged:
            if len(self._merged) >= MAX_CACHED_MERGES:
                self._merged.clear()
            spec: LLMSpec | None = None
            missing = []
            for name in names:
                config = self.lookup(namespace, name)
                if config is None:
                    missing.append(name)
                else:
                    spec = config.spec if spec is None else merge(spec, config.spec)
            self._merged[key] = (spec, tuple(missing))
        return self._merged[key]


def llm_usages(
    found: LLMFindings,
    context: LLMContext,
    *,
    rejections: Findings,
    problems: Callable[[str], None],
) -> Iterable[Usage]:
    configs = _Configs(found.configs, context.kserve_namespace)
    for server in found.services:
        spec, missing = _merged(server, configs, context)
        if missing and context.configs_listed:
            where = ", ".join(dict.fromkeys((server.source.namespace, context.kserve_namespace)))
            problems(
                f"{server.source}: LLMInferenceServiceConfig {', '.join(repr(clip(n)) for n in missing)} "
                f"not found in {where} (KServe stops with ConfigNotFound); the images it gives are not known"
            )
        yield from _images(server, spec, context, rejections)


def _merged(server: LLMServer, configs: _Configs, context: LLMContext) -> tuple[LLMSpec, tuple[str, ...]]:
    namespace = server.source.namespace
    base, missing_base = configs.merged(namespace, server.base_refs)
    resolved = merge(server.spec, base) if base is not None else server.spec
    names = tuple(well_known_configs(resolved, pinned=dict(server.pinned), prefix=context.prefix))
    merged, missing = configs.merged(namespace, names + server.base_refs)
    spec = merge(merged, server.spec) if merged is not None else server.spec
    return spec, tuple(dict.fromkeys((*missing, *missing_base)))


def _images(server: LLMServer, spec: LLMSpec, context: LLMContext, rejections: Findings) -> list[Usage]:
    state = State.READY if server.ready else State.NOT_READY
    found = []
    workload: list[Placement | None] = []
    for key, part in spec.pods:
        if part.scheduling is None:
            continue  # a layer's scheduling fields cannot be read: already rejected
        placement = intern(part.scheduling.placement())
        if key in WORKLOAD_PODS:
            workload.append(placement)
        role = Role.ROUTER if key == SCHEDULER_POD else Role.SERVING_RUNTIME
        for container in part.containers:
            if container.image is None:
                continue
            field, supplier = container.field, ""
            if container.supplier is not None:
                field, supplier = f"{field} ({container.supplier})", CONFIG_KIND
            usage = Usage(container.image, server.source, field, role, state, placement=placement, supplier=supplier)
            found.append(usage)
    found += _model(server, spec, context, rejections, workload or [None])
    return found


def _model(
    server: LLMServer, spec: LLMSpec, context: LLMContext, rejections: Findings, placements: list[Placement | None]
) -> list[Usage]:
    """The model's image (a ModelCar) or the storage initializer that downloads it."""
    state = State.READY if server.ready else State.NOT_READY
    field = "spec.model.uri" + (f" ({spec.model_supplier})" if spec.model_supplier else "")
    supplier = CONFIG_KIND if spec.model_supplier else ""
    scheme = llm_model_scheme(spec.model_uri)
    image: ImageRef | None = None
    role = Role.MODELCAR
    if scheme is Scheme.MODELCAR and context.enable_modelcar:
        source: ObjectRef = spec.model_supplier or server.source
        image = parse_image(spec.model_uri, source=source, field="spec.model.uri", findings=rejections, modelcar=True)
    elif scheme is Scheme.DOWNLOAD and spec.storage_initializer is not False:
        image, role = context.storage_image, Role.STORAGE_INITIALIZER
        field, supplier = f"spec.model.uri: storage initializer ({context.storage_supplier})", KindName.CONFIG_MAP
    if image is None:
        return []
    return [
        Usage(image, server.source, field, role, state, placement=p, supplier=supplier) for p in placements
    ]
