"""`serve`: cycles on a schedule, for the leader only, with health and metrics.

- APScheduler runs a cycle at start and then on `serve.interval_seconds` or `serve.cron`;
  a cycle never overlaps the previous one.
- Only the leader (see `agent.leader`) runs cycles; becoming leader runs one at once.
  Losing the lease stops the process at once (exit 7) so the kubelet restarts it as a
  follower: a replica that may no longer write must not finish a cycle.
- A failed cycle is logged and the next goes on; `serve.max_consecutive_failures` in a row
  end the process (exit 6) so the kubelet restarts it.
- SIGTERM/SIGINT stop the scheduler, release the lease and exit 0.
- One HTTP port serves `/healthz` (process and scheduler alive), `/readyz` (the API server
  answers and recent cycles are not failing) and `/metrics` (Prometheus).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from agent.cycle import CycleResult, run_cycle
from agent.kube.client import Kube
from agent.leader import LeaderElector, LeaseConfig
from agent.settings import Settings

log = structlog.get_logger("prepull_agent.serve")

EXIT_OK = 0
EXIT_TOO_MANY_FAILURES = 6
EXIT_LEADERSHIP_LOST = 7
JOB_ID = "cycle"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.duration = Histogram(
            "prepull_agent_cycle_duration_seconds",
            "Duration of a cycle",
            registry=r,
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
        )
        self.cycles = Counter("prepull_agent_cycles", "Cycles run, by result", ["result"], registry=r)
        self.candidates = Gauge("prepull_agent_candidates", "Images considered in the last cycle", registry=r)
        self.selected = Gauge("prepull_agent_selected", "Images selected in the last cycle", registry=r)
        self.rejected = Gauge("prepull_agent_rejected", "References rejected in the last cycle", registry=r)
        self.writes = Counter("prepull_agent_writes", "Changes written to a KubernetesImagePuller", registry=r)
        self.last_success = Gauge(
            "prepull_agent_last_success_timestamp_seconds", "Unix time of the last successful cycle", registry=r
        )
        self.leader = Gauge("prepull_agent_leader", "1 when this replica holds the lease", registry=r)
        self.failed_sources = Gauge(
            "prepull_agent_failed_sources", "Kinds that could not be listed in the last cycle", registry=r
        )

    def record(self, result: CycleResult) -> None:
        plans = [o.plan for o in result.outcomes if o.plan is not None]
        self.duration.observe(result.duration_seconds)
        self.cycles.labels(result="success" if result.ok else "failure").inc()
        self.candidates.set(sum(len(p.candidates) for p in plans))
        self.selected.set(sum(len(p.selected) for p in plans))
        self.rejected.set(max((len(p.rejected) for p in plans), default=0))
        self.writes.inc(result.written)
        self.failed_sources.set(len(result.failed))
        if result.ok:
            self.last_success.set(time.time())


class Agent:
    """The serving process's state; `serve()` wires it to threads, signals and HTTP."""

    def __init__(
        self, settings: Settings, *, kube: Kube, dry_run: bool = False, cycle: Callable[..., CycleResult] = run_cycle
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.dry_run = dry_run
        self.metrics = Metrics()
        self.stop = threading.Event()
        self.exit_code = EXIT_OK
        self.consecutive_failures = 0
        self.last_cycle_ok: bool | None = None
        self.scheduler = BackgroundScheduler(timezone=UTC)
        self.elector: LeaderElector | None = None
        self._cycle = cycle
        self._lock = threading.Lock()

    @property
    def is_leader(self) -> bool:
        return self.elector.is_leader if self.elector else True

    def run_one(self) -> None:
        """The scheduled job: one cycle if this replica leads."""
        if not self.is_leader or self.stop.is_set():
            return
        with self._lock:
            try:
                result = self._cycle(self.kube, self.settings, dry_run=self.dry_run)
                ok = result.ok
                self.metrics.record(result)
            except Exception as e:  # noqa: BLE001 - a failed cycle must not end the loop
                ok = False
                self.metrics.cycles.labels(result="failure").inc()
                log.error("cycle failed", reason=str(e), error=type(e).__name__)
            self.last_cycle_ok = ok
            self.consecutive_failures = 0 if ok else self.consecutive_failures + 1
            if self.consecutive_failures >= self.settings.serve.max_consecutive_failures:
                log.error("too many failed cycles in a row, exiting", failures=self.consecutive_failures)
                self.exit(EXIT_TOO_MANY_FAILURES)

    def started_leading(self) -> None:
        """Run a cycle now rather than at the next tick."""
        self.metrics.leader.set(1)
        job = self.scheduler.get_job(JOB_ID)
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC))

    def stopped_leading(self) -> None:
        """Another replica may be writing now: stop at once."""
        self.metrics.leader.set(0)
        self.exit(EXIT_LEADERSHIP_LOST)

    def exit(self, code: int) -> None:
        if not self.stop.is_set():
            self.exit_code = code
            self.stop.set()

    def healthy(self) -> bool:
        return self.scheduler.running and not self.stop.is_set()

    def ready(self) -> tuple[bool, str]:
        if self.elector is not None and not self.elector.api_reachable:
            return False, "the API server does not answer"
        if self.consecutive_failures:
            return False, f"{self.consecutive_failures} failed cycle(s) in a row"
        return True, "leader" if self.is_leader else "standby"


