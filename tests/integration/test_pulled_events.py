"""Start-up time saved, from Events written exactly as the kubelet writes them (client-go's
recorder: `source`, `reportingComponent`/`reportingInstance`, `involvedObject` the Pod with
its `fieldPath`, `count`, first and last timestamps), on the real API server.

Workloads run in a project namespace of the test's own (the pullers' namespaces are the
pullers': events there are the puller's own pods). The CPU puller runs on worker-0 and
worker-1; the GPU pool's (tests of two targets) on worker-gpu-0 and worker-gpu-1.
"""

from __future__ import annotations

import json
import secrets
import signal
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient

from agent.events import OVER_NAMESPACE_CAP, StartupStore
from agent.kube.client import connect
from agent.kubelet import BAD_DURATION, NOT_KUBELET
from agent.settings import load_settings, with_target
from agent.startup import CAPPED, COMBINED, NO_SUCH_NODE, NOT_IN_USE, PULLER_POD
from tests.harness.loader import apply_objects, request
from tests.integration.conftest import ADMIN_ENTRY, Puller
from tests.integration.test_node_pools import GPU_TOLERATION, make_puller
from tests.integration.test_serve import Server, wait_for, write_config

WB = "quay.io/startup-test/workbench:1"
GPU_WB = "quay.io/startup-test/cuda-workbench:1"
AAA = "quay.io/startup-test/aaa:1"
BBB = "quay.io/startup-test/bbb:1"
# A digest worker-0 reports (1,547,312,384 bytes) that no sample workload runs.
REPORTED = "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:63cb19612b50cc636007ab06ab884b4a90e732c092336a39cf7bd392187f105e"
SUMMARY = "prepull-agent-startup"
GiB = 2**30


@pytest.fixture
def projects(cluster, api_client: ApiClient, request: pytest.FixtureRequest) -> Iterator[Callable[[], str]]:
    """Make project namespaces of the test's own (deleted with their contents afterwards)."""
    made: list[str] = []

    def make() -> str:
        name = f"p{len(made)}-{request.node.name.lower().replace('_', '-')[:40].strip('-')}-{secrets.token_hex(3)}"
        request_ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        apply_objects(api_client, [request_ns])
        made.append(name)
        return name

    yield make
    for name in made:
        cluster.delete_namespace(api_client, name)


def notebook(namespace: str, name: str, image: str, *, gpu: bool = False) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": image}
    pod: dict[str, Any] = {"containers": [container]}
    if gpu:
        container["resources"] = {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}
        pod["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return {"apiVersion": "kubeflow.org/v1", "kind": "Notebook", "metadata": {"name": name, "namespace": namespace},
            "spec": {"template": {"spec": pod}}}


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Kubelet:
    """Writes Pulled events as a node's kubelet does (client-go tools/record)."""

    def __init__(self, api_client: ApiClient) -> None:
        self.api_client = api_client

    def event(self, namespace: str, pod: str, message: str, *, node: str, count: int = 1, name: str = "",
              at: datetime | None = None, component: str = "kubelet", container: str = "main",
              pod_uid: str = "") -> dict[str, Any]:
        at = at or datetime.now(UTC)
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name or f"{pod}.{secrets.token_hex(8)}", "namespace": namespace},
            "involvedObject": {"kind": "Pod", "namespace": namespace, "name": pod, "uid": pod_uid or str(uuid.uuid4()),
                               "apiVersion": "v1", "resourceVersion": "4242",
                               "fieldPath": f"spec.containers{{{container}}}"},
            "reason": "Pulled", "message": message,
            "source": {"component": component, "host": node},
            "firstTimestamp": stamp(at), "lastTimestamp": stamp(at), "count": count, "type": "Normal",
            "eventTime": None, "reportingComponent": component, "reportingInstance": node,
        }
        return request(self.api_client, "POST", f"/api/v1/namespaces/{namespace}/events", body)

    def repeat(self, event: dict[str, Any], count: int) -> None:
        """The recorder's dedup: the same event, its count and lastTimestamp moved on."""
        path = f"/api/v1/namespaces/{event['metadata']['namespace']}/events/{event['metadata']['name']}"
        obj = request(self.api_client, "GET", path)
        obj["count"], obj["lastTimestamp"] = count, stamp(datetime.now(UTC))
        request(self.api_client, "PUT", path, obj)


