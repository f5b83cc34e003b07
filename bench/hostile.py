"""One hostile project (issue 9), to load next to an estate from `bench.generate`.

Everything here is what one project member may create in their own namespace, each shape
one that used to stop, starve or slow the agent:

- an LLMInferenceService whose `spec.router.scheduler.config.inline` is nested 1,500 levels
  (lists), and a Notebook whose pod spec holds maps nested as deep (its managedFields
  then nest as deep too): `json.loads` gives up at about 1,000;
- 12 Notebooks of 1.44 MB (`tolerations: [{}]` x 480,000);
- 12 Notebooks naming 28,000 distinct valid images each, 8 naming 45,000 invalid ones;
- 400 ServingRuntimes with 211 model formats and 400 InferenceServices with 11 predictor
  keys each, all in the one project;
- 10 ImageStreams of 3,000 tags whose `from` is one spelling, and 10 Notebooks of 1,000
  containers using it;
- 300 InferenceServices naming runtimes that do not exist, five of them with 1 MB names.

`objects()` yields them namespace first. The two deep objects cannot go through
`json.dumps` (it recurses too): they carry their body as bytes under `RAW`, which
`bench.load` sends as it is.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

from bench.generate import INFERENCE_SERVICE, LLM_INFERENCE_SERVICE, NAMESPACE, NOTEBOOK, SERVING_RUNTIME

JSON = dict[str, Any]
NAMESPACE_NAME = "zz-hostile-tenant"
RAW = "__raw__"  # key of the pre-encoded body of an object json.dumps cannot encode
DEPTH = 1_500
IMAGE_STREAM_API = ("image.openshift.io/v1", "ImageStream")
FRAMEWORKS = ("sklearn", "xgboost", "lightgbm", "tensorflow", "pytorch", "triton", "onnx", "pmml", "paddle",
              "huggingface")
SPELLING = "quay.io/hostile/shared:1"


def _meta(api: tuple[str, str], name: str, **extra: Any) -> JSON:
    return {"apiVersion": api[0], "kind": api[1], "metadata": {"name": name, "namespace": NAMESPACE_NAME, **extra}}


def _notebook(name: str, containers: list[JSON], **pod: Any) -> JSON:
    return {**_meta(NOTEBOOK, name), "spec": {"template": {"spec": {"containers": containers, **pod}}},
            "status": {"readyReplicas": 0}}


def _raw(obj: JSON, deep: str) -> JSON:
    """`obj` with its "@" placeholder replaced by `deep`, as bytes under RAW."""
    body = json.dumps(obj, separators=(",", ":")).replace('"@"', deep)
    return {**obj, RAW: body.encode()}


def deep_objects() -> Iterator[JSON]:
    lists = "[" * DEPTH + "]" * DEPTH
    maps = '{"a":' * DEPTH + "1" + "}" * DEPTH
    yield _raw({**_meta(LLM_INFERENCE_SERVICE, "deep-scheduler"),
                "spec": {"model": {"uri": "oci://quay.io/hostile/model:1"},
                         "router": {"scheduler": {"config": {"inline": "@"}}},
                         "template": {"containers": [{"name": "main", "image": "quay.io/hostile/llm:1"}]}}}, lists)
    yield _raw(_notebook("deep-affinity", [{"name": "deep-affinity", "image": "quay.io/hostile/wb:1"}],
                         affinity="@"), maps)


def large_notebooks() -> Iterator[JSON]:
    for i in range(12):
        yield _notebook(f"wide-{i}", [{"name": f"wide-{i}", "image": "quay.io/hostile/wide:1"}],
                        tolerations=[{}] * 480_000)


def many_images() -> Iterator[JSON]:
    for n in range(12):
        yield _notebook(f"valid-{n}", [{"name": f"c{i}", "image": f"quay.io/hostile/v{n}-{i}:1"}
                                       for i in range(28_000)])
    for n in range(8):
        yield _notebook(f"invalid-{n}", [{"name": "c", "image": f"Q{i}"} for i in range(45_000)])


def runtimes_and_services() -> Iterator[JSON]:
    formats = [{"name": f"fmt-{i}", "autoSelect": True, "priority": i % 7} for i in range(201)]
    formats += [{"name": f, "autoSelect": True} for f in FRAMEWORKS]
    for r in range(400):
        yield {**_meta(SERVING_RUNTIME, f"rt-{r}"),
               "spec": {"containers": [{"name": "kserve-container", "image": f"quay.io/hostile/rt:{r}"}],
                        "supportedModelFormats": formats}}
    for s in range(400):
        predictor = {"model": {"modelFormat": {"name": f"fmt-{s % 201}"}}, **{f: {} for f in FRAMEWORKS}}
        yield {**_meta(INFERENCE_SERVICE, f"isvc-{s}"), "spec": {"predictor": predictor},
               "status": {"conditions": [{"type": "Ready", "status": "False"}]}}


def aliased_streams() -> Iterator[JSON]:
    for s in range(10):
        tags = [f"t{i}" for i in range(3_000)]
        yield {**_meta(IMAGE_STREAM_API, f"claims-{s}", labels={"opendatahub.io/notebook-image": "true"}),
               "spec": {"tags": [{"name": t, "from": {"kind": "DockerImage", "name": SPELLING}} for t in tags]},
               "status": {"dockerImageRepository": "", "tags": [
                   {"tag": t, "items": [{"dockerImageReference": f"quay.io/hostile/s{s}@sha256:{i:064x}",
                                         "image": f"sha256:{i:064x}", "created": "2026-11-01T00:00:00Z",
                                         "generation": 1}]} for i, t in enumerate(tags)]}}
    for n in range(10):
        yield _notebook(f"alias-{n}", [{"name": f"c{i}", "image": SPELLING} for i in range(1_000)])


def orphans() -> Iterator[JSON]:
    for i in range(300):
        runtime = "r" * 1_000_000 + str(i) if i < 5 else f"missing-{i}"
        yield {**_meta(INFERENCE_SERVICE, f"orphan-{i}"),
               "spec": {"predictor": {"model": {"runtime": runtime, "modelFormat": {"name": "onnx"}}}},
               "status": {"conditions": [{"type": "Ready", "status": "False"}]}}


def objects() -> Iterator[JSON]:
    yield {"apiVersion": NAMESPACE[0], "kind": NAMESPACE[1],
           "metadata": {"name": NAMESPACE_NAME, "labels": {"opendatahub.io/dashboard": "true"}},
           "status": {"phase": "Active"}}
    yield from deep_objects()
    yield from large_notebooks()
    yield from many_images()
    yield from runtimes_and_services()
    yield from aliased_streams()
    yield from orphans()


def expected_counts() -> dict[str, int]:
    return dict(Counter(o["kind"] for o in objects()))
