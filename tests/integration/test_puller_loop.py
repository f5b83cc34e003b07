"""Issue 13 on a real API server: never break the puller, and see what it really did.

There is no operator and no puller here: each test creates what they would, as plain
objects, in its own namespace, the way che-incubator/kubernetes-image-puller-operator
(`controllers/kubernetesimagepuller_controller.go`: the CR's defaults, the Deployment,
status.imagePullerImage) and che-incubator/kubernetes-image-puller (`utils/clusterutils.go`:
the DaemonSet, one container per entry plus `copy-sleep`) make them. The DaemonSet's status
is what the DaemonSet controller would write. Time is the cycle's `now`: a test moves it on
instead of sleeping through a grace period.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient
from prometheus_client import generate_latest

from agent.cycle import Memory, run_cycle
from agent.kube import kinds
from agent.kube.client import Kube, connect
from agent.metrics import Metrics
from agent.outcome import CycleResult, TargetOutcome
from agent.puller import OWNED_ANNOTATION, puller_view, read_owned
from agent.report import as_json, as_table
from agent.settings import Settings, load_settings
from agent.status import Sync
from agent.version import VERSION
from tests.harness.cluster import LocalCluster, binaries_dir
from tests.harness.faultproxy import FaultProxy
from tests.harness.loader import apply_objects, request
from tests.integration.conftest import ADMIN_ENTRY, AgentRunner

PULLER_IMAGE = "quay.io/eclipse/kubernetes-image-puller:next"
PLACEHOLDER = f"kubernetes-image-puller={PULLER_IMAGE}"
ADMIN_NAME, ADMIN_IMAGE = ADMIN_ENTRY.split("=")
GRACE = 600
SOURCES_OFF = {f"PREPULL_SOURCES__{k}": "false" for k in (
    "IMAGESTREAMS", "NOTEBOOKS", "SERVINGRUNTIMES", "CLUSTERSERVINGRUNTIMES", "TEMPLATES", "INFERENCESERVICES",
    "LLMINFERENCESERVICES")}


# -- the operator's and the puller's objects, as plain objects ---------------------------------


def operated_cr(namespace: str, images: str, *, node_selector: str = '{"node-role.kubernetes.io/worker": ""}',
                owned: dict[str, str] | None = None) -> dict[str, Any]:
    """The CR after the operator's first reconcile: its defaults written into spec, and
    status.imagePullerImage."""
    metadata: dict[str, Any] = {"name": "image-puller", "namespace": namespace}
    if owned is not None:
        metadata["annotations"] = {OWNED_ANNOTATION: json.dumps(owned)}
    return {
        "apiVersion": "che.eclipse.org/v1alpha1", "kind": "KubernetesImagePuller", "metadata": metadata,
        "spec": {"configMapName": "k8s-image-puller", "deploymentName": "kubernetes-image-puller",
                 "imagePullerImage": PULLER_IMAGE, "images": images, "nodeSelector": node_selector},
        "status": {"imagePullerImage": PULLER_IMAGE},
    }


def puller_deployment(namespace: str, cr_uid: str, *, ready: int = 1) -> dict[str, Any]:
    labels = {"app": "kubernetes-image-puller"}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "kubernetes-image-puller", "namespace": namespace, "labels": labels,
                     "ownerReferences": [{"apiVersion": "che.eclipse.org/v1alpha1", "kind": "KubernetesImagePuller",
                                          "name": "image-puller", "uid": cr_uid, "controller": True}]},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"serviceAccountName": "k8s-image-puller", "containers": [{
                "name": "kubernetes-image-puller", "image": PULLER_IMAGE,
                "env": [{"name": "DEPLOYMENT_NAME", "value": "kubernetes-image-puller"}],
                "envFrom": [{"configMapRef": {"name": "k8s-image-puller"}}]}]}}},
        "status": {"replicas": 1, "readyReplicas": ready, "availableReplicas": ready},
    }


def puller_daemonset(namespace: str, deployment_uid: str, entries: dict[str, str], *,
                     desired: int = 3, scheduled: int = 3, ready: int = 3) -> dict[str, Any]:
    labels = {"test": "daemonset-test"}
    mounts = [{"name": "kip", "mountPath": "/kip"}]
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "kubernetes-image-puller", "namespace": namespace,
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                          "name": "kubernetes-image-puller", "uid": deployment_uid}]},
        "spec": {"selector": {"matchLabels": labels}, "template": {
            "metadata": {"name": "test-po", "labels": labels},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "nodeSelector": {"node-role.kubernetes.io/worker": ""},
                "initContainers": [{"name": "copy-sleep", "image": PULLER_IMAGE, "imagePullPolicy": "Always",
                                    "command": ["/bin/sh"], "args": ["-c", "cp /bin/sleep /kip/sleep"],
                                    "volumeMounts": mounts}],
                "containers": [{"name": name, "image": image, "command": ["/kip/sleep"], "args": ["720h"],
                                "imagePullPolicy": "Always", "volumeMounts": mounts}
                               for name, image in entries.items()],
                "volumes": [{"name": "kip", "emptyDir": {}}]}}},
        "status": {"desiredNumberScheduled": desired, "currentNumberScheduled": scheduled, "numberReady": ready,
                   "numberMisscheduled": 0},
    }


def get(api_client: ApiClient, kind: kinds.Kind, namespace: str, name: str) -> dict[str, Any]:
    return request(api_client, "GET", kind.path(namespace=namespace, name=name))


def events(api_client: ApiClient, namespace: str, reason: str) -> list[dict[str, Any]]:
    found = request(api_client, "GET", kinds.EVENT.path(namespace=namespace))["items"]
    return [e for e in found if e["reason"] == reason]


# -- running cycles in-process, with the time moved on -----------------------------------------


class Cycles:
    """Cycles of `serve` on one target (one Memory), each at a chosen time."""

    def __init__(self, kube: Kube, settings: Settings) -> None:
        self.kube, self.settings = kube, settings
        self.memory = Memory()
        self.metrics = Metrics(targets=[str(t) for t in settings.targets])
        self.start = datetime.now(UTC)

    def run(self, *, after: timedelta = timedelta(0)) -> TargetOutcome:
        at = datetime.now(UTC) + after
        result = run_cycle(self.kube, self.settings, dry_run=False, now=lambda: at, memory=self.memory)
        self.metrics.record(result)
        self.last: CycleResult = result
        (outcome,) = result.outcomes
        return outcome

    def metric(self, name: str, **labels: str) -> float | None:
        value = self.metrics.registry.get_sample_value(name, labels)
        return value


@pytest.fixture
def cycles(cluster: LocalCluster, namespace: str) -> Iterator[Any]:
    kubes: list[Kube] = []

    def make(**env: str) -> Cycles:
        kube = connect(kubeconfig=str(cluster.kubeconfig))
        kubes.append(kube)
        settings = load_settings(None, env={"PREPULL_TARGET": f"{namespace}/image-puller", **env})
        return Cycles(kube, settings)

    yield make
    for kube in kubes:
        kube.close()


@pytest.fixture
def operated(sample_cluster: LocalCluster, api_client: ApiClient, namespace: str):
    """`operated(images)`: the CR and the operator's Deployment in the test's namespace;
    returns (CR, Deployment) as stored."""

    def make(images: str = f"{ADMIN_ENTRY};", *, deployment: bool = True, **cr: Any):
        apply_objects(api_client, [operated_cr(namespace, images, **cr)])
        stored = get(api_client, kinds.IMAGE_PULLER, namespace, "image-puller")
        dep = None
        if deployment:
            apply_objects(api_client, [puller_deployment(namespace, stored["metadata"]["uid"])])
            dep = get(api_client, kinds.DEPLOYMENT, namespace, "kubernetes-image-puller")
        return stored, dep

    return make


# -- never break the puller ---------------------------------------------------------------------


@pytest.mark.parametrize(("images", "owned"), [
    (";", None),  # the README's old starting value: a crash loop
    ("a=quay.io/x/a:1;", {"a": "quay.io/x/a:1"}),  # the agent's last entry, no longer used
])
def test_an_empty_plan_writes_the_pullers_own_image_never_an_empty_list(
        agent: AgentRunner, operated, api_client, namespace, monkeypatch, images, owned):
    operated(images, owned=owned)
    for key, value in SOURCES_OFF.items():
        monkeypatch.setenv(key, value)
    run = agent("once", target=f"{namespace}/image-puller")
    assert run.code == 0, run.events
    stored = get(api_client, kinds.IMAGE_PULLER, namespace, "image-puller")
    assert puller_view(stored["spec"]["images"]) == {"kubernetes-image-puller": PULLER_IMAGE}
    assert read_owned(stored["metadata"]["annotations"]) == {"kubernetes-image-puller": PULLER_IMAGE}
    (filler,) = [c for c in run.target()["candidates"] if c["selected"]]
    assert filler["tier"] == "placeholder" and "at least one entry" in filler["reason"]
    again = agent("once", target=f"{namespace}/image-puller")
    assert again.target()["changed"] is False  # and it stays put


def test_a_created_puller_starts_with_an_entry_the_puller_can_run(agent: AgentRunner, sample_cluster, api_client,
                                                                    namespace, tmp_path: Path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"targets": [{"namespace": namespace, "name": "image-puller", "create": True}],
                                      "sources": {k.split("__")[1].lower(): False for k in SOURCES_OFF}}))
    run = agent("once", "--config", str(config))
    assert run.code == 0, run.events
    stored = get(api_client, kinds.IMAGE_PULLER, namespace, "image-puller")
    assert puller_view(stored["spec"]["images"]) == {"kubernetes-image-puller": PULLER_IMAGE}


# -- see the puller's state ---------------------------------------------------------------------


def test_a_missing_daemonset_after_a_write_is_a_warning_an_event_and_a_metric(operated, cycles, api_client, namespace):
    operated()
    serve = cycles()
    first = serve.run()
    assert first.written
    assert first.status is not None and first.status.sync is Sync.MISSING
    assert first.status.deployment is not None and first.status.deployment.ready == 1
    assert not first.status.stalled  # the puller is given the grace period to recreate it
    assert serve.metric("prepull_agent_puller_stalled", target=f"{namespace}/image-puller") == 0
    (updated,) = events(api_client, namespace, "ImagesUpdated")
    assert updated["type"] == "Normal"

    later = serve.run(after=timedelta(seconds=GRACE + 60))
    status = later.status
    assert status is not None and status.sync is Sync.MISSING
    assert "DaemonSet" in status.stalled and "does not exist (since" in status.stalled
    assert "delete pod -l app=kubernetes-image-puller" in status.hint  # the Deployment runs: the race
    target = f"{namespace}/image-puller"
    assert serve.metric("prepull_agent_puller_stalled", target=target) == 1
    assert serve.metric("prepull_agent_puller_in_sync", target=target) == 0
    assert serve.metric("prepull_agent_puller_nodes", target=target, state="desired") is None
    (warning,) = events(api_client, namespace, "DaemonSetMissing")
    cr = get(api_client, kinds.IMAGE_PULLER, namespace, "image-puller")
    assert warning["type"] == "Warning"
    assert warning["regarding"]["uid"] == cr["metadata"]["uid"]
    assert warning["reportingController"] == "prepull-agent.io/prepull-agent"
    assert warning["note"].startswith("The puller's DaemonSet ") and "delete pod" in warning["note"]
    text = as_table(serve.last, dry_run=False)
    assert "puller DaemonSet kubernetes-image-puller: missing" in text and "Warning: the puller's DaemonSet" in text

    serve.run(after=timedelta(seconds=GRACE + 120))  # the same warning again: one Event, counted
    (warning,) = events(api_client, namespace, "DaemonSetMissing")
    assert warning["series"]["count"] == 2


def test_a_cycle_that_writes_and_warns_posts_both_events(operated, cycles, api_client, namespace):
    operated()  # the list set long ago (by the cycle's clock), the DaemonSet missing since
    serve = cycles()
    both = serve.run(after=timedelta(seconds=GRACE + 60))
    assert both.written and both.status is not None and both.status.stalled
    # Both Events are new, and share the cycle's time: they still get two names.
    (updated,) = events(api_client, namespace, "ImagesUpdated")
    (warning,) = events(api_client, namespace, "DaemonSetMissing")
    assert updated["metadata"]["name"] != warning["metadata"]["name"]


def test_an_out_of_sync_daemonset_is_reported_with_its_nodes_then_in_sync(
        operated, cycles, api_client, namespace, monkeypatch):
    cr, deployment = operated(f"{ADMIN_ENTRY};\nb=quay.io/x/b:1;\n")
    old = {ADMIN_NAME: ADMIN_IMAGE, "che-code": "quay.io/che-incubator/che-code:next"}
    apply_objects(api_client, [puller_daemonset(namespace, deployment["metadata"]["uid"], old, ready=2)])
    serve = cycles(**SOURCES_OFF)  # only the administrator's entries: nothing to write
    target = f"{namespace}/image-puller"

    first = serve.run()
    status = first.status
    assert not first.written and status is not None
    assert status.sync is Sync.OUT_OF_SYNC
    assert (status.not_in_daemonset, status.not_in_list) == (("b",), ("che-code",))
    assert status.daemonset is not None
    assert (status.daemonset.desired, status.daemonset.scheduled, status.daemonset.ready) == (3, 3, 2)
    assert not status.stalled
    for state, value in (("desired", 3), ("scheduled", 3), ("ready", 2)):
        assert serve.metric("prepull_agent_puller_nodes", target=target, state=state) == value
    assert serve.metric("prepull_agent_puller_in_sync", target=target) == 0
    doc = json.loads(as_json(serve.last, dry_run=False))["targets"][0]["puller"]
    assert doc["sync"] == "out-of-sync" and doc["daemonset"]["nodes"] == {"desired": 3, "scheduled": 3, "ready": 2}
    assert doc["has_conditions"] is False  # the real CRD prunes status.conditions: there are none to read

    later = serve.run(after=timedelta(seconds=GRACE + 60))
    assert later.status is not None and "does not hold the entries of spec.images" in later.status.stalled
    assert "not in the DaemonSet: b; not in the list: che-code" in later.status.stalled
    assert "get configmap k8s-image-puller" in later.status.hint
    (warning,) = events(api_client, namespace, "DaemonSetOutOfSync")
    assert warning["type"] == "Warning"
    table = as_table(serve.last, dry_run=False)
    assert "out of sync since" in table and "2/3 nodes ready (3 scheduled)" in table

    # The puller catches up: it deletes the DaemonSet and creates a new one with the list.
    request(api_client, "DELETE", kinds.DAEMON_SET.path(namespace=namespace, name="kubernetes-image-puller"))
    view = puller_view(cr["spec"]["images"])
    apply_objects(api_client, [puller_daemonset(namespace, deployment["metadata"]["uid"], view)])
    created = get(api_client, kinds.DAEMON_SET, namespace, "kubernetes-image-puller")["metadata"]["creationTimestamp"]
    synced = serve.run(after=timedelta(seconds=GRACE + 120))
    assert synced.status is not None and synced.status.sync is Sync.IN_SYNC
    assert synced.status.since == datetime.fromisoformat(created.replace("Z", "+00:00"))
    assert not synced.status.stalled
    assert serve.metric("prepull_agent_puller_in_sync", target=target) == 1
    assert serve.metric("prepull_agent_puller_stalled", target=target) == 0

    # serve remembers: a DaemonSet gone since the last cycle is missing since then, not since
    # the list last changed (long ago), so no warning yet.
    request(api_client, "DELETE", kinds.DAEMON_SET.path(namespace=namespace, name="kubernetes-image-puller"))
    seen_at = serve.memory.records[target].seen_at
    gone = serve.run(after=timedelta(seconds=GRACE + 180))
    assert gone.status is not None and gone.status.sync is Sync.MISSING
    assert gone.status.since == seen_at and not gone.status.stalled


# -- per image, per node ------------------------------------------------------------------------


def node(name: str, pool: str, images: list[tuple[list[str], int]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"prepull-test-pool": pool}},
            "status": {"capacity": {"ephemeral-storage": "500Gi"},
                       "images": [{"names": names, "sizeBytes": size} for names, size in images]}}


def test_images_on_the_nodes_with_the_50_largest_limit(agent: AgentRunner, operated, api_client, namespace,
                                                      cleanup, monkeypatch, cycles):
    GiB, MiB = 2**30, 2**20
    x, x_digest = "quay.io/test/x:1", "quay.io/test/x@sha256:" + "a" * 64
    filler = [([f"quay.io/test/fill-{i}:1"], 1 * GiB) for i in range(49)]
    big = [([f"quay.io/test/big-{i}:1"], 20 * GiB) for i in range(50)]
    nodes = [
        node(f"{namespace}-a", namespace, [([x_digest, x], 5 * GiB), *filler]),  # 50 images, x among them
        node(f"{namespace}-b", namespace, [*filler, ([f"quay.io/test/more:1"], 1 * GiB)]),  # full, all smaller than x
        node(f"{namespace}-c", namespace, big),  # full, all larger than x: x may be there, unlisted
        node(f"{namespace}-d", namespace, filler[:3]),  # 3 images: the whole store
    ]
    for n in nodes:
        cleanup(f"/api/v1/nodes/{n['metadata']['name']}")
    apply_objects(api_client, nodes)
    operated(f"{ADMIN_ENTRY};\nx={x};\ny=quay.io/test/y:1;\n", node_selector=json.dumps({"prepull-test-pool": namespace}))
    for key, value in SOURCES_OFF.items():
        monkeypatch.setenv(key, value)

    run = agent("once", "--dry-run", target=f"{namespace}/image-puller")
    assert run.code == 0, run.events
    found = {p["name"]: p for p in run.target()["images_present"]}
    assert (found["x"]["present"], found["x"]["missing"], found["x"]["unknown"]) == (1, 2, 1)
    # y: no node reports it and its size is unknown: missing only where the store is listed whole.
    assert (found["y"]["present"], found["y"]["missing"], found["y"]["unknown"]) == (0, 1, 3)
    table = agent("once", "--dry-run", target=f"{namespace}/image-puller", output="table").out
    assert "x: on 1/4 nodes (1 unknown)" in table and "y: on 0/4 nodes (3 unknown)" in table

    serve = cycles(**SOURCES_OFF)
    serve.run()
    target = f"{namespace}/image-puller"
    assert serve.metric("prepull_agent_image_nodes_present", target=target, image=x) == 1
    assert serve.metric("prepull_agent_image_nodes_present", target=target, image="quay.io/test/y:1") == 0
    help_text = generate_latest(serve.metrics.registry).decode()
    assert "# HELP prepull_agent_image_nodes_present Nodes of the target's pool" in help_text


# -- say what changed ---------------------------------------------------------------------------


def merge_patch(api_client: ApiClient, namespace: str, body: dict[str, Any]) -> None:
    """A JSON merge patch of the test's CR, as an administrator would make it."""
    api_client.call_api(kinds.IMAGE_PULLER.path(namespace=namespace, name="image-puller"), "PATCH",
                        header_params={"Accept": "application/json", "Content-Type": "application/merge-patch+json"},
                        body=body, auth_settings=["BearerToken"], _preload_content=False)


