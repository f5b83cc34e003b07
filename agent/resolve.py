"""Resolve: turn an `Observation` into the final list of usages, one spelling per image.

Pure. Two things need more than one object to decide, so they happen here rather than in
the sources:

- **Aliases.** A workbench may name its image by the internal-registry tag
  (`image-registry.openshift-image-registry.svc:5000/NS/STREAM:TAG`), by the stream's
  `from` reference, or by the resolved digest. All three are one image: each usage is
  rewritten to the stream tag's resolved reference, so it is counted once. Only streams
  the usage may trust speak for it: those of the applications namespace and, first, those
  of the usage's own namespace (`StreamFindings.alias`); the same holds for the stream tag
  a Notebook's `last-image-selection` names. `image_as_used` applies the same rule to an
  image a pod in a namespace names (a kubelet event's), so it matches the usages.
- **Runtimes.** An InferenceService names a runtime (a ServingRuntime in its namespace,
  else a ClusterServingRuntime of that name) or lets KServe pick one, as KServe's
  `GetSupportingRuntimes` does (kserve/kserve `pkg/apis/serving/v1beta1/predictor_model.go`):
  not disabled, not multi-model (ModelMesh), multi-node exactly when the predictor has a
  `workerSpec`, supporting the model format label and the predictor's protocol; namespace
  runtimes always before cluster ones; within each, highest priority of the model format
  first (unset last), then the lowest protocol version, the newest, the name.
  `runtimeVersion` replaces the `kserve-container` image's tag unless the image is pinned
  by digest; `image` replaces it outright. A service whose runtime cannot be found, or whose
  runtime has no `kserve-container`, is reported as a problem, not an error (its ModelCar
  images still count). Every image of a predictor is placed where KServe would run the
  predictor pod: its spec merged with the runtime's (`agent.placement.merge_kserve`).

Cost grows with the objects, never with their product (tenants write both sides): an alias
is two dict reads, a runtime is chosen from an index built once (`_Selector`), and the
problems kept are bounded like the rejections (`Inventory`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from agent.model import KindName, NotPrepullable, ObjectRef, Rejection, Role, State, StreamTag, Usage
from agent.placement import Placement, merge_kserve, merge_kserve_worker
from agent.refs import ImageRef, InvalidReference
from agent.resolve_llm import LLMContext, llm_usages
from agent.sources import Observation
from agent.sources.common import MAX_PROBLEMS_KEPT, Findings, clip, intern
from agent.sources.imagestreams import StreamFindings
from agent.sources.kserve import CONFIG_MAP_NAME
from agent.sources.serving import (
    MAIN_CONTAINER,
    WORKER_CONTAINER,
    ModelServer,
    ModelStorage,
    Runtime,
    StorageUser,
    model_label,
)
from agent.storage import Scheme, StorageConfig, StorageContainer, initializer_uri, storage_container_for


@dataclass(frozen=True, slots=True)
class Inventory:
    """The usages to plan from, the rejected references, and what could not be resolved.

    `rejections` and `problems` hold the first `MAX_REJECTIONS_KEPT` / `MAX_PROBLEMS_KEPT`
    (agent.sources.common); `rejections_total` and `problems_total` count them all.
    """

    usages: tuple[Usage, ...]
    rejections: tuple[Rejection, ...]
    problems: tuple[str, ...]
    rejections_total: int = -1  # -1: as many as kept (an Inventory built by hand)
    problems_total: int = -1
    skipped: tuple[NotPrepullable, ...] = ()  # images pre-pulling cannot help (the first ones)
    skipped_total: int = -1

    def __post_init__(self) -> None:
        if self.rejections_total < 0:
            object.__setattr__(self, "rejections_total", len(self.rejections))
        if self.problems_total < 0:
            object.__setattr__(self, "problems_total", len(self.problems))
        if self.skipped_total < 0:
            object.__setattr__(self, "skipped_total", len(self.skipped))


@dataclass
class _Problems:
    kept: list[str] = field(default_factory=list)
    total: int = 0

    def add(self, problem: str) -> None:
        self.total += 1
        if len(self.kept) < MAX_PROBLEMS_KEPT:
            self.kept.append(problem)


def resolve(observation: Observation, *, llm_config_prefix: str = "kserve-") -> Inventory:
    """`llm_config_prefix`: the well-known LLMInferenceServiceConfig names' prefix
    (`settings.kserve.llm_config_prefix`)."""
    rejections = Findings()
    for found in (observation.streams, observation.workloads, observation.serving, observation.llm, observation.kserve):
        rejections.extend(
            Findings(
                rejections=found.rejections,
                rejections_dropped=found.rejections_dropped,
                skipped=found.skipped,
                skipped_dropped=found.skipped_dropped,
            )
        )
    problems = _Problems()
    storage = _Storage.of(observation)
    serving = observation.serving
    served = [
        *_model_server_usages(serving.model_servers, serving.runtimes, rejections, problems, storage),
        *(u for user in serving.storage_users for u in _storage_user_usages(user, storage)),
        *llm_usages(
            observation.llm,
            LLMContext(
                kserve_namespace=observation.kserve_namespace or observation.applications_namespace,
                prefix=llm_config_prefix,
                configs_listed=KindName.LLM_INFERENCE_SERVICE_CONFIG in observation.listed,
                storage_image=storage.config.image if storage.config else None,
                storage_supplier=storage.config_field,
                enable_modelcar=storage.enable_modelcar,
            ),
            rejections=rejections,
            problems=problems.add,
        ),
    ]
    unify = _Aliases(observation)
    usages = tuple(
        unify(u)
        for u in (
            *observation.streams.usages,
            *observation.workloads.usages,
            *observation.serving.usages,
            *served,
        )
    )
    return Inventory(
        usages,
        tuple(rejections.rejections),
        tuple(problems.kept),
        rejections_total=rejections.rejections_total,
        problems_total=problems.total,
        skipped=tuple(rejections.skipped),
        skipped_total=rejections.skipped_total,
    )

def image_as_used(observation: Observation, ref: ImageRef, *, namespace: str) -> ImageRef:
    """`ref` as a pod in `namespace` names it, in the spelling the usages have after
    `resolve`: the image a stream tag's other spelling stands for (`StreamFindings.alias`),
    else `ref` itself."""
    resolved = observation.streams.alias(
        str(ref), namespace=namespace, applications_namespace=observation.applications_namespace
    )
    return resolved if resolved is not None else ref


@dataclass(frozen=True)
class _Storage:
    """What a model's storage makes KServe pull, with this cycle's KServe configuration."""

    config: StorageConfig | None  # None: the ConfigMap was not read
    config_field: str  # "(ConfigMap NS/inferenceservice-config)", for the usages' fields
    containers: tuple[StorageContainer, ...]

    @classmethod
    def of(cls, observation: Observation) -> _Storage:
        found = observation.kserve
        where = found.storage_config_source
        namespace = observation.kserve_namespace or observation.applications_namespace
        name = str(where) if where is not None else f"{KindName.CONFIG_MAP} {namespace}/{CONFIG_MAP_NAME}"
        return cls(found.storage_config, name, tuple(found.storage_containers))

    @property
    def enable_modelcar(self) -> bool:
        return self.config.enable_modelcar if self.config is not None else True

    def images(self, storage: ModelStorage) -> Iterable[tuple[ImageRef, str]]:
        """The ModelCar and image-volume images of the storage, with their fields."""
        for uri in storage.uris:
            if uri.image is None:
                continue
            if uri.scheme is Scheme.IMAGE_VOLUME or (uri.scheme is Scheme.MODELCAR and self.enable_modelcar):
                yield uri.image, uri.field

    def initializer(self, storage: ModelStorage) -> tuple[ImageRef, str, str] | None:
        """(image, field, supplier kind) of the storage initializer KServe adds, or None."""
        uris = [u.uri for u in storage.uris]
        selecting = initializer_uri(uris, enable_modelcar=self.enable_modelcar, own_initializer=storage.own_initializer)
        if selecting is None:
            return None
        where = storage.uris[uris.index(selecting)].field
        container = storage_container_for(selecting, self.containers)
        if container is not None and container.image_set:
            if container.image is None:
                return None  # a rejected image: already reported
            supplied = f"{KindName.CLUSTER_STORAGE_CONTAINER} {container.name}"
            return container.image, f"{where}: storage initializer ({supplied})", KindName.CLUSTER_STORAGE_CONTAINER
        if self.config is None or self.config.image is None:
            return None
        return self.config.image, f"{where}: storage initializer ({self.config_field})", KindName.CONFIG_MAP

class _Aliases:
    def __init__(self, observation: Observation) -> None:
        self._streams: StreamFindings = observation.streams
        self._stream_tags: Mapping[StreamTag, ImageRef] = observation.streams.stream_tags
        self._applications_namespace = observation.applications_namespace

    def __call__(self, usage: Usage) -> Usage:
        resolved = self._streams.alias(
            str(usage.image), namespace=usage.source.namespace, applications_namespace=self._applications_namespace
        ) or self._selected_stream_image(usage)
        if resolved is None or resolved == usage.image:
            return usage
        return replace(usage, image=resolved)

    def _selected_stream_image(self, usage: Usage) -> ImageRef | None:
        """The stream tag named by `last-image-selection`, when the image is that stream's
        registry path with that tag (an internal-registry spelling not listed as an alias).
        Only a stream in the applications namespace or in the usage's own namespace: the
        annotation is the tenant's to write, and may name any namespace."""
        selected = usage.stream_tag
        if selected is None:
            return None
        namespace = selected.namespace or self._applications_namespace
        if namespace not in (self._applications_namespace, usage.source.namespace):
            return None
        resolved = self._stream_tags.get(StreamTag(namespace, selected.stream, selected.tag))
        same_path = usage.image.repository == f"{namespace}/{selected.stream}" and usage.image.tag == selected.tag
        return resolved if same_path else None


