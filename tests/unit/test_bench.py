"""The benchmark's estate generator (bench/generate.py): counts, shapes and references, with
a tiny preset and no cluster."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from agent.refs import InvalidReference, parse_reference
from agent.resolve import resolve
from agent.sources import Observation
from agent.sources.imagestreams import read_image_stream
from agent.sources.nodes import read_node
from agent.sources.notebooks import read_notebook
from agent.sources.serving import (
    CLUSTER_SERVING_RUNTIME,
    SERVING_RUNTIME,
    read_inference_service,
    read_llm_inference_service,
    read_serving_runtime,
    read_template,
)
from bench import generate
from bench.load import RESOURCES, collection_path

TINY = generate.PRESETS["tiny"]


@pytest.fixture(scope="module")
def objs() -> list[dict]:
    return list(generate.objects(TINY))


def test_counts_match_the_preset(objs: list[dict]) -> None:
    assert Counter(o["kind"] for o in objs) == Counter(generate.expected_counts(TINY))


def test_deterministic() -> None:
    first = [json.dumps(o, sort_keys=True) for o in generate.objects(TINY)]
    again = [json.dumps(o, sort_keys=True) for o in generate.objects(TINY)]
    assert first == again
    other = [json.dumps(o, sort_keys=True) for o in generate.objects(TINY.with_overrides(seed=2))]
    assert first != other


def test_size_overrides() -> None:
    preset = TINY.with_overrides(notebooks=7, nodes=1, llm_inference_services=None)
    counts = Counter(o["kind"] for o in generate.objects(preset))
    assert counts["Notebook"] == 7 and counts["Node"] == 1
    assert counts["LLMInferenceService"] == TINY.llm_inference_services


def test_namespaces_first_and_every_object_is_loadable(objs: list[dict]) -> None:
    kinds = [o["kind"] for o in objs]
    n_ns = kinds.count("Namespace")
    assert kinds[:n_ns] == ["Namespace"] * n_ns
    namespaces = {o["metadata"]["name"] for o in objs[:n_ns]}
    names = set()
    for o in objs:
        assert o["kind"] in RESOURCES
        namespaced = RESOURCES[o["kind"]][2]
        assert ("namespace" in o["metadata"]) == namespaced, o["metadata"]
        if namespaced:
            assert o["metadata"]["namespace"] in namespaces
        key = (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
        assert key not in names, key
        names.add(key)
        assert collection_path(o).startswith(("/api/v1/", "/apis/"))
        # a kind with a status subresource carries a status to write
        if RESOURCES[o["kind"]][3] and o["kind"] != "Namespace":
            assert isinstance(o.get("status"), dict), o["kind"]


def test_shapes(objs: list[dict]) -> None:
    by_kind: dict[str, list[dict]] = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    (dsci,) = by_kind["DSCInitialization"]
    assert dsci["spec"]["applicationsNamespace"] == generate.APPS_NS
    (puller,) = by_kind["KubernetesImagePuller"]
    assert puller["metadata"] == {**puller["metadata"], "namespace": "openshift-operators", "name": "image-puller"}
    assert puller["spec"]["images"] == generate.ADMIN_ENTRY
    for node in by_kind["Node"]:
        images = node["status"]["images"]
        assert len(images) == TINY.images_per_node
        assert all(len(i["names"]) == 2 and i["sizeBytes"] > 0 for i in images)
        assert [i["sizeBytes"] for i in images] == sorted((i["sizeBytes"] for i in images), reverse=True)
        assert node["status"]["capacity"]["ephemeral-storage"]
    for stream in by_kind["ImageStream"]:
        assert len(stream["spec"]["tags"]) == TINY.tags_per_stream == len(stream["status"]["tags"])
    for isvc in by_kind["InferenceService"]:
        assert [c for c in isvc["status"]["conditions"] if c["type"] == "Ready"]
    for nb in by_kind["Notebook"]:  # the fields the real CRD requires (kubeflow notebook_types.go)
        assert {"conditions", "readyReplicas", "containerState"} <= set(nb["status"]), nb["metadata"]["name"]
    stopped = sum("kubeflow-resource-stopped" in n["metadata"]["annotations"] for n in by_kind["Notebook"])
    assert 0 < stopped < len(by_kind["Notebook"])
    modelcars = [i for i in by_kind["InferenceService"]
                 if i["spec"]["predictor"].get("model", {}).get("storageUri", "").startswith("oci://")]
    assert modelcars
    spellings = Counter()
    for nb in by_kind["Notebook"]:
        image = nb["spec"]["template"]["spec"]["containers"][0]["image"]
        spellings["internal" if image.startswith(generate.INTERNAL_REGISTRY) else "@" if "@" in image else "tag"] += 1
    assert spellings["internal"] and spellings["@"]


def test_every_reference_parses_except_the_deliberately_invalid(objs: list[dict]) -> None:
    invalid_seen = set()
    total = 0
    for o in objs:
        for field, ref in generate.image_references(o):
            total += 1
            if ref in generate.INVALID_IMAGES:
                invalid_seen.add(ref)
                continue
            try:
                parse_reference(ref)
            except InvalidReference as e:
                pytest.fail(f"{o['kind']} {o['metadata']['name']} {field}: {ref!r} {e}")
    assert total > 100
    assert invalid_seen  # the tiny preset's invalid fraction makes some


def test_the_agent_reads_it_as_intended(objs: list[dict]) -> None:
    """What the agent's readers make of the estate: only the deliberate rejections, and only
    the deliberately unresolvable InferenceServices."""
    o = Observation(applications_namespace=generate.APPS_NS)
    for obj in objs:
        kind = obj["kind"]
        if kind == "ImageStream":
            o.streams.extend(read_image_stream(obj, applications_namespace=o.applications_namespace))
        elif kind == "Notebook":
            o.workloads.extend(read_notebook(obj))
        elif kind in (SERVING_RUNTIME, CLUSTER_SERVING_RUNTIME):
            o.serving.extend(read_serving_runtime(obj, kind=kind, applications_namespace=o.applications_namespace))
        elif kind == "Template":
            o.serving.extend(read_template(obj))
        elif kind == "InferenceService":
            o.serving.extend(read_inference_service(obj))
        elif kind == "LLMInferenceService":
            o.workloads.extend(read_llm_inference_service(obj))
        elif kind == "Node":
            read_node(obj, o.nodes)
    inventory = resolve(o)
    assert {r.reference.rstrip(".") for r in inventory.rejections} <= set(generate.INVALID_IMAGES)
    notebooks = [n for n in objs if n["kind"] == "Notebook"]
    invalid = sum(n["spec"]["template"]["spec"]["containers"][0]["image"] in generate.INVALID_IMAGES for n in notebooks)
    assert len(inventory.rejections) == invalid
    deleted = [i for i in objs if i["kind"] == "InferenceService"
               and i["spec"]["predictor"].get("model", {}).get("runtime") == "deleted-runtime"]
    assert len(inventory.problems) == len(deleted)
    assert len(o.nodes.nodes) == TINY.nodes and o.nodes.sizes
    assert inventory.usages


def test_the_hostile_project_is_loadable_and_as_described() -> None:
    from bench import hostile

    seen = Counter()
    for o in hostile.objects():
        seen[o["kind"]] += 1
        assert o["kind"] in RESOURCES
        if o["kind"] != "Namespace":
            assert o["metadata"]["namespace"] == hostile.NAMESPACE_NAME
        if hostile.RAW in o:  # the deep ones: bytes json.loads cannot read back
            with pytest.raises(RecursionError):
                json.loads(o[hostile.RAW])
    assert seen == Counter({"Namespace": 1, "LLMInferenceService": 1, "Notebook": 1 + 12 + 12 + 8 + 10,
                            "ServingRuntime": 400, "InferenceService": 400 + 300, "ImageStream": 10})


# ---- the pool-heavy estate (--pools) -------------------------------------------------------

POOLS = TINY.with_overrides(pools=True, nodes=10, image_streams=10)


def _read(objs: list[dict]):
    o = Observation(applications_namespace=generate.APPS_NS)
    for obj in objs:
        kind = obj["kind"]
        if kind == "ImageStream":
            o.streams.extend(read_image_stream(obj, applications_namespace=o.applications_namespace))
        elif kind == "Notebook":
            o.workloads.extend(read_notebook(obj))
        elif kind in (SERVING_RUNTIME, CLUSTER_SERVING_RUNTIME):
            o.serving.extend(read_serving_runtime(obj, kind=kind, applications_namespace=o.applications_namespace))
        elif kind == "Template":
            o.serving.extend(read_template(obj))
        elif kind == "InferenceService":
            o.serving.extend(read_inference_service(obj))
        elif kind == "LLMInferenceService":
            o.workloads.extend(read_llm_inference_service(obj))
        elif kind == "Node":
            read_node(obj, o.nodes)
    return o


def test_without_pools_no_preset_has_a_pool() -> None:
    """`--pools` adds; the presets generate what they did before it existed: one puller, no
    taint, no accelerator hint."""
    objs = list(generate.objects(TINY.with_overrides(nodes=10, image_streams=10)))
    assert [o["metadata"]["namespace"] for o in objs if o["kind"] == "KubernetesImagePuller"] == [generate.OPERATORS_NS]
    assert not any(o["spec"].get("taints") for o in objs if o["kind"] == "Node")
    assert generate.RECOMMENDED_ACCELERATORS not in json.dumps(objs)


def test_the_pools_estate_is_loadable() -> None:
    objs = list(generate.objects(POOLS))
    assert Counter(o["kind"] for o in objs) == Counter(generate.expected_counts(POOLS))
    n_ns = [o["kind"] for o in objs].count("Namespace")
    assert generate.GPU_PULLER_NS in {o["metadata"]["name"] for o in objs[:n_ns]}
    gpu = [o for o in objs if o["kind"] == "Node" and "nvidia.com/gpu" in o["status"]["allocatable"]]
    assert len(gpu) == POOLS.nodes // 5
    assert all(generate.GPU_TAINT in n["spec"]["taints"] for n in gpu)
    assert [n["spec"].get("unschedulable", False) for n in gpu] == [True] + [False] * (len(gpu) - 1)
    for o in objs:
        for field, ref in generate.image_references(o):
            if ref not in generate.INVALID_IMAGES:
                parse_reference(ref)


def test_the_pools_estate_splits_between_the_two_pullers() -> None:
    """What the agent's placement makes of it: CUDA workbenches and LLMInferenceServices'
    serving image only in the GPU pool's list, CPU workbenches only in the CPU workers', ROCm
    images nowhere; the CPU puller's DaemonSet stays off the GPU nodes."""
    from agent.pools import place
    from agent.puller import read_puller

    objs = list(generate.objects(POOLS))
    o = _read(objs)
    pullers = [read_puller({**p, "metadata": {**p["metadata"], "resourceVersion": "1"}})  # as the server returns it
               for p in objs if p["kind"] == "KubernetesImagePuller"]
    placing = place(resolve(o).usages, pullers=pullers, nodes=o.nodes.nodes)
    cpu, gpu = placing.targets
    assert {n.name for n in cpu.pool.nodes} == {f"worker-{i:03d}" for i in range(10) if i % 5 != 4}
    assert {n.name for n in gpu.pool.nodes} == {"worker-gpu-004", "worker-gpu-009"}
    in_cpu = {u.image for u in cpu.usages}
    in_gpu = {u.image for u in gpu.usages}
    streams = {s["metadata"]["name"]: s for s in objs if s["kind"] == "ImageStream"}
    for nb in (n for n in objs if n["kind"] == "Notebook"):
        container = nb["spec"]["template"]["spec"]["containers"][0]
        selection = nb["metadata"]["annotations"].get("notebooks.opendatahub.io/last-image-selection")
        if not selection:
            continue
        stream = streams[selection.partition(":")[0]]
        usages = [u for u in cpu.usages + gpu.usages
                  if u.source.name == nb["metadata"]["name"] and "kube-rbac" not in u.field]
        assert usages, nb["metadata"]["name"]
        hinted = generate.RECOMMENDED_ACCELERATORS in stream["metadata"]["annotations"]
        assert ("nvidia.com/gpu" in container["resources"]["requests"]) == hinted
        for u in usages:
            assert (u.image in in_gpu, u.image in in_cpu) == ((True, False) if hinted else (False, True)), u
    llm = parse_reference(generate.LLM_SERVING_IMAGE)  # ModelCars are shared with CPU model servers
    assert llm in in_gpu and llm not in in_cpu
    rocm = [image for image, why in placing.nowhere.items() if "amd.com/gpu" in why]
    assert rocm and not set(rocm) & (in_cpu | in_gpu)
    assert not placing.gaps  # every node is covered by one of the two pullers
