"""What `once` prints (and `serve` serves at `/plan`): the ranked table with the diff of
`spec.images`, the same in full (`wide`), or one JSON document.

- `table` fits the terminal (120 columns when standard output is not one): references are
  shortened in the middle, keeping the registry and the end of the tag or digest, and long
  decisions are cut. `wide` shortens nothing and adds the entry names and the roles.
- The JSON document has one shape whatever the number of targets: `apiVersion`, `kind`,
  `dry_run`, `cycle` and a `targets` list (the README documents every field).

Pure formatting of a `CycleResult`; nothing here decides anything.
"""

from __future__ import annotations

import difflib
import json
import shutil
import sys
from typing import Any

from agent.cycle import CycleResult, TargetOutcome
from agent.plan import Candidate, Plan
from agent.puller import render_images

API_VERSION = "prepull-agent.io/v1"
KIND = "CycleReport"
MAX_REJECTIONS_SHOWN = 20
DEFAULT_WIDTH = 120
IMAGE_MIN_WIDTH = 40
DECISION_MIN_WIDTH = 30
DIGEST_END = 12  # hex digits of a digest kept at the end of a shortened reference
SEPARATOR = "  "


def render(result: CycleResult, *, output: str, dry_run: bool, width: int | None = None) -> str:
    """`output`: table, wide or json. `width`: the table's (default: the terminal's)."""
    if output == "json":
        return as_json(result, dry_run=dry_run) + "\n"
    if output == "wide":
        return as_table(result, dry_run=dry_run, width=None)
    return as_table(result, dry_run=dry_run, width=width or terminal_width())


def terminal_width() -> int:
    if not sys.stdout.isatty():
        return DEFAULT_WIDTH
    return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns


# ---------------------------------------------------------------------------------------
# JSON


def as_json(result: CycleResult, *, dry_run: bool) -> str:
    """One document: `{"apiVersion", "kind", "dry_run", "cycle", "targets": [...]}`."""
    doc: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "dry_run": dry_run,
        "cycle": {
            "listed": result.listed,
            "missing": result.missing,
            "failed": result.failed,
            "requests": result.requests,
            "duration_seconds": result.duration_seconds,
        },
        "targets": [_target_doc(o) for o in result.outcomes],
    }
    return json.dumps(doc, indent=2, sort_keys=False)


def _target_doc(outcome: TargetOutcome) -> dict[str, Any]:
    plan = outcome.plan
    return {
        "target": {"namespace": outcome.target.namespace, "name": outcome.target.name},
        "generated_at": plan.generated_at.isoformat(),
        "budget_bytes": plan.budget_bytes,
        "budget_used_bytes": plan.budget_used_bytes,
        "candidates": [_candidate_doc(c) for c in plan.candidates],
        "rejected": [
            {
                "reference": r.reference,
                "reason": r.reason,
                "source": {"kind": r.source.kind, "namespace": r.source.namespace, "name": r.source.name},
                "field": r.field,
            }
            for r in plan.rejected
        ],
        "problems": list(plan.problems),
        "warnings": list(plan.warnings),
        "failed_sources": dict(plan.failed_sources),
        "images_before": render_images(plan.entries_before),
        "images_after": render_images(plan.entries_after),
        "owned_after": dict(plan.owned_after),
        "changed": plan.changed,
        "written": outcome.written,
        "error": outcome.error,
    }


def _candidate_doc(c: Candidate) -> dict[str, Any]:
    return {
        "image": c.image,
        "name": c.name,
        "score": c.score,
        "size_bytes": c.size_bytes,
        "size_known": c.size_known,
        "selected": c.selected,
        "managed": c.managed,
        "reason": c.reason,
        "roles": list(c.roles),
        "sources": [{"kind": s.kind, "namespace": s.namespace, "name": s.name} for s in c.sources],
    }


# ---------------------------------------------------------------------------------------
# Table


def as_table(result: CycleResult, *, dry_run: bool, width: int | None = DEFAULT_WIDTH) -> str:
    """`width` None: nothing shortened (`wide`)."""
    parts = [_target_table(o, dry_run=dry_run, width=width) for o in result.outcomes]
    if result.missing:
        parts.append(f"Not served (CRD not installed), skipped: {', '.join(sorted(result.missing))}.")
    return "\n\n".join(parts) + "\n"


def _target_table(outcome: TargetOutcome, *, dry_run: bool, width: int | None) -> str:
    target = f"{outcome.target.namespace}/{outcome.target.name}"
    plan = outcome.plan
    lines = [f"KubernetesImagePuller {target}: {_budget_line(plan)}", ""]
    lines += table_lines(plan.candidates, width=width)
    if plan.rejected:
        shown = plan.rejected if width is None else plan.rejected[:MAX_REJECTIONS_SHOWN]
        lines += ["", f"Rejected references ({len(plan.rejected)}):"]
        lines += [_cut(f"  {r.source} {r.field}: {r.reference!r} {r.reason}", width) for r in shown]
        if len(plan.rejected) > len(shown):
            lines.append(f"  ... and {len(plan.rejected) - len(shown)} more (see --output wide or json)")
    if plan.problems:
        lines += ["", "Not resolved:"] + [_cut(f"  {p}", width) for p in plan.problems]
    for name, reason in sorted(plan.failed_sources.items()):
        lines.append(f"\nWarning: {name} could not be listed ({reason}); images the agent manages are kept.")
    for warning in plan.warnings:
        lines.append(f"\nWarning: {warning}")
    lines += ["", _diff(plan) or "spec.images: no change.", _verdict(outcome, dry_run=dry_run)]
    return "\n".join(lines)


