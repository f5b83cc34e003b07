"""`prepull-agent serve` as real processes against the local API server: leader election,
failover, health endpoints, and exiting after repeated failures."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.loader import request
from tests.integration.conftest import ADMIN_ENTRY, REPO_ROOT

SKLEARN = "docker.io/kserve/sklearnserver:v0.15.0"
LEASE = {"duration": 4, "renew": 3, "retry": 0.5}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(path: Path, *, interval: float = 2, failures: int = 5) -> Path:
    path.write_text(
        "serve:\n"
        f"  interval_seconds: {interval}\n"
        f"  max_consecutive_failures: {failures}\n"
        "  leader_election:\n"
        f"    lease_duration_seconds: {LEASE['duration']}\n"
        f"    renew_deadline_seconds: {LEASE['renew']}\n"
        f"    retry_period_seconds: {LEASE['retry']}\n"
    )
    return path


class Server:
    def __init__(self, name: str, *, kubeconfig: Path, config: Path, target: str, namespace: str, log: Path) -> None:
        self.name = name
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREPULL_")}
        env.update(POD_NAME=name, POD_NAMESPACE=namespace, PREPULL_SERVE__PORT=str(self.port))
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "serve", "--kubeconfig", str(kubeconfig), "--config", str(config),
             "--target", target, "--log-format", "json"],
            cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"),
        )

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return 0, ""

    def leads(self) -> bool:
        status, body = self.get("/metrics")
        return status == 200 and "prepull_agent_leader 1.0" in body

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


def wait_for(predicate, timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for s in started:
        s.stop(signal.SIGKILL)


def lease_holder(api_client, namespace: str) -> str:
    try:
        return request(api_client, "GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/prepull-agent")["spec"].get("holderIdentity") or ""
    except Exception:  # noqa: BLE001 - not created yet
        return ""


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["graceful", "killed"])
def test_exactly_one_replica_leads_and_the_other_takes_over(
    cluster, api_client, puller, namespace, servers, tmp_path, stop_signal
):
    config = write_config(tmp_path / "config.yaml")
    for name in ("replica-a", "replica-b"):
        servers.append(Server(name, kubeconfig=cluster.kubeconfig, config=config, target=puller.target,
                              namespace=namespace, log=tmp_path / f"{name}.log"))
    wait_for(lambda: lease_holder(api_client, namespace) in ("replica-a", "replica-b"), 30, "a leader")
    wait_for(lambda: SKLEARN in puller.images(), 30, "the leader's first write")
    wait_for(lambda: all(s.get("/healthz")[0] == 200 for s in servers), 10, "health endpoints")
    time.sleep(LEASE["retry"] * 4)
    leaders = [s for s in servers if s.leads()]
    assert [s.name for s in leaders] == [lease_holder(api_client, namespace)]
    (leader,) = leaders
    (follower,) = [s for s in servers if s is not leader]
    assert follower.get("/readyz") == (200, "standby\n")
    assert puller.images().startswith(f"{ADMIN_ENTRY};")

    rv = puller.resource_version()
    code = leader.stop(stop_signal)
    stopped_at = time.monotonic()
    if stop_signal == signal.SIGTERM:
        assert code == 0
    failover = wait_for(lambda: follower.leads(), LEASE["duration"] + 10, "the follower to take over")
    assert lease_holder(api_client, namespace) == follower.name
    assert failover <= LEASE["duration"] + 2 * LEASE["retry"] + 1, f"failover took {time.monotonic() - stopped_at:.1f}s"
    print(f"\nfailover after {stop_signal.name}: {failover:.2f}s")
    time.sleep(3)  # the new leader has cycled at least once by now: nothing changed, so nothing written
    assert puller.resource_version() == rv


def test_serve_survives_failing_cycles_then_exits_after_the_limit(cluster, sample_cluster, namespace, servers, tmp_path):
    config = write_config(tmp_path / "config.yaml", interval=0.3, failures=3)
    server = Server("lonely", kubeconfig=cluster.kubeconfig, config=config, target=f"{namespace}/no-such-puller",
                    namespace=namespace, log=tmp_path / "serve.log")
    servers.append(server)
    code = server.proc.wait(timeout=60)
    assert code == 6
    log = server.log.read_text()
    assert log.count('"cycle failed"') == 3
    assert "too many failed cycles in a row" in log


def test_readyz_reports_failing_cycles(cluster, sample_cluster, namespace, servers, tmp_path):
    config = write_config(tmp_path / "config.yaml", interval=0.5, failures=1000)
    server = Server("sad", kubeconfig=cluster.kubeconfig, config=config, target=f"{namespace}/no-such-puller",
                    namespace=namespace, log=tmp_path / "serve.log")
    servers.append(server)
    wait_for(lambda: "failed cycle(s) in a row" in server.get("/readyz")[1], 30, "readyz to report failures")
    assert server.get("/readyz")[0] == 503
    assert server.get("/healthz")[0] == 200
    assert 'prepull_agent_cycles_total{result="failure"}' in server.get("/metrics")[1]
    assert server.stop() == 0
