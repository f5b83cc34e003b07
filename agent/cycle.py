"""One cycle: observe -> resolve -> plan -> apply, for every target, and its counters.

Data flows one way. The cluster is listed once per cycle whatever the number of targets.
Then every target is read, and only then is each planned and written on its own: a target
that cannot be read ends the cycle before anything is written. A write that meets a 409
(the CR changed since it was read) re-reads the CR and re-plans once from the same
observation; a second conflict gives up for this cycle. Any failure after the first read
is that target's error, and the other targets go on. `dry_run` stops before the write.

`may_write` is asked right before every write (and before creating a missing CR): in
`serve` it says whether this replica still holds the lease, and a no leaves the CR as it is.

The returned `CycleResult` counts only what really happened; it is what `once` prints,
what `serve` exports as metrics, and what tests assert on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import structlog

from agent.apply import ApplyError, TargetMissing, read_target, write_plan
from agent.kube.client import Kube
from agent.kube.errors import Conflict, KubeError
from agent.observe import observe
from agent.plan import Plan, make_plan
from agent.puller import PullerCR
from agent.resolve import Inventory, resolve
from agent.settings import Settings, Target
from agent.sources import Observation

log = structlog.get_logger("prepull_agent.cycle")

MAX_REJECTIONS_LOGGED = 20  # one tenant with thousands of bad references must not flood the logs
NOT_THE_LEADER = "not the leader any more; nothing written"


@dataclass(frozen=True)
class TargetOutcome:
    target: Target
    plan: Plan
    written: bool = False
    error: str = ""  # why this target was not brought up to date


@dataclass(frozen=True)
class CycleResult:
    outcomes: tuple[TargetOutcome, ...]
    listed: dict[str, int] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    duration_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(not o.error for o in self.outcomes)

    @property
    def written(self) -> int:
        return sum(o.written for o in self.outcomes)


def _always() -> bool:
    return True


def run_cycle(
    kube: Kube,
    settings: Settings,
    *,
    dry_run: bool,
    may_write: Callable[[], bool] = _always,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    clock: Callable[[], float] = time.monotonic,
) -> CycleResult:
    """Run one cycle.

    Raises only before anything is written: `Unauthorized` while listing (the credentials
    were refused), or while the targets are first read: `KubeError` (API server
    unreachable, credentials refused, access denied...), `TargetMissing` or
    `InvalidPullerCR` (`once` maps them to its exit codes). Listing failures are recorded
    in the result; every failure after the first read (a write refused, two conflicts, a
    re-read that fails, `may_write` saying no) is that target's `TargetOutcome.error`.
    """
    started = clock()
    requests_before = kube.requests
    observation = observe(kube, settings)
    inventory = resolve(observation)
    # All targets are read before any is written, so an exception here never loses the
    # outcome of a target already written.
    pullers = [_read(kube, target, may_write, dry_run=dry_run) for target in settings.targets]
    outcomes = tuple(
        _one_target(
            kube, settings, target, puller, observation, inventory, dry_run=dry_run, may_write=may_write, now=now()
        )
        for target, puller in zip(settings.targets, pullers, strict=True)
    )
    result = CycleResult(
        outcomes=outcomes,
        listed=dict(observation.listed),
        missing=dict(observation.missing),
        failed=dict(observation.failed),
        requests=kube.requests - requests_before,
        duration_seconds=round(clock() - started, 3),
    )
    _log_summary(result, inventory, dry_run=dry_run)
    return result


def _read(kube: Kube, target: Target, may_write: Callable[[], bool], *, dry_run: bool) -> PullerCR:
    """Read the target's CR; creating a missing one (`create`) is a write: only if allowed
    (a dry run plans against an empty one instead)."""
    if target.create and not dry_run and not may_write():
        target = replace(target, create=False)
    return read_target(kube, target, dry_run=dry_run)


def _one_target(
    kube: Kube,
    settings: Settings,
    target: Target,
    puller: PullerCR,
    observation: Observation,
    inventory: Inventory,
    *,
    dry_run: bool,
    may_write: Callable[[], bool],
    now: datetime,
) -> TargetOutcome:
    plan = _plan(puller, settings, observation, inventory, now)
    if dry_run and plan.changed:
        log.info("dry run: would write the puller", target=str(target), **_changes(plan))
    if dry_run or not plan.changed:
        return TargetOutcome(target, plan)
    for attempt in (1, 2):
        if not may_write():
            log.warning("not writing the puller: this replica does not hold the lease", target=str(target))
            return TargetOutcome(target, plan, error=NOT_THE_LEADER)
        try:
            write_plan(kube, plan, resource_version=puller.resource_version)
        except Conflict:
            if attempt == 2:
                break
            log.info("puller changed while planning, re-reading it", target=str(target))
            try:
                puller = _read(kube, target, may_write, dry_run=False)
                plan = _plan(puller, settings, observation, inventory, now)
            except (KubeError, TargetMissing, ValueError) as e:  # ValueError: InvalidPullerCR, or the planner
                log.error("re-reading the puller after a conflict failed", target=str(target), reason=str(e))
                return TargetOutcome(target, plan, error=f"re-reading and re-planning it after a conflict failed: {e}")
            if not plan.changed:
                return TargetOutcome(target, plan)
        except (KubeError, ApplyError) as e:
            log.error("writing the puller failed", target=str(target), reason=str(e))
            return TargetOutcome(target, plan, error=f"write failed: {e}")
        else:
            log.info(
                "puller updated", target=str(target), entries=len(plan.entries_after), attempt=attempt, **_changes(plan)
            )
            return TargetOutcome(target, plan, written=True)
    reason = "the CR kept changing while the agent wrote it (409 twice); trying again next cycle"
    log.warning("writing the puller gave up for this cycle", target=str(target), reason=reason)
    return TargetOutcome(target, plan, error=reason)


def _changes(plan: Plan) -> dict[str, list[str]]:
    """The entries a write adds and removes, as `name=image`; one whose image changed is both."""
    before = {e.text for e in plan.entries_before}
    after = {e.text for e in plan.entries_after}
    return {"added": sorted(after - before), "removed": sorted(before - after)}


def _plan(puller: PullerCR, settings: Settings, observation: Observation, inventory: Inventory, now: datetime) -> Plan:
    return make_plan(
        usages=inventory.usages,
        rejections=inventory.rejections,
        problems=inventory.problems,
        puller=puller,
        nodes=observation.nodes.nodes,
        sizes=observation.nodes.sizes,
        failed_sources=observation.failed,
        missing_sources=observation.missing,
        applications_namespace=observation.applications_namespace,
        settings=settings,
        now=now,
    )


def _log_summary(result: CycleResult, inventory: Inventory, *, dry_run: bool) -> None:
    plans = [o.plan for o in result.outcomes]
    for problem in inventory.problems:
        log.warning("not resolved", problem=problem)
    for rejection in inventory.rejections[:MAX_REJECTIONS_LOGGED]:
        log.warning(
            "reference rejected",
            source=str(rejection.source),
            field=rejection.field,
            reference=rejection.reference,
            reason=rejection.reason,
        )
    if len(inventory.rejections) > MAX_REJECTIONS_LOGGED:
        log.warning(
            "more references rejected",
            count=len(inventory.rejections) - MAX_REJECTIONS_LOGGED,
            hint="once --dry-run --output json lists them all",
        )
    log.info(
        "cycle finished",
        dry_run=dry_run,
        listed=result.listed,
        missing=sorted(result.missing),
        failed=sorted(result.failed),
        candidates=sum(len(p.candidates) for p in plans),
        rejected=len(inventory.rejections),
        selected=sum(len(p.selected) for p in plans),
        changed=sum(p.changed for p in plans),
        written=result.written,
        requests=result.requests,
        duration_seconds=result.duration_seconds,
    )
