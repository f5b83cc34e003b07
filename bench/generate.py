"""A synthetic but realistic OpenShift AI estate, as plain Kubernetes objects (dicts).

Pure and deterministic: the same preset and seed give the same objects, byte for byte.
Nothing here talks to a cluster; `bench.load` sends the objects. Shapes are copied from
samples/cluster/ (what the controllers write), statuses included.

What an estate holds (sizes from a `Preset`):

- Namespaces: the applications namespace, `openshift-operators`, and N data-science
  projects labelled `opendatahub.io/dashboard=true`.
- A DSCInitialization naming the applications namespace, and the KubernetesImagePuller
  `openshift-operators/image-puller` with one administrator entry.
- ImageStreams in the applications namespace (workbench streams, some pipeline-runtime
  streams, one hidden), T tags each: newest tag recommended, oldest outdated; some tags
  are multi-arch lists imported in Legacy mode (spec `from` digest != status digest).
- Templates holding a ServingRuntime each (the shipped ones, then copies with other image
  versions), ClusterServingRuntimes (auto-selectable formats), ServingRuntimes spread over
  the projects (pinned by digest or by tag).
- Notebooks spread over the projects (a few busy ones, a long tail), mostly stopped. Most
  use a stream image, spelled as the internal-registry tag or as the status digest
  reference, with `last-image-selection`; some use custom images; a handful carry a
  deliberately invalid reference (`INVALID_IMAGES`), as hostile tenants do.
- InferenceServices: runtime by name (a ServingRuntime of their project) or auto-selected
  by model format; a share with ModelCar `oci://` URIs from a pool; some `runtimeVersion`;
  a few custom predictor containers; a few naming a runtime that is gone. Ready condition.
- LLMInferenceServices (ModelCar URI + a serving image).
- Nodes with capacity, conditions and `status.images` (the largest images first, two
  names each, `sizeBytes`), drawn from the images the estate uses plus platform images.

`pools=True` (`--pools`) makes the estate pool-heavy, as a GPU cluster is (see `Pools`);
without it every preset generates exactly what it did before the option existed.

`objects(preset)` yields every object in load order; `expected_counts(preset)` says how
many of each kind it yields.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

JSON = dict[str, Any]

APPS_NS = "redhat-ods-applications"
OPERATORS_NS = "openshift-operators"
INTERNAL_REGISTRY = "image-registry.openshift-image-registry.svc:5000"
KUBE_RBAC_PROXY = (
    "registry.redhat.io/openshift4/ose-kube-rbac-proxy-rhel9@sha256:"
    "4763b98f0d1355f203babda41e2772df66456d96ef2d087ed1c4ef12789d9c74"
)
ADMIN_ENTRY = "ubi-minimal=registry.access.redhat.com/ubi9/ubi-minimal:latest;"
STORAGE_INITIALIZER = "quay.io/modh/kserve-storage-initializer"
BASE_TIME = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

# ---- the pool-heavy estate (`Preset.pools`) -----------------------------------------------
# What `pools=True` changes, and nothing else:
# - every 5th node is a GPU node (20%; else every 10th), tainted nvidia.com/gpu=true:NoSchedule
#   and labelled as the NVIDIA GPU Operator's nodes are (nvidia.com/gpu.present...), with
#   500 GB / 1 TB disks (CPU workers: 125 / 250 GB); the first GPU node is cordoned. GPU
#   images (CUDA workbench tags, serving runtimes, ModelCars) are cached on GPU nodes only.
# - a second KubernetesImagePuller, `image-puller-gpu/image-puller` in its own namespace,
#   selects nvidia.com/gpu.present=true and tolerates the taint. The CPU workers' puller is
#   unchanged (nodeSelector worker="", no toleration: the taint keeps it off GPU nodes).
# - CUDA workbenches, GPU runtimes and LLMInferenceServices request nvidia.com/gpu and
#   tolerate the taint: workbenches and LLMInferenceServices in their pod template; for GPU
#   runtimes about half of the project ServingRuntimes carry the toleration (KServe merges it
#   into the predictor), else the InferenceService's predictor does. An InferenceService that
#   leaves the runtime to auto-selection is a GPU one when no CPU runtime of its project or of
#   the cluster auto-selects its model format (vLLM). 70% of the GPU InferenceServices serve a
#   ModelCar, the CPU ones none (the ModelCar pool holds LLMs).
# - no AMD or Gaudi hardware: no project instantiates the ROCm or Gaudi runtimes and no
#   workbench uses a ROCm stream; both stay offered (streams, templates), hinted for
#   amd.com/gpu and habana.ai/gaudi, so they belong on no node.
# - `opendatahub.io/recommended-accelerators` on the CUDA and ROCm streams and on the GPU
#   ServingRuntimes of the templates and the projects.
GPU_PULLER_NS = "image-puller-gpu"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
RECOMMENDED_ACCELERATORS = "opendatahub.io/recommended-accelerators"
GPU_LABELS = {"nvidia.com/gpu.present": "true", "nvidia.com/gpu.count": "8",
              "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.memory": "81559",
              "feature.node.kubernetes.io/pci-10de.present": "true"}
POOLS_GPU_RUNTIME_MODELCAR_FRACTION = 0.7  # of the GPU InferenceServices

# References a hostile or careless tenant writes; the agent must reject them. Everything
# else the generator writes is a valid reference (tests/unit/test_bench.py checks it).
INVALID_IMAGES = (
    "quay.io/evil/miner:latest;pwn=quay.io/evil/x",
    "Quay.io/Team/Notebook:Latest",
    "quay.io/team/notebook:2025.1 ",
    "quay.io/team/notebook@sha256:abc",
)

# Kinds, in load order, as (apiVersion, kind).
NAMESPACE = ("v1", "Namespace")
DSCI = ("dscinitialization.opendatahub.io/v1", "DSCInitialization")
CONFIG_MAP = ("v1", "ConfigMap")
PULLER = ("che.eclipse.org/v1alpha1", "KubernetesImagePuller")
IMAGE_STREAM = ("image.openshift.io/v1", "ImageStream")
TEMPLATE = ("template.openshift.io/v1", "Template")
CLUSTER_SERVING_RUNTIME = ("serving.kserve.io/v1alpha1", "ClusterServingRuntime")
SERVING_RUNTIME = ("serving.kserve.io/v1alpha1", "ServingRuntime")
NOTEBOOK = ("kubeflow.org/v1", "Notebook")
INFERENCE_SERVICE = ("serving.kserve.io/v1beta1", "InferenceService")
LLM_INFERENCE_SERVICE = ("serving.kserve.io/v1alpha1", "LLMInferenceService")
NODE = ("v1", "Node")
KINDS = (NAMESPACE, DSCI, PULLER, IMAGE_STREAM, TEMPLATE, CLUSTER_SERVING_RUNTIME, SERVING_RUNTIME,
         NOTEBOOK, INFERENCE_SERVICE, LLM_INFERENCE_SERVICE, NODE)


# ---- sizes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """How big an estate is. Every field can be overridden from the command line."""

    name: str
    namespaces: int  # data-science projects (plus the applications and operators namespaces)
    notebooks: int
    inference_services: int
    serving_runtimes: int
    image_streams: int
    tags_per_stream: int
    templates: int
    nodes: int
    images_per_node: int = 50
    cluster_serving_runtimes: int = 6
    llm_inference_services: int = 0
    stopped_fraction: float = 0.7  # of notebooks
    custom_image_fraction: float = 0.1  # of notebooks: not a stream image
    invalid_image_fraction: float = 0.002  # of notebooks: one of INVALID_IMAGES
    modelcar_fraction: float = 0.4  # of inference services
    modelcar_pool: int = 300  # distinct ModelCar URIs
    custom_image_pool: int = 200  # distinct custom workbench images
    seed: int = 1
    pools: bool = False  # pool-heavy: a tainted GPU pool with its own puller (see `Pools`)

    def with_overrides(self, **overrides: Any) -> Preset:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


PRESETS: dict[str, Preset] = {
    # For the unit test: every feature, a few objects.
    "tiny": Preset("tiny", namespaces=3, notebooks=40, inference_services=24, serving_runtimes=6,
                   image_streams=4, tags_per_stream=3, templates=3, nodes=4, images_per_node=12,
                   cluster_serving_runtimes=3, llm_inference_services=2, modelcar_pool=6,
                   custom_image_pool=5, invalid_image_fraction=0.05),
    "small": Preset("small", namespaces=10, notebooks=200, inference_services=60, serving_runtimes=12,
                    image_streams=10, tags_per_stream=5, templates=5, nodes=10, llm_inference_services=5,
                    modelcar_pool=30, custom_image_pool=20),
    # About a fifth of large.
    "medium": Preset("medium", namespaces=40, notebooks=2000, inference_services=600, serving_runtimes=120,
                     image_streams=20, tags_per_stream=5, templates=20, nodes=100, llm_inference_services=20,
                     modelcar_pool=100, custom_image_pool=60),
    "large": Preset("large", namespaces=200, notebooks=10000, inference_services=3000, serving_runtimes=600,
                    image_streams=40, tags_per_stream=5, templates=100, nodes=500, llm_inference_services=100,
                    modelcar_pool=300, custom_image_pool=200),
}

OVERRIDABLE = tuple(f.name for f in fields(Preset) if f.name != "name")


def expected_counts(preset: Preset) -> dict[str, int]:
    """Objects of each kind `objects(preset)` yields, by kind name."""
    return {
        "Namespace": preset.namespaces + 2 + preset.pools,
        "DSCInitialization": 1,
        "ConfigMap": 1,
        "KubernetesImagePuller": 1 + preset.pools,
        "ImageStream": preset.image_streams,
        "Template": preset.templates,
        "ClusterServingRuntime": preset.cluster_serving_runtimes,
        "ServingRuntime": preset.serving_runtimes,
        "Notebook": preset.notebooks,
        "InferenceService": preset.inference_services,
        "LLMInferenceService": preset.llm_inference_services,
        "Node": preset.nodes,
    }


# ---- helpers -----------------------------------------------------------------------------


def digest(key: str) -> str:
    """A stable, valid sha256 digest for a key."""
    return "sha256:" + hashlib.sha256(f"prepull-bench:{key}".encode()).hexdigest()


def _ts(rng: random.Random, max_days: float = 90) -> str:
    return (BASE_TIME - timedelta(seconds=rng.uniform(0, max_days * 86400))).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Zipf:
    """Weighted choice of an index in range(n), weight 1/(rank+1)**s (a few busy, a long tail)."""

    def __init__(self, n: int, s: float = 1.0) -> None:
        self._cum = list(itertools.accumulate(1.0 / (i + 1) ** s for i in range(n)))

    def __call__(self, rng: random.Random) -> int:
        return bisect.bisect_left(self._cum, rng.random() * self._cum[-1])


# ---- the catalogue: images and runtimes the objects share ----------------------------------


@dataclass(frozen=True)
class StreamTagImage:
    tag: str
    upstream: str  # registry/repository, e.g. quay.io/modh/odh-workbench-jupyter-minimal-cpu-py311-ubi9
    from_digest: str  # spec.tags[].from (a manifest list when multi-arch)
    image_digest: str  # status.tags[].items[0] (what pods run)
    recommended: bool
    outdated: bool
    size: int

    @property
    def status_reference(self) -> str:
        return f"{self.upstream}@{self.image_digest}"


@dataclass(frozen=True)
class Stream:
    name: str
    runtime: bool  # a pipeline-runtime stream (else a workbench stream)
    hidden: bool
    display: str
    tags: tuple[StreamTagImage, ...]

    def internal(self, tag: str) -> str:
        return f"{INTERNAL_REGISTRY}/{APPS_NS}/{self.name}:{tag}"


@dataclass(frozen=True)
class RuntimeKind:
    """A serving runtime as OpenShift AI ships it (odh-model-controller config/runtimes)."""

    name: str  # template name's stem and ServingRuntime name
    display: str
    repo: str
    tag: str  # the tag a project copy may carry instead of the digest
    formats: tuple[tuple[str, str, bool, int], ...]  # name, version, autoSelect, priority
    port: int
    transformer: str = ""  # a second container's repo:tag (caikit)
    multinode: bool = False
    gpu: bool = True
    size: int = 10 << 30


RUNTIME_KINDS = (
    RuntimeKind("vllm-cuda-runtime", "vLLM NVIDIA GPU ServingRuntime for KServe", "quay.io/modh/vllm",
                "rhoai-2.19-cuda", (("vLLM", "", True, 1),), 8080, size=24 << 30),
    RuntimeKind("kserve-ovms", "OpenVINO Model Server", "quay.io/modh/openvino_model_server", "2025.1",
                (("openvino_ir", "opset13", True, 1), ("onnx", "1", False, 0), ("tensorflow", "2", True, 1),
                 ("paddle", "2", True, 1), ("pytorch", "2", True, 1)), 8888, gpu=False, size=3 << 30),
    RuntimeKind("vllm-rocm-runtime", "vLLM AMD GPU ServingRuntime for KServe", "quay.io/modh/vllm",
                "rhoai-2.19-rocm", (("vLLM", "", True, 1),), 8080, size=28 << 30),
    RuntimeKind("caikit-tgis-runtime", "Caikit TGIS ServingRuntime for KServe",
                "quay.io/modh/text-generation-inference", "rhoai-2.19",
                (("caikit", "", True, 1),), 8085, transformer="quay.io/modh/caikit-tgis-serving:rhoai-2.19",
                size=6 << 30),
    RuntimeKind("vllm-gaudi-runtime", "vLLM Intel Gaudi Accelerator ServingRuntime for KServe",
                "quay.io/modh/vllm", "rhoai-2.19-gaudi", (("vLLM", "", True, 1),), 8080, size=18 << 30),
    RuntimeKind("vllm-multinode-runtime", "vLLM NVIDIA GPU ServingRuntime (multi-node)", "quay.io/modh/vllm",
                "rhoai-2.19-cuda", (("vLLM", "", False, 0),), 8080, multinode=True, size=24 << 30),
    RuntimeKind("caikit-standalone-runtime", "Caikit Standalone ServingRuntime for KServe",
                "quay.io/modh/caikit-nlp", "rhoai-2.19", (("caikit", "", True, 0),), 8085, gpu=False,
                size=4 << 30),
    RuntimeKind("tgis-grpc-runtime", "TGIS Standalone ServingRuntime for KServe",
                "quay.io/modh/text-generation-inference", "rhoai-2.19", (("pytorch", "", True, 0),), 8033,
                size=6 << 30),
    RuntimeKind("mlserver-runtime", "MLServer ServingRuntime for KServe", "docker.io/seldonio/mlserver", "1.6.1",
                (("sklearn", "1", True, 2), ("xgboost", "1", True, 2), ("lightgbm", "3", True, 2)), 8080,
                gpu=False, size=2 << 30),
    RuntimeKind("triton-runtime", "NVIDIA Triton Inference Server", "nvcr.io/nvidia/tritonserver", "24.08-py3",
                (("tensorrt", "8", True, 1), ("onnx", "1", True, 1), ("pytorch", "1", True, 0)), 8000,
                size=15 << 30),
)
# How often a project instantiates each kind (vLLM dominates, as on real clusters).
RUNTIME_KIND_WEIGHTS = (40, 20, 6, 6, 3, 3, 4, 4, 8, 6)
# The accelerator each GPU kind is for (its `recommended-accelerators`; else nvidia.com/gpu).
KIND_ACCELERATORS = {"vllm-rocm-runtime": "amd.com/gpu", "vllm-gaudi-runtime": "habana.ai/gaudi"}


def kind_accelerator(kind: RuntimeKind) -> str | None:
    """The extended resource a runtime kind needs, None for a CPU runtime."""
    return KIND_ACCELERATORS.get(kind.name, "nvidia.com/gpu") if kind.gpu else None


def pool_weights() -> tuple[int, ...]:
    """RUNTIME_KIND_WEIGHTS on a cluster with NVIDIA GPUs only: no ROCm or Gaudi runtime."""
    return tuple(0 if kind_accelerator(k) not in (None, "nvidia.com/gpu") else w
                 for k, w in zip(RUNTIME_KINDS, RUNTIME_KIND_WEIGHTS, strict=True))

CLUSTER_RUNTIMES = (
    ("kserve-sklearnserver", "docker.io/kserve/sklearnserver", "v0.15.0", (("sklearn", "1", True, 1),)),
    ("kserve-xgbserver", "docker.io/kserve/xgbserver", "v0.15.0", (("xgboost", "1", True, 1),)),
    ("kserve-lgbserver", "docker.io/kserve/lgbserver", "v0.15.0", (("lightgbm", "3", True, 1),)),
    ("kserve-huggingfaceserver", "docker.io/kserve/huggingfaceserver", "v0.15.0",
     (("huggingface", "1", True, 1),)),
    ("kserve-tensorflow-serving", "docker.io/tensorflow/serving", "2.6.2", (("tensorflow", "2", True, 1),)),
    ("kserve-torchserve", "docker.io/pytorch/torchserve-kfs", "0.9.0", (("pytorch", "1", True, 1),)),
    ("kserve-pmmlserver", "docker.io/kserve/pmmlserver", "v0.15.0", (("pmml", "4", True, 1),)),
    ("kserve-paddleserver", "docker.io/kserve/paddleserver", "v0.15.0", (("paddle", "2", True, 1),)),
)

STREAM_NAMES = (
    ("s2i-minimal-notebook", "Jupyter | Minimal | CPU | Python 3.11", "jupyter-minimal-cpu"),
    ("s2i-generic-data-science-notebook", "Jupyter | Data Science | CPU | Python 3.11", "jupyter-datascience-cpu"),
    ("pytorch", "Jupyter | PyTorch | CUDA | Python 3.11", "jupyter-pytorch-cuda"),
    ("code-server-notebook", "code-server | Data Science | CPU | Python 3.11", "codeserver-datascience-cpu"),
    ("tensorflow", "Jupyter | TensorFlow | CUDA | Python 3.11", "jupyter-tensorflow-cuda"),
    ("minimal-gpu", "Jupyter | Minimal | CUDA | Python 3.11", "jupyter-minimal-cuda"),
    ("trustyai", "Jupyter | TrustyAI | CPU | Python 3.11", "jupyter-trustyai-cpu"),
    ("rocm-pytorch", "Jupyter | PyTorch | ROCm | Python 3.11", "jupyter-pytorch-rocm"),
    ("rocm-tensorflow", "Jupyter | TensorFlow | ROCm | Python 3.11", "jupyter-tensorflow-rocm"),
    ("odh-rstudio-notebook", "RStudio | Minimal | CPU | R 4.4", "rstudio-minimal-cpu"),
    ("llmcompressor", "Jupyter | LLM Compressor | CUDA | Python 3.12", "jupyter-llmcompressor-cuda"),
)
RUNTIME_STREAM_NAMES = ("runtime-datascience", "runtime-pytorch", "runtime-tensorflow", "runtime-minimal",
                        "runtime-rocm-pytorch", "runtime-rocm-tensorflow")
TAGS = ("2025.2", "2025.1", "2024.2", "2024.1", "2023.2", "2023.1", "1.2", "1.1")
PROJECT_WORDS = ("fraud", "churn", "vision", "nlp", "forecast", "recsys", "genai", "risk", "ocr", "speech",
                 "pricing", "supply", "anomaly", "search", "chat", "claims", "credit", "marketing", "health", "iot")
MODELS = ("granite-3.1-8b-instruct", "granite-3.1-2b-instruct", "granite-3.3-8b-instruct", "llama-3.1-8b-instruct",
          "llama-3.2-3b-instruct", "mistral-7b-instruct-v0.3", "qwen2.5-7b-instruct", "phi-4", "gemma-2-9b-it",
          "mixtral-8x7b-instruct", "granite-embedding-125m", "bge-large-en-v1.5", "llama-3.3-70b-instruct")


@dataclass(frozen=True)
class ProjectRuntime:
    namespace: str
    name: str
    kind: RuntimeKind
    by_tag: bool  # image spelled by tag (runtimeVersion can apply), else pinned by digest
    disabled: bool


@dataclass(frozen=True)
class Catalog:
    preset: Preset
    projects: tuple[str, ...]
    streams: tuple[Stream, ...]
    workbench_streams: tuple[Stream, ...]
    custom_images: tuple[str, ...]
    modelcars: tuple[str, ...]  # oci:// URIs
    modelcar_sizes: tuple[int, ...]
    project_runtimes: tuple[ProjectRuntime, ...]
    runtimes_by_project: dict[str, tuple[ProjectRuntime, ...]]
    cluster_runtimes: tuple[tuple[str, str, str, tuple[tuple[str, str, bool, int], ...]], ...]


def runtime_image(kind: RuntimeKind, version: int = 0) -> str:
    """The digest reference a template pins (version 0 is what OpenShift AI ships)."""
    return f"{kind.repo}@{digest(f'runtime:{kind.name}:{version}')}"


def catalog(preset: Preset) -> Catalog:
    rng = random.Random(f"{preset.seed}/catalog")
    projects = tuple(f"{PROJECT_WORDS[i % len(PROJECT_WORDS)]}-{i:03d}" for i in range(preset.namespaces))

    streams = []
    n_runtime = max(1, preset.image_streams // 7) if preset.image_streams >= 4 else 0
    for i in range(preset.image_streams):
        runtime = i >= preset.image_streams - n_runtime
        if runtime:
            j = preset.image_streams - 1 - i
            base = RUNTIME_STREAM_NAMES[j % len(RUNTIME_STREAM_NAMES)]
            name = base if j < len(RUNTIME_STREAM_NAMES) else f"{base}-{j}"
            display, slug = f"Runtime | {name}", f"runtime-{name}"
        elif i < len(STREAM_NAMES):
            name, display, slug = STREAM_NAMES[i]
        else:
            base, display, slug = STREAM_NAMES[i % len(STREAM_NAMES)]
            name, display, slug = f"{base}-{i}", f"{display} ({i})", f"{slug}-{i}"
        tags = []
        for t in range(preset.tags_per_stream):
            tag = TAGS[t] if t < len(TAGS) else f"0.{t}"
            upstream = f"quay.io/modh/odh-workbench-{slug}-py311-ubi9"
            image_digest = digest(f"stream:{name}:{tag}")
            multiarch = rng.random() < 0.2
            tags.append(StreamTagImage(
                tag=tag, upstream=upstream,
                from_digest=digest(f"stream-list:{name}:{tag}") if multiarch else image_digest,
                image_digest=image_digest,
                recommended=t == 0, outdated=t == preset.tags_per_stream - 1 and t > 0,
                size=int(rng.uniform(1.0, 12.0 if "cuda" in slug or "rocm" in slug else 2.5) * (1 << 30)),
            ))
        streams.append(Stream(name, runtime, hidden=(not runtime and i == 4), display=display, tags=tuple(tags)))
    workbench = tuple(s for s in streams if not s.runtime)

    custom = []
    for i in range(preset.custom_image_pool):
        team = projects[i % len(projects)] if projects else "team"
        if i % 3 == 0:
            custom.append(f"registry.example.com/{team}/custom-notebook-{i}@{digest(f'custom:{i}')}")
        else:
            custom.append(f"quay.io/{team}/custom-notebook-{i}:v{1 + i % 4}.{i % 7}")

    modelcars, modelcar_sizes = [], []
    for i in range(preset.modelcar_pool):
        model = MODELS[i % len(MODELS)]
        if i < len(MODELS):
            uri = f"oci://quay.io/redhat-ai-services/modelcar-catalog:{model}"
        elif i % 4 == 0:
            uri = f"oci://quay.io/redhat-ai-services/modelcar-catalog@{digest(f'modelcar:{i}')}"
        else:
            team = projects[i % len(projects)] if projects else "team"
            uri = f"oci://registry.example.com/{team}/models/{model}:ft-{i}"
        modelcars.append(uri)
        modelcar_sizes.append(int(rng.uniform(0.5, 140 if "70b" in model else 20) * (1 << 30)))

    runtime_pick = random.Random(f"{preset.seed}/project-runtimes")
    cum_weights = list(itertools.accumulate(pool_weights() if preset.pools else RUNTIME_KIND_WEIGHTS))
    project_runtimes: list[ProjectRuntime] = []
    by_project: dict[str, list[ProjectRuntime]] = {p: [] for p in projects}
    for i in range(preset.serving_runtimes):
        ns = projects[i % len(projects)]
        kind = runtime_pick.choices(RUNTIME_KINDS, cum_weights=cum_weights)[0]
        stem = kind.name.removesuffix("-runtime")
        taken = {r.name for r in by_project[ns]}
        name = stem
        if stem in taken:
            name = next(f"{stem}-{k}" for k in itertools.count(2) if f"{stem}-{k}" not in taken)
        runtime = ProjectRuntime(ns, name, kind, by_tag=runtime_pick.random() < 0.35,
                                 disabled=runtime_pick.random() < 0.01)
        project_runtimes.append(runtime)
        by_project[ns].append(runtime)

    cluster_runtimes = []
    for i in range(preset.cluster_serving_runtimes):
        name, repo, tag, formats = CLUSTER_RUNTIMES[i % len(CLUSTER_RUNTIMES)]
        if i >= len(CLUSTER_RUNTIMES):
            name = f"{name}-{i}"
        cluster_runtimes.append((name, repo, tag, formats))

    return Catalog(preset, projects, tuple(streams), workbench, tuple(custom), tuple(modelcars),
                   tuple(modelcar_sizes), tuple(project_runtimes),
                   {k: tuple(v) for k, v in by_project.items()}, tuple(cluster_runtimes))


# ---- objects -----------------------------------------------------------------------------


def objects(preset: Preset) -> Iterator[JSON]:
    """Every object of the estate, in load order (namespaces first, nodes last)."""
    cat = catalog(preset)
    yield from namespaces(cat)
    yield dsci()
    yield kserve_config()
    yield puller()
    if preset.pools:
        yield gpu_puller()
    yield from image_streams(cat)
    yield from templates(cat)
    yield from cluster_serving_runtimes(cat)
    yield from serving_runtimes(cat)
    yield from notebooks(cat)
    yield from inference_services(cat)
    yield from llm_inference_services(cat)
    yield from nodes(cat)


def _obj(api: tuple[str, str], name: str, namespace: str | None = None, *, labels: JSON | None = None,
         annotations: JSON | None = None) -> JSON:
    meta: JSON = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": api[0], "kind": api[1], "metadata": meta}


def namespaces(cat: Catalog) -> Iterator[JSON]:
    yield {**_obj(NAMESPACE, APPS_NS, labels={"opendatahub.io/generated-namespace": "true",
                                              "openshift.io/cluster-monitoring": "true"}),
           "status": {"phase": "Active"}}
    yield {**_obj(NAMESPACE, OPERATORS_NS, labels={"openshift.io/cluster-monitoring": "true"}),
           "status": {"phase": "Active"}}
    if cat.preset.pools:
        yield {**_obj(NAMESPACE, GPU_PULLER_NS), "status": {"phase": "Active"}}
    for i, ns in enumerate(cat.projects):
        yield {**_obj(NAMESPACE, ns, labels={"opendatahub.io/dashboard": "true", "modelmesh-enabled": "false"},
                      annotations={"openshift.io/display-name": ns.replace("-", " ").title(),
                                   "openshift.io/requester": f"user-{i % 97}"}),
               "status": {"phase": "Active"}}


def dsci() -> JSON:
    return {**_obj(DSCI, "default-dsci", labels={"app.kubernetes.io/created-by": "rhods-operator"}),
            "spec": {"applicationsNamespace": APPS_NS,
                     "monitoring": {"managementState": "Managed", "namespace": "redhat-ods-monitoring"},
                     "trustedCABundle": {"managementState": "Managed", "customCABundle": ""}},
            "status": {"phase": "Ready", "release": {"name": "OpenShift AI Self-Managed", "version": "2.19.2"},
                       "conditions": [{"type": "Available", "status": "True", "reason": "ReconcileCompleted",
                                       "lastTransitionTime": "2026-06-02T14:11:37Z"}]}}


def kserve_config() -> JSON:
    """KServe's `inferenceservice-config` in the applications namespace, as OpenShift AI installs
    it (the keys the agent reads): the storage initializer's image, ModelCars on."""
    initializer = {"image": "quay.io/modh/kserve-storage-initializer@sha256:"
                            "6f44ad9799f371625a1bb06ba88dd5df0bd1fd07827ab45cafd9144935ea8457",
                   "memoryRequest": "100Mi", "memoryLimit": "1Gi", "cpuRequest": "100m", "cpuLimit": "1",
                   "enableDirectPvcVolumeMount": True, "enableModelcar": True}
    return {**_obj(CONFIG_MAP, "inferenceservice-config", APPS_NS, labels={"app": "kserve"}),
            "data": {"deploy": json.dumps({"defaultDeploymentMode": "RawDeployment"}),
                     "storageInitializer": json.dumps(initializer)}}


