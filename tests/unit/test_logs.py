"""Log output: key=value text on a console (never a Python repr), JSON with `message` and
`level` for OpenShift Logging, the client libraries' records through the same renderer, and
warnings said once."""

from __future__ import annotations

import io
import json
import logging
import warnings
from collections.abc import Iterator

import pytest
import structlog

from agent import logs


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def fresh_gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(logs, "_gate", logs.WarningGate())
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, logs._OWN, False)]:
        root.removeHandler(handler)
    logging.captureWarnings(False)
    structlog.reset_defaults()


def configured(fmt: str, level: str = "info", *, stream: io.StringIO | None = None, **kw) -> io.StringIO:
    out = stream if stream is not None else io.StringIO()
    logs.configure(fmt=fmt, level=level, stream=out, **kw)
    return out


def lines(out: io.StringIO) -> list[str]:
    return [line for line in out.getvalue().splitlines() if line]


def test_console_lines_are_key_value_text_not_python_reprs():
    out = configured("console")
    structlog.get_logger("prepull_agent.cycle").info(
        "cycle finished", listed={"ImageStream": 7, "Notebook": 6}, failed=[], missing=["Template"],
        reason="GET /apis/x: HTTP 403: forbidden", dry_run=True, nothing=None)
    (line,) = lines(out)
    assert " info    cycle finished  " in line
    assert "listed.ImageStream=7 listed.Notebook=6" in line
    assert "failed=- missing=Template" in line
    assert 'reason="GET /apis/x: HTTP 403: forbidden"' in line
    assert "dry_run=true nothing=-" in line
    assert "{" not in line and "'" not in line


def test_json_lines_carry_message_level_timestamp_and_logger():
    out = configured("json")
    structlog.get_logger("prepull_agent.serve").info("serving", port=8080, listed={"Node": 3})
    (record,) = [json.loads(line) for line in lines(out)]
    assert list(record)[:4] == ["timestamp", "level", "logger", "message"]
    assert record["message"] == "serving" and record["level"] == "info"
    assert record["logger"] == "prepull_agent.serve" and record["timestamp"].endswith("Z")
    assert record["port"] == 8080 and record["listed"] == {"Node": 3}
    assert "event" not in record


def test_the_client_libraries_records_go_through_the_same_renderer():
    out = configured("json")
    logging.getLogger("kubernetes.client.rest").warning("response %s", "slow")
    logging.getLogger("urllib3.connectionpool").warning("Retrying (Retry(total=0))")
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # pytest turns warnings into errors here
        warnings.warn("an insecure request", UserWarning, stacklevel=1)
    records = [json.loads(line) for line in lines(out)]
    assert [(r["logger"], r["level"]) for r in records] == [
        ("kubernetes.client.rest", "warning"), ("urllib3.connectionpool", "warning"), ("py.warnings", "warning")]
    assert records[0]["message"] == "response slow"


def test_the_schedulers_chatter_is_kept_out_unless_debugging():
    out = configured("json", "info")
    logging.getLogger("apscheduler.executors.default").info('Running job "Agent.run_one"')
    assert lines(out) == []
    out = configured("json", "debug", stream=io.StringIO())
    logging.getLogger("apscheduler.executors.default").info('Running job "Agent.run_one"')
    assert len(lines(out)) == 1


def test_the_level_filters_the_agents_own_events():
    out = configured("json", "warning")
    log = structlog.get_logger("prepull_agent")
    log.info("hidden")
    log.debug("hidden")
    log.error("shown")
    assert [json.loads(line)["message"] for line in lines(out)] == ["shown"]


def test_a_warning_is_said_once_while_it_keeps_occurring():
    out = configured("json")
    log = structlog.get_logger("prepull_agent.observe")
    for _ in range(96):  # a day of cycles at the default interval
        logs.new_cycle()
        log.warning("listing failed", kind="Notebook", reason="HTTP 403")
    assert len(lines(out)) == 1


def test_a_warning_that_changes_is_said_again():
    out = configured("json")
    log = structlog.get_logger("prepull_agent.observe")
    log.warning("listing failed", kind="Notebook", reason="HTTP 403")
    logs.new_cycle()
    log.warning("listing failed", kind="Notebook", reason="HTTP 500")
    assert [json.loads(line)["reason"] for line in lines(out)] == ["HTTP 403", "HTTP 500"]


def test_a_warning_that_comes_back_after_a_clean_cycle_is_said_again():
    out = configured("json")
    log = structlog.get_logger("prepull_agent.observe")
    log.warning("listing failed", kind="Notebook")
    logs.new_cycle()
    logs.new_cycle()  # a cycle without it
    log.warning("listing failed", kind="Notebook")
    assert len(lines(out)) == 2


def test_a_lasting_warning_is_said_again_every_few_hours_with_the_count_left_out(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(logs, "_gate", logs.WarningGate(clock=lambda: now[0]))
    out = configured("json")
    log = structlog.get_logger("prepull_agent.observe")
    for _ in range(30):
        logs.new_cycle()
        log.warning("listing failed", kind="Notebook")
        now[0] += 900
    records = [json.loads(line) for line in lines(out)]
    assert len(records) == 2  # at 0 and after six hours
    assert "repeated" not in records[0] and records[1]["repeated"] == 23


def test_errors_are_never_held_back():
    out = configured("json")
    for _ in range(3):
        structlog.get_logger("prepull_agent.serve").error("cycle failed", reason="x")
    assert len(lines(out)) == 3


def test_when_the_report_is_on_the_same_terminal_warnings_are_left_to_it(monkeypatch):
    monkeypatch.setattr("sys.stdout", Terminal())
    terminal = Terminal()
    configured("auto", stream=terminal, report_on_terminal=True)
    log = structlog.get_logger("prepull_agent.cycle")
    log.warning("reference rejected", source="Notebook a/b")
    log.info("cycle finished")
    log.error("writing the puller failed")
    text = terminal.getvalue()
    assert "reference rejected" not in text
    assert "cycle finished" in text and "writing the puller failed" in text
    assert not text.lstrip().startswith("{")  # a terminal gets the console shape


def test_when_the_report_goes_elsewhere_warnings_stay_in_the_log(monkeypatch):
    monkeypatch.setattr("sys.stdout", io.StringIO())  # `once > plan.txt`
    terminal = Terminal()
    configured("auto", stream=terminal, report_on_terminal=True)
    structlog.get_logger("prepull_agent.cycle").warning("reference rejected", source="Notebook a/b")
    assert "reference rejected" in terminal.getvalue()


def test_warnings_left_to_a_report_that_is_never_printed_are_said_after_all(monkeypatch):
    monkeypatch.setattr("sys.stdout", Terminal())
    terminal = Terminal()
    configured("auto", stream=terminal, report_on_terminal=True)
    structlog.get_logger("prepull_agent.observe").warning("listing failed", kind="Notebook", reason="HTTP 403")
    assert "listing failed" not in terminal.getvalue()
    logs.release_held_warnings()  # `once` failed: no table
    assert "listing failed  kind=Notebook reason=\"HTTP 403\"" in terminal.getvalue()
