"""KServe as it ships: storage URIs and their schemes, the storage initializer, worker pods.

Plain dicts in, usages out (agent.storage, agent.sources.serving, agent.sources.kserve,
agent.resolve); every expectation names the KServe file it follows.
"""

from __future__ import annotations

import json
import re

import pytest

from agent.model import KindName, Role, State
from agent.placement import Toleration
from agent.refs import parse_reference
from agent.resolve import resolve
from agent.sources import Observation
from agent.sources.kserve import read_cluster_storage_container, read_inference_service_config
from agent.sources.serving import read_inference_service, read_serving_runtime
from agent.storage import Scheme, StorageContainer, initializer_uri, normalized_oci, scheme_of, storage_container_for

APPS = "redhat-ods-applications"
D1 = "sha256:" + "1" * 64
INIT = "quay.io/modh/kserve-storage-initializer@" + D1
GPU = {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


# -- schemes (kserve/kserve pkg/utils/utils_test.go TestParseOciScheme) -----------------------------


@pytest.mark.parametrize(
    ("uri", "scheme"),
    [
        ("oci://quay.io/m/granite:8b", Scheme.MODELCAR),
        ("oci+modelcar://quay.io/m/granite:8b", Scheme.MODELCAR),
        ("oci+native://quay.io/m/granite:8b", Scheme.IMAGE_VOLUME),
        ("oci+fetch://quay.io/m/granite:8b", Scheme.FETCH),
        ("pvc://claim/path", Scheme.PVC),
        ("s3://bucket/model", Scheme.DOWNLOAD),
        ("hf://ibm/granite", Scheme.DOWNLOAD),
        ("gs://bucket/model", Scheme.DOWNLOAD),
        ("https://example.com/m.tar", Scheme.DOWNLOAD),
        ("OCI://quay.io/m/x:1", Scheme.DOWNLOAD),  # strings.HasPrefix: case-sensitive
        ("", Scheme.NONE),
    ],
)
def test_storage_uri_schemes_as_kserve_parses_them(uri, scheme):
    assert scheme_of(uri) is scheme


def test_oci_variants_normalise_to_oci():
    assert normalized_oci("oci+native://quay.io/m/x:1") == "oci://quay.io/m/x:1"
    assert normalized_oci("oci+fetch://quay.io/m/x:1") == "oci://quay.io/m/x:1"
    assert normalized_oci("s3://b/x") == "s3://b/x"


@pytest.mark.parametrize(
    ("uris", "enable_modelcar", "own", "selecting"),
    [
        ([], True, False, None),
        (["s3://b/m"], True, False, "s3://b/m"),
        (["pvc://claim/m"], True, False, None),  # mounted, never downloaded
        (["pvc://a/m", "pvc://b/n"], True, False, None),
        (["pvc://a/m", "hf://org/model"], True, False, "pvc://a/m"),  # the hf one needs it; the first URI selects
        (["oci://quay.io/m/x:1"], True, False, None),  # a ModelCar
        (["oci://quay.io/m/x:1", "s3://b/adapter"], True, False, None),  # the FIRST URI decides
        (["s3://b/m", "oci://quay.io/m/x:1"], True, False, "s3://b/m"),
        (["oci://quay.io/m/x:1"], False, False, "oci://quay.io/m/x:1"),  # modelcars off: downloaded
        (["oci+native://quay.io/m/x:1"], True, False, None),  # an image volume
        (["oci+fetch://quay.io/m/x:1"], True, False, "oci+fetch://quay.io/m/x:1"),  # oci_fetch.go
        (["s3://b/m"], True, True, None),  # the pod has its own storage-initializer init container
    ],
)
def test_when_kserve_adds_the_storage_initializer(uris, enable_modelcar, own, selecting):
    # storage_initializer_injector.go CommonStorageInitialization
    assert initializer_uri(uris, enable_modelcar=enable_modelcar, own_initializer=own) == selecting


def container(name: str, image: str | None, *, prefixes=(), patterns=(), disabled=False, init=True) -> StorageContainer:
    return StorageContainer(name, parse_reference(image) if image else None, image is not None, tuple(prefixes),
                            tuple(re.compile(p) for p in patterns), disabled, init)


def test_the_first_enabled_matching_cluster_storage_container_by_name_wins():
    # storage_initializer_injector.go GetStorageContainerSpec; storage_container_types.go IsStorageUriSupported
    found = [
        container("zz-hf", "quay.io/x/zz:1", prefixes=["hf://"]),
        container("aa-off", "quay.io/x/off:1", prefixes=["hf://"], disabled=True),
        container("bb-job", "quay.io/x/job:1", prefixes=["hf://"], init=False),
        container("cc-http", "quay.io/x/http:1", patterns=[r"https?://(.+)/(.+)"]),
        container("dd-hf", "quay.io/x/dd:1", prefixes=["hf://"]),
    ]
    assert storage_container_for("hf://org/model", found).name == "dd-hf"
    assert storage_container_for("https://host/a/m.bin", found).name == "cc-http"
    assert storage_container_for("see https://host/a/b", found).name == "cc-http"  # MatchString: anywhere
    assert storage_container_for("s3://b/m", found) is None


def test_a_cluster_storage_container_is_read_with_its_formats_and_bounds():
    obj = {"metadata": {"name": "hf"}, "disabled": False,
           "spec": {"container": {"name": "storage-initializer", "image": "quay.io/x/hf:2"},
                    "supportedUriFormats": [{"prefix": "hf://"}, {"regex": "huggingface\\.co/.+"},
                                            {"regex": "(unclosed"}, {"regex": "x" * 600}],
                    "workloadType": "initContainer"}}
    found = read_cluster_storage_container(obj)
    (sc,) = found.storage_containers
    assert (sc.name, str(sc.image), sc.prefixes, sc.disabled, sc.init_container) == (
        "hf", "quay.io/x/hf:2", ("hf://",), False, True)
    assert sc.supports("https://huggingface.co/org/m") and not sc.supports("s3://b")
    assert [r.field for r in found.rejections] == ["spec.supportedUriFormats[2].regex",
                                                   "spec.supportedUriFormats[3].regex"]


def config_map(image: str | None = INIT, *, enable_modelcar: object = True, text: str | None = None) -> dict:
    document = {"memoryRequest": "100Mi", "enableModelcar": enable_modelcar, **({"image": image} if image else {})}
    return {"metadata": {"name": "inferenceservice-config", "namespace": APPS},
            "data": {"storageInitializer": text if text is not None else json.dumps(document)}}


def test_the_storage_initializer_config_is_read_from_the_configmap():
    found = read_inference_service_config(config_map())
    assert str(found.storage_config.image) == INIT and found.storage_config.enable_modelcar
    assert not read_inference_service_config(config_map(enable_modelcar=False)).storage_config.enable_modelcar
    # the documented default is true: anything but a JSON false keeps it on
    assert read_inference_service_config(config_map(enable_modelcar="no")).storage_config.enable_modelcar


@pytest.mark.parametrize("text", ["not json", "[1, 2]", "{" * 100_000, "x" * 70_000])
def test_a_bad_storage_initializer_document_is_one_rejection_naming_it(text):
    found = read_inference_service_config(config_map(text=text))
    (rejection,) = found.rejections
    assert (str(rejection.source), rejection.field) == (
        "ConfigMap redhat-ods-applications/inferenceservice-config", "data.storageInitializer")
    assert found.storage_config.image is None


# -- the storage initializer as an InferenceService uses it ----------------------------------------------


def isvc(name: str, *, ns: str = "team-a", ready: bool = True, predictor: dict | None = None, **model) -> dict:
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "onnx"}, **model}, **(predictor or {})}},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def observation(*objects: dict, config: dict | None = None, containers: tuple[dict, ...] = (),
                runtimes: tuple[tuple[str, dict], ...] = ()) -> Observation:
    o = Observation(applications_namespace=APPS)
    for kind, rt in runtimes:
        o.serving.extend(read_serving_runtime(rt, kind=kind, applications_namespace=APPS))
    for obj in objects:
        o.serving.extend(read_inference_service(obj))
    if config is not None:
        o.kserve.extend(read_inference_service_config(config))
    for c in containers:
        o.kserve.extend(read_cluster_storage_container(c))
    return o


