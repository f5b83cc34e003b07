"""Node pools on the real API server: one KubernetesImagePuller per pool, each planned from
the workloads that can run where its puller runs.

The sample cluster has two CPU workers and a GPU pool of two nodes tainted
`nvidia.com/gpu=true:NoSchedule` (one of them cordoned, with the smaller disk). Each test
makes its own pullers: the CPU workers' (nodeSelector worker, no toleration) in the test's
namespace, and the GPU pool's (nodeSelector `nvidia.com/gpu.present`, tolerating the taint)
in a second namespace, since the operator allows one KubernetesImagePuller per namespace.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.puller import puller_view
from tests.harness.loader import apply_objects
from tests.integration.conftest import ADMIN_ENTRY, Puller

GPU_TOLERATION = '[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]'
CUDA_WORKBENCH = "quay.io/modh/odh-workbench-jupyter-pytorch-cuda-py311-ubi9"
CPU_WORKBENCH = "quay.io/modh/odh-workbench-jupyter-minimal-cpu-py311-ubi9"
VLLM = "quay.io/modh/vllm"
GRANITE = "quay.io/redhat-ai-services/modelcar-catalog"
SKLEARN = "docker.io/kserve/sklearnserver"
ROCM = "quay.io/modh/odh-workbench-jupyter-pytorch-rocm-py311-ubi9"
WORKER_0 = 128300593152  # the smaller CPU worker's ephemeral-storage capacity
WORKER_GPU_1 = 400 * 2**30  # the cordoned GPU node: the smaller GPU disk


def make_puller(api_client, namespace: str, **spec: str) -> Puller:
    apply_objects(api_client, [{
        "apiVersion": "che.eclipse.org/v1alpha1", "kind": "KubernetesImagePuller",
        "metadata": {"name": "image-puller", "namespace": namespace},
        "spec": {"daemonsetName": "kubernetes-image-puller", "images": f"{ADMIN_ENTRY};", **spec},
    }])
    return Puller(namespace, "image-puller", api_client)


@pytest.fixture
def pools(sample_cluster, api_client, namespace, second_namespace, tmp_path: Path):
    """(CPU puller, GPU puller, config file naming both)."""
    cpu = make_puller(api_client, namespace, nodeSelector='{"node-role.kubernetes.io/worker": ""}')
    gpu = make_puller(api_client, second_namespace, nodeSelector='{"nvidia.com/gpu.present": "true"}',
                      tolerations=GPU_TOLERATION)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"targets": [{"namespace": p.namespace, "name": p.name} for p in (cpu, gpu)]}))
    return cpu, gpu, config


def listed(puller: Puller) -> set[str]:
    """The repositories of the images in the puller's list (digests and tags alike)."""
    return {image.split("@")[0].rsplit(":", 1)[0] for image in puller_view(puller.images()).values()}


def by_target(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f'{t["target"]["namespace"]}': t for t in doc["targets"]}


def test_gpu_workloads_land_only_in_the_gpu_pools_list_and_cpu_workbenches_only_in_the_cpu_pools(agent, pools):
    cpu, gpu, config = pools
    run = agent("once", "--config", str(config))
    assert run.code == 0, (run.err, run.events)
    # a GPU workbench (vision-train), vLLM behind a runtime that carries the toleration
    # (llama-draft has none of its own) and the ModelCar of a GPU predictor (granite-chat)
    assert {CUDA_WORKBENCH, VLLM, GRANITE} <= listed(gpu)
    assert not {CUDA_WORKBENCH, VLLM, GRANITE} & listed(cpu)
    assert {CPU_WORKBENCH, SKLEARN} <= listed(cpu)
    assert not {CPU_WORKBENCH, SKLEARN} & listed(gpu)
    assert ADMIN_ENTRY in cpu.images() and ADMIN_ENTRY in gpu.images()
    doc = by_target(run.json())
    vllm = next(c for c in doc[cpu.namespace]["candidates"] if c["image"].startswith(VLLM + "@"))
    assert vllm["reason"] == f"no node of this pool has nvidia.com/gpu; runs only on nodes of pool {gpu.namespace}"


