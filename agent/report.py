"""What `once` prints: the ranked table with the diff of `spec.images`, or one JSON document.

Pure formatting of a `CycleResult`; nothing here decides anything.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

import yaml

from agent.cycle import CycleResult, TargetOutcome
from agent.plan import Candidate, Plan
from agent.pools import Gap, Pool
from agent.puller import render_images

MAX_REJECTIONS_SHOWN = 20


def as_json(result: CycleResult, *, dry_run: bool) -> str:
    """One document for one target, or `{"targets": [...]}` for several."""
    docs = [_target_doc(o, result, dry_run=dry_run) for o in result.outcomes]
    doc: dict[str, Any] = docs[0] if len(docs) == 1 else {"targets": docs}
    doc["coverage"] = {
        "uncovered": _gap_docs(result),
        "nowhere": {str(i): why for i, why in (result.placing.nowhere if result.placing else {}).items()},
    }
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
    target = {"namespace": outcome.target.namespace, "name": outcome.target.name}
    if plan is None:
        return {"target": target, "dry_run": dry_run, "changed": False, "written": False, "error": outcome.error}
    return {
        "target": target,
        "dry_run": dry_run,
        "pool": _pool_doc(outcome.pool),
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


def _pool_doc(pool: Pool | None) -> dict[str, Any] | None:
    if pool is None:
        return None
    return {
        "name": pool.name,
        "nodes": len(pool.nodes),
        "smallest_disk_bytes": pool.smallest_disk,
        "accelerators": list(pool.accelerators),
    }


def _gap_docs(result: CycleResult) -> list[dict[str, Any]]:
    gaps = result.placing.gaps if result.placing else ()
    return [
        {
            "group": gap.group.name,
            "nodes": list(gap.group.nodes),
            "images": [str(i) for i in gap.images],
            "suggested_puller": dict(gap.suggestion),
        }
        for gap in gaps
    ]


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
        lines += [f"Rejected references ({result.rejected_total}):"]
        for r in result.rejected[:MAX_REJECTIONS_SHOWN]:
            lines.append(f"  {r.source} {r.field}: {r.reference!r} {r.reason}")
        if result.rejected_total > MAX_REJECTIONS_SHOWN:
            lines.append(f"  ... and {result.rejected_total - MAX_REJECTIONS_SHOWN} more (see --output json)")
    if result.problems:
        lines += ([""] if lines else []) + [f"Not resolved ({result.problems_total}):"]
        lines += [f"  {p}" for p in result.problems[:MAX_REJECTIONS_SHOWN]]
        if result.problems_total > MAX_REJECTIONS_SHOWN:
            lines.append(f"  ... and {result.problems_total - MAX_REJECTIONS_SHOWN} more (see --output json)")
    for gap in result.placing.gaps if result.placing else ():
        lines += ([""] if lines else []) + _gap_lines(gap)
    return ["\n".join(lines)] if lines else []


def _gap_lines(gap: Gap) -> list[str]:
    """Nodes no puller covers, and what would cover them: the CR, its target, its RBAC."""
    group = gap.group
    meta = gap.suggestion["metadata"]
    assert isinstance(meta, dict)
    namespace, name = meta["namespace"], meta["name"]
    more = f" and {len(gap.images) - 5} more" if len(gap.images) > 5 else ""
    shown = ", ".join(str(i) for i in gap.images[:5]) + more
    rbac = [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "prepull-agent-puller", "namespace": namespace},
         "rules": [{"apiGroups": ["che.eclipse.org"], "resources": ["kubernetesimagepullers"],
                    "resourceNames": [name], "verbs": ["get", "patch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "prepull-agent-puller", "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "prepull-agent-puller"},
         "subjects": [{"kind": "ServiceAccount", "name": "prepull-agent", "namespace": "prepull-agent"}]},
    ]
    return [
        f"Nodes no puller covers: group {group.name} ({len(group.nodes)} nodes: {', '.join(group.nodes[:3])}"
        + (", ..." if len(group.nodes) > 3 else "") + f") runs workloads whose images are not pre-pulled: {shown}.",
        f"To cover it, create the namespace {namespace}, apply this KubernetesImagePuller and its RBAC,",
        "and add it to the configuration's targets:",
        "",
        yaml.safe_dump_all([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
                            dict(gap.suggestion), *rbac], sort_keys=False).rstrip(),
        "",
        "# config.yaml",
        yaml.safe_dump({"targets": [{"namespace": namespace, "name": name}]}, sort_keys=False).rstrip(),
        "" if group.exact else "(no label sets these nodes apart exactly: check the nodeSelector before applying)",
    ]


def _target_table(outcome: TargetOutcome, *, dry_run: bool) -> str:
    target = f"{outcome.target.namespace}/{outcome.target.name}"
    plan = outcome.plan
    if plan is None:
        return f"KubernetesImagePuller {target}: {outcome.error}"
    lines = [f"KubernetesImagePuller {target}: {_budget_line(plan)}"]
    if outcome.pool is not None:
        lines.append(_pool_line(outcome.pool))
    lines.append("")
    lines += _table(plan.candidates)
    for name, reason in sorted(plan.failed_sources.items()):
        lines.append(f"\nWarning: {name} could not be listed ({reason}); images the agent manages are kept.")
    for warning in plan.warnings:
        lines.append(f"\nWarning: {warning}")
    lines += ["", _diff(plan) or "spec.images: no change.", _verdict(outcome, dry_run=dry_run)]
    return "\n".join(lines)


def _pool_line(pool: Pool) -> str:
    disk = _size(pool.smallest_disk) if pool.smallest_disk else "unknown"
    accelerators = ", ".join(pool.accelerators) or "none"
    return f"  pool {pool.name}: {len(pool.nodes)} nodes, smallest disk {disk}, accelerators: {accelerators}"


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
    if outcome.error or plan is None:
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
