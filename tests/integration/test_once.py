"""`prepull-agent once` against a real API server holding the sample OpenShift AI cluster."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.puller import OWNED_ANNOTATION, puller_view, read_owned
from tests.harness.loader import apply_objects, read_objects, request
from tests.integration.conftest import ADMIN_ENTRY, ALL_READS, REPO_ROOT, SAMPLES, read_rules

D = "sha256:"
GRANITE = "quay.io/redhat-ai-services/modelcar-catalog:granite-3.1-8b-instruct"
QWEN = "quay.io/redhat-ai-services/modelcar-catalog:qwen2.5-7b-instruct"
VLLM_219 = "quay.io/modh/vllm:rhoai-2.19-cuda"
VLLM_220 = "quay.io/modh/vllm:rhoai-2.20-cuda"
# The sample nodes report sklearnserver:v0.15.0 with this digest: the agent lists the digest.
SKLEARN = "docker.io/kserve/sklearnserver@sha256:9fb0f14e8e8975a29b7b106bdc116a6a7933a604dbd70742adf4b45cd0f52ebe"
WORKER_0_CAPACITY = 128300593152  # 125293548Ki, the smallest worker


def candidates(doc: dict) -> dict[str, dict]:
    """Candidates by image, and by each tag listed as a digest nodes report for it."""
    return {name: c for c in doc["candidates"] for name in (c["image"], *c["tags"])}


def test_dry_run_shows_the_ranked_plan_and_writes_nothing(agent, puller):
    rv = puller.resource_version()
    run = agent("once", "--dry-run", target=puller.target)
    assert run.code == 0, run.events
    doc = run.target()
    assert doc["target"] == {"namespace": puller.namespace, "name": "image-puller"}
    assert doc["changed"] is True and doc["written"] is False
    assert doc["budget_bytes"] == int(0.3 * WORKER_0_CAPACITY)
    found = candidates(doc)
    for image in (GRANITE, QWEN, VLLM_219, VLLM_220, SKLEARN):
        assert image in found, image
    assert found[GRANITE]["size_bytes"] == 16412753920 and found[GRANITE]["size_known"] is True
    assert {"kind": "InferenceService", "namespace": "team-nlp", "name": "granite-chat"} in found[GRANITE]["sources"]
    assert ADMIN_ENTRY in doc["images_after"]
    assert puller.resource_version() == rv
    assert puller.images() == f"{ADMIN_ENTRY};"


def test_the_table_output_has_ranks_reasons_and_a_diff(agent, puller):
    run = agent("once", "--dry-run", target=puller.target, output="table")
    assert run.code == 0
    assert "DECISION" in run.out and "rank 1, score" in run.out
    lines = run.out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#") and "IMAGE" in line)
    end = next(i for i, line in enumerate(lines) if line.startswith("(* size estimated"))
    assert max(len(line) for line in lines[start:end]) <= 120, "the table must fit 120 columns"
    assert "+++ spec.images (planned)" in run.out
    assert "Dry run: nothing written." in run.out


def test_once_writes_the_list_and_keeps_the_administrator_entry(agent, puller):
    run = agent("once", target=puller.target)
    assert run.code == 0, run.events
    doc = run.target()
    assert doc["written"] is True
    obj = puller.get()
    images = obj["spec"]["images"]
    assert images == doc["images_after"]
    assert images.splitlines()[0] == f"{ADMIN_ENTRY};"
    view = puller_view(images)
    owned = read_owned(obj["metadata"]["annotations"])
    assert "ubi-minimal" not in owned
    assert {name: view[name] for name in owned} == owned
    selected = {c["image"]: c["name"] for c in doc["candidates"] if c["selected"]}
    assert owned == {name: image for image, name in selected.items()}
    assert SKLEARN in selected and candidates(doc)[SKLEARN]["tags"] == ["docker.io/kserve/sklearnserver:v0.15.0"] and "quay.io/example/resnet50-modelcar" in " ".join(selected)
    granite = candidates(doc)[GRANITE]
    # granite runs on the GPU pool, which this test's puller (the CPU workers) does not cover
    assert not granite["selected"] and granite["reason"] == (
        "no node of this pool has nvidia.com/gpu; runs only on nodes no puller covers")
    summary = run.logged("cycle finished")[0]
    assert summary["written"] == 1 and summary["listed"]["Notebook"] >= 6
    (updated,) = run.logged("puller updated")
    assert updated["removed"] == []  # the administrator's entry stays
    assert sorted(updated["added"]) == sorted(line.split("=")[0] for line in images.splitlines()[1:] if line)
    assert {c["name"] for c in doc["candidates"] if c["image"] == SKLEARN} <= set(updated["added"])
    listed = {e["kind"]: e for e in run.logged("listed")}
    assert listed["Notebook"]["count"] == summary["listed"]["Notebook"] and listed["Notebook"]["seconds"] >= 0
    assert all(e["log_level"] == "debug" for e in listed.values())


def test_a_second_run_writes_nothing(agent, puller):
    assert agent("once", target=puller.target).code == 0
    rv = puller.resource_version()
    run = agent("once", target=puller.target)
    assert run.code == 0
    assert run.target()["changed"] is False
    assert puller.resource_version() == rv


def test_each_source_contributes_what_it_should(agent, puller):
    doc = agent("once", "--dry-run", target=puller.target).target()
    found = candidates(doc)

    def used_by(image: str) -> set[tuple[str, str]]:
        return {(s["kind"], s["name"]) for s in found[image]["sources"]}

    assert ("InferenceService", "llama-draft") in used_by(VLLM_220)  # runtimeVersion applied
    assert ("InferenceService", "iris") in used_by(SKLEARN)  # auto-selected ClusterServingRuntime
    assert ("LLMInferenceService", "qwen-chat") in used_by(QWEN)
    pytorch = [i for i, c in found.items() if ("Notebook", "vision-train") in used_by(i)]
    assert any("pytorch" in i or "odh-" in i for i in pytorch)
    assert any(("ImageStream", "pytorch") in used_by(i) and ("Notebook", "vision-train") in used_by(i) for i in found), \
        "the internal-registry reference must be tied to the stream tag it means"
    assert any(s["kind"] == "Template" for c in found.values() for s in c["sources"])
    assert any(s["kind"] == "ClusterServingRuntime" for c in found.values() for s in c["sources"])
    assert any("orphan" in p for p in doc["problems"])


def test_a_hostile_notebook_cannot_add_an_entry(agent, puller, api_client, namespace):
    evil = [
        "quay.io/evil/a:1;injected=quay.io/evil/b:1",
        "quay.io/evil/c:1\nx=quay.io/evil/d:1",
        "quay.io/evil/e=1",
        "QUAY.IO/Evil/F:1",
    ]
    apply_objects(api_client, [{
        "apiVersion": "kubeflow.org/v1", "kind": "Notebook",
        "metadata": {"name": f"evil-{i}", "namespace": namespace},
        "spec": {"template": {"spec": {"containers": [{"name": f"evil-{i}", "image": image}]}}},
    } for i, image in enumerate(evil)])
    run = agent("once", target=puller.target)
    assert run.code == 0
    rejected = {(r["source"]["name"], r["field"]) for r in run.target()["rejected"]}
    for i in range(len(evil)):
        assert (f"evil-{i}", f"spec.template.spec.containers[evil-{i}].image") in rejected
    assert ("sneaky", "spec.template.spec.containers[sneaky].image") in rejected
    images = puller.images()
    assert "evil" not in images and "injected" not in images and "pwn" not in images
    view = puller_view(images)
    assert len(view) == len(images.strip().splitlines())  # one entry per line, none split or merged


# RHOAI may ship without the ClusterServingRuntime CRD (issue 12): the agent must work without it.
@pytest.mark.parametrize(("plural", "kind", "lost"), [
    ("llminferenceservices", "LLMInferenceService", QWEN),
    ("clusterservingruntimes", "ClusterServingRuntime", SKLEARN),
])
def test_a_missing_crd_is_skipped_with_one_warning(agent, puller, api_client, plural, kind, lost):
    crd_path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.serving.kserve.io"
    crd = request(api_client, "GET", crd_path)
    request(api_client, "DELETE", crd_path)
    try:
        _wait_gone(api_client, f"/apis/serving.kserve.io/v1alpha1/{plural}")
        run = agent("once", "--dry-run", target=puller.target)
        assert run.code == 0
        assert run.json()["cycle"]["missing"].keys() == {kind}
        assert len(run.logged("kind not served")) == 1
        assert lost not in candidates(run.target())
    finally:
        for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"):
            crd["metadata"].pop(key, None)
        crd.pop("status", None)
        _recreate_crd(api_client, crd)
        # Deleting a CRD deletes its objects: put the sample's back for the tests that follow.
        apply_objects(api_client, [o for o in read_objects(SAMPLES) if o["kind"] == kind])


def test_a_denied_source_never_shrinks_the_list(agent, puller, restricted_kubeconfig):
    assert agent("once", target=puller.target).code == 0
    before, rv = puller.images(), puller.resource_version()
    without_notebooks = {g: [r for r in res if r != "notebooks"] for g, res in ALL_READS.items()}
    kubeconfig = restricted_kubeconfig(read_rules({g: r for g, r in without_notebooks.items() if r}))
    run = agent("once", target=puller.target, kubeconfig=kubeconfig)
    assert run.code == 8, run.events  # written, but a kind could not be listed: the CronJob's Job shows it
    assert "Notebook" in run.json()["cycle"]["failed"]
    assert "1 kind(s) could not be listed (Notebook)" in run.err
    assert puller.images() == before
    # Not even the record of the kinds each entry was found in changes: Notebooks stay in it
    # until they are listed again (else a later cycle could drop an entry they still use).
    assert puller.resource_version() == rv and run.target()["written"] is False
    assert run.logged("listing failed")


def test_as_its_own_service_account_the_agent_reads_and_writes(agent, puller, restricted_kubeconfig):
    kubeconfig = restricted_kubeconfig(read_rules(ALL_READS))
    run = agent("once", target=puller.target, kubeconfig=kubeconfig)
    assert run.code == 0, run.events
    assert run.json()["cycle"]["failed"] == {}
    assert SKLEARN in puller.images()


def test_a_conflicting_edit_is_never_overwritten(agent, puller, mocker):
    """Someone edits the CR between the agent's read and its write: the write meets a real
    409, the agent re-reads, re-plans, and the edit survives."""
    import agent.cycle as cycle

    real_read = cycle.read_target
    edits = []

    def read_then_edit(kube, target, **kw):
        found = real_read(kube, target, **kw)
        if not edits:
            edits.append(puller.patch({"spec": {"images": f"{ADMIN_ENTRY};\nmine=quay.io/admin/tool:1;"}}))
        return found

    mocker.patch.object(cycle, "read_target", side_effect=read_then_edit)
    run = agent("once", target=puller.target)
    assert run.code == 0, run.events
    assert run.logged("re-reading it")
    view = puller_view(puller.images())
    assert view["mine"] == "quay.io/admin/tool:1" and view["ubi-minimal"].startswith("registry.access")
    assert SKLEARN in view.values()


# -- exit codes and messages ----------------------------------------------------------------------


def test_a_missing_target_fails_with_a_clear_message(agent, sample_cluster):
    run = agent("once", "--dry-run", target="openshift-operators/no-such-puller")
    assert run.code == 4
    assert "KubernetesImagePuller openshift-operators/no-such-puller does not exist" in run.err


def test_an_unreachable_api_server_exits_3(tmp_path: Path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: x}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n"
    )
    proc = _cli("once", "--dry-run", "--kubeconfig", str(kubeconfig))
    assert proc.returncode == 3
    assert "cannot use the API server at https://127.0.0.1:1" in proc.stderr


def test_a_bad_config_stops_the_agent_naming_the_key(tmp_path: Path):
    config = tmp_path / "config.yaml"
    config.write_text("selection:\n  max_imgs: 3\n")
    proc = _cli("once", "--dry-run", "--config", str(config))
    assert proc.returncode == 2
    assert "max_imgs" in proc.stderr and str(config) in proc.stderr


def test_python_dash_m_agent_runs_the_cli(sample_cluster, puller):
    proc = _cli("once", "--dry-run", "--output", "json", "--kubeconfig", str(sample_cluster.kubeconfig),
                "--target", puller.target)
    assert proc.returncode == 0, proc.stderr
    assert '"changed": true' in proc.stdout
    assert "cycle finished" in proc.stderr


# -- helpers ------------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("PREPULL_")}
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, timeout=120,
                          cwd=REPO_ROOT, env=env)


def _wait_gone(api_client, path: str, timeout: float = 30) -> None:
    import time

    from kubernetes.client.exceptions import ApiException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            request(api_client, "GET", path)
        except ApiException as e:
            if e.status == 404:
                return
            raise
        time.sleep(0.2)
    pytest.fail(f"{path} is still served")


def _recreate_crd(api_client, crd: dict) -> None:
    import time

    from kubernetes.client.exceptions import ApiException

    deadline = time.monotonic() + 60
    while True:
        try:
            apply_objects(api_client, [crd])
            return
        except ApiException as e:  # the old one may still be terminating
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
            del e
