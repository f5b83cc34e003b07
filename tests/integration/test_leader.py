"""serve's promise against the real API server: two replicas never both write, and a leader
that loses its lease stops at once.

- `LeaderElector` runs against the session's kube-apiserver with an injected clock, so the
  renew deadline passing and another holder taking over need no waiting; faults come from
  `FaultProxy` (a stalled Lease request) or pytest-mock on a real `Kube`.
- `Agent` runs in-process (its `run`, as `serve` calls it) with a real elector and an
  injected slow cycle: SIGTERM mid-cycle, and the lease lost mid-cycle.
- `run_cycle` runs on a real KubernetesImagePuller with `may_write` saying no, and with
  faults after a conflict.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from apscheduler.triggers.interval import IntervalTrigger
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from agent.apply import TargetMissing
from agent.cycle import NOT_THE_LEADER, run_cycle
from agent.outcome import CycleResult
from agent.kube.client import Kube, connect
from agent.kube.errors import ServerError
from agent.leader import LeaderElector, LeaseConfig
from agent.loop import EXIT_LEADERSHIP_LOST, EXIT_OK, Agent, lease_connection
from agent.settings import Settings, Target, with_target
from tests.harness.cluster import LocalCluster
from tests.harness.faultproxy import FaultProxy, Rule
from tests.harness.loader import apply_objects, request
from tests.integration.conftest import ADMIN_ENTRY, Puller, lease_path, usurp

LEASE = "prepull-agent"
DURATION, RENEW, RETRY = 4.0, 3.0, 0.5
# The sample nodes report sklearnserver:v0.15.0 with this digest: the agent lists the digest.
SKLEARN = "docker.io/kserve/sklearnserver@sha256:9fb0f14e8e8975a29b7b106bdc116a6a7933a604dbd70742adf4b45cd0f52ebe"
PULLER = r"/apis/che\.eclipse\.org/v1alpha1/namespaces/[^/]+/kubernetesimagepullers/image-puller"


class Clock:
    """A monotonic clock that moves only when told (binary fractions: exact sums)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Calls:
    started: int = 0
    stopped: int = 0


def lease_config(namespace: str, identity: str) -> LeaseConfig:
    return LeaseConfig(namespace, LEASE, identity, lease_duration=DURATION, renew_deadline=RENEW, retry_period=RETRY)


def make_elector(kube: Kube, namespace: str, identity: str, clock: Callable[[], float] = time.monotonic):
    calls = Calls()
    elector = LeaderElector(
        kube,
        lease_config(namespace, identity),
        on_started_leading=lambda: setattr(calls, "started", calls.started + 1),
        on_stopped_leading=lambda: setattr(calls, "stopped", calls.stopped + 1),
        clock=clock,
    )
    return elector, calls


def settings_for(target: str = "", *, request_timeout: float = 30.0) -> Settings:
    s = Settings()
    election = replace(
        s.serve.leader_election,
        lease_duration_seconds=DURATION,
        renew_deadline_seconds=RENEW,
        retry_period_seconds=RETRY,
    )
    s = replace(
        s,
        serve=replace(s.serve, leader_election=election),
        kube=replace(s.kube, request_timeout_seconds=request_timeout),
    )
    return with_target(s, target) if target else s


def lease(api_client: ApiClient, namespace: str) -> dict[str, Any]:
    return request(api_client, "GET", lease_path(namespace))


def holder(api_client: ApiClient, namespace: str) -> str:
    try:
        return lease(api_client, namespace)["spec"].get("holderIdentity") or ""
    except ApiException as e:
        if e.status == 404:
            return ""
        raise


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def kubes(cluster: LocalCluster) -> Iterator[Callable[..., Kube]]:
    """`kubes(timeout=..., retries=...)`: a new admin connection, closed after the test."""
    made: list[Kube] = []

    def make(*, kubeconfig: Path | None = None, timeout: float = 2.0, retries: int = 0) -> Kube:
        kube = connect(kubeconfig=str(kubeconfig or cluster.kubeconfig), timeout=timeout, retries=retries)
        made.append(kube)
        return kube

    yield make
    for kube in made:
        kube.close()


