"""`serve`: cycles on a schedule, for the leader only, with health and metrics.

- APScheduler runs a cycle at start and then on `serve.interval_seconds` or `serve.cron`;
  a cycle never overlaps the previous one.
- Only the leader (see `agent.leader`) runs cycles; becoming leader runs one at once.
  Before every write the cycle asks `may_write`: does this replica still hold the lease
  (renewed less than `renew_deadline` ago)? The elector has its own connection, whose
  requests time out within `retry_period` and are never retried, so a tick cannot block
  for longer than the lease.
- Losing the lease ends the process at once (exit 7), even in the middle of a cycle, so
  the kubelet restarts it as a follower: a replica that may no longer write must not
  finish a cycle.
- A failed cycle is logged and the next goes on; `serve.max_consecutive_failures` in a row
  end the process (exit 6) so the kubelet restarts it.
- SIGTERM/SIGINT stop the scheduler and wait for the running cycle while the lease is
  still renewed; only then is the lease released (a successor takes over at once, and
  never while this replica may still write), and the process exits 0.
- One HTTP port serves `/healthz` (process and scheduler alive), `/readyz` (serving: up
  and not stopping; a failing cycle does not make a replica unready, or a cluster-wide
  problem would make both unready and block node drains), `/metrics` (Prometheus, see
  `agent.metrics`: cycle health is there, and alerted on) and `/plan` (the last cycle's
  JSON document, as `once --output json` prints it; the leader's only).
- The start-up summary (`agent.events.StartupStore`) lives as long as the process: each
  cycle reads its ConfigMap, keeps what it counted in memory, and (not in a dry run, and
  only while this replica may write) stores it back, so a restart or a new leader goes on
  from where the last one stopped.
- A port already in use, or leader election without a namespace, stops `serve` at start
  with `ServeError` (exit 2) and one line that says what to fix.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agent import logs
from agent.cycle import Memory, failure, run_cycle
from agent.events import StartupStore
from agent.exits import Exit
from agent.kube.client import Kube
from agent.kube.errors import KubeError
from agent.leader import LeaderElector, LeaseConfig
from agent.metrics import FAILURE, Metrics
from agent.outcome import CycleResult
from agent.settings import Settings

log = structlog.get_logger("prepull_agent.serve")

EXIT_OK = Exit.OK
EXIT_TOO_MANY_FAILURES = Exit.SERVE_FAILURES
EXIT_LEADERSHIP_LOST = Exit.LEADERSHIP_LOST
JOB_ID = "cycle"


class ServeError(Exception):
    """`serve` cannot start; the message says what to fix, `code` is the exit code."""

    def __init__(self, message: str, *, code: int = Exit.USAGE) -> None:
        super().__init__(message)
        self.code = code


def _exit_process(code: int) -> None:
    """End the process now, whatever its threads are doing (see `Agent.stopped_leading`)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken: nothing more to save
            pass
    os._exit(code)


