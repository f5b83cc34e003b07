"""Logging: structlog events with fields, to standard error, in one of two shapes.

- `json` (in a pod, or when asked): one object per line with `timestamp`, `level`,
  `logger` and `message` (the keys OpenShift Logging reads), then the event's fields.
- `console` (on a terminal): `TIME LEVEL MESSAGE key=value ...`, values as plain text:
  a mapping becomes `key.sub=value`, a list `a,b`, text with spaces is quoted. Never a
  Python repr.

The client libraries' own records (`kubernetes`, `urllib3`, `apscheduler`, Python
warnings) go through the standard `logging` module to the same handler and renderer, so a
pod's log is one format. APScheduler's per-run chatter and urllib3's are kept below
`warning` unless the level is `debug`.

Warnings are said once: the same warning (same message and fields) is not repeated while
it keeps occurring, only when it changes, when it comes back after a cycle without it
(`new_cycle` marks the cycles), or every `REPEAT_AFTER_SECONDS` (then with `repeated=N`,
the times it was left out). When `once` prints its report on the terminal the logs go to,
warnings are left to the report (which shows each of them) rather than said twice; if
`once` fails before printing it, `release_held_warnings` says them after all.

Standard output is kept for what `once` prints (the plan), so `--output json | jq` works.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
REPEAT_AFTER_SECONDS = 6 * 3600.0
CHATTY_LIBRARIES = ("apscheduler", "urllib3")
_OWN = "_prepull_agent_handler"


class WarningGate:
    """A processor that lets a warning through once, then again only when it changes, comes
    back after a cycle without it, or `repeat_after` seconds later."""

    def __init__(self, *, repeat_after: float = REPEAT_AFTER_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.repeat_after = repeat_after
        self.report_shows_warnings = False  # `once` on a terminal: the report says them
        self.held: list[EventDict] = []  # the warnings left to the report, in case it is not printed
        self._clock = clock
        self._said: dict[str, float] = {}
        self._left_out: dict[str, int] = {}
        self._this_cycle: set[str] = set()

    def new_cycle(self) -> None:
        """Forget the warnings the cycle that just ended did not repeat."""
        for key in [k for k in self._said if k not in self._this_cycle]:
            del self._said[key]
            self._left_out.pop(key, None)
        self._this_cycle = set()

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        if event_dict.get("level") != "warning":
            return event_dict
        if self.report_shows_warnings:
            self.held.append(dict(event_dict))
            raise structlog.DropEvent
        key = _key(event_dict)
        self._this_cycle.add(key)
        now = self._clock()
        said = self._said.get(key)
        if said is not None and now - said < self.repeat_after:
            self._left_out[key] = self._left_out.get(key, 0) + 1
            raise structlog.DropEvent
        if said is not None:
            event_dict["repeated"] = self._left_out.pop(key, 0)
        self._said[key] = now
        return event_dict


_gate = WarningGate()


def new_cycle() -> None:
    """Called before every cycle of `serve`: warnings the last cycle did not repeat are new again."""
    _gate.new_cycle()


def release_held_warnings() -> None:
    """`once` ended before printing its report: say the warnings left to it after all."""
    held, _gate.held = _gate.held, []
    _gate.report_shows_warnings = False
    for event_dict in held:
        fields = {k: v for k, v in event_dict.items() if k not in ("event", "level", "timestamp", "logger")}
        structlog.get_logger(str(event_dict.get("logger", "prepull_agent"))).warning(
            str(event_dict.get("event", "")), **fields
        )


def _key(event_dict: EventDict) -> str:
    fields = {k: v for k, v in event_dict.items() if k not in ("timestamp", "level") and not k.startswith("_")}
    return json.dumps(fields, sort_keys=True, default=str)


def configure(
    *,
    fmt: str = "auto",
    level: str = "info",
    report_on_terminal: bool = False,
    stream: TextIO | None = None,
) -> None:
    """`fmt`: auto (console on a terminal, else json), console or json. `report_on_terminal`:
    `once` prints its report (table) on standard output; when that and the log are the same
    terminal, warnings are left to the report."""
    out = stream if stream is not None else _Stderr()
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    _gate.report_shows_warnings = report_on_terminal and _is_tty(sys.stdout) and out.isatty()
    threshold = LEVELS.get(level, logging.INFO)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    ]
    render: list[Processor] = (
        [
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("message"),
            _keys_first,
            structlog.processors.JSONRenderer(default=str),
        ]
        if use_json
        else [structlog.processors.format_exc_info, render_console]
    )
    handler = logging.StreamHandler(out)
    setattr(handler, _OWN, True)
    handler.addFilter(_gate_foreign)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *render],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OWN, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(threshold)
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(threshold if threshold <= logging.DEBUG else logging.WARNING)
    logging.captureWarnings(True)
    structlog.configure(
        processors=[*shared, _gate, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )


FIRST_KEYS = ("timestamp", "level", "logger", "message")


def _keys_first(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """timestamp, level, logger and message before the event's own fields."""
    return {**{k: event_dict[k] for k in FIRST_KEYS if k in event_dict}, **event_dict}


def _gate_foreign(record: logging.LogRecord) -> bool:
    """The gate for the libraries' records (the agent's own met it in structlog's chain)."""
    if isinstance(record.msg, dict):
        return True
    event = {"level": record.levelname.lower(), "logger": record.name, "event": record.getMessage()}
    try:
        _gate(None, record.levelname.lower(), event)
    except structlog.DropEvent:
        return False
    return True


class _Stderr:
    """Whatever `sys.stderr` is when a record is written (tests and wrappers replace it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return _is_tty(sys.stderr)


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


# ---------------------------------------------------------------------------------------
# The console shape


def render_console(logger: WrappedLogger, method: str, event_dict: EventDict) -> str:
    """`TIME LEVEL MESSAGE key=value ...`; the traceback, if any, on the lines after."""
    event_dict = dict(event_dict)
    timestamp = str(event_dict.pop("timestamp", ""))
    level = str(event_dict.pop("level", ""))
    message = str(event_dict.pop("event", ""))
    event_dict.pop("logger", None)
    trace = event_dict.pop("exception", None)
    pairs = " ".join(f"{k}={_text(v)}" for k, v in _flat(event_dict))
    line = f"{timestamp} {level:<7} {message}" + (f"  {pairs}" if pairs else "")
    return line + (f"\n{trace}" if trace else "")


def _flat(fields: MutableMapping[str, Any] | dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in fields.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out += _flat(value, prefix=f"{name}.")
        else:
            out.append((name, value))
    return out


def _text(value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "-"
    elif isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
        text = ",".join(str(v) for v in items) or "-"
    elif isinstance(value, dict):
        text = "-"  # an empty mapping; others are flattened
    else:
        text = str(value)
    if not text or any(c.isspace() or c in '="' for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text