def pulled(image: str, pull: str, waited: str | None = None, size: int | None = None) -> str:
    if waited is None:
        return f'Successfully pulled image "{image}" in {pull}'
    text = f'Successfully pulled image "{image}" in {pull} ({waited} including waiting)'
    return text + (f". Image size: {size} bytes." if size is not None else "")


def present(image: str, *, accessible: bool = False) -> str:
    suffix = " and can be accessed by the pod" if accessible else ""
    return f'Container image "{image}" already present on machine{suffix}'


@pytest.fixture
def kubelet(api_client: ApiClient) -> Kubelet:
    return Kubelet(api_client)


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop(signal.SIGKILL)


def candidate(target: dict[str, Any], image: str) -> dict[str, Any]:
    return next(c for c in target["candidates"] if c["image"] == image)


def by_namespace(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["target"]["namespace"]: t for t in doc["targets"]}


# -- parsing, de-duplication, two targets ------------------------------------------------------------


def test_every_shape_is_read_counted_once_and_split_between_the_targets_nodes(
        sample_cluster, api_client, agent, namespace, second_namespace, projects, kubelet, tmp_path):
    cpu = make_puller(api_client, namespace, nodeSelector='{"node-role.kubernetes.io/worker": ""}')
    gpu = make_puller(api_client, second_namespace, nodeSelector='{"nvidia.com/gpu.present": "true"}',
                      tolerations=GPU_TOLERATION)
    project = projects()
    apply_objects(api_client, [notebook(project, "wb", WB), notebook(project, "cuda", GPU_WB, gpu=True)])
    kubelet.event(project, "wb-0", pulled(WB, "1m2.5s", "1m3.1s", 4123456789), node="worker-0")  # 1.30+
    kubelet.event(project, "wb-1", pulled(WB, "7.264s", "7.3s"), node="worker-1")  # no size
    kubelet.event(project, "cuda-0", pulled(GPU_WB, "1h2m3s"), node="worker-gpu-0")  # the oldest shape
    repeated = kubelet.event(project, "wb-2", present(WB), node="worker-0", count=5)
    kubelet.event(project, "cuda-1", present(GPU_WB, accessible=True), node="worker-gpu-1", count=2)  # 1.35
    kubelet.event(project, "wb-3", "(combined from similar events): " + present(WB), node="worker-1", count=12)
    kubelet.event(project, "wb-4", pulled(WB, "2d"), node="worker-0")  # not a Go duration
    kubelet.event(project, "wb-5", present(WB), node="worker-0", component="someone-else")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"targets": [{"namespace": p.namespace, "name": p.name} for p in (cpu, gpu)]}))

    run = agent("once", "--dry-run", "--config", str(config))
    assert run.code == 0, (run.err, run.events)
    doc = run.json()
    events = doc["cycle"]["pulled_events"]
    assert events["complete"] is True and events["error"] == ""
    assert events["ignored"] == {BAD_DURATION: 1, NOT_KUBELET: 1, COMBINED: 11}
    targets = by_namespace(doc)
    cpu_startup, gpu_startup = targets[cpu.namespace]["startup"], targets[gpu.namespace]["startup"]
    assert (cpu_startup["starts"], cpu_startup["warm"]) == (2 + 5 + 1, 5 + 1)  # the combined event: its last only
    assert cpu_startup["warm_share"] == pytest.approx(6 / 8)
    assert (gpu_startup["starts"], gpu_startup["warm"]) == (1 + 2, 2)
    wb = candidate(targets[cpu.namespace], WB)["pulls"]
    assert (wb["cold"], wb["warm"]) == (2, 6)
    assert wb["median_pull_seconds"] == pytest.approx((62.5 + 7.264) / 2)
    assert candidate(targets[gpu.namespace], GPU_WB)["pulls"]["median_pull_seconds"] == 3723.0
    assert cpu_startup["pull_rate_basis"] == "observed"  # 4123456789 bytes in 62.5 s
    assert cpu_startup["pull_rate_bytes_per_second"] == round(4123456789 / 62.5)
    assert cpu_startup["seconds_saved"] == 0  # `once` alone has no record of when it listed them

    # The same listing cycle after cycle in one process: nothing is counted twice, a count
    # that grows adds the increase.
    settings = with_target(load_settings(config, env={}), f"{cpu.target},{gpu.target}")
    store = StartupStore(namespace=namespace, name=SUMMARY, writable=True)  # no ConfigMap: kept in memory
    from agent.cycle import run_cycle

    kube = connect(kubeconfig=str(sample_cluster.kubeconfig))
    try:
        first = run_cycle(kube, settings, dry_run=True, startup=store)
        again = run_cycle(kube, settings, dry_run=True, startup=store)
        kubelet.repeat(repeated, 9)
        grown = run_cycle(kube, settings, dry_run=True, startup=store)
    finally:
        kube.close()
    assert first.pulled is not None and again.pulled is not None and grown.pulled is not None
    assert (first.pulled.counted, again.pulled.counted, grown.pulled.counted) == (11, 0, 4)
    cpu_outcome = next(o for o in grown.outcomes if o.target.namespace == cpu.namespace)
    assert cpu_outcome.startup is not None and (cpu_outcome.startup.starts, cpu_outcome.startup.warm) == (12, 10)


