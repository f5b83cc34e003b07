"""What a project member can write into their own objects cannot stop or starve the agent.

Against the real API server (which stores all of these; the CRDs preserve unknown fields
where the real ones do): an object nested deeper than `json.loads` can read, Notebooks of
1.4 MB each, Notebooks naming tens of thousands of images, InferenceServices naming
runtimes with names of 100 KB. Memory is measured on the agent as a process of its own
(its peak RSS, `VmHWM`) against the memory limit the manifests give it.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient

from agent.kube import kinds
from agent.sources.common import MAX_CONTAINERS, MAX_TEXT
from tests.harness.cluster import LocalCluster
from tests.harness.loader import apply_objects
from tests.integration.conftest import REPO_ROOT

DEPTH = 1_500  # the API server accepts 10,000; json.loads gives up near 1,000
MiB = 1024 * 1024


def raw(api_client: ApiClient, method: str, path: str, body: bytes | None = None) -> int:
    """A request whose body is sent and answer kept as bytes: the client's own encoder,
    and `json.loads` of the answer, would recurse over a deep object."""
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    api_client.update_params_for_auth(headers, [], ["BearerToken"])
    url = api_client.configuration.host.rstrip("/") + path
    resp = api_client.rest_client.pool_manager.request(method, url, body=body, headers=headers, retries=False)
    assert resp.status < 300, resp.data[:500]
    return int(resp.status)


@pytest.fixture
def deep_objects(api_client: ApiClient) -> Iterator[Callable[[str, str, bytes], None]]:
    """`create(collection path, name, body)`; deleted afterwards without being read back
    (the namespace clean-up decodes what it deletes)."""
    created: list[str] = []

    def create(path: str, name: str, body: bytes) -> None:
        raw(api_client, "POST", path, body)
        created.append(f"{path}/{name}")

    yield create
    for path in created:
        raw(api_client, "DELETE", path)


def nested(depth: int, *, maps: bool) -> str:
    return '{"a":' * depth + "1" + "}" * depth if maps else "[" * depth + "]" * depth


def llm_service(name: str, namespace: str, image: str, *, deep: str | None = None) -> bytes:
    obj = {
        "apiVersion": kinds.LLM_INFERENCE_SERVICE.api_version, "kind": "LLMInferenceService",  # as the path it is sent to
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"model": {"uri": f"oci://{image}-model:1"}, "router": {"scheduler": {"config": {"inline": "@"}}},
                 "template": {"containers": [{"name": "main", "image": image}]}},
    }
    return json.dumps(obj).replace('"@"', deep or "{}").encode()


def notebook(name: str, namespace: str, containers: list[dict[str, Any]], **pod: Any) -> dict[str, Any]:
    return {"apiVersion": "kubeflow.org/v1", "kind": "Notebook", "metadata": {"name": name, "namespace": namespace},
            "spec": {"template": {"spec": {"containers": containers, **pod}}}}


def rejections_of(doc: dict[str, Any], namespace: str) -> dict[tuple[str, str], list[dict[str, Any]]]:
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in doc["rejected"]:
        if r["source"]["namespace"] == namespace:
            found.setdefault((r["source"]["kind"], r["source"]["name"]), []).append(r)
    return found


# -- stopped: one deeply nested object -------------------------------------------------------------


@pytest.mark.parametrize("page_size", ["500", "2"])
def test_a_deeply_nested_object_is_rejected_by_name_and_the_rest_of_its_kind_is_read(
        agent, puller, deep_objects, namespace, monkeypatch, page_size):
    """Today `json.loads` raises RecursionError on the page and `once` exits 1: nothing is
    planned for anyone. The real LLMInferenceService CRD keeps two free-form fields as they
    are written (`spec.router.scheduler.config.inline`, `spec.model.lora.adapters`): a deep
    map in one and a deep list in the other are both stored. (A Notebook's pod spec has no
    free-form field: the real CRD prunes a deep map there, and so does the local one.)"""
    monkeypatch.setenv("PREPULL_KUBE__PAGE_SIZE", page_size)
    path = kinds.LLM_INFERENCE_SERVICE.path(namespace=namespace)
    deep_objects(path, "a-fine", llm_service("a-fine", namespace, "quay.io/tenant/fine-a:1"))
    deep_objects(path, "deep", llm_service("deep", namespace, "quay.io/tenant/hidden:1", deep=nested(DEPTH, maps=True)))
    deep_lora = json.loads(llm_service("deep-lora", namespace, "quay.io/tenant/lora:1"))
    deep_lora["spec"]["model"]["lora"] = {"adapters": "@"}
    deep_objects(path, "deep-lora", json.dumps(deep_lora).replace('"@"', nested(DEPTH, maps=False)).encode())
    deep_objects(path, "z-fine", llm_service("z-fine", namespace, "quay.io/tenant/fine-z:1"))

    run = agent("once", target=puller.target)
    assert run.code == 0, (run.err, run.events)
    doc, target = run.json(), run.target()
    assert doc["cycle"]["failed"] == {} and target["written"] is True
    assert {"LLMInferenceService", "Node"} <= set(doc["cycle"]["listed"])
    rejected = rejections_of(target, namespace)
    for key in (("LLMInferenceService", "deep"), ("LLMInferenceService", "deep-lora")):
        (r,) = rejected[key]
        assert r["reason"].startswith("is nested deeper than the ") and r["reason"].endswith(" levels the JSON reader allows")
    images = {c["image"] for c in target["candidates"]}
    assert {"quay.io/tenant/fine-a:1", "quay.io/tenant/fine-z:1"} <= images
    assert "quay.io/tenant/hidden:1" not in images and "quay.io/tenant/lora:1" not in images
    assert run.logged("reference rejected")  # the deep objects are named in the log too


# -- starved: memory -------------------------------------------------------------------------------


def memory_limit() -> int:
    """The agent container's memory limit in the Deployment overlay, in bytes."""
    manifest = yaml.safe_load((REPO_ROOT / "manifests/overlays/deployment/deployment.yaml").read_text())
    (container,) = [c for c in manifest["spec"]["template"]["spec"]["containers"] if c["name"] == "agent"]
    limit = container["resources"]["limits"]["memory"]
    assert limit.endswith("Mi"), limit
    return int(limit[:-2]) * MiB


