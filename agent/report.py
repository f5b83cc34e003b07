"""What `once` prints (and `serve` serves at `/plan`): the ranked table with the diff of
`spec.images`, the same in full (`wide`), or one JSON document.

- `table` fits the terminal (120 columns when standard output is not one): references are
  shortened in the middle, keeping the registry and the end of the tag or digest, and long
  decisions are cut. `wide` shortens nothing and adds the entry names and the roles. When
  the kubelet's events are read, both add each image's median cold pull and the pull time
  it saved per day, and a start-up line per target (`agent.startup`).
- The JSON document has one shape whatever the number of targets: `apiVersion`, `kind`,
  `dry_run`, `cycle`, `coverage` and a `targets` list (the README documents every field).

Pure formatting of a `CycleResult`; nothing here decides anything.
"""

from __future__ import annotations

import difflib
import json
import shutil
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import yaml

from agent.model import NotPrepullable, ObjectRef, Rejection
from agent.outcome import CycleResult, TargetOutcome
from agent.plan import Candidate, Deferred, Plan
from agent.pools import Gap, Pool
from agent.puller import DEFAULT_DAEMONSET_NAME, DEFAULT_DEPLOYMENT_NAME, entry_changes, render_images
from agent.quantity import format_bytes, format_duration
from agent.startup import EventCounts, ImagePulls, TargetStartup
from agent.status import ImagePresence, PullerStatus, Sync

API_VERSION = "prepull-agent.io/v1"
KIND = "CycleReport"
MAX_REJECTIONS_SHOWN = 20
MAX_SOURCES_SHOWN = 100  # per candidate in the JSON: an image 10,000 Notebooks use is 100 of them and a count
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
    """One document: `{"apiVersion", "kind", "dry_run", "cycle", "coverage", "targets": [...]}`."""
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
            "pulled_events": _events_doc(result.pulled),
        },
        "coverage": {
            "uncovered": _gap_docs(result),
            "nowhere": {str(i): why for i, why in (result.placing.nowhere if result.placing else {}).items()},
        },
        "targets": [_target_doc(o, result) for o in result.outcomes],
    }
    return json.dumps(doc, indent=2, sort_keys=False)


def _target_doc(outcome: TargetOutcome, result: CycleResult) -> dict[str, Any]:
    plan = outcome.plan
    target = {"namespace": outcome.target.namespace, "name": outcome.target.name}
    if plan is None:  # the CR could not be read: the same keys, nothing planned
        return {"target": target, "pool": None, "generated_at": None, "budget_bytes": None, "budget_used_bytes": 0,
                "candidates": [], "rejected": [], "problems": [], "not_prepullable": [], "warnings": [],
                "failed_sources": {},
                "images_before": None, "images_after": None, "owned_after": {}, "changed": False, "written": False,
                "deferred": None, "puller": None, "images_present": [], "error": outcome.error, "startup": None}
    return {
        "target": target,
        "pool": _pool_doc(outcome.pool),
        "generated_at": plan.generated_at.isoformat(),
        "budget_bytes": plan.budget_bytes,
        "budget_used_bytes": plan.budget_used_bytes,
        "candidates": [_candidate_doc(c, _pulls(outcome.startup, c)) for c in plan.candidates],
        "rejected": [_finding_doc(r) for r in result.rejected],
        "problems": list(result.problems),
        "not_prepullable": [_finding_doc(n) for n in result.not_prepullable],
        "warnings": list(plan.warnings),
        "failed_sources": dict(plan.failed_sources),
        "images_before": plan.current.images,
        "images_after": plan.desired.images,
        "owned_after": dict(plan.desired.owned),
        "changed": plan.changed,
        "written": outcome.written,
        "deferred": _deferred_doc(plan),
        "puller": _puller_doc(outcome.status),
        "images_present": [_presence_doc(p) for p in outcome.presence],
        "error": outcome.error,
        "startup": _startup_doc(outcome.startup),
    }


def _finding_doc(found: Rejection | NotPrepullable) -> dict[str, Any]:
    """A rejected or not pre-pullable reference: what, why, and which object and field said it."""
    return {
        "reference": found.reference,
        "reason": found.reason,
        "source": _ref_doc(found.source),
        "field": found.field,
    }


def _ref_doc(ref: ObjectRef) -> dict[str, str]:
    return {"kind": ref.kind, "namespace": ref.namespace, "name": ref.name}


def _pulls(startup: TargetStartup | None, c: Candidate) -> ImagePulls | None:
    if startup is None:
        return None
    return startup.images.get(c.image, ImagePulls())