# -- across cycles and a restart of serve ---------------------------------------------------------------


def summary_configmap(api_client: ApiClient, namespace: str) -> dict[str, Any]:
    return request(api_client, "GET", f"/api/v1/namespaces/{namespace}/configmaps/{SUMMARY}")


def plan_of(server: Server) -> dict[str, Any]:
    status, body = server.get("/plan")
    return json.loads(body)["targets"][0] if status == 200 else {}


def startup_of(server: Server) -> dict[str, Any]:
    return plan_of(server).get("startup") or {}


def metric(server: Server, line: str) -> float | None:
    for row in server.get("/metrics")[1].splitlines():
        if row.startswith(line + " "):
            return float(row.rsplit(" ", 1)[1])
    return None


def test_serve_keeps_what_it_counted_across_cycles_and_a_restart_and_reports_what_it_saved(
        sample_cluster, api_client, cluster, agent, puller: Puller, namespace, projects, kubelet, servers, tmp_path,
        monkeypatch):
    apply_objects(api_client, [{"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": SUMMARY, "namespace": namespace}}])  # as the install ships it
    project = projects()
    apply_objects(api_client, [notebook(project, "wb", WB)])
    config = write_config(tmp_path / "config.yaml", interval=1)

    def serve(name: str) -> Server:
        server = Server(name, kubeconfig=cluster.kubeconfig, config=config, target=puller.target,
                        namespace=namespace, log=tmp_path / f"{name}.log")
        servers.append(server)
        return server

    first = serve("replica-a")
    wait_for(lambda: WB in puller.images(), 40, "the first write, which lists the workbench image")
    # Two cold pulls (one namespace: the median of 120 s and 60 s), counted before any warm start.
    kubelet.event(project, "wb-cold", pulled(WB, "2m0s", "2m0.5s", 2_000_000_000), node="worker-1")
    kubelet.event(project, "wb-old", pulled(WB, "1m0s"), node="worker-0")
    wait_for(lambda: startup_of(first).get("starts") == 2, 30, "the cold pulls to be counted")
    # Warm starts after the agent listed the image: two pods, one of them restarting.
    kubelet.event(project, "wb-a", present(WB, accessible=True), node="worker-0")
    restarting = kubelet.event(project, "wb-b", present(WB), node="worker-1", count=3)
    wait_for(lambda: startup_of(first).get("starts") == 6, 30, "the warm starts to be counted")
    startup = startup_of(first)
    assert (startup["warm"], startup["seconds_saved"], startup["seconds_saved_measured"]) == (4, 180.0, 180.0)
    wb = candidate(plan_of(first), WB)["pulls"]
    assert (wb["cold"], wb["warm"], wb["median_pull_seconds"], wb["seconds_saved"], wb["saved_basis"]) == (
        2, 4, 90.0, 180.0, "measured")
    target = puller.target
    assert metric(first, f'prepull_agent_container_starts_total{{result="warm",target="{target}"}}') == 4
    assert metric(first, f'prepull_agent_container_starts_total{{result="cold",target="{target}"}}') == 2
    assert metric(first, f'prepull_agent_pull_seconds_saved_total{{target="{target}"}}') == 180
    assert metric(first, f'prepull_agent_cold_pull_duration_seconds_count{{target="{target}"}}') == 2

    # Listed again and again, counted once; a restart in the same pod saves nothing more.
    kubelet.repeat(restarting, 5)
    wait_for(lambda: startup_of(first).get("starts") == 8, 30, "the restarts to be counted")
    assert startup_of(first)["seconds_saved"] == 180.0
    stored = json.loads(summary_configmap(api_client, namespace)["data"]["summary.json"])
    assert len(stored["seen"]) == 4 and stored["targets"][target]["starts"] == 8
    assert first.stop(signal.SIGTERM) == 0

    # While no agent runs: one more restart, and a new pod.
    kubelet.repeat(restarting, 6)
    kubelet.event(project, "wb-c", present(WB), node="worker-0")
    second = serve("replica-b")
    wait_for(lambda: startup_of(second).get("starts") == 10, 40, "the restarted serve to count what is new")
    startup = startup_of(second)
    assert (startup["warm"], startup["seconds_saved"]) == (8, 270.0)
    assert metric(second, f'prepull_agent_container_starts_total{{result="warm",target="{target}"}}') == 2
    assert second.stop(signal.SIGTERM) == 0

    # `once` reads the summary and adds what the Events hold, and never writes it.
    monkeypatch.setenv("PREPULL_STARTUP__SUMMARY_NAMESPACE", namespace)
    version = summary_configmap(api_client, namespace)["metadata"]["resourceVersion"]
    run = agent("once", target=puller.target, output="table")
    assert run.code == 0, (run.err, run.events)
    assert "start-up over" in run.out and "10 container starts, 8 warm (80%), 4m30s of pulls avoided" in run.out
    header = next(line for line in run.out.splitlines() if line.startswith("#"))
    assert "PULL" in header and "SAVED/DAY" in header
    row = next(line for line in run.out.splitlines() if WB in line)
    assert "1m30s" in row and "4m30s" in row  # the median, and 270 s saved within a day
    assert len(header) <= 120 and len(row) <= 120
    assert summary_configmap(api_client, namespace)["metadata"]["resourceVersion"] == version