def _model_server_usages(
    servers: Iterable[ModelServer],
    runtimes: Iterable[Runtime],
    rejections: Findings,
    problems: _Problems,
    storage: _Storage,
) -> Iterable[Usage]:
    """The runtime, worker and storage images each server uses, placed where KServe would
    run its predictor and worker pods (each spec merged with the runtime's): one usage per
    server object, image, state and placement (an InferenceService's eleven predictor keys
    resolving to one runtime count once)."""
    by_name: dict[tuple[str, str], Runtime] = {}
    for r in runtimes:
        by_name.setdefault((r.namespace, r.name), r)
    select = _Selector(by_name.values())
    seen: set[tuple[ObjectRef, ImageRef, State, Placement | None]] = set()
    for server in servers:
        if server.scheduling is None:
            continue  # its pod spec cannot be read: already one rejection naming the field
        runtime = _named(server, by_name) if server.runtime else select(server)
        problem = _runtime_problem(server, runtime)
        if problem:
            problems.add(f"{server.source}: {problem}")
        usable = runtime if runtime is not None and not problem else None
        head = intern(merge_kserve(server.scheduling, usable.scheduling if usable else None))
        worker = _worker_placement(server, usable)
        found = list(_served_images(server, usable, rejections, head)) if usable else []
        found += _worker_images(server, usable, worker) if usable and worker else []
        found += _storage_usages(server.source, server.ready, server.storage, storage, (head, worker))
        for usage in found:
            key = (usage.source, usage.image, usage.state, usage.placement)
            if key not in seen:
                seen.add(key)
                yield usage


