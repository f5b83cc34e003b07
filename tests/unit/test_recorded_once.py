"""`prepull-agent once` end to end over what the real API server answered: the exit code and
the one line on standard error for each way a run ends, and what it prints.

`agent.cli.main` runs as a CronJob would run it, with a configuration file of the
recording's settings; only the connection is the replay of a recording
(tests/data/recorded, tests/harness/record.py) instead of a socket. Faults no recording
holds (no answer at all) are injected into the transport. Each test names the integration
test that shows the same against the real server.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import structlog
import urllib3
import yaml

from agent import cli
from agent.exits import Exit
from agent.kube.client import Kube
from tests.harness.record import DEFINITIONS, SOURCES
from tests.harness.recorded import Replay, load


def config_for(name: str, directory: Path) -> Path:
    """A configuration file of the settings scenario NAME was recorded with."""
    d = DEFINITIONS[name]
    doc = {
        "targets": [{"namespace": t.split("/")[0], "name": t.split("/")[1]} for t in d.targets],
        "kube": {"page_size": d.page_size},
        "sources": {s: s in d.sources for s in SOURCES},
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def once(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path):
    """`once(NAME, *args)` -> (code, stdout, stderr, replay): `prepull-agent once` over the
    recording NAME. `replay=` reuses one (a second run after the first)."""
    for var in [v for v in os.environ if v.startswith("PREPULL_")]:
        monkeypatch.delenv(var)
    monkeypatch.setattr("agent.cli.logs.configure", lambda **_: None)

    def run(name: str, *args: str, replay: Replay | None = None) -> tuple[int, str, str, Replay]:
        replay = replay or Replay(load(name))
        monkeypatch.setattr(cli, "connect", lambda **_: Kube(replay, sleep=lambda _: None))
        with structlog.testing.capture_logs():  # the log is not what these tests read
            code = cli.main(["once", *args, "--config", str(config_for(name, tmp_path))])
        out, err = capsys.readouterr()
        return code, out, err, replay

    return run


def no_answer(replay: Replay, mocker) -> None:
    mocker.patch.object(replay, "call_api", side_effect=urllib3.exceptions.NewConnectionError(
        None, "Failed to establish a new connection: [Errno 111] Connection refused"))


# -- the exit codes, as the README's table says them ---------------------------------------------


def test_a_complete_run_exits_0_and_a_second_writes_nothing(once):
    """tests/integration/test_admin.py::test_a_complete_run_exits_0,
    tests/integration/test_once.py::test_a_second_run_writes_nothing"""
    code, out, err, replay = once("write", "--output", "json")
    assert (code, err) == (Exit.OK, "")
    (target,) = json.loads(out)["targets"]
    assert target["written"] is True
    code, out, _, _ = once("write", "--output", "json", replay=replay)
    assert code == Exit.OK and json.loads(out)["targets"][0]["changed"] is False


@pytest.mark.parametrize(("args", "done"), [((), "done"), (("--dry-run",), "planned")])
def test_a_run_that_could_not_list_a_kind_exits_8_and_says_which(once, args, done):
    """tests/integration/test_once.py::test_a_denied_source_never_shrinks_the_list,
    tests/integration/test_admin.py::test_a_dry_run_that_could_not_list_everything_exits_8"""
    code, _, err, _ = once("notebooks-denied", *args)
    assert code == Exit.PARTIAL == 8
    assert err == (f"prepull-agent: {done}, but 1 kind(s) could not be listed (Notebook); the images the agent "
                   "manages from them were kept\n")


@pytest.mark.parametrize(("name", "says"), [
    ("write-denied", "prepull-agent: rec-no-patch/image-puller: write failed: PATCH "),
    ("conflict-always", "prepull-agent: rec-conflict-always/image-puller: the CR kept changing while the agent "
                        "wrote it (409 twice)"),
])
def test_a_list_that_could_not_be_written_exits_5(once, name, says):
    """tests/integration/test_faults.py::test_a_failed_write_is_not_retried_and_changes_nothing,
    test_a_conflict_every_time_gives_up_and_leaves_the_cr_untouched"""
    code, _, err, _ = once(name)
    assert code == Exit.WRITE == 5
    assert err.startswith(says) and err.count("\n") == 1


@pytest.mark.parametrize(("name", "says"), [
    ("target-missing", "prepull-agent: KubernetesImagePuller rec-write/no-such-puller does not exist: create it"),
    ("target-denied", "prepull-agent: access denied: GET /apis/che.eclipse.org/v1alpha1/namespaces/rec-no-get/"
                      "kubernetesimagepullers/image-puller: HTTP 403: "),
    ("two-targets", "prepull-agent: rec-bad-selector/image-puller: skipped, nothing written: KubernetesImagePuller "
                    "rec-bad-selector/image-puller: spec.nodeSelector is not a JSON object"),
])
def test_a_puller_missing_unreadable_or_denied_exits_4(once, name, says):
    """tests/integration/test_once.py::test_a_missing_target_fails_with_a_clear_message,
    tests/integration/test_node_pools.py::test_a_malformed_placement_field_is_a_clear_error_that_changes_nothing,
    tests/integration/test_manifests.py::test_the_service_account_cannot_touch_other_pullers_secrets_or_workloads"""
    code, _, err, _ = once(name)
    assert code == Exit.TARGET == 4
    assert err.startswith(says) and err.count("\n") == 1
    if name == "target-denied":
        assert err.endswith("(check the agent's RBAC)\n")


def test_refused_credentials_exit_3_and_say_log_in_again(once):
    """tests/integration/test_admin.py::test_a_refused_token_is_one_message_log_in_again_and_exit_3"""
    code, out, err, _ = once("unauthorized")
    assert code == Exit.UNREACHABLE == 3 and out == ""
    assert "refused the credentials (HTTP 401: expired or wrong token)" in err
    assert "log in again (oc login) or renew the token" in err and err.count("\n") == 1


def test_a_server_that_does_not_answer_exits_3_naming_it(once, mocker):
    """tests/integration/test_once.py::test_an_unreachable_api_server_exits_3,
    tests/integration/test_faults.py::test_the_api_server_killed_mid_cycle"""
    replay = Replay(load("write"))
    no_answer(replay, mocker)
    code, out, err, _ = once("write", replay=replay)
    assert code == Exit.UNREACHABLE and out == ""
    assert err.startswith("prepull-agent: cannot use the API server at https://recorded.invalid: GET /apis/che.eclipse"
                          ".org/v1alpha1/namespaces/rec-write/kubernetesimagepullers/image-puller: no answer: ")


# -- what it prints -------------------------------------------------------------------------------------


def test_a_dry_run_prints_the_ranked_table_the_diff_and_writes_nothing(once):
    """tests/integration/test_once.py::test_the_table_output_has_ranks_reasons_and_a_diff,
    test_dry_run_shows_the_ranked_plan_and_writes_nothing"""
    code, out, _, replay = once("write", "--dry-run", "--output", "table")
    assert code == Exit.OK and replay.requests("PATCH") == []
    assert out.startswith("KubernetesImagePuller rec-write/image-puller: 10 images selected")
    table = out.split("\n\n")[1].splitlines()
    assert table[0].split() == ["#", "IMAGE", "SCORE", "SIZE", "USED", "BY", "PULL", "SAVED/DAY", "DECISION"]
    rank, image = table[1].split()[:2]
    assert (rank, image[:19]) == ("1", "registry.redhat.io/") and table[1].endswith("rank 1, score 24")
    assert all(len(line) <= 120 for line in table)
    assert "--- spec.images (now)\n+++ spec.images (planned)\n" in out
    assert "\n ubi-minimal=registry.access.redhat.com/ubi9/ubi-minimal:latest;\n+" in out  # kept, first
    assert "\nDry run: nothing written.\n" in out


def test_a_run_that_could_not_list_a_kind_says_so_in_the_table(once):
    """tests/integration/test_once.py::test_a_denied_source_never_shrinks_the_list"""
    _, out, _, _ = once("notebooks-denied", "--output", "table")
    assert "\nWarning: Notebook could not be listed (GET /apis/kubeflow.org/v1/notebooks: HTTP 403: " in out
    assert "images the agent manages are kept." in out
    assert "spec.images: no change.\nNothing to write." in out


def test_the_json_document_carries_the_cycle_and_each_targets_outcome(once):
    """tests/integration/test_once.py::test_dry_run_shows_the_ranked_plan_and_writes_nothing,
    tests/integration/test_node_pools.py::test_a_malformed_placement_field_is_a_clear_error_that_changes_nothing"""
    _, out, _, _ = once("two-targets", "--output", "json")
    doc = json.loads(out)
    assert doc["dry_run"] is False and doc["cycle"]["listed"] == {"Notebook": 7}
    # DSCInitialization discovery (group, v2) and list, Notebooks, two CRs, the write, the
    # start-up summary and the Pulled events; the good target's Deployment, DaemonSet and Event
    assert doc["cycle"]["requests"] == 12
    bad, good = doc["targets"]
    assert list(bad) == list(good)  # one shape, whether the CR could be read or not
    assert bad["candidates"] == [] and bad["written"] is False and "spec.nodeSelector" in bad["error"]
    assert good["written"] is True and good["images_after"].startswith("ubi-minimal=")
