"""The kubelet's Pulled events: what one cycle's listing costs, and the figures on the sample.

    # the large preset, loaded as bench/README.md says, plus 50,000 Pulled events
    python -m bench.pulled large --kubeconfig /tmp/bench-large/kubeconfig --events 50000 --json pulled.json

    # the sample cluster (samples/cluster, loaded): a write, starts as a kubelet reports them, the figures
    python -m bench.pulled sample --kubeconfig .cluster/kubeconfig

`large` writes Events exactly as the kubelet does (client-go's recorder) for the estate's
Notebooks: in each Notebook's namespace, on the estate's nodes, naming its containers'
images as written; 60% "already present" (half in 1.35's longer form), 40% "Successfully
pulled" with a duration and size, counts of 1 to 3. Events expire an hour after they are
made (the API server's `--event-ttl`), so they are loaded afresh whenever fewer are listed.
Then, in child processes measured like `bench.run` (peak RSS by GNU time):

- `listing`: `agent.events.list_pulled` alone (the requests, bytes and seconds of the paginated
  list and the records kept), next to a child that only imports the agent and connects;
- `cycle`: `prepull-agent once --dry-run` with `startup.enabled` on and off: what the events
  add to a whole cycle (listing, trust, counting, the summary), in seconds and peak RSS.

`sample` runs two cycles in this process with a summary kept in memory: the first writes
the lists (so the agent knows when it listed each image), then Pulled events are written for
the sample's workloads with KServe's own cold-start figures (docs/samples/storage/
oci-image-volume/README.md), and the second cycle's table and start-up lines are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.kube import Raw
from bench.run import run_child

NOTEBOOKS = "/apis/kubeflow.org/v1/notebooks"
EVENTS = "/api/v1/events"


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def kubelet_event(namespace: str, pod: str, container: str, node: str, message: str, *, count: int = 1,
                  at: datetime, init: bool = False) -> dict[str, Any]:
    """A Pulled event as client-go's recorder writes it for the kubelet."""
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{pod}.{secrets.token_hex(8)}", "namespace": namespace},
        "involvedObject": {"kind": "Pod", "namespace": namespace, "name": pod,
                           "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"pod/{namespace}/{pod}")),  # one pod, one uid
                           "apiVersion": "v1", "resourceVersion": "1", "fieldPath": f"spec.{'initContainers' if init else 'containers'}{{{container}}}"},
        "reason": "Pulled", "message": message, "source": {"component": "kubelet", "host": node},
        "firstTimestamp": stamp(at), "lastTimestamp": stamp(at), "count": count, "type": "Normal",
        "eventTime": None, "reportingComponent": "kubelet", "reportingInstance": node,
    }


def go_duration(seconds: float) -> str:
    """As Go's Duration.String() prints a duration truncated to the millisecond."""
    ms = int(seconds * 1000)
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def pulled(image: str, seconds: float, size: int) -> str:
    return (f'Successfully pulled image "{image}" in {go_duration(seconds)} ({go_duration(seconds * 1.01)} '
            f"including waiting). Image size: {size} bytes.")


def present(image: str, *, accessible: bool) -> str:
    return f'Container image "{image}" already present on machine' + (
        " and can be accessed by the pod" if accessible else "")


# -- large ----------------------------------------------------------------------------------------


def _pages(raw: Raw, path: str, query: dict[str, str]) -> Iterator[dict[str, Any]]:
    query = dict(query)
    while True:
        status, data = raw.request("GET", path, query=query)
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}: {data[:200]!r}")
        doc = json.loads(data)
        yield doc
        token = (doc.get("metadata") or {}).get("continue")
        if not token:
            return
        query["continue"] = token


def count_events(raw: Raw) -> int:
    return sum(len(d.get("items") or []) for d in _pages(raw, EVENTS, {"limit": "500", "fieldSelector": "reason=Pulled"}))


def plan_events(raw: Raw, total: int, *, seed: int = 14) -> list[dict[str, Any]]:
    """`total` events for the estate's Notebooks, spread over its nodes."""
    rng = random.Random(seed)
    containers = []
    for doc in _pages(raw, NOTEBOOKS, {"limit": "500"}):
        for nb in doc.get("items") or []:
            spec = ((nb.get("spec") or {}).get("template") or {}).get("spec") or {}
            for c in spec.get("containers") or []:
                if isinstance(c.get("image"), str):
                    containers.append((nb["metadata"]["namespace"], nb["metadata"]["name"], c["name"], c["image"]))
    nodes = [n["metadata"]["name"] for d in _pages(raw, "/api/v1/nodes", {"limit": "500"}) for n in d["items"]]
    if not containers or not nodes:
        raise SystemExit("bench.pulled: the cluster holds no Notebooks or no Nodes: load the estate first")
    now = datetime.now(UTC)
    events = []
    for i in range(total):
        namespace, notebook, container, image = rng.choice(containers)
        node = rng.choice(nodes)
        at = now - timedelta(seconds=rng.randrange(0, 3000))
        if rng.random() < 0.6:
            message = present(image, accessible=rng.random() < 0.5)
        else:
            message = pulled(image, rng.uniform(5, 600), rng.randrange(500_000_000, 20_000_000_000))
        events.append(kubelet_event(namespace, f"{notebook}-{i}", container, node, message,
                                    count=rng.choice((1, 1, 1, 2, 3)), at=at))
    return events


