"""One cycle (observe, resolve, plan, write) replayed over what the real API server answered.

The agent's own `Kube`, `observe`, `run_cycle` and `write_plan` run over the recordings of
tests/data/recorded (made by tests/harness/record.py on a local kube-apiserver, RBAC on,
with the sample cluster loaded): no server, a few milliseconds a test. A replay answers only
requests that were recorded, so a test also fails when the agent sends anything else (a
write without its resourceVersion, a request too many). Faults the server cannot be made to
give on demand (no answer at all) are injected into the transport. Each test names the
integration test that shows the same against the real server.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import structlog
import urllib3

from agent.apply import TargetMissing
from agent.cycle import NOT_THE_LEADER, run_cycle
from agent.kube.errors import Unauthorized
from agent.loop import Agent
from agent.model import KindName
from agent.outcome import CycleResult
from agent.puller import parse_images
from tests.harness.record import ADDED, ADMIN_ENTRY, DEFINITIONS, NOW, THEIRS, describe, settings_for
from tests.harness.recorded import RECORDED, Replay, load, replaying

PULLERS = "/apis/che.eclipse.org/v1alpha1/namespaces/"
NOTEBOOKS = "/apis/kubeflow.org/v1/notebooks"
SAMPLE_COUNTS = {
    KindName.IMAGE_STREAM: 8, KindName.NOTEBOOK: 7, KindName.SERVING_RUNTIME: 3, KindName.CLUSTER_SERVING_RUNTIME: 1,
    KindName.TEMPLATE: 3, KindName.INFERENCE_SERVICE: 7, KindName.LLM_INFERENCE_SERVICE_CONFIG: 4,
    KindName.LLM_INFERENCE_SERVICE: 2, KindName.CLUSTER_STORAGE_CONTAINER: 0, KindName.NODE: 4,
    KindName.CONFIG_MAP: 1,  # KServe's inferenceservice-config, got by name
}


def cycle(name: str, *, dry_run: bool = False, replay: tuple | None = None,
          may_write: Callable[[], bool] = lambda: True) -> tuple[CycleResult, Replay, list[dict]]:
    kube, recorded = replay or replaying(name)
    with structlog.testing.capture_logs() as events:
        result = run_cycle(kube, settings_for(name), dry_run=dry_run, may_write=may_write, now=lambda: NOW)
    return result, recorded, events


def logged(events: list[dict], text: str) -> list[dict]:
    return [e for e in events if text in e["event"]]


def texts(images: str) -> list[str]:
    return [e.text for e in parse_images(images)]


# -- listing ------------------------------------------------------------------------------------


def test_every_enabled_kind_is_listed_and_counted_once():
    """tests/integration/test_once.py::test_each_source_contributes_what_it_should,
    test_dry_run_shows_the_ranked_plan_and_writes_nothing"""
    result, replay, _ = cycle("write", dry_run=True)
    assert result.listed == SAMPLE_COUNTS and result.failed == {} and result.missing == {}
    # discovery of the two groups read at several versions and of the versions they are read at
    # (4), the DSCInitialization, 11 lists, KServe's ConfigMap, the CR, the start-up summary, the
    # Pulled events, and the puller's Deployment and DaemonSet (GET by name)
    assert result.requests == len(replay.sent) == 22
    assert [e.path for e in replay.requests("GET", "/apis/serving.kserve.io/v1alpha2/")] == [
        "/apis/serving.kserve.io/v1alpha2/llminferenceserviceconfigs", "/apis/serving.kserve.io/v1alpha2/llminferenceservices"]
    events = replay.requests("GET", "/api/v1/events")
    assert [e.query for e in events] == [{"fieldSelector": "reason=Pulled", "limit": "500"}]
    assert replay.requests("GET", "/api/v1/namespaces/prepull-agent/configmaps/prepull-agent-startup")
    assert replay.requests("PATCH") == [] and result.written == 0


def test_a_list_is_read_page_by_page_following_the_continue_tokens():
    """tests/integration/test_faults.py::test_a_transient_fault_on_a_read_is_retried[page-*]
    (the agent reads pages of 2 there)"""
    result, replay, _ = cycle("pages", dry_run=True)
    assert result.listed == {KindName.NOTEBOOK: 7, KindName.NODE: 4}
    pages = replay.requests("GET", NOTEBOOKS)
    assert [p.query.get("continue", "") != "" for p in pages] == [False, True, True, True]
    for asked, answered in zip(pages[1:], pages, strict=False):
        assert asked.query["continue"] == answered.answer["metadata"]["continue"]


# -- a kind that cannot be listed ---------------------------------------------------------------


def test_a_failed_kind_keeps_what_it_supplied():
    """Notebooks denied (a real 403) after a complete cycle: every entry stays, nothing is
    written, and the warning says to check the RBAC.
    tests/integration/test_once.py::test_a_denied_source_never_shrinks_the_list"""
    result, replay, events = cycle("notebooks-denied")
    (outcome,) = result.outcomes
    assert set(result.failed) == {KindName.NOTEBOOK}
    assert "HTTP 403" in result.failed[KindName.NOTEBOOK] and "cannot list resource \"notebooks\"" in (
        result.failed[KindName.NOTEBOOK])
    assert outcome.plan is not None and outcome.plan.desired.images == outcome.plan.current.images
    assert not outcome.plan.changed and not outcome.written and replay.requests("PATCH") == []
    kept = [c for c in outcome.plan.candidates if c.reason == "kept: Notebook could not be listed this cycle"]
    assert kept and all(c.selected and c.managed for c in kept)
    (warning,) = logged(events, "listing failed")
    assert warning["kind"] == KindName.NOTEBOOK and "check the agent's RBAC" in warning["event"]


def test_a_kind_that_is_not_served_is_missing_not_failed():
    """The LLMInferenceService CRD removed: its list answers 404 and discovery no longer
    names it. tests/integration/test_once.py::test_a_missing_crd_is_skipped_with_one_warning,
    tests/integration/test_faults.py::test_a_crd_removed_mid_run_is_reported_missing"""
    result, replay, events = cycle("crd-missing")
    assert set(result.missing) == {KindName.LLM_INFERENCE_SERVICE} and result.failed == {}
    # neither v1alpha2 (still served for LLMInferenceServiceConfig) nor v1alpha1 (for the runtimes)
    # lists it: its list at the preferred v1alpha2 answers 404 and discovery agrees
    paths = [e.path for e in replay.requests("GET", "/apis/serving.kserve.io/v1alpha")]
    asked = [p for p in paths if p in ("/apis/serving.kserve.io/v1alpha2", "/apis/serving.kserve.io/v1alpha1",
                                       "/apis/serving.kserve.io/v1alpha2/llminferenceservices")]
    assert asked == ["/apis/serving.kserve.io/v1alpha2", "/apis/serving.kserve.io/v1alpha1",
                     "/apis/serving.kserve.io/v1alpha2/llminferenceservices"]
    assert len(logged(events, "kind not served")) == 1
    assert result.ok and result.outcomes[0].plan is not None and not result.outcomes[0].plan.failed_sources


def no_answer_for(replay: Replay, path: str, mocker) -> list[str]:
    """Make every request to `path` get no answer (a reset connection); the others go on."""
    answer = replay.call_api
    tried: list[str] = []

    def reset(p: str, method: str, **kw):
        if p.startswith(path):
            tried.append(p)
            raise urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
        return answer(p, method, **kw)

    mocker.patch.object(replay, "call_api", side_effect=reset)
    return tried


def test_a_server_that_stops_answering_is_not_asked_for_the_remaining_kinds(mocker):
    """The Notebooks list gets no answer three times (one try, two retries): the kinds after
    it are not tried and count as failed, so nothing they supplied is dropped.
    tests/integration/test_faults.py::test_a_failing_source_keeps_every_entry[reset-list]"""
    kube, replay = replaying("write")
    tried = no_answer_for(replay, NOTEBOOKS, mocker)
    result, _, events = cycle("write", dry_run=True, replay=(kube, replay))
    assert len(tried) == 3
    after = [KindName.SERVING_RUNTIME, KindName.CLUSTER_SERVING_RUNTIME, KindName.TEMPLATE,
             KindName.INFERENCE_SERVICE, KindName.LLM_INFERENCE_SERVICE_CONFIG, KindName.LLM_INFERENCE_SERVICE,
             KindName.CLUSTER_STORAGE_CONTAINER, KindName.NODE, KindName.CONFIG_MAP]
    assert set(result.failed) == {KindName.NOTEBOOK, *after}
    assert all(result.failed[k].startswith("not listed: ") for k in after)  # KServe's ConfigMap too
    assert set(result.listed) == {KindName.IMAGE_STREAM}
    assert logged(events, "the API server stopped answering")
    plan = result.outcomes[0].plan
    assert plan is not None and texts(plan.desired.images) == [ADMIN_ENTRY]  # nothing new: a partial view


# -- writing --------------------------------------------------------------------------------------


def test_a_write_is_one_merge_patch_carrying_the_resource_version_read():
    """tests/integration/test_once.py::test_once_writes_the_list_and_keeps_the_administrator_entry,
    test_a_conflicting_edit_is_never_overwritten"""
    result, replay, events = cycle("write")
    (outcome,) = result.outcomes
    assert outcome.written and result.ok
    (read,) = replay.requests("GET", PULLERS)
    (patch,) = replay.requests("PATCH")
    assert patch.path == read.path
    assert patch.body["metadata"]["resourceVersion"] == read.answer["metadata"]["resourceVersion"]
    assert texts(patch.body["spec"]["images"])[0] == ADMIN_ENTRY  # the administrator's entry, first, verbatim
    assert outcome.plan is not None and patch.body["spec"]["images"] == outcome.plan.desired.images
    (updated,) = logged(events, "puller updated")
    assert updated["attempt"] == 1 and updated["removed"] == [] and len(updated["added"]) == len(
        outcome.plan.desired.entries) - 1
    (posted,) = replay.requests("POST", "/apis/events.k8s.io/v1/namespaces/rec-write/events")
    assert (posted.body["type"], posted.body["reason"]) == ("Normal", "ImagesUpdated")
    assert posted.body["note"] == f"Added {', '.join(updated['added'])}. The puller recreates its DaemonSet on every node."
    assert posted.body["regarding"]["uid"] == read.answer["metadata"]["uid"]
    assert all(r.query == {"fieldManager": "prepull-agent"} for r in (patch, posted))


def test_a_cycle_that_changes_nothing_writes_nothing():
    """tests/integration/test_once.py::test_a_second_run_writes_nothing"""
    kube, replay = replaying("write")
    first, _, _ = cycle("write", replay=(kube, replay))
    second, _, events = cycle("write", replay=(kube, replay))
    assert first.written == 1 and second.written == 0 and second.ok
    assert second.outcomes[0].plan is not None and not second.outcomes[0].plan.changed
    assert len(replay.requests("PATCH")) == 1 and replay.unanswered() == []
    assert logged(events, "cycle finished")[0]["changed"] == 0


def test_a_dry_run_writes_nothing_and_says_what_it_would_write():
    """tests/integration/test_serve.py::test_serve_dry_run_serves_the_plan_and_logs_what_it_would_write"""
    result, replay, events = cycle("write", dry_run=True)
    assert replay.requests("PATCH") == [] and result.written == 0
    (would,) = logged(events, "dry run: would write the puller")
    plan = result.outcomes[0].plan
    assert plan is not None and len(would["added"]) == len(plan.desired.entries) - 1


def test_an_edit_between_read_and_write_is_re_read_and_survives():
    """The administrator's edit made the write meet a real 409: the agent reads the CR again,
    plans again, and writes with both of the administrator's entries first, verbatim.
    tests/integration/test_faults.py::test_edits_made_between_read_and_write_survive,
    test_a_conflict_once_is_re_read_and_re_planned"""
    result, replay, events = cycle("conflict-once")
    (outcome,) = result.outcomes
    assert outcome.written and not outcome.error
    first, second = replay.requests("PATCH")
    assert [e.status for e in (first, second)] == [409, 200]
    assert len(replay.requests("GET", PULLERS)) == 2
    assert texts(second.body["spec"]["images"])[:2] == [THEIRS, ADDED]
    assert second.body["metadata"]["resourceVersion"] != first.body["metadata"]["resourceVersion"]
    assert logged(events, "re-reading it") and logged(events, "puller updated")[0]["attempt"] == 2


def test_a_second_conflict_gives_up_for_this_cycle():
    """tests/integration/test_faults.py::test_a_conflict_every_time_gives_up_and_leaves_the_cr_untouched"""
    result, replay, events = cycle("conflict-always")
    (outcome,) = result.outcomes
    assert not outcome.written and "409 twice" in outcome.error and not result.ok
    assert [e.status for e in replay.requests("PATCH")] == [409, 409]
    assert logged(events, "gave up for this cycle")


def test_a_denied_write_is_that_targets_error_and_not_retried():
    """tests/integration/test_faults.py::test_a_failed_write_is_not_retried_and_changes_nothing,
    tests/integration/test_admin.py::test_an_admission_denial_of_the_write_shows_the_servers_message"""
    result, replay, events = cycle("write-denied")
    (outcome,) = result.outcomes
    assert not outcome.written and outcome.error.startswith("write failed: PATCH ")
    assert "HTTP 403" in outcome.error and "cannot patch resource \"kubernetesimagepullers\"" in outcome.error
    assert len(replay.requests("PATCH")) == 1
    assert logged(events, "writing the puller failed")


def test_a_replica_without_the_lease_writes_nothing():
    """tests/integration/test_leader.py::test_a_lost_lease_never_writes"""
    result, replay, events = cycle("write", may_write=lambda: False)
    (outcome,) = result.outcomes
    assert outcome.error == NOT_THE_LEADER and not outcome.written
    assert replay.requests("PATCH") == []
    assert logged(events, "does not hold the lease")


def test_a_lease_lost_after_a_conflict_stops_the_second_write():
    """tests/integration/test_leader.py::test_a_lease_lost_after_a_conflict_stops_the_retry"""
    answers = iter([True, False])
    result, replay, _ = cycle("conflict-once", may_write=lambda: next(answers))
    assert result.outcomes[0].error == NOT_THE_LEADER
    assert [e.status for e in replay.requests("PATCH")] == [409]


# -- targets -----------------------------------------------------------------------------------------


def test_a_target_that_is_not_a_valid_puller_is_skipped_and_the_next_is_written():
    """tests/integration/test_node_pools.py::test_a_malformed_placement_field_is_a_clear_error_that_changes_nothing"""
    result, replay, events = cycle("two-targets")
    bad, good = result.outcomes
    assert bad.plan is None and not bad.written
    assert bad.error.startswith("skipped, nothing written: KubernetesImagePuller rec-bad-selector/image-puller: "
                                "spec.nodeSelector")
    assert good.written and not good.error
    assert [p.path for p in replay.requests("PATCH")] == [f"{PULLERS}rec-good/kubernetesimagepullers/image-puller"]
    assert logged(events, "target skipped this cycle")


def test_a_missing_target_ends_the_cycle_before_anything_is_written():
    """tests/integration/test_once.py::test_a_missing_target_fails_with_a_clear_message,
    tests/integration/test_admin.py::test_a_missing_target_says_create_true_needs_a_grant_the_shipped_rbac_lacks"""
    kube, replay = replaying("target-missing")
    with pytest.raises(TargetMissing, match="KubernetesImagePuller rec-write/no-such-puller does not exist"):
        cycle("target-missing", replay=(kube, replay))
    assert replay.requests("PATCH") == [] and replay.requests("POST") == []


def test_refused_credentials_end_the_cycle_at_the_first_request():
    """tests/integration/test_admin.py::test_a_refused_token_is_one_message_log_in_again_and_exit_3"""
    kube, replay = replaying("unauthorized")
    with pytest.raises(Unauthorized):
        cycle("unauthorized", replay=(kube, replay))
    assert len(replay.sent) == 1


def test_serve_logs_refused_credentials_as_once_says_them_not_as_a_bare_status():
    """A 401 in `serve` is one error line that says what to do, as `once` prints it."""
    kube, _ = replaying("unauthorized")
    serving = Agent(settings_for("unauthorized"), kube=kube, exit_process=lambda code: None)
    with structlog.testing.capture_logs() as events:
        serving.run_one()
    failed = logged(events, "cycle failed")
    assert len(failed) == 1 and failed[0]["error"] == "Unauthorized"
    assert "refused the credentials (HTTP 401: expired or wrong token)" in failed[0]["reason"]
    assert "log in again (oc login) or renew the token" in failed[0]["reason"]
    assert serving.consecutive_failures == 1


def test_there_is_one_recording_per_scenario_and_each_says_what_it_is():
    """tests/harness/record.py makes them; tests/integration/test_recorded.py checks them."""
    assert sorted(p.stem for p in RECORDED.glob("*.json")) == sorted(DEFINITIONS)
    for name in DEFINITIONS:
        scenario = load(name)
        assert scenario.name == name and scenario.exchanges
        assert scenario.description == describe(DEFINITIONS[name])
