"""`prepull-agent serve` as real processes against the local API server: leader election,
failover, health endpoints, exiting after repeated failures, and the promise that two
replicas never both write (SIGTERM or a lost lease in the middle of a cycle, made slow by a
`FaultProxy` stall)."""

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
import yaml
from kubernetes.client.exceptions import ApiException

from tests.harness.faultproxy import FaultProxy, Rule
from tests.harness.loader import apply_objects, request
from tests.integration.conftest import ADMIN_ENTRY, REPO_ROOT, lease_holder, usurp

# The sample nodes report sklearnserver:v0.15.0 with this digest: the agent lists the digest.
SKLEARN = "docker.io/kserve/sklearnserver@sha256:9fb0f14e8e8975a29b7b106bdc116a6a7933a604dbd70742adf4b45cd0f52ebe"
LEASE = {"duration": 4, "renew": 3, "retry": 0.5}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(path: Path, *, interval: float = 2, failures: int = 5, request_timeout: float = 30) -> Path:
    path.write_text(
        f"kube:\n  request_timeout_seconds: {request_timeout}\n"
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
    def __init__(self, name: str, *, kubeconfig: Path, config: Path, target: str, namespace: str, log: Path,
                 extra: list[str] | None = None) -> None:
        self.name = name
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREPULL_")}
        env.update(POD_NAME=name, POD_NAMESPACE=namespace, PREPULL_SERVE__PORT=str(self.port))
        self.log = log
        with log.open("w") as stderr:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agent", "serve", "--kubeconfig", str(kubeconfig), "--config", str(config),
                 "--target", target, "--log-format", "json", *(extra or [])],
                cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
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