def _startup_doc(startup: TargetStartup | None) -> dict[str, Any] | None:
    if startup is None:
        return None
    return {
        "window_seconds": round(startup.window_seconds, 3),
        "starts": startup.starts,
        "warm": startup.warm,
        "warm_share": round(startup.warm_share, 4) if startup.warm_share is not None else None,
        "seconds_saved": round(startup.seconds_saved, 3),
        "seconds_saved_measured": round(startup.saved_measured, 3),
        "seconds_saved_estimated": round(startup.saved_estimated, 3),
        "pull_rate_bytes_per_second": round(startup.rate),
        "pull_rate_basis": "observed" if startup.rate_observed else "assumed",
    }


def _pulls_doc(pulls: ImagePulls) -> dict[str, Any]:
    return {
        "cold": pulls.cold,
        "warm": pulls.warm,
        "median_pull_seconds": _rounded(pulls.median_seconds),
        "p90_pull_seconds": _rounded(pulls.high_seconds),
        "seconds_saved": round(pulls.seconds_saved, 3),
        "saved_basis": ("estimated" if pulls.estimated else "measured") if pulls.seconds_saved else None,
    }


def _events_doc(counts: EventCounts | None) -> dict[str, Any] | None:
    if counts is None:
        return None
    return {
        "listed": counts.listed,
        "trusted": counts.trusted,
        "counted": counts.counted,
        "complete": counts.complete,
        "error": counts.error,
        "ignored": dict(counts.ignored),
        "untrusted": dict(counts.untrusted),
    }


def _rounded(seconds: float | None) -> float | None:
    return round(seconds, 3) if seconds is not None else None
def _deferred_doc(plan: Plan) -> dict[str, Any] | None:
    deferred = plan.deferred
    if deferred is None:
        return None
    added, removed = entry_changes(plan.desired, deferred.state)
    return {
        "until": deferred.until.isoformat(),
        "last_written": deferred.last_written.isoformat(),
        "added": added,
        "removed": removed,
        "images_after": deferred.state.images,
    }


def _puller_doc(status: PullerStatus | None) -> dict[str, Any] | None:
    if status is None:
        return None
    deployment, daemonset = status.deployment, status.daemonset
    return {
        "sync": status.sync.value,
        "since": status.since.isoformat() if status.since else None,
        "first_seen": status.first_seen.isoformat(),
        "deployment": {
            "name": status.deployment_name,
            "found": deployment is not None,
            "replicas": deployment.replicas if deployment else None,
            "ready": deployment.ready if deployment else None,
            "error": status.deployment_error,
        },
        "daemonset": {
            "name": status.daemonset_name,
            "found": daemonset is not None,
            "created": daemonset.created.isoformat() if daemonset and daemonset.created else None,
            "entries": len(daemonset.containers) if daemonset else None,
            "nodes": {"desired": daemonset.desired, "scheduled": daemonset.scheduled, "ready": daemonset.ready}
            if daemonset else None,
        },
        "not_in_daemonset": list(status.not_in_daemonset),
        "not_in_list": list(status.not_in_list),
        "has_conditions": status.has_conditions,
        "degraded": status.degraded,
        "stalled": status.stalled,
        "hint": status.hint,
        "error": status.error,
    }


def _presence_doc(found: ImagePresence) -> dict[str, Any]:
    return {"name": found.name, "image": found.image, "nodes": found.nodes, "present": found.present,
            "missing": found.missing, "unknown": found.unknown}


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


def _candidate_doc(c: Candidate, pulls: ImagePulls | None = None) -> dict[str, Any]:
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
        "sources": [_ref_doc(s) for s in c.sources[:MAX_SOURCES_SHOWN]],
        "sources_total": len(c.sources),
        "pulls": _pulls_doc(pulls) if pulls is not None else None,
    }


# ---------------------------------------------------------------------------------------
# Table


def as_table(result: CycleResult, *, dry_run: bool, width: int | None = DEFAULT_WIDTH) -> str:
    """`width` None: nothing shortened (`wide`)."""
    parts = [_target_table(o, dry_run=dry_run, width=width) for o in result.outcomes]
    if result.missing:
        parts.append(f"Not served (CRD not installed), skipped: {', '.join(sorted(result.missing))}.")
    return "\n\n".join(parts + _findings(result, width=width)) + "\n"