def _worker_placement(server: ModelServer, runtime: Runtime | None) -> Placement | None:
    """Where the worker pods run; None without a worker pod (or when its spec cannot be read)."""
    if server.worker is None or runtime is None or server.worker.scheduling is None:
        return None
    if runtime.worker_scheduling is None:
        return None
    return intern(merge_kserve_worker(server.worker.scheduling, runtime.worker_scheduling))


def _storage_usages(
    source: ObjectRef,
    ready: bool,
    groups: Iterable[ModelStorage],
    storage: _Storage,
    placements: tuple[Placement, Placement | None],
) -> list[Usage]:
    """The ModelCars (predictor pod) and the storage initializer (predictor and worker pods)
    of a server's storage."""
    state = State.READY if ready else State.NOT_READY
    head, worker = placements
    found = []
    for group in groups:
        for image, where in storage.images(group):
            found.append(Usage(image, source, where, Role.MODELCAR, state, placement=head))
        init = storage.initializer(group)
        if init is not None:
            image, where, supplier = init
            role = Role.STORAGE_INITIALIZER
            for placement in (head, worker):
                if placement is not None:
                    found.append(Usage(image, source, where, role, state, placement=placement, supplier=supplier))
    return found


def _storage_user_usages(user: StorageUser, storage: _Storage) -> list[Usage]:
    return _storage_usages(user.source, user.ready, (user.storage,), storage, (user.placement, None))


