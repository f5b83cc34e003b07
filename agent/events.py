"""The kubelet's Pulled events and the start-up summary, at the API edge.

- **Events.** `GET /api/v1/events?fieldSelector=reason=Pulled` across namespaces
  (`reason` is a selectable field of core/v1 Events: kubernetes/kubernetes
  `pkg/registry/core/event/strategy.go` `ToSelectableFields`), paginated with
  `Kube.list_pages`; each page is read into small `PulledEvent` records (`agent.kubelet`)
  and dropped. At most `startup.max_events` events a cycle (the listing stops there and
  says so) and `startup.max_events_per_namespace` from any one namespace (the rest of that
  namespace is skipped and counted), so no project's events crowd out the others' or make a
  cycle read without end. A 410 restarts the listing once.
- **The summary** (`agent.pulls`): the ConfigMap `startup.summary_name`, key
  `summary.json`, in the agent's namespace (`startup.summary_namespace`, else
  `POD_NAMESPACE`, else `prepull-agent`). It is read every cycle (one GET); the copy in
  memory is kept while the server's is the one this process wrote last (the same
  resourceVersion), so `serve` remembers every event it has seen, not only those stored.
  Only `serve` writes it, after its cycle, while it holds the lease and is not a dry run:
  one update (PUT) carrying the resourceVersion, the object's metadata kept. The manifests
  ship the ConfigMap empty and grant `get` and `update` on that one name: the agent never
  creates it. `once` reads it when it may and never writes.

Nothing here fails a cycle: a listing or a summary that cannot be read or written is a
warning, and the cycle goes on with what could be read (a 401 still ends it, as everywhere).

`begin` and `finish` are what `agent.cycle` calls, before planning and after writing.
"""

from __future__ import annotations

import gc
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import structlog

from agent.kube.client import JSON, Kube
from agent.kube.errors import Conflict, Forbidden, Gone, KubeError, NotFound, Unauthorized
from agent.kubelet import PULLED_REASON, NotPulled, PulledEvent, read_event
from agent.model import NodeInfo
from agent.outcome import TargetOutcome
from agent.pulls import Summary, SummaryError, decode, encode
from agent.resolve import Inventory, image_as_used
from agent.settings import Settings
from agent.sources import Observation
from agent.startup import CyclePulls, Trust, account, count_cycle, kept_images

log = structlog.get_logger("prepull_agent.events")

EVENTS_PATH = "/api/v1/events"
FIELD_SELECTOR = f"reason={PULLED_REASON}"
SUMMARY_KEY = "summary.json"
DEFAULT_NAMESPACE = "prepull-agent"
OVER_NAMESPACE_CAP = "over the namespace's cap (startup.max_events_per_namespace)"
UNREADABLE = "too large or too deeply nested to read"


@dataclass
class Listing:
    """One cycle's Pulled events, read."""

    events: list[PulledEvent] = field(default_factory=list)
    listed: int = 0
    uids: list[str] | None = field(default_factory=list)  # every uid listed; None when the listing is not complete
    ignored: Counter[str] = field(default_factory=Counter)
    error: str = ""


def list_pulled(kube: Kube, *, page_size: int, max_events: int, max_per_namespace: int) -> Listing:
    """Every `Pulled` event up to the caps (see the module docstring). Never raises but for
    `Unauthorized`: a failed listing is `Listing.error`, with `uids` None."""
    collecting = gc.isenabled()
    gc.disable()  # as agent.observe: pages are acyclic, reference counting frees them
    try:
        for attempt in (1, 2):
            listing = Listing()
            try:
                _read_all(
                    kube, listing, page_size=page_size, max_events=max_events, max_per_namespace=max_per_namespace
                )
            except Gone as e:
                if attempt == 1:
                    continue
                return _failed(listing, e)
            except Unauthorized:
                raise
            except KubeError as e:
                return _failed(listing, e)
            return listing
        raise AssertionError("unreachable")
    finally:
        if collecting:
            gc.enable()