def puller() -> JSON:
    return {**_obj(PULLER, "image-puller", OPERATORS_NS,
                   labels={"app.kubernetes.io/part-of": "kubernetes-image-puller-operator"}),
            "spec": {"daemonsetName": "kubernetes-image-puller", "deploymentName": "kubernetes-image-puller",
                     "configMapName": "k8s-image-puller", "images": ADMIN_ENTRY, "cachingIntervalHours": "1",
                     "cachingMemoryRequest": "10Mi", "cachingMemoryLimit": "20Mi", "cachingCPURequest": ".05",
                     "cachingCPULimit": ".2", "nodeSelector": '{"node-role.kubernetes.io/worker": ""}'},
            "status": {"imagePullerImage": "quay.io/eclipse/kubernetes-image-puller:next"}}


def gpu_puller() -> JSON:
    """The GPU pool's puller (pool-heavy estate): its own namespace, nodeSelector, toleration."""
    doc = puller()
    doc["metadata"]["namespace"] = GPU_PULLER_NS
    doc["spec"]["nodeSelector"] = '{"nvidia.com/gpu.present": "true"}'
    doc["spec"]["tolerations"] = '[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]'
    return doc


def stream_accelerator(stream: Stream) -> str | None:
    """The accelerator a stream's images are built for (by its display name), else None."""
    if "ROCm" in stream.display or "rocm" in stream.name:
        return "amd.com/gpu"
    return "nvidia.com/gpu" if "CUDA" in stream.display else None


