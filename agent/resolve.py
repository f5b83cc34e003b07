"""Resolve: turn an `Observation` into the final list of usages, one spelling per image.

Pure. Two things need more than one object to decide, so they happen here rather than in
the sources:

- **Aliases.** A workbench may name its image by the internal-registry tag
  (`image-registry.openshift-image-registry.svc:5000/NS/STREAM:TAG`), by the stream's
  `from` reference, or by the resolved digest. All three are one image: each usage is
  rewritten to the stream tag's resolved reference, so it is counted once. Only streams
  the usage may trust speak for it: those of the applications namespace and, first, those
  of the usage's own namespace (`StreamFindings.alias`); the same holds for the stream tag
  a Notebook's `last-image-selection` names.
- **Runtimes.** An InferenceService names a runtime (a ServingRuntime in its namespace,
  else a ClusterServingRuntime of that name) or lets KServe pick one, as KServe's
  `GetSupportingRuntimes` does (kserve/kserve `pkg/apis/serving/v1beta1/predictor_model.go`):
  not disabled, not multi-model (ModelMesh), multi-node exactly when the predictor has a
  `workerSpec`, supporting the model format label and the predictor's protocol; namespace
  runtimes always before cluster ones; within each, highest priority of the model format
  first (unset last), then the lowest protocol version, the newest, the name.
  `runtimeVersion` replaces the `kserve-container` image's tag unless the image is pinned
  by digest; `image` replaces it outright. A service whose runtime cannot be found, or whose
  runtime has no `kserve-container`, is reported as a problem, not an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agent.model import Rejection, Role, State, StreamTag, Usage
from agent.refs import ImageRef, InvalidReference
from agent.sources import Observation
from agent.sources.imagestreams import StreamFindings
from agent.sources.serving import MAIN_CONTAINER, ModelServer, Runtime


@dataclass(frozen=True, slots=True)
class Inventory:
    """The usages to plan from, the rejected references, and what could not be resolved."""

    usages: tuple[Usage, ...]
    rejections: tuple[Rejection, ...]
    problems: tuple[str, ...]


def resolve(observation: Observation) -> Inventory:
    rejections = [
        *observation.streams.rejections,
        *observation.workloads.rejections,
        *observation.serving.rejections,
    ]
    problems: list[str] = []
    served = list(
        _model_server_usages(observation.serving.model_servers, observation.serving.runtimes, rejections, problems)
    )
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
    return Inventory(usages, tuple(rejections), tuple(problems))


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
        return Usage(resolved, usage.source, usage.field, usage.role, usage.state, usage.stream_tag)

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
    servers: Iterable[ModelServer], runtimes: Iterable[Runtime], rejections: list[Rejection], problems: list[str]
) -> Iterable[Usage]:
    by_name: dict[tuple[str, str], Runtime] = {}
    for r in runtimes:
        by_name.setdefault((r.namespace, r.name), r)
    by_scope: dict[str, list[Runtime]] = {}  # namespace, or "" for the cluster-scoped
    for r in by_name.values():
        by_scope.setdefault("" if r.cluster_scoped else r.namespace, []).append(r)

    for server in servers:
        runtime = _runtime_for(server, by_name, by_scope)
        if runtime is None:
            problems.append(f"{server.source}: {_why_unresolved(server)}")
            continue
        if not runtime.has_main_container:
            problems.append(
                f"{server.source}: runtime {runtime.source} has no {MAIN_CONTAINER} in spec.containers "
                "(KServe refuses it)"
            )
            continue
        state = State.READY if server.ready else State.NOT_READY
        if server.image_override is not None:  # replaces the main image, even one that was rejected
            yield Usage(server.image_override, server.source, "spec.predictor.model.image", Role.SERVING_RUNTIME, state)
        for image in runtime.images:
            ref = image.image
            field = f"spec.predictor (runtime {runtime.source}: {image.field})"
            if image.main and server.image_override is not None:
                continue
            if image.main and server.runtime_version and ref.digest is None:
                try:
                    ref = ref.with_tag(server.runtime_version)
                except InvalidReference as e:
                    rejections.append(
                        Rejection(
                            server.runtime_version, e.reason, server.source, "spec.predictor.model.runtimeVersion"
                        )
                    )
                    continue
                field = f"{field} with runtimeVersion"
            yield Usage(ref, server.source, field, Role.SERVING_RUNTIME, state)


def _runtime_for(
    server: ModelServer, by_name: Mapping[tuple[str, str], Runtime], by_scope: Mapping[str, list[Runtime]]
) -> Runtime | None:
    namespace = server.source.namespace
    if server.runtime:
        found = by_name.get((namespace, server.runtime)) or by_name.get(("", server.runtime))
        return found if found is not None and not found.disabled else None
    if not server.model_format:
        return None
    # KServe's GetSupportingRuntimes(...)[0]: the namespace's runtimes always come before the
    # cluster's, whatever their priorities. (OpenShift AI's own KServe build, the `distro`
    # tag of opendatahub-io/kserve, skips ClusterServingRuntimes here altogether; keeping
    # them as the fallback only adds a candidate where that build would find none.)
    for scope in (namespace, ""):
        supporting = [r for r in by_scope.get(scope, ()) if _auto_selectable(r, server)]
        if supporting:
            return _kserve_order(supporting, server.model_format)[0]
    return None


def _auto_selectable(runtime: Runtime, server: ModelServer) -> bool:
    """KServe's filter: not disabled, `IsMultiModelRuntime() == isMMS` (false for an
    InferenceService the KServe controller reconciles), `IsMultiNodeRuntime() ==
    isMultinode` (the predictor has a workerSpec), `RuntimeSupportsModel`, and
    `IsProtocolVersionSupported`."""
    return (
        not runtime.disabled
        and not runtime.multi_model
        and runtime.multi_node == server.multi_node
        and runtime.supports(server.model_format, server.format_version)
        and runtime.supports_protocol(server.protocol)
    )


def _kserve_order(runtimes: list[Runtime], model_format: str) -> list[Runtime]:
    """KServe's order within one scope, as successive stable sorts, last key first:

    - `sortServingRuntimeList`: lowest protocol version first, then the newest
      (`creationTimestamp` desc; unknown counts as oldest, like Go's zero time), then name asc;
    - `sortSupportedRuntimeByPriority`: the priority of the model format, highest first, a
      runtime without one after every runtime with one, ties keeping the order above.

    KServe uses `sort.Slice`, which is only guaranteed stable for short lists (insertion
    sort up to 12 elements); a stable sort is what its comment ("the order is kept") means.
    """
    ordered = sorted(runtimes, key=lambda r: r.name)
    ordered.sort(key=lambda r: r.created, reverse=True)  # reverse keeps ties in order
    ordered.sort(key=lambda r: r.protocol_rank)
    ordered.sort(key=lambda r: _by_priority(r.priority_for(model_format)))
    return ordered


def _by_priority(priority: int | None) -> tuple[bool, int]:
    return (priority is None, -(priority or 0))


def _why_unresolved(server: ModelServer) -> str:
    if server.runtime:
        return (
            f"runtime {server.runtime!r} is not a ServingRuntime in {server.source.namespace} "
            "nor a ClusterServingRuntime (or it is disabled)"
        )
    if not server.model_format:
        return "names neither a runtime nor a model format"
    return f"no auto-selectable runtime supports model format {server.model_format!r}"
