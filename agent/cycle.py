"""One cycle: observe -> resolve -> plan -> apply, for every target, and its counters.

Data flows one way. The cluster is listed once per cycle whatever the number of targets.
Then every target is read, the usages are split between the targets by the nodes their
pullers run on (`agent.pools`), and only then is each planned and written on its own: a
target that cannot be reached ends the cycle before anything is written; a target whose CR
cannot be read as a KubernetesImagePuller (a malformed `nodeSelector`, `affinity` or
`tolerations`) is skipped with that error, its entries untouched, and the others go on. A write that meets a 409
(the CR changed since it was read) re-reads the CR and re-plans once from the same
observation; a second conflict gives up for this cycle. Any failure after the first read
is that target's error, and the other targets go on. `dry_run` stops before the write.

`may_write` is asked right before every write (and before creating a missing CR, and
before posting an Event): in `serve` it says whether this replica still holds the lease, and
a no leaves the CR as it is.

Around the write, each target's puller is looked at (`agent.status`): its Deployment and
DaemonSet are read by name before planning, judged against the CR as read (in sync or not,
since when, stalled past `puller.sync_grace_seconds`), and each listed image is counted on
the pool's nodes. A write posts a `Normal` `ImagesUpdated` Event naming the entries added
and removed; a stalled puller is a warning in the log and a `Warning` Event on the CR
(`agent.recorder`). `Memory` is what `serve` carries from one cycle to the next for this: each
target's last judgement (for "since when") and the Events posted (to aggregate repeats);
`once` starts with an empty one.

The kubelet's Pulled events are read once per cycle too (`agent.events.begin`, after the
placement): the pull figures go into every target's plan, and each target's start-up
figures are worked out after its write (`agent.events.finish`), which also stores the
summary when `startup` is writable (serve) and `may_write` still says yes.

The returned `CycleResult` counts only what really happened; it is what `once` prints,
what `serve` exports as metrics, and what tests assert on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import structlog

from agent import events
from agent.apply import ApplyError, TargetMissing, read_target, read_workloads, write_plan
from agent.events import StartupStore
from agent.exits import Exit
from agent.kube.client import Kube
from agent.kube.errors import Conflict, Forbidden, KubeError, ServerError, TooManyRequests, Unauthorized, Unreachable
from agent.model import KindName, NodeInfo
from agent.observe import observe
from agent.outcome import CycleResult, TargetOutcome
from agent.plan import Plan, PlanInput, make_plan
from agent.policy import apply_policy
from agent.pools import TargetUsages, place
from agent.puller import InvalidPullerCR, PullerCR, PullerState, entry_changes, puller_view, render_images
from agent.recorder import NORMAL, WARNING, EventSeries, post_event, reporting_instance
from agent.resolve import Inventory, resolve
from agent.settings import Settings, Target
from agent.sources import Observation
from agent.sources.common import MAX_TEXT, clip
from agent.startup import PullFigures
from agent.status import PullerStatus, Record, Seen, Sync, judge, presence

log = structlog.get_logger("prepull_agent.cycle")

MAX_REJECTIONS_LOGGED = 20  # of each: one tenant with thousands of bad references must not flood the logs
MAX_LOGGED_TEXT = 3 * MAX_TEXT  # a problem holds up to two clipped tenant strings and the agent's words
NOT_THE_LEADER = "not the leader any more; nothing written"


NO_NODE = "the puller runs on no node: check its spec.nodeSelector, spec.affinity and spec.tolerations"


def _always() -> bool:
    return True


@dataclass
class Memory:
    """What `serve` keeps from one cycle to the next (see the module docstring)."""

    records: dict[str, Record] = field(default_factory=dict)  # by target
    series: EventSeries = field(default_factory=EventSeries)
    instance: str = field(default_factory=reporting_instance)  # the Events' reportingInstance


def run_cycle(
    kube: Kube,
    settings: Settings,
    *,
    dry_run: bool,
    may_write: Callable[[], bool] = _always,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    clock: Callable[[], float] = time.monotonic,
    startup: StartupStore | None = None,
    memory: Memory | None = None,
) -> CycleResult:
    """Run one cycle.

    Raises only before anything is written: `Unauthorized` while listing (the credentials
    were refused), or while the targets are first read: `KubeError` (API server
    unreachable, credentials refused, access denied...) or `TargetMissing` (`once` maps
    them to its exit codes). `startup`: where the start-up summary is kept between cycles
    (default: read from its ConfigMap, never written, as `once` does). Listing failures are
    recorded in the result; a CR that cannot
    be read as a KubernetesImagePuller, and every failure after the first read (a write
    refused, two conflicts, a re-read that fails, `may_write` saying no), is that target's
    `TargetOutcome.error`.
    """
    started = clock()
    memory = memory if memory is not None else Memory()
    requests_before = kube.requests
    observation = observe(kube, settings)
    inventory = apply_policy(
        resolve(observation, llm_config_prefix=settings.kserve.llm_config_prefix), settings.references
    )
    # All targets are read before any is written, so an exception here never loses the
    # outcome of a target already written.
    read = [_read_or_error(kube, target, may_write, dry_run=dry_run) for target in settings.targets]
    pullers = [p for p in read if isinstance(p, PullerCR)]
    nodes = _placeable_nodes(observation, settings)
    placing = place(inventory.usages, pullers=pullers, nodes=nodes)
    store = startup or StartupStore.for_settings(settings, writable=False)
    pulls = events.begin(kube, settings, store, observation, inventory, nodes=nodes)
    views = iter(placing.targets)
    outcomes = tuple(
        _one_target(
            kube, settings, target, puller, next(views), observation,
            dry_run=dry_run, may_write=may_write, now=now(), figures=pulls.figures if pulls else None,
            memory=memory,
        )
        if isinstance(puller, PullerCR)
        else _unreadable(target, puller)
        for target, puller in zip(settings.targets, read, strict=True)
    )
    if pulls is not None:
        outcomes = events.finish(kube, store, pulls, outcomes, may_write=may_write, dry_run=dry_run, now=now())
    result = CycleResult(
        outcomes=outcomes,
        rejected=inventory.rejections,
        problems=inventory.problems,
        rejected_total=inventory.rejections_total,
        problems_total=inventory.problems_total,
        not_prepullable=inventory.skipped,
        not_prepullable_total=inventory.skipped_total,
        placing=placing,
        listed=dict(observation.listed),
        missing=dict(observation.missing),
        failed=dict(observation.failed),
        requests=kube.requests - requests_before,
        duration_seconds=round(clock() - started, 3),
        pulled=pulls.counts if pulls else None,
    )
    _log_summary(result, inventory, dry_run=dry_run)
    return result


def _read_or_error(
    kube: Kube, target: Target, may_write: Callable[[], bool], *, dry_run: bool
) -> PullerCR | InvalidPullerCR:
    try:
        return _read(kube, target, may_write, dry_run=dry_run)
    except InvalidPullerCR as e:
        return e


def _unreadable(target: Target, error: InvalidPullerCR) -> TargetOutcome:
    log.error("target skipped this cycle, its entries untouched", target=str(target), reason=str(error))
    return TargetOutcome(target, None, error=f"skipped, nothing written: {error}")


def _placeable_nodes(observation: Observation, settings: Settings) -> Sequence[NodeInfo] | None:
    """The nodes to place workloads on, or None when they are unknown this cycle."""
    node_kind = KindName.NODE
    if not settings.sources.nodes or node_kind in observation.failed or node_kind in observation.missing:
        return None
    return observation.nodes.nodes


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
    view: TargetUsages,
    observation: Observation,
    *,
    dry_run: bool,
    may_write: Callable[[], bool],
    now: datetime,
    memory: Memory,
    figures: PullFigures | None = None,
) -> TargetOutcome:
    if view.pool is not None and not view.pool.nodes:
        log.warning("target matches no node, nothing added", target=str(target), hint=NO_NODE)
    seen = read_workloads(kube, puller)

    def replan(read: PullerCR) -> Plan:
        return _plan(read, settings, view, observation, now, figures=figures)

    outcome = _write(kube, target, puller, replan(puller), replan, dry_run=dry_run, may_write=may_write)
    poster = _Poster(kube, memory, puller, now=now, may=(lambda: not dry_run and may_write()))
    if outcome.written and outcome.plan is not None:
        _announce(poster, outcome.plan)
    if outcome.plan is not None and outcome.plan.deferred is not None and not outcome.written:
        deferred = outcome.plan.deferred
        log.info(
            "change deferred: the puller was written less than puller.min_write_interval_seconds ago",
            target=str(target), until=deferred.until.isoformat(), **_difference(outcome.plan.desired, deferred.state),
        )
    status = _look(puller, seen, settings, memory, poster, target=str(target), now=now)
    held = _held(outcome)
    nodes = view.pool.nodes if view.pool is not None else ()
    found = presence(puller_view(render_images(held.entries)), nodes, observation.nodes.sizes) if held else ()
    return replace(outcome, pool=view.pool, status=status, presence=found)


def _held(outcome: TargetOutcome) -> PullerState | None:
    """What the CR holds after this cycle."""
    plan = outcome.plan
    if plan is None:
        return None
    return plan.desired if outcome.written else plan.current


class _Poster:
    """Posts Events on one target's CR, when this cycle may write; a refusal is logged."""

    def __init__(self, kube: Kube, memory: Memory, puller: PullerCR, *, now: datetime, may: Callable[[], bool]):
        self._kube, self._memory, self._puller, self._now, self._may = kube, memory, puller, now, may

    def post(self, *, type: str, reason: str, action: str, note: str) -> None:
        if not self._may():
            return
        target = f"{self._puller.namespace}/{self._puller.name}"
        try:
            post_event(self._kube, self._memory.series, self._puller, type=type, reason=reason, action=action,
                       note=note, now=self._now, instance=self._memory.instance)
        except KubeError as e:
            log.warning(
                "could not post an Event on the puller", target=target, event_reason=reason, reason=str(e),
                hint=f"grant create and patch on events (apiGroups [events.k8s.io]) in {self._puller.namespace}",
            )