def image_streams(cat: Catalog) -> Iterator[JSON]:
    rng = random.Random(f"{cat.preset.seed}/imagestreams")
    for order, s in enumerate(cat.streams):
        labels = {"app.kubernetes.io/part-of": "workbenches", "opendatahub.io/component": "true"}
        labels["opendatahub.io/runtime-image" if s.runtime else "opendatahub.io/notebook-image"] = "true"
        annotations = {"opendatahub.io/notebook-image-name": s.display,
                       "opendatahub.io/notebook-image-desc": f"{s.display} workbench image",
                       "opendatahub.io/notebook-image-order": str(order + 1),
                       "opendatahub.io/notebook-image-url": "https://github.com/red-hat-data-services/notebooks"}
        if s.hidden:
            annotations["opendatahub.io/notebook-image-hidden"] = "true"
        if cat.preset.pools and (accelerator := stream_accelerator(s)):
            annotations[RECOMMENDED_ACCELERATORS] = json.dumps([accelerator])
        spec_tags, status_tags = [], []
        for t in s.tags:
            notes = {"opendatahub.io/notebook-software": '[{"name":"Python","version":"v3.11"}]',
                     "opendatahub.io/notebook-python-dependencies":
                         '[{"name":"JupyterLab","version":"4.2"},{"name":"Pandas","version":"2.2"}]',
                     "openshift.io/imported-from": t.upstream,
                     "opendatahub.io/workbench-image-recommended": "true" if t.recommended else "false",
                     "opendatahub.io/notebook-build-commit": digest(f"commit:{s.name}:{t.tag}")[7:14]}
            if t.outdated:
                notes["opendatahub.io/image-tag-outdated"] = "true"
            spec_tags.append({"name": t.tag, "annotations": notes,
                              "from": {"kind": "DockerImage", "name": f"{t.upstream}@{t.from_digest}"},
                              "generation": 1, "importPolicy": {"importMode": "Legacy"},
                              "referencePolicy": {"type": "Source"}})
            items = [{"created": _ts(rng), "dockerImageReference": t.status_reference, "image": t.image_digest,
                      "generation": 1}]
            if rng.random() < 0.3:  # re-imported once: the previous image is history
                old = digest(f"stream-old:{s.name}:{t.tag}")
                items.append({"created": _ts(rng, 300), "dockerImageReference": f"{t.upstream}@{old}",
                              "image": old, "generation": 1})
            status_tags.append({"tag": t.tag, "items": items})
        yield {**_obj(IMAGE_STREAM, s.name, APPS_NS, labels=labels, annotations=annotations),
               "spec": {"lookupPolicy": {"local": True}, "tags": spec_tags},
               "status": {"dockerImageRepository": f"{INTERNAL_REGISTRY}/{APPS_NS}/{s.name}", "tags": status_tags}}


