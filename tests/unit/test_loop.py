"""serve's cycle bookkeeping: failures in a row, readiness, metrics, /plan, may_write,
leaving at once when the lease is lost. The cycle and the way out of the process are
injected; what needs a Lease is in tests/integration/test_leader.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from prometheus_client import generate_latest

from agent.loop import EXIT_LEADERSHIP_LOST, EXIT_OK, EXIT_TOO_MANY_FAILURES, Agent, lease_timeout
from agent.outcome import CycleResult, TargetOutcome
from agent.plan import Candidate, Plan
from agent.settings import load_settings
from agent.version import VERSION


def agent_with(outcomes: list[object], failures: int = 3, exits: list[int] | None = None,
               env: dict[str, str] | None = None) -> Agent:
    settings = load_settings(None, env={"PREPULL_SERVE__MAX_CONSECUTIVE_FAILURES": str(failures), **(env or {})})
    script = iter(outcomes)

    def cycle(kube, settings, *, dry_run, may_write, memory):
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
    agent.run_one()
    assert agent.consecutive_failures == 0 and agent.ready() == (True, "leader")


def test_failing_cycles_leave_the_replica_ready_and_show_in_the_metrics():
    """Readiness is about serving: a missing CR must not make both replicas unready (and, with
    the PodDisruptionBudget, block node drains)."""
    agent = agent_with([RuntimeError("no such puller")] * 2, failures=10)
    agent.run_one()
    agent.run_one()
    ready, why = agent.ready()
    assert ready and why == "leader; 2 failed cycle(s) in a row (see the log and metrics)"
    text = generate_latest(agent.metrics.registry).decode()
    assert "prepull_agent_consecutive_failed_cycles 2.0" in text
    assert 'prepull_agent_target_failed{target="openshift-operators/image-puller"} 1.0' in text
    agent.exit(EXIT_OK)
    assert agent.ready() == (False, "stopping")


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
    s = load_settings(None, env={
        "PREPULL_KUBE__REQUEST_TIMEOUT_SECONDS": str(request_timeout),
        "PREPULL_SERVE__LEADER_ELECTION__RENEW_DEADLINE_SECONDS": str(renew),
        "PREPULL_SERVE__LEADER_ELECTION__RETRY_PERIOD_SECONDS": str(retry),
        "PREPULL_SERVE__LEADER_ELECTION__LEASE_DURATION_SECONDS": "30",
    })
    assert lease_timeout(s) == expected


# -- metrics and /plan -------------------------------------------------------------------------


def plan_for(target: str, *, selected: int) -> Plan:
    from agent.puller import PullerState
    from agent.refs import parse_reference

    namespace, name = target.split("/")
    candidates = tuple(
        Candidate(image=parse_reference(f"quay.io/x/i{i}:1"), score=10.0, size_bytes=1, size_known=True,
                  roles=("workbench",), sources=(), selected=i < selected, reason="r")
        for i in range(selected + 1)
    )
    nothing = PullerState(entries=(), owned={}, entry_kinds={})
    return Plan(target_namespace=namespace, target_name=name, generated_at=datetime(2026, 1, 1, tzinfo=UTC),
                budget_bytes=100, budget_used_bytes=10, candidates=candidates, current=nothing, desired=nothing)


def two_targets(**kw) -> CycleResult:
    from agent.model import ObjectRef, Rejection
    from agent.settings import Target

    bad = tuple(Rejection("x;y", "is not valid", ObjectRef("Notebook", "ns", f"n{i}"), "f") for i in range(3))
    return CycleResult(
        outcomes=(TargetOutcome(Target(namespace="a", name="p"), plan_for("a/p", selected=2)),
                  TargetOutcome(Target(namespace="b", name="p"), plan_for("b/p", selected=5)),
                  TargetOutcome(Target(namespace="c", name="p"), None, error="not a KubernetesImagePuller")),
        rejected=bad,
        rejected_total=len(bad),
        **kw,
    )


def test_metrics_have_units_per_target_labels_per_kind_failures_and_the_standard_collectors():
    result = two_targets(listed={"Notebook": 4, "Node": 3}, failed={"InferenceService": "HTTP 403"})
    agent = agent_with([result], env={"PREPULL_TARGET": "a/p"})
    agent.run_one()
    text = generate_latest(agent.metrics.registry).decode()
    for line in (
        'prepull_agent_selected_images{target="a/p"} 2.0',
        'prepull_agent_selected_images{target="b/p"} 5.0',
        "prepull_agent_rejected_references 3.0",  # once for all targets
        'prepull_agent_target_failed{target="c/p"} 1.0',
        'prepull_agent_target_failed{target="a/p"} 0.0',
        'prepull_agent_candidate_images{target="b/p"} 6.0',
        'prepull_agent_disk_budget_bytes{target="a/p"} 100.0',
        'prepull_agent_source_failed{kind="InferenceService"} 1.0',
        'prepull_agent_source_failed{kind="Notebook"} 0.0',
        'prepull_agent_source_objects{kind="Notebook"} 4.0',
        'prepull_agent_cycles_total{result="failure"} 1.0',  # c/p was not brought up to date
        f'prepull_agent_build_info{{python_version="{__import__("platform").python_version()}",version="{VERSION}"}}'
        " 1.0",
    ):
        assert line in text, line
    assert "process_resident_memory_bytes" in text and "python_info" in text
    assert 'prepull_agent_selected_images{target="c/p"}' not in text  # nothing planned for it
    assert "prepull_agent_rejected " not in text and "prepull_agent_failed_sources" not in text
    for help_line in (line for line in text.splitlines() if line.startswith("# HELP prepull_agent")):
        assert len(help_line.split(" ", 3)[3]) > 20, help_line


def test_node_groups_no_puller_covers_are_exported_and_gone_once_covered():
    from agent.placement import NodeGroup
    from agent.pools import Gap, Placing
    from agent.refs import parse_reference

    group = NodeGroup("nvidia-gpu", ("gpu-0", "gpu-1", "gpu-2"), (), frozenset({"nvidia.com/gpu"}), (), True)
    missed = (parse_reference("quay.io/modh/vllm:1"), parse_reference("quay.io/modh/cuda-wb:1"))
    gap = CycleResult(outcomes=(), placing=Placing(targets=(), gaps=(Gap(group, missed, {}),)))
    agent = agent_with([gap, OK])
    agent.run_one()
    text = generate_latest(agent.metrics.registry).decode()
    assert 'prepull_agent_uncovered_nodes{group="nvidia-gpu"} 3.0' in text
    assert 'prepull_agent_uncovered_images{group="nvidia-gpu"} 2.0' in text
    agent.run_one()
    assert 'group="nvidia-gpu"' not in generate_latest(agent.metrics.registry).decode()


def test_a_partial_cycle_is_a_success_for_the_failure_count():
    result = two_targets(failed={"Notebook": "HTTP 403"})
    result = CycleResult(outcomes=result.outcomes[:2], failed=result.failed)
    agent = agent_with([result], failures=1)
    agent.run_one()
    assert agent.consecutive_failures == 0 and not agent.stop.is_set()
    text = generate_latest(agent.metrics.registry).decode()
    assert 'prepull_agent_cycles_total{result="partial"} 1.0' in text
    assert "prepull_agent_last_success_timestamp_seconds 0.0" not in text


def test_a_standby_exports_last_success_0_and_serves_no_plan():
    agent = agent_with([])
    assert "prepull_agent_last_success_timestamp_seconds 0.0" in generate_latest(agent.metrics.registry).decode()
    assert agent.plan_document() is None


def test_plan_serves_the_last_cycles_json_document():
    agent = agent_with([two_targets()], env={"PREPULL_DRY_RUN": "true"})
    agent.dry_run = True
    agent.run_one()
    doc = json.loads(agent.plan_document() or b"")
    assert doc["kind"] == "CycleReport" and doc["dry_run"] is True
    assert [t["target"]["namespace"] for t in doc["targets"]] == ["a", "b", "c"]


def test_the_readme_documents_every_metric_the_agent_exports():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### Metrics and alerts"):readme.index("### Troubleshooting")]
    documented = set(re.findall(r"`(prepull_agent_[a-z_]+)`", section))
    agent = agent_with([])
    exported = {m.name + ("_total" if m.type == "counter" else "") + ("_info" if m.type == "info" else "")
                for m in agent.metrics.registry.collect() if m.name.startswith("prepull_agent")}
    assert exported <= documented, exported - documented
