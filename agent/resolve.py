"""Resolve: turn an `Observation` into the final list of usages, one spelling per image.

Pure. Two things need more than one object to decide, so they happen here rather than in
the sources:

- **Aliases.** A workbench may name its image by the internal-registry tag
  (`image-registry.openshift-image-registry.svc:5000/NS/STREAM:TAG`), by the stream's
  `from` reference, or by the resolved digest. All three are one image: each usage is
  rewritten to the stream tag's resolved reference, so it is counted once.
- **Runtimes.** An InferenceService names a runtime (a ServingRuntime in its namespace,
  else a ClusterServingRuntime of that name) or lets KServe pick one: the auto-selectable
  runtimes supporting its model format, highest priority first, namespace runtimes before
  cluster ones. `runtimeVersion` replaces the main container image's tag unless the image
  is pinned by digest; `image` replaces it outright. A service whose runtime cannot be
  found is reported as a problem, not an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agent.model import Rejection, Role, State, StreamTag, Usage
from agent.refs import ImageRef, InvalidReference
from agent.sources import Observation
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
        self._aliases: Mapping[str, ImageRef] = observation.streams.aliases
        self._stream_tags: Mapping[StreamTag, ImageRef] = observation.streams.stream_tags
        self._applications_namespace = observation.applications_namespace

    def __call__(self, usage: Usage) -> Usage:
        resolved = self._aliases.get(str(usage.image)) or self._selected_stream_image(usage)
        if resolved is None or resolved == usage.image:
            return usage
        return Usage(resolved, usage.source, usage.field, usage.role, usage.state, usage.stream_tag)

    def _selected_stream_image(self, usage: Usage) -> ImageRef | None:
        """The stream tag named by `last-image-selection`, when the image is that stream's
        registry path with that tag (an internal-registry spelling not listed as an alias)."""
        selected = usage.stream_tag
        if selected is None:
            return None
        namespace = selected.namespace or self._applications_namespace
        resolved = self._stream_tags.get(StreamTag(namespace, selected.stream, selected.tag))
        same_path = usage.image.repository == f"{namespace}/{selected.stream}" and usage.image.tag == selected.tag
        return resolved if same_path else None


def _model_server_usages(
    servers: Iterable[ModelServer], runtimes: Iterable[Runtime], rejections: list[Rejection], problems: list[str]
) -> Iterable[Usage]:
    by_name: dict[tuple[str, str], Runtime] = {}
    for runtime in runtimes:
        by_name.setdefault((runtime.namespace, runtime.name), runtime)
    runtime_list = sorted(by_name.values(), key=lambda r: (r.namespace == "", r.namespace, r.name))

    for server in servers:
        found = _runtime_for(server, by_name, runtime_list)
        if found is None:
            problems.append(f"{server.source}: {_why_unresolved(server)}")
            continue
        runtime = found
        state = State.READY if server.ready else State.NOT_READY
        for image in runtime.images:
            ref = image.image
            main = image.container == MAIN_CONTAINER or (image is runtime.images[0] and not _has_main(runtime))
            field = f"spec.predictor (runtime {runtime.source}: {image.field})"
            if main and server.image_override is not None:
                ref, field = server.image_override, "spec.predictor.model.image"
            elif main and server.runtime_version and ref.digest is None:
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


def _has_main(runtime: Runtime) -> bool:
    return any(i.container == MAIN_CONTAINER for i in runtime.images)


def _runtime_for(
    server: ModelServer, by_name: Mapping[tuple[str, str], Runtime], runtimes: list[Runtime]
) -> Runtime | None:
    namespace = server.source.namespace
    if server.runtime:
        found = by_name.get((namespace, server.runtime)) or by_name.get(("", server.runtime))
        return found if found is not None and not found.disabled else None
    if not server.model_format:
        return None
    best: tuple[int, Runtime] | None = None
    for runtime in runtimes:  # namespace runtimes first: they win ties
        if runtime.disabled or runtime.namespace not in (namespace, ""):
            continue
        fmt = runtime.supports(server.model_format, server.format_version)
        if fmt is not None and (best is None or fmt.priority > best[0]):
            best = (fmt.priority, runtime)
    return best[1] if best else None


def _why_unresolved(server: ModelServer) -> str:
    if server.runtime:
        return (
            f"runtime {server.runtime!r} is not a ServingRuntime in {server.source.namespace} "
            "nor a ClusterServingRuntime (or it is disabled)"
        )
    if not server.model_format:
        return "names neither a runtime nor a model format"
    return f"no auto-selectable runtime supports model format {server.model_format!r}"
