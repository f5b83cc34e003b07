"""Sources and resolution: object JSON in, usages out. Plain dicts, no cluster."""

from __future__ import annotations

import pytest

from agent.model import Role, State, StreamTag, Taint
from agent.placement import Placement
from agent.refs import parse_reference
from agent.resolve import resolve
from agent.sizes import SizeReport
from agent.sources import Observation
from agent.sources.imagestreams import read_image_stream
from agent.sources.nodes import MAX_EXTENDED, MAX_TAINTS, NodeFindings, read_node
from agent.sources.notebooks import read_notebook
from agent.sources.serving import (
    read_inference_service,
    read_llm_inference_service,
    read_serving_runtime,
    read_template,
)

APPS = "redhat-ods-applications"
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
INTERNAL = "image-registry.openshift-image-registry.svc:5000"


def stream(ns: str = APPS, *, hidden: bool = False, label: str = "opendatahub.io/notebook-image") -> dict:
    return {
        "metadata": {"name": "pytorch", "namespace": ns, "labels": {label: "true"},
                     "annotations": {"opendatahub.io/notebook-image-hidden": "true"} if hidden else {}},
        "spec": {"tags": [
            {"name": "2025.1", "annotations": {"opendatahub.io/workbench-image-recommended": "true"},
             "from": {"kind": "DockerImage", "name": "quay.io/modh/pytorch:2025.1"}},
            {"name": "2024.1", "annotations": {"opendatahub.io/image-tag-outdated": "true"},
             "from": {"kind": "DockerImage", "name": f"quay.io/modh/pytorch@{D2}"}},
        ]},
        "status": {"dockerImageRepository": f"{INTERNAL}/{ns}/pytorch", "tags": [
            {"tag": "2025.1", "items": [{"dockerImageReference": f"quay.io/modh/pytorch@{D1}", "image": D1}]},
        ]},
    }


RUNNING = {"readyReplicas": 1, "conditions": [], "containerState": {"running": {"startedAt": "2026-11-20T10:00:00Z"}}}


def notebook(name: str = "wb", ns: str = "team-a", *, image: str, stopped: str | None = None,
             selection: str | None = None, status: dict | None = None) -> dict:
    notes = {}
    if stopped is not None:
        notes["kubeflow-resource-stopped"] = stopped
    if selection:
        notes["notebooks.opendatahub.io/last-image-selection"] = selection
    return {
        "metadata": {"name": name, "namespace": ns, "annotations": notes},
        "spec": {"template": {"spec": {"containers": [
            {"name": name, "image": image},
            {"name": "kube-rbac-proxy", "image": "registry.redhat.io/openshift4/ose-kube-rbac-proxy-rhel9:v4.17"},
        ]}}},
        "status": RUNNING if status is None else status,
    }


def observation(*, streams=(), notebooks=(), runtimes=(), isvcs=()) -> Observation:
    o = Observation(applications_namespace=APPS)
    for s in streams:
        o.streams.extend(read_image_stream(s, applications_namespace=APPS))
    for nb in notebooks:
        o.workloads.extend(read_notebook(nb))
    for kind, obj in runtimes:
        o.serving.extend(read_serving_runtime(obj, kind=kind, applications_namespace=APPS))
    for isvc in isvcs:
        o.serving.extend(read_inference_service(isvc))
    return o


# -- ImageStreams ---------------------------------------------------------------------------


def test_stream_tags_resolve_to_the_status_image_with_their_offer_state():
    found = read_image_stream(stream(), applications_namespace=APPS)
    states = {str(u.image): u.state for u in found.usages}
    assert states == {f"quay.io/modh/pytorch@{D1}": State.RECOMMENDED, f"quay.io/modh/pytorch@{D2}": State.OUTDATED}
    assert found.stream_tags[StreamTag(APPS, "pytorch", "2025.1")].digest == D1
    assert set(found.aliases) == {f"{INTERNAL}/{APPS}/pytorch:2025.1", "quay.io/modh/pytorch:2025.1",
                                  f"{INTERNAL}/{APPS}/pytorch:2024.1"}


def test_a_hidden_stream_offers_nothing():
    found = read_image_stream(stream(hidden=True), applications_namespace=APPS)
    assert {u.state for u in found.usages} == {State.OUTDATED}


def test_project_streams_earn_no_baseline_but_still_resolve_aliases():
    found = read_image_stream(stream("team-a"), applications_namespace=APPS)
    assert found.usages == []
    assert StreamTag("team-a", "pytorch", "2025.1") in found.stream_tags
    # the alias is claimed by the project stream, so it is scoped to its namespace
    claims = found.aliases["quay.io/modh/pytorch:2025.1"]  # namespace -> (winning stream tag, image)
    assert {ns: tag for ns, (tag, _) in claims.items()} == {"team-a": StreamTag("team-a", "pytorch", "2025.1")}
    inv = resolve(observation(streams=[stream("team-a")], notebooks=[
        notebook("mine", "team-a", image="quay.io/modh/pytorch:2025.1"),
        notebook("theirs", "team-b", image="quay.io/modh/pytorch:2025.1"),
    ]))
    assert workbench_images(inv) == {"mine": f"quay.io/modh/pytorch@{D1}", "theirs": "quay.io/modh/pytorch:2025.1"}


