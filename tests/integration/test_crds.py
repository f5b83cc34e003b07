"""The CRDs in hack/crds behave like the real ones for what the agent reads.

Each case sends the API server an object shape and checks what the real CRD (or, for
ImageStream and Template, the OpenShift API server) does with it: rejects it with 422, or
stores it with a field pruned, defaulted or kept. The upstream file behind each expectation is
named beside it; hack/crds/README.md explains what is and is not modelled.

The last test loads the sample cluster and checks that every source reads the stored objects
exactly as it reads the files: a sample that relied on a shape the schema prunes would fail it.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from agent.sources.imagestreams import read_image_stream
from agent.sources.notebooks import read_notebook
from agent.sources.serving import (
    read_inference_service,
    read_llm_inference_service,
    read_serving_runtime,
    read_template,
)
from tests.harness.loader import Discovery, read_objects, request
from tests.integration.conftest import SAMPLES

JSON = dict[str, Any]
DIGEST = "@sha256:" + "a" * 64
APPS = "redhat-ods-applications"


def isvc(predictor: JSON) -> JSON:
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "m"}, "spec": {"predictor": predictor}}


def runtime(spec: JSON) -> JSON:
    return {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ServingRuntime", "metadata": {"name": "r"},
            "spec": spec}


def llm(spec: JSON, version: str = "v1alpha2") -> JSON:
    return {"apiVersion": f"serving.kserve.io/{version}", "kind": "LLMInferenceService",
            "metadata": {"name": "l"}, "spec": spec}


def notebook(containers: list[JSON]) -> JSON:
    return {"apiVersion": "kubeflow.org/v1", "kind": "Notebook", "metadata": {"name": "nb"},
            "spec": {"template": {"spec": {"containers": containers}}}}


MAIN = {"name": "kserve-container", "image": "quay.io/x/vllm" + DIGEST}
MODEL = {"modelFormat": {"name": "vLLM"}, "storageUri": "oci://quay.io/x/model:1"}

# (id, object, why upstream rejects it)
REJECTED = [
    ("isvc-without-predictor",
     {**isvc({}), "spec": {}},
     "config/crd/full/serving.kserve.io_inferenceservices.yaml: spec required [predictor]"),
    ("isvc-storageUris-entry-is-a-string",
     isvc({"model": MODEL, "storageUris": ["s3://bucket/x"]}),
     "pkg/apis/serving/v1beta1/predictor.go: StorageUri is an object"),
    ("isvc-storageUris-entry-without-uri",
     isvc({"model": MODEL, "storageUris": [{"mountPath": "/mnt/models"}]}),
     "predictor.go: uri +kubebuilder:validation:Required"),
    ("isvc-storageUris-empty",
     isvc({"model": MODEL, "storageUris": []}),
     "predictor.go: +kubebuilder:validation:MinItems=1"),
    ("isvc-storageUris-relative-mountPath",
     isvc({"model": MODEL, "storageUris": [{"uri": "s3://b/x", "mountPath": "models"}]}),
     "predictor.go: mountPath Pattern ^/.*"),
    ("isvc-modelFormat-without-name",
     isvc({"model": {"modelFormat": {"version": "1"}}}),
     "predictor_model.go: ModelFormat.Name is required"),
    ("isvc-container-without-name",
     isvc({"containers": [{"image": "quay.io/x/y:1"}]}),
     "podspec.go: corev1.Container name is required"),
    ("runtime-without-containers",
     runtime({"supportedModelFormats": [{"name": "vLLM"}]}),
     "config/crd/full/serving.kserve.io_servingruntimes.yaml: spec required [containers]"),
    ("runtime-workerSpec-without-containers",
     runtime({"containers": [MAIN], "workerSpec": {"pipelineParallelSize": 2}}),
     "serving.kserve.io_servingruntimes.yaml: workerSpec required [containers]"),
    ("runtime-priority-zero",
     runtime({"containers": [MAIN], "supportedModelFormats": [{"name": "vLLM", "priority": 0}]}),
     "servingruntime_types.go: Priority +kubebuilder:validation:Minimum=1"),
    ("llm-model-without-uri",
     llm({"model": {"name": "x"}}),
     "llm_inference_service_types.go: LLMModelSpec.URI has no omitempty"),
    ("llm-template-without-containers",
     llm({"model": {"uri": "hf://x/y"}, "template": {"tolerations": []}}),
     "template is a corev1.PodSpec: containers required"),
    ("llm-duplicate-container-names",
     llm({"model": {"uri": "hf://x/y"}, "template": {"containers": [{"name": "main", "image": "a:1"},
                                                                    {"name": "main", "image": "b:1"}]}}),
     "corev1.PodSpec containers: +listType=map +listMapKey=name"),
    ("llm-scheduler-template-without-containers",
     llm({"model": {"uri": "hf://x/y"}, "router": {"scheduler": {"template": {}}}}),
     "SchedulerSpec.Template is a corev1.PodSpec"),
    ("notebook-container-without-image",
     notebook([{"name": "nb"}]),
     "components/notebook-controller/config/crd/patches/validation_patches.yaml: required [name, image]"),
    ("notebook-without-containers",
     notebook([]),
     "validation_patches.yaml: minItems 1"),
    ("dsci-bad-applications-namespace",
     {"apiVersion": "dscinitialization.opendatahub.io/v2", "kind": "DSCInitialization",
      "metadata": {"name": "bad-dsci"}, "spec": {"applicationsNamespace": "Not_A_Namespace"}},
     "api/dscinitialization/v2/dscinitialization_types.go: Pattern"),
    ("template-without-objects",
     {"apiVersion": "template.openshift.io/v1", "kind": "Template", "metadata": {"name": "t"}},
     "openshift/api template/v1/types.go: objects has no omitempty"),
    ("imagestream-tag-without-name",
     {"apiVersion": "image.openshift.io/v1", "kind": "ImageStream", "metadata": {"name": "s"},
      "spec": {"tags": [{"from": {"kind": "DockerImage", "name": "quay.io/x/y:1"}}]}},
     "openshift/api image/v1: TagReference.Name; tag names are validated"),
]


@pytest.fixture
def discovery(api_client: ApiClient) -> Discovery:
    return Discovery(api_client)


def create(api_client: ApiClient, discovery: Discovery, obj: JSON, namespace: str) -> JSON:
    res = discovery.resource(obj["apiVersion"], obj["kind"])
    return request(api_client, "POST", res.path(namespace), obj)


def path_of(discovery: Discovery, obj: JSON, namespace: str, sub: str | None = None) -> str:
    res = discovery.resource(obj["apiVersion"], obj["kind"])
    return res.path(namespace, obj["metadata"]["name"], sub)


@pytest.mark.parametrize(("obj", "why"), [(o, w) for _, o, w in REJECTED], ids=[i for i, _, _ in REJECTED])
def test_shapes_the_real_api_rejects_are_rejected(
    api_client: ApiClient, discovery: Discovery, namespace: str, obj: JSON, why: str
) -> None:
    with pytest.raises(ApiException) as refused:
        create(api_client, discovery, obj, namespace)
    assert refused.value.status == 422, why


def dig(obj: Any, *keys: str | int) -> Any:
    for key in keys:
        obj = obj[key]
    return obj


def test_model_storage_uris_is_pruned_and_predictor_storage_uris_kept_with_its_default(
    api_client: ApiClient, discovery: Discovery, namespace: str
) -> None:
    # kserve/kserve pkg/apis/serving/v1beta1/predictor.go: storageUris sits on the predictor;
    # ModelSpec has no such field, so the real CRD drops it.
    stored = create(api_client, discovery, isvc({
        "model": {**MODEL, "storageUris": [{"uri": "oci://quay.io/x/draft:1"}]},
        "storageUris": [{"uri": "oci://quay.io/x/base:1"}, {"uri": "s3://b/adapter", "mountPath": "/mnt/a"}],
    }), namespace)
    predictor = stored["spec"]["predictor"]
    assert "storageUris" not in predictor["model"]
    assert predictor["storageUris"] == [
        {"uri": "oci://quay.io/x/base:1", "mountPath": "/mnt/models"},
        {"uri": "s3://b/adapter", "mountPath": "/mnt/a"},
    ]


def test_worker_spec_keeps_containers_and_parallelism(api_client: ApiClient, discovery: Discovery, namespace: str) -> None:
    worker = {"pipelineParallelSize": 2, "tensorParallelSize": 1,
              "containers": [{"name": "worker-container", "image": "quay.io/x/vllm:1"}]}
    stored = create(api_client, discovery, isvc({"model": MODEL, "workerSpec": worker}), namespace)
    assert stored["spec"]["predictor"]["workerSpec"] == worker
    rt = create(api_client, discovery, runtime({"containers": [MAIN], "workerSpec": worker}), namespace)
    assert rt["spec"]["workerSpec"] == worker


def test_isvc_status_keeps_unknown_fields_as_upstream_preserves_them(
    api_client: ApiClient, discovery: Discovery, namespace: str
) -> None:
    obj = isvc({"model": MODEL})
    current = create(api_client, discovery, obj, namespace)
    current["status"] = {"deploymentMode": "RawDeployment", "conditions": [{"type": "Ready", "status": "True"}]}
    stored = request(api_client, "PUT", path_of(discovery, obj, namespace, "status"), current)
    assert stored["status"]["deploymentMode"] == "RawDeployment"


def test_runtime_status_is_pruned_whole_and_has_no_subresource(
    api_client: ApiClient, discovery: Discovery, namespace: str
) -> None:
    # serving.kserve.io_servingruntimes.yaml: `status: {type: object}`, `subresources: {}`.
    obj = {**runtime({"containers": [MAIN]}), "status": {"conditions": [{"type": "Ready"}]}}
    stored = create(api_client, discovery, obj, namespace)
    assert stored.get("status") == {}
    assert not discovery.resource(obj["apiVersion"], obj["kind"]).has_status


def test_llm_v1alpha1_objects_are_read_at_the_storage_version(
    api_client: ApiClient, discovery: Discovery, namespace: str
) -> None:
    spec = {"model": {"uri": "oci://quay.io/x/m:1"}, "baseRefs": [{"name": "my-config"}],
            "template": {"containers": [{"name": "main", "image": "quay.io/x/vllm:1"}]},
            "router": {"scheduler": {"template": {"containers": [{"name": "epp", "image": "quay.io/x/epp:1"}]}}}}
    obj = llm(spec, "v1alpha1")
    create(api_client, discovery, obj, namespace)
    as_v2 = request(api_client, "GET", path_of(discovery, llm(spec), namespace))
    assert as_v2["apiVersion"] == "serving.kserve.io/v1alpha2"
    assert as_v2["spec"] == spec


def test_notebook_status_requires_what_the_controller_always_writes(
    api_client: ApiClient, discovery: Discovery, namespace: str
) -> None:
    # kubeflow notebook_types.go: conditions, readyReplicas and containerState have no omitempty.
    obj = notebook([{"name": "nb", "image": "quay.io/x/nb:1"}])
    current = create(api_client, discovery, obj, namespace)
    status_path = path_of(discovery, obj, namespace, "status")
    with pytest.raises(ApiException) as refused:
        request(api_client, "PUT", status_path, {**current, "status": {"readyReplicas": 0, "conditions": []}})
    assert refused.value.status == 422
    written = {"readyReplicas": 0, "conditions": [], "containerState": {"waiting": {"reason": "ImagePullBackOff"}}}
    stored = request(api_client, "PUT", status_path, {**current, "status": written})
    assert stored["status"] == written


def test_dsci_v1_is_served_and_stored_as_v2_with_an_immutable_applications_namespace(
    api_client: ApiClient, discovery: Discovery, namespace: str
) -> None:
    obj = {"apiVersion": "dscinitialization.opendatahub.io/v1", "kind": "DSCInitialization",
           "metadata": {"name": f"dsci-{namespace}"}, "spec": {"applicationsNamespace": "odh-apps"}}
    create(api_client, discovery, obj, "")
    try:
        v2 = {**obj, "apiVersion": "dscinitialization.opendatahub.io/v2"}
        stored = request(api_client, "GET", path_of(discovery, v2, ""))
        assert stored["spec"]["applicationsNamespace"] == "odh-apps"
        stored["spec"]["applicationsNamespace"] = "other"
        with pytest.raises(ApiException) as refused:
            request(api_client, "PUT", path_of(discovery, v2, ""), stored)
        assert refused.value.status == 422
    finally:
        request(api_client, "DELETE", path_of(discovery, obj, ""))


def test_unknown_fields_of_openshift_types_are_dropped(api_client: ApiClient, discovery: Discovery, namespace: str) -> None:
    template = {"apiVersion": "template.openshift.io/v1", "kind": "Template", "metadata": {"name": "t"},
                "objects": [{"kind": "ServingRuntime", "anything": {"goes": [1]}}], "spec": {"x": 1}}
    stored = create(api_client, discovery, template, namespace)
    assert "spec" not in stored and stored["objects"] == template["objects"]
    stream = {"apiVersion": "image.openshift.io/v1", "kind": "ImageStream", "metadata": {"name": "s"},
              "spec": {"tags": [{"name": "1", "imgae": "typo"}]}}
    assert create(api_client, discovery, stream, namespace)["spec"]["tags"] == [{"name": "1"}]


Reader = Callable[[JSON], Any]
READERS: dict[str, Reader] = {
    "ImageStream": lambda o: read_image_stream(o, applications_namespace=APPS),
    "Notebook": read_notebook,
    "ServingRuntime": lambda o: read_serving_runtime(o, kind="ServingRuntime", applications_namespace=APPS),
    "ClusterServingRuntime": lambda o: read_serving_runtime(o, kind="ClusterServingRuntime",
                                                            applications_namespace=APPS),
    "Template": read_template,
    "InferenceService": read_inference_service,
    "LLMInferenceService": read_llm_inference_service,
}


def _comparable(findings: Any) -> Any:
    out = copy.copy(vars(findings))
    if "runtimes" in out:  # a runtime's creation time comes from the server, not the file
        out["runtimes"] = [dataclasses.replace(r, created="") for r in out["runtimes"]]
    return out


def test_every_sample_reads_the_same_after_the_api_server_stored_it(sample_cluster: Any, api_client: ApiClient) -> None:
    discovery = Discovery(api_client)
    checked = 0
    for obj in read_objects(SAMPLES):
        reader = READERS.get(obj["kind"])
        if reader is None:
            continue
        ns = obj["metadata"].get("namespace", "")
        stored = request(api_client, "GET", path_of(discovery, obj, ns))
        stored.setdefault("status", {})
        written = {**obj, "status": obj.get("status", {})}
        assert _comparable(reader(stored)) == _comparable(reader(written)), f"{obj['kind']} {ns}/{obj['metadata']['name']}"
        checked += 1
    assert checked >= 20