def initializers(inventory) -> dict[str, tuple[str, str]]:
    return {u.source.name: (str(u.image), u.supplier) for u in inventory.usages if u.role is Role.STORAGE_INITIALIZER}


def test_every_storage_that_kserve_downloads_pulls_the_storage_initializer():
    inv = resolve(observation(
        isvc("s3", storageUri="s3://bucket/model"),
        isvc("hf", ready=False, storageUri="hf://org/model"),
        isvc("pvc", storageUri="pvc://claim/model"),  # mounted: no init container (CommonStorageInitialization)
        isvc("modelcar", storageUri="oci://quay.io/m/x:1"),
        isvc("uris", predictor={"storageUris": [{"uri": "gs://b/base"}, {"uri": "pvc://c/lora"}]}),
        isvc("fetch", storageUri="oci+fetch://quay.io/m/big:1"),  # oci_fetch.go: the initializer pulls it
        config=config_map(),
    ))
    assert initializers(inv) == {name: (INIT, KindName.CONFIG_MAP) for name in ("s3", "hf", "uris", "fetch")}
    states = {u.source.name: u.state for u in inv.usages if u.role is Role.STORAGE_INITIALIZER}
    assert states["hf"] is State.NOT_READY and states["s3"] is State.READY
    (field,) = {u.field for u in inv.usages if u.source.name == "uris" and u.role is Role.STORAGE_INITIALIZER}
    assert field == ("spec.predictor.storageUris[0].uri: storage initializer "
                     "(ConfigMap redhat-ods-applications/inferenceservice-config)")