def test_runtime_image_streams_are_pipeline_runtimes():
    found = read_image_stream(stream(label="opendatahub.io/runtime-image"), applications_namespace=APPS)
    assert {u.role for u in found.usages} == {Role.PIPELINE_RUNTIME}


# -- Notebooks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stopped", "state"),
    [(None, State.RUNNING), ("2026-11-20T10:00:00Z", State.STOPPED), ("odh-notebook-controller-lock", State.RUNNING)],
    ids=["running", "stopped", "about-to-start"],
)
def test_notebook_state_follows_the_stopped_annotation(stopped, state):
    found = read_notebook(notebook(image="quay.io/a/wb:1", stopped=stopped))
    assert {u.state for u in found.usages} == {state}


PULLING = {"readyReplicas": 0, "conditions": [],
           "containerState": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}


@pytest.mark.parametrize(
    ("stopped", "status", "state"),
    [
        (None, PULLING, State.STARTING),  # wanted, stuck pulling its image: what pre-pulling is for
        (None, {}, State.STARTING),  # just created: the controller has not written a status yet
        (None, {"readyReplicas": 0, "conditions": [], "containerState": {}}, State.STARTING),
        (None, {"readyReplicas": 1, "conditions": [], "containerState": {}}, State.RUNNING),
        (None, {"readyReplicas": 0, "conditions": [], "containerState": {"running": {}}}, State.RUNNING),
        (None, {"readyReplicas": True, "containerState": "running"}, State.STARTING),  # garbage is not running
        ("odh-notebook-controller-lock", PULLING, State.STARTING),
        ("2026-11-20T10:00:00Z", RUNNING, State.STOPPED),  # being stopped: the stop annotation wins
    ],
    ids=["pulling", "no-status", "not-ready", "ready-replica", "container-running", "garbage", "lock-pulling",
         "stopping"],
)
def test_a_notebook_runs_only_when_its_status_says_so(stopped, status, state):
    found = read_notebook(notebook(image="quay.io/a/wb:1", stopped=stopped, status=status))
    assert {u.state for u in found.usages} == {state}


def test_notebook_workbench_and_sidecar_roles():
    found = read_notebook(notebook(image="quay.io/a/wb:1"))
    assert [(u.role, str(u.image)) for u in found.usages] == [
        (Role.WORKBENCH, "quay.io/a/wb:1"),
        (Role.SIDECAR, "registry.redhat.io/openshift4/ose-kube-rbac-proxy-rhel9:v4.17"),
    ]


def test_a_hostile_notebook_image_is_rejected_naming_object_and_field():
    found = read_notebook(notebook("sneaky", image="quay.io/evil/miner:latest;pwn=quay.io/evil/x"))
    assert [str(u.image) for u in found.usages] == ["registry.redhat.io/openshift4/ose-kube-rbac-proxy-rhel9:v4.17"]
    (rejection,) = found.rejections
    assert str(rejection.source) == "Notebook team-a/sneaky"
    assert rejection.field == "spec.template.spec.containers[sneaky].image"
    assert "';'" in rejection.reason


def test_non_string_images_and_garbage_shapes_do_not_crash():
    weird = {"metadata": {"name": "w", "namespace": "t", "annotations": ["not", "a", "map"]},
             "spec": {"template": {"spec": {"containers": [{"name": "w", "image": 42}, "junk", None]}}}}
    found = read_notebook(weird)
    assert found.usages == [] and [r.reason for r in found.rejections] == ["is not a string"]


# -- aliases --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [f"{INTERNAL}/{APPS}/pytorch:2025.1", "quay.io/modh/pytorch:2025.1", f"quay.io/modh/pytorch@{D1}"],
    ids=["internal-registry", "spec-from", "resolved-digest"],
)
def test_one_image_under_any_spelling_counts_as_the_stream_image(image):
    inv = resolve(observation(streams=[stream()], notebooks=[notebook(image=image, selection="pytorch:2025.1")]))
    workbench = [u for u in inv.usages if u.role is Role.WORKBENCH and u.source.kind == "Notebook"]
    assert [str(u.image) for u in workbench] == [f"quay.io/modh/pytorch@{D1}"]


def workbench_images(inv) -> dict[str, str]:
    return {u.source.name: str(u.image) for u in inv.usages if u.source.kind == "Notebook" and u.role is Role.WORKBENCH}