def load_events(kubeconfig: str, events: list[dict[str, Any]], *, workers: int) -> float:
    raw = Raw(kubeconfig, pool_size=workers)
    started = datetime.now(UTC)

    def send(event: dict[str, Any]) -> None:
        path = f"/api/v1/namespaces/{event['metadata']['namespace']}/events"
        for _ in range(5):
            status, data = raw.request("POST", path, body=json.dumps(event).encode(), content_type="application/json")
            if status < 300:
                return
            if status not in (429, 500, 503):
                raise RuntimeError(f"POST {path}: HTTP {status}: {data[:200]!r}")
        raise RuntimeError(f"POST {path}: gave up")

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for done, _ in enumerate(pool.map(send, events), 1):
                if done % 10_000 == 0:
                    print(f"bench.pulled: {done:,} events written", file=sys.stderr, flush=True)
    finally:
        raw.close()
    return (datetime.now(UTC) - started).total_seconds()


LISTING = """
import json, sys, time
from agent.kube.client import connect
from agent.settings import load_settings
kube = connect(kubeconfig=sys.argv[1])
settings = load_settings(None, env={})
if sys.argv[2] == "list":
    from agent.events import list_pulled
    started = time.perf_counter()
    listing = list_pulled(kube, page_size=settings.kube.page_size, max_events=settings.startup.max_events,
                          max_per_namespace=settings.startup.max_events_per_namespace)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": round(seconds, 3), "listed": listing.listed, "read": len(listing.events),
                      "ignored": dict(listing.ignored), "requests": kube.requests, "error": listing.error}))
else:
    print(json.dumps({"requests": kube.requests}))
"""


def measure_large(kubeconfig: str, *, repeat: int) -> dict[str, Any]:
    python = sys.executable
    listings, baselines, cycles = [], [], {"on": [], "off": []}
    for _ in range(repeat):
        child = run_child([python, "-c", LISTING, kubeconfig, "list"])
        listings.append({**json.loads(child["stdout"]), "peak_rss_bytes": child["peak_rss_bytes"]})
        base = run_child([python, "-c", LISTING, kubeconfig, "none"])
        baselines.append(base["peak_rss_bytes"])
        for switch in ("on", "off"):
            cmd = [python, "-m", "agent", "once", "--dry-run", "--output", "json", "--kubeconfig", kubeconfig,
                   "--log-format", "json"]
            os.environ["PREPULL_STARTUP__ENABLED"] = "true" if switch == "on" else "false"
            done = run_child(cmd)
            doc = json.loads(done["stdout"])
            cycles[switch].append({"cycle_seconds": doc["cycle"]["duration_seconds"],
                                   "requests": doc["cycle"]["requests"], "peak_rss_bytes": done["peak_rss_bytes"],
                                   "pulled_events": doc["cycle"]["pulled_events"]})
        os.environ.pop("PREPULL_STARTUP__ENABLED", None)
    median = statistics.median
    listing = {
        "seconds": median(x["seconds"] for x in listings),
        "listed": listings[0]["listed"],
        "read": listings[0]["read"],
        "requests": listings[0]["requests"],
        "peak_rss_bytes": median(x["peak_rss_bytes"] for x in listings),
        "baseline_rss_bytes": median(baselines),
        "samples_seconds": [x["seconds"] for x in listings],
    }
    listing["rss_over_baseline_bytes"] = listing["peak_rss_bytes"] - listing["baseline_rss_bytes"]
    on, off = cycles["on"], cycles["off"]
    cycle = {
        "with_events_seconds": median(x["cycle_seconds"] for x in on),
        "without_events_seconds": median(x["cycle_seconds"] for x in off),
        "with_events_rss_bytes": median(x["peak_rss_bytes"] for x in on),
        "without_events_rss_bytes": median(x["peak_rss_bytes"] for x in off),
        "with_events_requests": on[0]["requests"],
        "without_events_requests": off[0]["requests"],
        "pulled_events": {k: v for k, v in on[0]["pulled_events"].items() if k != "ignored"},
        "samples": cycles,
    }
    return {"listing": listing, "cycle": cycle}