class Agent:
    """The serving process's state and its run (`run`); `serve()` wires it to the
    connections, signals and HTTP."""

    def __init__(
        self,
        settings: Settings,
        *,
        kube: Kube,
        dry_run: bool = False,
        cycle: Callable[..., CycleResult] = run_cycle,
        exit_process: Callable[[int], object] = _exit_process,
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.dry_run = dry_run
        self.metrics = Metrics(targets=[str(t) for t in settings.targets])
        self.stop = threading.Event()
        self.exit_code: int = EXIT_OK
        self.consecutive_failures = 0
        self.last_cycle_ok: bool | None = None
        self.last_result: CycleResult | None = None
        self.memory = Memory()  # the pullers' states and the Events posted, from cycle to cycle
        self.scheduler = BackgroundScheduler(timezone=UTC)
        self.elector: LeaderElector | None = None
        # The start-up summary, kept across cycles and written back (not in a dry run).
        self.startup = StartupStore.for_settings(settings, writable=not dry_run)
        self._cycle = functools.partial(run_cycle, startup=self.startup) if cycle is run_cycle else cycle
        self._exit_process = exit_process
        self._lock = threading.Lock()

    def elect(self, kube: Kube, config: LeaseConfig) -> LeaderElector:
        """Take part in leader election on `config`'s Lease, through `kube` (see `lease_connection`)."""
        self.elector = LeaderElector(
            kube, config, on_started_leading=self.started_leading, on_stopped_leading=self.stopped_leading
        )
        return self.elector

    @property
    def is_leader(self) -> bool:
        return self.elector.is_leader if self.elector else True

    def may_write(self) -> bool:
        """Asked by the cycle right before every write: does this replica hold the lease now?"""
        return self.elector.holds() if self.elector else True

    def run_one(self) -> None:
        """The scheduled job: one cycle if this replica leads."""
        if not self.may_write() or self.stop.is_set():
            return
        with self._lock:
            logs.new_cycle()
            try:
                result = self._cycle(
                    self.kube, self.settings, dry_run=self.dry_run, may_write=self.may_write, memory=self.memory
                )
                ok = self.metrics.record(result) != FAILURE
                self.last_result = result
            except Exception as e:  # noqa: BLE001 - a failed cycle must not end the loop
                ok = False
                self.metrics.record_crash()
                log.error("cycle failed", reason=_reason(e, kube=self.kube), error=type(e).__name__)
            self.last_cycle_ok = ok
            self.consecutive_failures = 0 if ok else self.consecutive_failures + 1
            self.metrics.consecutive_failures.set(self.consecutive_failures)
            if self.consecutive_failures >= self.settings.serve.max_consecutive_failures:
                log.error("too many failed cycles in a row, exiting", failures=self.consecutive_failures)
                self.exit(EXIT_TOO_MANY_FAILURES)

    def started_leading(self) -> None:
        """Run a cycle now rather than at the next tick."""
        self.metrics.leader.set(1)
        if self.stop.is_set():
            return  # stopping: the scheduler runs nothing more
        job = self.scheduler.get_job(JOB_ID)
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC))

    def stopped_leading(self) -> None:
        """Another replica may be writing now: end the process at once, even mid-cycle.

        Why `os._exit` (`_exit_process`) rather than returning 7 from `serve`: the cycle runs
        in APScheduler's pool thread, which Python can neither interrupt nor leave behind --
        the interpreter joins it at exit, so returning would wait for the cycle to end (minutes
        of listing, maybe). `may_write` already refuses every write from now on (the elector
        cleared `is_leader` before calling this), but the pod must restart as a follower now.
        Skipping atexit handlers and `finally` blocks costs nothing here: the lease is not ours
        to release, the HTTP server dies with the process, and the logs are flushed first.
        A SIGTERM drain in progress does not matter either: losing the lease wins (exit 7).
        """
        self.metrics.leader.set(0)
        self.exit_code = EXIT_LEADERSHIP_LOST
        self.stop.set()
        log.error("exiting now: another replica may write", exit_code=EXIT_LEADERSHIP_LOST)
        self._exit_process(EXIT_LEADERSHIP_LOST)

    def exit(self, code: int) -> None:
        if not self.stop.is_set():
            self.exit_code = code
            self.stop.set()

    def healthy(self) -> bool:
        return self.scheduler.running and not self.stop.is_set()

    def ready(self) -> tuple[bool, str]:
        """Ready while serving: up and not stopping. Cycle health is reported in the text and
        in the metrics, never by going unready (see the module docstring)."""
        if self.stop.is_set():
            return False, "stopping"
        role = "leader" if self.is_leader else "standby"
        if self.elector is not None and not self.elector.api_reachable:
            return True, f"{role}; the API server does not answer the leader election"
        if self.consecutive_failures:
            return True, f"{role}; {self.consecutive_failures} failed cycle(s) in a row (see the log and metrics)"
        return True, role

    def plan_document(self) -> bytes | None:
        """The last cycle's JSON document, or None before the first (and on a standby)."""
        if self.last_result is None:
            return None
        from agent.report import as_json

        return as_json(self.last_result, dry_run=self.dry_run).encode()

    def run(self, trigger: Any, *, server: ThreadingHTTPServer | None = None) -> int:
        """Cycle on `trigger` (and serve HTTP) until `stop` is set; return the exit code.

        Stopping keeps the promise that two replicas never both write:
        1. the scheduler shuts down and waits for the running cycle to end, while the
           elector goes on renewing the lease -- a successor must not take over while this
           cycle may still write;
        2. the elector stops ticking (its thread ends after the tick in progress);
        3. the lease is released, once, so a successor need not wait for it to expire.
        A lost lease ends the process before this (`stopped_leading`); were `exit_process`
        to return, the cycle is not waited for and cannot write (`may_write` says no).
        """
        self.scheduler.add_job(
            self.run_one,
            trigger,
            id=JOB_ID,
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
            misfire_grace_time=None,
        )
        lease_stop = threading.Event()  # not `stop`: the lease is renewed until the cycle has ended
        elector = self.elector
        leader = (
            threading.Thread(target=elector.run, args=(lease_stop,), name="leader", daemon=True) if elector else None
        )
        http = threading.Thread(target=server.serve_forever, name="http", daemon=True) if server else None
        self.scheduler.start()
        for thread in (leader, http):
            if thread is not None:
                thread.start()
        self.stop.wait()

        log.info("stopping", exit_code=self.exit_code)
        self.scheduler.shutdown(wait=self.exit_code != EXIT_LEADERSHIP_LOST)
        lease_stop.set()
        if elector is not None and leader is not None:
            # A tick is bounded by the lease connection's timeouts; were one to hang anyway,
            # releasing is still safe: it carries the resourceVersion it read.
            leader.join(timeout=elector.config.lease_duration)
            elector.release()  # does nothing when the lease is not held
        if server is not None:
            server.shutdown()
        return self.exit_code


