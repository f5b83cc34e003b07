"""What a cycle did: each target's outcome, and what the cycle found once for all targets.

Pure values, made by `agent.cycle` and read by the report, the metrics and `serve`: a
module of its own so that formatting a result never imports the code that talks to the
API server.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.model import NotPrepullable, Rejection
from agent.plan import Plan
from agent.pools import Placing, Pool
from agent.settings import Target
from agent.startup import EventCounts, TargetStartup
from agent.status import ImagePresence, PullerStatus

__all__ = ["CycleResult", "TargetOutcome"]


@dataclass(frozen=True)
class TargetOutcome:
    target: Target
    plan: Plan | None  # None: the CR could not be read as a KubernetesImagePuller (see `error`)
    written: bool = False
    error: str = ""  # why this target was not brought up to date
    pool: Pool | None = None  # the nodes its puller runs on; None when the nodes are unknown
    startup: TargetStartup | None = None  # start-up figures on its nodes; None when events are not read
    status: PullerStatus | None = None  # the puller's Deployment and DaemonSet as read this cycle
    presence: tuple[ImagePresence, ...] = ()  # each listed image on the pool's nodes, after this cycle


@dataclass(frozen=True)
class CycleResult:
    outcomes: tuple[TargetOutcome, ...]
    rejected: tuple[Rejection, ...] = ()  # references refused this cycle (unparsable, or by policy): the first ones
    problems: tuple[str, ...] = ()  # e.g. an InferenceService whose runtime is not found: the first ones
    rejected_total: int = 0  # every reference refused, kept or not
    problems_total: int = 0
    not_prepullable: tuple[NotPrepullable, ...] = ()  # images pre-pulling cannot help: the first ones
    not_prepullable_total: int = 0
    placing: Placing | None = None  # what no target covers, and images no node can run
    listed: dict[str, int] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    duration_seconds: float = 0.0
    pulled: EventCounts | None = None  # the kubelet's Pulled events read this cycle; None when not read

    @property
    def ok(self) -> bool:
        return all(not o.error for o in self.outcomes)

    @property
    def written(self) -> int:
        return sum(o.written for o in self.outcomes)
