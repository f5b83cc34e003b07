"""Several agents (or configurations) on one loaded cluster, alternated: cycle time and peak
memory, each against a reference.

    python -m bench.ab --kubeconfig /tmp/bench-pools/kubeconfig --old-agent-path /tmp/agent-fd4aa05 \\
        --config samples/agent-config.yaml --rounds 7 --wait-for-load 2.5 --json ab-large.json

Variants, by default (`--variant NAME=AGENT_PATH,CONFIG` replaces them; an empty part means
this tree's agent / the default configuration):

- `old-1`: the agent before pools (`--old-agent-path`), one target (its default): today;
- `new-1`: this tree's agent, the same one target;
- `new-2`: this tree's agent, the targets of `--config` (two pools);
- `old-2`: the agent before pools with those targets (it plans the same usages twice).

Each round runs the floor once (`bench.run.floor`, every target's GET included: how fast the
API server answers right now) and then every variant once, `prepull-agent once --dry-run
--output json` in a child process, in an order rotated from round to round so that no
variant always runs first or last. Reported per variant: the median, min and max of the
cycle's own `duration_seconds` and of the end-to-end wall time, the peak RSS (GNU time),
the requests; and each median over the reference's (`--reference`, default `old-1`), with
the rounds' own ratios (variant / reference in the same round) as the spread.

`--replay-repeat N` also runs each variant's `run_cycle` against answers recorded once
(`bench.replay`, no server, min of N): the agent's own CPU cost, far less noisy than wall
time on a shared machine. `--profile DIR` profiles each variant whose median cycle is over
`--limit` (1.1) times the reference's (`DIR/NAME/agent-profile.txt`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.run import MiB, agent, floor, note, profile, replay, wait_for_load


@dataclass(frozen=True)
class Variant:
    name: str
    agent_path: str | None  # None: this tree's agent
    config: str | None  # None: the default configuration (one target)


def parse_variant(text: str) -> Variant:
    name, _, rest = text.partition("=")
    path, _, config = rest.partition(",")
    if not name:
        raise argparse.ArgumentTypeError(f"--variant NAME=AGENT_PATH,CONFIG, not {text!r}")
    return Variant(name, path or None, config or None)


def default_variants(old_agent_path: str, config: str) -> list[Variant]:
    return [Variant("old-1", old_agent_path, None), Variant("new-1", None, None),
            Variant("new-2", None, config), Variant("old-2", old_agent_path, config)]


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3)}


def run(kubeconfig: str, variants: list[Variant], *, reference: str, rounds: int, replay_repeat: int,
        limit: float, wait: float | None, wait_timeout: float, profile_dir: str | None) -> dict[str, Any]:
    from agent.settings import load_settings

    configs = {v.config for v in variants}
    targets: list[tuple[str, str]] = []
    for config in configs:
        for t in load_settings(config, env={}).targets:
            if (t.namespace, t.name) not in targets:
                targets.append((t.namespace, t.name))
    page_size = load_settings(None, env={}).kube.page_size
    recording: dict[Any, bytes] = {}
    floor(kubeconfig, page_size=page_size, targets=targets, record=recording)  # warm-up, untimed
    wait_for_load(wait, wait_timeout)
    loadavg_measure = os.getloadavg()
    note(f"measuring (load average {loadavg_measure[0]:.2f}): {rounds} rounds of floor + {len(variants)} variants")
    floors: list[float] = []
    runs: dict[str, list[dict[str, Any]]] = {v.name: [] for v in variants}
    loads: list[float] = []
    for i in range(rounds):
        loads.append(round(os.getloadavg()[0], 2))
        floors.append(floor(kubeconfig, page_size=page_size, targets=targets)["seconds"])
        order = variants[i % len(variants):] + variants[:i % len(variants)]
        for v in order:
            runs[v.name].append(agent(kubeconfig, v.agent_path, v.config))
        note(f"  round {i + 1} (load {loads[-1]:.2f}): floor {floors[-1]:.3f}s, "
             + ", ".join(f"{v.name} {runs[v.name][-1]['cycle_seconds']:.3f}s" for v in variants))
    out: dict[str, Any] = {}
    for v in variants:
        rs = runs[v.name]
        out[v.name] = {"agent_path": v.agent_path, "config": v.config, "targets": rs[0]["targets"],
                       "cycle_seconds": _spread([r["cycle_seconds"] for r in rs]),
                       "end_to_end_seconds": _spread([r["seconds"] for r in rs]),
                       "cpu_seconds": _spread([r["cpu_seconds"] for r in rs]),
                       "peak_rss_bytes": {"median": int(statistics.median(r["peak_rss_bytes"] for r in rs)),
                                          "max": max(r["peak_rss_bytes"] for r in rs),
                                          "min": min(r["peak_rss_bytes"] for r in rs)},
                       "requests": sorted({r["requests"] for r in rs}),
                       "selected": rs[0]["selected"], "candidates": rs[0]["candidates"],
                       "samples": {"cycle_seconds": [r["cycle_seconds"] for r in rs],
                                   "peak_rss_bytes": [r["peak_rss_bytes"] for r in rs]}}
    ref = out[reference]
    for v in variants:
        o = out[v.name]
        per_round = [a["cycle_seconds"] / b["cycle_seconds"] for a, b in zip(runs[v.name], runs[reference],
                                                                             strict=True)]
        o["vs_reference"] = {
            "cycle_median_ratio": round(o["cycle_seconds"]["median"] / ref["cycle_seconds"]["median"], 3),
            "cycle_round_ratios": _spread(per_round),
            "end_to_end_median_ratio": round(o["end_to_end_seconds"]["median"] / ref["end_to_end_seconds"]["median"],
                                             3),
            "cpu_median_ratio": round(o["cpu_seconds"]["median"] / ref["cpu_seconds"]["median"], 3),
            "peak_rss_delta_bytes": o["peak_rss_bytes"]["median"] - ref["peak_rss_bytes"]["median"],
        }
        o["within_limit"] = o["vs_reference"]["cycle_median_ratio"] <= limit
    if replay_repeat:
        for v in variants:
            note(f"  replay {v.name} ({replay_repeat} cycles against recorded answers)")
            out[v.name]["client_only"] = replay(recording, repeat=replay_repeat, agent_path=v.agent_path,
                                                config=v.config)
        ref_cycle = out[reference]["client_only"]["cycle_seconds"]
        for v in variants:
            co = out[v.name]["client_only"]
            co["vs_reference"] = round(co["cycle_seconds"] / ref_cycle, 3)
    del recording
    if profile_dir:
        for v in variants:
            if not out[v.name]["within_limit"]:
                note(f"  profiling {v.name}: its median cycle is over {limit}x {reference}'s")
                out[v.name]["profile"] = str(Path(profile_dir) / v.name / "agent-profile.txt")
                profile(kubeconfig, Path(profile_dir) / v.name, v.agent_path, v.config)
    return {"reference": reference, "limit": limit, "rounds": rounds,
            "targets_listed": [f"{a}/{b}" for a, b in targets],
            "floor_seconds": _spread(floors), "floor_samples": [round(f, 3) for f in floors],
            "loadavg_rounds": loads, "loadavg_measure": [round(x, 2) for x in loadavg_measure],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()], "variants": out}


def _client_only(co: dict[str, Any] | None) -> str:
    return "-" if not co else f"{co['cycle_seconds']:.3f} ({co['vs_reference']:.3f})"


def markdown(r: dict[str, Any]) -> str:
    lines = [f"floor (raw GETs + json.loads) {r['floor_seconds']['median']:.3f} s "
             f"({r['floor_seconds']['min']:.3f}-{r['floor_seconds']['max']:.3f}); load average per round "
             f"{min(r['loadavg_rounds']):.2f}-{max(r['loadavg_rounds']):.2f}; {r['rounds']} rounds",
             "",
             f"| variant | targets | cycle s median (min-max) | / {r['reference']} (per round) | end to end s "
             "| CPU s | peak RSS median (max) | requests | client only s (/ ref) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, v in r["variants"].items():
        c, vs = v["cycle_seconds"], v["vs_reference"]
        co = v.get("client_only")
        lines.append(
            f"| {name} | {v['targets']} | {c['median']:.3f} ({c['min']:.3f}-{c['max']:.3f}) "
            f"| {vs['cycle_median_ratio']:.3f} ({vs['cycle_round_ratios']['min']:.2f}-"
            f"{vs['cycle_round_ratios']['max']:.2f}) | {v['end_to_end_seconds']['median']:.3f} "
            f"| {v['cpu_seconds']['median']:.2f} | {v['peak_rss_bytes']['median'] / MiB:.0f} MiB "
            f"({v['peak_rss_bytes']['max'] / MiB:.0f}) | {', '.join(map(str, v['requests']))} "
            f"| {_client_only(co)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", required=True, help="a running, loaded cluster (see bench/README.md)")
    parser.add_argument("--old-agent-path", metavar="DIR", help="the agent before pools, for the default variants")
    parser.add_argument("--config", default="samples/agent-config.yaml",
                        help="the two-target configuration of the default variants (default samples/agent-config.yaml)")
    parser.add_argument("--variant", action="append", type=parse_variant, metavar="NAME=AGENT_PATH,CONFIG",
                        help="a variant to run (repeatable; replaces the default ones)")
    parser.add_argument("--reference", default="old-1", help="the variant the others are compared with")
    parser.add_argument("--limit", type=float, default=1.1, help="largest median cycle ratio to the reference")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--replay-repeat", type=int, default=5, metavar="N", help="0 skips the replay")
    parser.add_argument("--wait-for-load", type=float, metavar="LOAD")
    parser.add_argument("--wait-timeout", type=float, default=600)
    parser.add_argument("--profile", metavar="DIR", help="profile each variant over the limit into DIR/NAME")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    if args.variant:
        variants = args.variant
    elif args.old_agent_path:
        variants = default_variants(args.old_agent_path, args.config)
    else:
        parser.error("--old-agent-path (for the default variants) or --variant")
    if args.reference not in {v.name for v in variants}:
        parser.error(f"--reference {args.reference} is not one of the variants")
    result = run(args.kubeconfig, variants, reference=args.reference, rounds=args.rounds,
                 replay_repeat=args.replay_repeat, limit=args.limit, wait=args.wait_for_load,
                 wait_timeout=args.wait_timeout, profile_dir=args.profile)
    print(markdown(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