def _announce(poster: _Poster, plan: Plan) -> None:
    """The Normal Event of a write that changed the entries."""
    changes = _changes(plan)
    if not changes["added"] and not changes["removed"]:
        return  # only the agent's annotations changed
    parts = [f"{what} {', '.join(names)}" for what, names in (("added", changes["added"]),
                                                              ("removed", changes["removed"])) if names]
    note = _sentence("; ".join(parts)) + " The puller recreates its DaemonSet on every node."
    poster.post(type=NORMAL, reason="ImagesUpdated", action="UpdateImages", note=note)


def _sentence(text: str) -> str:
    """`text` as a sentence: its first letter upper-cased (only that one), a full stop at the end."""
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


STALLED_REASONS = {Sync.MISSING: "DaemonSetMissing", Sync.OUT_OF_SYNC: "DaemonSetOutOfSync"}


def _look(
    puller: PullerCR, seen: Seen, settings: Settings, memory: Memory, poster: _Poster, *, target: str, now: datetime
) -> PullerStatus:
    """Judge the puller's state, remember it for the next cycle, and warn when it stalls."""
    grace = timedelta(seconds=settings.puller.sync_grace_seconds)
    status, record = judge(puller, seen, previous=memory.records.get(target), now=now, grace=grace)
    memory.records[target] = record
    for problem in (seen.deployment_error, seen.daemonset_error):
        if problem:
            log.warning("the puller's state is unknown", target=target, reason=problem)
    if status.degraded:
        log.warning("the KubernetesImagePuller is Degraded", target=target, reason=status.degraded)
    if status.stalled:
        log.warning("the puller does not cache the list", target=target, problem=status.stalled, hint=status.hint)
        poster.post(type=WARNING, reason=STALLED_REASONS[status.sync], action="CheckPuller",
                    note=f"{_sentence(status.stalled)} {_sentence(status.hint)}")
    return status


