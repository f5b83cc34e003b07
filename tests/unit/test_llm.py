"""LLMInferenceServices merged with their configs as KServe merges them.

kserve/kserve `pkg/controller/v1alpha2/llmisvc/config_merge.go`: which well-known configs
apply (`combineBaseRefsConfig`), how names are pinned (`WellKnownConfigResolver`), where a
config is looked up (`getConfig`) and how specs merge (`mergeSpecs`).
"""

from __future__ import annotations

import time

import pytest

from agent.model import KindName, Role, State
from agent.resolve import resolve
from agent.resolve_llm import well_known_configs
from agent.sources import Observation
from agent.sources.kserve import read_inference_service_config
from agent.sources.llm import MAX_BASE_REFS, merge, read_llm_inference_service, read_llm_inference_service_config, read_spec
from agent.sources.common import Findings
from agent.model import ObjectRef

APPS = "redhat-ods-applications"
VLLM = "registry.redhat.io/rhaiis/vllm-cuda-rhel9:3.0"
EPP = "registry.redhat.io/rhoai/llm-d-scheduler:3.0"
GPU = {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}


def service(name: str = "svc", ns: str = "team-a", *, ready: bool = True, annotations: dict | None = None,
            **spec) -> dict:
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"model": {"uri": "hf://org/m"}, **spec},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       **({"annotations": annotations} if annotations else {})}}


def config(name: str, ns: str = APPS, **spec) -> dict:
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


TEMPLATE = config("kserve-config-llm-template", template={"containers": [{"name": "main", "image": VLLM}]})
SCHEDULER = config("kserve-config-llm-scheduler",
                   router={"scheduler": {"template": {"containers": [{"name": "main", "image": EPP}]}}})


def observe(*objects: dict, listed: bool = True, storage: bool = False) -> Observation:
    o = Observation(applications_namespace=APPS)
    for obj in objects:
        reader = read_llm_inference_service if "status" in obj else read_llm_inference_service_config
        o.llm.extend(reader(obj))
    if listed:
        o.listed[KindName.LLM_INFERENCE_SERVICE_CONFIG] = 1
    if storage:
        o.kserve.extend(read_inference_service_config(
            {"metadata": {"name": "inferenceservice-config", "namespace": APPS},
             "data": {"storageInitializer": '{"image": "quay.io/modh/storage-initializer:3.0"}'}}))
    return o


def images(inventory, name: str = "svc") -> dict[str, tuple[Role, str]]:
    return {str(u.image): (u.role, u.supplier) for u in inventory.usages if u.source.name == name}


def spec(**fields) -> object:
    return read_spec(fields, source=ObjectRef("LLMInferenceService", "ns", "x"), out=Findings(), supplier=None)


# -- which well-known configs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        ({}, ["kserve-config-llm-template"]),
        ({"router": {"scheduler": {}}}, ["kserve-config-llm-scheduler", "kserve-config-llm-template"]),
        ({"router": {"scheduler": {"pool": {"ref": {"name": "mine"}}}}}, ["kserve-config-llm-template"]),
        ({"router": {"route": {}}}, ["kserve-config-llm-router-route", "kserve-config-llm-template"]),
        ({"router": {"route": {"http": {"refs": [{"name": "r"}]}}}}, ["kserve-config-llm-template"]),
        ({"worker": {"containers": []}, "parallelism": {"data": 2}}, ["kserve-config-llm-worker-data-parallel"]),
        ({"worker": {"containers": []}, "parallelism": {"pipeline": 2}}, ["kserve-config-llm-worker-pipeline-parallel"]),
        ({"worker": {"containers": []}, "parallelism": {"tensor": 2}}, []),  # no config for tensor-only workers
        ({"prefill": {}}, ["kserve-config-llm-prefill-template", "kserve-config-llm-decode-template"]),
        ({"prefill": {"worker": {"containers": []}, "parallelism": {"dataLocal": 1}}, "worker": {"containers": []},
          "parallelism": {"pipeline": 2}},
         ["kserve-config-llm-prefill-worker-data-parallel", "kserve-config-llm-decode-worker-pipeline-parallel"]),
    ],
    ids=["single-node", "scheduler", "scheduler-pool-ref", "route", "route-refs", "data-parallel",
         "pipeline-parallel", "tensor-only", "prefill-decode", "prefill-dp-decode-pp"],
)
def test_the_well_known_configs_kserve_applies(fields, names):
    assert well_known_configs(spec(**fields), pinned={}, prefix="kserve-") == names