def tenant_stream(ns: str, name: str, *, from_name: str, resolved: str, tag: str = "1") -> dict:
    return {
        "metadata": {"name": name, "namespace": ns, "labels": {"opendatahub.io/notebook-image": "true"}},
        "spec": {"tags": [{"name": tag, "from": {"kind": "DockerImage", "name": from_name}}]},
        "status": {"dockerImageRepository": f"{INTERNAL}/{ns}/{name}",
                   "publicDockerImageRepository": f"default-route.apps.example.com/{ns}/{name}",
                   "tags": [{"tag": tag,
                             "items": [{"dockerImageReference": resolved, "image": resolved.partition("@")[2]}]}]},
    }


def test_a_project_stream_cannot_alias_other_namespaces():
    evil = tenant_stream("evil", "vllm", from_name="registry.corp/ml/vllm:1", resolved=f"quay.io/evil/miner@{D2}")
    inv = resolve(observation(streams=[evil], notebooks=[
        notebook("victim", "team-a", image="registry.corp/ml/vllm:1"),
        notebook("internal", "team-a", image=f"{INTERNAL}/evil/vllm:1"),
        notebook("public", "team-a", image="default-route.apps.example.com/evil/vllm:1"),
        notebook("shared", APPS, image="registry.corp/ml/vllm:1"),
    ]))
    assert workbench_images(inv) == {
        "victim": "registry.corp/ml/vllm:1",
        "internal": f"{INTERNAL}/evil/vllm:1",
        "public": "default-route.apps.example.com/evil/vllm:1",
        "shared": "registry.corp/ml/vllm:1",
    }
    assert f"quay.io/evil/miner@{D2}" not in {str(u.image) for u in inv.usages}


def test_a_project_stream_aliases_its_own_namespace():
    shared = tenant_stream(APPS, "vllm", from_name="registry.corp/ml/vllm:1", resolved=f"registry.corp/ml/vllm@{D1}")
    own = tenant_stream("team-a", "vllm", from_name="registry.corp/ml/vllm:1", resolved=f"registry.corp/ml/vllm@{D2}")
    for streams in ([shared, own], [own, shared]):
        inv = resolve(observation(streams=streams, notebooks=[
            notebook("a", "team-a", image="registry.corp/ml/vllm:1"),
            notebook("a-internal", "team-a", image=f"{INTERNAL}/team-a/vllm:1"),
            notebook("b", "team-b", image="registry.corp/ml/vllm:1"),
        ]))
        # team-a's own stream wins for team-a; everyone else gets the applications namespace's
        assert workbench_images(inv) == {
            "a": f"registry.corp/ml/vllm@{D2}",
            "a-internal": f"registry.corp/ml/vllm@{D2}",
            "b": f"registry.corp/ml/vllm@{D1}",
        }


def test_alias_resolution_does_not_depend_on_list_order():
    # two streams in one scope claim one spelling: the lexicographically smallest stream wins
    alpha = tenant_stream(APPS, "alpha", from_name="registry.corp/ml/vllm:1", resolved=f"registry.corp/ml/vllm@{D1}")
    beta = tenant_stream(APPS, "beta", from_name="registry.corp/ml/vllm:1", resolved=f"registry.corp/ml/vllm@{D2}")
    results = []
    for streams in ([alpha, beta], [beta, alpha]):
        inv = resolve(observation(streams=streams,
                                  notebooks=[notebook("wb", "team-a", image="registry.corp/ml/vllm:1")]))
        results.append(workbench_images(inv))
    assert results == [{"wb": f"registry.corp/ml/vllm@{D1}"}] * 2


def test_last_image_selection_only_trusts_the_applications_or_own_namespace():
    evil = tenant_stream("evil", "pytorch", from_name="quay.io/x/unused:1", resolved=f"quay.io/evil/miner@{D2}",
                         tag="2025.1")
    other_host = "image-registry.openshift-image-registry.svc.cluster.local:5000/evil/pytorch:2025.1"
    nb = notebook("wb", "team-a", image=other_host, selection="pytorch:2025.1")
    nb["metadata"]["annotations"]["opendatahub.io/workbench-image-namespace"] = "evil"
    own = notebook("wb", "evil", image=other_host, selection="pytorch:2025.1")
    own["metadata"]["annotations"]["opendatahub.io/workbench-image-namespace"] = "evil"
    assert workbench_images(resolve(observation(streams=[evil], notebooks=[nb]))) == {"wb": other_host}
    assert workbench_images(resolve(observation(streams=[evil], notebooks=[own]))) == {"wb": f"quay.io/evil/miner@{D2}"}


def test_last_image_selection_ties_an_unlisted_internal_registry_host():
    other_host = f"image-registry.openshift-image-registry.svc.cluster.local:5000/{APPS}/pytorch:2025.1"
    inv = resolve(observation(streams=[stream()], notebooks=[notebook(image=other_host, selection="pytorch:2025.1")]))
    assert f"quay.io/modh/pytorch@{D1}" in {str(u.image) for u in inv.usages if u.source.kind == "Notebook"}


# -- serving ------------------------------------------------------------------------------


