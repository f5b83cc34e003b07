"""Fixtures for running the agent against the session's real API server.

- `sample_cluster`: the sample OpenShift AI cluster (samples/cluster) loaded once per session.
- `puller`: a KubernetesImagePuller of the test's own, in its namespace, holding one
  administrator entry, so tests that write never disturb each other.
- `agent`: runs `prepull-agent` in-process with a given kubeconfig and returns the exit
  code, standard output and the log events.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from agent.cli import main
from agent.kube import kinds
from tests.harness.cluster import LocalCluster
from tests.harness.loader import apply_dir, apply_objects, request

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = REPO_ROOT / "samples" / "cluster"
ADMIN_ENTRY = "ubi-minimal=registry.access.redhat.com/ubi9/ubi-minimal:latest"


@pytest.fixture(scope="session")
def sample_cluster(cluster: LocalCluster) -> LocalCluster:
    with cluster.new_api_client() as client:
        apply_dir(client, SAMPLES)
    return cluster


@dataclass(frozen=True)
class Puller:
    namespace: str
    name: str
    api_client: ApiClient

    @property
    def target(self) -> str:
        return f"{self.namespace}/{self.name}"

    def get(self) -> dict[str, Any]:
        return request(self.api_client, "GET", kinds.IMAGE_PULLER.path(namespace=self.namespace, name=self.name))

    def images(self) -> str:
        return self.get()["spec"].get("images", "")

    def resource_version(self) -> str:
        return self.get()["metadata"]["resourceVersion"]

    def patch(self, body: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch as an administrator (or another controller) would make."""
        resp = self.api_client.call_api(
            kinds.IMAGE_PULLER.path(namespace=self.namespace, name=self.name), "PATCH",
            header_params={"Accept": "application/json", "Content-Type": "application/merge-patch+json"},
            body=body, auth_settings=["BearerToken"], _preload_content=False,
        )
        return json.loads(resp.data)


@pytest.fixture
def puller(sample_cluster: LocalCluster, api_client: ApiClient, namespace: str) -> Puller:
    apply_objects(api_client, [{
        "apiVersion": "che.eclipse.org/v1alpha1",
        "kind": "KubernetesImagePuller",
        "metadata": {"name": "image-puller", "namespace": namespace},
        "spec": {
            "daemonsetName": "kubernetes-image-puller",
            "images": f"{ADMIN_ENTRY};",
            "nodeSelector": '{"node-role.kubernetes.io/worker": ""}',
        },
    }])
    return Puller(namespace, "image-puller", api_client)


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str
    events: list[dict[str, Any]]

    def json(self) -> dict[str, Any]:
        """The whole document `--output json` prints (the envelope)."""
        doc = json.loads(self.out)
        assert (doc["apiVersion"], doc["kind"]) == ("prepull-agent.io/v1", "CycleReport"), doc
        assert isinstance(doc["targets"], list)
        return doc

    def target(self) -> dict[str, Any]:
        """The document of the run's only target."""
        (only,) = self.json()["targets"]
        return only

    def logged(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if event in e.get("event", "")]


AgentRunner = Callable[..., Run]


@pytest.fixture
def agent(cluster: LocalCluster, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> AgentRunner:
    """`agent("once", "--dry-run", target=..., kubeconfig=...)` -> Run."""
    for var in [v for v in os.environ if v.startswith("PREPULL_")]:
        monkeypatch.delenv(var)
    monkeypatch.setattr("agent.cli.logs.configure", lambda **_: None)  # keep structlog's capture in place

    def run(*args: str, target: str = "", kubeconfig: str | Path | None = None, output: str = "json") -> Run:
        argv = [*args, "--kubeconfig", str(kubeconfig or cluster.kubeconfig)]
        if target:
            argv += ["--target", target]
        if args and args[0] == "once":
            argv += ["--output", output]
        with structlog.testing.capture_logs() as events:
            code = main(argv)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err, events)

    return run


@pytest.fixture
def restricted_kubeconfig(cluster: LocalCluster, api_client: ApiClient, namespace: str, tmp_path: Path) -> Callable[..., Path]:
    """A kubeconfig for a new ServiceAccount granted exactly the given ClusterRole rules
    (plus get/patch on the test's puller)."""

    def make(rules: list[dict[str, Any]]) -> Path:
        name = f"{namespace}-agent"
        apply_objects(api_client, [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "agent", "namespace": namespace}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name}, "rules": rules},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
             "subjects": [{"kind": "ServiceAccount", "name": "agent", "namespace": namespace}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "puller", "namespace": namespace},
             "rules": [{"apiGroups": ["che.eclipse.org"], "resources": ["kubernetesimagepullers"],
                        "resourceNames": ["image-puller"], "verbs": ["get", "patch"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "puller", "namespace": namespace},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "puller"},
             "subjects": [{"kind": "ServiceAccount", "name": "agent", "namespace": namespace}]},
        ])
        return cluster.kubeconfig_for_token(cluster.token_for(namespace, "agent"), tmp_path / "agent.kubeconfig")

    return make


# What manifests/base/rbac-kserve.yaml grants (there as a Role in KServe's namespace).
KSERVE_CONFIG_RULE = {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["inferenceservice-config"],
                      "verbs": ["get"]}


def read_rules(kinds_by_group: dict[str, list[str]], *, kserve_config: bool = True) -> list[dict[str, Any]]:
    """get/list on the kinds, and (unless `kserve_config` is false) get on KServe's ConfigMap."""
    rules = [{"apiGroups": [group], "resources": resources, "verbs": ["get", "list"]}
             for group, resources in kinds_by_group.items()]
    return [*rules, KSERVE_CONFIG_RULE] if kserve_config else rules


ALL_READS = {
    "image.openshift.io": ["imagestreams"],
    "template.openshift.io": ["templates"],
    "kubeflow.org": ["notebooks"],
    "serving.kserve.io": ["servingruntimes", "clusterservingruntimes", "inferenceservices", "llminferenceservices",
                          "llminferenceserviceconfigs", "clusterstoragecontainers"],
    "dscinitialization.opendatahub.io": ["dscinitializations"],
    "": ["nodes", "events"],
}


@pytest.fixture
def cleanup(api_client: ApiClient) -> Iterator[Callable[[str], None]]:
    """Register cluster-scoped paths to delete after the test."""
    paths: list[str] = []
    yield paths.append
    for path in reversed(paths):
        try:
            request(api_client, "DELETE", path)
        except Exception:  # noqa: BLE001 - best effort: already gone is fine
            pass


# -- the agent's leader Lease ----------------------------------------------------------------

LEASE_NAME = "prepull-agent"


def lease_path(namespace: str) -> str:
    return kinds.LEASE.path(namespace=namespace, name=LEASE_NAME)


def lease_holder(api_client: ApiClient, namespace: str) -> str:
    """The Lease's holderIdentity, "" when there is none or no Lease yet."""
    try:
        return request(api_client, "GET", lease_path(namespace))["spec"].get("holderIdentity") or ""
    except ApiException as e:
        if e.status == 404:
            return ""
        raise


def usurp(api_client: ApiClient, namespace: str, identity: str) -> None:
    """Write the Lease as another replica that took it over would."""
    for _ in range(20):
        obj = request(api_client, "GET", lease_path(namespace))
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        obj["spec"].update(holderIdentity=identity, renewTime=now, acquireTime=now)
        try:
            request(api_client, "PUT", lease_path(namespace), obj)
            return
        except ApiException as e:
            if e.status != 409:  # the leader renewed in between: read again
                raise
    pytest.fail("could not take the Lease over")