def _formats(formats: Sequence[tuple[str, str, bool, int]]) -> list[JSON]:
    out = []
    for name, version, auto, priority in formats:
        f: JSON = {"name": name}
        if version:
            f["version"] = version
        if auto:
            f["autoSelect"] = True
            if priority:  # the CRD's minimum is 1 (servingruntime_types.go): 0 means "not given"
                f["priority"] = priority
        out.append(f)
    return out


def _runtime_spec(kind: RuntimeKind, image: str) -> JSON:
    container: JSON = {
        "name": "kserve-container", "image": image,
        "args": [f"--port={kind.port}", "--model=/mnt/models", "--served-model-name={{.Name}}"],
        "env": [{"name": "HF_HOME", "value": "/tmp/hf_home"}],
        "ports": [{"containerPort": kind.port, "protocol": "TCP"}],
    }
    if kind.name.startswith("vllm"):
        container["command"] = ["python", "-m", "vllm.entrypoints.openai.api_server"]
    spec: JSON = {"annotations": {"prometheus.io/port": str(kind.port), "prometheus.io/path": "/metrics"},
                  "multiModel": False, "supportedModelFormats": _formats(kind.formats),
                  "containers": [container]}
    if kind.transformer:
        repo, _, tag = kind.transformer.rpartition(":")
        transformer_image = f"{repo}@{digest(f'tr:{kind.transformer}')}"
        spec["containers"].append({"name": "transformer-container", "image": transformer_image,
                                   "env": [{"name": "RUNTIME_LOCAL_MODELS_DIR", "value": "/mnt/models"}],
                                   "ports": [{"containerPort": 8080, "protocol": "TCP"}]})
    if kind.multinode:
        spec["workerSpec"] = {"tensorParallelSize": 1, "pipelineParallelSize": 2,
                              "containers": [{"name": "worker-container", "image": image,
                                              "command": ["ray", "start", "--block"]}]}
    return spec