@pytest.fixture
def proxy(
    cluster: LocalCluster, api_client: ApiClient, namespace: str, tmp_path: Path
) -> Iterator[tuple[FaultProxy, Path]]:
    """A FaultProxy in front of the API server and a kubeconfig reaching it as a
    ServiceAccount bound to cluster-admin (the proxy passes its token through)."""
    binding = f"{namespace}-agent"
    apply_objects(
        api_client,
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": binding},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"kind": "ServiceAccount", "name": "agent", "namespace": namespace}],
            }
        ],
    )
    token = cluster.token_for(namespace, "agent")
    with FaultProxy(str(cluster.server), cluster.ca_file) as p:
        path = tmp_path / "proxy.kubeconfig"
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "proxy", "cluster": {"server": p.url}}],
                    "users": [{"name": "agent", "user": {"token": token}}],
                    "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "agent"}}],
                    "current-context": "proxy",
                }
            )
        )
        yield p, path
    request(api_client, "DELETE", f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{binding}")


# -- the elector ---------------------------------------------------------------------------------


def test_a_candidate_takes_a_free_lease_and_renews_it(kubes, api_client, namespace):
    clock = Clock()
    a, calls = make_elector(kubes(), namespace, "a", clock)
    a.tick()
    assert a.is_leader and a.holds() and calls.started == 1
    first = lease(api_client, namespace)["spec"]
    assert first["holderIdentity"] == "a" and first["leaseDurationSeconds"] == int(DURATION)

    clock.advance(RETRY)
    a.tick()
    assert lease(api_client, namespace)["spec"]["renewTime"] != first["renewTime"]
    assert a.holds() and calls.started == 1


def test_a_follower_takes_the_lease_over_only_once_it_expired_by_its_own_clock(kubes, api_client, namespace):
    a_clock, b_clock = Clock(), Clock()
    a, _ = make_elector(kubes(), namespace, "a", a_clock)
    b, b_calls = make_elector(kubes(), namespace, "b", b_clock)
    a.tick()
    b.tick()
    assert a.is_leader and not b.is_leader and not b.holds()

    b_clock.advance(DURATION - 0.25)  # "a" has not renewed, but the lease is not over yet
    b.tick()
    assert not b.is_leader and holder(api_client, namespace) == "a"

    b_clock.advance(0.25)
    b.tick()
    assert b.is_leader and b_calls.started == 1
    spec = lease(api_client, namespace)["spec"]
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1


def test_another_holder_taking_over_stops_the_leader_at_once(kubes, api_client, namespace):
    a_clock = Clock()
    a, a_calls = make_elector(kubes(), namespace, "a", a_clock)
    a.tick()
    usurp(api_client, namespace, "b")

    a_clock.advance(RETRY)  # well within the renew deadline: only the other holder tells
    a.tick()
    assert not a.is_leader and not a.holds() and a_calls.stopped == 1

    a_clock.advance(RETRY)
    a.tick()  # a candidate again: it does not fight the fresh holder
    assert holder(api_client, namespace) == "b" and a_calls.stopped == 1 and a_calls.started == 1


def test_a_leader_that_cannot_renew_stops_holding_at_the_renew_deadline(kubes, namespace, mocker):
    clock = Clock()
    kube = kubes()
    a, calls = make_elector(kube, namespace, "a", clock)
    a.tick()
    mocker.patch.object(kube, "replace", side_effect=ServerError(method="PUT", path=lease_path(namespace), status=500))

    clock.advance(1.0)
    a.tick()  # the renewal fails; within the deadline the leader keeps leading
    assert a.is_leader and a.holds() and not a.api_reachable

    clock.advance(RENEW - 1.0 - 0.25)
    assert a.holds()
    clock.advance(0.25)
    # The deadline has passed: no write from now on, whether or not a tick comes (it may be
    # stuck in a request) -- `holds` is what a cycle asks before every write.
    assert a.is_leader and not a.holds()
    a.tick()
    assert not a.is_leader and calls.stopped == 1


def test_stopping_the_elector_keeps_the_lease_and_release_frees_it_once(kubes, api_client, namespace):
    kube = kubes()
    a, _ = make_elector(kube, namespace, "a")
    stop = threading.Event()
    thread = threading.Thread(target=a.run, args=(stop,), daemon=True)
    thread.start()
    wait_for(lambda: a.is_leader, 10, "the lease")
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert a.is_leader and holder(api_client, namespace) == "a"  # only serve releases, when nothing writes any more

    with structlog.testing.capture_logs() as events:
        a.release()
        sent = kube.requests
        a.release()
        a.tick()  # a released elector never takes the lease again
    assert kube.requests == sent
    assert holder(api_client, namespace) == "" and not a.is_leader and not a.holds()
    assert [e["event"] for e in events] == ["released the lease"]


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_a_stalled_lease_request_gives_up_within_the_retry_period(proxy, namespace, method):
    fault_proxy, kubeconfig = proxy
    settings = settings_for(request_timeout=30.0)  # cycles' requests may take 30 s, and are retried
    made: list[Kube] = []

    def connect_lease_kube(timeout: float) -> Kube:
        made.append(connect(kubeconfig=str(kubeconfig), timeout=timeout, retries=0))
        return made[-1]

    kube = lease_connection(settings, connect_lease_kube)  # as the CLI wires it
    a, _ = make_elector(kube, namespace, "a")
    try:
        a.tick()
        assert a.is_leader
        fault_proxy.add(Rule("stall", method=method, path=lease_path(namespace), delay=30, times=None))
        mark = fault_proxy.mark()
        started = time.monotonic()
        a.tick()
        took = time.monotonic() - started
    finally:
        for k in made:
            k.close()
    assert took < RETRY + 0.4, f"one tick blocked {took:.2f}s"
    assert fault_proxy.count(method=method, path=lease_path(namespace), since=mark) == 1  # never retried
    assert not a.api_reachable and a.is_leader  # one failed renewal is not yet the deadline


# -- serve's agent ------------------------------------------------------------------------------


def run_agent(agent: Agent) -> tuple[threading.Thread, list[int]]:
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(agent.run(IntervalTrigger(seconds=3600))), daemon=True)
    thread.start()
    return thread, codes


