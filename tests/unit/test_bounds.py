"""What one object can make the agent read and keep, and what the cycle costs, stay bounded
whatever a tenant writes. The readers and `resolve` on plain dicts, no cluster.

- each list a reader walks is read up to its `MAX_*` (agent.sources.common); the excess is
  one rejection naming the object and the field;
- one usage per object and image, the first `MAX_REJECTIONS_KEPT` rejections and
  `MAX_PROBLEMS_KEPT` problems kept and all of them counted, tenant strings clipped;
- no reader recurses over a value, whatever its depth;
- resolving runtimes and aliases costs about the number of objects, not their product:
  measured as Python lines executed (`work`), deterministic, not as time.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.model import Rejection, Role
from agent.resolve import resolve
from agent.sources import Observation
from agent.sources.common import (
    MAX_CONTAINERS,
    MAX_MODEL_FORMATS,
    MAX_NAME_IN_FIELD,
    MAX_PROBLEMS_KEPT,
    MAX_PROTOCOLS,
    MAX_REJECTIONS_KEPT,
    MAX_STORAGE_URIS,
    MAX_STREAM_TAGS,
    MAX_TEMPLATE_OBJECTS,
    MAX_TEXT,
    Findings,
    clip,
)
from agent.sources.imagestreams import read_image_stream
from agent.sources.notebooks import read_notebook
from agent.sources.serving import (
    CLUSTER_SERVING_RUNTIME,
    SERVING_RUNTIME,
    ModelServer,
    Runtime,
    read_inference_service,
    read_llm_inference_service,
    read_serving_runtime,
    read_template,
)

APPS = "redhat-ods-applications"


def notebook(name: str, ns: str, containers: list[dict[str, Any]], **notes: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "annotations": notes},
            "spec": {"template": {"spec": {"containers": containers}}}}


def excess(findings: Findings) -> dict[str, str]:
    return {r.field: r.reason for r in findings.rejections if not r.reference}


# -- what one object makes a reader read ------------------------------------------------------------


def test_a_notebook_is_read_up_to_max_containers_and_the_rest_is_one_rejection():
    containers = [{"name": f"c{i}", "image": f"quay.io/t/i{i}:1"} for i in range(28_000)]
    found = read_notebook(notebook("hog", "t", containers))
    assert len(found.usages) == MAX_CONTAINERS
    assert excess(found) == {
        "spec.template.spec.containers": f"has 28,000 entries; only the first {MAX_CONTAINERS} are read"}
    assert found.rejections_total == 1


def test_forty_five_thousand_invalid_images_are_a_bounded_number_of_rejections():
    found = read_notebook(notebook("bad", "t", [{"name": "c", "image": f"Q{i}"} for i in range(45_000)]))
    assert found.usages == [] and found.rejections_total == MAX_CONTAINERS + 1


def test_one_usage_per_object_and_image_however_many_fields_name_it():
    found = read_notebook(notebook("wb", "t", [{"name": "wb", "image": "quay.io/t/wb:1"}]
                                   + [{"name": f"side{i}", "image": "quay.io/t/side:1"} for i in range(50)]))
    assert sorted((str(u.image), u.role) for u in found.usages) == [
        ("quay.io/t/side:1", Role.SIDECAR), ("quay.io/t/wb:1", Role.WORKBENCH)]


def test_every_list_of_a_serving_object_is_read_up_to_its_bound():
    many = 1_000
    runtime = {"metadata": {"name": "rt", "namespace": "t"},
               "spec": {"containers": [{"name": "kserve-container", "image": "quay.io/t/rt:1"}] * many,
                        "supportedModelFormats": [{"name": f"f{i}", "autoSelect": True} for i in range(many)],
                        "protocolVersions": ["v1"] * many}}
    found = read_serving_runtime(runtime, kind=SERVING_RUNTIME, applications_namespace=APPS)
    (rt,) = found.runtimes
    assert len(rt.formats) == MAX_MODEL_FORMATS and len(rt.protocols) == MAX_PROTOCOLS
    assert excess(found) == {
        "spec.containers": f"has {many:,} entries; only the first {MAX_CONTAINERS} are read",
        "spec.supportedModelFormats": f"has {many:,} entries; only the first {MAX_MODEL_FORMATS} are read",
        "spec.protocolVersions": f"has {many:,} entries; only the first {MAX_PROTOCOLS} are read",
    }
    uris = [{"uri": f"oci://quay.io/t/m{i}:1"} for i in range(many)]
    isvc = {"metadata": {"name": "m", "namespace": "t"},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "onnx"}, "storageUris": uris}}}}
    found = read_inference_service(isvc)
    (server,) = found.model_servers
    assert len(server.modelcars) == MAX_STORAGE_URIS
    assert excess(found) == {"spec.predictor.model.storageUris":
                             f"has {many:,} entries; only the first {MAX_STORAGE_URIS} are read"}
    template = {"metadata": {"name": "tpl", "namespace": APPS},
                "objects": [{"kind": "ServingRuntime",
                             "spec": {"containers": [{"name": "kserve-container", "image": f"quay.io/t/r{i}:1"}]}}
                            for i in range(many)]}
    found = read_template(template)
    assert len(found.usages) == MAX_TEMPLATE_OBJECTS and set(excess(found)) == {"objects"}


def test_an_image_stream_is_read_up_to_max_stream_tags():
    tags = 3_000
    obj = {"metadata": {"name": "s", "namespace": APPS, "labels": {"opendatahub.io/notebook-image": "true"}},
           "spec": {"tags": [{"name": f"t{i}", "from": {"kind": "DockerImage", "name": f"quay.io/t/s:{i}"}}
                             for i in range(tags)]}}
    found = read_image_stream(obj, applications_namespace=APPS)
    assert len(found.stream_tags) == MAX_STREAM_TAGS
    assert excess(found) == {"spec.tags": f"has {tags:,} entries; only the first {MAX_STREAM_TAGS} are read"}


# -- what is kept: rejections, problems, strings ---------------------------------------------------------


def test_the_first_rejections_are_kept_and_every_one_is_counted():
    o = Observation(applications_namespace=APPS)
    for n in range(60):
        o.workloads.extend(read_notebook(notebook(f"nb{n}", "t", [{"name": "c", "image": f"Q{i}"} for i in range(40)])))
    assert len(o.workloads.rejections) == MAX_REJECTIONS_KEPT
    assert o.workloads.rejections_total == 60 * 40
    inventory = resolve(o)
    assert len(inventory.rejections) == MAX_REJECTIONS_KEPT and inventory.rejections_total == 60 * 40
    assert [r.source.name for r in inventory.rejections[:41]] == ["nb0"] * 40 + ["nb1"]  # the first ones


def test_problems_are_kept_like_rejections_and_tenant_names_are_clipped():
    o = Observation(applications_namespace=APPS)
    for i in range(MAX_PROBLEMS_KEPT + 500):
        runtime = "r" * 1_000_000 if i < 5 else f"missing-{i}"
        o.serving.extend(read_inference_service({"metadata": {"name": f"s{i}", "namespace": "t"},
                                                 "spec": {"predictor": {"model": {"runtime": runtime}}}}))
    inventory = resolve(o)
    assert len(inventory.problems) == MAX_PROBLEMS_KEPT and inventory.problems_total == MAX_PROBLEMS_KEPT + 500
    assert max(len(p) for p in inventory.problems) < 3 * MAX_TEXT
    assert "(1,000,000 characters)" in inventory.problems[0]


def test_tenant_names_inside_field_paths_are_clipped():
    found = read_notebook(notebook("n", "t", [{"name": "x" * 1_000_000, "image": "Q;"}]))
    (rejection,) = found.rejections
    assert len(rejection.field) < MAX_NAME_IN_FIELD + 80 and len(rejection.reference) <= MAX_TEXT + 3


def test_clip_keeps_short_text_and_says_how_long_the_rest_was():
    assert clip("short") == "short"
    assert clip("a" * 5_000, 10) == "aaaaaaaaaa... (5,000 characters)"


def test_a_rejection_without_a_reference_reads_naturally():
    from agent.model import ObjectRef

    r = Rejection("", "has 9 entries; only the first 1 are read", ObjectRef("Notebook", "t", "n"), "spec.x")
    assert str(r) == "Notebook t/n: spec.x has 9 entries; only the first 1 are read"


# -- no reader recurses over tenant data ----------------------------------------------------------------


def very_deep(depth: int = 200_000) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def test_no_reader_recurses_over_a_value_however_deep():
    """`json.loads` itself stops near 1,000 levels, but a page it decodes hands the readers
    values up to that depth while the readers already run some frames deep: `repr` of such
    a value, as the rejection of a non-string image used to build, raised RecursionError."""
    deep = very_deep()
    found = read_notebook(notebook("n", "t", [{"name": "n", "image": deep}], **{
        "notebooks.opendatahub.io/last-image-selection": deep}))  # type: ignore[arg-type]
    assert [(r.reference, r.reason) for r in found.rejections] == [("a list of 1 items", "is not a string")]
    readers: list[tuple[Callable[..., Any], dict[str, Any]]] = [
        (read_inference_service, {"spec": {"predictor": {"model": {"image": deep, "runtime": deep, "modelFormat": deep,
                                                                     "storageUri": deep, "storageUris": [deep]},
                                                           "containers": [{"image": deep, "name": deep}]}}}),
        (read_llm_inference_service, {"spec": {"model": {"uri": deep}, "template": {"containers": [{"image": deep}]}}}),
        (read_template, {"objects": [{"kind": "ServingRuntime", "spec": {"containers": [{"image": deep}]}}]}),
    ]
    for read, obj in readers:
        read({"metadata": {"name": "x", "namespace": "t"}, **obj})
    read_serving_runtime({"metadata": {"name": "x", "namespace": "t"},
                          "spec": {"containers": [{"name": "kserve-container", "image": deep}],
                                   "supportedModelFormats": [{"name": deep, "version": deep, "priority": deep}],
                                   "protocolVersions": [deep]}}, kind=SERVING_RUNTIME, applications_namespace=APPS)
    read_image_stream({"metadata": {"name": "s", "namespace": APPS}, "spec": {"tags": [
        {"name": "t", "from": {"kind": "DockerImage", "name": deep}}]}, "status": {"tags": [
            {"tag": "t", "items": [{"dockerImageReference": deep}]}]}}, applications_namespace=APPS)


# -- cost grows with the objects, not with their product ------------------------------------------------------


class Overrun(Exception):
    pass


@contextmanager
def work(budget: int) -> Iterator[list[int]]:
    """Count Python lines executed (and calls) in this thread; raise Overrun past `budget`.
    Deterministic where a timing is not, and it stops a quadratic run early."""
    count = [0]

    def trace(frame: Any, event: str, arg: Any) -> Any:
        count[0] += 1
        if count[0] > budget:
            raise Overrun(f"more than {budget:,} lines")
        return trace

    previous = sys.gettrace()  # a coverage tracer, say: put it back afterwards
    sys.settrace(trace)
    try:
        yield count
    finally:
        sys.settrace(previous)


def test_resolving_runtimes_costs_the_objects_not_their_product():
    """400 ServingRuntimes of 211 model formats and 400 InferenceServices of 11 predictors in
    one project took 34-36 s a cycle: every predictor tested every runtime, rebuilding its
    labels each time. (Here half as many runtimes and services, over the format bound.)"""
    formats = [{"name": f"fmt-{i}", "autoSelect": True, "priority": i % 7} for i in range(211)]
    frameworks = ["sklearn", "xgboost", "lightgbm", "tensorflow", "pytorch", "triton", "onnx", "pmml", "paddle",
                  "huggingface"]
    supported = [*formats[:50], *({"name": f, "autoSelect": True} for f in frameworks)]
    o = Observation(applications_namespace=APPS)
    for r in range(200):
        o.serving.extend(read_serving_runtime(
            {"metadata": {"name": f"rt-{r}", "namespace": "hog"},
             "spec": {"containers": [{"name": "kserve-container", "image": f"quay.io/t/rt:{r}"}],
                      "supportedModelFormats": supported}},
            kind=SERVING_RUNTIME, applications_namespace=APPS))
    for s in range(200):
        predictor = {"model": {"modelFormat": {"name": f"fmt-{s % 50}"}}, **{f: {} for f in frameworks}}
        o.serving.extend(read_inference_service({"metadata": {"name": f"isvc-{s}", "namespace": "hog"},
                                                 "spec": {"predictor": predictor}}))
    assert len(o.serving.model_servers) == 200 * 11
    with work(1_000_000):  # today's code: tens of millions
        inventory = resolve(o)
    assert len({u.source for u in inventory.usages if u.source.kind == "InferenceService"}) == 200


def digest_ref(stream: int, tag: int) -> str:
    return f"quay.io/t/s{stream}@sha256:{tag:064x}"


def test_an_alias_lookup_costs_the_same_however_many_tags_claim_the_spelling():
    """10 ImageStreams x 3,000 tags whose `from` is one spelling, and Notebooks using it, took
    47-52 s a cycle: every lookup walked every claim."""
    o = Observation(applications_namespace=APPS)
    for s in range(10):
        o.streams.extend(read_image_stream(
            {"metadata": {"name": f"s{s}", "namespace": "hog", "labels": {"opendatahub.io/notebook-image": "true"}},
             "spec": {"tags": [{"name": f"t{i}", "from": {"kind": "DockerImage", "name": "quay.io/t/same:1"}}
                               for i in range(3_000)]},
             "status": {"tags": [{"tag": f"t{i}", "items": [{"dockerImageReference": digest_ref(s, i)}]}
                                 for i in range(3_000)]}},
            applications_namespace=APPS))
    assert {ns: tag for ns, (tag, _) in o.streams.aliases["quay.io/t/same:1"].items()} == {
        "hog": min(tag for tag in o.streams.stream_tags)}  # one claim kept per namespace: the smallest
    for n in range(1_000):
        o.workloads.extend(read_notebook(notebook(f"nb{n}", "hog", [{"name": f"nb{n}", "image": "quay.io/t/same:1"}])))
    with work(200_000):  # today's code: a walk of 30,000 claims per Notebook
        inventory = resolve(o)
    assert {str(u.image) for u in inventory.usages if u.source.kind == "Notebook"} == {digest_ref(0, 0)}


# -- KServe's choice is unchanged: the index against a plain filter-and-sort -------------------------------------


def reference_choice(server: ModelServer, runtimes: list[Runtime]) -> Runtime | None:
    """KServe's `GetSupportingRuntimes(...)[0]` written out plainly (the code before the index)."""
    by_name: dict[tuple[str, str], Runtime] = {}
    for r in runtimes:
        by_name.setdefault((r.namespace, r.name), r)
    for scope in (server.source.namespace, ""):
        supporting = [r for r in by_name.values() if ("" if r.cluster_scoped else r.namespace) == scope
                      and not r.disabled and not r.multi_model and r.multi_node == server.multi_node
                      and r.supports(server.model_format, server.format_version)
                      and r.supports_protocol(server.protocol)]
        if supporting:
            ordered = sorted(supporting, key=lambda r: r.name)
            ordered.sort(key=lambda r: r.created, reverse=True)
            ordered.sort(key=lambda r: r.protocol_rank)
            ordered.sort(key=lambda r: (r.priority_for(server.model_format) is None,
                                        -(r.priority_for(server.model_format) or 0)))
            return ordered[0]
    return None


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=0, max_value=2**32))
def test_auto_selection_picks_what_kserve_picks(seed):
    rng = random.Random(seed)
    names, fmts, protocols = ["a", "b", "c", "d"], ["onnx", "vllm", "sk:learn"], ["v1", "v2", "grpc-v2", "x"]
    o = Observation(applications_namespace=APPS)
    for i in range(rng.randint(1, 12)):
        ns = rng.choice(["team-a", "team-b", ""])
        spec: dict[str, Any] = {
            "containers": [{"name": "kserve-container", "image": f"quay.io/t/r{i}:1"}],
            "supportedModelFormats": [
                {"name": rng.choice(fmts), **({"version": rng.choice(["1", "2"])} if rng.random() < 0.4 else {}),
                 "autoSelect": rng.random() < 0.8, **({"priority": rng.randint(0, 3)} if rng.random() < 0.6 else {})}
                for _ in range(rng.randint(0, 4))],
            "disabled": rng.random() < 0.1, "multiModel": rng.random() < 0.1,
            **({"protocolVersions": rng.sample(protocols, rng.randint(1, 3))} if rng.random() < 0.5 else {}),
            **({"workerSpec": {}} if rng.random() < 0.2 else {}),
        }
        meta = {"name": rng.choice(names), **({"namespace": ns} if ns else {}),
                **({"creationTimestamp": f"2026-0{rng.randint(1, 3)}-01T00:00:00Z"} if rng.random() < 0.7 else {})}
        o.serving.extend(read_serving_runtime({"metadata": meta, "spec": spec},
                                              kind=SERVING_RUNTIME if ns else CLUSTER_SERVING_RUNTIME,
                                              applications_namespace=APPS))
    for s in range(rng.randint(1, 8)):
        model = {"modelFormat": {"name": rng.choice(fmts), **({"version": rng.choice(["1", "2"])} if rng.random() < 0.3
                                                              else {})},
                 **({"protocolVersion": rng.choice(protocols)} if rng.random() < 0.5 else {})}
        predictor: dict[str, Any] = {"model": model, **({"workerSpec": {}} if rng.random() < 0.2 else {})}
        o.serving.extend(read_inference_service({"metadata": {"name": f"s{s}", "namespace": rng.choice(["team-a",
                                                                                                         "team-b"])},
                                                 "spec": {"predictor": predictor}}))
    inventory = resolve(o)
    got = {u.source.name: str(u.image) for u in inventory.usages if u.source.kind == "InferenceService"}
    want = {}
    for server in o.serving.model_servers:
        chosen = reference_choice(server, o.serving.runtimes)
        if chosen is not None and chosen.has_main_container:
            want[server.source.name] = str(chosen.images[0].image)
    assert got == want