# -- the ranking ---------------------------------------------------------------------------------------------


def budget_for_one_more(run: Any, *images: str) -> int:
    """A budget that fits everything an unlimited plan chose but `images`, and one of them."""
    target = run.target()
    chosen = [c for c in target["candidates"] if c["selected"]]
    assert {c["image"] for c in chosen} >= set(images)
    sizes = {c["image"]: c["size_bytes"] for c in chosen}
    assert len({sizes[i] for i in images}) == 1, sizes  # equal sizes: only the pulls tell them apart
    return target["budget_used_bytes"] - sum(sizes[i] for i in images) + sizes[images[0]] + GiB // 2


def test_the_last_place_of_the_budget_goes_to_the_image_whose_pulls_are_measured_slower(
        sample_cluster, api_client, agent, puller: Puller, projects, kubelet, monkeypatch):
    project = projects()
    apply_objects(api_client, [notebook(project, "aaa", AAA), notebook(project, "bbb", BBB)])
    monkeypatch.setenv("PREPULL_SELECTION__DISK_BUDGET", "unlimited")
    monkeypatch.setenv("PREPULL_SELECTION__MAX_NAMESPACE_SHARE", "1.0")
    budget = budget_for_one_more(agent("once", "--dry-run", target=puller.target), AAA, BBB)
    monkeypatch.setenv("PREPULL_SELECTION__DISK_BUDGET", str(budget))

    before = agent("once", "--dry-run", target=puller.target).target()
    assert candidate(before, AAA)["selected"] and not candidate(before, BBB)["selected"]  # equal: by reference
    assert "disk budget" in candidate(before, BBB)["reason"]

    kubelet.event(project, "aaa-0", pulled(AAA, "1m0s", "1m0s", 15 * GiB), node="worker-0")
    kubelet.event(project, "bbb-0", pulled(BBB, "10m0s", "10m0s", 15 * GiB), node="worker-1")
    after = agent("once", "--dry-run", target=puller.target).target()
    assert candidate(after, BBB)["selected"] and not candidate(after, AAA)["selected"]
    assert "pulls in 10m0s" in candidate(after, BBB)["reason"]
    assert "disk budget" in candidate(after, AAA)["reason"]
    others = [c["image"] for c in before["candidates"] if c["selected"] and c["image"] != AAA]
    assert others == [c["image"] for c in after["candidates"] if c["selected"] and c["image"] != BBB]