def test_with_modelcars_off_an_oci_model_is_downloaded_not_a_modelcar():
    # mutator.go registers InjectModelcar only when enableModelcar is on
    inv = resolve(observation(isvc("m", storageUri="oci://quay.io/m/x:1"), config=config_map(enable_modelcar=False)))
    assert [u.role for u in inv.usages] == [Role.STORAGE_INITIALIZER]


def test_without_the_configmap_the_storage_initializer_is_not_guessed():
    inv = resolve(observation(isvc("m", storageUri="s3://b/m")))
    assert initializers(inv) == {}


def test_a_matching_cluster_storage_container_replaces_the_configmap_image():
    hf = {"metadata": {"name": "hf"}, "spec": {"container": {"name": "storage-initializer", "image": "quay.io/x/hf:2"},
                                               "supportedUriFormats": [{"prefix": "hf://"}]}}
    no_image = {"metadata": {"name": "s3"}, "spec": {"container": {"name": "storage-initializer"},
                                                     "supportedUriFormats": [{"prefix": "s3://"}]}}
    inv = resolve(observation(isvc("hf", storageUri="hf://org/m"), isvc("s3", storageUri="s3://b/m"),
                              config=config_map(), containers=(hf, no_image)))
    assert initializers(inv) == {"hf": ("quay.io/x/hf:2", KindName.CLUSTER_STORAGE_CONTAINER),
                                 "s3": (INIT, KindName.CONFIG_MAP)}  # an empty image leaves the default


def test_a_predictor_with_its_own_storage_initializer_gets_no_other():
    obj = isvc("m", storageUri="s3://b/m",
               predictor={"initContainers": [{"name": "storage-initializer", "image": "quay.io/me/init:1"}]})
    inv = resolve(observation(obj, config=config_map()))
    assert initializers(inv) == {}
    assert "quay.io/me/init:1" in {str(u.image) for u in inv.usages}  # its own image, as a custom container


def test_the_explainer_storage_uris_are_set_up_in_the_explainer_pod():
    # pkg/apis/serving/v1beta1/explainer.go: ExplainerSpec has storageUris
    obj = isvc("m")
    obj["spec"]["explainer"] = {"storageUris": [{"uri": "oci://quay.io/m/explainer:1"}],
                                "containers": [{"name": "explainer", "image": "quay.io/x/explain:1"}],
                                "nodeSelector": {"pool": "cpu"}}
    inv = resolve(observation(obj, config=config_map()))
    (car,) = [u for u in inv.usages if u.role is Role.MODELCAR]
    assert (str(car.image), car.field, car.placement.node_selector) == (
        "quay.io/m/explainer:1", "spec.explainer.storageUris[0].uri", (("pool", "cpu"),))


# -- worker pods (components/predictor.go multiNodeProcess) -----------------------------------------------


def multinode_runtime(*, worker_container: bool = True) -> tuple[str, dict]:
    worker_name = "worker-container" if worker_container else "worker"
    return "ServingRuntime", {
        "metadata": {"name": "vllm-mn", "namespace": "team-a"},
        "spec": {"supportedModelFormats": [{"name": "vLLM", "autoSelect": True}],
                 "containers": [{"name": "kserve-container", "image": "quay.io/modh/vllm:1.0", "resources": GPU}],
                 "tolerations": [GPU_TOLERATION],
                 "workerSpec": {"containers": [{"name": worker_name, "image": "quay.io/modh/vllm:1.0", "resources": GPU},
                                               {"name": "sidecar", "image": "quay.io/x/dropped:1"}],
                                "initContainers": [{"name": "warm", "image": "quay.io/x/warm:1"}],
                                "tolerations": [GPU_TOLERATION],
                                "nodeSelector": {"gpu": "l40s"}}}}


