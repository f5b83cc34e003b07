"""`serve`'s Prometheus metrics: what each cycle did, per target and per kind.

Names carry their unit (`_seconds`, `_bytes`, `_images`, `_references`, `_total`); every
per-target series has the label `target="NAMESPACE/NAME"`, every per-kind series
`kind="Notebook"`..., and what a cycle finds once for all targets (the rejected
references) has neither. The registry also holds the standard `process_*` and `python_*`
collectors. The README's metrics table lists them all; manifests/components/monitoring
alerts on them.

A standby replica runs no cycle: its cycle series stay at their start values (for
`prepull_agent_last_success_timestamp_seconds`, 0), so alerts take the `max` over the
replicas (see the PrometheusRule).

The puller's own state (issue 13) is per target too: its DaemonSet's nodes by state, whether
it holds the list, whether it has stalled past the grace period, and on how many of the
target's nodes each listed image is present (`image` is the entry's image as listed; only
listed images have a series, so their number is bounded by the list, `max_images` of them
the agent's). A series whose subject went away (an image no longer listed, a DaemonSet that
could not be read) is removed rather than left at its last value.

What this module is not: it serves nothing (`agent.loop` does) and decides nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

from agent.outcome import CycleResult, TargetOutcome
from agent.startup import TargetStartup
from agent.status import Sync
from agent.version import PYTHON, VERSION

SUCCESS, PARTIAL, FAILURE = "success", "partial", "failure"
NODE_STATES = ("desired", "scheduled", "ready")


def cycle_result(result: CycleResult) -> str:
    """success: every target up to date and every kind listed; partial: up to date, but some
    kind could not be listed; failure: some target could not be brought up to date."""
    if not result.ok:
        return FAILURE
    return PARTIAL if result.failed else SUCCESS


class Metrics:
    def __init__(self, *, targets: list[str], clock: Callable[[], float] = time.time) -> None:
        self.registry = r = CollectorRegistry()
        self._clock = clock
        self._targets = list(targets)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        Info("prepull_agent_build", "The agent's version and Python's, always 1", registry=r).info(
            {"version": VERSION, "python_version": PYTHON}
        )
        per_target = ["target"]
        self._cycle_metrics()
        self._source_metrics()
        self._target_metrics(per_target)
        self._puller_metrics(per_target)
        self._coverage_metrics()
        self._startup_metrics(per_target)
        for result in (SUCCESS, PARTIAL, FAILURE):
            self.cycles.labels(result=result)
        for target in targets:
            self.writes.labels(target=target)
            for kind in ("warm", "cold"):
                self.container_starts.labels(target=target, result=kind)
            self.seconds_saved.labels(target=target)

    def _cycle_metrics(self) -> None:
        """Each cycle of this replica: how long, how it ended, when, and who leads."""
        r = self.registry
        self.duration = Histogram(
            "prepull_agent_cycle_duration_seconds",
            "How long a cycle took: listing, planning and writing every target",
            registry=r,
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
        )
        self.cycles = Counter(
            "prepull_agent_cycles",
            "Cycles run by this replica, by result: success, partial (some kind could not be listed), "
            "failure (some target not brought up to date)",
            ["result"],
            registry=r,
        )
        self.consecutive_failures = Gauge(
            "prepull_agent_consecutive_failed_cycles",
            "Failed cycles in a row; serve exits at serve.max_consecutive_failures",
            registry=r,
        )
        self.last_success = Gauge(
            "prepull_agent_last_success_timestamp_seconds",
            "Unix time of this replica's last cycle that brought every target up to date; 0 until then "
            "(a standby stays at 0: take the max over replicas)",
            registry=r,
        )
        self.last_cycle = Gauge(
            "prepull_agent_last_cycle_timestamp_seconds",
            "Unix time at which this replica's last cycle ended, whatever its result; 0 before the first",
            registry=r,
        )
        self.leader = Gauge("prepull_agent_leader", "1 while this replica holds the Lease and runs cycles", registry=r)

    def _source_metrics(self) -> None:
        """Each kind listed: how many objects, and whether it could be listed."""
        r = self.registry
        self.source_objects = Gauge(
            "prepull_agent_source_objects",
            "Objects of each kind read in the last cycle",
            ["kind"],
            registry=r,
        )
        self.source_failed = Gauge(
            "prepull_agent_source_failed",
            "1 when the kind could not be listed in the last cycle (the images the agent manages from it "
            "are kept), else 0",
            ["kind"],
            registry=r,
        )

    def _target_metrics(self, per_target: list[str]) -> None:
        """What the last cycle planned and wrote for each target."""
        r = self.registry
        self.candidates = Gauge(
            "prepull_agent_candidate_images", "Images considered for the target in the last cycle", per_target,
            registry=r,
        )
        self.selected = Gauge(
            "prepull_agent_selected_images", "Images the last cycle chose for the target's list", per_target,
            registry=r,
        )
        self.rejected = Gauge(
            "prepull_agent_rejected_references",
            "Image references rejected in the last cycle (invalid, not allowed or denied), for all targets",
            registry=r,
        )
        self.budget = Gauge(
            "prepull_agent_disk_budget_bytes",
            "Per-node disk budget of the target's images in the last cycle; absent when there is none",
            per_target,
            registry=r,
        )
        self.budget_used = Gauge(
            "prepull_agent_disk_budget_used_bytes",
            "Per-node disk the target's listed images take, as planned in the last cycle",
            per_target,
            registry=r,
        )
        self.writes = Counter(
            "prepull_agent_writes", "Changes written to the target's KubernetesImagePuller", per_target, registry=r
        )
        self.target_failed = Gauge(
            "prepull_agent_target_failed",
            "1 when the last cycle could not bring the target up to date (see the log), else 0",
            per_target,
            registry=r,
        )

    def _puller_metrics(self, per_target: list[str]) -> None:
        """What each target's puller did with its list (`agent.status`)."""
        r = self.registry
        self.puller_nodes = Gauge(
            "prepull_agent_puller_nodes",
            "Nodes of the puller's DaemonSet for the target, by state: desired (the nodes it should run on), "
            "scheduled (running a puller pod), ready (a ready pod: every listed image pulled there); absent when "
            "the DaemonSet is missing or could not be read",
            ["target", "state"],
            registry=r,
        )
        self.puller_in_sync = Gauge(
            "prepull_agent_puller_in_sync",
            "1 when the puller's DaemonSet holds exactly the entries of the target's spec.images, 0 when it "
            "does not or is missing; absent when it could not be read",
            per_target,
            registry=r,
        )
        self.puller_stalled = Gauge(
            "prepull_agent_puller_stalled",
            "1 when the puller's DaemonSet has been missing or out of sync for longer than "
            "puller.sync_grace_seconds (the agent warns and posts a Warning Event), else 0",
            per_target,
            registry=r,
        )
        self.image_nodes_present = Gauge(
            "prepull_agent_image_nodes_present",
            "Nodes of the target's pool whose status.images lists the image, for each image in its spec.images "
            "(nodes report only their 50 largest images: a smaller one may be present and not counted)",
            ["target", "image"],
            registry=r,
        )
        self._images: dict[str, set[str]] = {}

    def _coverage_metrics(self) -> None:
        """Node groups no target's puller covers (`agent.pools`): labels are node groups, a few."""
        r = self.registry
        self.uncovered_nodes = Gauge(
            "prepull_agent_uncovered_nodes",
            "Nodes of the group that no target's puller runs on, though workloads can run only there "
            "(the log and once --dry-run print a KubernetesImagePuller that would cover them)",
            ["group"],
            registry=r,
        )
        self.uncovered_images = Gauge(
            "prepull_agent_uncovered_images",
            "Images that workloads run and only the group's nodes, which no puller covers, can run",
            ["group"],
            registry=r,
        )

    def _startup_metrics(self, per_target: list[str]) -> None:
        """From the kubelet's Pulled events (`agent.startup`): labels are the configured targets
        and warm/cold, never an image or a namespace, so tenants cannot grow the series."""
        r = self.registry
        self.container_starts = Counter(
            "prepull_agent_container_starts",
            "Container starts the kubelet reported on the target's nodes (trusted Pulled events), by result: "
            "warm (image already present) or cold (pulled)",
            ["target", "result"],
            registry=r,
        )
        self.seconds_saved = Counter(
            "prepull_agent_pull_seconds_saved",
            "Pull time avoided on the target's nodes by images the agent listed there: a pod's first warm start "
            "of such an image counts its median cold pull (or its size over the pull rate)",
            per_target,
            registry=r,
        )
        self.cold_pulls = Histogram(
            "prepull_agent_cold_pull_duration_seconds",
            "Cold pulls the kubelet reported on the target's nodes: the pull itself, not the wait",
            per_target,
            registry=r,
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600),
        )

    def _record_startup(self, target: str, startup: TargetStartup) -> None:
        self.container_starts.labels(target=target, result="warm").inc(startup.new_warm)
        self.container_starts.labels(target=target, result="cold").inc(startup.new_cold)
        self.seconds_saved.labels(target=target).inc(startup.new_saved)
        for seconds in startup.new_pull_seconds:
            self.cold_pulls.labels(target=target).observe(seconds)

    def record(self, result: CycleResult) -> str:
        """Export one finished cycle; returns its result (success, partial or failure)."""
        outcome = cycle_result(result)
        self.duration.observe(result.duration_seconds)
        self.cycles.labels(result=outcome).inc()
        self.last_cycle.set(self._clock())
        if outcome != FAILURE:
            self.last_success.set(self._clock())
        for kind, count in result.listed.items():
            self.source_objects.labels(kind=kind).set(count)
            self.source_failed.labels(kind=kind).set(0)
        for kind in result.missing:
            self.source_objects.labels(kind=kind).set(0)
            self.source_failed.labels(kind=kind).set(0)
        for kind in result.failed:
            self.source_failed.labels(kind=kind).set(1)
        self.rejected.set(result.rejected_total)
        self.uncovered_nodes.clear()
        self.uncovered_images.clear()
        for gap in result.placing.gaps if result.placing else ():
            self.uncovered_nodes.labels(group=gap.group.name).set(len(gap.group.nodes))
            self.uncovered_images.labels(group=gap.group.name).set(len(gap.images))
        for o in result.outcomes:
            target, plan = str(o.target), o.plan
            self._record_puller(target, o)
            self.target_failed.labels(target=target).set(1 if o.error else 0)
            if o.written:
                self.writes.labels(target=target).inc()
            if plan is None:  # the CR could not be read: nothing planned for it
                for gauge in (self.candidates, self.selected, self.budget, self.budget_used):
                    self._forget(gauge, target)
                continue
            self.candidates.labels(target=target).set(len(plan.candidates))
            self.selected.labels(target=target).set(len(plan.selected))
            if plan.budget_bytes is not None:
                self.budget.labels(target=target).set(plan.budget_bytes)
            else:
                self._forget(self.budget, target)
            self.budget_used.labels(target=target).set(plan.budget_used_bytes)
            if o.startup is not None:
                self._record_startup(target, o.startup)
        return outcome

    def _record_puller(self, target: str, outcome: TargetOutcome) -> None:
        status = outcome.status
        daemonset = status.daemonset if status is not None else None
        for state in NODE_STATES:
            if daemonset is None:
                self._forget(self.puller_nodes, target, state)
            else:
                self.puller_nodes.labels(target=target, state=state).set(getattr(daemonset, state))
        if status is None or status.sync is Sync.UNKNOWN:
            self._forget(self.puller_in_sync, target)
        else:
            self.puller_in_sync.labels(target=target).set(1 if status.sync is Sync.IN_SYNC else 0)
        self.puller_stalled.labels(target=target).set(1 if status is not None and status.stalled else 0)
        listed = {p.image: p.present for p in outcome.presence}
        for image in self._images.get(target, set()) - set(listed):
            self._forget(self.image_nodes_present, target, image)
        for image, present in listed.items():
            self.image_nodes_present.labels(target=target, image=image).set(present)
        self._images[target] = set(listed)

    def record_crash(self) -> None:
        """A cycle that raised before it had a result (e.g. the target could not be read)."""
        self.cycles.labels(result=FAILURE).inc()
        self.last_cycle.set(self._clock())
        for target in self._targets:
            self.target_failed.labels(target=target).set(1)

    @staticmethod
    def _forget(gauge: Gauge, *labels: str) -> None:
        try:
            gauge.remove(*labels)
        except KeyError:  # never set
            pass
