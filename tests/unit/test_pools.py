"""Node pools: each target is planned from the usages that can run where its puller runs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent.model import NodeInfo, ObjectRef, Role, State, Taint, Usage
from agent.placement import Placement, Toleration, hint_placement
from agent.plan import Plan, PlanInput, make_plan
from agent.pools import Placing, place
from agent.puller import PullerCR, read_puller
from agent.refs import parse_reference
from agent.settings import Settings
from agent.sizes import ImageSizes

GiB = 2**30
APPS = "redhat-ods-applications"
NOW = datetime(2026, 12, 1, tzinfo=UTC)
GPU_TAINT = Taint("nvidia.com/gpu", "", "NoSchedule")
WORKER = {"node-role.kubernetes.io/worker": ""}


def cpu(name: str, disk: int = 120 * GiB) -> NodeInfo:
    return NodeInfo(name, WORKER, disk)


def gpu(name: str, disk: int = 500 * GiB, **kw: object) -> NodeInfo:
    labels = {**WORKER, "nvidia.com/gpu.present": "true"}
    return NodeInfo(name, labels, disk, taints=(GPU_TAINT,), extended=frozenset({"nvidia.com/gpu"}), **kw)  # type: ignore[arg-type]


NODES = [cpu("cpu-0"), cpu("cpu-1", 100 * GiB), gpu("gpu-0"), gpu("gpu-1", 600 * GiB)]

ON_GPU = Placement(tolerations=(Toleration("nvidia.com/gpu", "Exists", "", "NoSchedule"),),
                   resources=frozenset({"nvidia.com/gpu"}))
PLAIN = Placement()


def puller(namespace: str, **spec: str) -> PullerCR:
    return read_puller({"metadata": {"name": "image-puller", "namespace": namespace, "resourceVersion": "1"},
                        "spec": {"images": "", **spec}})


CPU_PULLER = puller("image-puller", nodeSelector='{"node-role.kubernetes.io/worker": ""}')
GPU_PULLER = puller("image-puller-gpu", nodeSelector='{"nvidia.com/gpu.present": "true"}',
                    tolerations='[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]')


def use(image: str, placement: Placement | None, *, ns: str = "team-a", name: str = "wb",
        kind: str = "Notebook", state: State = State.RUNNING, role: Role = Role.WORKBENCH) -> Usage:
    return Usage(parse_reference(image), ObjectRef(kind, ns, name), "spec.template.spec.containers[wb].image",
                 role, state, placement=placement)


CUDA_WB = "quay.io/modh/cuda-workbench:1"
CPU_WB = "quay.io/modh/cpu-workbench:1"
VLLM = "quay.io/modh/vllm:1"


def usages() -> list[Usage]:
    return [
        use(CUDA_WB, ON_GPU, name="gpu-wb"), use(CUDA_WB, ON_GPU, ns="team-b", name="gpu-wb"),
        use(CPU_WB, PLAIN, name="cpu-wb"), use(CPU_WB, PLAIN, ns="team-b", name="cpu-wb"),
        use(VLLM, ON_GPU, kind="InferenceService", name="llm", state=State.READY, role=Role.SERVING_RUNTIME),
        use(VLLM, ON_GPU, kind="InferenceService", ns="team-b", name="llm", state=State.READY,
            role=Role.SERVING_RUNTIME),
    ]


def images(usages: tuple[Usage, ...]) -> set[str]:
    return {str(u.image) for u in usages}


def plan_for(placing: Placing, index: int, cr: PullerCR) -> Plan:
    view = placing.targets[index]
    return make_plan(PlanInput(
        usages=view.usages, puller=cr, nodes=view.pool.nodes if view.pool else (), sizes=ImageSizes(),
        settings=Settings(), now=NOW, applications_namespace=APPS, elsewhere=view.elsewhere,
        elsewhere_reasons=view.reasons,
    ))


def test_gpu_workloads_count_only_for_the_gpu_pool_and_cpu_ones_only_for_the_cpu_pool():
    placing = place(usages(), pullers=[CPU_PULLER, GPU_PULLER], nodes=NODES)
    cpu_view, gpu_view = placing.targets
    assert [n.name for n in cpu_view.pool.nodes] == ["cpu-0", "cpu-1"]  # the GPU taint keeps the CPU puller out
    assert [n.name for n in gpu_view.pool.nodes] == ["gpu-0", "gpu-1"]
    assert images(cpu_view.usages) == {CPU_WB}
    assert images(gpu_view.usages) == {CUDA_WB, VLLM}
    assert placing.gaps == ()


def test_each_targets_budget_comes_from_its_own_nodes():
    placing = place(usages(), pullers=[CPU_PULLER, GPU_PULLER], nodes=NODES)
    cpu_plan, gpu_plan = plan_for(placing, 0, CPU_PULLER), plan_for(placing, 1, GPU_PULLER)
    assert cpu_plan.budget_bytes == int(0.3 * 100 * GiB)
    assert gpu_plan.budget_bytes == int(0.3 * 500 * GiB)
    assert [str(c.image) for c in gpu_plan.selected] == [CUDA_WB, VLLM]


def test_an_image_left_out_of_a_pool_says_why():
    placing = place(usages(), pullers=[CPU_PULLER, GPU_PULLER], nodes=NODES)
    cpu_plan = plan_for(placing, 0, CPU_PULLER)
    vllm = next(c for c in cpu_plan.candidates if str(c.image) == VLLM)
    assert not vllm.selected
    assert vllm.reason == "no node of this pool has nvidia.com/gpu; runs only on nodes of pool image-puller-gpu"
    assert placing.targets[1].reasons[parse_reference(CPU_WB)].startswith("taint nvidia.com/gpu:NoSchedule")


def test_a_single_default_target_lists_no_gpu_only_image_and_suggests_a_second_puller():
    placing = place(usages(), pullers=[puller("openshift-operators")], nodes=NODES)
    (view,) = placing.targets
    assert images(view.usages) == {CPU_WB}
    (gap,) = placing.gaps
    assert gap.group.nodes == ("gpu-0", "gpu-1")
    assert {str(i) for i in gap.images} == {CUDA_WB, VLLM}
    spec = gap.suggestion["spec"]
    assert '"nvidia.com/gpu"' in spec["tolerations"] and "nvidia.com/gpu.present" in spec["nodeSelector"]
    assert read_puller({"metadata": {**gap.suggestion["metadata"], "resourceVersion": "1"}, "spec": spec})


def test_a_cordoned_node_still_counts_for_the_pool():
    nodes = [cpu("cpu-0", 200 * GiB), NodeInfo("cpu-1", WORKER, 50 * GiB, unschedulable=True)]
    placing = place(usages(), pullers=[CPU_PULLER], nodes=nodes)
    assert [n.name for n in placing.targets[0].pool.nodes] == ["cpu-0", "cpu-1"]
    assert plan_for(placing, 0, CPU_PULLER).budget_bytes == int(0.3 * 50 * GiB)  # that node holds the list too


def test_an_offered_image_recommended_for_an_accelerator_no_node_has_is_listed_nowhere():
    rocm = hint_placement({"opendatahub.io/recommended-accelerators": '["amd.com/gpu"]'})
    offered = use("quay.io/modh/rocm-workbench:1", rocm, kind="ImageStream", ns=APPS, name="rocm",
                  state=State.RECOMMENDED)
    placing = place([*usages(), offered], pullers=[CPU_PULLER, GPU_PULLER], nodes=NODES)
    why = "recommended for amd.com/gpu; no node has it"
    assert placing.nowhere == {offered.image: why}
    assert all(offered.image not in {u.image for u in v.usages} for v in placing.targets)
    reasons = {c.reason for c in plan_for(placing, 1, GPU_PULLER).candidates if c.image == offered.image}
    assert reasons == {why}


def test_an_offered_cuda_image_goes_to_the_gpu_pool_only():
    cuda = hint_placement({"opendatahub.io/recommended-accelerators": '["nvidia.com/gpu"]'})
    offered = use("quay.io/modh/cuda-offered:1", cuda, kind="ImageStream", ns=APPS, name="cuda",
                  state=State.RECOMMENDED)
    plain = use("quay.io/modh/cpu-offered:1", hint_placement({}), kind="ImageStream", ns=APPS, name="cpu",
                state=State.RECOMMENDED)
    cpu_view, gpu_view = place([offered, plain], pullers=[CPU_PULLER, GPU_PULLER], nodes=NODES).targets
    assert images(cpu_view.usages) == {"quay.io/modh/cpu-offered:1"}
    assert images(gpu_view.usages) == {"quay.io/modh/cuda-offered:1"}


def test_a_target_that_matches_no_node_adds_nothing_and_keeps_its_entries():
    nowhere = puller("empty", nodeSelector='{"pool": "does-not-exist"}', images="wb=quay.io/modh/cpu-workbench:1;")
    owned = read_puller({"metadata": {"name": "image-puller", "namespace": "empty", "resourceVersion": "1",
                                      "annotations": {"prepull-agent.io/owned-entries": '{"wb":"quay.io/modh/cpu-workbench:1"}'}},
                         "spec": {"images": nowhere.images, "nodeSelector": '{"pool": "does-not-exist"}'}})
    placing = place(usages(), pullers=[owned], nodes=NODES)
    assert placing.targets[0].pool.nodes == () and placing.targets[0].usages == ()
    p = make_plan(PlanInput(usages=(), puller=owned, nodes=(), sizes=ImageSizes(), settings=Settings(), now=NOW,
                            applications_namespace=APPS, hold="the puller runs on no node"))
    assert not p.changed and [c.reason for c in p.candidates] == ["kept: the puller runs on no node"]


def test_without_the_nodes_every_usage_counts_for_every_target():
    placing = place(usages(), pullers=[CPU_PULLER, GPU_PULLER], nodes=None)
    assert all(v.pool is None and len(v.usages) == len(usages()) for v in placing.targets)
    assert placing.gaps == () and placing.nowhere == {}


def test_a_usage_of_unknown_placement_counts_everywhere():
    placing = place([use(CPU_WB, None)], pullers=[CPU_PULLER, GPU_PULLER], nodes=NODES)
    assert [images(v.usages) for v in placing.targets] == [{CPU_WB}, {CPU_WB}]


@pytest.mark.parametrize(("field", "value"), [
    ("nodeSelector", '{"a": '), ("affinity", "[]"), ("tolerations", '{"key": "x"}'),
])
def test_a_malformed_placement_field_of_the_puller_is_an_error_naming_the_cr_and_field(field, value):
    with pytest.raises(ValueError, match=rf"KubernetesImagePuller image-puller-gpu/image-puller: spec\.{field}"):
        puller("image-puller-gpu", **{field: value})