def runtime(name: str, ns: str = "", *, image: str, formats=(), disabled: bool = False, created: str | None = None,
            **spec) -> tuple[str, dict]:
    kind = "ServingRuntime" if ns else "ClusterServingRuntime"
    return kind, {
        "metadata": {"name": name, **({"namespace": ns} if ns else {}),
                     **({"creationTimestamp": created} if created else {})},
        "spec": {"disabled": disabled, "supportedModelFormats": list(formats),
                 "containers": [{"name": "kserve-container", "image": image}], **spec},
    }


def isvc(name: str, ns: str = "team-a", *, ready: bool = True, **model) -> dict:
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"predictor": {"model": model}},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def served(inv) -> dict[str, str]:
    return {u.source.name: str(u.image) for u in inv.usages if u.source.kind == "InferenceService" and u.role is Role.SERVING_RUNTIME}


def test_named_runtime_prefers_the_namespace_then_the_cluster():
    inv = resolve(observation(
        runtimes=[runtime("vllm", "team-a", image="quay.io/modh/vllm:ns"), runtime("vllm", image="quay.io/modh/vllm:cluster")],
        isvcs=[isvc("a", runtime="vllm"), isvc("b", ns="team-b", runtime="vllm")],
    ))
    assert served(inv) == {"a": "quay.io/modh/vllm:ns", "b": "quay.io/modh/vllm:cluster"}


def test_runtime_version_replaces_the_tag_unless_pinned_by_digest():
    inv = resolve(observation(
        runtimes=[runtime("tagged", "team-a", image="quay.io/modh/vllm:1.0"),
                  runtime("pinned", "team-a", image=f"quay.io/modh/vllm@{D1}")],
        isvcs=[isvc("a", runtime="tagged", runtimeVersion="2.0"), isvc("b", runtime="pinned", runtimeVersion="2.0")],
    ))
    assert served(inv) == {"a": "quay.io/modh/vllm:2.0", "b": f"quay.io/modh/vllm@{D1}"}


def test_model_image_overrides_the_runtime_image():
    inv = resolve(observation(runtimes=[runtime("rt", "team-a", image="quay.io/x/rt:1")],
                              isvcs=[isvc("a", runtime="rt", image="quay.io/x/custom:9")]))
    assert served(inv) == {"a": "quay.io/x/custom:9"}


def test_auto_select_picks_the_highest_priority_auto_selectable_runtime():
    sk = {"name": "sklearn", "autoSelect": True}
    inv = resolve(observation(
        runtimes=[runtime("low", image="quay.io/x/low:1", formats=[{**sk, "priority": 1}]),
                  runtime("high", image="quay.io/x/high:1", formats=[{**sk, "priority": 2}]),
                  runtime("off", image="quay.io/x/off:1", formats=[{**sk, "priority": 9}], disabled=True),
                  runtime("manual", image="quay.io/x/manual:1", formats=[{"name": "sklearn", "autoSelect": False, "priority": 5}])],
        isvcs=[isvc("a", modelFormat={"name": "sklearn"})],
    ))
    assert served(inv) == {"a": "quay.io/x/high:1"}


def auto(fmt: str = "vLLM", **extra) -> dict:
    return {"name": fmt, "autoSelect": True, **extra}


def test_auto_select_prefers_namespace_runtimes_even_over_a_higher_priority_cluster_runtime():
    inv = resolve(observation(
        runtimes=[runtime("cluster", image="quay.io/x/cluster:1", formats=[auto(priority=100)]),
                  runtime("mine", "team-a", image="quay.io/x/mine:1", formats=[auto(priority=1)]),
                  runtime("theirs", "team-b", image="quay.io/x/theirs:1", formats=[auto(priority=50)])],
        isvcs=[isvc("a", modelFormat={"name": "vLLM"}), isvc("c", ns="team-c", modelFormat={"name": "vLLM"})],
    ))
    assert served(inv) == {"a": "quay.io/x/mine:1", "c": "quay.io/x/cluster:1"}


def test_auto_select_ranks_an_unset_priority_after_any_set_one():
    inv = resolve(observation(
        runtimes=[runtime("aaa-unset", "team-a", image="quay.io/x/unset:1", formats=[auto()]),
                  runtime("zzz-low", "team-a", image="quay.io/x/low:1", formats=[auto(priority=1)])],
        isvcs=[isvc("a", modelFormat={"name": "vLLM"})],
    ))
    assert served(inv) == {"a": "quay.io/x/low:1"}


