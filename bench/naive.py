"""The naive baseline, run as its own process so its time and memory are its own: list the
same kinds the way a quick script would, through the official client's typed models and
default deserialization, with no pagination, keeping every list.

- Nodes: `CoreV1Api.list_node()` (V1NodeList of V1Node models).
- Custom resources: `kubernetes.dynamic.DynamicClient`, `resources.get(...).get()`, which
  builds ResourceInstance/ResourceField objects (discovery included).

    python -m bench.naive --kubeconfig PATH     # prints one JSON line
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    parser = argparse.ArgumentParser(prog="python -m bench.naive")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--applications-namespace", default="redhat-ods-applications")
    args = parser.parse_args(argv)

    from kubernetes import client, config, dynamic

    from agent.kube import kinds
    from agent.observe import SOURCES

    api = config.new_client_from_config(args.kubeconfig)
    imported = time.monotonic()
    dyn = dynamic.DynamicClient(api)
    discovered = time.monotonic()
    kept = []  # a naive script keeps what it listed
    counts: dict[str, int] = {}
    seconds: dict[str, float] = {}
    for source in SOURCES:
        t0 = time.monotonic()
        kind = source.kind
        if kind is kinds.NODE:
            result = client.CoreV1Api(api).list_node()
            kept.append(result)
            counts[kind.kind] = len(result.items)
        else:
            resource = dyn.resources.get(api_version=kind.api_version, kind=kind.kind)
            counts[kind.kind] = 0
            for selector in source.label_selectors:
                kw = {"label_selector": selector} if selector else {}
                if source.in_applications_namespace:
                    kw["namespace"] = args.applications_namespace
                result = resource.get(**kw)
                kept.append(result)
                counts[kind.kind] += len(result.items)
        seconds[kind.kind] = round(time.monotonic() - t0, 3)
    listed = time.monotonic()
    print(json.dumps({
        "objects": counts,
        "list_seconds": round(listed - discovered, 3),
        "discovery_seconds": round(discovered - imported, 3),
        "import_seconds": round(imported - started, 3),
        "seconds_by_kind": seconds,
    }))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