PEAK = "VmHWM-kB:"
CHILD = (
    "import sys\n"
    "from agent.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "hwm = [line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')][0]\n"
    f"print('{PEAK}' + hwm, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def run_alone(cluster: LocalCluster, target: str) -> tuple[int, dict[str, Any], int, str]:
    """`once --dry-run --output json` as a process of its own: (exit code, output, peak RSS
    in bytes, standard error). Its address space is capped at 3 GiB, so an agent that
    would blow up fails the test instead of the machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREPULL_")}

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 * 1024 * MiB, 3 * 1024 * MiB))

    proc = subprocess.run(
        [sys.executable, "-c", CHILD, "once", "--dry-run", "--output", "json",
         "--kubeconfig", str(cluster.kubeconfig), "--target", target, "--log-format", "json"],
        capture_output=True, text=True, timeout=900, cwd=REPO_ROOT, env=env, preexec_fn=cap, check=False,
    )
    peaks = [line[len(PEAK):] for line in proc.stderr.splitlines() if line.startswith(PEAK)]
    peak = int(peaks[-1]) * 1024 if peaks else 0
    doc = json.loads(proc.stdout) if proc.returncode == 0 else {}
    return proc.returncode, doc, peak, proc.stderr


def load(api_client: ApiClient, objs: list[dict[str, Any]]) -> None:
    for obj in objs:  # one at a time: each is over a megabyte
        apply_objects(api_client, [obj])


def test_a_dozen_notebooks_of_1_4_mb_fit_in_the_memory_limit(cluster, puller, api_client, namespace):
    """480,000 empty tolerations (valid in the Notebook CRD) make 1.44 MB of JSON and 35 MB of
    Python objects each: today one page of all twelve peaks at ~500 MiB, over the 384 MiB
    limit. Now a page costs at most what `agent.kube.client` bounds, and the workbenches
    are still read."""
    load(api_client, [notebook(f"wide-{i}", namespace, [{"name": f"wide-{i}", "image": "quay.io/tenant/wide:1"}],
                               tolerations=[{}] * 480_000) for i in range(12)])
    code, doc, peak, err = run_alone(cluster, puller.target)
    assert code == 0, err[-3000:]
    assert doc["cycle"]["failed"] == {}
    wide = {c["image"]: c for c in doc["targets"][0]["candidates"]}["quay.io/tenant/wide:1"]
    assert len(wide["sources"]) == 12
    assert peak < memory_limit(), f"peak RSS {peak / MiB:.0f} MiB"


def test_an_object_too_large_to_decode_is_rejected_by_name_and_the_rest_of_its_kind_is_read(
        agent, puller, deep_objects, namespace):
    """115,000 nested one-key maps in a free-form field the real CRD keeps as written
    (`spec.router.scheduler.config.inline`): 1.4 MB on the wire, over the decoded bound once
    parsed. It is skipped, named from the metadata-only list, and the listing goes on past
    it. (A Notebook's pod spec has no free-form field: a real server prunes such maps.)"""
    path = kinds.LLM_INFERENCE_SERVICE.path(namespace=namespace)
    dense = json.dumps({"plugins": [{"": {"": 0}}] * 115_000})
    deep_objects(path, "a-fine", llm_service("a-fine", namespace, "quay.io/tenant/fine:1"))
    deep_objects(path, "dense", llm_service("dense", namespace, "quay.io/tenant/dense:1", deep=dense))
    deep_objects(path, "z-fine", llm_service("z-fine", namespace, "quay.io/tenant/fine:2"))
    run = agent("once", "--dry-run", target=puller.target)
    assert run.code == 0, run.events
    doc, target = run.json(), run.target()
    assert doc["cycle"]["failed"] == {}
    (r,) = rejections_of(target, namespace)[("LLMInferenceService", "dense")]
    assert r["reason"].startswith("is larger than the agent reads in one answer")
    images = {c["image"] for c in target["candidates"]}
    assert {"quay.io/tenant/fine:1", "quay.io/tenant/fine:2"} <= images and "quay.io/tenant/dense:1" not in images


@pytest.mark.parametrize("shape", ["valid", "invalid"])
def test_notebooks_naming_tens_of_thousands_of_images_fit_in_the_memory_limit(
        cluster, puller, api_client, namespace, shape):
    """12 Notebooks x 28,000 distinct valid images (today: 336,000 candidates, 1.4 GiB) or
    8 x 45,000 invalid ones (today: 360,000 rejections kept, 0.9 GiB). Each Notebook is read
    up to MAX_CONTAINERS containers, and the rest is one rejection naming it."""
    count, per = (12, 28_000) if shape == "valid" else (8, 45_000)

    def image(n: int, i: int) -> str:
        return f"quay.io/t/i{n}-{i}:1" if shape == "valid" else f"Q{i}"

    load(api_client, [notebook(f"many-{n}", namespace, [{"name": f"c{i}", "image": image(n, i)} for i in range(per)])
                      for n in range(count)])
    code, doc, peak, err = run_alone(cluster, puller.target)
    assert code == 0, err[-3000:]
    assert peak < memory_limit(), f"peak RSS {peak / MiB:.0f} MiB"
    (target,) = doc["targets"]
    rejected = rejections_of(target, namespace)
    for n in range(count):
        excess = [r for r in rejected[("Notebook", f"many-{n}")] if r["field"] == "spec.template.spec.containers"]
        assert [r["reason"] for r in excess] == [f"has {per:,} entries; only the first {MAX_CONTAINERS} are read"]
    mine = [c for c in target["candidates"] if any(s["namespace"] == namespace for s in c["sources"])]
    assert len(mine) == (count * MAX_CONTAINERS if shape == "valid" else 0)
    logged = [line for line in err.splitlines() if '"reference rejected"' in line]
    assert len(logged) <= 20


# -- starved: logs ----------------------------------------------------------------------------------


def test_hundreds_of_unresolvable_services_with_huge_names_log_a_few_short_lines(agent, puller, api_client, namespace):
    """Today every unresolved InferenceService is one log line carrying its runtime name
    whole: 300 services with five 1 MB names were 8 MiB on stderr in one dry run."""
    def isvc(i: int) -> dict[str, Any]:
        runtime = ("r" * 100_000 + str(i)) if i < 3 else f"missing-{i}"
        return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                "metadata": {"name": f"orphan-{i}", "namespace": namespace},
                "spec": {"predictor": {"model": {"runtime": runtime, "modelFormat": {"name": "onnx"}}}}}

    load(api_client, [isvc(i) for i in range(40)])
    run = agent("once", "--dry-run", target=puller.target)
    assert run.code == 0, run.events
    assert len([e for e in run.events if e["event"] == "not resolved"]) == 20
    (more,) = run.logged("more references rejected or not resolved")
    assert more["not_resolved"] >= 40 - 20
    for event in run.events:
        for key, value in event.items():
            assert len(str(value)) <= 4 * MAX_TEXT or key == "listed", (event["event"], key, len(str(value)))
    mine = [p for p in run.target()["problems"] if f"{namespace}/orphan-" in p]
    assert len(mine) == 40 and max(len(p) for p in mine) < 4 * MAX_TEXT