def test_sigterm_mid_cycle_keeps_the_lease_until_the_cycle_ends(kubes, api_client, namespace):
    cycle_started, let_cycle_end = threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def slow_cycle(kube, settings, *, dry_run, may_write, memory):
        cycle_started.set()
        let_cycle_end.wait(60)
        seen.update(holder=holder(api_client, namespace), may_write=may_write())
        return CycleResult(outcomes=())

    exits: list[int] = []
    agent = Agent(settings_for(), kube=kubes(), cycle=slow_cycle, exit_process=exits.append)
    agent.elect(kubes(timeout=RETRY), lease_config(namespace, "a"))
    thread, codes = run_agent(agent)
    assert cycle_started.wait(15)

    successor, _ = make_elector(kubes(timeout=RETRY), namespace, "b")
    successor_stop = threading.Event()
    threading.Thread(target=successor.run, args=(successor_stop,), daemon=True).start()
    try:
        agent.exit(EXIT_OK)  # what SIGTERM does
        # Longer than the lease lasts: the old leader keeps renewing while its cycle runs.
        until = time.monotonic() + DURATION + 2 * RETRY
        while time.monotonic() < until:
            assert holder(api_client, namespace) == "a" and not successor.is_leader
            time.sleep(0.1)
        assert thread.is_alive()  # serve waits for the cycle

        let_cycle_end.set()
        thread.join(10)
        assert codes == [EXIT_OK] and exits == []
        assert seen == {"holder": "a", "may_write": True}  # it could write to the very end
        wait_for(lambda: successor.is_leader, 2 * RETRY + 1, "the successor, once the lease is released")
    finally:
        let_cycle_end.set()
        successor_stop.set()


def test_a_leader_that_loses_its_lease_mid_cycle_exits_7_at_once_and_writes_nothing(
    kubes, api_client, namespace, puller: Puller
):
    cycle_started, let_cycle_go_on, cycle_ended = threading.Event(), threading.Event(), threading.Event()
    results: list[CycleResult] = []

    def cycle(kube, settings, *, dry_run, may_write, memory):
        cycle_started.set()
        let_cycle_go_on.wait(60)
        results.append(run_cycle(kube, settings, dry_run=dry_run, may_write=may_write, memory=memory))
        cycle_ended.set()
        return results[-1]

    exits: list[int] = []
    agent = Agent(
        settings_for(puller.target), kube=kubes(timeout=10, retries=2), cycle=cycle, exit_process=exits.append
    )
    agent.elect(kubes(timeout=RETRY), lease_config(namespace, "a"))
    thread, codes = run_agent(agent)
    try:
        assert cycle_started.wait(15)
        rv = puller.resource_version()
        usurp(api_client, namespace, "b")
        wait_for(lambda: exits, 2 * RETRY + 1, "the process to be ended")
        assert exits == [EXIT_LEADERSHIP_LOST]
        thread.join(5)
        assert codes == [EXIT_LEADERSHIP_LOST] and not cycle_ended.is_set()  # did not wait for the cycle

        let_cycle_go_on.set()  # were the process still there, its cycle would write nothing
        assert cycle_ended.wait(30)
        (outcome,) = results[0].outcomes
        assert outcome.plan.changed and not outcome.written and outcome.error == NOT_THE_LEADER
        assert puller.resource_version() == rv
    finally:
        let_cycle_go_on.set()


# -- the cycle ----------------------------------------------------------------------------------