def templates(cat: Catalog) -> Iterator[JSON]:
    for i in range(cat.preset.templates):
        kind = RUNTIME_KINDS[i % len(RUNTIME_KINDS)]
        shipped = i < len(RUNTIME_KINDS)
        name = f"{kind.name}-template" if shipped else f"{kind.name}-custom-{i}"
        version = 0 if shipped else 1 + i % 3  # copies with up to three other image versions
        runtime = {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ServingRuntime",
                   "metadata": {"name": kind.name if shipped else name,
                                "annotations": {"openshift.io/display-name": kind.display,
                                                "opendatahub.io/runtime-version": f"v{version}"},
                                "labels": {"opendatahub.io/dashboard": "true"}},
                   "spec": _runtime_spec(kind, runtime_image(kind, version))}
        if cat.preset.pools and (accelerator := kind_accelerator(kind)):
            runtime["metadata"]["annotations"][RECOMMENDED_ACCELERATORS] = json.dumps([accelerator])
        yield {**_obj(TEMPLATE, name, APPS_NS,
                      labels={"opendatahub.io/dashboard": "true", "opendatahub.io/ootb": str(shipped).lower(),
                              "app.opendatahub.io/kserve": "true"},
                      annotations={"description": f"{kind.display} definition",
                                   "openshift.io/display-name": kind.display,
                                   "opendatahub.io/modelServingSupport": '["single"]',
                                   "opendatahub.io/apiProtocol": "REST"}),
               "objects": [runtime], "parameters": []}


def cluster_serving_runtimes(cat: Catalog) -> Iterator[JSON]:
    for name, repo, tag, formats in cat.cluster_runtimes:
        yield {**_obj(CLUSTER_SERVING_RUNTIME, name),
               "spec": {"annotations": {"prometheus.kserve.io/port": "8080", "prometheus.kserve.io/path": "/metrics"},
                        "supportedModelFormats": _formats(formats), "protocolVersions": ["v1", "v2"],
                        "containers": [{"name": "kserve-container", "image": f"{repo}:{tag}",
                                        "args": ["--model_name={{.Name}}", "--model_dir=/mnt/models",
                                                 "--http_port=8080"],
                                        "resources": {"requests": {"cpu": "1", "memory": "2Gi"},
                                                      "limits": {"cpu": "1", "memory": "2Gi"}}}]}}


def serving_runtimes(cat: Catalog) -> Iterator[JSON]:
    for r in cat.project_runtimes:
        kind = r.kind
        image = f"{kind.repo}:{kind.tag}" if r.by_tag else runtime_image(kind)
        spec = _runtime_spec(kind, image)
        if r.disabled:
            spec["disabled"] = True
        annotations = {"openshift.io/display-name": r.name, "opendatahub.io/apiProtocol": "REST",
                       "opendatahub.io/template-name": f"{kind.name}-template",
                       "opendatahub.io/template-display-name": kind.display,
                       "opendatahub.io/serving-runtime-scope": "global"}
        if cat.preset.pools and (accelerator := kind_accelerator(kind)):
            annotations[RECOMMENDED_ACCELERATORS] = json.dumps([accelerator])
            if runtime_tolerates_gpu(r):
                spec["tolerations"] = [GPU_TOLERATION]
        yield {**_obj(SERVING_RUNTIME, r.name, r.namespace, labels={"opendatahub.io/dashboard": "true"},
                      annotations=annotations),
               "spec": spec}


def runtime_tolerates_gpu(r: ProjectRuntime) -> bool:
    """Pool-heavy estate: whether a project's GPU runtime carries the GPU toleration itself
    (about half do; the InferenceServices of the others carry it in their predictor)."""
    return int(digest(f"tolerates:{r.namespace}/{r.name}")[7:9], 16) % 2 == 0