@pytest.fixture
def proxy(cluster, api_client, namespace: str, tmp_path: Path) -> Iterator[tuple[FaultProxy, Path]]:
    """A FaultProxy in front of the API server and a kubeconfig reaching it as a
    ServiceAccount bound to cluster-admin (the proxy passes its token through)."""
    apply_objects(api_client, [{
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": f"{namespace}-agent"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "agent", "namespace": namespace}],
    }])
    token = cluster.token_for(namespace, "agent")
    with FaultProxy(str(cluster.server), cluster.ca_file) as p:
        path = tmp_path / "proxy.kubeconfig"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "proxy", "cluster": {"server": p.url}}],
            "users": [{"name": "agent", "user": {"token": token}}],
            "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "agent"}}],
            "current-context": "proxy",
        }))
        yield p, path
    try:
        request(api_client, "DELETE", f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{namespace}-agent")
    except ApiException:
        pass


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


def test_failing_cycles_leave_the_replica_ready_and_show_in_the_metrics(cluster, sample_cluster, namespace, servers,
                                                                        tmp_path):
    """A missing CR used to make every replica unready, and with the PodDisruptionBudget that
    blocked node drains. Readiness is about serving; cycle health is in the metrics."""
    config = write_config(tmp_path / "config.yaml", interval=0.5, failures=1000)
    server = Server("sad", kubeconfig=cluster.kubeconfig, config=config, target=f"{namespace}/no-such-puller",
                    namespace=namespace, log=tmp_path / "serve.log")
    servers.append(server)
    wait_for(lambda: "failed cycle(s) in a row" in server.get("/readyz")[1], 30, "readyz to report failures")
    assert server.get("/readyz")[0] == 200
    assert server.get("/healthz")[0] == 200
    metrics = server.get("/metrics")[1]
    assert 'prepull_agent_cycles_total{result="failure"}' in metrics
    assert f'prepull_agent_target_failed{{target="{namespace}/no-such-puller"}} 1.0' in metrics
    assert "prepull_agent_consecutive_failed_cycles" in metrics and "process_cpu_seconds_total" in metrics
    assert server.get("/plan")[0] == 503  # no cycle has finished
    assert server.stop() == 0


def test_serve_dry_run_serves_the_plan_and_logs_what_it_would_write(cluster, api_client, puller, namespace, servers,
                                                                  tmp_path):
    import json

    config = write_config(tmp_path / "config.yaml", interval=3600)
    server = Server("planner", kubeconfig=cluster.kubeconfig, config=config, target=puller.target,
                    namespace=namespace, log=tmp_path / "serve.log", extra=["--dry-run"])
    servers.append(server)
    wait_for(lambda: server.get("/plan")[0] == 200, 30, "the first plan")
    doc = json.loads(server.get("/plan")[1])
    assert doc["apiVersion"] == "prepull-agent.io/v1" and doc["dry_run"] is True
    (target,) = doc["targets"]
    assert target["changed"] is True and target["written"] is False
    assert SKLEARN in target["images_after"]
    assert puller.images() == f"{ADMIN_ENTRY};"  # a dry run writes nothing
    records = [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]
    (would,) = [r for r in records if r.get("message") == "dry run: would write the puller"]
    sklearn = {c["name"] for c in target["candidates"] if c["image"] == SKLEARN}
    assert would["level"] == "info" and sklearn and sklearn <= set(would["added"])
    (start,) = [r for r in records if r.get("message") == "starting"]
    assert start["command"] == "serve" and start["server"] == cluster.server and start["targets"] == [puller.target]
    metrics = server.get("/metrics")[1]
    assert 'prepull_agent_build_info{' in metrics
    assert server.stop() == 0


NOTEBOOKS = r"/apis/kubeflow\.org/v1/notebooks"


def test_sigterm_mid_cycle_keeps_the_lease_until_the_cycle_ends(cluster, api_client, puller, namespace, servers, proxy,
                                                                tmp_path):
    fault_proxy, kubeconfig = proxy
    stall = fault_proxy.add(Rule("stall", method="GET", path=NOTEBOOKS, delay=LEASE["duration"] + 2))
    config = write_config(tmp_path / "config.yaml", interval=3600, request_timeout=30)
    server = Server("replica-a", kubeconfig=kubeconfig, config=config, target=puller.target, namespace=namespace,
                    log=tmp_path / "serve.log")
    servers.append(server)
    wait_for(lambda: stall.hits, 30, "the cycle to be stalled")
    server.proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()

    # The stall outlasts the lease: the replica keeps renewing it until the cycle has ended.
    # The holder is read before the CR: a write made before the release is seen no later.
    written_at = released_at = None
    while server.proc.poll() is None or released_at is None:
        now = time.monotonic()
        if released_at is None and lease_holder(api_client, namespace) != "replica-a":
            released_at = now
        if written_at is None and SKLEARN in puller.images():
            written_at = now
        assert now - signalled < 30, "serve did not stop"
        time.sleep(0.05)
    assert server.proc.wait() == 0
    assert lease_holder(api_client, namespace) == ""  # released, for a successor to take at once
    assert written_at is not None and written_at <= released_at, "the lease was released before the cycle wrote"


def test_a_replica_that_loses_its_lease_mid_cycle_exits_7_at_once_and_writes_nothing(
    cluster, api_client, puller, namespace, servers, proxy, tmp_path
):
    fault_proxy, kubeconfig = proxy
    stall = fault_proxy.add(Rule("stall", method="GET", path=NOTEBOOKS, delay=15))
    config = write_config(tmp_path / "config.yaml", interval=3600, request_timeout=30)
    server = Server("replica-a", kubeconfig=kubeconfig, config=config, target=puller.target, namespace=namespace,
                    log=tmp_path / "serve.log")
    servers.append(server)
    wait_for(lambda: stall.hits, 30, "the cycle to be stalled")
    rv = puller.resource_version()

    usurp(api_client, namespace, "replica-b")
    lost_at = time.monotonic()
    assert server.proc.wait(timeout=stall.delay) == 7
    took = time.monotonic() - lost_at
    assert took < 2 * LEASE["retry"] + 1.5, f"exiting took {took:.1f}s"
    assert "lost leadership to another holder" in server.log.read_text()
    # Gone before its stalled cycle could go on: nothing was sent to be written, nothing changed.
    assert fault_proxy.count(method="PATCH") == 0
    assert puller.resource_version() == rv and lease_holder(api_client, namespace) == "replica-b"
