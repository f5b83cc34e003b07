"""A fault-injecting HTTP proxy between the agent and a real API server, for tests.

The agent talks plain HTTP to the proxy on 127.0.0.1 (a kubeconfig whose `server` is
`FaultProxy.url`, with a bearer token); the proxy forwards every request to the real
`https://` API server, verifying it with the cluster's CA and passing the Authorization
header through, so RBAC applies exactly as without the proxy.

Rules decide which requests go wrong. A rule matches on the method and path (regexes,
`fullmatch`), optionally on the query (a predicate over the decoded query dict), and fires
`times` times (None: always). The first matching rule that still has shots left wins.
What a rule can do (`action`):

- `status`:   answer `status` (500, 503, 429...) with a Kubernetes `Status` body, and a
              `Retry-After` header when `retry_after` is set. Nothing is forwarded.
- `reset`:    close the connection without answering (SO_LINGER 0: the client sees a reset).
- `stall`:    say nothing for `delay` seconds (longer than the client's timeout), then reset.
- `cut`:      forward, then send the answer's headers with the full Content-Length and only
              the first half of the body, then close.
- `expire`:   answer 410 Gone, reason `Expired`, as for an expired pagination token. Only
              fires for requests carrying `continue=` (a list's later pages).
- `conflict`: answer 409, reason `Conflict`, as for a failed resourceVersion precondition.
- `pass`:     forward as usual (with `on_hit`, to act at the moment a request arrives).

`forward_first=True` makes `status`, `reset` and `stall` forward the request first and fail
only the answer: the server acted, the client does not know (a write's unknown outcome).
`on_hit(record)` is called in the proxy's thread when the rule fires, before the action
(e.g. to kill the API server at that precise moment).

Every request is recorded (`records`: method, path, query, User-Agent, what was done, the
upstream status) so tests can count attempts and faults. When the upstream cannot be reached at all,
the client's connection is reset, as a dead API server would look.

    with FaultProxy(cluster.server, cluster.ca_file) as proxy:
        proxy.add(Rule("status", method="GET", path=r".*/notebooks", status=503, times=1))
        ... run the agent against proxy.url ...
        assert proxy.count(action="status") == 1
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ACTIONS = ("status", "reset", "stall", "cut", "expire", "conflict", "pass")
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}
_REASONS = {
    409: "Conflict",
    410: "Expired",
    429: "TooManyRequests",
    500: "InternalError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclass
class Record:
    """One request the proxy saw. `action` is "forward" or the fault applied."""

    method: str
    path: str
    query: dict[str, str]
    action: str = "forward"  # or "pass": forwarded, matched by a rule
    upstream_status: int | None = None  # None: not forwarded, or no answer upstream
    user_agent: str = ""


@dataclass
class Rule:
    action: str
    method: str = ".*"
    path: str = ".*"
    query: Callable[[Mapping[str, str]], bool] | None = None
    times: int | None = 1  # None: every matching request
    status: int = 503
    retry_after: float | None = None
    delay: float = 5.0  # stall length
    forward_first: bool = False
    on_hit: Callable[[Record], None] | None = None
    hits: int = 0

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}; one of {ACTIONS}")

    def matches(self, method: str, path: str, query: Mapping[str, str]) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if not (re.fullmatch(self.method, method) and re.fullmatch(self.path, path)):
            return False
        if self.action == "expire" and "continue" not in query:
            return False
        return self.query is None or self.query(query)


def status_body(code: int, message: str, reason: str | None = None) -> bytes:
    """A `v1.Status` failure document as the API server writes it."""
    return json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason or _REASONS.get(code, "Unknown"),
            "code": code,
        }
    ).encode()


class FaultProxy:
    """The proxy: `start()` / `stop()` (or a `with` block), `url`, `add()`, `records`."""

    def __init__(self, upstream: str, ca_file: str | Path | None, *, upstream_timeout: float = 30.0) -> None:
        parts = urlsplit(upstream)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 443
        self._tls = ssl.create_default_context(cafile=str(ca_file)) if ca_file else ssl.create_default_context()
        self._upstream_timeout = upstream_timeout
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.rules: list[Rule] = []
        self.records: list[Record] = []
        self._server: ThreadingHTTPServer | None = None

    # -- control -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the proxy first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        threading.Thread(target=self._server.serve_forever, name="faultproxy", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def reset(self) -> None:
        """Forget every rule and record (between tests)."""
        with self._lock:
            self.rules.clear()
            self.records.clear()

    def mark(self) -> int:
        """A point in the record, for `count(since=...)`."""
        with self._lock:
            return len(self.records)

    def count(
        self,
        *,
        action: str | None = None,
        method: str | None = None,
        path: str = ".*",
        query: Callable[[Mapping[str, str]], bool] | None = None,
        since: int = 0,
    ) -> int:
        """How many requests since `since` match (path is a regex; query a predicate)."""
        with self._lock:
            return sum(
                1
                for r in self.records[since:]
                if (action is None or r.action == action)
                and (method is None or r.method == method)
                and re.fullmatch(path, r.path)
                and (query is None or query(r.query))
            )

    @property
    def faults(self) -> list[Record]:
        with self._lock:
            return [r for r in self.records if r.action not in ("forward", "pass")]

    # -- used by the handler -------------------------------------------------------------

    def _decide(
        self, method: str, path: str, query: dict[str, str], user_agent: str = ""
    ) -> tuple[Rule | None, Record]:
        with self._lock:
            record = Record(method, path, query, user_agent=user_agent)
            self.records.append(record)
            for rule in self.rules:
                if rule.matches(method, path, query):
                    rule.hits += 1
                    record.action = rule.action
                    return rule, record
            return None, record

    def _forward(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPSConnection(self._host, self._port, context=self._tls, timeout=self._upstream_timeout)
        try:
            conn.request(method, target, body=body, headers=dict(headers))
            resp = conn.getresponse()
            data = resp.read()  # de-chunked; Content-Encoding (gzip) passes through as is
            kept = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP]
            return resp.status, resp.reason, kept, data
        finally:
            conn.close()


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    timeout = 60  # idle keep-alive connections are closed after this
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def do_GET(self) -> None:
        self._handle()

    do_PATCH = do_POST = do_PUT = do_DELETE = do_HEAD = do_GET  # noqa: N815

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        rule, record = self.owner._decide(self.command, parts.path, query, self.headers.get("User-Agent") or "")
        if rule is not None and rule.on_hit is not None:
            rule.on_hit(record)

        answer: tuple[int, str, list[tuple[str, str]], bytes] | None = None
        if rule is None or rule.action in ("cut", "pass") or rule.forward_first:
            sent = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            try:
                answer = self.owner._forward(self.command, self.path, sent, body)
            except (OSError, http.client.HTTPException):
                self._reset()  # the API server is gone: so is the answer
                return
            record.upstream_status = answer[0]

        if rule is None or rule.action == "pass":
            assert answer is not None
            self._send(*answer)
        elif rule.action == "reset":
            self._reset()
        elif rule.action == "stall":
            self.owner._stopping.wait(rule.delay)
            self._reset()
        elif rule.action == "cut":
            assert answer is not None
            self._send(*answer, cut=True)
        else:
            code = {"expire": 410, "conflict": 409}.get(rule.action, rule.status)
            extra = [("Retry-After", f"{rule.retry_after:g}")] if rule.retry_after is not None else []
            message = {
                410: "The provided continue parameter is too old to display a consistent list result. "
                "You can start a new list without the continue parameter.",
                409: "Operation cannot be fulfilled on the object: the object has been modified; "
                "please apply your changes to the latest version and try again",
            }.get(code, f"injected fault: HTTP {code}")
            self._send(
                code,
                HTTPStatus(code).phrase,
                [("Content-Type", "application/json"), *extra],
                status_body(code, message),
            )

    def _send(
        self, status: int, reason: str, headers: list[tuple[str, str]], data: bytes, *, cut: bool = False
    ) -> None:
        self.send_response(status, reason)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        if cut:
            self.send_header("Connection", "close")
        self.end_headers()
        if cut:
            self.wfile.write(data[: len(data) // 2])
            self._close(graceful=True)  # FIN after the half body: a reset could drop it
        else:
            self.wfile.write(data)

    def _reset(self) -> None:
        """Close the socket so the client sees a reset (RST), not a clean end of stream."""
        self._close(graceful=False)

    def _close(self, *, graceful: bool) -> None:
        self.close_connection = True
        try:
            if graceful:
                self.connection.shutdown(socket.SHUT_WR)
            else:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()  # the socket's file descriptor closes with its last reference
            self.connection.close()
        except OSError:
            pass