def _findings(result: CycleResult, *, width: int | None) -> list[str]:
    """What the cycle refused or could not resolve, once for all targets."""
    lines: list[str] = []
    wide_or_json = "see --output json" if width is None else "see --output wide or json"
    sections: tuple[tuple[str, Sequence[Any], int, str, Callable[[Any], str]], ...] = (
        ("Rejected references", result.rejected, result.rejected_total, wide_or_json,
         lambda r: f"  {r.source} {r.field}: {r.reference!r} {r.reason}"),
        ("Not resolved", result.problems, result.problems_total, wide_or_json, lambda p: f"  {p}"),
        ("Not pre-pullable", result.not_prepullable, result.not_prepullable_total, "see --output json",
         lambda n: f"  {n.source} {n.field}: {n.reference!r} {n.reason}"),
    )
    for title, kept, total, more, line in sections:
        if kept:
            shown = kept if width is None else kept[:MAX_REJECTIONS_SHOWN]
            lines += ([""] if lines else []) + [f"{title} ({total}):"]
            lines += [_cut(line(item), width) for item in shown]
            if total > len(shown):
                lines.append(f"  ... and {total - len(shown)} more ({more})")
    for gap in result.placing.gaps if result.placing else ():
        lines += ([""] if lines else []) + _gap_lines(gap)
    return ["\n".join(lines)] if lines else []


