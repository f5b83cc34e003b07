"""What `once` prints: the ranked table with the diff of `spec.images`, or one JSON document.

Pure formatting of a `CycleResult`; nothing here decides anything.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from agent.cycle import CycleResult, TargetOutcome
from agent.plan import Candidate, Plan
from agent.puller import render_images

MAX_REJECTIONS_SHOWN = 20


def as_json(result: CycleResult, *, dry_run: bool) -> str:
    """One document for one target, or `{"targets": [...]}` for several."""
    docs = [_target_doc(o, result, dry_run=dry_run) for o in result.outcomes]
    doc: dict[str, Any] = docs[0] if len(docs) == 1 else {"targets": docs}
    doc["cycle"] = {
        "listed": result.listed,
        "missing": result.missing,
        "failed": result.failed,
        "requests": result.requests,
        "duration_seconds": result.duration_seconds,
    }
    return json.dumps(doc, indent=2, sort_keys=False)


def _target_doc(outcome: TargetOutcome, result: CycleResult, *, dry_run: bool) -> dict[str, Any]:
    plan = outcome.plan
    return {
        "target": {"namespace": outcome.target.namespace, "name": outcome.target.name},
        "dry_run": dry_run,
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
            for r in result.rejected
        ],
        "problems": list(result.problems),
        "warnings": list(plan.warnings),
        "failed_sources": dict(plan.failed_sources),
        "images_before": plan.current.images,
        "images_after": plan.desired.images,
        "owned_after": dict(plan.desired.owned),
        "changed": plan.changed,
        "written": outcome.written,
        "error": outcome.error,
    }


def _candidate_doc(c: Candidate) -> dict[str, Any]:
    return {
        "image": str(c.image),
        "tier": c.tier.value,
        "namespace": c.namespace,
        "tags": [str(t) for t in c.tags],
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


def as_table(result: CycleResult, *, dry_run: bool) -> str:
    parts = [_target_table(o, dry_run=dry_run) for o in result.outcomes]
    return "\n\n".join(parts + _findings(result)) + "\n"


def _findings(result: CycleResult) -> list[str]:
    """What the cycle refused or could not resolve, once for all targets."""
    lines: list[str] = []
    if result.rejected:
        lines += [f"Rejected references ({len(result.rejected)}):"]
        for r in result.rejected[:MAX_REJECTIONS_SHOWN]:
            lines.append(f"  {r.source} {r.field}: {r.reference!r} {r.reason}")
        if len(result.rejected) > MAX_REJECTIONS_SHOWN:
            lines.append(f"  ... and {len(result.rejected) - MAX_REJECTIONS_SHOWN} more (see --output json)")
    if result.problems:
        lines += ([""] if lines else []) + ["Not resolved:"] + [f"  {p}" for p in result.problems]
    return ["\n".join(lines)] if lines else []


def _target_table(outcome: TargetOutcome, *, dry_run: bool) -> str:
    target = f"{outcome.target.namespace}/{outcome.target.name}"
    plan = outcome.plan
    lines = [f"KubernetesImagePuller {target}: {_budget_line(plan)}", ""]
    lines += _table(plan.candidates)
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


def _table(candidates: tuple[Candidate, ...]) -> list[str]:
    header = ("#", "NAME", "IMAGE", "SCORE", "SIZE", "USED BY", "DECISION")
    rows = [header]
    rank = 0
    for c in candidates:
        if c.selected:
            rank += 1
        rows.append(
            (
                str(rank) if c.selected else "-",
                c.name or "-",
                _shorten(str(c.image), 72),
                f"{c.score:g}",
                _size(c.size_bytes) + ("" if c.size_known else "*"),
                str(len(c.sources)),
                ("selected: " if c.selected else "left out: ") + c.reason,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in rows]
    out.append("(* size estimated from the image's role; no node reports it)")
    return out


def _diff(plan: Plan) -> str:
    """The change `plan.changed` stands for: "" exactly when there is none."""
    if not plan.changed:
        return ""
    before = render_images(plan.current.entries).splitlines(keepends=True)
    after = render_images(plan.desired.entries).splitlines(keepends=True)
    diff = "".join(difflib.unified_diff(before, after, "spec.images (now)", "spec.images (planned)"))
    return diff or "spec.images: same entries; only the agent's annotations change."


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


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 13] + "..." + text[-10:]