def notebooks(cat: Catalog) -> Iterator[JSON]:
    p = cat.preset
    rng = random.Random(f"{p.seed}/notebooks")
    pick_ns = _Zipf(len(cat.projects), 0.8)
    # Pool-heavy: no AMD GPU anywhere, so nobody runs a ROCm workbench (it stays offered).
    streams = [s for s in cat.workbench_streams if stream_accelerator(s) != "amd.com/gpu"] if p.pools \
        else cat.workbench_streams
    pick_stream = _Zipf(len(streams), 1.0)
    pick_custom = _Zipf(max(1, len(cat.custom_images)), 0.7)
    for i in range(p.notebooks):
        ns = cat.projects[pick_ns(rng)]
        user = f"user-{rng.randrange(400)}"
        name = f"{PROJECT_WORDS[i % len(PROJECT_WORDS)]}-wb-{i}"
        notes = {"notebooks.kubeflow.org/last-activity": _ts(rng, 30),
                 "notebooks.opendatahub.io/inject-auth": "true",
                 "notebooks.opendatahub.io/last-size-selection": rng.choice(("Small", "Medium", "Large")),
                 "opendatahub.io/username": user, "openshift.io/display-name": name}
        roll = rng.random()
        gpu = False
        if roll < p.invalid_image_fraction:
            image = INVALID_IMAGES[i % len(INVALID_IMAGES)]
        elif roll < p.invalid_image_fraction + p.custom_image_fraction and cat.custom_images:
            image = cat.custom_images[pick_custom(rng)]
        else:
            stream = streams[pick_stream(rng)]
            t = rng.random()
            tag = stream.tags[0] if t < 0.6 or len(stream.tags) == 1 else (
                stream.tags[1] if t < 0.85 else rng.choice(stream.tags))
            image = stream.internal(tag.tag) if rng.random() < 0.65 else tag.status_reference
            notes["notebooks.opendatahub.io/last-image-selection"] = f"{stream.name}:{tag.tag}"
            notes["opendatahub.io/image-display-name"] = stream.display
            gpu = "CUDA" in stream.display or "ROCm" in stream.display
        stopped = rng.random() < p.stopped_fraction
        if stopped:
            notes["kubeflow-resource-stopped"] = _ts(rng, 60)
        elif rng.random() < 0.02:
            notes["kubeflow-resource-stopped"] = "odh-notebook-controller-lock"  # about to start
        base_url = f"/notebook/{ns}/{name}"
        requests: JSON = {"cpu": "1", "memory": "8Gi"}
        limits: JSON = {"cpu": "2", "memory": "8Gi"}
        if gpu:
            requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = "1"
        workbench = {
            "name": name, "image": image, "imagePullPolicy": "Always", "workingDir": "/opt/app-root/src",
            "env": [{"name": "NOTEBOOK_ARGS",
                     "value": f"--ServerApp.port=8888\n--ServerApp.token=''\n--ServerApp.password=''\n"
                              f"--ServerApp.base_url={base_url}\n--ServerApp.quit_button=False"},
                    {"name": "JUPYTER_IMAGE", "value": image}],
            "ports": [{"name": "notebook-port", "containerPort": 8888, "protocol": "TCP"}],
            "resources": {"requests": requests, "limits": limits},
            "livenessProbe": {"httpGet": {"path": f"{base_url}/api", "port": "notebook-port", "scheme": "HTTP"},
                              "initialDelaySeconds": 10, "periodSeconds": 5},
            "readinessProbe": {"httpGet": {"path": f"{base_url}/api", "port": "notebook-port", "scheme": "HTTP"},
                               "initialDelaySeconds": 10, "periodSeconds": 5},
            "volumeMounts": [{"name": name, "mountPath": "/opt/app-root/src"},
                             {"name": "shm", "mountPath": "/dev/shm"}],
        }
        sidecar = {
            "name": "kube-rbac-proxy", "image": KUBE_RBAC_PROXY,
            "args": ["--secure-listen-address=0.0.0.0:8443", "--upstream=http://127.0.0.1:8888",
                     "--config-file=/etc/kube-rbac-proxy/config-file.yaml",
                     "--tls-cert-file=/etc/tls/private/tls.crt", "--tls-private-key-file=/etc/tls/private/tls.key"],
            "ports": [{"name": "kube-rbac-proxy", "containerPort": 8443, "protocol": "TCP"}],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}},
            "volumeMounts": [{"name": "kube-rbac-proxy-tls", "mountPath": "/etc/tls/private"}],
        }
        running = "kubeflow-resource-stopped" not in notes or notes["kubeflow-resource-stopped"].startswith("odh")
        # kubeflow notebook_types.go: conditions, readyReplicas and containerState are required.
        status: JSON = {"readyReplicas": 1 if running else 0, "conditions": [], "containerState": {}}
        if running:
            started = _ts(rng, 7)
            status["containerState"] = {"running": {"startedAt": started}}
            status["conditions"] = [{"type": c, "status": "True", "lastTransitionTime": started}
                                    for c in ("Initialized", "Ready", "ContainersReady", "PodScheduled")]
        yield {**_obj(NOTEBOOK, name, ns, labels={"app": name, "opendatahub.io/dashboard": "true",
                                                  "opendatahub.io/odh-managed": "true",
                                                  "opendatahub.io/user": user},
                      annotations=notes),
               "spec": {"template": {"spec": {
                   "enableServiceLinks": False, "serviceAccountName": name,
                   "containers": [workbench, sidecar],
                   "tolerations": [GPU_TOLERATION] if gpu else [],
                   "volumes": [{"name": name, "persistentVolumeClaim": {"claimName": name}},
                               {"name": "shm", "emptyDir": {"medium": "Memory"}},
                               {"name": "kube-rbac-proxy-tls",
                                "secret": {"secretName": f"{name}-kube-rbac-proxy-tls"}}],
               }}},
               "status": status}


def _auto_formats(cat: Catalog, ns: str, *, cpu: bool = False) -> list[str]:
    """Model formats some runtime of `ns` or of the cluster auto-selects (`cpu`: a CPU one)."""
    formats = {f[0] for _, _, _, fs in cat.cluster_runtimes for f in fs if f[2]}
    for r in cat.runtimes_by_project.get(ns, ()):
        if not r.disabled and not (cpu and r.kind.gpu):
            formats.update(f[0] for f in r.kind.formats if f[2])
    return sorted(formats)


UNRESOLVABLE_FRACTION = 0.01  # inference services naming a runtime that was deleted