def test_pinned_names_win_and_the_route_config_is_never_pinned():
    pinned = {"config-llm-template": "v3-0-0-kserve-config-llm-template",
              "config-llm-router-route": "v3-0-0-kserve-config-llm-router-route"}
    names = well_known_configs(spec(router={"route": {}}), pinned=pinned, prefix="v3-4-0-kserve-")
    assert names == ["v3-4-0-kserve-config-llm-router-route", "v3-0-0-kserve-config-llm-template"]


# -- merging -----------------------------------------------------------------------------------------------


def test_the_vllm_image_comes_from_the_well_known_template_config():
    inv = resolve(observe(service(), TEMPLATE))
    assert images(inv) == {VLLM: (Role.SERVING_RUNTIME, KindName.LLM_INFERENCE_SERVICE_CONFIG)}
    (usage,) = inv.usages
    assert usage.field == ("spec.template.containers[main].image "
                           "(LLMInferenceServiceConfig redhat-ods-applications/kserve-config-llm-template)")


def test_the_scheduler_image_is_a_router_image_placed_by_its_template():
    inv = resolve(observe(service(router={"scheduler": {}}), TEMPLATE, SCHEDULER))
    assert images(inv)[EPP] == (Role.ROUTER, KindName.LLM_INFERENCE_SERVICE_CONFIG)


def test_later_layers_win_base_refs_after_well_known_and_the_service_last():
    gpu = config("gpu", "team-a", template={"containers": [{"name": "main", "resources": GPU}],
                                            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
                                            "nodeSelector": {"gpu": "yes"}})
    image = config("pinned-vllm", "team-a", template={"containers": [{"name": "main", "image": "quay.io/t/vllm:2"}]})
    own = service(baseRefs=[{"name": "gpu"}, {"name": "pinned-vllm"}],
                  template={"containers": [{"name": "sidecar", "image": "quay.io/t/proxy:1"}],
                            "nodeSelector": {"zone": "a"}})
    inv = resolve(observe(own, TEMPLATE, gpu, image))
    found = {str(u.image): u for u in inv.usages}
    assert set(found) == {"quay.io/t/vllm:2", "quay.io/t/proxy:1"}  # the base ref replaced the template's image
    placement = found["quay.io/t/vllm:2"].placement
    assert placement.resources == frozenset({"nvidia.com/gpu"})  # resources merged into the same container
    assert placement.node_selector == (("gpu", "yes"), ("zone", "a"))
    assert found["quay.io/t/proxy:1"].supplier == ""  # spelled out by the service itself


def test_the_service_replaces_a_configs_image_and_keeps_the_configs_resources():
    gpu_template = config("kserve-config-llm-template", template={"containers": [{"name": "main", "image": VLLM,
                                                                                   "resources": GPU}]})
    inv = resolve(observe(service(template={"containers": [{"name": "main", "image": "quay.io/t/own:1"}]}),
                          gpu_template))
    (usage,) = inv.usages
    assert (str(usage.image), usage.supplier) == ("quay.io/t/own:1", "")
    assert usage.placement.resources == frozenset({"nvidia.com/gpu"})


def test_a_config_in_the_services_namespace_shadows_kserves():
    own = config("kserve-config-llm-template", "team-a", template={"containers": [{"name": "main",
                                                                                   "image": "quay.io/t/mine:1"}]})
    inv = resolve(observe(service(), service(name="other", ns="team-b"), TEMPLATE, own))
    assert set(images(inv)) == {"quay.io/t/mine:1"}
    assert set(images(inv, "other")) == {VLLM}  # another namespace's config is never heard


def test_status_annotations_pin_the_config_names_kserve_used_first():
    old = config("v3-0-0-kserve-config-llm-template", template={"containers": [{"name": "main",
                                                                                "image": "quay.io/t/old:1"}]})
    pinned = service(annotations={"serving.kserve.io/config-llm-template": "v3-0-0-kserve-config-llm-template"})
    inv = resolve(observe(pinned, TEMPLATE, old))
    assert set(images(inv)) == {"quay.io/t/old:1"}


