"""The harness itself: the local cluster serves the project's CRDs at the real REST paths,
enforces RBAC, the loader writes status through /status, and `up` never starts a second
cluster. If these fail, every other integration test's result means little."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes.client import (
    ApiClient,
    AuthenticationV1Api,
    CoreV1Api,
    CustomObjectsApi,
    V1SelfSubjectReview,
)
from kubernetes.client.exceptions import ApiException
from kubernetes.config import new_client_from_config

from tests.harness.cluster import SCRIPT, LocalCluster, read_env
from tests.harness.loader import apply_dir, request

REPO_ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")

# group, version, plural, kind, namespaced, has a status subresource
KINDS = [
    ("image.openshift.io", "v1", "imagestreams", "ImageStream", True, True),
    ("template.openshift.io", "v1", "templates", "Template", True, False),
    ("kubeflow.org", "v1", "notebooks", "Notebook", True, True),
    ("serving.kserve.io", "v1alpha1", "servingruntimes", "ServingRuntime", True, False),
    ("serving.kserve.io", "v1alpha1", "clusterservingruntimes", "ClusterServingRuntime", False, False),
    ("serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService", True, True),
    ("serving.kserve.io", "v1alpha1", "llminferenceservices", "LLMInferenceService", True, True),
    ("serving.kserve.io", "v1alpha2", "llminferenceservices", "LLMInferenceService", True, True),
    ("dscinitialization.opendatahub.io", "v1", "dscinitializations", "DSCInitialization", False, True),
    ("dscinitialization.opendatahub.io", "v2", "dscinitializations", "DSCInitialization", False, True),
    ("kubeflow.org", "v1beta1", "notebooks", "Notebook", True, True),
    ("che.eclipse.org", "v1alpha1", "kubernetesimagepullers", "KubernetesImagePuller", True, True),
]

PULLER_SPEC_FIELDS = {
    "configMapName",
    "daemonsetName",
    "deploymentName",
    "images",
    "cachingIntervalHours",
    "cachingMemoryRequest",
    "cachingMemoryLimit",
    "cachingCPURequest",
    "cachingCPULimit",
    "nodeSelector",
    "imagePullSecrets",
    "affinity",
    "tolerations",
    "imagePullerImage",
}


def status_of(e: ApiException) -> int:
    return int(e.status)


@pytest.mark.parametrize(
    ("group", "version", "plural", "kind", "namespaced", "has_status"), KINDS, ids=[f"{k[3]}.{k[1]}" for k in KINDS]
)
def test_crd_kind_is_served_at_its_real_path(
    api_client: ApiClient,
    namespace: str,
    group: str,
    version: str,
    plural: str,
    kind: str,
    namespaced: bool,
    has_status: bool,
) -> None:
    resources = {r["name"]: r for r in request(api_client, "GET", f"/apis/{group}/{version}")["resources"]}
    assert resources[plural]["kind"] == kind
    assert resources[plural]["namespaced"] is namespaced
    assert (f"{plural}/status" in resources) is has_status

    cluster_wide = request(api_client, "GET", f"/apis/{group}/{version}/{plural}")
    assert cluster_wide["kind"] == f"{kind}List"
    in_namespace = f"/apis/{group}/{version}/namespaces/{namespace}/{plural}"
    if namespaced:
        listed = request(api_client, "GET", in_namespace)
        assert (listed["kind"], listed["items"]) == (f"{kind}List", [])
    else:
        with pytest.raises(ApiException) as refused:
            request(api_client, "GET", in_namespace)
        assert status_of(refused.value) == 404


def test_template_keeps_objects_parameters_and_labels(api_client: ApiClient, namespace: str) -> None:
    runtime = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": {"name": "vllm-cuda-runtime", "annotations": {"x": "y"}},
        "spec": {
            "containers": [{"name": "kserve-container", "image": "quay.io/x/vllm@sha256:" + "a" * 64}],
            "supportedModelFormats": [{"name": "vLLM", "autoSelect": True}],
        },
    }
    template: dict[str, Any] = {
        "apiVersion": "template.openshift.io/v1",
        "kind": "Template",
        "metadata": {"name": "vllm-cuda-runtime-template", "labels": {"opendatahub.io/dashboard": "true"}},
        "objects": [runtime],
        "parameters": [{"name": "IMAGE", "value": "quay.io/x/vllm:1"}],
        "labels": {"opendatahub.io/dashboard": "true"},
        "message": "hello",
    }
    custom = CustomObjectsApi(api_client)
    custom.create_namespaced_custom_object("template.openshift.io", "v1", namespace, "templates", template)
    stored = custom.get_namespaced_custom_object(
        "template.openshift.io", "v1", namespace, "templates", template["metadata"]["name"]
    )
    for key in ("objects", "parameters", "labels", "message"):
        assert stored[key] == template[key]


def test_puller_schema_matches_upstream(api_client: ApiClient) -> None:
    crd = request(
        api_client,
        "GET",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/kubernetesimagepullers.che.eclipse.org",
    )
    assert crd["spec"]["scope"] == "Namespaced"
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    props = version["schema"]["openAPIV3Schema"]["properties"]
    spec = props["spec"]["properties"]
    assert set(spec) == PULLER_SPEC_FIELDS
    assert {f["type"] for f in spec.values()} == {"string"}
    # Upstream's status holds imagePullerImage only (api/v1alpha1/kubernetesimagepuller_types.go,
    # config/crd/bases/che.eclipse.org_kubernetesimagepullers.yaml): conditions are pruned.
    assert props["status"]["properties"] == {"imagePullerImage": {"type": "string"}}
    assert "x-kubernetes-preserve-unknown-fields" not in props["status"]


def test_puller_refuses_non_strings_and_prunes_unknown_fields(api_client: ApiClient, namespace: str) -> None:
    custom = CustomObjectsApi(api_client)
    args = ("che.eclipse.org", "v1alpha1", namespace, "kubernetesimagepullers")

    def puller(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "che.eclipse.org/v1alpha1",
            "kind": "KubernetesImagePuller",
            "metadata": {"name": name},
            "spec": spec,
        }

    with pytest.raises(ApiException) as refused:
        custom.create_namespaced_custom_object(*args, puller("bad", {"images": ["a=b"]}))
    assert status_of(refused.value) == 422
    created = custom.create_namespaced_custom_object(
        *args, puller("good", {"images": "a=quay.io/a:1;", "notAField": "x"})
    )
    assert created["spec"] == {"images": "a=quay.io/a:1;"}


def _fixture_files(dir: Path, node: str, tag_image: str) -> None:
    image_stream = {
        "apiVersion": "image.openshift.io/v1",
        "kind": "ImageStream",
        "metadata": {
            "name": "jupyter",
            "namespace": "ignored-by-override",
            "labels": {"opendatahub.io/notebook-image": "true"},
            "resourceVersion": "12345",
            "uid": "from-another-cluster",
        },
        "spec": {"tags": [{"name": "2025.1", "from": {"kind": "DockerImage", "name": "quay.io/x/jupyter:2025.1"}}]},
        "status": {
            "dockerImageRepository": "",
            "tags": [
                {
                    "tag": "2025.1",
                    "items": [
                        {
                            "dockerImageReference": tag_image,
                            "image": tag_image.split("@")[1],
                            "created": "2025-01-01T00:00:00Z",
                            "generation": 1,
                        }
                    ],
                }
            ],
        },
    }
    node_obj = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node},
        "status": {
            "capacity": {"cpu": "8", "memory": "32Gi", "ephemeral-storage": "100Gi"},
            "allocatable": {"cpu": "8", "memory": "32Gi", "ephemeral-storage": "90Gi"},
            "images": [{"names": [tag_image], "sizeBytes": 1234567890}],
        },
    }
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"k": "v"}}
    # Custom kind first in the file: the loader must still create the built-ins first.
    (dir / "b-workbench.yaml").write_text(yaml.safe_dump_all([image_stream, config_map]))
    (dir / "a-node.yml").write_text(yaml.safe_dump(node_obj))
    (dir / "ignored.txt").write_text("not: yaml: at all: [")


def test_loader_writes_status_through_the_subresource(api_client: ApiClient, namespace: str, tmp_path: Path) -> None:
    node = f"{namespace}-node"
    first = "quay.io/x/jupyter@sha256:" + "1" * 64
    _fixture_files(tmp_path, node, first)
    try:
        summary = apply_dir(api_client, tmp_path, namespace_override=namespace)
        assert dict(summary.applied) == {"ImageStream": 1, "Node": 1, "ConfigMap": 1}
        assert dict(summary.status_written) == {"ImageStream": 1, "Node": 1}
        assert (summary.created, summary.replaced) == (3, 0)

        stream = CustomObjectsApi(api_client).get_namespaced_custom_object(
            "image.openshift.io", "v1", namespace, "imagestreams", "jupyter"
        )
        assert stream["status"]["tags"][0]["items"][0]["dockerImageReference"] == first
        status = request(api_client, "GET", f"/api/v1/nodes/{node}")["status"]
        assert status["images"] == [{"names": [first], "sizeBytes": 1234567890}]
        assert status["capacity"]["ephemeral-storage"] == "100Gi"
        assert status["allocatable"]["ephemeral-storage"] == "90Gi"

        # Applying again replaces, and a changed status is written again.
        second = "quay.io/x/jupyter@sha256:" + "2" * 64
        _fixture_files(tmp_path, node, second)
        summary = apply_dir(api_client, tmp_path, namespace_override=namespace)
        assert (summary.created, summary.replaced) == (0, 3)
        stream = CustomObjectsApi(api_client).get_namespaced_custom_object(
            "image.openshift.io", "v1", namespace, "imagestreams", "jupyter"
        )
        assert stream["status"]["tags"][0]["items"][0]["image"] == "sha256:" + "2" * 64
        status = request(api_client, "GET", f"/api/v1/nodes/{node}")["status"]
        assert status["images"][0]["names"] == [second]
    finally:
        CoreV1Api(api_client).delete_node(node)


def test_loader_runs_from_the_command_line(
    cluster: LocalCluster, api_client: ApiClient, namespace: str, tmp_path: Path
) -> None:
    (tmp_path / "cm.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "from-cli"}})
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.harness.loader",
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--namespace",
            namespace,
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "ConfigMap: 1" in done.stdout
    assert CoreV1Api(api_client).read_namespaced_config_map("from-cli", namespace)


def _wait_allowed(call: Callable[[], T], timeout: float = 10.0) -> T:
    """RBAC changes reach the authorizer through an informer: allow it a moment."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except ApiException as e:
            if status_of(e) != 403 or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_rbac_is_enforced_for_a_service_account_token(
    cluster: LocalCluster, api_client: ApiClient, namespace: str, tmp_path: Path
) -> None:
    token = cluster.token_for(namespace, "agent")
    kubeconfig = cluster.kubeconfig_for_token(token, tmp_path / "agent.kubeconfig")
    args = ("che.eclipse.org", "v1alpha1", namespace, "kubernetesimagepullers")
    admin = CustomObjectsApi(api_client)
    for name in ("mine", "other"):
        admin.create_namespaced_custom_object(
            *args,
            {
                "apiVersion": "che.eclipse.org/v1alpha1",
                "kind": "KubernetesImagePuller",
                "metadata": {"name": name},
                "spec": {"images": ""},
            },
        )

    with new_client_from_config(str(kubeconfig)) as sa_client:
        review = AuthenticationV1Api(sa_client).create_self_subject_review(V1SelfSubjectReview())
        assert review.status.user_info.username == f"system:serviceaccount:{namespace}:agent"
        sa = CustomObjectsApi(sa_client)
        refused_calls: list[Callable[[], object]] = [
            lambda: CoreV1Api(sa_client).list_namespaced_pod(namespace),
            lambda: sa.get_namespaced_custom_object(*args, "mine"),
        ]
        for call in refused_calls:
            with pytest.raises(ApiException) as refused:
                call()
            assert status_of(refused.value) == 403

        request(
            api_client,
            "POST",
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles",
            {
                "metadata": {"name": "get-mine"},
                "rules": [
                    {
                        "apiGroups": ["che.eclipse.org"],
                        "resources": ["kubernetesimagepullers"],
                        "resourceNames": ["mine"],
                        "verbs": ["get"],
                    }
                ],
            },
        )
        request(
            api_client,
            "POST",
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
            {
                "metadata": {"name": "agent-get-mine"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "get-mine"},
                "subjects": [{"kind": "ServiceAccount", "name": "agent", "namespace": namespace}],
            },
        )

        mine = _wait_allowed(lambda: sa.get_namespaced_custom_object(*args, "mine"))
        assert mine["metadata"]["name"] == "mine"
        refused_calls = [
            lambda: sa.get_namespaced_custom_object(*args, "other"),
            lambda: sa.list_namespaced_custom_object(*args),
            lambda: CoreV1Api(sa_client).list_namespaced_pod(namespace),
        ]
        for call in refused_calls:
            with pytest.raises(ApiException) as refused:
                call()
            assert status_of(refused.value) == 403


