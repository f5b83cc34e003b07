"""Observe: list every enabled kind through `agent.kube` and turn objects into findings.

This is the only step of a cycle that reads the cluster's workloads. It walks one table
of sources; each lists its kind page by page (raw JSON, paginated) and hands every object
to its pure reader in `agent.sources`. Nothing but the readers' small records outlives a
page.

How a source ends is recorded, because the planner's safety rule depends on it:
- `listed[kind]`: how many objects were read (an object too large or too deeply nested to
  read is not counted: it is a rejection naming it, and the kind is still listed);
- `missing[kind]`: the kind is not served (CRD not installed): skipped with one warning;
- `failed[kind]`: any other failure (denied, server error, timeout): this cycle's view of
  that kind is partial, so nothing the agent manages may be dropped.

A 401 is not a source's failure but the credentials': `Unauthorized` propagates at once,
so the cycle ends with one message ("log in again") instead of a warning per kind.

A kind the agent can read at several versions (`agent.kube.kinds`) is listed at the one API
discovery prefers (`preferredVersion` of its group) when the agent reads that one, else at
the first of its own, in order, that the group serves *for that kind* (the group-version's
discovery document lists it: a group's versions are all its kinds' together). A group that
serves none of them fails the kind with that reason; one that prefers a version no kind of
the group is read at is one warning (the agent reads the version it knows). Discovery is
asked at most once per group and once per group-version per cycle (`_Discovery`), which
also tells a kind that is not installed from a passing failure after a 404.

After the kinds, KServe's `inferenceservice-config` ConfigMap is read by name from KServe's
namespace (`kserve.namespace`, else the applications namespace, where OpenShift AI keeps
it): the storage initializer's image. It is recorded as kind `ConfigMap`: a ConfigMap that
cannot be read is one warning and counts as failed, so an entry it supplied is kept.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from agent.kube import kinds
from agent.kube.client import Kube, Page
from agent.kube.errors import Forbidden, Gone, KubeError, NotFound, Unauthorized, Unreachable
from agent.model import KindName, ObjectRef, Rejection
from agent.settings import Settings
from agent.sources import Observation, imagestreams, kserve, llm, notebooks, serving
from agent.sources.common import as_list, as_str, clip, dig
from agent.sources.nodes import read_node

log = structlog.get_logger("prepull_agent.observe")

DEFAULT_APPLICATIONS_NAMESPACE = "redhat-ods-applications"


Reader = Callable[[Mapping[str, Any], Observation], None]


@dataclass(frozen=True)
class Source:
    setting: str  # the switch in `settings.sources`
    kind: kinds.Kind
    read: Reader
    label_selectors: tuple[str, ...] = ("",)
    in_applications_namespace: bool = False  # else: all namespaces


def _streams(obj: Mapping[str, Any], o: Observation) -> None:
    o.streams.extend(imagestreams.read_image_stream(obj, applications_namespace=o.applications_namespace))


def _runtimes(kind: str) -> Reader:
    def read(obj: Mapping[str, Any], o: Observation) -> None:
        o.serving.extend(serving.read_serving_runtime(obj, kind=kind, applications_namespace=o.applications_namespace))

    return read


SOURCES: tuple[Source, ...] = (
    Source("imagestreams", kinds.IMAGE_STREAM, _streams, label_selectors=imagestreams.LABEL_SELECTORS),
    Source("notebooks", kinds.NOTEBOOK, lambda obj, o: o.workloads.extend(notebooks.read_notebook(obj))),
    Source("servingruntimes", kinds.SERVING_RUNTIME, _runtimes(serving.SERVING_RUNTIME)),
    Source("clusterservingruntimes", kinds.CLUSTER_SERVING_RUNTIME, _runtimes(serving.CLUSTER_SERVING_RUNTIME)),
    Source(
        "templates",
        kinds.TEMPLATE,
        lambda obj, o: o.serving.extend(serving.read_template(obj)),
        label_selectors=(serving.TEMPLATE_LABEL_SELECTOR,),
        in_applications_namespace=True,
    ),
    Source(
        "inferenceservices",
        kinds.INFERENCE_SERVICE,
        lambda obj, o: o.serving.extend(serving.read_inference_service(obj)),
    ),
    Source(
        "llminferenceserviceconfigs",
        kinds.LLM_INFERENCE_SERVICE_CONFIG,
        lambda obj, o: o.llm.extend(llm.read_llm_inference_service_config(obj)),
    ),
    Source(
        "llminferenceservices",
        kinds.LLM_INFERENCE_SERVICE,
        lambda obj, o: o.llm.extend(llm.read_llm_inference_service(obj)),
    ),
    Source(
        "clusterstoragecontainers",
        kinds.CLUSTER_STORAGE_CONTAINER,
        lambda obj, o: o.kserve.extend(kserve.read_cluster_storage_container(obj)),
    ),
    Source("nodes", kinds.NODE, lambda obj, o: read_node(obj, o.nodes)),
)
# The versions some kind of each group is read at: a group preferring another is warned about.
_KNOWN_VERSIONS: dict[str, frozenset[str]] = {}
for _kind in (*(s.kind for s in SOURCES), kinds.DSC_INITIALIZATION):
    _KNOWN_VERSIONS[_kind.group] = _KNOWN_VERSIONS.get(_kind.group, frozenset()) | frozenset(_kind.versions)


class _Discovery:
    """API discovery for one cycle: each group's document, and each group-version's, asked
    at most once. An answer or an error is kept alike."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube
        self._answers: dict[str, Mapping[str, Any] | KubeError] = {}

    def get(self, path: str) -> Mapping[str, Any]:
        """The discovery document at `path`; raises its KubeError (each time, asked once)."""
        if path not in self._answers:
            try:
                self._answers[path] = self._kube.get(path)
            except Unauthorized:
                raise
            except KubeError as e:
                self._answers[path] = e
        answer = self._answers[path]
        if isinstance(answer, KubeError):
            raise answer
        return answer

    def at_served_version(self, kind: kinds.Kind) -> kinds.Kind | str:
        """`kind` at the version to list it at, or why no version of it can be listed."""
        if len(kind.versions) < 2:
            return kind
        try:
            group = self.get(f"/apis/{kind.group}")
        except Unauthorized:
            raise  # the credentials' failure, not the kind's: the cycle ends at this request
        except KubeError:
            return kind  # not served (the list will say so), or cannot tell: the preferred of the agent's
        served = [as_str(dig(v, "version")) for v in as_list(group.get("versions"))]
        preferred = as_str(dig(group, "preferredVersion", "version"))
        if preferred and preferred not in _KNOWN_VERSIONS.get(kind.group, frozenset()):
            log.warning(
                "API group prefers a version the agent does not read; reading the newest it knows",
                group=kind.group, preferred=clip(preferred), reads=list(kind.versions),
            )
        order = [preferred, *kind.versions] if preferred in kind.versions else list(kind.versions)
        offered = [v for v in dict.fromkeys(order) if v in served]
        if not offered:
            versions = ", ".join(clip(v) for v in served if v) or "none"
            return (
                f"{kind.group} serves versions {versions}; this agent reads {kind.plural} only at "
                f"{', '.join(kind.versions)}"
            )
        for version in offered:
            if self._serves(kind, version) is not False:
                return kind.at(version)
        return kind.at(offered[0])  # no version lists the kind: not installed (its list says so)

    def _serves(self, kind: kinds.Kind, version: str) -> bool | None:
        """Whether the group-version's discovery document lists the kind; None: cannot tell.
        A group's versions are its kinds' together: another kind of the group may serve a
        version this one does not (an older LLMInferenceService CRD beside a newer config's)."""
        try:
            resources = self.get(f"/apis/{kind.group}/{version}").get("resources")
        except Unauthorized:
            raise
        except NotFound:
            return False
        except KubeError:
            return None
        return any(isinstance(r, Mapping) and r.get("name") == kind.plural for r in as_list(resources))