def test_a_missing_config_is_a_problem_and_the_rest_still_counts():
    inv = resolve(observe(service(baseRefs=[{"name": "nope"}], router={"scheduler": {}}), TEMPLATE))
    assert inv.problems == ("LLMInferenceService team-a/svc: LLMInferenceServiceConfig 'kserve-config-llm-scheduler', "
                            "'nope' not found in team-a, redhat-ods-applications (KServe stops with ConfigNotFound); "
                            "the images it gives are not known",)
    assert set(images(inv)) == {VLLM}
    # when the configs could not be listed, nothing is reported missing (the safety rule keeps their entries)
    assert resolve(observe(service(baseRefs=[{"name": "nope"}]), listed=False)).problems == ()


def test_the_model_is_a_modelcar_or_the_storage_initializer_with_every_workload_pod():
    oci = service(model={"uri": "oci://quay.io/m/granite:8b"}, worker={"containers": [{"name": "main"}]},
                  parallelism={"data": 2})
    dp = config("kserve-config-llm-worker-data-parallel",
                template={"containers": [{"name": "main", "image": VLLM}]},
                worker={"containers": [{"name": "main", "image": VLLM, "resources": GPU}]})
    inv = resolve(observe(oci, dp))
    cars = [u for u in inv.usages if u.role is Role.MODELCAR]
    assert {u.placement.resources for u in cars} == {frozenset(), frozenset({"nvidia.com/gpu"})}  # head and worker
    inv = resolve(observe(service(), TEMPLATE, storage=True))
    assert images(inv)["quay.io/modh/storage-initializer:3.0"] == (Role.STORAGE_INITIALIZER, KindName.CONFIG_MAP)
    off = service(storageInitializer={"enabled": False})
    assert Role.STORAGE_INITIALIZER not in {r for r, _ in images(resolve(observe(off, TEMPLATE, storage=True))).values()}
    pvc = service(model={"uri": "pvc://claim/m"})
    assert set(images(resolve(observe(pvc, TEMPLATE, storage=True)))) == {VLLM}


def test_merge_keeps_what_an_override_leaves_out():
    base = spec(template={"containers": [{"name": "main", "image": VLLM}], "tolerations": [{"key": "a"}]},
                router={"scheduler": {}}, storageInitializer={"enabled": False})
    over = spec(template={"containers": [{"name": "main", "resources": GPU}]}, model={"uri": "hf://x/y"})
    merged = merge(base, over)
    (container,) = merged.pod("template").containers
    assert str(container.image) == VLLM and merged.scheduler and merged.storage_initializer is False
    assert merged.model_uri == "hf://x/y"
    assert merged.pod("template").scheduling.tolerations[0].key == "a"


def test_base_refs_are_bounded_and_a_configs_own_base_refs_are_not_followed():
    many = service(baseRefs=[{"name": f"c{i}"} for i in range(MAX_BASE_REFS + 5)])
    found = read_llm_inference_service(many)
    (server,) = found.services
    assert len(server.base_refs) == MAX_BASE_REFS
    assert [r.field for r in found.rejections] == ["spec.baseRefs"]
    chained = config("first", "team-a", baseRefs=[{"name": "second"}])
    second = config("second", "team-a", template={"containers": [{"name": "main", "image": "quay.io/t/chained:1"}]})
    inv = resolve(observe(service(baseRefs=[{"name": "first"}]), TEMPLATE, chained, second))
    assert set(images(inv)) == {VLLM}  # combineBaseRefsConfig looks up the service's baseRefs only


def test_thousands_of_services_and_configs_resolve_in_linear_time():
    configs = [config(f"c{i}", "team-a", template={"containers": [{"name": "main", "image": f"quay.io/t/v:{i}"}]})
               for i in range(2000)]
    services = [service(f"s{i}", baseRefs=[{"name": f"c{i % 50}"}]) for i in range(5000)]
    o = observe(*services, *configs, TEMPLATE)
    started = time.monotonic()
    inv = resolve(o)
    assert time.monotonic() - started < 5
    assert len({u.source for u in inv.usages}) == 5000


def test_a_not_ready_service_counts_as_not_ready():
    inv = resolve(observe(service(ready=False), TEMPLATE))
    assert {u.state for u in inv.usages} == {State.NOT_READY}
