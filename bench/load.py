"""Fill a cluster with an estate from `bench.generate`, fast: bulk, parallel raw requests.

Each object is one POST (status stripped; the server ignores it anyway) and, when its kind
has a status subresource, one PUT of `/status` built from the object the POST returned
(so it carries the new resourceVersion). An object that already exists (409) is read and
its status written again, so an interrupted load can simply be run again.

Namespaces go first (everything else lives in them); the rest is sent by a pool of
workers sharing one urllib3 pool (one keep-alive connection per worker), with a bounded
number of objects in flight so memory stays flat whatever the preset.

A ConfigMap `default/prepull-bench-estate` records what was loaded (preset, counts, load
time): `bench.run` uses it to skip loading a cluster that already holds the same estate.
`fill_hostile` loads `bench.hostile`'s project the same way, with its own marker
`default/prepull-bench-hostile`; its two deep objects are sent as the bytes they carry.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any

from bench import generate, hostile
from bench.hostile import RAW
from bench.kube import Raw

MARKER_PATH = "/api/v1/namespaces/default/configmaps"
MARKER_NAME = "prepull-bench-estate"
HOSTILE_MARKER_NAME = "prepull-bench-hostile"
GENERATOR_VERSION = "1"

# kind -> (REST root, plural, namespaced, has a status subresource), as hack/crds serves them.
RESOURCES: dict[str, tuple[str, str, bool, bool]] = {
    "Namespace": ("/api/v1", "namespaces", False, False),
    "Node": ("/api/v1", "nodes", False, True),
    "DSCInitialization": ("/apis/dscinitialization.opendatahub.io/v1", "dscinitializations", False, True),
    "ConfigMap": ("/api/v1", "configmaps", True, False),
    "KubernetesImagePuller": ("/apis/che.eclipse.org/v1alpha1", "kubernetesimagepullers", True, True),
    "ImageStream": ("/apis/image.openshift.io/v1", "imagestreams", True, True),
    "Template": ("/apis/template.openshift.io/v1", "templates", True, False),
    "ClusterServingRuntime": ("/apis/serving.kserve.io/v1alpha1", "clusterservingruntimes", False, False),
    "ServingRuntime": ("/apis/serving.kserve.io/v1alpha1", "servingruntimes", True, False),
    "Notebook": ("/apis/kubeflow.org/v1", "notebooks", True, True),
    "InferenceService": ("/apis/serving.kserve.io/v1beta1", "inferenceservices", True, True),
    "LLMInferenceService": ("/apis/serving.kserve.io/v1alpha1", "llminferenceservices", True, True),
}


def collection_path(obj: dict[str, Any]) -> str:
    root, plural, namespaced, _ = RESOURCES[obj["kind"]]
    if namespaced:
        return f"{root}/namespaces/{obj['metadata']['namespace']}/{plural}"
    return f"{root}/{plural}"


class LoadError(RuntimeError):
    pass


@dataclass
class LoadReport:
    objects: dict[str, int] = field(default_factory=dict)
    created: int = 0
    existing: int = 0
    status_written: int = 0
    requests: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0
    workers: int = 0

    @property
    def objects_per_second(self) -> float:
        return sum(self.objects.values()) / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "objects_per_second": round(self.objects_per_second, 1)}


class _Loader:
    def __init__(self, raw: Raw) -> None:
        self.raw = raw
        self.lock = threading.Lock()
        self.report = LoadReport()
        self.counts: Counter[str] = Counter()

    def _send(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        for attempt in range(5):
            status, data = self.raw.request(method, path, body=body,
                                            content_type="application/json" if body is not None else None)
            if status == 429 or status >= 500:  # an overloaded test server: back off and retry
                time.sleep(0.2 * 2**attempt)
                continue
            break
        with self.lock:
            self.report.requests += 1
            self.report.bytes_sent += len(body or b"")
        return status, data

    def apply(self, obj: dict[str, Any]) -> None:
        if RAW in obj:  # sent as it is, and never read back: json would recurse over it
            self._apply_raw(obj)
            return
        status_doc = obj.get("status")
        body = {k: v for k, v in obj.items() if k != "status"}
        kind = obj["kind"]
        has_status = RESOURCES[kind][3] and status_doc is not None
        collection = collection_path(obj)
        code, data = self._send("POST", collection, json.dumps(body, separators=(",", ":")).encode())
        existed = code == 409
        if existed:
            code, data = self._send("GET", f"{collection}/{obj['metadata']['name']}")
        if code >= 300:
            raise LoadError(f"{kind} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}: "
                            f"HTTP {code}: {data[:300]!r}")
        if has_status:
            current = json.loads(data)
            if current.get("status") != status_doc:
                current["status"] = status_doc
                path = f"{collection}/{obj['metadata']['name']}/status"
                code, data = self._send("PUT", path, json.dumps(current, separators=(",", ":")).encode())
                if code >= 300:
                    raise LoadError(f"{kind} {obj['metadata']['name']} status: HTTP {code}: {data[:300]!r}")
                with self.lock:
                    self.report.status_written += 1
        with self.lock:
            self.counts[kind] += 1
            if existed:
                self.report.existing += 1
            else:
                self.report.created += 1


    def _apply_raw(self, obj: dict[str, Any]) -> None:
        code, data = self._send("POST", collection_path(obj), obj[RAW])
        if code >= 300 and code != 409:
            raise LoadError(f"{obj['kind']} {obj['metadata']['name']}: HTTP {code}: {data[:300]!r}")
        with self.lock:
            self.counts[obj["kind"]] += 1
            if code == 409:
                self.report.existing += 1
            else:
                self.report.created += 1


def load(kubeconfig: str, objs: Iterable[dict[str, Any]], *, workers: int = 16,
         progress: Callable[[str], None] | None = None) -> LoadReport:
    """Create every object (and its status). Raises LoadError on the first refusal."""
    raw = Raw(kubeconfig, pool_size=workers)
    loader = _Loader(raw)
    loader.report.workers = workers
    started = time.monotonic()
    last_note = started
    try:
        it = iter(objs)
        pending: list[dict[str, Any]] = []
        for obj in it:  # namespaces first, serially enough to be in place before the rest
            if obj["kind"] != "Namespace":
                pending.append(obj)
                break
            loader.apply(obj)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bench-load") as pool:
            in_flight: set[Future[None]] = set()
            for obj in _chain(pending, it):
                if len(in_flight) >= workers * 4:
                    done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    for f in done:
                        f.result()
                in_flight.add(pool.submit(loader.apply, obj))
                now = time.monotonic()
                if progress and now - last_note > 10:
                    last_note = now
                    done_n = sum(loader.counts.values())
                    progress(f"loaded {done_n} objects in {now - started:.0f}s "
                             f"({done_n / (now - started):.0f}/s): {dict(loader.counts)}")
            for f in in_flight:
                f.result()
    finally:
        raw.close()
    loader.report.seconds = round(time.monotonic() - started, 3)
    loader.report.objects = dict(loader.counts)
    return loader.report


def _chain(first: list[dict[str, Any]], rest: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    yield from first
    yield from rest


# ---- the marker ----------------------------------------------------------------------------


def read_marker(kubeconfig: str, name: str = MARKER_NAME) -> dict[str, Any] | None:
    raw = Raw(kubeconfig)
    try:
        code, data = raw.request("GET", f"{MARKER_PATH}/{name}")
    finally:
        raw.close()
    if code != 200:
        return None
    return json.loads(json.loads(data)["data"]["estate"])


def write_marker(kubeconfig: str, preset: generate.Preset | None, report: LoadReport,
                 name: str = MARKER_NAME) -> None:
    doc = {"generator_version": GENERATOR_VERSION, "preset": asdict(preset) if preset else None,
           "objects": report.objects, "load": report.as_dict()}
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"},
            "data": {"estate": json.dumps(doc)}}
    raw = Raw(kubeconfig)
    try:
        code, data = raw.request("POST", MARKER_PATH, body=json.dumps(body).encode(), content_type="application/json")
        if code == 409:
            code, data = raw.request("PUT", f"{MARKER_PATH}/{name}", body=json.dumps(body).encode(),
                                     content_type="application/json")
        if code >= 300:
            raise LoadError(f"writing the estate marker: HTTP {code}: {data[:300]!r}")
    finally:
        raw.close()


def marker_matches(marker: dict[str, Any] | None, preset: generate.Preset) -> bool:
    return bool(marker) and marker.get("generator_version") == GENERATOR_VERSION and \
        marker.get("preset") == asdict(preset)


def fill(kubeconfig: str, preset: generate.Preset, *, workers: int = 16, force: bool = False) -> LoadReport | None:
    """Load `preset` unless the marker says it is already there; None when skipped."""
    if not force and marker_matches(read_marker(kubeconfig), preset):
        return None
    report = load(kubeconfig, generate.objects(preset), workers=workers,
                  progress=lambda m: print(f"bench: {m}", file=sys.stderr, flush=True))
    write_marker(kubeconfig, preset, report)
    return report


def fill_hostile(kubeconfig: str, *, workers: int = 4, force: bool = False) -> LoadReport | None:
    """Load the hostile project (`bench.hostile`) next to what the cluster holds, unless its
    marker says it is there; None when skipped. Few workers: its objects are megabytes."""
    if not force and read_marker(kubeconfig, HOSTILE_MARKER_NAME) is not None:
        return None
    report = load(kubeconfig, hostile.objects(), workers=workers,
                  progress=lambda m: print(f"bench: hostile: {m}", file=sys.stderr, flush=True))
    write_marker(kubeconfig, None, report, HOSTILE_MARKER_NAME)
    return report
