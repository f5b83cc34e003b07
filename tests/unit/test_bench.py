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