def test_a_rocm_recommended_stream_on_a_cluster_without_amd_gpus_is_listed_nowhere(agent, pools):
    cpu, gpu, config = pools
    run = agent("once", "--config", str(config))
    assert run.code == 0, (run.err, run.events)
    assert ROCM not in listed(cpu) | listed(gpu)
    doc = run.json()
    (reason,) = {why for image, why in doc["coverage"]["nowhere"].items() if image.startswith(ROCM)}
    assert reason == "recommended for amd.com/gpu; no node has it"
    for target in doc["targets"]:
        (rocm,) = [c for c in target["candidates"] if c["image"].startswith(ROCM)]
        assert not rocm["selected"] and rocm["reason"] == reason


def test_each_targets_budget_comes_from_its_own_nodes_a_cordoned_one_included(agent, pools):
    cpu, gpu, config = pools
    doc = by_target(agent("once", "--dry-run", "--config", str(config)).json())
    assert doc[cpu.namespace]["pool"] == {"name": cpu.namespace, "nodes": 2, "smallest_disk_bytes": WORKER_0,
                                          "accelerators": []}
    assert doc[gpu.namespace]["pool"] == {"name": gpu.namespace, "nodes": 2, "smallest_disk_bytes": WORKER_GPU_1,
                                          "accelerators": ["nvidia.com/gpu"]}
    assert doc[cpu.namespace]["budget_bytes"] == int(0.3 * WORKER_0)
    assert doc[gpu.namespace]["budget_bytes"] == int(0.3 * WORKER_GPU_1)  # worker-gpu-1 is cordoned: still counts


def test_a_single_default_target_lists_no_gpu_only_image_and_prints_the_second_puller(agent, sample_cluster,
                                                                                          api_client, namespace):
    cpu = make_puller(api_client, namespace, nodeSelector='{"node-role.kubernetes.io/worker": ""}')
    run = agent("once", target=cpu.target, output="table")
    assert run.code == 0, (run.err, run.events)
    assert not {CUDA_WORKBENCH, VLLM, GRANITE} & listed(cpu) and CPU_WORKBENCH in listed(cpu)
    assert "Nodes no puller covers: group" in run.out and "worker-gpu-0, worker-gpu-1" in run.out
    manifests = list(yaml.safe_load_all(run.out[run.out.index("apiVersion: v1\nkind: Namespace"):].split("\n# config.yaml")[0]))
    suggested = next(m for m in manifests if m["kind"] == "KubernetesImagePuller")
    assert json.loads(suggested["spec"]["nodeSelector"]) == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in json.loads(
        suggested["spec"]["tolerations"])
    assert any(VLLM in line for line in suggested["spec"]["images"].splitlines())
    assert {m["kind"] for m in manifests} == {"Namespace", "KubernetesImagePuller", "Role", "RoleBinding"}
    assert run.logged("nodes no puller covers run workloads")


@pytest.mark.parametrize(("field", "value"), [
    ("nodeSelector", '{"nvidia.com/gpu.present": '),
    ("affinity", '{"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": []}}'),
    ("tolerations", '{"key": "nvidia.com/gpu"}'),
])
def test_a_malformed_placement_field_is_a_clear_error_that_changes_nothing(agent, pools, field, value):
    cpu, gpu, config = pools
    gpu.patch({"spec": {field: value}})
    rv = gpu.resource_version()
    run = agent("once", "--config", str(config))
    assert run.code == 4, (run.code, run.err)
    assert f"KubernetesImagePuller {gpu.namespace}/image-puller: spec.{field}" in run.err
    assert gpu.resource_version() == rv and gpu.images() == f"{ADMIN_ENTRY};"
    assert CPU_WORKBENCH in listed(cpu)  # the other target went on


def test_a_target_that_matches_no_node_is_a_warning_and_adds_nothing(agent, sample_cluster, api_client, namespace):
    lost = make_puller(api_client, namespace, nodeSelector='{"pool": "does-not-exist"}')
    rv = lost.resource_version()
    run = agent("once", target=lost.target)
    assert run.code == 0, (run.err, run.events)
    (target,) = run.json().get("targets") or [run.json()]
    assert target["pool"]["nodes"] == 0 and target["changed"] is False
    assert lost.resource_version() == rv
    assert run.logged("target matches no node")
