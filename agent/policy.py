"""Policy: the administrator's rules on which references may be listed at all.

Pure. `references.allowed_registries` and `references.deny` are decided once, after the
sources and `agent.resolve` and before planning, so every rejection of a cycle is in one
list (`Inventory.rejections`), whether a reference did not parse or is refused by policy:
the log, the metric and the report all count that list.

What this is not: `selection.exclude` is not policy. An excluded image is a candidate the
planner leaves out with that reason; a denied reference is rejected like a malformed one.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import replace

from agent.model import Rejection
from agent.refs import ImageRef
from agent.resolve import Inventory
from agent.settings import References
from agent.sources.common import MAX_REJECTIONS_KEPT, clip

__all__ = ["apply_policy", "first_match", "policy_problem"]


def apply_policy(inventory: Inventory, references: References) -> Inventory:
    """`inventory` with every usage the policy refuses moved to its rejections (the first
    `MAX_REJECTIONS_KEPT` kept, every one counted)."""
    if not references.allowed_registries and not references.deny:
        return inventory
    kept = []
    rejected = list(inventory.rejections)
    total = inventory.rejections_total
    for usage in inventory.usages:
        reason = policy_problem(usage.image, references)
        if not reason:
            kept.append(usage)
            continue
        total += 1
        if len(rejected) < MAX_REJECTIONS_KEPT:
            rejected.append(Rejection(str(usage.image), clip(reason), usage.source, usage.field))
    return replace(inventory, usages=tuple(kept), rejections=tuple(rejected), rejections_total=total)


def policy_problem(ref: ImageRef, references: References) -> str:
    """Why the policy refuses `ref`, or "" when it may be listed."""
    allowed = references.allowed_registries
    if allowed and ref.registry not in allowed:
        return f"registry {ref.registry!r} is not in references.allowed_registries"
    if pattern := first_match(str(ref), references.deny):
        return f"matches references.deny pattern {pattern!r}"
    return ""


def first_match(text: str, patterns: Sequence[str]) -> str:
    """The first glob pattern that matches `text` (case-sensitively), or ""."""
    for pattern in patterns:
        if fnmatch.fnmatchcase(text, pattern):
            return pattern
    return ""
