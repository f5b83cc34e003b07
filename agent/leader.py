"""Leader election on a `coordination.k8s.io/v1` Lease, so two replicas never both write.

A small lock of our own over `agent.kube` (the official client's Lease lock lives only in
its asyncio package of the 37.x generation). It follows client-go's rules:

- the holder renews the Lease every `retry_period`; a holder that has not renewed for
  `renew_deadline` gives leadership up at once (it cannot know whether another took over);
- a candidate takes the Lease over only when the record has not changed for
  `lease_duration` as measured by its *own* clock since it last saw the record change, so
  clock skew between nodes does not matter;
- every write carries the resourceVersion it read: two candidates racing for an expired
  Lease cannot both win;
- the holder counts a renewal from the moment it *sent* it, and `holds()` turns False once
  `renew_deadline` has passed since, whether or not a tick is stuck in a request: with
  `renew_deadline < lease_duration`, its window to write ends before anyone may take over;
- the elector's requests must be bounded well under the renew deadline (`agent.loop`
  gives it its own connection: a timeout of at most `retry_period`, no retries);
- `run` never releases: on a clean shutdown the *owner* releases the Lease (`release`,
  once) after everything that could write has stopped, so a successor need not wait and
  never overlaps a cycle still running.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from agent.kube import kinds
from agent.kube.client import Kube
from agent.kube.errors import Conflict, KubeError, NotFound

log = structlog.get_logger("prepull_agent.leader")


@dataclass(frozen=True)
class LeaseConfig:
    namespace: str
    name: str
    identity: str
    lease_duration: float
    renew_deadline: float
    retry_period: float


class LeaderElector:
    """Call `tick()` every `retry_period` (the `run` thread does). `is_leader` says whether
    this replica leads; `holds()` whether it may write right now."""

    def __init__(
        self,
        kube: Kube,
        config: LeaseConfig,
        *,
        on_started_leading: Callable[[], None] = lambda: None,
        on_stopped_leading: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._kube = kube
        self._config = config
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._clock = clock
        self._wall = wall
        self._path = kinds.LEASE.path(namespace=config.namespace, name=config.name)
        self._observed: tuple[Any, ...] | None = None  # (holder, renewTime, transitions) last seen
        self._observed_at = 0.0
        self._last_renewed = 0.0  # when the last successful renewal was sent, on `clock`
        self._release_lock = threading.Lock()
        self._released = False
        self.is_leader = False
        self.api_reachable = False

    @property
    def config(self) -> LeaseConfig:
        return self._config

    # -- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Tick until `stop` is set. Does not release the Lease: the owner does, once nothing
        that relies on it is still running (see `agent.loop.Agent.run`)."""
        while not stop.is_set():
            self.tick()
            stop.wait(self._config.retry_period)

    def holds(self) -> bool:
        """Whether this replica may write now: it leads, and less than `renew_deadline` has
        passed since its last successful renewal was sent. Unlike `is_leader`, this turns
        False on time alone, even while a tick is stuck in a request."""
        return self.is_leader and self._clock() - self._last_renewed < self._config.renew_deadline

    def tick(self) -> None:
        if self._released:
            return  # released for good: never take the lease again
        sent = self._clock()
        try:
            acquired = self._try_acquire_or_renew()
            self.api_reachable = True
        except KubeError as e:
            self.api_reachable = False
            log.warning("lease request failed", lease=self._config.name, reason=str(e))
            acquired = False
        if self._released:
            return
        now = self._clock()
        if acquired:
            # Counted from before the request: other candidates count `lease_duration` from
            # when they see this renewal, which is later, so our renew deadline ends first.
            self._last_renewed = sent
            if not self.is_leader:
                self.is_leader = True
                log.info("became leader", lease=self._config.name, identity=self._config.identity)
                self._on_started()
        elif self.is_leader and now - self._last_renewed >= self._config.renew_deadline:
            self.is_leader = False
            log.warning("lost leadership", lease=self._config.name, identity=self._config.identity)
            self._on_stopped()
        elif self.is_leader and not acquired and self._observed and self._observed[0] != self._config.identity:
            self.is_leader = False  # someone else holds it now: stop at once
            log.warning("lost leadership to another holder", lease=self._config.name, holder=self._observed[0])
            self._on_stopped()

    def release(self) -> None:
        """Give the Lease up if held, so a successor need not wait for it to expire. Only the
        first call does anything; the elector never takes the Lease again afterwards."""
        with self._release_lock:
            if self._released:
                return
            self._released = True
            held, self.is_leader = self.is_leader, False
        if not held:
            return
        try:
            lease = self._kube.get(self._path)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") == self._config.identity:
                spec.update(holderIdentity=None, leaseDurationSeconds=1, renewTime=_micro(self._wall()))
                lease["spec"] = spec
                self._kube.replace(self._path, lease)
                log.info("released the lease", lease=self._config.name)
        except KubeError as e:
            log.warning("could not release the lease; a successor waits for it to expire", reason=str(e))

    # -- one attempt ----------------------------------------------------------------------

    def _try_acquire_or_renew(self) -> bool:
        now_wall = _micro(self._wall())
        try:
            lease = self._kube.get(self._path)
        except NotFound:
            return self._create(now_wall)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"), spec.get("leaseTransitions"))
        if record != self._observed:
            self._observed, self._observed_at = record, self._clock()

        if holder and holder != self._config.identity:
            duration = spec.get("leaseDurationSeconds") or self._config.lease_duration
            if self._clock() - self._observed_at < float(duration):
                return False  # held by someone else, and not expired by our own clock
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder != self._config.identity:
            spec["acquireTime"] = now_wall
            spec["leaseTransitions"] = transitions + 1 if holder else transitions
        spec.update(
            holderIdentity=self._config.identity,
            leaseDurationSeconds=int(self._config.lease_duration),
            renewTime=now_wall,
        )
        lease["spec"] = spec
        try:
            self._kube.replace(self._path, lease)  # carries the resourceVersion read above
        except Conflict:
            return False
        self._observed, self._observed_at = (self._config.identity, now_wall, spec["leaseTransitions"]), self._clock()
        return True

    def _create(self, now_wall: str) -> bool:
        body = {
            "apiVersion": kinds.LEASE.api_version,
            "kind": kinds.LEASE.kind,
            "metadata": {"name": self._config.name, "namespace": self._config.namespace},
            "spec": {
                "holderIdentity": self._config.identity,
                "leaseDurationSeconds": int(self._config.lease_duration),
                "acquireTime": now_wall,
                "renewTime": now_wall,
                "leaseTransitions": 0,
            },
        }
        try:
            self._kube.create(kinds.LEASE.path(namespace=self._config.namespace), body)
        except Conflict:
            return False  # another candidate created it first
        return True


def _micro(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