def observe(kube: Kube, settings: Settings) -> Observation:
    """List every enabled source. Never raises for a source's failure: it is recorded."""
    # Listing builds millions of short-lived, acyclic dicts and lists (the pages) next to
    # the records kept: the cyclic collector finds nothing to free in them, and its full
    # passes walk everything kept so far, again and again. Reference counting frees each
    # page; the collector runs again once the listing is done.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _observe(kube, settings)
    finally:
        if collecting:
            gc.enable()


def _observe(kube: Kube, settings: Settings) -> Observation:
    observation = Observation(applications_namespace=DEFAULT_APPLICATIONS_NAMESPACE)
    discovery = _Discovery(kube)
    observation.applications_namespace = _applications_namespace(kube, settings, observation, discovery)
    observation.kserve_namespace = settings.kserve.namespace or observation.applications_namespace
    for source in SOURCES:
        if not getattr(settings.sources, source.setting):
            continue
        if observation.unreachable:
            # One request got no answer at all: asking for more would only wait out more timeouts.
            observation.failed[source.kind.kind] = f"not listed: {observation.unreachable}"
            continue
        kind = discovery.at_served_version(source.kind)
        if isinstance(kind, str):
            observation.failed[source.kind.kind] = kind
            log.warning("kind not listed: no version the agent reads is served", kind=source.kind.kind, reason=kind)
            continue
        _collect(kube, source, kind, observation, discovery=discovery, page_size=settings.kube.page_size)
    _storage_config(kube, settings, observation)
    skipped = [k for k, why in observation.failed.items() if why.startswith("not listed:")]
    if skipped:
        log.warning("the API server stopped answering; the remaining kinds were not listed", kinds=skipped)
    return observation