def test_auto_select_ties_go_to_the_lowest_protocol_then_the_newest_then_the_name():
    def pick(*runtimes) -> str:
        inv = resolve(observation(runtimes=list(runtimes), isvcs=[isvc("a", modelFormat={"name": "vLLM"})]))
        return served(inv)["a"]

    assert pick(runtime("b", "team-a", image="quay.io/x/b:1", formats=[auto()]),
                runtime("a", "team-a", image="quay.io/x/a:1", formats=[auto()])) == "quay.io/x/a:1"
    assert pick(runtime("a", "team-a", image="quay.io/x/old:1", formats=[auto()], created="2025-01-01T00:00:00Z"),
                runtime("b", "team-a", image="quay.io/x/new:1", formats=[auto()], created="2026-01-01T00:00:00Z"),
                ) == "quay.io/x/new:1"
    assert pick(runtime("a", "team-a", image="quay.io/x/v2:1", formats=[auto()], protocolVersions=["v2"],
                        created="2026-01-01T00:00:00Z"),
                runtime("b", "team-a", image="quay.io/x/v1:1", formats=[auto()], protocolVersions=["v2", "v1"],
                        created="2025-01-01T00:00:00Z"),
                ) == "quay.io/x/v1:1"


@pytest.mark.parametrize(
    ("model_version", "runtime_version", "matches"),
    [("2", "2", True), ("2", "3", False), ("2", None, False), (None, "2", True), (None, None, True)],
    ids=["same-version", "other-version", "model-versioned-runtime-not", "model-unversioned", "neither"],
)
def test_auto_select_matches_format_versions_as_kserve_labels_do(model_version, runtime_version, matches):
    fmt = auto("onnx", **({"version": runtime_version} if runtime_version else {}))
    model = {"name": "onnx", **({"version": model_version} if model_version else {})}
    inv = resolve(observation(runtimes=[runtime("ovms", "team-a", image="quay.io/x/ovms:1", formats=[fmt])],
                              isvcs=[isvc("a", modelFormat=model)]))
    assert served(inv) == ({"a": "quay.io/x/ovms:1"} if matches else {})


def test_auto_select_format_names_are_case_sensitive():
    inv = resolve(observation(runtimes=[runtime("rt", "team-a", image="quay.io/x/rt:1", formats=[auto("vLLM")])],
                              isvcs=[isvc("a", modelFormat={"name": "vllm"}), isvc("b", modelFormat={"name": "vLLM"})]))
    assert served(inv) == {"b": "quay.io/x/rt:1"}


def test_auto_select_never_picks_a_multi_model_runtime():
    inv = resolve(observation(
        runtimes=[runtime("mesh", "team-a", image="quay.io/x/mesh:1", formats=[auto(priority=9)], multiModel=True),
                  runtime("single", image="quay.io/x/single:1", formats=[auto(priority=1)], multiModel=False)],
        isvcs=[isvc("a", modelFormat={"name": "vLLM"})],
    ))
    assert served(inv) == {"a": "quay.io/x/single:1"}


def test_auto_select_filters_by_protocol_version_defaulting_to_v1():
    inv = resolve(observation(
        runtimes=[runtime("v2-only", "team-a", image="quay.io/x/v2:1", formats=[auto(priority=9)],
                          protocolVersions=["v2"]),
                  runtime("any", "team-a", image="quay.io/x/any:1", formats=[auto(priority=1)])],
        isvcs=[isvc("default", modelFormat={"name": "vLLM"}),
               isvc("v2", modelFormat={"name": "vLLM"}, protocolVersion="v2"),
               isvc("grpc", modelFormat={"name": "vLLM"}, protocolVersion="grpc-v2")],
    ))
    assert served(inv) == {"default": "quay.io/x/any:1", "v2": "quay.io/x/v2:1", "grpc": "quay.io/x/any:1"}


def test_auto_select_matches_multi_node_runtimes_only_to_multi_node_services():
    worker = {"containers": [{"name": "worker-container", "image": "quay.io/x/multi:1"}]}
    single = isvc("single", modelFormat={"name": "vLLM"})
    multi = isvc("multi", modelFormat={"name": "vLLM"})
    multi["spec"]["predictor"]["workerSpec"] = {}
    inv = resolve(observation(
        runtimes=[runtime("multi", "team-a", image="quay.io/x/multi:1", formats=[auto(priority=9)], workerSpec=worker),
                  runtime("single", "team-a", image="quay.io/x/single:1", formats=[auto(priority=1)])],
        isvcs=[single, multi],
    ))
    assert served(inv) == {"single": "quay.io/x/single:1", "multi": "quay.io/x/multi:1"}


def test_the_main_container_is_the_kserve_container_never_an_init_or_worker_container():
    inv = resolve(observation(
        runtimes=[runtime("rt", "team-a", image="quay.io/x/main:1",
                          initContainers=[{"name": "setup", "image": "quay.io/x/setup:1"}],
                          workerSpec={"containers": [{"name": "kserve-container", "image": "quay.io/x/worker:1"}]})],
        isvcs=[isvc("a", runtime="rt", runtimeVersion="2")],
    ))
    # a predictor without a workerSpec runs no worker pod: the runtime's worker images are not its
    assert sorted(str(u.image) for u in inv.usages if u.source.name == "a") == ["quay.io/x/main:2", "quay.io/x/setup:1"]


