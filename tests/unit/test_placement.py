"""agent.placement: where a pod could run, as the scheduler decides. Tables, no cluster."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.model import NodeInfo, Taint
from agent.placement import (
    DAEMONSET_TOLERATIONS,
    MAX_HINTS,
    MAX_TOLERATIONS,
    RECOMMENDED_ACCELERATORS,
    NodeAffinity,
    Placement,
    PlacementError,
    PodScheduling,
    Resources,
    Term,
    Toleration,
    can_run_on,
    group_nodes,
    hint_placement,
    is_extended_resource,
    matching_nodes,
    merge_kserve,
    misfit,
    pool_misfit,
    puller_placement,
    quantity_is_positive,
    read_affinity_json,
    read_pod_scheduling,
    read_tolerations_json,
    suggest_puller,
    uncovered_groups,
)
from agent.puller import read_puller

GPU = "nvidia.com/gpu"
GPU_TAINT = Taint(GPU, "", "NoSchedule")
WORKER = {"node-role.kubernetes.io/worker": ""}


def node(name: str = "n", *, labels: dict[str, str] | None = None, taints: tuple[Taint, ...] = (),
         extended: frozenset[str] = frozenset(), cordoned: bool = False) -> NodeInfo:
    return NodeInfo(name, labels or {}, 100 * 2**30, taints=taints, unschedulable=cordoned, extended=extended)


def pod(**spec: Any) -> Placement:
    """The placement of a plain pod spec."""
    return read_pod_scheduling(spec, field="spec").placement()


def gpu_node(name: str = "gpu-0", **labels: str) -> NodeInfo:
    return node(name, labels={**WORKER, "nvidia.com/gpu.present": "true", **labels}, taints=(GPU_TAINT,),
                extended=frozenset({GPU}))


def cpu_node(name: str = "cpu-0", **labels: str) -> NodeInfo:
    return node(name, labels={**WORKER, **labels})


def tol(**fields: str) -> Toleration:
    (toleration,) = read_tolerations_json(json.dumps([fields]), field="t")
    return toleration


# -- taints and tolerations -------------------------------------------------------------


@pytest.mark.parametrize(
    ("toleration", "taint", "tolerated"),
    [
        pytest.param(tol(key=GPU, operator="Exists", effect="NoSchedule"), GPU_TAINT, True, id="exists-key-effect"),
        pytest.param(tol(key=GPU, operator="Exists"), Taint(GPU, "x", "NoExecute"), True, id="empty-effect-all-effects"),
        pytest.param(tol(operator="Exists"), Taint("anything", "v", "NoExecute"), True, id="empty-key-exists-everything"),
        pytest.param(tol(operator="Exists", effect="NoSchedule"), Taint("a", "", "NoExecute"), False, id="empty-key-other-effect"),
        pytest.param(tol(key=GPU, operator="Exists", effect="NoExecute"), GPU_TAINT, False, id="effect-differs"),
        pytest.param(tol(key="other", operator="Exists"), GPU_TAINT, False, id="key-differs"),
        pytest.param(tol(key="k", operator="Equal", value="v"), Taint("k", "v", "NoSchedule"), True, id="equal-value"),
        pytest.param(tol(key="k", operator="Equal", value="v"), Taint("k", "w", "NoSchedule"), False, id="equal-other-value"),
        pytest.param(tol(key="k", value="v"), Taint("k", "v", "NoSchedule"), True, id="empty-operator-is-equal"),
        pytest.param(tol(key="k"), Taint("k", "", "NoSchedule"), True, id="equal-empty-values"),
        pytest.param(tol(key="k", operator="Equal"), Taint("k", "v", "NoSchedule"), False, id="equal-needs-the-value"),
        pytest.param(tol(value="v"), Taint("any", "v", "NoSchedule"), True, id="empty-key-equal-literal-upstream"),
        pytest.param(tol(key="k", operator="Gt", value="5"), Taint("k", "7", "NoSchedule"), True, id="gt-numeric"),
        pytest.param(tol(key="k", operator="Lt", value="5"), Taint("k", "7", "NoSchedule"), False, id="lt-numeric"),
        pytest.param(tol(key="k", operator="Gt", value="5"), Taint("k", "seven", "NoSchedule"), False, id="gt-not-integer"),
        pytest.param(tol(key="k", operator="exists"), Taint("k", "", "NoSchedule"), False, id="unknown-operator-case"),
        pytest.param(Toleration("k", "", "v"), Taint("k", "v", "NoSchedule"), True, id="built-with-empty-operator"),
    ],
)  # fmt: skip
def test_tolerations_follow_upstream_tolerates_taint(toleration: Toleration, taint: Taint, tolerated: bool) -> None:
    assert toleration.tolerates(taint) is tolerated


@pytest.mark.parametrize(
    ("effect", "blocks"),
    [("NoSchedule", True), ("NoExecute", True), ("PreferNoSchedule", False), ("Sometimes", False)],
)
def test_only_noschedule_and_noexecute_taints_keep_a_pod_off(effect: str, blocks: bool) -> None:
    tainted = node(taints=(Taint("dedicated", "ml", effect),))
    assert can_run_on(Placement(), tainted) is not blocks
    if blocks:
        assert str(misfit(Placement(), tainted)) == f"taint dedicated=ml:{effect} not tolerated"


def test_every_blocking_taint_must_be_tolerated() -> None:
    two = node(taints=(GPU_TAINT, Taint("dedicated", "ml", "NoExecute")))
    only_gpu = pod(tolerations=[{"key": GPU, "operator": "Exists"}])
    assert str(misfit(only_gpu, two)) == "taint dedicated=ml:NoExecute not tolerated"
    both = pod(tolerations=[{"key": GPU, "operator": "Exists"}, {"key": "dedicated", "value": "ml"}])
    assert can_run_on(both, two)


# -- nodeSelector and required node affinity --------------------------------------------


@pytest.mark.parametrize(
    ("selector", "labels", "fits"),
    [
        ({"disk": "ssd"}, {"disk": "ssd", "x": "y"}, True),
        ({"disk": "ssd"}, {"disk": "hdd"}, False),
        ({"disk": "ssd"}, {}, False),
        ({"node-role.kubernetes.io/worker": ""}, {"node-role.kubernetes.io/worker": ""}, True),
        ({"node-role.kubernetes.io/worker": ""}, {}, False),  # an empty value still needs the label
        ({}, {}, True),
    ],
)
def test_node_selector_needs_every_label(selector: dict[str, str], labels: dict[str, str], fits: bool) -> None:
    assert can_run_on(pod(nodeSelector=selector), node(labels=labels)) is fits


def required(*terms: dict[str, Any]) -> dict[str, Any]:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    return {"matchExpressions": [{"key": key, "operator": operator, "values": list(values)}]}


@pytest.mark.parametrize(
    ("term", "labels", "fits"),
    [
        pytest.param(expr("zone", "In", "a", "b"), {"zone": "b"}, True, id="in"),
        pytest.param(expr("zone", "In", "a"), {"zone": "c"}, False, id="in-other-value"),
        pytest.param(expr("zone", "In", "a"), {}, False, id="in-missing-label"),
        pytest.param(expr("zone", "NotIn", "a"), {}, True, id="notin-missing-label-matches"),
        pytest.param(expr("zone", "NotIn", "a"), {"zone": "a"}, False, id="notin-listed"),
        pytest.param(expr("zone", "NotIn", "a"), {"zone": "b"}, True, id="notin-other"),
        pytest.param(expr("gpu", "Exists"), {}, False, id="exists-missing-label"),
        pytest.param(expr("gpu", "Exists"), {"gpu": ""}, True, id="exists-empty-value"),
        pytest.param(expr("gpu", "DoesNotExist"), {}, True, id="doesnotexist-missing"),
        pytest.param(expr("gpu", "DoesNotExist"), {"gpu": "true"}, False, id="doesnotexist-present"),
        pytest.param(expr("mem", "Gt", "16"), {"mem": "32"}, True, id="gt"),
        pytest.param(expr("mem", "Gt", "16"), {"mem": "16"}, False, id="gt-equal"),
        pytest.param(expr("mem", "Lt", "16"), {"mem": "8"}, True, id="lt"),
        pytest.param(expr("mem", "Lt", "16"), {"mem": "-20"}, True, id="lt-negative-label"),
        pytest.param(expr("mem", "Gt", "16"), {"mem": "+32"}, True, id="gt-signed-label-like-go"),
        pytest.param(expr("mem", "Gt", "16"), {"mem": "32Gi"}, False, id="gt-label-not-integer"),
        pytest.param(expr("mem", "Gt", "16"), {"mem": " 32"}, False, id="gt-label-with-space"),
        pytest.param(expr("mem", "Gt", "16"), {}, False, id="gt-missing-label"),
        pytest.param(expr("mem", "Gt", "1.5"), {"mem": "32"}, False, id="gt-value-not-integer"),
        pytest.param(expr("mem", "Gt", "1", "2"), {"mem": "32"}, False, id="gt-two-values"),
        pytest.param(expr("mem", "Gt", "99999999999999999999"), {"mem": "1"}, False, id="gt-beyond-int64"),
        pytest.param(expr("zone", "In"), {"zone": "a"}, False, id="in-without-values"),
        pytest.param(expr("gpu", "Exists", "x"), {"gpu": "x"}, False, id="exists-with-values"),
        pytest.param(expr("zone", "in", "a"), {"zone": "a"}, False, id="unknown-operator"),
        pytest.param(expr("bad key!", "Exists"), {"bad key!": ""}, False, id="invalid-label-key"),
        pytest.param(expr("zone", "NotIn", "not a value!"), {}, False, id="invalid-label-value"),
        pytest.param({**expr("zone", "In", "a"), **expr("disk", "In", "ssd")}, {"zone": "a"}, False, id="last-key-wins"),
        pytest.param({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]},
                                           {"key": "disk", "operator": "In", "values": ["ssd"]}]},
                     {"zone": "a"}, False, id="and-within-a-term"),
        pytest.param({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]}, {}, True,
                     id="fields-name-in"),
        pytest.param({"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n"]}]}, {}, False,
                     id="fields-name-notin"),
        pytest.param({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n", "m"]}]}, {}, False,
                     id="fields-two-values"),
        pytest.param({"matchFields": [{"key": "metadata.name", "operator": "Exists"}]}, {}, False,
                     id="fields-exists-unsupported"),
        pytest.param({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}],
                      **expr("zone", "In", "b")}, {"zone": "a"}, False, id="fields-and-expressions"),
        pytest.param({}, {}, False, id="empty-term-selects-nothing"),
        pytest.param({"matchExpressions": [], "matchFields": []}, {}, False, id="empty-lists-select-nothing"),
    ],
)  # fmt: skip
def test_required_node_affinity_operators(term: dict[str, Any], labels: dict[str, str], fits: bool) -> None:
    assert can_run_on(pod(affinity=required(term)), node("n", labels=labels)) is fits


def test_an_empty_term_matches_nothing_even_when_built_directly() -> None:
    assert not NodeAffinity((Term(),)).matches("n", {})
    assert not NodeAffinity(()).matches("n", {})


def test_terms_are_ored_and_an_invalid_term_only_fails_itself() -> None:
    placement = pod(affinity=required(expr("zone", "Gt", "x"), expr("zone", "In", "a")))
    assert can_run_on(placement, node(labels={"zone": "a"}))
    assert str(misfit(placement, node(labels={"zone": "b"}))) == (
        "required node affinity not met (matchExpressions[0]: Gt needs exactly one integer value)"
    )


@pytest.mark.parametrize(
    ("affinity", "fits"),
    [
        pytest.param(required(), False, id="no-terms-matches-nothing"),
        pytest.param({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}}, False,
                     id="required-without-terms"),
        pytest.param({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "preference": expr("zone", "In", "x")}]}}, True, id="preferred-only-is-no-constraint"),
        pytest.param({"podAntiAffinity": {"x": 1}}, True, id="pod-affinity-ignored"),
        pytest.param({"nodeAffinity": None}, True, id="null-node-affinity"),
        pytest.param(None, True, id="null-affinity"),
    ],
)  # fmt: skip
def test_empty_affinity_shapes_as_upstream(affinity: Any, fits: bool) -> None:
    assert can_run_on(pod(affinity=affinity), node()) is fits


# -- extended resources -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "extended"),
    [
        (GPU, True), ("amd.com/gpu", True), ("habana.ai/gaudi", True), ("intel.com/gpu", True),
        ("openshift.io/sriov-nic", True), ("cpu", False), ("memory", False), ("ephemeral-storage", False),
        ("hugepages-2Mi", False), ("pods", False), ("kubernetes.io/batteries", False),
        ("example.kubernetes.io/x", False), ("requests.nvidia.com/gpu", False), ("Bad_Domain/x", False),
        ("nvidia.com/", False), ("/gpu", False),
    ],
)  # fmt: skip
def test_extended_resource_names_as_upstream(name: str, extended: bool) -> None:
    assert is_extended_resource(name) is extended


@pytest.mark.parametrize(
    ("quantity", "positive"),
    [
        ("1", True), (1, True), (2.5, True), ("0", False), (0, False), ("0.0", False), ("-1", False), ("+1", True),
        ("1m", True), ("500Mi", True), ("1e3", True), ("1E", True), (".5", True), ("0e3", False), (" 1 ", True),
        ("lots", None), ("1.2.3", None), ("", None), (True, None), (None, None), ([1], None), (float("nan"), None),
    ],
)  # fmt: skip
def test_quantities(quantity: Any, positive: bool | None) -> None:
    assert quantity_is_positive(quantity) is positive


def container(limits: dict[str, Any] | None = None, requests: dict[str, Any] | None = None,
              name: str = "main") -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if limits is not None:
        resources["limits"] = limits
    if requests is not None:
        resources["requests"] = requests
    return {"name": name, "image": "quay.io/x/y:1", "resources": resources}


@pytest.mark.parametrize(
    ("spec", "needs"),
    [
        pytest.param({"containers": [container({GPU: "1"})]}, {GPU}, id="limit"),
        pytest.param({"containers": [container(requests={GPU: 1})]}, {GPU}, id="request-as-json-number"),
        pytest.param({"containers": [container({GPU: "0"})]}, set(), id="zero-needs-nothing"),
        pytest.param({"containers": [container({"cpu": "8", "memory": "64Gi", "hugepages-2Mi": "1Gi",
                                                "ephemeral-storage": "10Gi"})]}, set(), id="native-resources"),
        pytest.param({"containers": [container({"amd.com/gpu": "1"}), container({"habana.ai/gaudi": "2"}, name="b")]},
                     {"amd.com/gpu", "habana.ai/gaudi"}, id="every-container"),
        pytest.param({"initContainers": [container({"intel.com/gpu": "1"})], "containers": [container()]},
                     {"intel.com/gpu"}, id="init-container"),
        pytest.param({"containers": [container({GPU: "1"}, {GPU: "0"})]}, {GPU}, id="positive-in-either"),
    ],
)  # fmt: skip
def test_extended_resources_a_pod_needs(spec: dict[str, Any], needs: set[str]) -> None:
    assert pod(**spec).resources == needs


def test_a_gpu_pod_runs_only_where_the_gpu_is_allocatable() -> None:
    placement = pod(containers=[container({GPU: "1"})], tolerations=[{"key": GPU, "operator": "Exists"}])
    assert str(misfit(placement, cpu_node())) == "no nvidia.com/gpu allocatable"
    assert pool_misfit(placement, [cpu_node("a"), cpu_node("b")]) == "no node of this pool has nvidia.com/gpu"
    assert can_run_on(placement, gpu_node())
    assert str(misfit(pod(containers=[container({GPU: "1"})]), gpu_node())) == "taint nvidia.com/gpu:NoSchedule not tolerated"


def test_a_cpu_pod_is_kept_off_the_tainted_gpu_pool() -> None:
    assert matching_nodes(pod(), [cpu_node("c"), gpu_node("g")]) == (cpu_node("c"),)
    assert pool_misfit(pod(), [gpu_node("g1"), gpu_node("g2")]) == "taint nvidia.com/gpu:NoSchedule not tolerated"


def test_pool_misfit_counts_mixed_reasons() -> None:
    placement = pod(containers=[container({GPU: "1"})])
    reason = pool_misfit(placement, [cpu_node("a"), cpu_node("b"), gpu_node("g")])
    assert reason == "no nvidia.com/gpu allocatable on 2 nodes; taint nvidia.com/gpu:NoSchedule not tolerated on 1 node"
    assert pool_misfit(placement, []) == "the pool has no nodes"
    assert pool_misfit(Placement(), [gpu_node(), cpu_node()]) is None


# -- the puller's DaemonSet, cordoned and troubled nodes -------------------------------------


def puller(**spec: str) -> Placement:
    obj = {"metadata": {"name": "image-puller", "namespace": "gpu-puller", "resourceVersion": "1"}, "spec": spec}
    return read_puller(obj).placement()


CORDONED_GPU = node("g", labels={"nvidia.com/gpu.present": "true"}, cordoned=True, extended=frozenset({GPU}),
                    taints=(GPU_TAINT, Taint("node.kubernetes.io/unschedulable", "", "NoSchedule")))
GPU_TOLERATION = json.dumps([{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}])


@pytest.mark.parametrize(
    ("placement", "target", "now", "fits"),
    [
        pytest.param(puller(), cpu_node(), True, True, id="default-puller-on-a-cpu-node"),
        pytest.param(puller(), gpu_node(), False, False, id="default-puller-misses-the-gpu-taint"),
        pytest.param(puller(tolerations=GPU_TOLERATION), gpu_node(), False, True, id="puller-tolerating-the-gpu-taint"),
        pytest.param(puller(tolerations=GPU_TOLERATION), CORDONED_GPU, True, True, id="cordoned-node-counts-for-the-ds"),
        pytest.param(pod(tolerations=json.loads(GPU_TOLERATION)), CORDONED_GPU, True, False, id="but-not-for-a-plain-pod-now"),
        pytest.param(pod(tolerations=json.loads(GPU_TOLERATION)), CORDONED_GPU, False, True, id="which-still-belongs-there"),
        pytest.param(puller(), node(cordoned=True), True, True, id="cordoned-without-the-taint-yet"),
        pytest.param(pod(), node(cordoned=True), True, False, id="plain-pod-on-cordoned-without-taint"),
        pytest.param(puller(), node(taints=(Taint("node.kubernetes.io/not-ready", "", "NoExecute"),)), True, True,
                     id="ds-tolerates-not-ready"),
        pytest.param(puller(), node(taints=(Taint("node.kubernetes.io/unreachable", "", "NoExecute"),)), True, True,
                     id="ds-tolerates-unreachable"),
        pytest.param(puller(), node(taints=(Taint("node.kubernetes.io/disk-pressure", "", "NoSchedule"),)), True, True,
                     id="ds-tolerates-disk-pressure"),
        pytest.param(puller(), node(taints=(Taint("node.kubernetes.io/memory-pressure", "", "NoSchedule"),)), True,
                     True, id="ds-tolerates-memory-pressure"),
        pytest.param(puller(), node(taints=(Taint("node.kubernetes.io/pid-pressure", "", "NoSchedule"),)), True, True,
                     id="ds-tolerates-pid-pressure"),
        pytest.param(puller(), node(taints=(Taint("node.kubernetes.io/network-unavailable", "", "NoSchedule"),)), True,
                     False, id="ds-not-network-unavailable-without-host-network"),
        pytest.param(puller(), node(taints=(Taint("node.kubernetes.io/out-of-service", "", "NoExecute"),)), True,
                     False, id="ds-not-out-of-service"),
        pytest.param(pod(), node(taints=(Taint("node.kubernetes.io/disk-pressure", "", "NoSchedule"),)), True, False,
                     id="plain-pod-under-disk-pressure-now"),
        pytest.param(pod(), node(taints=(Taint("node.kubernetes.io/disk-pressure", "", "NoSchedule"),)), False, True,
                     id="plain-pod-node-state-ignored-by-default"),
        pytest.param(puller(nodeSelector='{"nvidia.com/gpu.present": "true"}', tolerations=GPU_TOLERATION),
                     cpu_node(), False, False, id="gpu-puller-selector-skips-cpu"),
        pytest.param(puller(affinity=json.dumps(required(expr("nvidia.com/gpu.present", "Exists"))),
                            tolerations=GPU_TOLERATION), gpu_node(), False, True, id="gpu-puller-by-affinity"),
    ],
)  # fmt: skip
def test_where_the_daemonset_runs(placement: Placement, target: NodeInfo, now: bool, fits: bool) -> None:
    assert can_run_on(placement, target, include_transient=now) is fits


def test_the_daemonset_tolerations_are_the_controllers() -> None:
    assert [str(t) for t in DAEMONSET_TOLERATIONS] == [
        "node.kubernetes.io/not-ready:NoExecute op=Exists",
        "node.kubernetes.io/unreachable:NoExecute op=Exists",
        "node.kubernetes.io/disk-pressure:NoSchedule op=Exists",
        "node.kubernetes.io/memory-pressure:NoSchedule op=Exists",
        "node.kubernetes.io/pid-pressure:NoSchedule op=Exists",
        "node.kubernetes.io/unschedulable:NoSchedule op=Exists",
    ]
    assert set(DAEMONSET_TOLERATIONS) <= set(puller_placement(node_selector={}, affinity=None, tolerations=()).tolerations)


def test_a_cordoned_pool_is_explained() -> None:
    assert pool_misfit(pod(), [node("a", cordoned=True)], include_transient=True) == "every node of this pool is cordoned"
    assert str(misfit(pod(), node("a", cordoned=True), include_transient=True)) == "cordoned (spec.unschedulable)"


# -- KServe's merge -------------------------------------------------------------------------


def runtime(**spec: Any) -> PodScheduling:
    spec.setdefault("containers", [{"name": "kserve-container", "image": "quay.io/x/vllm:1"}])
    return read_pod_scheduling(spec, field="spec", source="ServingRuntime team-a/vllm")


def predictor(**spec: Any) -> PodScheduling:
    spec.setdefault("model", {"modelFormat": {"name": "vLLM"}, "runtime": "vllm"})
    return read_pod_scheduling(spec, field="spec.predictor", model_key="model", source="InferenceService team-a/m")


def model(limits: dict[str, Any] | None = None, requests: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"modelFormat": {"name": "vLLM"}, **container(limits, requests)}


TOL_GPU = {"key": GPU, "operator": "Exists", "effect": "NoSchedule"}
TOL_INFRA = {"key": "infra", "operator": "Exists"}


@pytest.mark.parametrize(
    ("rt", "component", "expected"),
    [
        pytest.param(runtime(nodeSelector={"a": "1", "b": "1"}), predictor(nodeSelector={"b": "2", "c": "2"}),
                     {"node_selector": (("a", "1"), ("b", "2"), ("c", "2"))}, id="node-selector-merges-component-wins"),
        pytest.param(runtime(tolerations=[TOL_GPU]), predictor(tolerations=[TOL_INFRA]),
                     {"tolerations": {"infra op=Exists"}}, id="tolerations-replaced-not-appended"),
        pytest.param(runtime(tolerations=[TOL_GPU]), predictor(tolerations=[]),
                     {"tolerations": {"nvidia.com/gpu:NoSchedule op=Exists"}}, id="empty-tolerations-keep-runtimes"),
        pytest.param(runtime(tolerations=[TOL_GPU]), predictor(),
                     {"tolerations": {"nvidia.com/gpu:NoSchedule op=Exists"}}, id="absent-tolerations-keep-runtimes"),
        pytest.param(runtime(affinity=required(expr("zone", "In", "a"))), predictor(affinity=required(expr("zone", "In", "b"))),
                     {"fits": {"zone": "b"}, "misses": {"zone": "a"}}, id="required-affinity-replaced"),
        pytest.param(runtime(affinity=required(expr("zone", "In", "a"))),
                     predictor(affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}),
                     {"fits": {"zone": "a"}, "misses": {"zone": "b"}}, id="preferred-only-keeps-runtime-required"),
        pytest.param(runtime(containers=[container({GPU: "1"}, name="kserve-container")]), predictor(),
                     {"resources": {GPU}}, id="runtime-container-gpu"),
        pytest.param(runtime(), predictor(model=model({GPU: "1"})), {"resources": {GPU}}, id="dashboard-model-gpu"),
        pytest.param(runtime(containers=[container({GPU: "1"}, {GPU: "1"}, name="kserve-container")]),
                     predictor(model=model({GPU: "0"}, {GPU: "0"})), {"resources": set()}, id="model-zero-cancels"),
        pytest.param(runtime(containers=[container({GPU: "1"}, name="kserve-container")]),
                     predictor(model=model(requests={GPU: "0"})), {"resources": {GPU}}, id="maps-merge-apart"),
        pytest.param(runtime(containers=[container(name="kserve-container"), container({"amd.com/gpu": "1"}, name="side")]),
                     predictor(), {"resources": {"amd.com/gpu"}}, id="runtime-other-containers"),
        pytest.param(runtime(containers=[container(name="kserve-container"),
                                         container({GPU: "1"}, name="transformer-container")]),
                     predictor(containers=[container({GPU: "0"}, name="transformer-container")]),
                     {"resources": set()}, id="transformer-container-merged"),
        pytest.param(runtime(), predictor(containers=[container({"intel.com/gpu": "1"}, name="extra")]),
                     {"resources": {"intel.com/gpu"}}, id="component-other-containers"),
        pytest.param(runtime(containers=[container({GPU: "1"}, name="other-main")]), predictor(),
                     {"resources": {GPU}}, id="not-kserve-container-still-counts"),
    ],
)  # fmt: skip
def test_kserve_merge(rt: PodScheduling, component: PodScheduling, expected: dict[str, Any]) -> None:
    merged = merge_kserve(component, rt)
    if "node_selector" in expected:
        assert merged.node_selector == expected["node_selector"]
    if "tolerations" in expected:
        assert {str(t) for t in merged.tolerations} == expected["tolerations"]
    if "resources" in expected:
        assert merged.resources == expected["resources"]
    if "fits" in expected:
        assert can_run_on(merged, node(labels=expected["fits"]))
        assert not can_run_on(merged, node(labels=expected["misses"]))


def test_an_inference_service_through_a_tolerating_runtime_lands_on_the_gpu_pool() -> None:
    merged = merge_kserve(predictor(model=model({GPU: "1"})), runtime(tolerations=[TOL_GPU]))
    assert matching_nodes(merged, [cpu_node("c"), gpu_node("g")]) == (gpu_node("g"),)
    assert pool_misfit(merged, [cpu_node("c")]) == "no node of this pool has nvidia.com/gpu"


def test_without_a_runtime_the_component_is_the_pod() -> None:
    transformer = read_pod_scheduling({"containers": [container({GPU: "1"})], "nodeSelector": {"a": "b"}},
                                      field="spec.transformer")
    assert merge_kserve(transformer, None) == Placement(node_selector=(("a", "b"),), resources=frozenset({GPU}))


# -- accelerator hints ----------------------------------------------------------------------

AMD_NODE = node("amd-0", labels=WORKER, extended=frozenset({"amd.com/gpu"}), taints=(Taint("amd.com/gpu", "", "NoSchedule"),))
NODES = (cpu_node("cpu-0"), gpu_node("gpu-0"), AMD_NODE)


@pytest.mark.parametrize(
    ("annotations", "nodes"),
    [
        pytest.param({}, {"cpu-0"}, id="no-hint-plain-pod"),
        pytest.param(None, {"cpu-0"}, id="no-annotations"),
        pytest.param({RECOMMENDED_ACCELERATORS: "[]"}, {"cpu-0"}, id="empty-list-plain-pod"),
        pytest.param({RECOMMENDED_ACCELERATORS: '["nvidia.com/gpu"]'}, {"gpu-0"}, id="cuda-to-the-tainted-gpu-pool"),
        pytest.param({RECOMMENDED_ACCELERATORS: '["amd.com/gpu", "nvidia.com/gpu"]'}, {"gpu-0", "amd-0"},
                     id="any-of-the-accelerators"),
        pytest.param({RECOMMENDED_ACCELERATORS: '["habana.ai/gaudi"]'}, set(), id="gaudi-nowhere"),
    ],
)  # fmt: skip
def test_accelerator_hints(annotations: Any, nodes: set[str]) -> None:
    placement = hint_placement(annotations, source="ImageStream redhat-ods-applications/rocm")
    assert {n.name for n in matching_nodes(placement, NODES)} == nodes


def test_a_rocm_image_on_a_cluster_without_amd_says_why() -> None:
    rocm = hint_placement({RECOMMENDED_ACCELERATORS: '["amd.com/gpu"]'})
    assert pool_misfit(rocm, NODES[:2]) == "no node of this pool has amd.com/gpu"


HINT_FIELD = f"metadata.annotations[{RECOMMENDED_ACCELERATORS}]"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("nvidia.com/gpu", f"{HINT_FIELD} is not a JSON list: 'nvidia.com/gpu' (", id="not-json"),
        pytest.param('{"nvidia.com/gpu": 1}', f"{HINT_FIELD} is not a JSON list", id="object"),
        pytest.param("[1]", f"{HINT_FIELD}[0] is not an extended resource name: 1", id="number"),
        pytest.param('["gpu"]', f"{HINT_FIELD}[0] is not an extended resource name: 'gpu'", id="no-domain"),
        pytest.param('["cpu"]', f"{HINT_FIELD}[0] is not an extended resource name: 'cpu'", id="native"),
        pytest.param(json.dumps([GPU] * (MAX_HINTS + 1)), f"{HINT_FIELD} has 17 entries, more than the 16 read",
                     id="too-many"),
        pytest.param(["nvidia.com/gpu"], f"{HINT_FIELD} is not a string: list", id="not-a-string"),
        pytest.param("[" * 100000, f"{HINT_FIELD} is not a JSON list", id="deep-nesting"),
    ],
)  # fmt: skip
def test_malformed_hints_are_clear_problems(value: Any, message: str) -> None:
    with pytest.raises(PlacementError) as caught:
        hint_placement({RECOMMENDED_ACCELERATORS: value}, source="ImageStream redhat-ods-applications/rocm")
    assert str(caught.value).startswith(f"ImageStream redhat-ods-applications/rocm: {message}")


# -- malformed and oversized input ------------------------------------------------------------

S = "spec.template.spec"
TERMS = f"{S}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param("x", f"{S} is not an object: str", id="spec"),
        pytest.param({"tolerations": "x"}, f"{S}.tolerations is not a list: str", id="tolerations"),
        pytest.param({"tolerations": [1]}, f"{S}.tolerations[0] is not an object: int", id="toleration"),
        pytest.param({"tolerations": [{"key": 1}]}, f"{S}.tolerations[0].key is not a string: int", id="toleration-key"),
        pytest.param({"tolerations": [{"key": "k", "tolerationSeconds": "60"}]},
                     f"{S}.tolerations[0].tolerationSeconds is not an integer: str", id="toleration-seconds"),
        pytest.param({"nodeSelector": ["a"]}, f"{S}.nodeSelector is not an object: list", id="selector"),
        pytest.param({"nodeSelector": {"a": 1}}, f"{S}.nodeSelector[a] is not a string: int", id="selector-value"),
        pytest.param({"nodeSelector": {str(i): "x" for i in range(65)}},
                     f"{S}.nodeSelector has 65 entries, more than the 64 read", id="too-many-labels"),
        pytest.param({"affinity": "x"}, f"{S}.affinity is not an object: str", id="affinity"),
        pytest.param({"affinity": {"nodeAffinity": []}}, f"{S}.affinity.nodeAffinity is not an object: list",
                     id="node-affinity"),
        pytest.param({"affinity": required(*[expr("a", "Exists")] * 33)}, f"{TERMS} has 33 entries, more than the 32",
                     id="too-many-terms"),
        pytest.param({"affinity": required({"matchExpressions": [{"key": "a", "operator": "Exists"}] * 33})},
                     f"{TERMS}[0].matchExpressions has 33 entries", id="too-many-expressions"),
        pytest.param({"affinity": required({"matchFields": "x"})}, f"{TERMS}[0].matchFields is not a list: str",
                     id="fields-not-list"),
        pytest.param({"affinity": required(expr("a", "In", *[str(i) for i in range(65)]))},
                     f"{TERMS}[0].matchExpressions[0].values has 65 entries", id="too-many-values"),
        pytest.param({"affinity": required({"matchExpressions": [{"key": "a", "operator": "In", "values": [1]}]})},
                     f"{TERMS}[0].matchExpressions[0].values[0] is not a string: int", id="value-type"),
        pytest.param({"affinity": required({"matchExpressions": [{"key": None, "operator": 3}]})},
                     f"{TERMS}[0].matchExpressions[0].operator is not a string: int", id="operator-type"),
        pytest.param({"containers": {"name": "x"}}, f"{S}.containers is not a list: dict", id="containers"),
        pytest.param({"initContainers": [{"name": 3}]}, f"{S}.initContainers[0].name is not a string: int",
                     id="container-name"),
        pytest.param({"containers": [{"name": "wb", "resources": []}]},
                     f"{S}.containers[wb].resources is not an object: list", id="resources"),
        pytest.param({"containers": [{"name": "wb", "resources": {"limits": "1"}}]},
                     f"{S}.containers[wb].resources.limits is not an object: str", id="limits"),
        pytest.param({"containers": [container({GPU: "lots"}, name="wb")]},
                     f"{S}.containers[wb].resources.limits[nvidia.com/gpu] is not a quantity: 'lots'", id="quantity"),
        pytest.param({"containers": [container({f"x{i}.com/r": "1" for i in range(33)}, name="wb")]},
                     f"{S}.containers[wb].resources.limits has 33 entries", id="too-many-resources"),
    ],
)  # fmt: skip
def test_malformed_pod_specs_name_the_object_and_field(spec: Any, message: str) -> None:
    with pytest.raises(PlacementError) as caught:
        read_pod_scheduling(spec, field=S, source="Notebook team-a/wb")
    assert str(caught.value).startswith(f"Notebook team-a/wb: {message}")
    assert isinstance(caught.value, ValueError)


def test_missing_and_null_fields_are_no_constraint() -> None:
    spec = {"nodeSelector": None, "affinity": None, "tolerations": None, "containers": [{"name": "x", "resources": None}]}
    assert read_pod_scheduling(spec, field=S).placement() == Placement()
    assert read_pod_scheduling(None, field=S) == PodScheduling()
    assert pod(containers=[container({"cpu": "lots"})]) == Placement()  # native resources are not read


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not json", "spec.affinity is not a JSON object: 'not json' ("),
        ("[1]", "spec.affinity is not a JSON object: '[1]'"),
        ('{"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": "x"}}}',
         "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms is not a list"),
        (7, "spec.affinity is not a string: int"),
    ],
)  # fmt: skip
def test_malformed_affinity_json(raw: Any, message: str) -> None:
    with pytest.raises(PlacementError) as caught:
        read_affinity_json(raw, field="spec.affinity", source="KubernetesImagePuller gpu/image-puller")
    assert str(caught.value).startswith(f"KubernetesImagePuller gpu/image-puller: {message}")


@pytest.mark.parametrize("raw", [None, "", "null", "{}", '{"nodeAffinity": null}', '{"podAffinity": {}}'])
def test_affinity_json_without_node_affinity(raw: Any) -> None:
    assert read_affinity_json(raw, field="spec.affinity") is None


@pytest.mark.parametrize(("raw", "count"), [(None, 0), ("", 0), ("null", 0), ("[]", 0), (GPU_TOLERATION, 1)])
def test_tolerations_json(raw: Any, count: int) -> None:
    assert len(read_tolerations_json(raw, field="spec.tolerations")) == count


# -- values: canonical, hashable, cheap to intern ---------------------------------------------


def test_equal_constraints_give_equal_values_whatever_their_order() -> None:
    a = pod(nodeSelector={"a": "1", "b": "2"}, tolerations=[TOL_GPU, TOL_INFRA, TOL_GPU],
            affinity=required(expr("z", "In", "b", "a"), expr("y", "Exists")))
    b = pod(nodeSelector={"b": "2", "a": "1"}, tolerations=[TOL_INFRA, TOL_GPU],
            affinity=required(expr("y", "Exists"), expr("z", "In", "a", "b", "a")))
    assert a == b and hash(a) == hash(b)
    interned: dict[Placement, Placement] = {}
    assert interned.setdefault(b, b) is b and interned.setdefault(a, a) is b
    assert Placement(node_selector=(("b", "2"), ("a", "1"))) == Placement(node_selector=(("a", "1"), ("b", "2")))
    assert a != pod(nodeSelector={"a": "1"})


def test_describe() -> None:
    assert Placement().describe() == "any node"
    assert hint_placement({RECOMMENDED_ACCELERATORS: '["amd.com/gpu"]'}).describe() == (
        "tolerates every taint; needs one of amd.com/gpu"
    )


def test_resources_overlay_and_need() -> None:
    base = Resources(requests=((GPU, True),), limits=((GPU, True), ("amd.com/gpu", True)))
    top = Resources(limits=((GPU, False),))
    assert base.overlay(top).needed() == {GPU, "amd.com/gpu"}  # the request still asks for one
    assert Resources(limits=((GPU, False),)).needed() == frozenset()


# -- node groups and the suggested puller ---------------------------------------------------


def cluster() -> list[NodeInfo]:
    gpu_labels = {"nvidia.com/gpu.present": "true", "nvidia.com/cuda.driver.major": "550",
                  "node.kubernetes.io/instance-type": "g5.2xlarge"}
    return [
        cpu_node("cpu-0", **{"kubernetes.io/hostname": "cpu-0"}),
        cpu_node("cpu-1", **{"kubernetes.io/hostname": "cpu-1"}),
        gpu_node("gpu-0", **gpu_labels, **{"kubernetes.io/hostname": "gpu-0", "topology.kubernetes.io/zone": "a"}),
        node("gpu-1", labels={**WORKER, **gpu_labels, "kubernetes.io/hostname": "gpu-1"}, extended=frozenset({GPU}),
             taints=(GPU_TAINT, Taint("node.kubernetes.io/disk-pressure", "", "NoSchedule"))),
        node("infra-0", labels={"node-role.kubernetes.io/infra": "", "kubernetes.io/hostname": "infra-0"},
             taints=(Taint("node-role.kubernetes.io/infra", "reserved", "NoSchedule"),)),
    ]


def test_uncovered_nodes_form_pools_with_selectors_that_pick_them() -> None:
    nodes = cluster()
    groups = uncovered_groups(nodes, [puller(nodeSelector=json.dumps(WORKER))])
    assert [(g.name, g.nodes, g.node_selector, g.exact) for g in groups] == [
        ("nvidia-gpu", ("gpu-0", "gpu-1"), (("nvidia.com/gpu.present", "true"),), True),
        ("infra", ("infra-0",), (("node-role.kubernetes.io/infra", ""),), True),
    ]
    assert groups[0].taints == (GPU_TAINT,) and groups[0].extended == {GPU}
    assert uncovered_groups(nodes, [puller(tolerations='[{"operator": "Exists"}]')]) == ()


def test_the_suggested_puller_covers_exactly_its_group() -> None:
    nodes = cluster()
    gpu, infra = uncovered_groups(nodes, [puller(nodeSelector=json.dumps(WORKER))])
    cr = suggest_puller(gpu, images="vllm=quay.io/x/vllm:1;\n")
    assert cr == {
        "apiVersion": "che.eclipse.org/v1alpha1",
        "kind": "KubernetesImagePuller",
        "metadata": {"name": "image-puller", "namespace": "image-puller-nvidia-gpu"},
        "spec": {"images": "vllm=quay.io/x/vllm:1;\n",
                 "nodeSelector": '{"nvidia.com/gpu.present": "true"}',
                 "tolerations": '[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]'},
    }
    for group in (gpu, infra):
        applied = read_puller({**suggest_puller(group, images="a=b"), "metadata": {
            "name": "image-puller", "namespace": "x", "resourceVersion": "1"}})
        assert [n.name for n in matching_nodes(applied.placement(), nodes, include_transient=True)] == list(group.nodes)


def test_a_single_node_group_is_not_selected_by_its_hostname() -> None:
    only = node("a", labels={"kubernetes.io/hostname": "a", "pool": "x"})
    other = node("b", labels={"kubernetes.io/hostname": "b", "pool": "y"})
    (group,) = group_nodes([only], among=[only, other])
    assert group.node_selector == (("pool", "x"),)
    twin = node("c", labels={"kubernetes.io/hostname": "c", "pool": "x"})
    (group,) = group_nodes([only], among=[only, twin])  # only the hostname differs: no selector
    assert (group.node_selector, group.exact) == ((), False)


def test_a_group_no_label_tells_apart_is_marked_inexact() -> None:
    a, b = node("a", labels={"k": "v"}, taints=(GPU_TAINT,)), node("b", labels={"k": "v"})
    (group,) = group_nodes([a], among=[a, b])
    assert (group.node_selector, group.exact) == ((), False)
    assert group.name == "gpu"


def test_group_names_are_unique_labels() -> None:
    a = node("a", labels={"pool": "x"}, taints=(Taint("team", "a", "NoSchedule"),))
    b = node("b", labels={"pool": "y"}, taints=(Taint("team", "b", "NoSchedule"),))
    assert [g.name for g in group_nodes([a, b], among=[a, b])] == ["team", "team-2"]


def test_a_suggestion_never_has_an_empty_list() -> None:
    (group,) = group_nodes([cpu_node()], among=[cpu_node()])
    with pytest.raises(ValueError, match="default images"):
        suggest_puller(group, images=" ")
    assert "nodeSelector" not in suggest_puller(group, images="a=b")["spec"]


def test_a_pod_specs_tolerations_past_the_bound_are_not_read():
    """Fewer tolerations can only mean fewer nodes: the pod is never placed where it could not run."""
    spec = {"containers": [container()], "tolerations": [{"key": f"k{i}", "operator": "Exists"} for i in range(100)]}
    assert len(read_pod_scheduling(spec, field="spec").tolerations) == MAX_TOLERATIONS


PLAIN_CONTAINER = {"name": "wb", "image": "x", "resources": {"limits": {"cpu": "2", "memory": "8Gi"}}}


@pytest.mark.parametrize("spec", [
    {},
    {"containers": [PLAIN_CONTAINER]},
    {"containers": [PLAIN_CONTAINER, {"name": "proxy", "image": "y"}], "tolerations": [], "nodeSelector": {},
     "affinity": {}},
    {"initContainers": [PLAIN_CONTAINER], "containers": [], "tolerations": None},
])
def test_a_pod_spec_that_says_nothing_about_placement_runs_anywhere(spec):
    assert read_pod_scheduling(spec, field="spec") == PodScheduling()
    assert read_pod_scheduling(spec, field="spec").placement() == Placement()


@pytest.mark.parametrize(("spec", "field"), [
    ({"tolerations": {}}, "spec.tolerations"),
    ({"nodeSelector": []}, "spec.nodeSelector"),
    ({"affinity": []}, "spec.affinity"),
    ({"containers": [{"name": "wb", "resources": {"limits": []}}]}, "spec.containers[wb].resources.limits"),
])
def test_an_empty_value_of_the_wrong_type_is_still_an_error_naming_the_field(spec, field):
    with pytest.raises(PlacementError) as caught:
        read_pod_scheduling(spec, field="spec")
    assert caught.value.field == field


def test_an_empty_looking_spec_that_asks_for_a_gpu_is_not_plain():
    spec = {"tolerations": [], "containers": [{"name": "wb", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}
    assert read_pod_scheduling(spec, field="spec").placement().resources == frozenset({"nvidia.com/gpu"})