def _write(
    kube: Kube,
    target: Target,
    puller: PullerCR,
    plan: Plan,
    replan: Callable[[PullerCR], Plan],
    *,
    dry_run: bool,
    may_write: Callable[[], bool],
) -> TargetOutcome:
    """Write `plan` once; after a conflict, re-read the CR, `replan` and write once more."""
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
                plan = replan(puller)
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
                "puller updated", target=str(target), entries=len(plan.desired.entries), attempt=attempt,
                **_changes(plan),
            )
            return TargetOutcome(target, plan, written=True)
    reason = "the CR kept changing while the agent wrote it (409 twice); trying again next cycle"
    log.warning("writing the puller gave up for this cycle", target=str(target), reason=reason)
    return TargetOutcome(target, plan, error=reason)


def _changes(plan: Plan) -> dict[str, list[str]]:
    """The names of the entries a write adds and removes (one whose image changed is both);
    the images are in the diff and the CR. Names are DNS labels, and at most `max_images`
    are the agent's, so the log line stays short."""
    return _difference(plan.current, plan.desired)


def _difference(current: PullerState, desired: PullerState) -> dict[str, list[str]]:
    added, removed = entry_changes(current, desired)
    return {"added": added, "removed": removed}


def _plan(
    puller: PullerCR,
    settings: Settings,
    view: TargetUsages,
    observation: Observation,
    now: datetime,
    *,
    figures: PullFigures | None = None,
) -> Plan:
    figures = figures or PullFigures()
    return make_plan(
        PlanInput(
            usages=view.usages,
            puller=puller,
            nodes=view.pool.nodes if view.pool is not None else observation.nodes.nodes,
            sizes=observation.nodes.sizes,
            settings=settings,
            now=now,
            applications_namespace=observation.applications_namespace,
            failed=observation.failed,
            missing=observation.missing,
            elsewhere=view.elsewhere,
            elsewhere_reasons=view.reasons,
            hold=NO_NODE if view.pool is not None and not view.pool.nodes else "",
            pull_seconds=figures.seconds,
            pull_rate=figures.rate,
            last_written=puller.last_written,
        )
    )