def _applications_namespace(kube: Kube, settings: Settings, observation: Observation, discovery: _Discovery) -> str:
    """From the settings, else the DSCInitialization, else OpenShift AI's default.

    Without the DSCInitialization kind (no OpenShift AI operator), the default is right. If
    it cannot be read, the default is only a guess: the failure is recorded so that nothing
    the agent manages is removed on the strength of it.
    """
    if settings.applications_namespace:
        return settings.applications_namespace
    kind = discovery.at_served_version(kinds.DSC_INITIALIZATION)
    if isinstance(kind, str):
        observation.failed[kinds.DSC_INITIALIZATION.kind] = kind
        log.warning("kind not listed: no version the agent reads is served", kind=kinds.DSC_INITIALIZATION.kind,
                    reason=kind)
        return DEFAULT_APPLICATIONS_NAMESPACE
    try:
        items = kube.get(kind.path()).get("items")
    except NotFound:
        return DEFAULT_APPLICATIONS_NAMESPACE
    except Unauthorized:
        raise
    except KubeError as e:
        _fail(observation, kind.kind, e)
        if isinstance(e, Unreachable):
            observation.unreachable = _reason(e)
        return DEFAULT_APPLICATIONS_NAMESPACE
    for dsci in as_list(items):
        namespace = as_str(dig(dsci, "spec", "applicationsNamespace"))
        if namespace:
            return namespace
    return DEFAULT_APPLICATIONS_NAMESPACE


def _collect(
    kube: Kube, source: Source, at: kinds.Kind, observation: Observation, *, discovery: _Discovery, page_size: int
) -> None:
    """List one source (at version `at.version`) into a scratch observation, merged only
    when the listing completes.

    An expired continue token (410) restarts the listing once from scratch. An object the
    client had to skip (`Page.unread`: too large or too deeply nested to read) is a
    rejection naming it; the rest of the kind is read, and the kind counts as listed.
    """
    kind = source.kind.kind
    namespace = observation.applications_namespace if source.in_applications_namespace else ""
    path = at.path(namespace=namespace)
    started = time.monotonic()
    for attempt in (1, 2):
        scratch = Observation(applications_namespace=observation.applications_namespace)
        # An object matching two label selectors counts once; one list cannot repeat one.
        seen: set[tuple[str, str]] | None = set() if len(source.label_selectors) > 1 else None
        count = 0
        try:
            for selector in source.label_selectors:
                for page in kube.list_pages(path, label_selector=selector, page_size=page_size):
                    count += _read_page(source, page, scratch, seen=seen)
                    del page  # the client decodes the next page only once this one is gone
        except Gone as e:
            if attempt == 1:
                log.info("list expired, listing again", kind=kind, reason=_reason(e))
                continue
            _fail(observation, kind, e)
            return
        except NotFound as e:
            if not _served(discovery, at):
                observation.missing[kind] = _reason(e)
                log.warning("kind not served, skipped (is its CRD installed?)", kind=kind, path=path)
                return
            _fail(observation, kind, e)  # discovery still lists it: a passing 404 must not shrink the list
            return
        except Unreachable as e:
            _fail(observation, kind, e)
            observation.unreachable = _reason(e)
            return
        except Unauthorized:
            raise
        except KubeError as e:
            _fail(observation, kind, e)
            return
        _merge(observation, scratch)
        observation.listed[kind] = count
        log.debug("listed", kind=kind, version=at.version, count=count, seconds=round(time.monotonic() - started, 3))
        return