def inference_services(cat: Catalog) -> Iterator[JSON]:
    p = cat.preset
    rng = random.Random(f"{p.seed}/inferenceservices")
    pick_ns = _Zipf(len(cat.projects), 0.8)
    pick_modelcar = _Zipf(max(1, len(cat.modelcars)), 0.9)
    for i in range(p.inference_services):
        ns = cat.projects[pick_ns(rng)]
        name = f"{MODELS[i % len(MODELS)].split('-')[0]}-svc-{i}"
        runtimes = [r for r in cat.runtimes_by_project.get(ns, ()) if not r.disabled]
        model: JSON = {}
        predictor: JSON = {"minReplicas": 1, "maxReplicas": 1}
        roll = rng.random()
        runtime: ProjectRuntime | None = None
        if roll < UNRESOLVABLE_FRACTION:
            model = {"modelFormat": {"name": "vLLM"}, "runtime": "deleted-runtime"}
        elif roll < 0.03:  # a custom predictor: the user's own container
            predictor["containers"] = [{"name": "kserve-container",
                                        "image": f"quay.io/{ns}/custom-predictor:{1 + i % 5}.0",
                                        "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]
        elif runtimes and roll < 0.75:
            runtime = rng.choice(runtimes)
            model = {"modelFormat": {"name": runtime.kind.formats[0][0]}, "runtime": runtime.name}
            if runtime.by_tag and rng.random() < 0.15:
                model["runtimeVersion"] = runtime.kind.tag.replace("2.19", "2.20")
        else:
            model = {"modelFormat": {"name": rng.choice(_auto_formats(cat, ns))}}
        if model:
            auto = "runtime" not in model
            gpu = runtime.kind.gpu if runtime is not None else (
                p.pools and auto and model["modelFormat"]["name"] not in _auto_formats(cat, ns, cpu=True))
            modelcar_fraction = p.modelcar_fraction
            if p.pools:  # the ModelCar pool holds LLMs: served on GPUs
                modelcar_fraction = POOLS_GPU_RUNTIME_MODELCAR_FRACTION if gpu else 0.0
            if cat.modelcars and rng.random() < modelcar_fraction:
                model["storageUri"] = cat.modelcars[pick_modelcar(rng)]
            else:
                model["storageUri"] = rng.choice((f"s3://models/{ns}/{name}", f"pvc://models-pvc/{name}",
                                                  f"hf://ibm-granite/{MODELS[i % len(MODELS)]}"))
            model["resources"] = {"requests": {"cpu": "4", "memory": "16Gi"}, "limits": {"cpu": "8", "memory": "24Gi"}}
            if gpu:
                model["resources"]["requests"]["nvidia.com/gpu"] = model["resources"]["limits"]["nvidia.com/gpu"] = "1"
                if not (p.pools and runtime is not None and runtime_tolerates_gpu(runtime)):
                    predictor["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
            model["args"] = ["--max-model-len=8192"] if model["modelFormat"]["name"] == "vLLM" else []
            predictor["model"] = model
        ready = rng.random() < 0.8
        when = _ts(rng, 30)
        conditions = [{"type": c, "status": "True" if ready else "False", "lastTransitionTime": when}
                      for c in ("IngressReady", "PredictorReady", "Ready")]
        if not ready:
            conditions[-1]["reason"] = "MinimumReplicasUnavailable"
        yield {**_obj(INFERENCE_SERVICE, name, ns,
                      labels={"opendatahub.io/dashboard": "true", "networking.kserve.io/visibility": "exposed"},
                      annotations={"openshift.io/display-name": name,
                                   "serving.kserve.io/deploymentMode": "RawDeployment",
                                   "security.opendatahub.io/enable-auth": "true"}),
               "spec": {"predictor": predictor},
               "status": {"url": f"https://{name}-{ns}.apps.rhoai.example.com",
                          "address": {"url": f"https://{name}-predictor.{ns}.svc.cluster.local:8443"},
                          "deploymentMode": "RawDeployment", "observedGeneration": 1, "conditions": conditions,
                          "modelStatus": {"copies": {"failedCopies": 0, "totalCopies": 1},
                                          "states": {"activeModelState": "Loaded" if ready else "Pending",
                                                     "targetModelState": "Loaded"},
                                          "transitionStatus": "UpToDate" if ready else "InProgress"}}}


LLM_SERVING_IMAGE = f"registry.redhat.io/rhaiis/vllm-cuda-rhel9@{digest('rhaiis-vllm-cuda')}"


def llm_inference_services(cat: Catalog) -> Iterator[JSON]:
    rng = random.Random(f"{cat.preset.seed}/llminferenceservices")
    for i in range(cat.preset.llm_inference_services):
        ns = cat.projects[i % len(cat.projects)]
        name = f"llm-{MODELS[i % len(MODELS)].split('-')[0]}-{i}"
        uri = cat.modelcars[rng.randrange(len(cat.modelcars))] if cat.modelcars else "hf://ibm-granite/granite"
        ready = rng.random() < 0.85
        yield {**_obj(LLM_INFERENCE_SERVICE, name, ns, labels={"opendatahub.io/dashboard": "true"},
                      annotations={"openshift.io/display-name": name}),
               "spec": {"model": {"uri": uri, "name": MODELS[i % len(MODELS)]}, "replicas": 1,
                        "router": {"route": {}, "gateway": {}, "scheduler": {}},
                        "template": {"containers": [{
                            "name": "main", "image": LLM_SERVING_IMAGE, "args": ["--max-model-len=16384"],
                            "resources": {"requests": {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": "1"},
                                          "limits": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"}}}],
                                     **({"tolerations": [GPU_TOLERATION]} if cat.preset.pools else {})}},
               "status": {"url": f"https://inference.apps.rhoai.example.com/{ns}/{name}",
                          "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                          "lastTransitionTime": _ts(rng, 30)}]}}


# ---- nodes -------------------------------------------------------------------------------


def _node_images(cat: Catalog) -> tuple[list[tuple[list[str], int]], list[tuple[list[str], int]],
                                        list[tuple[list[str], int]]]:
    """Candidate `status.images` entries (two names each): platform, workload, GPU-only."""
    rng = random.Random(f"{cat.preset.seed}/node-images")
    platform = []
    for i in range(60):
        d = digest(f"ocp:{i}")
        platform.append(([f"quay.io/openshift-release-dev/ocp-v4.0-art-dev@{d}",
                          f"quay.io/openshift-release-dev/ocp-v4.0-art-dev:4.18.{i}"],
                         int(rng.uniform(0.1, 1.6) * (1 << 30))))
    platform.append(([KUBE_RBAC_PROXY, "registry.redhat.io/openshift4/ose-kube-rbac-proxy-rhel9:v4.18"], 151937024))
    platform.append(([f"registry.access.redhat.com/ubi9/ubi-minimal@{digest('ubi-minimal')}",
                      "registry.access.redhat.com/ubi9/ubi-minimal:latest"], 103847936))
    platform.append(([f"{STORAGE_INITIALIZER}@{digest('storage-initializer')}", f"{STORAGE_INITIALIZER}:rhoai-2.19"],
                     1052688384))
    workload = []
    gpu = []
    for s in cat.workbench_streams:
        # Pool-heavy: CUDA and ROCm images were only ever pulled on GPU nodes.
        cached_on = gpu if cat.preset.pools and stream_accelerator(s) else workload
        for t in s.tags:
            if rng.random() < 0.5:  # pulled through the internal registry tag
                names = [f"{INTERNAL_REGISTRY}/{APPS_NS}/{s.name}@{t.image_digest}", s.internal(t.tag)]
            else:  # pulled by digest
                names = [t.status_reference, f"{t.upstream}:{t.tag}"]
            cached_on.append((names, t.size))
    for i, image in enumerate(cat.custom_images):
        if "@" in image:
            names = [image, image.partition("@")[0] + ":latest"]
        else:
            names = [image.rpartition(":")[0] + f"@{digest(f'custom-pulled:{i}')}", image]
        workload.append((names, int(rng.uniform(1, 6) * (1 << 30))))
    for name, repo, tag, _ in cat.cluster_runtimes:
        workload.append(([f"{repo}@{digest(f'csr:{name}')}", f"{repo}:{tag}"], int(rng.uniform(1, 3) * (1 << 30))))
    for kind in RUNTIME_KINDS:
        gpu.append(([runtime_image(kind), f"{kind.repo}:{kind.tag}"], kind.size))
    for uri, size in zip(cat.modelcars, cat.modelcar_sizes, strict=True):
        ref = uri.removeprefix("oci://")
        if "@" in ref:
            names = [ref, ref.partition("@")[0] + ":latest"]
        else:
            names = [ref.rpartition(":")[0] + f"@{digest('pulled:' + ref)}", ref]
        gpu.append((names, size))
    gpu.append(([LLM_SERVING_IMAGE, "registry.redhat.io/rhaiis/vllm-cuda-rhel9:3.2"], 21 << 30))
    return platform, workload, gpu


NODE_DISKS_KI = ("125293548Ki", "250588092Ki", "524288000Ki", "1048576000Ki")


def nodes(cat: Catalog) -> Iterator[JSON]:
    p = cat.preset
    rng = random.Random(f"{p.seed}/nodes")
    platform, workload, gpu_images = _node_images(cat)
    n = p.images_per_node
    gpu_every = 5 if p.pools else 10
    for i in range(p.nodes):
        is_gpu = i % gpu_every == gpu_every - 1
        name = f"worker-gpu-{i:03d}" if is_gpu else f"worker-{i:03d}"
        zone = f"zone-{'abc'[i % 3]}"
        n_platform = min(len(platform), n * 2 // 5)
        chosen = rng.sample(platform, n_platform)
        pool = workload + (gpu_images if is_gpu else [])
        chosen += rng.sample(pool, min(len(pool), n - n_platform))
        chosen.sort(key=lambda e: -e[1])
        images = [{"names": list(names), "sizeBytes": size} for names, size in chosen[:n]]
        disk = NODE_DISKS_KI[2 + i % 2] if is_gpu else NODE_DISKS_KI[i % 2]
        labels = {"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
                  "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                  "node-role.kubernetes.io/worker": "", "node.openshift.io/os_id": "rhcos",
                  "topology.kubernetes.io/zone": zone}
        if is_gpu:
            labels.update(GPU_LABELS if p.pools else {"nvidia.com/gpu.present": "true"})
        beat = _ts(rng, 0.01)
        boot = digest(f"boot:{name}")[7:39]
        capacity = {"cpu": "64" if is_gpu else "16", "ephemeral-storage": disk, "hugepages-1Gi": "0",
                    "hugepages-2Mi": "0", "memory": "263842324Ki" if is_gpu else "65843868Ki", "pods": "250"}
        if is_gpu:
            capacity["nvidia.com/gpu"] = "8"
        spec: JSON = {"providerID": f"baremetalhost:///openshift-machine-api/{name}/{boot}"}
        if p.pools and is_gpu:
            cordoned = i == gpu_every - 1  # the first GPU node, for a driver update
            if cordoned:
                spec["unschedulable"] = True
            spec["taints"] = [UNSCHEDULABLE_TAINT, GPU_TAINT] if cordoned else [GPU_TAINT]
        yield {**_obj(NODE, name, labels=labels,
                      annotations={"machineconfiguration.openshift.io/currentConfig": "rendered-worker-5b9f0d1c7e",
                                   "machineconfiguration.openshift.io/state": "Done"}),
               "spec": spec,
               "status": {
                   "capacity": capacity,
                   "allocatable": {**capacity, "cpu": "63500m" if is_gpu else "15500m"},
                   "addresses": [{"type": "InternalIP", "address": f"10.0.{i // 250}.{i % 250 + 2}"},
                                 {"type": "Hostname", "address": name}],
                   "conditions": [{"type": t, "status": s, "reason": r, "message": m,
                                   "lastHeartbeatTime": beat, "lastTransitionTime": "2026-10-30T02:14:08Z"}
                                  for t, s, r, m in (
                                      ("MemoryPressure", "False", "KubeletHasSufficientMemory",
                                       "kubelet has sufficient memory available"),
                                      ("DiskPressure", "False", "KubeletHasNoDiskPressure",
                                       "kubelet has no disk pressure"),
                                      ("PIDPressure", "False", "KubeletHasSufficientPID",
                                       "kubelet has sufficient PID available"),
                                      ("Ready", "True", "KubeletReady", "kubelet is posting ready status"))],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                   "nodeInfo": {"architecture": "amd64", "bootID": boot,
                                "containerRuntimeVersion": "cri-o://1.31.6-3.rhaos4.18.gitb46f2fe.el9",
                                "kernelVersion": "5.14.0-427.57.1.el9_4.x86_64", "kubeProxyVersion": "",
                                "kubeletVersion": "v1.31.6", "machineID": boot, "operatingSystem": "linux",
                                "osImage": "Red Hat Enterprise Linux CoreOS 418.94.202503121549-0",
                                "systemUUID": boot},
                   "images": images,
               }}


# ---- image references, for checks ----------------------------------------------------------


def image_references(obj: JSON) -> Iterator[tuple[str, str]]:
    """`(field, reference)` for every image reference an object carries (ModelCar URIs
    without their `oci://`), as the generator wrote them."""
    kind = obj["kind"]

    def pod(spec: Any, path: str) -> Iterator[tuple[str, str]]:
        for key in ("initContainers", "containers"):
            for c in (spec or {}).get(key, []):
                yield f"{path}.{key}[{c['name']}].image", c["image"]

    if kind == "ImageStream":
        for t in obj["spec"]["tags"]:
            yield f"spec.tags[{t['name']}].from.name", t["from"]["name"]
        for t in obj["status"]["tags"]:
            for item in t["items"]:
                yield f"status.tags[{t['tag']}].items[].dockerImageReference", item["dockerImageReference"]
        for t in obj["spec"]["tags"]:
            yield "status.dockerImageRepository:tag", f"{obj['status']['dockerImageRepository']}:{t['name']}"
    elif kind == "Notebook":
        yield from pod(obj["spec"]["template"]["spec"], "spec.template.spec")
    elif kind in ("ServingRuntime", "ClusterServingRuntime"):
        yield from pod(obj["spec"], "spec")
        yield from pod(obj["spec"].get("workerSpec"), "spec.workerSpec")
    elif kind == "Template":
        for i, item in enumerate(obj["objects"]):
            yield from pod(item["spec"], f"objects[{i}].spec")
            yield from pod(item["spec"].get("workerSpec"), f"objects[{i}].spec.workerSpec")
    elif kind == "InferenceService":
        predictor = obj["spec"]["predictor"]
        yield from pod(predictor, "spec.predictor")
        uri = predictor.get("model", {}).get("storageUri", "")
        if uri.startswith("oci://"):
            yield "spec.predictor.model.storageUri", uri.removeprefix("oci://")
    elif kind == "LLMInferenceService":
        uri = obj["spec"]["model"]["uri"]
        if uri.startswith("oci://"):
            yield "spec.model.uri", uri.removeprefix("oci://")
        yield from pod(obj["spec"]["template"], "spec.template")
    elif kind == "Node":
        for image in obj["status"]["images"]:
            for name in image["names"]:
                yield "status.images[].names[]", name
    elif kind == "KubernetesImagePuller":
        for entry in obj["spec"]["images"].split(";"):
            if entry.strip():
                yield "spec.images", entry.partition("=")[2]


# ---- command line: fill a cluster ----------------------------------------------------------


def preset_from_args(args: Any) -> Preset:
    """The named preset with any size flags (`--notebooks 500`...) applied."""
    return PRESETS[args.preset].with_overrides(**{k: getattr(args, k, None) for k in OVERRIDABLE})


def add_size_flags(parser: Any) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small", help="estate size (default: small)")
    sizes = parser.add_argument_group("sizes (override the preset)")
    for f in fields(Preset):
        if f.name == "name":
            continue
        if f.type in ("bool", bool):
            continue
        kind = float if f.type in ("float", float) else int
        sizes.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=kind, metavar="N")
    parser.add_argument("--pools", dest="pools", action="store_const", const=True, default=None,
                        help="pool-heavy estate: a tainted GPU pool with its own puller (bench/generate.py, Pools)")


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.generate",
                                     description="Fill a cluster with a synthetic OpenShift AI estate.")
    add_size_flags(parser)
    parser.add_argument("--kubeconfig", help="the cluster to fill (omit with --dump or --counts)")
    parser.add_argument("--workers", type=int, default=16, help="parallel requests (default 16)")
    parser.add_argument("--force", action="store_true", help="load even if the marker says it is loaded")
    parser.add_argument("--dump", metavar="FILE", help="write the objects as JSON lines instead of loading")
    parser.add_argument("--counts", action="store_true", help="print the object counts and exit")
    parser.add_argument("--hostile", action="store_true",
                        help="load (or count) the hostile project of bench/hostile.py instead of the estate")
    args = parser.parse_args(argv)
    preset = preset_from_args(args)
    if args.hostile:
        return _hostile(args)
    if args.counts:
        print(json.dumps(expected_counts(preset), indent=2))
        return 0
    if args.dump:
        with open(args.dump, "w", encoding="utf-8") as out:
            for obj in objects(preset):
                out.write(json.dumps(obj, separators=(",", ":")) + "\n")
        return 0
    if not args.kubeconfig:
        parser.error("--kubeconfig is required to load (or use --dump / --counts)")
    from bench.load import fill

    report = fill(args.kubeconfig, preset, workers=args.workers, force=args.force)
    if report is None:
        print(f"bench: the cluster already holds the {preset.name} estate (use --force to load again)")
    else:
        print(json.dumps(report.as_dict(), indent=2))
    return 0


def _hostile(args: Any) -> int:
    from bench import hostile

    if args.counts:
        print(json.dumps(hostile.expected_counts(), indent=2))
        return 0
    if args.dump or not args.kubeconfig:
        raise SystemExit("--hostile loads into --kubeconfig (it has no --dump: two objects are not dumpable JSON)")
    from bench.load import fill_hostile

    report = fill_hostile(args.kubeconfig, force=args.force)
    print(json.dumps(report.as_dict(), indent=2) if report else "bench: the hostile project is already loaded")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