def serve(settings: Settings, *, connect_kube: Callable[[], Kube], dry_run: bool = False) -> int:
    agent = Agent(settings, kube=connect_kube(), dry_run=dry_run)
    trigger = _trigger(settings)
    agent.scheduler.add_job(
        agent.run_one,
        trigger,
        id=JOB_ID,
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
        misfire_grace_time=None,
    )

    threads = []
    election = settings.serve.leader_election
    if election.enabled:
        namespace = election.lease_namespace or os.environ.get("POD_NAMESPACE", "")
        if not namespace:
            log.error(
                "leader election needs a namespace: set POD_NAMESPACE (the downward API) or "
                "serve.leader_election.lease_namespace, or disable leader election"
            )
            return 2
        agent.elector = LeaderElector(
            connect_kube(),
            LeaseConfig(
                namespace=namespace,
                name=election.lease_name,
                identity=_identity(),
                lease_duration=election.lease_duration_seconds,
                renew_deadline=election.renew_deadline_seconds,
                retry_period=election.retry_period_seconds,
            ),
            on_started_leading=agent.started_leading,
            on_stopped_leading=agent.stopped_leading,
        )
        threads.append(threading.Thread(target=agent.elector.run, args=(agent.stop,), name="leader", daemon=True))
    else:
        agent.metrics.leader.set(1)

    server = _health_server(agent, settings.serve.port)
    threads.append(threading.Thread(target=server.serve_forever, name="http", daemon=True))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: agent.exit(EXIT_OK))

    log.info(
        "serving",
        port=server.server_address[1],
        schedule=str(trigger),
        dry_run=dry_run,
        leader_election=election.enabled,
    )
    agent.scheduler.start()
    for thread in threads:
        thread.start()
    agent.stop.wait()

    log.info("stopping", exit_code=agent.exit_code)
    agent.scheduler.shutdown(wait=agent.exit_code != EXIT_LEADERSHIP_LOST)
    if agent.elector is not None and agent.exit_code != EXIT_LEADERSHIP_LOST:
        agent.elector.release()
    server.shutdown()
    return agent.exit_code


def _trigger(settings: Settings) -> Any:
    if settings.serve.cron:
        return CronTrigger.from_crontab(settings.serve.cron, timezone=UTC)
    return IntervalTrigger(seconds=settings.serve.interval_seconds, timezone=UTC)


def _identity() -> str:
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def _health_server(agent: Agent, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            if self.path == "/healthz":
                ok = agent.healthy()
                self._send(200 if ok else 503, b"ok\n" if ok else b"stopping\n")
            elif self.path == "/readyz":
                ok, why = agent.ready()
                self._send(200 if ok else 503, f"{why}\n".encode())
            elif self.path == "/metrics":
                self._send(200, generate_latest(agent.metrics.registry), CONTENT_TYPE_LATEST)
            else:
                self._send(404, b"not found\n")

        def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:  # probes every few seconds: keep logs quiet
            pass

    return ThreadingHTTPServer(("0.0.0.0", port), Handler)  # noqa: S104 - probes come from the kubelet