def lease_timeout(settings: Settings) -> float:
    """The timeout of the elector's requests: within `retry_period` and half the renew
    deadline (a tick sends two), and never above the general request timeout."""
    election = settings.serve.leader_election
    return min(
        settings.kube.request_timeout_seconds,
        election.retry_period_seconds,
        election.renew_deadline_seconds / 2,
    )


def lease_connection(settings: Settings, connect_lease_kube: Callable[[float], Kube]) -> Kube:
    """The elector's own connection: `lease_timeout`, and no retries (the next tick is the retry)."""
    return connect_lease_kube(lease_timeout(settings))


def serve(
    settings: Settings,
    *,
    kube: Kube,
    connect_lease_kube: Callable[[float], Kube],
    dry_run: bool = False,
) -> int:
    """`kube`: the connection for cycles; `connect_lease_kube(timeout)`: one for the Lease,
    with that timeout and no retries (see `lease_connection`). Raises `ServeError` when it
    cannot start."""
    agent = Agent(settings, kube=kube, dry_run=dry_run)
    trigger = _trigger(settings)
    election = settings.serve.leader_election
    namespace = election.lease_namespace or os.environ.get("POD_NAMESPACE", "")
    if election.enabled and not namespace:
        raise ServeError(
            "leader election needs a namespace: set POD_NAMESPACE (the downward API) or "
            "serve.leader_election.lease_namespace, or disable leader election"
        )
    server = _health_server(agent, settings.serve.port)
    if election.enabled:
        agent.elect(
            lease_connection(settings, connect_lease_kube),
            LeaseConfig(
                namespace=namespace,
                name=election.lease_name,
                identity=_identity(),
                lease_duration=election.lease_duration_seconds,
                renew_deadline=election.renew_deadline_seconds,
                retry_period=election.retry_period_seconds,
            ),
        )
    else:
        agent.metrics.leader.set(1)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: agent.exit(EXIT_OK))

    log.info(
        "serving",
        port=server.server_address[1],
        schedule=str(trigger),
        dry_run=dry_run,
        leader_election=election.enabled,
    )
    return agent.run(trigger, server=server)


def _trigger(settings: Settings) -> Any:
    if settings.serve.cron:
        return CronTrigger.from_crontab(settings.serve.cron, timezone=UTC)
    return IntervalTrigger(seconds=settings.serve.interval_seconds, timezone=UTC)


def _identity() -> str:
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def _reason(e: Exception, *, kube: Kube) -> str:
    """What `once` would print for it (a 401: log in again), on one line."""
    text = failure(e, kube=kube)[1] if isinstance(e, KubeError) else str(e)
    return " ".join(text.split()) or type(e).__name__


def _health_server(agent: Agent, port: int) -> ThreadingHTTPServer:
    """Bind the port now, so a busy one stops `serve` before anything else starts."""
    try:
        return ThreadingHTTPServer(("0.0.0.0", port), _handler(agent))  # noqa: S104 - probes come from the kubelet
    except OSError as e:
        raise ServeError(
            f"cannot serve health and metrics on port {port}: {e.strerror or e}; stop what uses it or set "
            "serve.port (PREPULL_SERVE__PORT) to a free port"
        ) from e


def _handler(agent: Agent) -> type[BaseHTTPRequestHandler]:
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
            elif self.path == "/plan":
                plan = agent.plan_document()
                if plan is None:
                    why = "standby: the leader serves the plan" if not agent.is_leader else "no cycle has finished yet"
                    self._send(503, f"{why}\n".encode())
                else:
                    self._send(200, plan, "application/json")
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

    return Handler