def large(args: argparse.Namespace) -> int:
    raw = Raw(args.kubeconfig)
    try:
        have = count_events(raw)
        loaded = None
        if have < args.events:
            print(f"bench.pulled: {have:,} Pulled events listed, writing {args.events:,}", file=sys.stderr)
            events = plan_events(raw, args.events)
            loaded = {"events": len(events), "seconds": round(load_events(args.kubeconfig, events,
                                                                           workers=args.workers), 1)}
            del events
        listed = count_events(raw)
    finally:
        raw.close()
    result = {"events_listed": listed, "loaded": loaded, **measure_large(args.kubeconfig, repeat=args.repeat)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")
    return 0


# -- sample ----------------------------------------------------------------------------------------------

GiB = 2**30
# What the sample's workloads pull, with KServe's cold figures for ModelCars of their sizes
# (apply to first prediction, 14 GB ~ 363 s cold) and pulls at ~100 MB/s for the others.
SAMPLE_STARTS = [
    # namespace, pod, container, node, image, cold seconds (None: a warm start), size
    ("team-nlp", "nlp-scratch-0", "nlp-scratch", "worker-0",
     "image-registry.openshift-image-registry.svc:5000/redhat-ods-applications/s2i-minimal-notebook:2025.1",
     14.2, 1412890624),
    ("team-nlp", "legacy-analysis-0", "legacy-analysis", "worker-1",
     "image-registry.openshift-image-registry.svc:5000/redhat-ods-applications/s2i-minimal-notebook:2024.1",
     None, 0),
    ("team-vision", "iris-predictor-0", "kserve-container", "worker-1", "docker.io/kserve/sklearnserver:v0.15.0",
     None, 0),
    ("team-vision", "iris-predictor-1", "kserve-container", "worker-0", "docker.io/kserve/sklearnserver:v0.15.0",
     12.4, 1243103232),
    ("team-nlp", "granite-chat-predictor-0", "modelcar-init", "worker-gpu-0",
     "quay.io/redhat-ai-services/modelcar-catalog:granite-3.1-8b-instruct", 363.0, 14 * 10**9),
    ("team-nlp", "granite-chat-predictor-0", "modelcar", "worker-gpu-0",
     "quay.io/redhat-ai-services/modelcar-catalog:granite-3.1-8b-instruct", None, 0),
    ("team-nlp", "granite-chat-predictor-1", "modelcar-init", "worker-gpu-1",
     "quay.io/redhat-ai-services/modelcar-catalog:granite-3.1-8b-instruct", None, 0),
    ("team-nlp", "granite-chat-predictor-1", "modelcar", "worker-gpu-1",
     "quay.io/redhat-ai-services/modelcar-catalog:granite-3.1-8b-instruct", None, 0),
    ("team-nlp", "granite-chat-predictor-1", "kserve-container", "worker-gpu-1", "quay.io/modh/vllm:rhoai-2.19-cuda",
     None, 0),
    ("team-nlp", "granite-chat-predictor-0", "kserve-container", "worker-gpu-0", "quay.io/modh/vllm:rhoai-2.19-cuda",
     152.0, 15231488512),
]


def sample(args: argparse.Namespace) -> int:
    from agent.cycle import run_cycle
    from agent.events import StartupStore
    from agent.kube.client import connect
    from agent.report import render
    from agent.settings import load_settings

    settings = load_settings(args.config, env={})
    store = StartupStore(namespace="default", name="prepull-bench-no-summary", writable=True)  # kept in memory
    kube = connect(kubeconfig=args.kubeconfig)
    raw = Raw(args.kubeconfig)
    try:
        run_cycle(kube, settings, dry_run=False, startup=store)  # writes the lists: listed from now
        at = datetime.now(UTC) + timedelta(seconds=1)
        for namespace, pod, container, node, image, cold, size in SAMPLE_STARTS:
            message = pulled(image, cold, size) if cold is not None else present(image, accessible=True)
            event = kubelet_event(namespace, pod, container, node, message, at=at, init=container.endswith("-init"))
            status, data = raw.request("POST", f"/api/v1/namespaces/{namespace}/events",
                                       body=json.dumps(event).encode(), content_type="application/json")
            if status >= 300:
                raise RuntimeError(f"POST event: HTTP {status}: {data[:200]!r}")
        result = run_cycle(kube, settings, dry_run=True, startup=store)
    finally:
        kube.close()
        raw.close()
    print(render(result, output="table", dry_run=True, width=120))
    print(json.dumps({str(o.target): {"startup": None if o.startup is None else {
        "starts": o.startup.starts, "warm": o.startup.warm, "seconds_saved": round(o.startup.seconds_saved, 1),
        "measured": round(o.startup.saved_measured, 1), "estimated": round(o.startup.saved_estimated, 1)}}
        for o in result.outcomes}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pulled")
    sub = parser.add_subparsers(dest="command", required=True)
    big = sub.add_parser("large", help="one cycle's event listing on a loaded estate")
    big.add_argument("--kubeconfig", required=True)
    big.add_argument("--events", type=int, default=50_000)
    big.add_argument("--workers", type=int, default=16)
    big.add_argument("--repeat", type=int, default=3)
    big.add_argument("--json")
    small = sub.add_parser("sample", help="the start-up figures on the sample cluster")
    small.add_argument("--kubeconfig", required=True)
    small.add_argument("--config", default="samples/agent-config.yaml")
    args = parser.parse_args(argv)
    return large(args) if args.command == "large" else sample(args)


if __name__ == "__main__":
    raise SystemExit(main())