def puller_role_rules(name: str) -> list[dict[str, Any]]:
    """What the agent needs in a puller's namespace (manifests/base/rbac-puller.yaml): get and
    patch its CR, get the puller's Deployment and DaemonSet (by the operator's default
    names), create and patch Events."""
    return [
        {"apiGroups": ["che.eclipse.org"], "resources": ["kubernetesimagepullers"], "resourceNames": [name],
         "verbs": ["get", "patch"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": [DEFAULT_DEPLOYMENT_NAME],
         "verbs": ["get"]},
        {"apiGroups": ["apps"], "resources": ["daemonsets"], "resourceNames": [DEFAULT_DAEMONSET_NAME],
         "verbs": ["get"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    ]


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
         "rules": puller_role_rules(name)},
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


def _target_table(outcome: TargetOutcome, *, dry_run: bool, width: int | None) -> str:
    target = f"{outcome.target.namespace}/{outcome.target.name}"
    plan = outcome.plan
    if plan is None:
        return f"KubernetesImagePuller {target}: {outcome.error}"
    lines = [f"KubernetesImagePuller {target}: {_budget_line(plan)}"]
    if outcome.pool is not None:
        lines.append(_pool_line(outcome.pool))
    if outcome.startup is not None:
        lines.append(startup_line(outcome.startup))
    if outcome.status is not None:
        lines += [_cut(line, width) for line in _puller_lines(outcome.status, outcome.presence, width=width)]
    lines.append("")
    lines += table_lines(plan.candidates, width=width, startup=outcome.startup)
    for name, reason in sorted(plan.failed_sources.items()):
        lines.append(f"\nWarning: {name} could not be listed ({reason}); images the agent manages are kept.")
    for warning in plan.warnings:
        lines.append(f"\nWarning: {warning}")
    status = outcome.status
    if status is not None and status.stalled:
        lines.append(f"\nWarning: {status.stalled}.\n  What to do: {status.hint}.")
    if status is not None and status.degraded:
        lines.append(f"\nWarning: the KubernetesImagePuller is Degraded: {status.degraded}")
    lines += ["", _diff(plan) or "spec.images: no change."]
    if plan.deferred is not None:
        lines.append(_deferred_line(plan, plan.deferred))
    lines.append(_verdict(outcome, dry_run=dry_run))
    return "\n".join(lines)


def _puller_lines(status: PullerStatus, presence: tuple[ImagePresence, ...], *, width: int | None) -> list[str]:
    """The puller's Deployment and DaemonSet, and the listed images on the pool's nodes."""
    deployment = status.deployment
    if deployment is not None:
        running = f"{deployment.ready}/{deployment.replicas} ready"
    else:
        running = f"unknown ({status.deployment_error})" if status.deployment_error else "missing"
    lines = [
        f"  puller Deployment {status.deployment_name}: {running}",
        f"  puller DaemonSet {status.daemonset_name}: {_sync_text(status)}",
    ]
    if presence:
        lines.append(_fitted("  images on the nodes: ", [str(p) for p in presence], width))
    return lines


def _fitted(prefix: str, items: list[str], width: int | None) -> str:
    """`prefix` and the items, as many as fit `width` with a count of the rest."""
    kept: list[str] = []
    for i, item in enumerate(items):
        rest = len(items) - i - 1
        tail = f", ... {rest} more (--output wide)" if rest else ""
        if width is not None and len(prefix + ", ".join([*kept, item]) + tail) > width:
            break
        kept.append(item)
    if len(kept) == len(items):
        return prefix + ", ".join(kept)
    return prefix + ", ".join([*kept, f"... {len(items) - len(kept)} more (--output wide)"])


def _sync_text(status: PullerStatus) -> str:
    daemonset = status.daemonset
    since = f"since {_when(status.since)}" if status.since else "since unknown"
    if status.sync is Sync.UNKNOWN:
        return f"unknown ({status.error})"
    if status.sync is Sync.MISSING or daemonset is None:
        return f"missing, {since}"
    state = "in sync" if status.sync is Sync.IN_SYNC else "out of sync"
    return (f"{state} {since}, {daemonset.ready}/{daemonset.desired} nodes ready "
            f"({daemonset.scheduled} scheduled)")


def _deferred_line(plan: Plan, deferred: Deferred) -> str:
    added, removed = entry_changes(plan.desired, deferred.state)
    what = "; ".join(f"{verb} {', '.join(names)}" for verb, names in (("add", added), ("remove", removed)) if names)
    return (f"Deferred until {_when(deferred.until)} (last written {_when(deferred.last_written)}, less than "
            f"puller.min_write_interval_seconds ago): {what or 'update the agent annotations'}.")


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _pool_line(pool: Pool) -> str:
    disk = _size(pool.smallest_disk) if pool.smallest_disk else "unknown"
    accelerators = ", ".join(pool.accelerators) or "none"
    return f"  pool {pool.name}: {len(pool.nodes)} nodes, smallest disk {disk}, accelerators: {accelerators}"


def startup_line(startup: TargetStartup) -> str:
    """Over the window: container starts, warm starts and their share, the pull time avoided
    (measured and estimated apart, with the rate the estimate used)."""
    if not startup.starts:
        return "  start-up: no container start seen on this pool's nodes yet"
    share = startup.warm_share or 0.0
    line = (f"  start-up over {format_duration(startup.window_seconds)}: {startup.starts:,} container starts, "
            f"{startup.warm:,} warm ({share:.0%}), ")
    if not startup.seconds_saved:
        return line + "no pull avoided yet by the agent's images"
    basis = "observed" if startup.rate_observed else "assumed"
    return line + (
        f"{format_duration(startup.seconds_saved)} of pulls avoided ({format_duration(startup.saved_measured)} "
        f"measured, {format_duration(startup.saved_estimated)} estimated from size at "
        f"{_size(round(startup.rate))}/s {basis})"
    )


def _budget_line(plan: Plan) -> str:
    if plan.budget_bytes is None:
        return f"{len(plan.selected)} images selected, {_size(plan.budget_used_bytes)} per node (no disk budget)"
    return (
        f"{len(plan.selected)} images selected, {_size(plan.budget_used_bytes)} of a "
        f"{_size(plan.budget_bytes)} per-node budget"
    )


def table_lines(
    candidates: tuple[Candidate, ...], *, width: int | None, startup: TargetStartup | None = None
) -> list[str]:
    """The ranked table in at most `width` columns, or everything (`width` None: `wide`).

    The fitted table leaves out the entry name (the diff below it shows every `name=image`)
    and the "selected:"/"left out:" prefix (the rank column says it). With `startup`, two
    columns more: PULL (the median cold pull) and SAVED/DAY (pull time avoided per day)."""
    wide = width is None
    header = ["#", "NAME", "IMAGE", "SCORE", "SIZE", "USED BY", "ROLES", "DECISION"]
    if not wide:
        header = ["#", "IMAGE", "SCORE", "SIZE", "USED BY", "DECISION"]
    if startup is not None:
        header[-1:-1] = ["PULL", "SAVED/DAY"]
    rows = [header]
    rank = 0
    for c in candidates:
        if c.selected:
            rank += 1
        decision = ("selected: " if c.selected else "left out: ") + c.reason if wide else c.reason
        cells = {
            "#": str(rank) if c.selected else "-",
            "NAME": c.name or "-",
            "IMAGE": str(c.image),
            "SCORE": f"{c.score:g}",
            "SIZE": _size(c.size_bytes) + ("" if c.size_known else "*"),
            "USED BY": str(len(c.sources)),
            "ROLES": ",".join(c.roles) or "-",
            "DECISION": decision,
            **(_pull_cells(startup, c) if startup is not None else {}),
        }
        rows.append([cells[h] for h in header])
    if width is not None:
        _fit(rows, width)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    out = [SEPARATOR.join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + SEPARATOR + r[-1]
           for r in rows]
    out.append("(* size estimated from the image's role; no node reports it)")
    if startup is not None:
        out.append("(PULL: the median cold pull the kubelet reported; SAVED/DAY: pull time avoided per day by warm "
                   "starts)")
        out.append("(~ estimated from the image's size and the pull rate)")
    return out


def _pull_cells(startup: TargetStartup, c: Candidate) -> dict[str, str]:
    pulls = startup.images.get(c.image, ImagePulls())
    per_day = startup.saved_per_day(pulls)
    return {
        "PULL": format_duration(pulls.median_seconds) if pulls.median_seconds is not None else "-",
        "SAVED/DAY": (format_duration(per_day) + ("~" if pulls.estimated else "")) if per_day > 0 else "-",
    }


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


_size = format_bytes  # the one byte formatter (agent.quantity)