def test_a_runtime_without_a_kserve_container_is_reported_not_guessed():
    _, obj = runtime("rt", "team-a", image="unused")
    obj["spec"]["initContainers"] = [{"name": "setup", "image": "quay.io/x/setup:1"}]
    obj["spec"]["containers"] = [{"name": "server", "image": "quay.io/x/server:1"}]
    inv = resolve(observation(runtimes=[("ServingRuntime", obj)], isvcs=[isvc("a", runtime="rt", runtimeVersion="2")]))
    assert served(inv) == {}
    assert inv.problems == ("InferenceService team-a/a: runtime ServingRuntime team-a/rt has no kserve-container "
                            "in spec.containers (KServe refuses it)",)


def test_a_model_image_replaces_a_rejected_runtime_image():
    inv = resolve(observation(runtimes=[runtime("rt", "team-a", image="quay.io/x/rt:1;rm")],
                              isvcs=[isvc("a", runtime="rt", image="quay.io/x/custom:9"), isvc("b", runtime="rt")]))
    assert served(inv) == {"a": "quay.io/x/custom:9"}
    assert inv.problems == () and [r.field for r in inv.rejections] == ["spec.containers[kserve-container].image"]


def test_an_unresolvable_runtime_is_reported_not_fatal():
    inv = resolve(observation(isvcs=[isvc("orphan", runtime="does-not-exist")]))
    assert served(inv) == {}
    assert inv.problems == ("InferenceService team-a/orphan: runtime 'does-not-exist' is not a ServingRuntime "
                            "in team-a nor a ClusterServingRuntime (or it is disabled)",)


def test_storage_uris_on_the_predictor_are_modelcars_with_the_server_state():
    # kserve/kserve pkg/apis/serving/v1beta1/predictor.go: storageUris sits on the predictor, each
    # entry {uri, mountPath}; every oci:// entry is a ModelCar (utils_test TestConfigureModelcarToContainerMultipleOCI)
    obj = isvc("m", ready=False, modelFormat={"name": "onnx"})
    obj["spec"]["predictor"]["storageUris"] = [
        {"uri": "oci://quay.io/models/granite:8b", "mountPath": "/mnt/models/base"},
        {"uri": f"oci+modelcar://quay.io/models/draft@{D2}", "mountPath": "/mnt/models/draft"},
        {"uri": "oci+native://quay.io/models/adapter:1", "mountPath": "/mnt/models/adapter"},
        {"uri": "pvc://claim/lora", "mountPath": "/mnt/models/lora"},
    ]
    o = Observation(applications_namespace=APPS)
    o.serving.extend(read_inference_service(obj))
    # a ModelCar counts even when the runtime cannot be found (here: none names format onnx)
    assert [(str(u.image), u.field, u.role, u.state) for u in resolve(o).usages] == [
        ("quay.io/models/granite:8b", "spec.predictor.storageUris[0].uri", Role.MODELCAR, State.NOT_READY),
        (f"quay.io/models/draft@{D2}", "spec.predictor.storageUris[1].uri", Role.MODELCAR, State.NOT_READY),
        ("quay.io/models/adapter:1", "spec.predictor.storageUris[2].uri", Role.MODELCAR, State.NOT_READY),
    ]


def test_an_oci_fetch_model_is_not_pre_pullable_and_not_a_rejection():
    obj = isvc("m", modelFormat={"name": "onnx"}, storageUri="oci+fetch://quay.io/models/big:70b")
    found = read_inference_service(obj)
    assert found.rejections == [] and found.usages == []
    (skipped,) = found.skipped
    assert (skipped.reference, skipped.field) == ("quay.io/models/big:70b", "spec.predictor.model.storageUri")
    assert "pre-pulling it cannot help" in skipped.reason and "oci_fetch.go" in skipped.reason
    o = Observation(applications_namespace=APPS)
    o.serving.extend(found)
    inv = resolve(o)
    assert [u for u in inv.usages if u.role is Role.MODELCAR] == []
    assert inv.skipped == (skipped,) and inv.rejections == ()
def test_a_modelcar_uri_with_a_query_is_rejected():
    found = read_inference_service(isvc("m", storageUri="oci://quay.io/models/granite:8b?x=1"))
    assert found.usages == [] and found.rejections[0].field == "spec.predictor.model.storageUri"


def test_custom_predictor_and_transformer_containers_count():
    obj = {"metadata": {"name": "c", "namespace": "t"},
           "spec": {"predictor": {"containers": [{"name": "kserve-container", "image": "quay.io/x/pred:1"}]},
                    "transformer": {"containers": [{"name": "t", "image": "quay.io/x/trans:1"}]}}}
    assert [str(u.image) for u in read_inference_service(obj).usages] == ["quay.io/x/pred:1", "quay.io/x/trans:1"]


def test_only_shared_runtimes_earn_the_defined_baseline():
    shared = read_serving_runtime(runtime("vllm", APPS, image="quay.io/x/a:1")[1], kind="ServingRuntime", applications_namespace=APPS)
    tenant = read_serving_runtime(runtime("vllm", "team-a", image="quay.io/x/a:1")[1], kind="ServingRuntime", applications_namespace=APPS)
    assert [u.state for u in shared.usages] == [State.DEFINED]
    assert tenant.usages == [] and len(tenant.runtimes) == 1