def _runtime_problem(server: ModelServer, runtime: Runtime | None) -> str:
    """Why the server's runtime images cannot be used, or ""."""
    if runtime is None:
        return _why_unresolved(server)
    if not runtime.has_main_container:
        return f"runtime {runtime.source} has no {MAIN_CONTAINER} in spec.containers (KServe refuses it)"
    if runtime.scheduling is None:
        return f"runtime {runtime.source} has scheduling fields that cannot be read (KServe's pod would be refused)"
    if server.worker is not None and not runtime.multi_node:
        return (
            f"has a workerSpec but runtime {runtime.source} has none "
            "(KServe refuses a workerSpec in the InferenceService then)"
        )
    if server.worker is not None and not runtime.has_worker_container:
        return f"runtime {runtime.source} has no {WORKER_CONTAINER} in spec.workerSpec.containers (KServe refuses it)"
    if server.worker is not None and runtime.worker_scheduling is None:
        return f"runtime {runtime.source} has workerSpec scheduling fields that cannot be read"
    return ""


def _served_images(
    server: ModelServer, runtime: Runtime, rejections: Findings, placement: Placement
) -> Iterable[Usage]:
    """The predictor (head) pod's runtime images: every `spec.containers` and
    `spec.initContainers` image, the `kserve-container`'s retagged or replaced."""
    state = State.READY if server.ready else State.NOT_READY
    if server.image_override is not None:  # replaces the main image, even one that was rejected
        yield Usage(
            server.image_override, server.source, "spec.predictor.model.image", Role.SERVING_RUNTIME, state,
            placement=placement,
        )
    for image in runtime.images:
        if image.worker:
            continue
        ref = image.image
        field = f"spec.predictor (runtime {runtime.source}: {image.field})"
        if image.main and server.image_override is not None:
            continue
        if image.main and server.runtime_version and ref.digest is None:
            try:
                ref = ref.with_tag(server.runtime_version)
            except InvalidReference as e:
                rejections.reject(
                    Rejection(
                        clip(server.runtime_version), e.reason, server.source, "spec.predictor.model.runtimeVersion"
                    )
                )
                continue
            field = f"{field} with runtimeVersion"
        yield Usage(ref, server.source, field, Role.SERVING_RUNTIME, state, placement=placement,
                    supplier=runtime.source.kind)


def _worker_images(server: ModelServer, runtime: Runtime, placement: Placement) -> list[Usage]:
    """The worker pod's images: the runtime's `worker-container` (or the service's first
    worker container's image, when it names one: a rejected one replaces it too), never
    retagged by `runtimeVersion`; the init containers of both worker specs."""
    worker = server.worker
    assert worker is not None
    state = State.READY if server.ready else State.NOT_READY
    found = []
    if worker.image_set and worker.image is not None:
        found.append(Usage(worker.image, server.source, worker.field, Role.SERVING_RUNTIME, state, placement=placement))
    for image in runtime.images:
        if not image.worker or not (image.init or image.worker_main) or (image.worker_main and worker.image_set):
            continue
        field = f"spec.predictor.workerSpec (runtime {runtime.source}: {image.field})"
        found.append(
            Usage(image.image, server.source, field, Role.SERVING_RUNTIME, state, placement=placement,
                  supplier=runtime.source.kind)
        )
    for image_ref, where in worker.init_images:
        found.append(Usage(image_ref, server.source, where, Role.CUSTOM_CONTAINER, state, placement=placement))
    return found


def _named(server: ModelServer, by_name: Mapping[tuple[str, str], Runtime]) -> Runtime | None:
    """A ServingRuntime of that name in the server's namespace, else a ClusterServingRuntime."""
    found = by_name.get((server.source.namespace, server.runtime)) or by_name.get(("", server.runtime))
    return found if found is not None and not found.disabled else None