def test_delete_namespace_removes_it_and_its_contents(
    cluster: LocalCluster, api_client: ApiClient, namespace: str
) -> None:
    doomed = f"{namespace}-doomed"[:63]
    core = CoreV1Api(api_client)
    request(api_client, "POST", "/api/v1/namespaces", {"metadata": {"name": doomed}})
    # A pod bound to a node that does not exist: only a grace period of 0 removes it.
    request(
        api_client,
        "POST",
        f"/api/v1/namespaces/{doomed}/pods",
        {"metadata": {"name": "p"}, "spec": {"nodeName": "nowhere", "containers": [{"name": "c", "image": "busybox"}]}},
    )
    CustomObjectsApi(api_client).create_namespaced_custom_object(
        "kubeflow.org",
        "v1",
        doomed,
        "notebooks",
        {"apiVersion": "kubeflow.org/v1", "kind": "Notebook", "metadata": {"name": "nb"}, "spec": {}},
    )

    cluster.delete_namespace(api_client, doomed)

    with pytest.raises(ApiException) as gone:
        core.read_namespace(doomed)
    assert status_of(gone.value) == 404
    notebooks = request(api_client, "GET", "/apis/kubeflow.org/v1/notebooks")["items"]
    assert [n for n in notebooks if n["metadata"]["namespace"] == doomed] == []
    pods = core.list_pod_for_all_namespaces(field_selector=f"metadata.namespace={doomed}")
    assert pods.items == []


