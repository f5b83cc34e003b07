"""Node pools (issue 15): what each agent lists for each pool, and the bytes that land on
each node, on one loaded cluster.

    python -m bench.pools --old-agent-path /tmp/agent-fd4aa05 --sample           # samples/cluster
    python -m bench.pools --old-agent-path /tmp/agent-fd4aa05 --preset large --pools \\
        --kubeconfig /tmp/bench-pools/kubeconfig --json pools-large.json

Three runs of `prepull-agent once --dry-run --output json`, child processes:

- `new`: this tree's agent with the pool targets (`--config`, default
  samples/agent-config.yaml: the CPU workers' puller `openshift-operators/image-puller` and
  the GPU pool's `image-puller-gpu/image-puller`, as `--pools` and samples/cluster make them);
- `old`: the agent before pools (`--old-agent-path`, a checkout of fd4aa05) with today's
  configuration, its single default target `openshift-operators/image-puller`;
- `old-two-targets`: the old agent with the new configuration's targets (it plans the same
  usages for every target; only the budget follows each CR's nodeSelector).

Then, in this process, with this tree's agent modules reading the same cluster:

- The nodes each puller's DaemonSet runs on: `agent.pools.place` on each CR as read (its
  nodeSelector, affinity and tolerations, plus the DaemonSet controller's own tolerations,
  against the nodes' labels and taints). That is a property of the CR and the nodes, not of
  the agent, so it holds for the old agent's lists too: the old CR's nodeSelector
  (`node-role.kubernetes.io/worker: ""`) also matches the GPU nodes, but their
  `nvidia.com/gpu` taint keeps its DaemonSet off them.
- A node pulls every entry of the list of each puller that runs on it (an image listed by
  two of them counts once). Its bytes are the sum of the entries' sizes: the size nodes
  report (`agent.sizes.ImageSizes`: a digest's, or a tag's together with its digest:
  `known`), else the figure of the agent that listed it (its candidate's `size_bytes`: the
  per-role estimate, or for the old agent a tag's size nodes report without one digest; an
  administrator entry no node reports: the `custom-container` estimate): `estimated`.
- Whether a node can use an entry: some usage of that image (a workload, or an offered
  image placed by its accelerator hint) could be scheduled on that node
  (`agent.placement.can_run_on`, as `agent.pools` decides). An agent-listed entry no usage
  could run on that node is `unusable` there: bytes spent for nothing. Administrator
  entries are counted apart (`admin`: verbatim in every list, old or new).

Pools are the new configuration's targets (named by their namespace), plus `uncovered`:
nodes no puller of the new configuration runs on. `saved` = old - new, per node and over
the pool's nodes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import generate
from bench.run import REPO_ROOT, agent_command, note, run_child, target_docs

DEFAULT_CONFIG = REPO_ROOT / "samples" / "agent-config.yaml"
SAMPLE_DIR = REPO_ROOT / "samples" / "cluster"
UNCOVERED = "uncovered"
GB = 1e9
GiB = 1 << 30


# ---- what the cluster says (this tree's agent modules) -------------------------------------


@dataclass
class Cluster:
    nodes: tuple[str, ...]
    pools: dict[str, tuple[str, ...]]  # the new configuration's pools (+ uncovered): node names
    pool_accelerators: dict[str, tuple[str, ...]]
    daemonsets: dict[str, frozenset[str]]  # "ns/name" of a puller CR -> the nodes its DaemonSet runs on
    node_selectors: dict[str, dict[str, str]]  # "ns/name" -> the CR's nodeSelector
    runnable: dict[str, frozenset[str]]  # image key -> nodes some usage of it can run on
    sizes: Any  # agent.sizes.ImageSizes
    custom_estimate: int


def image_key(text: str, sizes: Any) -> str:
    """One key per image content: the digest (whatever the repository: the internal
    registry's name and the upstream one are the same bytes), a tag's digest when nodes
    report it with one, else the canonical tag reference."""
    from agent.refs import InvalidReference, parse_reference

    try:
        ref = parse_reference(text)
    except InvalidReference:
        return text
    if ref.digest is not None:
        return ref.digest
    seen = sizes.tag_digest(ref)
    return seen if isinstance(seen, str) else str(ref)


def read_cluster(kubeconfig: str, *, config: Path, targets: Iterable[tuple[str, str]]) -> Cluster:
    from agent import logs
    from agent.apply import read_target
    from agent.kube.client import connect
    from agent.observe import observe
    from agent.placement import can_run_on
    from agent.policy import apply_policy
    from agent.pools import place
    from agent.resolve import resolve
    from agent.settings import Target, load_settings

    settings = load_settings(config, env={})
    logs.configure(fmt="json", level="warning")  # the agents' own runs print their logs
    kube = connect(kubeconfig=kubeconfig, retries=0)
    observation = observe(kube, settings)
    inventory = apply_policy(resolve(observation), settings.references)
    nodes = tuple(observation.nodes.nodes)
    sizes = observation.nodes.sizes

    crs = {f"{ns}/{name}": read_target(kube, Target(namespace=ns, name=name)) for ns, name in targets}
    for t in settings.targets:
        crs.setdefault(f"{t.namespace}/{t.name}", read_target(kube, t))
    daemonsets = {}
    for key, cr in crs.items():
        (view,) = place((), pullers=[cr], nodes=nodes).targets
        daemonsets[key] = frozenset(n.name for n in view.pool.nodes) if view.pool else frozenset(n.name for n in nodes)
    placing = place(inventory.usages, pullers=[crs[f"{t.namespace}/{t.name}"] for t in settings.targets], nodes=nodes)
    pools: dict[str, tuple[str, ...]] = {}
    accelerators: dict[str, tuple[str, ...]] = {}
    for view in placing.targets:
        assert view.pool is not None, "no nodes listed: nothing to place"
        pools[view.pool.name] = tuple(n.name for n in view.pool.nodes)
        accelerators[view.pool.name] = view.pool.accelerators
    covered = {n for names in pools.values() for n in names}
    pools[UNCOVERED] = tuple(n.name for n in nodes if n.name not in covered)
    accelerators[UNCOVERED] = tuple(sorted({r for n in nodes if n.name not in covered for r in n.extended}))

    fits: dict[Any, frozenset[str]] = {}
    runnable: dict[str, set[str]] = {}
    everywhere = frozenset(n.name for n in nodes)
    for usage in inventory.usages:
        placement = usage.placement
        if placement is None:
            where = everywhere
        elif (where := fits.get(placement)) is None:  # type: ignore[assignment]
            where = fits[placement] = frozenset(n.name for n in nodes if can_run_on(placement, n))
        runnable.setdefault(image_key(str(usage.image), sizes), set()).update(where)
    return Cluster(nodes=tuple(n.name for n in nodes), pools=pools, pool_accelerators=accelerators,
                   daemonsets=daemonsets, node_selectors={k: dict(cr.node_selector) for k, cr in crs.items()},
                   runnable={k: frozenset(v) for k, v in runnable.items()}, sizes=sizes,
                   custom_estimate=settings.sizes.for_role("custom-container"))


# ---- what an agent listed ------------------------------------------------------------------


@dataclass(frozen=True)
class Listed:
    name: str
    image: str
    key: str
    size: int
    known: bool  # a node reports the size; else the listing agent's estimate
    admin: bool  # an administrator's entry (not owned by the agent)


@dataclass
class TargetList:
    target: str  # "ns/name"
    entries: tuple[Listed, ...]
    budget_bytes: int | None
    selected: int
    error: str | None = None


@dataclass
class Scenario:
    name: str
    agent_path: str | None
    config: str | None
    lists: list[TargetList] = field(default_factory=list)
    cycle_seconds: float = 0.0
    peak_rss_bytes: int = 0


def read_lists(doc: dict[str, Any], cluster: Cluster) -> list[TargetList]:
    from agent.puller import parse_images
    from agent.refs import InvalidReference, parse_reference

    lists = []
    for t in target_docs(doc):
        estimates: dict[str, int] = {}
        for c in t.get("candidates") or []:
            for spelling in (c["image"], *c.get("tags", ())):
                estimates.setdefault(spelling, c["size_bytes"])
        owned = t.get("owned_after") or {}
        entries = []
        for e in parse_images(t.get("images_after") or ""):
            if e.name is None or e.image is None:
                continue
            try:
                report = cluster.sizes.of(parse_reference(e.image))
            except InvalidReference:
                report = None
            if report is not None:
                size, known = report.size, True
            else:
                size, known = estimates.get(e.image, cluster.custom_estimate), False
            entries.append(Listed(e.name, e.image, image_key(e.image, cluster.sizes), size, known,
                                  admin=e.name not in owned))
        target = f"{t['target']['namespace']}/{t['target']['name']}"
        lists.append(TargetList(target, tuple(entries), t.get("budget_bytes"),
                                selected=sum(1 for c in t.get("candidates") or [] if c.get("selected")),
                                error=t.get("error")))
    return lists


def run_scenario(name: str, kubeconfig: str, *, agent_path: str | None, config: str | None,
                 cluster: Cluster) -> Scenario:
    cmd = agent_command(kubeconfig, config)
    child = run_child(cmd, agent_path=agent_path)
    if child["returncode"] != 0:
        raise RuntimeError(f"{name}: the agent exited {child['returncode']}:\n{child['stderr'][-3000:]}")
    doc = json.loads(child["stdout"])
    cycle = doc.get("cycle") or target_docs(doc)[0].get("cycle") or {}
    return Scenario(name, agent_path, config, read_lists(doc, cluster),
                    cycle_seconds=cycle.get("duration_seconds", 0.0), peak_rss_bytes=child["peak_rss_bytes"])


# ---- bytes per node ------------------------------------------------------------------------


def on_node(node: str, scenario: Scenario, cluster: Cluster) -> dict[str, Any]:
    """What `node` pulls in `scenario`: every entry of each list whose puller runs there."""
    pulled: dict[str, Listed] = {}
    pullers = []
    for lst in scenario.lists:
        if node in cluster.daemonsets.get(lst.target, frozenset()):
            pullers.append(lst.target)
            for e in lst.entries:
                pulled.setdefault(e.key, e)
    entries = list(pulled.values())
    unusable = [e for e in entries if not e.admin and node not in cluster.runnable.get(e.key, frozenset())]
    return {"pullers": pullers, "images": len(entries), "bytes": sum(e.size for e in entries),
            "known_bytes": sum(e.size for e in entries if e.known),
            "estimated_bytes": sum(e.size for e in entries if not e.known),
            "admin_bytes": sum(e.size for e in entries if e.admin),
            "unusable_images": len(unusable), "unusable_bytes": sum(e.size for e in unusable),
            "unusable": sorted(e.image for e in unusable)}


def pool_summary(scenario: Scenario, cluster: Cluster) -> dict[str, Any]:
    out = {}
    for pool, names in cluster.pools.items():
        per_node = [on_node(n, scenario, cluster) for n in names]
        if not per_node:
            continue

        def spread(key: str, rows: list[dict[str, Any]] = per_node) -> dict[str, Any]:
            values = [r[key] for r in rows]
            return {"min": min(values), "median": statistics.median(values), "max": max(values), "sum": sum(values)}

        out[pool] = {"nodes": len(names), "accelerators": list(cluster.pool_accelerators[pool]),
                     "pullers": sorted({p for r in per_node for p in r["pullers"]}),
                     "nodes_without_puller": sum(1 for r in per_node if not r["pullers"]),
                     **{k: spread(k) for k in ("images", "bytes", "known_bytes", "estimated_bytes", "admin_bytes",
                                               "unusable_images", "unusable_bytes")},
                     "unusable_example": next((r["unusable"] for r in per_node if r["unusable"]), [])}
    return out


def list_summary(scenario: Scenario, cluster: Cluster) -> list[dict[str, Any]]:
    out = []
    for lst in scenario.lists:
        runs_on = cluster.daemonsets.get(lst.target, frozenset())
        out.append({"target": lst.target, "node_selector": cluster.node_selectors.get(lst.target),
                    "daemonset_nodes": len(runs_on),
                    "daemonset_nodes_by_pool": {p: len(runs_on & set(ns)) for p, ns in cluster.pools.items()
                                                if runs_on & set(ns)},
                    "images": len(lst.entries), "agent_images": sum(1 for e in lst.entries if not e.admin),
                    "admin_images": sum(1 for e in lst.entries if e.admin),
                    "bytes": sum(e.size for e in lst.entries),
                    "known_bytes": sum(e.size for e in lst.entries if e.known),
                    "estimated_images": sum(1 for e in lst.entries if not e.known),
                    "budget_bytes": lst.budget_bytes, "error": lst.error,
                    "entries": [{"name": e.name, "image": e.image, "size_bytes": e.size, "size_known": e.known,
                                 "admin": e.admin,
                                 "runs_on_pools": sorted(p for p, ns in cluster.pools.items()
                                                         if cluster.runnable.get(e.key, frozenset()) & set(ns))}
                                for e in lst.entries]})
    return out


def compare(scenarios: Mapping[str, dict[str, Any]], *, new: str, old: str) -> dict[str, Any]:
    out = {}
    for pool, n in scenarios[new]["pools"].items():
        o = scenarios[old]["pools"].get(pool)
        if o is None:
            continue
        out[pool] = {
            "nodes": n["nodes"],
            "bytes_per_node": {"old": o["bytes"]["median"], "new": n["bytes"]["median"]},
            "saved_bytes_per_node": o["bytes"]["median"] - n["bytes"]["median"],
            "saved_bytes_total": o["bytes"]["sum"] - n["bytes"]["sum"],
            "unusable_bytes_per_node": {"old": o["unusable_bytes"]["median"], "new": n["unusable_bytes"]["median"]},
            "unusable_saved_bytes_total": o["unusable_bytes"]["sum"] - n["unusable_bytes"]["sum"],
            "images_per_node": {"old": o["images"]["median"], "new": n["images"]["median"]},
        }
    return out


# ---- the run -------------------------------------------------------------------------------


def measure(kubeconfig: str, *, config: Path, old_agent_path: str) -> dict[str, Any]:
    from agent.settings import load_settings

    new_targets = [(t.namespace, t.name) for t in load_settings(config, env={}).targets]
    old_targets = [(t.namespace, t.name) for t in load_settings(None, env={}).targets]
    cluster = read_cluster(kubeconfig, config=config, targets=[*new_targets, *old_targets])
    runs = {
        "new": run_scenario("new", kubeconfig, agent_path=None, config=str(config), cluster=cluster),
        "old": run_scenario("old", kubeconfig, agent_path=old_agent_path, config=None, cluster=cluster),
        "old-two-targets": run_scenario("old-two-targets", kubeconfig, agent_path=old_agent_path,
                                        config=str(config), cluster=cluster),
    }
    scenarios = {name: {"agent_path": s.agent_path, "config": s.config, "cycle_seconds": s.cycle_seconds,
                        "peak_rss_bytes": s.peak_rss_bytes, "lists": list_summary(s, cluster),
                        "pools": pool_summary(s, cluster)}
                 for name, s in runs.items()}
    return {"nodes": len(cluster.nodes),
            "pools": {p: {"nodes": len(ns), "accelerators": list(cluster.pool_accelerators[p])}
                      for p, ns in cluster.pools.items()},
            "daemonsets": {k: len(v) for k, v in cluster.daemonsets.items()},
            "sizes": "node-reported (agent.sizes.ImageSizes) where known, else the listing agent's estimate",
            "scenarios": scenarios,
            "saved": {"new_vs_old": compare(scenarios, new="new", old="old"),
                      "new_vs_old_two_targets": compare(scenarios, new="new", old="old-two-targets")}}


def gb(n: float) -> str:
    return f"{n / GB:.1f} GB"


def markdown(r: dict[str, Any]) -> str:
    lines = ["| scenario | pool (nodes) | pullers there | images per node | bytes per node (known + estimated) "
             "| of which unusable there | bytes over the pool |",
             "|---|---|---|---|---|---|---|"]
    for name, s in r["scenarios"].items():
        for pool, p in s["pools"].items():
            b = p["bytes"]
            spread = gb(b["median"]) if b["min"] == b["max"] else f"{gb(b['min'])}-{gb(b['max'])}"
            lines.append(
                f"| {name} | {pool} ({p['nodes']}) | {', '.join(p['pullers']) or 'none'} | {p['images']['median']:g} "
                f"| {spread} ({gb(p['known_bytes']['median'])} + {gb(p['estimated_bytes']['median'])}) "
                f"| {p['unusable_images']['median']:g} images, {gb(p['unusable_bytes']['median'])} "
                f"| {gb(b['sum'])} |")
    lines += ["", "| scenario | target | DaemonSet nodes (by pool) | images listed (agent + admin) | list bytes "
              "(estimated images) | budget |", "|---|---|---|---|---|---|"]
    for name, s in r["scenarios"].items():
        for t in s["lists"]:
            by_pool = ", ".join(f"{p} {n}" for p, n in t["daemonset_nodes_by_pool"].items())
            budget = "-" if t["budget_bytes"] is None else gb(t["budget_bytes"])
            lines.append(f"| {name} | {t['target']} | {t['daemonset_nodes']} ({by_pool}) | {t['images']} "
                         f"({t['agent_images']} + {t['admin_images']}) | {gb(t['bytes'])} ({t['estimated_images']}) "
                         f"| {budget} |")
    lines += ["", "| pool | bytes per node old -> new | saved per node (old - new) | saved over the pool "
              "| unusable per node old -> new |", "|---|---|---|---|---|"]
    for pool, c in r["saved"]["new_vs_old"].items():
        lines.append(f"| {pool} ({c['nodes']}) | {gb(c['bytes_per_node']['old'])} -> {gb(c['bytes_per_node']['new'])} "
                     f"| {gb(c['saved_bytes_per_node'])} | {gb(c['saved_bytes_total'])} "
                     f"| {gb(c['unusable_bytes_per_node']['old'])} -> {gb(c['unusable_bytes_per_node']['new'])} |")
    return "\n".join(lines)


def load_sample(kubeconfig: str) -> None:
    sys.path.insert(0, str(REPO_ROOT))
    from bench.kube import api_client
    from tests.harness.loader import apply_dir

    api = api_client(kubeconfig)
    try:
        apply_dir(api, SAMPLE_DIR)
    finally:
        api.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pools", description=__doc__.split("\n\n")[0])
    generate.add_size_flags(parser)
    parser.add_argument("--sample", action="store_true", help="load samples/cluster instead of a preset's estate")
    parser.add_argument("--kubeconfig", help="a running cluster (else one is started in a temp dir and stopped)")
    parser.add_argument("--skip-load", action="store_true", help="the cluster is already loaded")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help="the new agent's configuration: the pool targets (default samples/agent-config.yaml)")
    parser.add_argument("--old-agent-path", required=True, metavar="DIR",
                        help="a checkout of the agent before pools (fd4aa05): DIR/agent")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    args = parser.parse_args(argv)
    preset = generate.preset_from_args(args)

    cluster = None
    kubeconfig = args.kubeconfig
    tmp = None
    if not kubeconfig:
        sys.path.insert(0, str(REPO_ROOT))
        from tests.harness.cluster import LocalCluster

        tmp = tempfile.TemporaryDirectory(prefix="prepull-bench-pools-")
        note(f"starting a local cluster in {tmp.name}")
        cluster = LocalCluster().start(tmp.name)
        kubeconfig = str(cluster.kubeconfig)
    try:
        if not args.skip_load:
            if args.sample:
                note("loading samples/cluster")
                load_sample(kubeconfig)
            else:
                from bench.load import fill

                note(f"loading the {preset.name}{' --pools' if preset.pools else ''} estate (unless already there)")
                fill(kubeconfig, preset)
        result = measure(kubeconfig, config=args.config, old_agent_path=args.old_agent_path)
    finally:
        if cluster is not None:
            cluster.stop()
        if tmp is not None:
            tmp.cleanup()
    result["estate"] = "samples/cluster" if args.sample else {"preset": preset.name, "pools": preset.pools}
    print(markdown(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
