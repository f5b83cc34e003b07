"""`agent.kube`: the one edge to the API server, over what the real server answered.

The errors are the real server's own answers (every error recorded in tests/data/recorded:
401, 403, 404 in JSON and in plain text, 409), mapped to the classes the rest of the agent
catches. Faults a recording cannot hold (a 5xx, a 429 with Retry-After, no answer at all)
are injected into the transport, in front of the recorded answer. Each test names the
integration test that shows the same against the real server.
"""

from __future__ import annotations

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from agent.kube import errors
from agent.kube.client import Kube
from tests.harness.record import DEFINITIONS
from tests.harness.recorded import Answer, Exchange, Replay, Scenario, load, replaying

DSCI = "/apis/dscinitialization.opendatahub.io/v1/dscinitializations"
NOTEBOOKS = "/apis/kubeflow.org/v1/notebooks"
PULLER = "/apis/che.eclipse.org/v1alpha1/namespaces/rec-write/kubernetesimagepullers/image-puller"

RECORDED_ERRORS = [(name, e) for name in DEFINITIONS for e in load(name).exchanges if e.status >= 400]
CLASSES = {401: errors.Unauthorized, 403: errors.Forbidden, 404: errors.NotFound, 409: errors.Conflict}


def faults_first(replay: Replay, faults: list[BaseException], mocker) -> None:
    """Answer the first requests with `faults` (raised as the official client raises them),
    then from the recording."""
    answer, pending = replay.call_api, list(faults)

    def call(path: str, method: str, **kw) -> Answer:
        if pending:
            raise pending.pop(0)
        return answer(path, method, **kw)

    mocker.patch.object(replay, "call_api", side_effect=call)


def kube_over(name: str, mocker, faults: list[BaseException]) -> tuple[Kube, Replay, list[float]]:
    _, replay = replaying(name)
    slept: list[float] = []
    faults_first(replay, faults, mocker)
    return Kube(replay, sleep=slept.append), replay, slept


def status(code: int, *, retry_after: str | None = None) -> ApiException:
    e = ApiException(status=code, reason="")
    e.headers = {"Retry-After": retry_after} if retry_after else {}
    return e


@pytest.mark.parametrize(("name", "exchange"), RECORDED_ERRORS,
                         ids=[f"{n}-{e.method}-{e.status}" for n, e in RECORDED_ERRORS])
def test_each_error_the_server_gave_is_its_class_with_the_servers_own_message(name: str, exchange: Exchange):
    """Sent again through `Kube`, each recorded error answer raises the class for its status
    with the server's `Status.message` (or, for a path nothing serves, its text), once: no
    retry for a 4xx. tests/integration/test_once.py::test_a_denied_source_never_shrinks_the_list,
    tests/integration/test_faults.py::test_a_conflict_once_is_re_read_and_re_planned,
    tests/integration/test_admin.py::test_a_refused_token_is_one_message_log_in_again_and_exit_3,
    tests/integration/test_once.py::test_a_missing_crd_is_skipped_with_one_warning"""
    kube = Kube(Replay(Scenario(name, "one answer", [exchange])))
    send = {"GET": lambda: kube.get(exchange.path, query=exchange.query),
            "PATCH": lambda: kube.patch_merge(exchange.path, exchange.body)}[exchange.method]
    with pytest.raises(CLASSES[exchange.status]) as raised:
        send()
    said = exchange.answer["message"] if isinstance(exchange.answer, dict) else exchange.answer.strip()
    assert raised.value.message == said and raised.value.status == exchange.status
    assert str(raised.value) == f"{exchange.method} {exchange.path}: HTTP {exchange.status}: {said}"
    assert kube.requests == 1


def test_the_recorded_errors_include_every_class_the_agent_acts_on():
    assert {e.status for _, e in RECORDED_ERRORS} == set(CLASSES)
    assert any(isinstance(e.answer, str) for _, e in RECORDED_ERRORS)  # the plain-text 404


@pytest.mark.parametrize("fault", [status(500), status(503), status(429, retry_after="1.5"),
                                   urllib3.exceptions.ProtocolError("Connection aborted."),
                                   ConnectionResetError(104, "Connection reset by peer")],
                         ids=["500", "503", "429", "cut", "reset"])
def test_a_read_is_retried_after_a_passing_fault(mocker, fault):
    """tests/integration/test_faults.py::test_a_transient_fault_on_a_read_is_retried"""
    kube, replay, slept = kube_over("write", mocker, [fault])
    doc = kube.get(DSCI)
    assert doc["kind"] == "DSCInitializationList" and kube.requests == 2
    assert slept == ([1.5] if getattr(fault, "status", 0) == 429 else [0.25])


def test_a_read_that_keeps_failing_is_tried_three_times_with_growing_pauses(mocker):
    """tests/integration/test_faults.py::test_a_failing_source_keeps_every_entry"""
    kube, _, slept = kube_over("write", mocker, [status(503)] * 3)
    with pytest.raises(errors.ServerError) as failed:
        kube.get(DSCI)
    assert failed.value.status == 503 and kube.requests == 3 and slept == [0.25, 0.5]


def test_retry_after_is_honoured_up_to_ten_seconds(mocker):
    kube, _, slept = kube_over("write", mocker, [status(429, retry_after="120"), status(429, retry_after="soon")])
    kube.get(DSCI)
    assert slept == [10.0, 0.5]  # capped; unreadable: the usual pause


@pytest.mark.parametrize("fault", [status(500), status(409), urllib3.exceptions.ProtocolError("Connection aborted.")],
                         ids=["500", "409", "cut"])
def test_a_write_is_never_retried(mocker, fault):
    """tests/integration/test_faults.py::test_a_failed_write_is_not_retried_and_changes_nothing,
    test_a_write_whose_answer_is_lost_leaves_exactly_the_plan"""
    kube, replay, slept = kube_over("write", mocker, [fault])
    with pytest.raises(errors.KubeError):
        kube.patch_merge(PULLER, {"spec": {"images": ";"}})
    assert kube.requests == 1 and slept == [] and replay.sent == []


@pytest.mark.parametrize("fault", [urllib3.exceptions.NewConnectionError(None, "Connection refused"),
                                   ApiException(status=0, reason="timed out")], ids=["refused", "no-status"])
def test_no_answer_at_all_is_unreachable(mocker, fault):
    """tests/integration/test_once.py::test_an_unreachable_api_server_exits_3"""
    kube, _, _ = kube_over("write", mocker, [fault] * 3)
    with pytest.raises(errors.Unreachable) as lost:
        kube.get(DSCI)
    assert lost.value.status == 0 and str(lost.value).startswith(f"GET {DSCI}: no answer: ")


def test_pages_are_asked_for_with_the_limit_and_the_previous_pages_token():
    """tests/integration/test_faults.py::test_a_transient_fault_on_a_read_is_retried[page-*]"""
    kube, replay = replaying("pages")
    pages = list(kube.list_pages(NOTEBOOKS, page_size=2))
    assert [len(p.items) for p in pages] == [2, 2, 2] and all(p.unread == () for p in pages)
    asked = replay.requests("GET", NOTEBOOKS)
    assert [e.query["limit"] for e in asked] == ["2", "2", "2"]
    assert [e.query.get("continue") for e in asked[1:]] == [p.meta["continue"] for p in pages[:2]]
    assert "continue" not in pages[-1].meta or not pages[-1].meta["continue"]


def test_a_request_that_was_never_recorded_is_refused_not_made_up():
    kube, _ = replaying("write")
    with pytest.raises(AssertionError, match="not in scenario 'write'"):
        kube.get("/api/v1/namespaces")