def _script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, check=False, timeout=120, stdin=subprocess.DEVNULL
    )


def test_up_twice_keeps_the_running_cluster(cluster: LocalCluster) -> None:
    if cluster.dir is None:
        pytest.skip("PREPULL_TEST_KUBECONFIG: this session did not start the cluster")
    before = cluster.env
    done = _script("up", str(cluster.dir))
    assert done.returncode == 0, done.stderr
    assert "already running" in done.stdout
    after = read_env(cluster.dir / "env")
    assert after == before
    for pid in (before["ETCD_PID"], before["APISERVER_PID"]):
        os.kill(int(pid), 0)  # still alive

    status = _script("status", str(cluster.dir))
    assert status.returncode == 0 and before["SERVER"] in status.stdout


def test_down_and_status_without_a_cluster(tmp_path: Path) -> None:
    for _ in range(2):
        assert _script("down", str(tmp_path)).returncode == 0
    status = _script("status", str(tmp_path))
    assert status.returncode == 1 and "no cluster" in status.stdout


def _runs(pid: str, data_dir: str) -> bool:
    try:
        return data_dir in Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return False


def test_a_cluster_goes_down_when_its_owner_dies(cluster: LocalCluster, tmp_path: Path) -> None:
    # `cluster` only so this skips or fails like the rest when there are no binaries.
    owner = subprocess.Popen(["sleep", "300"])
    try:
        owned = LocalCluster().start(tmp_path / "owned", owner_pid=owner.pid)
        env = owned.env
        assert env["DATA_DIR"] != (cluster.env["DATA_DIR"] if cluster.dir else "")
        with owned.new_api_client() as client:  # up, CRDs installed
            assert request(client, "GET", "/apis/che.eclipse.org/v1alpha1/kubernetesimagepullers")
    finally:
        owner.kill()
        owner.wait()
    pids = (env["ETCD_PID"], env["APISERVER_PID"], env["WATCHER_PID"])
    deadline = time.monotonic() + 30
    while any(_runs(p, env["DATA_DIR"]) for p in pids) or Path(env["DATA_DIR"]).exists():
        assert time.monotonic() < deadline, (tmp_path / "owned" / "watcher.log").read_text()
        time.sleep(0.2)
    assert not (tmp_path / "owned" / "env").exists()