def _budget_line(plan: Plan) -> str:
    if plan.budget_bytes is None:
        return f"{len(plan.selected)} images selected, {_size(plan.budget_used_bytes)} per node (no disk budget)"
    return (
        f"{len(plan.selected)} images selected, {_size(plan.budget_used_bytes)} of a "
        f"{_size(plan.budget_bytes)} per-node budget"
    )


def table_lines(candidates: tuple[Candidate, ...], *, width: int | None) -> list[str]:
    """The ranked table in at most `width` columns, or everything (`width` None: `wide`).

    The fitted table leaves out the entry name (the diff below it shows every `name=image`)
    and the "selected:"/"left out:" prefix (the rank column says it)."""
    wide = width is None
    header = ["#", "NAME", "IMAGE", "SCORE", "SIZE", "USED BY", "ROLES", "DECISION"]
    if not wide:
        header = ["#", "IMAGE", "SCORE", "SIZE", "USED BY", "DECISION"]
    rows = [header]
    rank = 0
    for c in candidates:
        if c.selected:
            rank += 1
        decision = ("selected: " if c.selected else "left out: ") + c.reason if wide else c.reason
        cells = {
            "#": str(rank) if c.selected else "-",
            "NAME": c.name or "-",
            "IMAGE": c.image,
            "SCORE": f"{c.score:g}",
            "SIZE": _size(c.size_bytes) + ("" if c.size_known else "*"),
            "USED BY": str(len(c.sources)),
            "ROLES": ",".join(c.roles) or "-",
            "DECISION": decision,
        }
        rows.append([cells[h] for h in header])
    if width is not None:
        _fit(rows, width)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    out = [SEPARATOR.join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + SEPARATOR + r[-1]
           for r in rows]
    out.append("(* size estimated from the image's role; no node reports it)")
    return out


def _fit(rows: list[list[str]], width: int) -> None:
    """Shorten IMAGE (in the middle) and DECISION (at the end) in place to fit `width`."""
    image_at, decision_at = rows[0].index("IMAGE"), len(rows[0]) - 1
    fixed = sum(max(len(r[i]) for r in rows) for i in range(decision_at) if i != image_at)
    room = width - fixed - len(SEPARATOR) * decision_at
    image = max(len(r[image_at]) for r in rows)
    decision = max(len(r[decision_at]) for r in rows)
    if image + decision <= room:
        return
    image_width = min(image, max(IMAGE_MIN_WIDTH, room - decision))
    if room - image_width < DECISION_MIN_WIDTH:  # a narrow terminal: both give way
        image_width = max(room - DECISION_MIN_WIDTH, DIGEST_END + 8)
    decision_width = max(room - image_width, DECISION_MIN_WIDTH)
    for row in rows[1:]:
        row[image_at] = shorten_reference(row[image_at], image_width)
        row[decision_at] = _cut(row[decision_at], decision_width)


def shorten_reference(reference: str, width: int) -> str:
    """`reference` in at most `width` characters: the start (registry and repository) and
    the end (the last hex digits of a digest, else the end of the tag), `...` between."""
    if len(reference) <= width:
        return reference
    marker = "..."
    if width <= len(marker) + 2:
        return reference[:width]
    keep = width - len(marker)
    end = DIGEST_END if "@" in reference else keep // 2
    end = min(end, keep - 1)
    return reference[: keep - end] + marker + reference[-end:]


def _cut(text: str, width: int | None) -> str:
    if width is None or len(text) <= width:
        return text
    return text[: max(width - 3, 1)] + "..."


def _diff(plan: Plan) -> str:
    before = render_images(plan.entries_before).splitlines(keepends=True)
    after = render_images(plan.entries_after).splitlines(keepends=True)
    if before == after and dict(plan.owned_before) == dict(plan.owned_after):
        return ""
    diff = "".join(difflib.unified_diff(before, after, "spec.images (now)", "spec.images (planned)"))
    return diff or "spec.images: same entries; only the ownership annotation changes."


def _verdict(outcome: TargetOutcome, *, dry_run: bool) -> str:
    plan = outcome.plan
    if outcome.error:
        return f"Not written: {outcome.error}"
    if not plan.changed:
        return "Nothing to write."
    if dry_run:
        return "Dry run: nothing written."
    return "Written." if outcome.written else "Not written."


def _size(n: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
