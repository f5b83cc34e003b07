"""Discovery as KServe and OpenShift AI ship it (issue 12), on the real API server.

Every test runs `prepull-agent once` against the sample cluster (samples/cluster, stored
through the faithful CRDs of hack/crds), sometimes with objects of its own namespace added,
and reads what the agent found from its JSON report. The KServe file behind each expectation
is named beside it; /work/notes/upstream.md has the facts.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from kubernetes.client.exceptions import ApiException

from agent.puller import puller_view, read_owned
from agent.settings import Settings
from tests.harness.loader import apply_objects, read_objects, request
from tests.integration.conftest import ALL_READS, SAMPLES, read_rules
from tests.integration.test_once import VLLM_219, VLLM_220, candidates

APPS = "redhat-ods-applications"
STORAGE_INITIALIZER = (
    "quay.io/modh/kserve-storage-initializer@sha256:6f44ad9799f371625a1bb06ba88dd5df0bd1fd07827ab45cafd9144935ea8457"
)
GUARD = "quay.io/redhat-ai-services/modelcar-catalog:llama-guard-3-1b"
# samples/cluster/52-llminferenceserviceconfigs.yaml: the well-known configs' images
CONFIG_VLLM = "registry.redhat.io/rhaiis/vllm-cuda-rhel9@sha256:ef8ef2b0be375b022f466cc3f1c10ae0a34a29132a6263f2152bf4fff394fdec"
EPP = ("registry.redhat.io/rhoai/odh-llm-d-inference-scheduler-rhel9@"
       "sha256:c3e912e07b3b663584487df432e72c5cf7ee5df5620fb702abcc6b2cf3e9cbdf")
SIZES = Settings().sizes
# The sample's GPU pool puller (samples/cluster/70-image-puller.yaml): only dry runs use it. A
# candidate lists the objects whose pods could run where the target's puller runs.
GPU_TARGET = "image-puller-gpu/image-puller"


def used_by(doc: dict[str, Any], image: str) -> set[tuple[str, str]]:
    return {(s["kind"], s["name"]) for s in candidates(doc)[image]["sources"]}


def isvc(name: str, namespace: str, **predictor: Any) -> dict[str, Any]:
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}}, **predictor}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


# -- storageUris, worker pods, schemes, the storage initializer ---------------------------------------


def test_predictor_storage_uris_and_worker_pods_are_discovered(agent, sample_cluster):
    doc = agent("once", "--dry-run", target=GPU_TARGET).target()
    found = candidates(doc)
    # kserve/kserve pkg/apis/serving/v1beta1/predictor.go: storageUris[] on the predictor, each oci:// a ModelCar
    assert used_by(doc, GUARD) == {("InferenceService", "llama-70b")} and found[GUARD]["roles"] == ["modelcar"]
    # components/predictor.go: the head takes runtimeVersion (2.20), the worker-container does not (2.19)
    assert ("InferenceService", "llama-70b") in used_by(doc, VLLM_220)
    assert ("InferenceService", "llama-70b") in used_by(doc, VLLM_219)
    # the s3:// base model: the storage initializer (storage_initializer_injector.go CommonStorageInitialization)
    users = used_by(doc, STORAGE_INITIALIZER)
    assert {("InferenceService", "llama-70b"), ("InferenceService", "llama-draft")} <= users
    assert ("InferenceService", "granite-chat") not in users  # a ModelCar
    assert found[STORAGE_INITIALIZER]["roles"] == ["storage-initializer"]
    cpu = used_by(agent("once", "--dry-run", target="openshift-operators/image-puller").target(), STORAGE_INITIALIZER)
    assert {("InferenceService", "iris"), ("InferenceService", "detector")} <= cpu  # gs://, oci+fetch://
    assert ("InferenceService", "orphan") not in cpu and ("InferenceService", "resnet") not in cpu  # pvc://, oci://


def test_oci_native_is_pre_pulled_and_oci_fetch_is_reported_not_pre_pullable(agent, puller, api_client, namespace):
    apply_objects(api_client, [
        isvc("native", namespace, model={"modelFormat": {"name": "sklearn"},
                                         "storageUri": "oci+native://quay.io/example/native-model:1"}),
        isvc("fetch", namespace, storageUris=[{"uri": "oci+fetch://quay.io/example/fetched-model:1"}]),
    ])
    run = agent("once", "--dry-run", target=puller.target)
    assert run.code == 0
    doc = run.target()
    found = candidates(doc)
    # docs/samples/storage/oci-image-volume/README.md: an image volume, in the node's image store
    assert found["quay.io/example/native-model:1"]["roles"] == ["modelcar"]
    # pkg/webhook/admission/pod/oci_fetch.go: downloaded into the pod at every start, by the storage initializer
    assert "quay.io/example/fetched-model:1" not in found
    assert ("InferenceService", "fetch") in used_by(doc, STORAGE_INITIALIZER)
    assert ("InferenceService", "native") not in used_by(doc, STORAGE_INITIALIZER)
    (skipped,) = [n for n in doc["not_prepullable"] if n["source"]["namespace"] == namespace]
    assert (skipped["reference"], skipped["source"]["name"], skipped["field"]) == (
        "quay.io/example/fetched-model:1", "fetch", "spec.predictor.storageUris[0].uri")
    assert "oci+fetch://" in skipped["reason"] and "cannot help" in skipped["reason"]
    assert not [r for r in doc["rejected"] if r["source"]["namespace"] == namespace]  # never "invalid"
    table = agent("once", "--dry-run", target=puller.target, output="table").out
    assert "\nNot pre-pullable (2):\n" in table  # this test's and the sample's team-vision/detector


def test_an_unreadable_kserve_configmap_is_said_once(agent, puller, restricted_kubeconfig):
    run = agent("once", "--dry-run", target=puller.target,
                kubeconfig=restricted_kubeconfig(read_rules(ALL_READS, kserve_config=False)))
    assert run.code == 8  # a source failed: the cycle is partial (exit 8)
    (warning,) = run.logged("inferenceservice-config could not be read")
    assert warning["namespace"] == APPS and "RBAC" in warning["event"]
    assert "ConfigMap" in run.json()["cycle"]["failed"]
    assert STORAGE_INITIALIZER not in candidates(run.target())  # not guessed
    # with the grant of manifests/base/rbac-kserve.yaml (get, that one name), it is read
    granted = agent("once", "--dry-run", target=puller.target, kubeconfig=restricted_kubeconfig(read_rules(ALL_READS)))
    assert granted.json()["cycle"]["failed"] == {} and STORAGE_INITIALIZER in candidates(granted.target())


# -- LLMInferenceServices and their configs ----------------------------------------------------------


def test_llm_images_come_from_the_well_known_configs_and_base_refs(agent, puller, api_client, namespace):
    apply_objects(api_client, [
        {"apiVersion": "serving.kserve.io/v1alpha2", "kind": "LLMInferenceServiceConfig",
         "metadata": {"name": "pinned-vllm", "namespace": namespace},
         "spec": {"template": {"containers": [{"name": "main", "image": "quay.io/example/vllm-pinned:1"}]}}},
        # written at v1alpha1, stored (and read) at v1alpha2
        {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "LLMInferenceService",
         "metadata": {"name": "pinned", "namespace": namespace},
         "spec": {"model": {"uri": "pvc://claim/model"}, "baseRefs": [{"name": "pinned-vllm"}]},
         "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
    ])
    run = agent("once", "--dry-run", target=puller.target)
    doc, gpu = run.target(), agent("once", "--dry-run", target=GPU_TARGET).target()
    # config_merge.go: the well-known kserve-config-llm-template gives granite-llm its vLLM image ...
    assert used_by(gpu, CONFIG_VLLM) == {("LLMInferenceService", "granite-llm")}
    # ... router.scheduler {} takes kserve-config-llm-scheduler's (EPP) image
    assert {("LLMInferenceService", "granite-llm"), ("LLMInferenceService", "qwen-chat")} <= used_by(doc, EPP)
    assert candidates(doc)[EPP]["roles"] == ["router"]
    # hf:// is downloaded by the storage initializer (llmisvc attachModelArtifacts)
    assert ("LLMInferenceService", "granite-llm") in used_by(gpu, STORAGE_INITIALIZER)
    # a baseRef is merged after the well-known config: its image wins
    assert used_by(doc, "quay.io/example/vllm-pinned:1") == {("LLMInferenceService", "pinned")}
    assert ("LLMInferenceService", "pinned") not in used_by(gpu, CONFIG_VLLM)
    listed = {e["kind"]: e for e in run.logged("listed")}
    assert listed["LLMInferenceService"]["version"] == "v1alpha2"
    assert listed["LLMInferenceServiceConfig"]["version"] == "v1alpha2"


def test_without_reading_the_configs_nothing_is_reported_missing(agent, puller, restricted_kubeconfig):
    reads = copy.deepcopy(ALL_READS)
    reads["serving.kserve.io"].remove("llminferenceserviceconfigs")
    run = agent("once", "--dry-run", target=puller.target, kubeconfig=restricted_kubeconfig(read_rules(reads)))
    assert run.code == 8  # a source failed: the cycle is partial
    cycle = run.json()["cycle"]
    assert list(cycle["failed"]) == ["LLMInferenceServiceConfig"] and "403" in cycle["failed"]["LLMInferenceServiceConfig"]
    doc = run.target()
    assert CONFIG_VLLM not in candidates(doc) and EPP not in candidates(doc)  # their images are unknown ...
    assert not [p for p in doc["problems"] if "granite-llm" in p]  # ... and not "not found"
    assert ("InferenceService", "iris") in used_by(doc, "docker.io/kserve/sklearnserver:v0.15.0")  # the rest counts


# -- served versions -------------------------------------------------------------------------------


DSCI_CRD = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/dscinitializations.dscinitialization.opendatahub.io"


def _preferred(api_client, group: str) -> str:
    return request(api_client, "GET", f"/apis/{group}")["preferredVersion"]["version"]


def _set_versions(api_client, versions: list[dict[str, Any]], *, preferred: str) -> None:
    for _ in range(20):
        crd = request(api_client, "GET", DSCI_CRD)
        crd["spec"]["versions"] = versions
        try:
            request(api_client, "PUT", DSCI_CRD, crd)
            break
        except ApiException as e:  # a conflict with the CRD controller's status write: again
            if e.status != 409:
                raise
    deadline = time.monotonic() + 30
    while _preferred(api_client, "dscinitialization.opendatahub.io") != preferred:
        assert time.monotonic() < deadline, "discovery never preferred " + preferred
        time.sleep(0.2)


def test_a_version_the_agent_does_not_know_is_a_warning_not_a_crash(agent, puller, api_client):
    """A newer operator serving DSCInitialization v3: discovery prefers it; the agent reads v2."""
    original = request(api_client, "GET", DSCI_CRD)["spec"]["versions"]
    v3 = {**copy.deepcopy(next(v for v in original if v["name"] == "v2")), "name": "v3", "storage": False}
    _set_versions(api_client, [*original, v3], preferred="v3")
    try:
        run = agent("once", "--dry-run", target=puller.target)
        assert run.code == 0
        (warning,) = run.logged("prefers a version the agent does not read")
        assert (warning["group"], warning["preferred"], warning["reads"]) == (
            "dscinitialization.opendatahub.io", "v3", ["v2", "v1"])
        assert "DSCInitialization" not in run.json()["cycle"]["failed"]
        # the applications namespace still comes from the DSCInitialization (read at v2)
        assert any(s["kind"] == "Template" for c in run.target()["candidates"] for s in c["sources"])
    finally:
        _set_versions(api_client, original, preferred="v2")


# -- workbenches: running means running --------------------------------------------------------------


def notebook(name: str, namespace: str, image: str, status: dict[str, Any], **annotations: str) -> dict[str, Any]:
    return {"apiVersion": "kubeflow.org/v1", "kind": "Notebook",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
            "spec": {"template": {"spec": {"containers": [{"name": name, "image": image}]}}},
            "status": status}


RUNNING = {"readyReplicas": 1, "conditions": [{"type": "Ready", "status": "True"}],
           "containerState": {"running": {"startedAt": "2026-11-25T08:00:00Z"}}}
PULLING = {"readyReplicas": 0, "conditions": [{"type": "Ready", "status": "False"}],
           "containerState": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}


def test_a_notebook_stuck_pulling_its_image_is_wanted_but_not_running(agent, puller, api_client, namespace):
    apply_objects(api_client, [notebook("up", namespace, "quay.io/example/wb-up:1", RUNNING),
                               notebook("stuck", namespace, "quay.io/example/wb-stuck:1", PULLING)])
    found = candidates(agent("once", "--dry-run", target=puller.target).target())
    weights = Settings().weights
    assert found["quay.io/example/wb-up:1"]["score"] == weights.running
    assert found["quay.io/example/wb-stuck:1"]["score"] == weights.starting < weights.running


# -- size estimates and names ------------------------------------------------------------------------


def test_accelerated_images_no_node_reports_are_estimated_larger(agent, puller):
    found = candidates(agent("once", "--dry-run", target=puller.target).target())
    # samples: tensorflow (cuda-notebooks) and rocm-pytorch streams carry recommended-accelerators
    cuda = "quay.io/modh/cuda-notebooks@sha256:0e789ae4a4e2dbf8ddae1b2387c647ef69eee5d3ae45afc624cccd5803cefa3b"
    cpu = "quay.io/acme-geo/geospatial-notebook@sha256:4b03e82b8c5879ffac1a80cdb9909ec56d276df254c689805b66a2891e6d2965"
    assert (found[cuda]["size_bytes"], found[cuda]["size_known"]) == (SIZES.workbench_accelerated, False)
    assert (found[cpu]["size_bytes"], found[cpu]["size_known"]) == (SIZES.workbench, False)


def test_two_custom_images_of_one_repository_get_readable_names(agent, puller, api_client, namespace, second_namespace):
    a = "quay.io/acme/workbench-images@sha256:" + "a" * 64
    b = "quay.io/acme/workbench-images@sha256:" + "b" * 64
    selection = "notebooks.opendatahub.io/last-image-selection"
    apply_objects(api_client, [
        notebook(f"nlp-{i}", ns, a, RUNNING, **{selection: "custom-nlp:2.0"}) for i, ns in
        enumerate((namespace, second_namespace))
    ] + [
        notebook(f"cv-{i}", ns, b, RUNNING, **{selection: "custom-cv:1.4"}) for i, ns in
        enumerate((namespace, second_namespace))
    ])
    run = agent("once", target=puller.target)
    assert run.code == 0
    obj = puller.get()
    owned = read_owned(obj["metadata"]["annotations"])
    names = {image: name for name, image in owned.items() if image in (a, b)}
    assert set(names) == {a, b}
    assert sorted(names.values()) in (["workbench-images", "workbench-images-1-4"],
                                      ["workbench-images", "workbench-images-2-0"])
    assert {puller_view(obj["spec"]["images"])[n] for n in names.values()} == {a, b}



LLM_CRD = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/llminferenceservices.serving.kserve.io"


def test_a_kind_served_only_at_its_older_version_is_read_there(agent, puller, api_client, namespace):
    """An older KServe: LLMInferenceService only at v1alpha1, while the group still serves
    v1alpha2 for LLMInferenceServiceConfig. The agent falls back to v1alpha1 for the kind,
    not to a version its group serves for another kind."""
    from tests.integration.test_once import _recreate_crd, _wait_gone

    original = request(api_client, "GET", LLM_CRD)
    for field in ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"):
        original["metadata"].pop(field, None)
    original.pop("status", None)
    older = copy.deepcopy(original)
    older["spec"]["versions"] = [{**v, "storage": True} for v in older["spec"]["versions"] if v["name"] == "v1alpha1"]
    request(api_client, "DELETE", LLM_CRD)
    try:
        _wait_gone(api_client, "/apis/serving.kserve.io/v1alpha2/llminferenceservices")
        _recreate_crd(api_client, older)
        apply_objects(api_client, [{
            "apiVersion": "serving.kserve.io/v1alpha1", "kind": "LLMInferenceService",
            "metadata": {"name": "old", "namespace": namespace},
            "spec": {"model": {"uri": "pvc://claim/m"},
                     "template": {"containers": [{"name": "main", "image": "quay.io/example/vllm-old:1"}]}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}])
        run = agent("once", "--dry-run", target=puller.target)
        assert run.code == 0 and run.json()["cycle"]["missing"] == {}
        listed = {e["kind"]: e for e in run.logged("listed")}
        assert (listed["LLMInferenceService"]["version"], listed["LLMInferenceServiceConfig"]["version"]) == (
            "v1alpha1", "v1alpha2")
        assert used_by(run.target(), "quay.io/example/vllm-old:1") == {("LLMInferenceService", "old")}
    finally:
        request(api_client, "DELETE", LLM_CRD)
        _wait_gone(api_client, "/apis/serving.kserve.io/v1alpha1/llminferenceservices")
        _recreate_crd(api_client, original)
        # Deleting a CRD deletes its objects: put the sample's back for the tests that follow.
        apply_objects(api_client, [o for o in read_objects(SAMPLES) if o["kind"] == "LLMInferenceService"])