def _log_summary(result: CycleResult, inventory: Inventory, *, dry_run: bool) -> None:
    """The first `MAX_REJECTIONS_LOGGED` problems and rejections, one line counting the rest,
    then the cycle's counters. Every tenant string is clipped: however many objects a tenant
    writes and however long their strings, this is a few KB of log."""
    plans = [o.plan for o in result.outcomes if o.plan is not None]
    for gap in result.placing.gaps if result.placing else ():
        log.warning(
            "nodes no puller covers run workloads",
            group=gap.group.name,
            nodes=len(gap.group.nodes),
            # the first few, within the bound every tenant-facing log field keeps
            images=clip(", ".join(str(i) for i in gap.images[:10]), MAX_LOGGED_TEXT),
            images_total=len(gap.images),
            hint="once --dry-run prints a KubernetesImagePuller for them",
        )
    for problem in inventory.problems[:MAX_REJECTIONS_LOGGED]:
        log.warning("not resolved", problem=clip(problem, MAX_LOGGED_TEXT))
    for rejection in inventory.rejections[:MAX_REJECTIONS_LOGGED]:
        log.warning(
            "reference rejected",
            source=clip(str(rejection.source)),
            field=clip(rejection.field),
            reference=clip(rejection.reference),
            reason=clip(rejection.reason),
        )
    more_problems = inventory.problems_total - min(len(inventory.problems), MAX_REJECTIONS_LOGGED)
    more_rejections = inventory.rejections_total - min(len(inventory.rejections), MAX_REJECTIONS_LOGGED)
    if more_problems > 0 or more_rejections > 0:
        log.warning(
            "more references rejected or not resolved",
            rejected=more_rejections,
            not_resolved=more_problems,
            hint="once --dry-run --output json lists the first of them",
        )
    log.info(
        "cycle finished",
        dry_run=dry_run,
        listed=result.listed,
        missing=sorted(result.missing),
        failed=sorted(result.failed),
        candidates=sum(len(p.candidates) for p in plans),
        rejected=inventory.rejections_total,
        not_resolved=inventory.problems_total,
        not_prepullable=inventory.skipped_total,
        selected=sum(len(p.selected) for p in plans),
        changed=sum(p.changed for p in plans),
        written=result.written,
        requests=result.requests,
        duration_seconds=result.duration_seconds,
    )


def failure(error: Exception, *, kube: Kube) -> tuple[int, str]:
    """The exit code and message for a cycle that could not run to the end: what `once` exits
    with and prints, and what `serve` logs."""
    server = kube.server
    if isinstance(error, Unauthorized):
        fix = (
            "check that the ServiceAccount and its token still exist; the pod gets a new token when it restarts"
            if kube.credentials.source == "in-cluster"
            else "log in again (oc login) or renew the token"
        )
        return Exit.UNREACHABLE, (
            f"the API server at {server} refused the credentials (HTTP 401: expired or wrong token) of "
            f"{kube.credentials}: {fix}"
        )
    if isinstance(error, Unreachable | ServerError | TooManyRequests):
        return Exit.UNREACHABLE, f"cannot use the API server at {server}: {error}"
    if isinstance(error, KubeError) and denied_by_admission(error):
        return Exit.TARGET, f"the API server refused {error.method} {error.path}: {error.message}"
    if isinstance(error, Forbidden):
        return Exit.TARGET, f"access denied: {error} (check the agent's RBAC)"
    return Exit.TARGET, str(error)


def denied_by_admission(error: KubeError) -> bool:
    """Whether the server's message says an admission webhook or policy (not RBAC) said no.

    The API server's own words (k8s.io/apiserver, pkg/admission/plugin/webhook/errors and
    validatingadmissionpolicy): `admission webhook "NAME" denied the request: ...` and
    `ValidatingAdmissionPolicy 'NAME' with binding 'B' denied request: ...`."""
    message = error.message
    return "denied the request" in message or "denied request" in message
