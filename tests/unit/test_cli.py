"""The command line without a cluster: strict environment fallbacks, one-line failures at
start (kubeconfig, port), the credential order kubectl follows, the exit-code table, and
--version. What needs a real API server is in tests/integration/test_admin.py."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from agent import cli
from agent.exits import MEANING, Exit, table
from agent.kube.client import ConfigError, connect
from agent.version import VERSION

REPO_ROOT = Path(__file__).resolve().parents[2]

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: '%s'}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: %s, context: {cluster: c, user: u}}]
current-context: %s
"""


def kubeconfig(path: Path, *, server: str = "https://127.0.0.1:1", context: str = "ctx") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(KUBECONFIG % (server, context, context))
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No PREPULL_*, no KUBECONFIG, an empty HOME, not in a pod."""
    import os

    for var in [v for v in os.environ if v.startswith("PREPULL_") or v in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr("agent.cli.logs.configure", lambda **_: None)
    return monkeypatch


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().err


# -- 1. every flag's variable is read as strictly as the configuration file ------------------


@pytest.mark.parametrize(
    ("variable", "value", "accepted"),
    [
        ("PREPULL_DRY_RUN", "ture", "true or false"),
        ("PREPULL_DRY_RUN", "y", "true or false"),
        ("PREPULL_OUTPUT", "yaml", "table, wide, json"),
        ("PREPULL_LOG_FORMAT", "xml", "auto, console, json"),
        ("PREPULL_LOG_LEVEL", "loud", "debug, info, warning, error"),
    ],
)
def test_an_unknown_value_in_a_flags_variable_stops_the_agent(clean_env, capsys, variable, value, accepted):
    clean_env.setenv(variable, value)
    code, err = run(capsys, "once")
    assert code == Exit.USAGE == 2
    assert err.count("\n") == 1, err
    assert f"{variable}={value!r}" in err and accepted in err


def test_a_typo_in_the_dry_run_variable_never_writes(clean_env, capsys, mocker, tmp_path):
    """The reported case: PREPULL_DRY_RUN=ture used to read as false and write for real."""
    cycle = mocker.patch("agent.cycle.run_cycle")
    clean_env.setenv("PREPULL_DRY_RUN", "ture")
    assert run(capsys, "once", "--kubeconfig", str(kubeconfig(tmp_path / "k")))[0] == Exit.USAGE
    cycle.assert_not_called()


@pytest.mark.parametrize(
    ("value", "expected"), [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("false", False),
                            ("0", False), ("No", False), ("", False)]
)
def test_the_dry_run_variable_takes_the_configuration_files_words(value, expected):
    args = cli._parser().parse_args(["once"])
    assert cli.options_from(args, {"PREPULL_DRY_RUN": value}).dry_run is expected


def test_a_flag_wins_over_its_variable():
    args = cli._parser().parse_args(["once", "--no-dry-run", "--output", "wide", "--log-level", "debug"])
    options = cli.options_from(args, {"PREPULL_DRY_RUN": "true", "PREPULL_OUTPUT": "yaml", "PREPULL_LOG_LEVEL": "x"})
    assert (options.dry_run, options.output, options.log_level) == (False, "wide", "debug")


def test_variables_fill_the_flags_left_out():
    args = cli._parser().parse_args(["once"])
    env = {"PREPULL_DRY_RUN": "yes", "PREPULL_OUTPUT": "JSON", "PREPULL_LOG_FORMAT": "console",
           "PREPULL_KUBECONFIG": "/k", "PREPULL_CONTEXT": "c", "PREPULL_TARGET": "a/b"}
    options = cli.options_from(args, env)
    assert options.dry_run and options.output == "json" and options.log_format == "console"
    assert (options.kubeconfig, options.kubeconfig_origin, options.context, options.target) == (
        "/k", "PREPULL_KUBECONFIG", "c", "a/b")


# -- 2. a broken kubeconfig or a busy port: one line, exit 2 or 3, no traceback ---------------


def test_a_broken_kubeconfig_is_one_line_naming_the_file_and_the_line(clean_env, capsys, tmp_path):
    broken = tmp_path / "kubeconfig"
    broken.write_text("apiVersion: v1\nclusters:\n  - name: c\n   cluster: {server: x}\n")
    code, err = run(capsys, "once", "--dry-run", "--kubeconfig", str(broken))
    assert code == Exit.UNREACHABLE
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert str(broken) in err and "not valid YAML" in err and "line 4" in err


def test_a_kubeconfig_without_the_context_asked_for_is_one_line(clean_env, capsys, tmp_path):
    code, err = run(capsys, "once", "--kubeconfig", str(kubeconfig(tmp_path / "k")), "--context", "nope")
    assert code == Exit.UNREACHABLE and err.count("\n") == 1, err
    assert "nope" in err and "cannot be used" in err


def test_a_wrong_kubeconfig_path_says_where_it_came_from(clean_env, capsys, tmp_path):
    code, err = run(capsys, "once", "--kubeconfig", str(tmp_path / "nowhere"))
    assert code == Exit.UNREACHABLE
    assert f"kubeconfig {tmp_path / 'nowhere'} (from --kubeconfig) does not exist" in err
    clean_env.setenv("PREPULL_KUBECONFIG", str(tmp_path / "elsewhere"))
    assert "(from PREPULL_KUBECONFIG) does not exist" in run(capsys, "once")[1]


def test_no_kubeconfig_at_all_says_every_place_looked_at(clean_env, capsys, tmp_path):
    code, err = run(capsys, "once", "--dry-run")
    assert code == Exit.UNREACHABLE and err.count("\n") == 1, err
    assert "$KUBECONFIG: not set" in err
    assert f"~/.kube/config: {tmp_path / 'home' / '.kube' / 'config'} (no such file)" in err
    assert "in-cluster: KUBERNETES_SERVICE_HOST is not set" in err
    assert "oc login" in err


def test_kubeconfig_files_that_do_not_exist_are_named(clean_env, capsys, tmp_path):
    clean_env.setenv("KUBECONFIG", f"{tmp_path}/a:{tmp_path}/b")
    err = run(capsys, "once")[1]
    assert f"$KUBECONFIG: {tmp_path}/a:{tmp_path}/b (no such file)" in err


def test_a_busy_metrics_port_is_one_line_and_exit_2(clean_env, capsys, tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("0.0.0.0", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        clean_env.setenv("PREPULL_SERVE__PORT", str(port))
        clean_env.setenv("POD_NAMESPACE", "prepull-agent")
        code, err = run(capsys, "serve", "--kubeconfig", str(kubeconfig(tmp_path / "k")))
    assert code == Exit.USAGE
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"port {port}" in err and "serve.port" in err and "PREPULL_SERVE__PORT" in err


def test_leader_election_without_a_namespace_is_one_line_and_exit_2(clean_env, capsys, tmp_path):
    code, err = run(capsys, "serve", "--kubeconfig", str(kubeconfig(tmp_path / "k")))
    assert code == Exit.USAGE and "POD_NAMESPACE" in err and err.count("\n") == 1


# -- 3. credentials in kubectl's order ------------------------------------------------------------


@pytest.fixture
def places(tmp_path: Path) -> dict[str, object]:
    """A kubeconfig in each place, each naming its own server, and a ServiceAccount dir."""
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("sa-token")
    (sa / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    home = tmp_path / "home"
    kubeconfig(home / ".kube" / "config", server="https://home.example:6443", context="home")
    return {
        "explicit": kubeconfig(tmp_path / "explicit", server="https://explicit.example:6443", context="explicit"),
        "env": kubeconfig(tmp_path / "env", server="https://env.example:6443", context="env"),
        "home": home,
        "sa": str(sa),
        "pod": {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"},
    }


def test_an_explicit_kubeconfig_wins_over_everything(places):
    env = {"KUBECONFIG": str(places["env"]), "HOME": str(places["home"]), **places["pod"]}
    kube = connect(kubeconfig=str(places["explicit"]), env=env, service_account_dir=places["sa"])
    assert (kube.credentials.source, kube.server, kube.credentials.context) == (
        "--kubeconfig", "https://explicit.example:6443", "explicit")


def test_kubeconfig_from_the_environment_wins_over_home_and_the_pods_service_account(places):
    """The reported case: after `oc login` in a web terminal, in-cluster credentials won."""
    env = {"KUBECONFIG": str(places["env"]), "HOME": str(places["home"]), **places["pod"]}
    kube = connect(env=env, service_account_dir=places["sa"])
    assert (kube.credentials.source, kube.server, kube.credentials.context) == (
        "$KUBECONFIG", "https://env.example:6443", "env")


def test_the_home_kubeconfig_wins_over_the_pods_service_account(places):
    kube = connect(env={"HOME": str(places["home"]), **places["pod"]}, service_account_dir=places["sa"])
    assert (kube.credentials.source, kube.server) == ("~/.kube/config", "https://home.example:6443")


def test_the_pods_service_account_is_the_last_resort(places, tmp_path):
    env = {"HOME": str(tmp_path / "nobody"), "KUBECONFIG": str(tmp_path / "missing"), **places["pod"]}
    kube = connect(env=env, service_account_dir=places["sa"])
    assert (kube.credentials.source, kube.server) == ("in-cluster", "https://10.0.0.1:443")
    assert str(kube.credentials) == f"in-cluster ServiceAccount ({places['sa']})"


def test_in_a_pod_without_a_token_the_message_says_where_it_looked(places, tmp_path):
    env = {"HOME": str(tmp_path / "nobody"), **places["pod"]}
    with pytest.raises(ConfigError) as e:
        connect(env=env, service_account_dir=str(tmp_path / "no-sa"))
    message = str(e.value)
    assert "\n" not in message
    assert "~/.kube/config" in message and str(tmp_path / "no-sa") in message and "token" in message.lower()


def test_a_context_needs_a_kubeconfig(places, tmp_path):
    with pytest.raises(ConfigError, match="--context other needs a kubeconfig"):
        connect(context="other", env={"HOME": str(tmp_path / "nobody"), **places["pod"]},
                service_account_dir=places["sa"])


def test_the_start_line_names_version_credentials_context_server_targets_and_config(clean_env, tmp_path, mocker):
    import structlog

    from agent.outcome import CycleResult

    mocker.patch("agent.cycle.run_cycle", return_value=CycleResult(outcomes=()))
    path = kubeconfig(tmp_path / "k", server="https://api.example:6443", context="admin")
    with structlog.testing.capture_logs() as events:
        cli.main(["once", "--dry-run", "--kubeconfig", str(path), "--target", "ns/puller"])
    (start,) = [e for e in events if e["event"] == "starting"]
    assert start["version"] == VERSION and start["command"] == "once" and start["dry_run"] is True
    assert (start["credentials"], start["kubeconfig"], start["context"], start["server"]) == (
        "--kubeconfig", str(path), "admin", "https://api.example:6443")
    assert start["targets"] == ["ns/puller"] and start["config"] == "(defaults)"


# -- the exit codes and --version ---------------------------------------------------------------


def test_one_exit_code_table_for_help_and_the_readme():
    assert set(MEANING) == set(Exit)
    assert table() in cli.EPILOG
    readme = (REPO_ROOT / "README.md").read_text()
    documented = dict(re.findall(r"^\| `(\d)` \| (.+?) \|$", readme, flags=re.M))
    assert documented == {str(int(code)): MEANING[code] for code in Exit}


def test_serve_and_once_share_the_exit_codes():
    from agent import loop

    assert (loop.EXIT_TOO_MANY_FAILURES, loop.EXIT_LEADERSHIP_LOST) == (Exit.SERVE_FAILURES, Exit.LEADERSHIP_LOST)


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"prepull-agent {VERSION}"
