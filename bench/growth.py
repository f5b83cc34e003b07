"""Time and memory against estate size, from several `python -m bench --json` results.

    python -m bench.growth small.json medium.json large.json [--markdown]

Prints one row per result and, between consecutive rows, how time and memory grew
relative to the objects listed (1.0 = linear). Memory is shown above the agent's
import baseline (what `import agent.cli, agent.cycle, agent.report` alone costs), which
is what the estate adds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

MiB = 1024 * 1024


def import_baseline_rss(agent_path: str | None = None) -> int:
    """Peak RSS of a Python that only imports what `prepull-agent once` imports."""
    from bench.run import run_child

    return int(run_child([sys.executable, "-c", "import agent.cli, agent.cycle, agent.report"],
                         agent_path=agent_path)["peak_rss_bytes"])


def rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in sorted(results, key=lambda r: r["objects_listed_total"]):
        out.append({
            "preset": r["preset"],
            "objects": r["objects_listed_total"],
            "mb_listed": round(r["bytes_listed"] / 1e6, 1),
            "pages": r["pages"],
            "floor_s": r["floor_seconds"],
            "cycle_s": r["agent_cycle_seconds"],
            "end_to_end_s": r["agent_seconds"],
            "ratio": r["ratio"],
            "peak_rss_mib": round(r["agent_peak_rss_bytes"] / MiB),
            "requests": f"{r['requests']}={r['pages']}+{r['fixed_gets']}" if r["requests_ok"] else
                        f"{r['requests']}!={r['requests_expected']}",
            "naive_s": r["naive_seconds"],
            "naive_rss_mib": None if r["naive_peak_rss_bytes"] is None else round(r["naive_peak_rss_bytes"] / MiB),
            "load_s": None if r["load"] is None else r["load"]["seconds"],
            "loadavg": r["loadavg_measure"][0],
        })
    return out


def render(table: list[dict[str, Any]], *, markdown: bool) -> str:
    headers = list(table[0])
    cells = [[("-" if row[h] is None else str(row[h])) for h in headers] for row in table]
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(c) + " |" for c in cells]
        return "\n".join(lines)
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(line, widths, strict=True)) for line in [headers, *cells])


def growth(table: list[dict[str, Any]], baseline: int) -> list[str]:
    lines = [f"import baseline RSS: {baseline / MiB:.0f} MiB"]
    for a, b in zip(table, table[1:], strict=False):
        k = b["objects"] / a["objects"]
        lines.append(
            f"{a['preset']} -> {b['preset']}: objects x{k:.1f}, floor x{b['floor_s'] / a['floor_s']:.1f}, "
            f"cycle x{b['cycle_s'] / a['cycle_s']:.1f}, RSS above baseline "
            f"x{max(b['peak_rss_mib'] * MiB - baseline, 1) / max(a['peak_rss_mib'] * MiB - baseline, 1):.1f}")
    return lines


def results_agent_path(paths: list[str]) -> str | None:
    return json.loads(Path(paths[-1]).read_text()).get("agent_path")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.growth")
    parser.add_argument("results", nargs="+", metavar="RESULT.json")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    table = rows([json.loads(Path(p).read_text()) for p in args.results])
    print(render(table, markdown=args.markdown))
    print()
    print("\n".join(growth(table, import_baseline_rss(results_agent_path(args.results)))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