def multinode_isvc(worker: dict | None = None, **model) -> dict:
    return isvc("llama", modelFormat={"name": "vLLM"}, runtime="vllm-mn", storageUri="s3://b/llama",
                predictor={"workerSpec": {"pipelineParallelSize": 2, **(worker or {})}}, **model)


def by_image(inventory, name: str = "llama") -> dict[str, set]:
    found: dict[str, set] = {}
    for u in inventory.usages:
        if u.source.name == name:
            found.setdefault(str(u.image), set()).add((u.role, u.placement))
    return found


def test_a_worker_pod_runs_the_runtimes_worker_container_without_runtime_version():
    inv = resolve(observation(multinode_isvc(runtimeVersion="2.0"), config=config_map(),
                              runtimes=(multinode_runtime(),)))
    images = by_image(inv)
    # the head's kserve-container takes runtimeVersion (buildPodSpec UpdateImageTag); the worker's does not
    assert {"quay.io/modh/vllm:2.0", "quay.io/modh/vllm:1.0", "quay.io/x/warm:1", INIT} == set(images)
    assert "quay.io/x/dropped:1" not in images  # the worker pod keeps only the worker-container
    (worker,) = {p for _, p in images["quay.io/modh/vllm:1.0"]}
    (head,) = {p for _, p in images["quay.io/modh/vllm:2.0"]}
    assert worker.node_selector == (("gpu", "l40s"),) and worker.resources == frozenset({"nvidia.com/gpu"})
    assert head.node_selector == () and Toleration("nvidia.com/gpu", "Exists", "", "NoSchedule") in head.tolerations
    # the storage initializer runs in the head and in every worker (raw_kube_reconciler.go)
    assert {p for _, p in images[INIT]} == {head, worker}


def test_the_services_first_worker_container_replaces_the_worker_image_and_its_resources():
    worker = {"containers": [{"name": "any-name", "image": "quay.io/me/vllm:custom", "resources":
                              {"requests": {"nvidia.com/gpu": "0"}, "limits": {"nvidia.com/gpu": "0"}}}],
              "nodeSelector": {"zone": "b"}}
    inv = resolve(observation(multinode_isvc(worker), runtimes=(multinode_runtime(),)))
    images = by_image(inv)
    (placement,) = {p for _, p in images["quay.io/me/vllm:custom"]}
    assert "quay.io/modh/vllm:1.0" in images  # still the head's kserve-container
    assert {p for _, p in images["quay.io/modh/vllm:1.0"]} != {placement}
    assert placement.node_selector == (("gpu", "l40s"), ("zone", "b"))  # merged key by key
    assert placement.resources == frozenset()  # nvidia.com/gpu: 0 overlays the runtime's 1


def test_a_worker_spec_the_runtime_cannot_serve_is_a_problem():
    no_worker = ("ServingRuntime", {"metadata": {"name": "vllm-mn", "namespace": "team-a"},
                                    "spec": {"containers": [{"name": "kserve-container", "image": "quay.io/modh/vllm:1"}]}})
    inv = resolve(observation(multinode_isvc(), runtimes=(no_worker,)))
    assert inv.problems == ("InferenceService team-a/llama: has a workerSpec but runtime ServingRuntime "
                            "team-a/vllm-mn has none (KServe refuses a workerSpec in the InferenceService then)",)
    inv = resolve(observation(multinode_isvc(), runtimes=(multinode_runtime(worker_container=False),)))
    assert inv.problems == ("InferenceService team-a/llama: runtime ServingRuntime team-a/vllm-mn has no "
                            "worker-container in spec.workerSpec.containers (KServe refuses it)",)
    assert not [u for u in inv.usages if u.role is Role.SERVING_RUNTIME]


def test_runtime_images_name_their_runtime_as_supplier():
    inv = resolve(observation(multinode_isvc(), runtimes=(multinode_runtime(),)))
    suppliers = {u.supplier for u in inv.usages if u.role is Role.SERVING_RUNTIME}
    assert suppliers == {KindName.SERVING_RUNTIME}
