"""serve's cycle bookkeeping: failures in a row, readiness, metrics, may_write, leaving at
once when the lease is lost. The cycle and the way out of the process are injected; what
needs a Lease is in tests/integration/test_leader.py."""

from __future__ import annotations

from dataclasses import replace

import pytest
from prometheus_client import generate_latest

from agent.cycle import CycleResult
from agent.loop import EXIT_LEADERSHIP_LOST, EXIT_OK, EXIT_TOO_MANY_FAILURES, Agent, lease_timeout
from agent.settings import Settings


def agent_with(outcomes: list[object], failures: int = 3, exits: list[int] | None = None) -> Agent:
    settings = Settings()
    settings = replace(settings, serve=replace(settings.serve, max_consecutive_failures=failures))
    script = iter(outcomes)

    def cycle(kube, settings, *, dry_run, may_write):
        outcome = next(script)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome(may_write) if callable(outcome) else outcome

    return Agent(settings, kube=None, cycle=cycle, exit_process=(exits if exits is not None else []).append)  # type: ignore[arg-type]


OK = CycleResult(outcomes=())


def test_a_failed_cycle_is_logged_and_the_next_goes_on():
    agent = agent_with([RuntimeError("boom"), OK])
    agent.run_one()
    assert agent.consecutive_failures == 1 and not agent.stop.is_set()
    assert agent.ready() == (False, "1 failed cycle(s) in a row")
    agent.run_one()
    assert agent.consecutive_failures == 0 and agent.ready() == (True, "leader")


def test_too_many_failures_in_a_row_stop_the_process():
    agent = agent_with([RuntimeError("a"), RuntimeError("b"), RuntimeError("c")], failures=3)
    for _ in range(3):
        agent.run_one()
    assert agent.stop.is_set() and agent.exit_code == EXIT_TOO_MANY_FAILURES


def test_metrics_count_cycles_by_result():
    agent = agent_with([RuntimeError("x"), OK, OK])
    for _ in range(3):
        agent.run_one()
    text = generate_latest(agent.metrics.registry).decode()
    assert 'prepull_agent_cycles_total{result="failure"} 1.0' in text
    assert 'prepull_agent_cycles_total{result="success"} 2.0' in text
    assert "prepull_agent_last_success_timestamp_seconds" in text


def test_without_leader_election_every_cycle_may_write():
    asked: list[bool] = []
    agent = agent_with([lambda may_write: asked.append(may_write()) or OK])
    agent.run_one()
    assert asked == [True]


@pytest.mark.parametrize("stopping", [False, True], ids=["serving", "draining after SIGTERM"])
def test_losing_the_lease_ends_the_process_at_once_with_7(stopping):
    exits: list[int] = []
    agent = agent_with([], exits=exits)
    agent.metrics.leader.set(1)
    if stopping:
        agent.exit(EXIT_OK)
    agent.stopped_leading()
    assert exits == [EXIT_LEADERSHIP_LOST]
    assert agent.stop.is_set() and agent.exit_code == EXIT_LEADERSHIP_LOST
    assert "prepull_agent_leader 0.0" in generate_latest(agent.metrics.registry).decode()


@pytest.mark.parametrize(
    ("request_timeout", "renew", "retry", "expected"),
    [(30.0, 20.0, 4.0, 4.0), (30.0, 3.0, 2.0, 1.5), (1.0, 20.0, 4.0, 1.0)],
)
def test_lease_requests_time_out_within_the_retry_period_and_half_the_renew_deadline(
    request_timeout, renew, retry, expected
):
    s = Settings()
    election = replace(s.serve.leader_election, renew_deadline_seconds=renew, retry_period_seconds=retry)
    s = replace(
        s,
        kube=replace(s.kube, request_timeout_seconds=request_timeout),
        serve=replace(s.serve, leader_election=election),
    )
    assert lease_timeout(s) == expected
