"""serve's cycle bookkeeping: failures in a row, readiness, metrics. The cycle is injected."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client import generate_latest

from agent.cycle import CycleResult
from agent.loop import EXIT_TOO_MANY_FAILURES, Agent
from agent.settings import Settings


def agent_with(outcomes: list[object], failures: int = 3) -> Agent:
    settings = Settings()
    settings = replace(settings, serve=replace(settings.serve, max_consecutive_failures=failures))
    script = iter(outcomes)

    def cycle(kube, settings, *, dry_run):
        outcome = next(script)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return Agent(settings, kube=None, cycle=cycle)  # type: ignore[arg-type]


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