def describe(cluster: LocalCluster, namespace: str) -> str:
    kubectl = binaries_dir() / "kubectl"
    if not kubectl.is_file():
        pytest.skip(f"no kubectl in {kubectl.parent}")
    done = subprocess.run([str(kubectl), "--kubeconfig", str(cluster.kubeconfig), "-n", namespace, "describe",
                           "kubernetesimagepuller", "image-puller"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_write_posts_images_updated_and_an_identical_one_is_counted(operated, cycles, cluster, api_client, namespace):
    operated()
    serve = cycles(PREPULL_PULLER__MIN_WRITE_INTERVAL_SECONDS="0")
    first = serve.run()
    assert first.written and first.plan is not None
    added = sorted(e.name or "" for e in first.plan.desired.entries if e.name != ADMIN_NAME)
    (event,) = events(api_client, namespace, "ImagesUpdated")
    assert event["type"] == "Normal" and event["action"] == "UpdateImages"
    assert event["note"].startswith(f"Added {', '.join(added)}.")
    assert "series" not in event

    # An administrator puts the list back; the agent makes the same change again: the same
    # Event, counted, not a second one.
    merge_patch(api_client, namespace, {"metadata": {"annotations": {OWNED_ANNOTATION: None}},
                                        "spec": {"images": f"{ADMIN_ENTRY};"}})
    again = serve.run(after=timedelta(seconds=5))
    assert again.written
    (event,) = events(api_client, namespace, "ImagesUpdated")
    assert event["series"]["count"] == 2

    text = describe(cluster, namespace)
    events_part = text[text.index("Events:"):]
    assert "ImagesUpdated" in events_part and "Added " in events_part
    assert "x2 over" in events_part  # kubectl shows the series' count

    # The counted Event is gone (the API server's --event-ttl, or someone deleted it): the
    # next identical one is a new Event, not a failed patch.
    request(api_client, "DELETE", f"{kinds.EVENT.path(namespace=namespace)}/{event['metadata']['name']}")
    merge_patch(api_client, namespace, {"metadata": {"annotations": {OWNED_ANNOTATION: None}},
                                        "spec": {"images": f"{ADMIN_ENTRY};"}})
    third = serve.run(after=timedelta(seconds=10))
    assert third.written
    (fresh,) = events(api_client, namespace, "ImagesUpdated")
    assert fresh["metadata"]["name"] != event["metadata"]["name"] and "series" not in fresh


def test_every_request_names_the_agent_and_every_write_its_field_manager(
        agent: AgentRunner, operated, sample_cluster: LocalCluster, api_client, namespace, tmp_path: Path):
    operated()
    token = _admin_token(sample_cluster)
    with FaultProxy(str(sample_cluster.server), sample_cluster.ca_file) as proxy:
        kubeconfig = _kubeconfig(proxy.url, token, tmp_path / "kubeconfig")
        run = agent("once", target=f"{namespace}/image-puller", kubeconfig=kubeconfig)
        records = list(proxy.records)
    assert run.code == 0 and run.target()["written"]
    assert records and all(r.user_agent.startswith(f"prepull-agent/{VERSION} ") for r in records), \
        {r.user_agent for r in records}
    writes = [r for r in records if r.method in ("POST", "PATCH", "PUT")]
    assert {(r.method, r.path.rsplit("/", 2)[-2] if r.method == "PATCH" else r.path.rsplit("/", 1)[-1])
            for r in writes} >= {("PATCH", "kubernetesimagepullers"), ("POST", "events")}
    assert all(r.query.get("fieldManager") == "prepull-agent" for r in writes)

    cr = get(api_client, kinds.IMAGE_PULLER, namespace, "image-puller")
    (mine,) = [m for m in cr["metadata"]["managedFields"] if m["manager"] == "prepull-agent"]
    assert mine["operation"] == "Update"
    assert "f:images" in mine["fieldsV1"]["f:spec"]
    assert f"f:{OWNED_ANNOTATION}" in mine["fieldsV1"]["f:metadata"]["f:annotations"]
    (event,) = events(api_client, namespace, "ImagesUpdated")
    assert [m["manager"] for m in event["metadata"]["managedFields"]] == ["prepull-agent"]


def _admin_token(cluster: LocalCluster, name: str = "prepull-puller-loop") -> str:
    with cluster.new_api_client() as client:
        apply_objects(client, [{
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "default"}],
        }])
    return cluster.token_for("default", name)


