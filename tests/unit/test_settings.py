"""Settings: defaults, file, environment and flags, and the messages an administrator sees."""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.settings import (
    CLI_VARIABLES,
    DiskBudget,
    LeaderElection,
    Selection,
    Settings,
    SettingsError,
    Sizes,
    Target,
    Weights,
    env_name,
    load_settings,
    with_target,
)

DEFAULT_YAML = Path(__file__).resolve().parents[2] / "config" / "default.yaml"
Gi, Mi = 1 << 30, 1 << 20


@pytest.fixture(autouse=True)
def _in_a_scratch_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # from_data writes c.yaml here


def from_data(data: Any) -> Settings:
    """Settings from `data` written as the YAML file c.yaml (so messages start "config c.yaml")."""
    Path("c.yaml").write_text(yaml.safe_dump(data))
    return load_settings("c.yaml", env={})


def from_env(**env: str) -> Settings:
    return load_settings(None, env=env)


def errors(call: Any) -> str:
    with pytest.raises(SettingsError) as caught:
        call()
    return str(caught.value)


def _setting_fields(cls: Any = Settings, path: str = "") -> Iterator[tuple[str, dataclasses.Field[Any], Any]]:
    """(dotted key, field, its class) of every setting, from the models' fields; the targets'
    keys appear as "targets[].namespace" etc., and DiskBudget is one setting."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key, kind = f"{path}.{f.name}" if path else f.name, hints[f.name]
        item = typing.get_args(kind)[0] if typing.get_origin(kind) is tuple else None
        if dataclasses.is_dataclass(kind) and kind is not DiskBudget:
            yield from _setting_fields(kind, key)
        elif dataclasses.is_dataclass(item):
            yield from _setting_fields(item, f"{key}[]")
        else:
            yield key, f, cls


def _leaves(data: Any, path: str = "") -> list[str]:
    if isinstance(data, dict):
        return [leaf for k, v in data.items() for leaf in _leaves(v, f"{path}.{k}" if path else k)]
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return _leaves(data[0], f"{path}[]")
    return [path]


# --- config/default.yaml -------------------------------------------------------------------


def test_default_yaml_loads_to_exactly_the_defaults() -> None:
    assert load_settings(DEFAULT_YAML, env={}) == Settings()


def test_default_yaml_sets_every_setting_in_declaration_order() -> None:
    in_file = _leaves(yaml.safe_load(DEFAULT_YAML.read_text()))
    assert in_file == [key for key, _, _ in _setting_fields()]


def test_default_yaml_explains_every_key_in_a_comment_above_it() -> None:
    lines = DEFAULT_YAML.read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"\s*(- )?\w+:", line):
            assert lines[number - 1].strip().startswith("#"), f"line {number + 1}: {line!r}"


def test_every_setting_has_a_one_line_description() -> None:
    for key, f, owner in _setting_fields():
        description = owner.__pydantic_fields__[f.name].description  # pydantic's record of the field
        assert description and "\n" not in description, key


# --- errors from the file ------------------------------------------------------------------

DATA_ERRORS = [
    pytest.param(
        {"selection": {"max_imgs": 3}},
        "config c.yaml: unknown key 'selection.max_imgs' (did you mean 'max_images'? known keys "
        "under 'selection': disk_budget, exclude, max_images, max_namespace_share, max_per_namespace, min_score, "
        "pinned, retain_margin)",
        id="unknown-nested-key",
    ),
    pytest.param(
        {"serve": {"leader_election": {"enable": True}}},
        "config c.yaml: unknown key 'serve.leader_election.enable' (did you mean 'enabled'? ",
        id="unknown-deeply-nested-key",
    ),
    pytest.param(
        {"scoring": {}},
        "config c.yaml: unknown key 'scoring' (known top-level keys: ",
        id="unknown-top-key",
    ),
    pytest.param(
        {"targets": [{"nmespace": "a"}]},
        "config c.yaml: unknown key 'targets[0].nmespace' (did you mean 'namespace'?",
        id="unknown-target-key",
    ),
    pytest.param(
        {"selection": {"max_images": "ten"}},
        "config c.yaml: selection.max_images must be an integer >= 0, got 'ten' (str)",
        id="wrong-type",
    ),
    pytest.param(
        {"selection": {"max_images": True}},
        "config c.yaml: selection.max_images must be an integer >= 0, got True (bool)",
        id="bool-is-not-an-int",
    ),
    pytest.param(
        {"selection": {"max_images": 1.0}},
        "config c.yaml: selection.max_images must be an integer >= 0, got 1.0 (float)",
        id="float-is-not-an-int",
    ),
    pytest.param(
        {"sources": {"nodes": 1}},
        "config c.yaml: sources.nodes must be true or false, got 1 (int)",
        id="int-is-not-a-bool",
    ),
    pytest.param(
        {"weights": {"running": True}},
        "config c.yaml: weights.running must be a number >= 0, got True (bool)",
        id="bool-is-not-a-number",
    ),
    pytest.param(
        {"weights": {"running": float("inf")}},
        "config c.yaml: weights.running must be a number >= 0, got inf (float)",
        id="infinite-number",
    ),
    pytest.param(
        {"selection": {"min_score": -1}},
        "config c.yaml: selection.min_score must be a number >= 0, got -1 (int)",
        id="below-range",
    ),
    pytest.param(
        {"selection": {"retain_margin": 1}},
        "config c.yaml: selection.retain_margin must be a number >= 0 and < 1, got 1 (int)",
        id="margin-of-one",
    ),
    pytest.param(
        {"kube": {"page_size": 5001}},
        "config c.yaml: kube.page_size must be an integer from 1 to 5000, got 5001 (int)",
        id="above-range",
    ),
    pytest.param(
        {"serve": {"port": 0}},
        "config c.yaml: serve.port must be an integer from 1 to 65535, got 0 (int)",
        id="port",
    ),
    pytest.param(
        {"serve": {"max_consecutive_failures": 0}},
        "config c.yaml: serve.max_consecutive_failures must be an integer >= 1, got 0 (int)",
        id="failures",
    ),
    pytest.param(
        {"serve": {"interval_seconds": 0}},
        "config c.yaml: serve.interval_seconds must be a number > 0, got 0 (int)",
        id="interval",
    ),
    pytest.param(
        {"logging": {"level": "verbose"}},
        "config c.yaml: logging.level must be one of debug, info, warning, error, got 'verbose' (str)",
        id="choice",
    ),
    pytest.param(
        {"selection": 5},
        "config c.yaml: selection must be a mapping of keys, got 5 (int)",
        id="section-not-a-mapping",
    ),
    pytest.param(
        {"selection": {"pinned": "quay.io/a:1"}},
        "config c.yaml: selection.pinned must be a list of image references such as "
        "quay.io/org/image:tag, got 'quay.io/a:1' (str)",
        id="list-not-a-string",
    ),
    pytest.param(
        {"selection": {"exclude": ["*:latest", " "]}},
        "config c.yaml: selection.exclude must be a list of non-empty strings, got ['*:latest', ' '] (list)",
        id="empty-list-item",
    ),
    pytest.param(
        {"references": {"allowed_registries": ["https://quay.io"]}},
        "config c.yaml: references.allowed_registries must be a list of registry hosts, each a "
        "domain with an optional port",
        id="registry-with-scheme",
    ),
    pytest.param(
        {"serve": {"cron": "*/15 * * *"}},
        "config c.yaml: serve.cron must be empty or a 5-field crontab expression (minute hour "
        "day month weekday, e.g. '0 */6 * * *'), got '*/15 * * *' (str): Wrong number of fields; "
        "got 4, expected 5",
        id="cron-fields",
    ),
    pytest.param(
        {"serve": {"cron": "61 * * * *"}},
        "config c.yaml: serve.cron must be empty or a 5-field crontab expression",
        id="cron-range",
    ),
    pytest.param(
        {"serve": {"cron": "0 3 * * 0"}},
        "got '0 3 * * 0' (str): write the weekday field with names (sun, mon-fri): APScheduler 3 "
        "counts weekday 0 as Monday, cron counts it as Sunday",
        id="cron-numeric-weekday",
    ),
    pytest.param(
        {"sizes": {"workbench": "6Gb"}},
        "config c.yaml: sizes.workbench must be a size (6Gi, 200Mi, 500M or bytes) > 0, got '6Gb' (str)",
        id="bad-quantity",
    ),
    pytest.param(
        {"sizes": {"sidecar": 0}},
        "config c.yaml: sizes.sidecar must be a size (6Gi, 200Mi, 500M or bytes) > 0, got 0 (int)",
        id="zero-size",
    ),
    pytest.param(
        {"selection": {"disk_budget": "lots"}},
        "config c.yaml: selection.disk_budget must be a size (120Gi, 500M or bytes), a percentage "
        "(25%), a fraction below 1 (0.25) or 'unlimited', got 'lots' (str)",
        id="bad-budget",
    ),
    pytest.param(
        {"selection": {"disk_budget": 1.5}},
        "got 1.5 (float): a plain number must be a fraction above 0 and below 1",
        id="budget-float-above-one",
    ),
    pytest.param(
        {"selection": {"disk_budget": "150%"}},
        "got '150%' (str): a percentage must be above 0 and at most 100",
        id="budget-percent-above-100",
    ),
    pytest.param(
        {"targets": [{"namespace": "a", "name": "b"}, {"namespace": "a", "name": "b"}]},
        "config c.yaml: targets[1] repeats a/b (already targets[0])",
        id="duplicate-targets",
    ),
    pytest.param(
        {"targets": [{"namespace": "a", "name": "cpu"}, {"namespace": "a", "name": "gpu"}]},
        "config c.yaml: targets[1] is a second KubernetesImagePuller in namespace a (targets[0] is a/cpu): "
        "the image puller operator allows one per namespace, so give each node pool's puller a namespace of its own",
        id="two-targets-in-one-namespace",
    ),
    pytest.param(
        {"targets": []},
        "config c.yaml: targets must be a non-empty list of mappings with keys create, name, "
        "namespace, got an empty list",
        id="no-targets",
    ),
    pytest.param(
        {"targets": {"namespace": "a"}},
        "config c.yaml: targets must be a non-empty list of mappings",
        id="targets-not-a-list",
    ),
    pytest.param(
        {"targets": [{"namespace": "Team_A"}]},
        "config c.yaml: targets[0].namespace must be a namespace name (DNS-1123 label: ",
        id="namespace-not-a-label",
    ),
    pytest.param(
        {"targets": [{"name": "a..b"}]},
        "config c.yaml: targets[0].name must be an object name (DNS-1123 subdomain: ",
        id="name-not-a-subdomain",
    ),
    pytest.param(
        {"applications_namespace": "x" * 64},
        "config c.yaml: applications_namespace must be empty or a namespace name",
        id="namespace-too-long",
    ),
    pytest.param(
        {"serve": {"leader_election": {"retry_period_seconds": 25}}},
        "config c.yaml: serve.leader_election.renew_deadline_seconds (20) must be greater than "
        "serve.leader_election.retry_period_seconds (25): ",
        id="lease-retry-above-renew",
    ),
    pytest.param(
        {"serve": {"leader_election": {"lease_duration_seconds": 20}}},
        "config c.yaml: serve.leader_election.lease_duration_seconds (20) must be greater than "
        "serve.leader_election.renew_deadline_seconds (20): ",
        id="lease-renew-equals-duration",
    ),
]


@pytest.mark.parametrize(("data", "message"), DATA_ERRORS)
def test_a_bad_value_is_reported_with_origin_key_and_what_is_accepted(
    data: Any, message: str
) -> None:
    actual = errors(lambda: from_data(data))
    assert actual.startswith(message) if message.startswith("config") else message in actual, actual


FILE_ERRORS = [
    pytest.param(
        "selection: [1,\n",
        "not valid YAML: while parsing a flow node expected the node content, but "
        "found '<stream end>' (line 2, column 1)",
        id="bad-yaml",
    ),
    pytest.param(
        "a: b\n  c: d\n",
        "not valid YAML: mapping values are not allowed here (line 2, column 4)",
        id="bad-indentation",
    ),
    pytest.param("- 1\n- 2\n", "the top level must be a mapping of keys, got a list", id="a-list"),
    pytest.param(
        "just words\n",
        "the top level must be a mapping of keys, got 'just words' (str)",
        id="a-string",
    ),
    pytest.param(
        "kube:\n  page_size: 1\n  page_size: 2\n",
        "not valid YAML: duplicate key 'page_size' (line 3, column 3)",
        id="duplicate-key",
    ),
]


@pytest.mark.parametrize(("text", "message"), FILE_ERRORS)
def test_a_bad_file_is_reported_with_its_path(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert errors(lambda: load_settings(path, env={})) == f"config {path}: {message}"


def test_a_missing_file_is_reported_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert (
        errors(lambda: load_settings(path, env={}))
        == f"config {path}: cannot read the file: No such file or directory"
    )


@pytest.mark.parametrize("text", ["", "# nothing set\n", "---\n", "selection:\n"])
def test_an_empty_file_or_section_means_the_defaults(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert load_settings(path, env={}) == Settings()


def test_yaml_merge_keys_may_be_overridden_without_a_duplicate_key_error(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    text = "selection:\n  <<: {max_images: 4, min_score: 1}\n  max_images: 7\n"
    path.write_text(text)
    assert load_settings(path, env={}).selection == Selection(max_images=7, min_score=1)


def test_a_file_sets_what_it_names_and_keeps_the_other_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "targets:\n  - {namespace: puller, name: main, create: true}\n  - {namespace: other, name: main}\n"
        "selection:\n  disk_budget: 120Gi\n  pinned: [quay.io/a:1]\n"
        "references:\n  allowed_registries: [Quay.IO, registry.example.com:5000]\n"
        "serve:\n  cron: '*/30 * * * mon-fri'\n"
    )
    settings = load_settings(path, env={})
    assert settings.targets == (Target("puller", "main", create=True), Target("other", "main"))
    assert settings.selection == Selection(
        disk_budget=DiskBudget(bytes=120 * Gi), pinned=("quay.io/a:1",)
    )
    assert settings.references.allowed_registries == ("quay.io", "registry.example.com:5000")
    assert settings.serve.cron == "*/30 * * * mon-fri"
    assert settings.weights == Weights()


# --- the environment -----------------------------------------------------------------------

ENV_OVERRIDES = [
    pytest.param(
        "PREPULL_APPLICATIONS_NAMESPACE",
        "opendatahub",
        lambda s: s.applications_namespace,
        "opendatahub",
        id="top-level-str",
    ),
    pytest.param(
        "PREPULL_SELECTION__MAX_IMAGES", " 20 ", lambda s: s.selection.max_images, 20, id="int"
    ),
    pytest.param(
        "PREPULL_SELECTION__MIN_SCORE", "2.5", lambda s: s.selection.min_score, 2.5, id="float"
    ),
    pytest.param(
        "PREPULL_KUBE__REQUEST_TIMEOUT_SECONDS",
        "10",
        lambda s: s.kube.request_timeout_seconds,
        10.0,
        id="float-from-int-text",
    ),
    pytest.param(
        "PREPULL_SERVE__LEADER_ELECTION__ENABLED",
        "false",
        lambda s: s.serve.leader_election.enabled,
        False,
        id="bool-false",
    ),
    pytest.param("PREPULL_SOURCES__NODES", "No", lambda s: s.sources.nodes, False, id="bool-no"),
    pytest.param("PREPULL_SOURCES__NODES", "0", lambda s: s.sources.nodes, False, id="bool-0"),
    pytest.param("PREPULL_SOURCES__NODES", "TRUE", lambda s: s.sources.nodes, True, id="bool-TRUE"),
    pytest.param("PREPULL_SOURCES__NODES", "yes", lambda s: s.sources.nodes, True, id="bool-yes"),
    pytest.param("PREPULL_SOURCES__NODES", "1", lambda s: s.sources.nodes, True, id="bool-1"),
    pytest.param(
        "PREPULL_SELECTION__PINNED",
        "quay.io/a:1, quay.io/b:2,",
        lambda s: s.selection.pinned,
        ("quay.io/a:1", "quay.io/b:2"),
        id="list",
    ),
    pytest.param(
        "PREPULL_SELECTION__EXCLUDE", "", lambda s: s.selection.exclude, (), id="empty-list"
    ),
    pytest.param(
        "PREPULL_REFERENCES__ALLOWED_REGISTRIES",
        "Quay.io",
        lambda s: s.references.allowed_registries,
        ("quay.io",),
        id="registries-lowercased",
    ),
    pytest.param(
        "PREPULL_SELECTION__DISK_BUDGET",
        "25%",
        lambda s: s.selection.disk_budget,
        DiskBudget(fraction=0.25),
        id="budget-percent",
    ),
    pytest.param(
        "PREPULL_SELECTION__DISK_BUDGET",
        "100Gi",
        lambda s: s.selection.disk_budget,
        DiskBudget(bytes=100 * Gi),
        id="budget-size",
    ),
    pytest.param(
        "PREPULL_SELECTION__DISK_BUDGET",
        "unlimited",
        lambda s: s.selection.disk_budget.resolve(10),
        None,
        id="budget-unlimited",
    ),
    pytest.param(
        "PREPULL_SIZES__MODELCAR", "140Gi", lambda s: s.sizes.modelcar, 140 * Gi, id="quantity"
    ),
    pytest.param(
        "PREPULL_SERVE__CRON", "0 */6 * * *", lambda s: s.serve.cron, "0 */6 * * *", id="cron"
    ),
    pytest.param(
        "PREPULL_LOGGING__FORMAT", "json", lambda s: s.logging.format, "json", id="choice"
    ),
    pytest.param(
        "PREPULL_TARGET",
        "ns-a/puller",
        lambda s: s.targets,
        (Target("ns-a", "puller"),),
        id="target",
    ),
]


@pytest.mark.parametrize(("var", "value", "get", "expected"), ENV_OVERRIDES)
def test_an_environment_variable_overrides_one_setting(
    var: str, value: str, get: Any, expected: Any
) -> None:
    settings = from_env(**{var: value})
    assert get(settings) == expected
    assert type(get(settings)) is type(expected)


ENV_ERRORS = [
    pytest.param(
        {"PREPULL_SELECTION__MAX_IMAGES": "x"},
        "environment PREPULL_SELECTION__MAX_IMAGES: selection.max_images must be an integer >= 0, got 'x'",
        id="not-an-int",
    ),
    pytest.param(
        {"PREPULL_SELECTION__MAX_IMAGES": ""},
        "environment PREPULL_SELECTION__MAX_IMAGES: selection.max_images must be an integer >= 0, got ''",
        id="empty",
    ),
    pytest.param(
        {"PREPULL_SELECTION__MAX_IMAGES": "-1"},
        "environment PREPULL_SELECTION__MAX_IMAGES: selection.max_images must be an integer >= 0, got -1 (int)",
        id="out-of-range",
    ),
    pytest.param(
        {"PREPULL_SOURCES__NODES": "maybe"},
        "environment PREPULL_SOURCES__NODES: sources.nodes must be true or false, got 'maybe'",
        id="bool",
    ),
    pytest.param(
        {"PREPULL_WEIGHTS__READY": "nan"},
        "environment PREPULL_WEIGHTS__READY: weights.ready must be a number >= 0, got 'nan'",
        id="nan",
    ),
    pytest.param(
        {"PREPULL_SIZES__WORKBENCH": "big"},
        "environment PREPULL_SIZES__WORKBENCH: sizes.workbench must be a size (6Gi, 200Mi, 500M or bytes) "
        "> 0, got 'big' (str)",
        id="quantity",
    ),
    pytest.param(
        {"PREPULL_SERVE__CRON": "every hour"},
        "environment PREPULL_SERVE__CRON: serve.cron must be empty or a 5-field crontab",
        id="cron",
    ),
    pytest.param(
        {"PREPULL_SELECTION__MAX_IMGS": "1"},
        "environment PREPULL_SELECTION__MAX_IMGS: no setting 'selection.max_imgs' (did you mean "
        "'max_images'? known keys under 'selection': ",
        id="unknown-key",
    ),
    pytest.param(
        {"PREPULL_SELECTOIN__MAX_IMAGES": "1"},
        "environment PREPULL_SELECTOIN__MAX_IMAGES: no setting 'selectoin' (did you mean 'selection'? "
        "known top-level keys: ",
        id="unknown-section",
    ),
    pytest.param(
        {"PREPULL_SERVE__PORT__NUMBER": "1"},
        "environment PREPULL_SERVE__PORT__NUMBER: no setting 'serve.port.number' (serve.port has no keys "
        "under it)",
        id="below-a-leaf",
    ),
    pytest.param(
        {"PREPULL_SELECTION__": "1"},
        "environment PREPULL_SELECTION__: no setting 'selection.' ",
        id="trailing-separator",
    ),
    pytest.param(
        {"PREPULL_SERVE": "1"},
        "environment PREPULL_SERVE: serve is a section; set its keys one by one, e.g. "
        "PREPULL_SERVE__INTERVAL_SECONDS",
        id="a-section",
    ),
    pytest.param(
        {"PREPULL_TARGETS": "a/b"},
        "environment PREPULL_TARGETS: targets cannot be set from the environment; use "
        "PREPULL_TARGET=NAMESPACE/NAME[,NAMESPACE/NAME...] for the targets, or the config file",
        id="targets",
    ),
    pytest.param(
        {"PREPULL_TARGET": "image-puller"},
        "environment PREPULL_TARGET: 'image-puller' is not NAMESPACE/NAME (e.g. "
        "openshift-operators/image-puller; several targets are separated by commas)",
        id="target-without-namespace",
    ),
    pytest.param(
        {"PREPULL_TARGET": "Ops/puller"},
        "environment PREPULL_TARGET: 'Ops/puller': namespace must be a namespace name",
        id="target-bad-ns",
    ),
    pytest.param(
        {"PREPULL_SERVE__LEADER_ELECTION__RETRY_PERIOD_SECONDS": "30"},
        "environment PREPULL_SERVE__LEADER_ELECTION__RETRY_PERIOD_SECONDS: "
        "serve.leader_election.renew_deadline_seconds (20) must be greater than "
        "serve.leader_election.retry_period_seconds (30)",
        id="cross-field",
    ),
]


@pytest.mark.parametrize(("env", "message"), ENV_ERRORS)
def test_a_bad_environment_variable_is_reported_by_name(env: dict[str, str], message: str) -> None:
    assert errors(lambda: load_settings(None, env=env)).startswith(message)


def test_the_clis_own_variables_and_service_links_are_not_settings() -> None:
    env = dict.fromkeys(CLI_VARIABLES, "anything")
    env |= {
        "PREPULL_AGENT_SERVICE_HOST": "10.0.0.1",
        "PREPULL_AGENT_PORT_8080_TCP": "tcp://x",
        "PATH": "/bin",
    }
    assert load_settings(None, env=env) == Settings()
    assert {
        "PREPULL_CONFIG",
        "PREPULL_DRY_RUN",
        "PREPULL_LOG_LEVEL",
        "PREPULL_KUBECONFIG",
    } <= CLI_VARIABLES


def test_the_environment_wins_over_the_file_key_by_key(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "targets: [{namespace: puller, name: main, create: true}]\n"
        "selection: {max_images: 10, min_score: 4}\n"
        "serve:\n  leader_election: {renew_deadline_seconds: 10, retry_period_seconds: 2}\n"
    )
    env = {
        "PREPULL_SELECTION__MAX_IMAGES": "20",
        "PREPULL_SERVE__LEADER_ELECTION__LEASE_NAMESPACE": "agents",
        "PREPULL_TARGET": "other/puller",
    }
    settings = load_settings(path, env=env)
    assert (settings.selection.max_images, settings.selection.min_score) == (20, 4.0)
    assert settings.serve.leader_election == LeaderElection(
        lease_namespace="agents", renew_deadline_seconds=10, retry_period_seconds=2
    )
    assert settings.targets == (
        Target("other", "puller", create=True),
    )  # create kept from the file


def test_environment_values_are_validated_together_not_one_at_a_time(tmp_path: Path) -> None:
    env = {
        "PREPULL_SERVE__LEADER_ELECTION__LEASE_DURATION_SECONDS": "10",
        "PREPULL_SERVE__LEADER_ELECTION__RENEW_DEADLINE_SECONDS": "5",
    }
    assert from_env(**env).serve.leader_election.renew_deadline_seconds == 5.0


def test_a_cross_field_error_names_every_layer_involved(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("serve: {leader_election: {renew_deadline_seconds: 25}}\n")
    env = {"PREPULL_SERVE__LEADER_ELECTION__RETRY_PERIOD_SECONDS": "30"}
    message = errors(lambda: load_settings(path, env=env))
    assert message.startswith(
        f"config {path}, environment PREPULL_SERVE__LEADER_ELECTION__RETRY_PERIOD_SECONDS: "
        "serve.leader_election.renew_deadline_seconds (25) must be greater than"
    )


def test_an_error_in_the_file_names_the_file_even_when_the_environment_is_used(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("kube: {page_size: 0}\n")
    message = errors(lambda: load_settings(path, env={"PREPULL_SELECTION__MAX_IMAGES": "3"}))
    assert (
        message == f"config {path}: kube.page_size must be an integer from 1 to 5000, got 0 (int)"
    )


def test_every_problem_of_the_file_and_the_environment_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "selection: {max_imgs: 3, min_score: -1}\n"
        "targets: [{namespace: Team_A}, {namespace: a, name: b, create: maybe}]\n"
        "kube: {page_size: 0}\n"
    )
    env = {"PREPULL_SELECTOIN__MAX_IMAGES": "1", "PREPULL_SERVE__PORT": "http"}
    expected = [
        "environment PREPULL_SELECTOIN__MAX_IMAGES: no setting 'selectoin' (did you mean 'selection'? "
        "known top-level keys: applications_namespace, kserve, kube, logging, puller, references, selection, "
        "serve, sizes, sources, startup, targets, weights)",
        f"config {path}: targets[0].namespace must be a namespace name (DNS-1123 label: lowercase "
        "letters, digits and '-', starting and ending with a letter or digit, at most 63 characters), "
        "got 'Team_A' (str)",
        f"config {path}: targets[1].create must be true or false, got 'maybe' (str)",
        f"config {path}: selection.min_score must be a number >= 0, got -1 (int)",
        f"config {path}: unknown key 'selection.max_imgs' (did you mean 'max_images'? known keys under "
        "'selection': disk_budget, exclude, max_images, max_namespace_share, max_per_namespace, min_score, pinned, retain_margin)",
        f"config {path}: kube.page_size must be an integer from 1 to 5000, got 0 (int)",
        "environment PREPULL_SERVE__PORT: serve.port must be an integer from 1 to 65535, got 'http' (str)",
    ]
    with pytest.raises(SettingsError) as caught:
        load_settings(path, env=env)
    assert caught.value.problems == tuple(expected)
    assert str(caught.value).splitlines() == ["7 problems:", *(f"  {line}" for line in expected)]


def test_a_list_of_targets_that_are_all_wrong_is_reported_item_by_item() -> None:
    message = errors(lambda: from_data({"targets": [5, {"nmespace": "a"}]}))
    assert message.splitlines() == [
        "2 problems:",
        "  config c.yaml: targets[0] must be a mapping of keys, got 5 (int)",
        "  config c.yaml: unknown key 'targets[1].nmespace' (did you mean 'namespace'? known keys under "
        "'targets[1]': create, name, namespace)",
    ]


def test_a_value_made_in_code_reports_every_problem_with_bare_keys() -> None:
    with pytest.raises(SettingsError) as caught:
        Selection(max_images=-1, min_score=True)  # type: ignore[arg-type]
    assert caught.value.problems == (
        "max_images must be an integer >= 0, got -1 (int)",
        "min_score must be a number >= 0, got True (bool)",
    )


@pytest.mark.parametrize(
    ("key", "var"),
    [
        ("selection.max_images", "PREPULL_SELECTION__MAX_IMAGES"),
        ("serve.leader_election.enabled", "PREPULL_SERVE__LEADER_ELECTION__ENABLED"),
        ("applications_namespace", "PREPULL_APPLICATIONS_NAMESPACE"),
    ],
)
def test_env_name(key: str, var: str) -> None:
    assert env_name(key) == var


def _as_env_text(value: Any) -> str:
    if isinstance(value, DiskBudget):
        return "30%" if value == DiskBudget() else "unlimited"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_every_leaf_can_be_set_from_the_environment_with_its_default() -> None:
    defaults = Settings()
    for key, _, _ in _setting_fields():
        if key.startswith("targets"):
            continue
        value: Any = defaults
        for part in key.split("."):
            value = getattr(value, part)
        assert from_env(**{env_name(key): _as_env_text(value)}) == defaults, key


# --- the command line ----------------------------------------------------------------------


def test_one_target_per_node_pool_from_the_environment() -> None:
    settings = load_settings(None, env={"PREPULL_TARGET": "openshift-operators/image-puller, image-puller-gpu/image-puller"})
    assert [str(t) for t in settings.targets] == ["openshift-operators/image-puller", "image-puller-gpu/image-puller"]
    with pytest.raises(SettingsError, match="a second KubernetesImagePuller in namespace a"):
        load_settings(None, env={"PREPULL_TARGET": "a/cpu,a/gpu"})


def test_with_target_replaces_the_targets_and_keeps_create_from_the_first() -> None:
    settings = from_data(
        {"targets": [{"namespace": "a", "name": "x", "create": True}, {"namespace": "b"}]}
    )
    assert with_target(settings, "ops/puller").targets == (Target("ops", "puller", create=True),)
    assert with_target(Settings(), " ops/puller ").targets == (
        Target("ops", "puller", create=False),
    )


@pytest.mark.parametrize(
    "spec", ["", "ops", "ops/", "/puller", "ops/puller/x", "Ops/puller", "ops/Puller!"]
)
def test_with_target_rejects_a_malformed_spec(spec: str) -> None:
    assert errors(lambda: with_target(Settings(), spec, origin="--target")).startswith(
        f"--target: {spec!r}"
    )


# --- the values themselves -----------------------------------------------------------------


def test_settings_are_immutable_and_slotted() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.selection.max_images = 1  # type: ignore[misc]
    assert not hasattr(settings, "__dict__")
    assert hash(settings) == hash(Settings())


def test_constructing_a_value_in_code_validates_and_normalises_it() -> None:
    assert (
        errors(lambda: Selection(max_images=-1))
        == "max_images must be an integer >= 0, got -1 (int)"
    )
    assert errors(lambda: Settings(targets=())) == (
        "targets must be a non-empty list of mappings with keys create, name, namespace, got an empty list"
    )
    assert Selection(pinned=["quay.io/a:1"]).pinned == ("quay.io/a:1",)  # type: ignore[arg-type]
    assert Settings(targets=[Target()]).targets == (Target(),)  # type: ignore[arg-type]
    assert isinstance(Weights(running=1).running, float)
    assert Selection(disk_budget="25%").disk_budget == DiskBudget(fraction=0.25)  # type: ignore[arg-type]
    assert Sizes(workbench="8Gi").workbench == 8 * Gi  # type: ignore[arg-type]
    assert errors(lambda: Selection(disk_budget=True)).startswith("disk_budget must be")  # type: ignore[arg-type]
    not_a_section = lambda: Settings(selection=5)  # type: ignore[arg-type]  # noqa: E731
    assert errors(not_a_section) == "selection must be a mapping of keys, got 5 (int)"


@pytest.mark.parametrize(
    ("state", "weight"),
    [
        ("running", 10.0),
        ("starting", 5.0),
        ("stopped", 2.0),
        ("ready", 10.0),
        ("not-ready", 3.0),
        ("recommended", 5.0),
        ("offered", 1.0),
        ("outdated", 0.0),
        ("defined", 1.0),
    ],
)
def test_weights_for_state(state: str, weight: float) -> None:
    assert Weights().for_state(state) == weight


@pytest.mark.parametrize(
    ("role", "size", "accelerated"),
    [
        ("workbench", 4 * Gi, 12 * Gi),
        ("sidecar", 200 * Mi, 200 * Mi),
        ("pipeline-runtime", 3 * Gi, 3 * Gi),
        ("serving-runtime", 4 * Gi, 20 * Gi),
        ("modelcar", 10 * Gi, 10 * Gi),
        ("custom-container", 4 * Gi, 4 * Gi),
        ("storage-initializer", 1 * Gi, 1 * Gi),
        ("router", 1 * Gi, 1 * Gi),
    ],
)
def test_sizes_for_role(role: str, size: int, accelerated: int) -> None:
    assert Sizes().for_role(role) == size
    assert Sizes().for_role(role, accelerated=True) == accelerated


def test_the_largest_size_estimate_counts_the_accelerated_ones_only_when_asked() -> None:
    assert Sizes().largest(accelerated=True) == 20 * Gi
    assert Sizes(serving_runtime_accelerated=1 * Gi).largest(accelerated=True) == 12 * Gi
    assert Sizes().largest() == 10 * Gi  # the ModelCar's
    assert Sizes(workbench_accelerated=100 * Gi).largest() == 10 * Gi


def test_unknown_state_or_role_is_an_error_not_zero() -> None:
    with pytest.raises(ValueError, match="unknown usage state 'not_ready'"):
        Weights().for_state("not_ready")
    with pytest.raises(ValueError, match="unknown image role 'runtime'"):
        Sizes().for_role("runtime")


def test_every_model_state_and_role_has_a_setting() -> None:
    model = pytest.importorskip("agent.model")
    for state in model.State:
        Weights().for_state(state)
    for role in model.Role:
        Sizes().for_role(role)


# --- the disk budget --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (120 * Gi, DiskBudget(bytes=120 * Gi)),
        ("120Gi", DiskBudget(bytes=120 * Gi)),
        ("500M", DiskBudget(bytes=500 * 10**6)),
        ("1.5Ti", DiskBudget(bytes=1536 * Gi)),
        ("1000", DiskBudget(bytes=1000)),
        ("25%", DiskBudget(fraction=0.25)),
        ("12.5 %", DiskBudget(fraction=0.125)),
        ("100%", DiskBudget(fraction=1.0)),
        (0.25, DiskBudget(fraction=0.25)),
        ("0.25", DiskBudget(fraction=0.25)),
        (".3", DiskBudget(fraction=0.3)),
        ("unlimited", DiskBudget(fraction=None)),
        ("None", DiskBudget(fraction=None)),
        (None, DiskBudget(fraction=None)),
    ],
)
def test_disk_budget_from_yaml(value: Any, expected: DiskBudget) -> None:
    assert from_data({"selection": {"disk_budget": value}}).selection.disk_budget == expected


@pytest.mark.parametrize(
    "value", [0, -5, 0.0, 1.0, 2.5, "0%", "101%", "x%", "1.5", "0", True, [], "30 percent"]
)
def test_disk_budget_rejects(value: Any) -> None:
    assert "selection.disk_budget must be" in errors(
        lambda: from_data({"selection": {"disk_budget": value}})
    )


@pytest.mark.parametrize(
    ("budget", "capacity", "expected"),
    [
        (DiskBudget(), 100 * Gi, 30 * Gi),
        (DiskBudget(), None, None),
        (DiskBudget(fraction=0.25), 1001, 250),
        (DiskBudget(bytes=5 * Gi), None, 5 * Gi),
        (DiskBudget(bytes=5 * Gi), Gi, 5 * Gi),
        (DiskBudget(fraction=None), 100 * Gi, None),
    ],
)
def test_disk_budget_resolve(
    budget: DiskBudget, capacity: int | None, expected: int | None
) -> None:
    assert budget.resolve(capacity) == expected


def test_disk_budget_bytes_win_over_the_default_fraction() -> None:
    assert DiskBudget(bytes=10) == DiskBudget(bytes=10, fraction=None)
    assert DiskBudget(bytes=10).fraction is None