def test_a_lost_lease_never_writes(kubes, puller: Puller, mocker):
    kube = kubes(timeout=10, retries=2)
    patches = mocker.spy(kube, "patch_merge")
    rv = puller.resource_version()
    result = run_cycle(kube, settings_for(puller.target), dry_run=False, may_write=lambda: False)
    (outcome,) = result.outcomes
    assert outcome.plan.changed  # there was something to write
    assert outcome.error == NOT_THE_LEADER and not outcome.written and not result.ok
    assert patches.call_count == 0 and puller.resource_version() == rv


def test_a_lease_lost_after_a_conflict_stops_the_retry(kubes, puller: Puller, mocker):
    kube = kubes(timeout=10, retries=2)
    patches = mocker.spy(kube, "patch_merge")
    asked: list[str] = []

    def may_write() -> bool:
        if not asked:  # someone edits the CR between the agent's read and its write: 409
            asked.append(
                puller.patch({"metadata": {"annotations": {"edited-by": "someone"}}})["metadata"]["resourceVersion"]
            )
            return True
        return False

    result = run_cycle(kube, settings_for(puller.target), dry_run=False, may_write=may_write)
    (outcome,) = result.outcomes
    assert outcome.error == NOT_THE_LEADER and not outcome.written
    assert patches.call_count == 1  # the one that met the 409; none after the lease was lost
    assert puller.resource_version() == asked[0]


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(
            [Rule("pass", method="GET", path=PULLER), Rule("status", method="GET", path=PULLER, status=403)],
            id="re-read denied",
        ),
        pytest.param(
            [Rule("pass", method="GET", path=PULLER), Rule("status", method="GET", path=PULLER, status=404)],
            id="re-read finds it gone",
        ),
        pytest.param(
            [Rule("conflict", method="PATCH", path=PULLER), Rule("status", method="PATCH", path=PULLER, status=403)],
            id="second write denied",
        ),
    ],
)
def test_a_failure_after_a_conflict_is_that_targets_error_and_the_next_target_is_written(
    proxy, kubes, api_client, namespace, second_namespace, puller: Puller, fault
):
    fault_proxy, kubeconfig = proxy
    apply_objects(
        api_client,
        [
            {
                "apiVersion": "che.eclipse.org/v1alpha1",
                "kind": "KubernetesImagePuller",
                "metadata": {"name": "second-puller", "namespace": second_namespace},
                "spec": {"daemonsetName": "second", "images": f"{ADMIN_ENTRY};"},
            }
        ],
    )
    second = Puller(second_namespace, "second-puller", api_client)
    rules = fault if fault[0].action == "conflict" else [Rule("conflict", method="PATCH", path=PULLER), *fault]
    for rule in rules:
        fault_proxy.add(rule)
    settings = replace(
        settings_for(),
        targets=(Target(namespace=namespace, name="image-puller"), Target(namespace=second_namespace, name="second-puller")),
    )
    rv = puller.resource_version()

    result = run_cycle(kubes(kubeconfig=kubeconfig, timeout=10, retries=2), settings, dry_run=False)

    first, other = result.outcomes
    assert not first.written and first.error and not result.ok
    assert ("re-read" in first.error) == (fault[0].action == "pass")
    assert other.written and not other.error and SKLEARN in second.images()
    assert puller.resource_version() == rv


def test_a_target_that_cannot_be_read_stops_the_cycle_before_anything_is_written(
    kubes, namespace, second_namespace, puller: Puller
):
    settings = replace(
        settings_for(),
        targets=(Target(namespace=namespace, name="image-puller"), Target(namespace=second_namespace, name="no-such-puller")),
    )
    rv = puller.resource_version()
    with pytest.raises(TargetMissing):
        run_cycle(kubes(timeout=10, retries=2), settings, dry_run=False)
    assert puller.resource_version() == rv  # no earlier target was written, so no outcome is lost


def test_a_replica_without_the_lease_does_not_create_a_missing_target(kubes, sample_cluster, api_client, namespace):
    settings = replace(settings_for(), targets=(Target(namespace=namespace, name="image-puller", create=True),))
    created = Puller(namespace, "image-puller", api_client)
    with pytest.raises(TargetMissing):
        run_cycle(kubes(timeout=10, retries=2), settings, dry_run=False, may_write=lambda: False)
    with pytest.raises(ApiException) as gone:
        created.get()
    assert gone.value.status == 404

    result = run_cycle(kubes(timeout=10, retries=2), settings, dry_run=False)  # the leader creates it, then writes
    assert result.outcomes[0].written and SKLEARN in created.images()