# -- forged events ---------------------------------------------------------------------------------------


def test_forged_events_change_only_what_their_namespace_runs_and_no_more_than_the_bounds(
        sample_cluster, api_client, agent, puller: Puller, namespace, projects, kubelet, monkeypatch):
    forger, victim = projects(), projects()
    apply_objects(api_client, [notebook(forger, "mine", REPORTED), notebook(victim, "theirs", AAA)])
    monkeypatch.setenv("PREPULL_STARTUP__MAX_EVENTS_PER_NAMESPACE", "6")
    monkeypatch.setenv("PREPULL_SELECTION__DISK_BUDGET", "unlimited")
    unlimited = agent("once", "--dry-run", target=puller.target).target()
    shared = [c for c in unlimited["candidates"] if c["selected"] and c["tier"] == "shared"]
    own = candidate(unlimited, REPORTED)
    assert own["tier"] == "project" and own["size_known"]
    # Room for every shared image and a little more, not for the forger's image after them:
    # it could only get in ahead of one of them.
    budget = unlimited["budget_used_bytes"] - sum(
        c["size_bytes"] for c in unlimited["candidates"] if c["selected"] and c["tier"] != "shared") + GiB // 4
    assert own["size_bytes"] > GiB // 4 and sum(c["size_bytes"] for c in shared) > own["size_bytes"]
    monkeypatch.setenv("PREPULL_SELECTION__DISK_BUDGET", str(budget))

    # The forger writes, in its own namespace, in the order the API server lists them (by name):
    for i in range(3):  # starts of the victim's image, which the forger does not run
        kubelet.event(forger, f"fake-{i}", present(AAA), node="worker-0", name=f"e1-{i}")
    kubelet.event(forger, "fake-node", present(REPORTED), node="no-such-node", name="e2")
    kubelet.event(forger, "many", present(REPORTED), node="worker-0", count=1_000_000, name="e3")
    kubelet.event(forger, "slow", pulled(REPORTED, "100h0m0s"), node="worker-0", name="e4")  # no size: assumed rate
    kubelet.event(forger, "over", pulled(REPORTED, "200h0m0s"), node="worker-0", name="e5")  # 7th and 8th: over
    kubelet.event(forger, "over", present(REPORTED), node="worker-0", name="e6")  # the cap of 6
    kubelet.event(victim, "theirs-0", present(AAA), node="worker-1", count=2)
    kubelet.event(namespace, "kip", pulled(ADMIN_ENTRY.split("=")[1], "300ms", "300ms", 103847936),
                  node="worker-0")  # the puller's own pod

    run = agent("once", "--dry-run", target=puller.target)
    assert run.code == 0, (run.err, run.events)
    doc = run.json()
    events = doc["cycle"]["pulled_events"]
    assert events["untrusted"] == {NOT_IN_USE: 3, NO_SUCH_NODE: 1, PULLER_POD: 1}
    assert events["ignored"] == {OVER_NAMESPACE_CAP: 2, CAPPED: 1_000_000 - 100}
    target = run.target()
    assert target["startup"]["starts"] == 100 + 1 + 2  # the capped event, the slow pull, the victim's
    assert candidate(target, AAA)["pulls"]["warm"] == 2  # only the victim's own events
    mine = candidate(target, REPORTED)
    assert mine["pulls"]["median_pull_seconds"] == 360_000.0  # believed: it runs the image...
    assert not mine["selected"] and mine["reason"].startswith("does not fit the disk budget")
    assert all(candidate(target, c["image"])["selected"] for c in shared)  # ...but lifts it over no shared image