class _Selector:
    """KServe's auto-selection, `GetSupportingRuntimes(...)[0]`, for many servers at once.

    KServe filters the runtimes of a scope (not disabled; `IsMultiModelRuntime() == isMMS`,
    false for an InferenceService the KServe controller reconciles; `IsMultiNodeRuntime()
    == isMultinode`, i.e. the predictor has a workerSpec; `RuntimeSupportsModel`;
    `IsProtocolVersionSupported`), sorts them (`_by_format`) and takes the first; the
    namespace's runtimes always come before the cluster's, whatever their priorities.
    (OpenShift AI's own KServe build, the `distro` tag of opendatahub-io/kserve, skips
    ClusterServingRuntimes here altogether; keeping them as the fallback only adds a
    candidate where that build would find none.)

    Here the runtimes that can be auto-selected at all are indexed once by (scope, model
    label, multi-node), and a list is put in KServe's order for a format the first time a
    server asks (`_Choices`). Filtering an ordered list keeps the order a stable sort of
    the filtered runtimes gives, so the first runtime of the list that speaks the server's
    protocol is KServe's answer. Answers are cached per (namespace, format, version,
    protocol, multi-node), all a server's choice depends on: resolving costs about the
    number of (runtime, format) pairs plus the number of servers, not their product.
    """

    def __init__(self, runtimes: Iterable[Runtime]) -> None:
        self._index: dict[tuple[str, str, bool], list[Runtime]] = {}
        # The format-independent part of KServe's order, once: names are unique within a
        # scope, so this is the order each scope's list would be sorted into.
        ordered = sorted(runtimes, key=lambda r: r.name)
        ordered.sort(key=lambda r: r.created, reverse=True)  # reverse keeps ties in order
        for r in ordered:
            if r.disabled or r.multi_model:
                continue
            scope = "" if r.cluster_scoped else r.namespace
            for label in r.labels:
                self._index.setdefault((scope, label, r.multi_node), []).append(r)
        self._choices: dict[tuple[str, str, bool, str], _Choices | None] = {}
        self._cache: dict[tuple[str, str, str | None, str, bool], Runtime | None] = {}

    def __call__(self, server: ModelServer) -> Runtime | None:
        if not server.model_format:
            return None
        key = (server.source.namespace, server.model_format, server.format_version, server.protocol, server.multi_node)
        if key not in self._cache:
            self._cache[key] = self._select(server)
        return self._cache[key]

    def _select(self, server: ModelServer) -> Runtime | None:
        label = model_label(server.model_format, server.format_version)
        for scope in (server.source.namespace, ""):
            choices = self._choices_for(scope, label, server.multi_node, server.model_format)
            found = choices.first(server.protocol) if choices is not None else None
            if found is not None:
                return found
        return None

    def _choices_for(self, scope: str, label: str, multi_node: bool, model_format: str) -> _Choices | None:
        key = (scope, label, multi_node, model_format)
        if key not in self._choices:
            runtimes = self._index.get((scope, label, multi_node))
            self._choices[key] = _Choices(_by_format(runtimes, model_format)) if runtimes else None
        return self._choices[key]


class _Choices:
    """Runtimes in KServe's order, and where the first one speaking each protocol is."""

    def __init__(self, ordered: list[Runtime]) -> None:
        self._ordered = ordered
        # `IsProtocolVersionSupported`: a runtime that lists no protocol speaks them all.
        self._any = next((i for i, r in enumerate(ordered) if not r.protocols), None)
        self._by_protocol: dict[str, int] = {}
        for i, r in enumerate(ordered):
            for protocol in r.protocols:
                self._by_protocol.setdefault(protocol, i)

    def first(self, protocol: str) -> Runtime | None:
        if not protocol:  # a predictor that asks for no protocol takes any runtime
            return self._ordered[0]
        found = [i for i in (self._any, self._by_protocol.get(protocol)) if i is not None]
        return self._ordered[min(found)] if found else None


def _by_format(ordered: list[Runtime], model_format: str) -> list[Runtime]:
    """KServe's order within one scope, for `model_format`, of runtimes already sorted by
    its format-independent keys (`_Selector.__init__`: newest first, then by name). KServe
    sorts, last key first, with:

    - `sortServingRuntimeList`: lowest protocol version first, then the newest
      (`creationTimestamp` desc; unknown counts as oldest, like Go's zero time), then name asc;
    - `sortSupportedRuntimeByPriority`: the priority of the model format, highest first, a
      runtime without one after every runtime with one, ties keeping the order above.

    KServe uses `sort.Slice`, which is only guaranteed stable for short lists (insertion
    sort up to 12 elements); a stable sort is what its comment ("the order is kept") means.
    The last two sorts are one here, on the key (priority, protocol).
    """
    return sorted(ordered, key=lambda r: (*_by_priority(r.priority_for(model_format)), r.protocol_rank))


def _by_priority(priority: int | None) -> tuple[bool, int]:
    return (priority is None, -(priority or 0))


def _why_unresolved(server: ModelServer) -> str:
    """Why a server has no runtime; its names are already clipped (`agent.sources.serving`)."""
    if server.runtime:
        return (
            f"runtime {server.runtime!r} is not a ServingRuntime in {server.source.namespace} "
            "nor a ClusterServingRuntime (or it is disabled)"
        )
    if not server.model_format:
        return "names neither a runtime nor a model format"
    return f"no auto-selectable runtime supports model format {server.model_format!r}"