def test_template_runtimes_are_offered():
    template = {"metadata": {"name": "vllm-template", "namespace": APPS},
                "objects": [{"kind": "ServingRuntime", "spec": {"containers": [{"name": "kserve-container", "image": "quay.io/x/vllm:1"}]}}]}
    found = read_template(template)
    assert [(u.field, str(u.image)) for u in found.usages] == [("objects[0].spec.containers[kserve-container].image", "quay.io/x/vllm:1")]


def test_llm_inference_service_model_uri_and_template_images():
    obj = {"metadata": {"name": "qwen", "namespace": "t"},
           "spec": {"model": {"uri": "oci://quay.io/models/qwen:7b"},
                    "template": {"containers": [{"name": "main", "image": "quay.io/x/vllm:1"}]}}}
    o = Observation(applications_namespace=APPS)
    o.llm.extend(read_llm_inference_service(obj))
    assert [(str(u.image), u.role) for u in resolve(o).usages] == [("quay.io/x/vllm:1", Role.SERVING_RUNTIME),
                                                                   ("quay.io/models/qwen:7b", Role.MODELCAR)]


# -- nodes ----------------------------------------------------------------------------------


def test_nodes_give_sizes_by_name_and_digest_and_their_capacity():
    into = NodeFindings()
    read_node({"metadata": {"name": "w0", "labels": {"a": "b"}},
               "status": {"capacity": {"ephemeral-storage": "100Gi"},
                          "images": [{"names": [f"quay.io/x/a@{D1}", "quay.io/x/a:1"], "sizeBytes": 500},
                                     {"names": ["junk"], "sizeBytes": "big"}]}}, into)
    read_node({"metadata": {"name": "w1"}, "status": {"images": [{"names": [f"quay.io/x/b@{D1}"], "sizeBytes": 700}]}}, into)
    a_tag, a_digest = parse_reference("quay.io/x/a:1"), parse_reference(f"quay.io/x/a@{D1}")
    assert into.sizes.of(a_digest) == SizeReport(700)  # content-addressed: any repository's report counts
    assert into.sizes.of(a_tag) == SizeReport(500, D1)  # a tag's size belongs to the digest seen with it
    assert [(n.name, n.ephemeral_storage) for n in into.nodes] == [("w0", 100 * 2**30), ("w1", None)]


def test_nodes_give_what_placement_needs_taints_cordoning_and_accelerators():
    into = NodeFindings()
    gpu = {"metadata": {"name": "gpu-0", "labels": {"nvidia.com/gpu.present": "true"}},
           "spec": {"unschedulable": True,
                    "taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"},
                               {"key": "dedicated", "value": "ml", "effect": "PreferNoSchedule"}, "junk", {"key": 3}]},
           "status": {"allocatable": {"cpu": "16", "memory": "64Gi", "hugepages-2Mi": "0", "nvidia.com/gpu": "8",
                                      "amd.com/gpu": "0", "habana.ai/gaudi": "lots", "pods": "250"}}}
    read_node(gpu, into)
    read_node({**gpu, "metadata": {"name": "gpu-1"}}, into)
    read_node({"metadata": {"name": "cpu-0"}, "spec": {"unschedulable": "yes"}, "status": {"allocatable": []}}, into)
    g0, g1, cpu = into.nodes
    assert g0.taints == (Taint("nvidia.com/gpu", "", "NoSchedule"), Taint("dedicated", "ml", "PreferNoSchedule"))
    assert (g0.unschedulable, g0.extended) == (True, frozenset({"nvidia.com/gpu"}))
    assert g1.taints is g0.taints and g1.extended is g0.extended  # one shared copy for a pool
    assert (cpu.taints, cpu.unschedulable, cpu.extended) == ((), False, frozenset())


def test_what_one_node_can_cost_is_bounded():
    into = NodeFindings()
    read_node({"metadata": {"name": "n"},
               "spec": {"taints": [{"key": f"k{i}", "effect": "NoSchedule"} for i in range(1000)]},
               "status": {"allocatable": {f"x{i}.example.com/r": "1" for i in range(1000)}}}, into)
    (n,) = into.nodes
    assert len(n.taints) == MAX_TAINTS and len(n.extended) == MAX_EXTENDED