def _kubeconfig(server: str, token: str, path: Path) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "proxy", "cluster": {"server": server}}],
        "users": [{"name": "agent", "user": {"token": token}}],
        "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "agent"}}],
        "current-context": "proxy",
    }))
    path.chmod(0o600)
    return path


# -- fewer rollouts -----------------------------------------------------------------------------


def notebook(namespace: str, name: str, image: str) -> dict[str, Any]:
    return {"apiVersion": "kubeflow.org/v1", "kind": "Notebook", "metadata": {"name": name, "namespace": namespace},
            "spec": {"template": {"spec": {"containers": [{"name": name, "image": image}]}}},
            "status": {"conditions": [], "readyReplicas": 1, "containerState": {"running": {}}}}


def test_a_change_within_the_minimum_interval_is_deferred_and_shown(agent: AgentRunner, operated, api_client,
                                                                     namespace, monkeypatch):
    operated()
    target = f"{namespace}/image-puller"
    first = agent("once", target=target)
    assert first.target()["written"]
    written = get(api_client, kinds.IMAGE_PULLER, namespace, "image-puller")
    (mine,) = [m for m in written["metadata"]["managedFields"] if m["manager"] == "prepull-agent"]
    last = datetime.fromisoformat(mine["time"].replace("Z", "+00:00"))

    apply_objects(api_client, [notebook(namespace, "late", "quay.io/prepull-test/late-comer:1")])
    second = agent("once", target=target)
    doc = second.target()
    assert second.code == 0 and doc["written"] is False and doc["changed"] is False
    assert doc["deferred"]["added"] == ["late-comer"] and doc["deferred"]["removed"] == []
    assert datetime.fromisoformat(doc["deferred"]["until"]) == last + timedelta(seconds=300)
    assert "late-comer" in doc["deferred"]["images_after"]
    assert get(api_client, kinds.IMAGE_PULLER, namespace, "image-puller")["spec"] == written["spec"]
    assert second.logged("change deferred")
    table = agent("once", "--dry-run", target=target, output="table").out
    assert "Deferred until" in table and "add late-comer" in table

    monkeypatch.setenv("PREPULL_PULLER__MIN_WRITE_INTERVAL_SECONDS", "0")
    third = agent("once", target=target)
    assert third.target()["written"] and "late-comer=" in third.target()["images_after"]