def _read_all(kube: Kube, listing: Listing, *, page_size: int, max_events: int, max_per_namespace: int) -> None:
    per_namespace: Counter[str] = Counter()
    uids = listing.uids
    assert uids is not None
    for page in kube.list_pages(EVENTS_PATH, field_selector=FIELD_SELECTOR, page_size=page_size):
        for obj in page.items:
            if listing.listed >= max_events:
                listing.uids = None
                listing.error = f"stopped after {max_events:,} events (startup.max_events)"
                log.warning("Pulled events not all read this cycle", reason=listing.error)
                return
            listing.listed += 1
            meta = obj.get("metadata")
            meta = meta if isinstance(meta, dict) else {}
            uid, namespace = _str(meta.get("uid")), _str(meta.get("namespace"))
            uids.append(uid)
            per_namespace[namespace] += 1
            if per_namespace[namespace] > max_per_namespace:
                listing.ignored[OVER_NAMESPACE_CAP] += 1
                continue
            try:
                listing.events.append(read_event(obj))
            except NotPulled as e:
                listing.ignored[e.reason] += 1
        listing.listed += len(page.unread)
        if page.unread:
            listing.ignored[UNREADABLE] += len(page.unread)
        del page


def _failed(listing: Listing, error: KubeError) -> Listing:
    hint = " (the reader ClusterRole grants get and list on events)" if isinstance(error, Forbidden) else ""
    log.warning(f"Pulled events could not be listed: no new start-up figures this cycle{hint}", reason=str(error))
    return Listing(events=[], listed=listing.listed, uids=None, ignored=listing.ignored, error=str(error))


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


# -- the summary's ConfigMap ------------------------------------------------------------------


class StartupStore:
    """The start-up summary between cycles: read from its ConfigMap, kept in memory, written
    back when `writable` (serve)."""

    def __init__(self, *, namespace: str, name: str, writable: bool) -> None:
        self.namespace = namespace
        self.name = name
        self.writable = writable
        self._summary: Summary | None = None
        self._object: JSON | None = None  # the ConfigMap as last read or written
        self._version = ""

    @classmethod
    def for_settings(
        cls, settings: Settings, *, writable: bool, env: Mapping[str, str] | None = None
    ) -> StartupStore:
        env = os.environ if env is None else env
        namespace = settings.startup.summary_namespace or env.get("POD_NAMESPACE") or DEFAULT_NAMESPACE
        return cls(namespace=namespace, name=settings.startup.summary_name, writable=writable)

    @property
    def path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/configmaps/{self.name}"

    @property
    def where(self) -> str:
        return f"ConfigMap {self.namespace}/{self.name}"

    def load(self, kube: Kube) -> Summary:
        """The summary: the one in memory while the server holds what this process wrote last,
        else the stored one, else an empty one (with a warning saying why)."""
        try:
            obj = kube.get(self.path)
        except Unauthorized:
            raise
        except NotFound:
            self._object, self._version = None, ""
            if self.writable:
                log.warning(
                    "the start-up summary's ConfigMap does not exist: the summary is kept in memory only "
                    "(manifests/base ships it empty; the agent may update it, not create it)",
                    configmap=self.where,
                )
            return self._kept()
        except KubeError as e:
            # `once` run by someone who may not read the agent's namespace: not worth a warning each run
            say = log.warning if self.writable else log.info
            say("the start-up summary cannot be read; counting from the events alone", configmap=self.where,
                reason=str(e))
            return self._kept()
        version = _str((obj.get("metadata") or {}).get("resourceVersion"))
        self._object = obj
        if self._summary is not None and version == self._version:
            return self._summary
        self._version = version
        self._summary = self._decoded(obj)
        return self._summary

    def _kept(self) -> Summary:
        if self._summary is None:
            self._summary = Summary()
        return self._summary

    def _decoded(self, obj: JSON) -> Summary:
        data = obj.get("data")
        text = data.get(SUMMARY_KEY) if isinstance(data, dict) else None
        if not text:
            return Summary()
        try:
            return decode(str(text))
        except SummaryError as e:
            log.warning("the start-up summary cannot be read; starting it over", configmap=self.where,
                        field=f"data[{SUMMARY_KEY}]", reason=str(e))
            return Summary()

    def save(self, kube: Kube, summary: Summary, *, now: datetime) -> bool:
        """Write `summary` back (serve). False (and a warning) when it could not be."""
        self._summary = summary
        if not self.writable or self._object is None:
            return False
        text = encode(summary, now=now)
        for attempt in (1, 2):
            body = dict(self._object)
            body["metadata"] = {**(self._object.get("metadata") or {}), "resourceVersion": self._version}
            body["data"] = {**(self._object.get("data") or {}), SUMMARY_KEY: text}
            try:
                kept = kube.replace(self.path, body)
            except Conflict:
                if attempt == 2:
                    break
                try:  # someone else edited it: ours is the summary (only the leader writes), on theirs
                    self._object = kube.get(self.path)
                    self._version = _str((self._object.get("metadata") or {}).get("resourceVersion"))
                except KubeError as e:
                    log.warning("the start-up summary could not be written", configmap=self.where, reason=str(e))
                    return False
                continue
            except KubeError as e:
                log.warning("the start-up summary could not be written", configmap=self.where, reason=str(e))
                return False
            self._object = kept
            self._version = _str((kept.get("metadata") or {}).get("resourceVersion"))
            return True
        log.warning("the start-up summary could not be written: it kept changing (409 twice)", configmap=self.where)
        return False