# -- where each workload can run (issue 15) ----------------------------------------------------

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def test_a_notebook_usage_carries_where_its_pod_can_run():
    nb = notebook("gpu-wb", image="quay.io/x/cuda:1")
    nb["spec"]["template"]["spec"]["tolerations"] = [GPU_TOLERATION]
    nb["spec"]["template"]["spec"]["nodeSelector"] = {"nvidia.com/gpu.present": "true"}
    nb["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    found = read_notebook(nb)
    placements = {u.placement for u in found.usages}
    assert len(placements) == 1  # one pod: the workbench and its sidecar go together
    (p,) = placements
    assert p.resources == frozenset({"nvidia.com/gpu"}) and p.node_selector == (("nvidia.com/gpu.present", "true"),)
    assert [t.key for t in p.tolerations] == ["nvidia.com/gpu"]


def test_a_notebook_whose_scheduling_cannot_be_read_is_rejected_naming_the_field():
    nb = notebook("odd", image="quay.io/x/odd:1")
    nb["spec"]["template"]["spec"]["tolerations"] = [{"key": 1, "operator": "Exists"}]
    found = read_notebook(nb)
    assert found.usages == []  # the API server would refuse the workbench's pod
    (r,) = found.rejections
    assert (str(r.source), r.field, r.reason) == (
        "Notebook team-a/odd", "spec.template.spec.tolerations[0].key", "is not a string: int")


def test_a_notebook_with_too_many_tolerations_is_read_with_the_first_ones():
    nb = notebook("wide", image="quay.io/x/wide:1")
    nb["spec"]["template"]["spec"]["tolerations"] = [{}] * 480_000
    found = read_notebook(nb)
    assert [str(u.image) for u in found.usages][:1] == ["quay.io/x/wide:1"]
    (r,) = found.rejections
    assert (r.field, r.reason) == ("spec.template.spec.tolerations", "has 480,000 entries; only the first 64 are read")


def test_an_inference_service_is_placed_where_kserve_merges_its_pod_with_the_runtimes():
    o = Observation(applications_namespace=APPS)
    rt = runtime("vllm", "team-a", image="quay.io/x/vllm:1")[1]
    rt["spec"]["tolerations"] = [GPU_TOLERATION]
    rt["spec"]["nodeSelector"] = {"pool": "gpu", "zone": "a"}
    o.serving.extend(read_serving_runtime(rt, kind="ServingRuntime", applications_namespace=APPS))
    svc = isvc("llm", runtime="vllm", modelFormat={"name": "vLLM"}, resources={"limits": {"nvidia.com/gpu": "1"}},
               storageUri="oci://quay.io/models/granite:8b")
    svc["spec"]["predictor"]["nodeSelector"] = {"zone": "b"}
    o.serving.extend(read_inference_service(svc))
    usages = [u for u in resolve(o).usages if u.source.kind == "InferenceService"]
    assert {u.role for u in usages} == {Role.SERVING_RUNTIME, Role.MODELCAR}
    (p,) = {u.placement for u in usages}
    assert p.resources == frozenset({"nvidia.com/gpu"})  # the dashboard puts the GPU on the model
    assert dict(p.node_selector) == {"pool": "gpu", "zone": "b"}  # the component wins on a key both set
    assert [t.key for t in p.tolerations] == ["nvidia.com/gpu"]  # the runtime's, kept when the component has none


def test_offered_images_are_placed_by_their_accelerator_hint():
    stream = {"metadata": {"name": "cuda", "namespace": APPS, "labels": {"opendatahub.io/notebook-image": "true"},
                           "annotations": {"opendatahub.io/recommended-accelerators": '["nvidia.com/gpu"]'}},
              "spec": {"tags": [{"name": "1", "annotations": {"opendatahub.io/workbench-image-recommended": "true"},
                                 "from": {"kind": "DockerImage", "name": "quay.io/x/cuda:1"}}]}}
    (usage,) = read_image_stream(stream, applications_namespace=APPS).usages
    assert usage.placement.one_of_resources == frozenset({"nvidia.com/gpu"})
    template = {"metadata": {"name": "vllm-template", "namespace": APPS},
                "objects": [{"kind": "ServingRuntime",
                             "metadata": {"annotations": {"opendatahub.io/recommended-accelerators": '["amd.com/gpu"]'}},
                             "spec": {"containers": [{"name": "kserve-container", "image": "quay.io/x/rocm:1"}]}}]}
    (usage,) = read_template(template).usages
    assert usage.placement.one_of_resources == frozenset({"amd.com/gpu"})
    stream["metadata"]["annotations"]["opendatahub.io/recommended-accelerators"] = "[]"
    (usage,) = read_image_stream(stream, applications_namespace=APPS).usages
    assert usage.placement == Placement()


def test_a_malformed_accelerator_hint_is_one_rejection_and_places_like_a_plain_pod():
    stream = {"metadata": {"name": "odd", "namespace": APPS, "labels": {"opendatahub.io/notebook-image": "true"},
                           "annotations": {"opendatahub.io/recommended-accelerators": "nvidia.com/gpu"}},
              "spec": {"tags": [{"name": "1", "from": {"kind": "DockerImage", "name": "quay.io/x/odd:1"}}]}}
    found = read_image_stream(stream, applications_namespace=APPS)
    assert [u.placement for u in found.usages] == [Placement()]
    (r,) = found.rejections
    assert r.field.startswith("metadata.annotations[opendatahub.io/recommended-accelerators]")