def test_the_interval_never_defers_removing_an_invalid_or_a_shadowing_entry(agent: AgentRunner, operated, api_client,
                                                                             namespace, monkeypatch):
    operated()
    target = f"{namespace}/image-puller"
    apply_objects(api_client, [notebook(namespace, "doomed", "quay.io/prepull-test/doomed:1")])
    first = agent("once", target=target)
    assert "doomed=quay.io/prepull-test/doomed:1" in first.target()["images_after"]
    apply_objects(api_client, [notebook(namespace, "late", "quay.io/prepull-test/late-comer:1")])

    # The policy now refuses the doomed image: removed at once, the newcomer still waits.
    monkeypatch.setenv("PREPULL_REFERENCES__DENY", "quay.io/prepull-test/doomed*")
    denied = agent("once", target=target)
    doc = denied.target()
    assert doc["written"] is True
    assert "doomed" not in doc["images_after"] and "late-comer" not in doc["images_after"]
    assert doc["deferred"]["added"] == ["late-comer"]
    stored = get(api_client, kinds.IMAGE_PULLER, namespace, "image-puller")
    assert "doomed" not in stored["spec"]["images"]

    # An administrator writes an entry named like one of the agent's: the puller would keep
    # only one of the two, so the agent's goes at once (within the interval of the last write).
    owned = read_owned(stored["metadata"]["annotations"])
    name = next(n for n in owned if n != "late-comer")
    merge_patch(api_client, namespace, {"spec": {"images": stored["spec"]["images"] + f"{name}=quay.io/admin/own:1;\n"}})
    shadowed = agent("once", target=target)
    doc = shadowed.target()
    assert doc["written"] is True
    view = puller_view(get(api_client, kinds.IMAGE_PULLER, namespace, "image-puller")["spec"]["images"])
    assert view[name] == "quay.io/admin/own:1"
    assert name not in read_owned(get(api_client, kinds.IMAGE_PULLER, namespace, "image-puller")["metadata"]["annotations"])
    assert doc["deferred"] is not None  # listing the agent's image again, under another name, waits