# -- the cycle's two steps ------------------------------------------------------------------


def begin(
    kube: Kube,
    settings: Settings,
    store: StartupStore,
    observation: Observation,
    inventory: Inventory,
    *,
    nodes: Sequence[NodeInfo] | None,
) -> CyclePulls | None:
    """Before planning: the summary, this cycle's events, and what they add. None when
    `startup.enabled` is off, or when the API server stopped answering this cycle."""
    startup = settings.startup
    if not startup.enabled:
        return None
    if observation.unreachable:  # asking more would only wait out more timeouts
        log.warning("Pulled events not listed: the API server stopped answering", reason=observation.unreachable)
        return None
    summary = store.load(kube)
    listing = list_pulled(kube, page_size=settings.kube.page_size, max_events=startup.max_events,
                          max_per_namespace=startup.max_events_per_namespace)
    trust = Trust.of(
        inventory.usages,
        nodes=[n.name for n in nodes] if nodes is not None else None,
        puller_namespaces=[t.namespace for t in settings.targets],
        alias=lambda ref, namespace: image_as_used(observation, ref, namespace=namespace),
    )
    cycle = count_cycle(summary, listing.events, trust, assumed_rate=float(startup.assumed_pull_rate),
                        listed=listing.listed, listed_uids=listing.uids, ignored=listing.ignored, error=listing.error)
    counts = cycle.counts
    log.info("Pulled events read", listed=counts.listed, trusted=counts.trusted, counted=counts.counted,
             ignored=sum(counts.ignored.values()), untrusted=sum(counts.untrusted.values()))
    return cycle


def finish(
    kube: Kube,
    store: StartupStore,
    cycle: CyclePulls,
    outcomes: Sequence[TargetOutcome],
    *,
    may_write: Callable[[], bool],
    dry_run: bool,
    now: datetime,
) -> tuple[TargetOutcome, ...]:
    """After writing: each target's start-up figures, the summary aged out to the candidates,
    and (serve, not a dry run, still the leader) stored."""
    done = []
    for outcome in outcomes:
        if outcome.plan is None:
            done.append(outcome)
            continue
        nodes = frozenset(n.name for n in outcome.pool.nodes) if outcome.pool is not None else None
        figures = account(cycle, target=str(outcome.target), nodes=nodes, plan=outcome.plan,
                          written=outcome.written, now=now)
        done.append(replace(outcome, startup=figures))
    plans = [o.plan for o in outcomes if o.plan is not None]
    if plans:
        wanted = {
            str(o.target): {str(c.image) for c in o.plan.candidates} if o.plan is not None else _all(cycle, o)
            for o in outcomes
        }
        cycle.summary.keep_only(kept_images(plans), wanted)
    if store.writable and not dry_run and may_write():
        store.save(kube, cycle.summary, now=now)
    return tuple(done)


def _all(cycle: CyclePulls, outcome: TargetOutcome) -> set[str]:
    """A target not planned this cycle keeps its record as it is."""
    record = cycle.summary.targets.get(str(outcome.target))
    return set(record.images) | set(record.listed) if record is not None else set()