@pytest.mark.parametrize("kind", [SERVING_RUNTIME, CLUSTER_SERVING_RUNTIME])
def test_a_runtime_is_indexed_under_every_label_it_offers(kind):
    obj = {"metadata": {"name": "rt", **({"namespace": "team-a"} if kind == SERVING_RUNTIME else {})},
           "spec": {"containers": [{"name": "kserve-container", "image": "quay.io/t/rt:1"}],
                    "supportedModelFormats": [{"name": "onnx", "version": "1", "autoSelect": True},
                                              {"name": "vllm", "autoSelect": False}]}}
    (rt,) = read_serving_runtime(obj, kind=kind, applications_namespace=APPS).runtimes
    assert rt.labels == frozenset({"mt:onnx", "mt:onnx:1"})
    assert rt.supports("onnx", None) and rt.supports("onnx", "1") and not rt.supports("onnx", "2")
    assert rt.priority_for("vllm") is None and not rt.supports("vllm", None)


def test_placing_costs_the_distinct_placements_not_usages_times_nodes():
    """10,000 workbenches and 3,000 GPU servers on 400 CPU and 100 GPU nodes, one puller for
    the CPU pool only (so the GPU nodes are a gap): every usage was tested against every
    node of every pool, and the gap's node set rebuilt per usage (3.6-4.8 s of a 10 s cycle
    on the large pool-heavy estate). Placements are shared, so the work is images x
    placements x pools."""
    from agent.model import NodeInfo, ObjectRef, State, Taint, Usage
    from agent.placement import Placement, Toleration
    from agent.pools import place
    from agent.puller import read_puller
    from agent.refs import parse_reference

    worker = {"node-role.kubernetes.io/worker": ""}
    taint = Taint("nvidia.com/gpu", "", "NoSchedule")
    nodes = [NodeInfo(f"cpu-{i}", worker, 120 << 30) for i in range(400)] + [
        NodeInfo(f"gpu-{i}", {**worker, "gpu": "yes"}, 500 << 30, taints=(taint,),
                 extended=frozenset({"nvidia.com/gpu"}))
        for i in range(100)]
    on_gpu = Placement(tolerations=(Toleration("nvidia.com/gpu", "Exists", "", "NoSchedule"),),
                       resources=frozenset({"nvidia.com/gpu"}))
    images = [parse_reference(f"quay.io/t/img-{i}:1") for i in range(300)]
    usages = [Usage(images[i % 200], ObjectRef("Notebook", f"ns-{i % 200}", f"wb-{i}"), "f", Role.WORKBENCH,
                    State.RUNNING, placement=Placement()) for i in range(10_000)]
    usages += [Usage(images[200 + i % 100], ObjectRef("InferenceService", f"ns-{i % 200}", f"is-{i}"), "f",
                     Role.SERVING_RUNTIME, State.READY, placement=on_gpu) for i in range(3_000)]
    cpu_puller = read_puller({"metadata": {"name": "image-puller", "namespace": "pullers", "resourceVersion": "1"},
                              "spec": {"images": "", "nodeSelector": '{"node-role.kubernetes.io/worker": ""}'}})
    with work(600_000):  # 304,000 lines; before: 1,988,000, plus a 100-node set built per usage
        placing = place(usages, pullers=[cpu_puller], nodes=nodes)
    assert len(placing.targets[0].usages) == 10_000 and len(placing.targets[0].elsewhere) == 3_000
    assert len(placing.gaps) == 1 and placing.gaps[0].group.nodes == tuple(sorted(f"gpu-{i}" for i in range(100)))
    assert {str(i) for i in placing.gaps[0].images} == {str(i) for i in images[200:]}