def _read_page(source: Source, page: Page, into: Observation, *, seen: set[tuple[str, str]] | None) -> int:
    """Read one page's objects into `into`; how many were read."""
    kind = source.kind.kind
    count = 0
    for obj in page.items:
        if seen is not None:
            key = (as_str(dig(obj, "metadata", "namespace")), as_str(dig(obj, "metadata", "name")))
            if key in seen:
                continue
            seen.add(key)
        source.read(obj, into)
        count += 1
    for unread in page.unread:
        if seen is not None:
            if (unread.namespace, unread.name) in seen:
                continue
            seen.add((unread.namespace, unread.name))
        into.workloads.reject(
            Rejection(reference="", reason=unread.reason, source=ObjectRef(kind, unread.namespace, clip(unread.name)),
                      field="")
        )
    return count


def _served(discovery: _Discovery, kind: kinds.Kind) -> bool:
    """Whether discovery lists the kind: a 404 on a collection alone could be a passing
    failure of an aggregated API server (OpenShift serves ImageStreams and Templates that way)."""
    base = f"/apis/{kind.group}/{kind.version}" if kind.group else f"/api/{kind.version}"
    try:
        resources = discovery.get(base).get("resources")
    except NotFound:
        return False
    except KubeError:
        return True  # cannot tell: assume served, so the kind counts as failed, not missing
    return any(isinstance(r, dict) and r.get("name") == kind.plural for r in as_list(resources))


def _storage_config(kube: Kube, settings: Settings, observation: Observation) -> None:
    """KServe's `inferenceservice-config`, got by name (its storage initializer). Not asked
    when KServe's kinds are off or not installed."""
    readers = [k for k, on in ((KindName.INFERENCE_SERVICE, settings.sources.inferenceservices),
                               (KindName.LLM_INFERENCE_SERVICE, settings.sources.llminferenceservices)) if on]
    if not settings.sources.storage_initializer or not readers or all(k in observation.missing for k in readers):
        return
    kind = KindName.CONFIG_MAP
    if observation.unreachable:
        observation.failed[kind] = f"not listed: {observation.unreachable}"  # as every kind not tried
        return
    path = kinds.CONFIG_MAP.path(namespace=observation.kserve_namespace, name=kserve.CONFIG_MAP_NAME)
    try:
        obj = kube.get(path)
    except Unauthorized:
        raise
    except KubeError as e:
        observation.failed[kind] = _reason(e)
        hint = " (check the agent's RBAC)" if isinstance(e, Forbidden) else ""
        log.warning(
            f"KServe's {kserve.CONFIG_MAP_NAME} could not be read: the storage initializer's image is unknown, "
            f"entries it supplied are kept{hint}",
            namespace=observation.kserve_namespace, reason=_reason(e),
        )
        if isinstance(e, Unreachable):
            observation.unreachable = _reason(e)
        return
    observation.kserve.extend(kserve.read_inference_service_config(obj))
    observation.listed[kind] = 1


def _fail(observation: Observation, kind: str, error: KubeError) -> None:
    observation.failed[kind] = _reason(error)
    hint = " (check the agent's RBAC)" if isinstance(error, Forbidden) else ""
    log.warning(f"listing failed, managed images are kept this cycle{hint}", kind=kind, reason=_reason(error))


def _merge(into: Observation, scratch: Observation) -> None:
    into.streams.extend(scratch.streams)
    into.workloads.extend(scratch.workloads)
    into.serving.extend(scratch.serving)
    into.llm.extend(scratch.llm)
    into.kserve.extend(scratch.kserve)
    into.nodes.extend(scratch.nodes)


def _reason(error: KubeError) -> str:
    return str(error)
