"""The real API server's answers, recorded, and a client that replays them.

`Recorder` wraps a real `kubernetes.client.ApiClient`: every request the agent's `Kube`
sends goes through to the server, and the exchange (method, path, query, Accept, body;
status, answer, Retry-After) is kept. `save` writes a scenario's exchanges to
tests/data/recorded/NAME.json with the values that differ from one recording to the next
made stable: resourceVersion, uid and continue tokens replaced by placeholders (the same
value by the same placeholder, in requests and answers), every creationTimestamp made one
instant (the samples are loaded within a second or two: which second varies), a discovery
answer's resources sorted by name (the server's order varies), `managedFields` left out
(their times change every recording; the agent reads in them only when it last wrote a CR
and when spec.images last changed, so a replayed cycle sees no earlier write of its own:
nothing is deferred by the minimum interval, and a puller's "since" is unknown), and in an
`events.k8s.io/v1` Event the agent posts, the values taken from the clock and the host
(`eventTime`, `series.lastObservedTime`, `metadata.name`, `reportingInstance`) replaced by
fixed ones, in requests as in answers, and when a request is matched. Nothing else is
changed.

`Replay` is enough of an `ApiClient` for `agent.kube.client.Kube`: it answers a request
with the answer recorded for exactly that request (method, path, query, Accept and body);
a request sent several times gets its answers in the order they were recorded (a GET
before and after a write); `in_order=True` also holds the requests to the recorded order
(two replicas GETting one Lease). A request that was never recorded raises `NotRecorded`:
a replay never makes an answer up. Answers are kept as JSON documents, not as the bytes
on the wire, so a replayed answer is the same document in compact JSON. An error answer is
raised as the official client raises it (`ApiException` with the server's status, body
and Retry-After).

`python -m tests.harness.record` records every scenario again on a private local cluster;
tests/integration/test_recorded.py checks the files are still what the server answers.
"""

from __future__ import annotations

import functools
import json
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from agent.kube.client import Kube

REPO_ROOT = Path(__file__).resolve().parents[2]
RECORDED = REPO_ROOT / "tests" / "data" / "recorded"
FORMAT = "prepull-agent.io/recorded-answers/v1"
RERECORD = "python -m tests.harness.record"

Key = tuple[str, str, tuple[tuple[str, str], ...], str, str]


@dataclass
class Exchange:
    """One request and the server's answer to it."""

    method: str
    path: str
    query: dict[str, str]
    accept: str
    body: Any  # the request's JSON body, None for a GET
    status: int
    answer: Any  # the answer's JSON document (a `Status` for an error), or its text when not JSON
    retry_after: str | None = None

    def key(self) -> Key:
        return _key(self.method, self.path, self.query, self.accept, self.body)


def _key(method: str, path: str, query: Mapping[str, str], accept: str, body: Any) -> Key:
    return method, path, tuple(sorted(query.items())), accept, json.dumps(_stable_event(body), sort_keys=True)


# An Event's values that come from the clock and the host, as every recording and replay has them.
EVENT_FIXED = {"eventTime": "2026-01-01T00:00:00.000000Z", "reportingInstance": "prepull-agent-recorded"}
EVENT_NAME = "recorded-event"


def _stable_event(value: Any) -> Any:
    """`value` with an events.k8s.io/v1 Event's clock and host values fixed (see the
    module docstring); anything else as it is."""
    if not isinstance(value, dict):
        return value
    if value.get("apiVersion") == "events.k8s.io/v1" and value.get("kind") == "Event":
        value = {**value, **{k: v for k, v in EVENT_FIXED.items() if k in value}}
        if isinstance(value.get("metadata"), dict) and "name" in value["metadata"]:
            value["metadata"] = {**value["metadata"], "name": EVENT_NAME}
    if isinstance(value.get("series"), dict) and "lastObservedTime" in value["series"]:
        value = {**value, "series": {**value["series"], "lastObservedTime": EVENT_FIXED["eventTime"]}}
    return value


@dataclass
class Scenario:
    """What a recording is of (said in its file), and its exchanges in the order sent."""

    name: str
    description: str
    exchanges: list[Exchange] = field(default_factory=list)


# -- the answer object `Kube` reads ----------------------------------------------------------


class Answer:
    """Enough of urllib3's HTTPResponse for `Kube`: the body in chunks."""

    def __init__(self, data: bytes, status: int = 200) -> None:
        self.data = data
        self.status = status

    def stream(self, amt: int = 65536) -> Iterator[bytes]:
        view = memoryview(self.data)
        for start in range(0, len(view), amt):
            yield bytes(view[start:start + amt])

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


def _encode(answer: Any) -> bytes:
    return answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()


def _decode(data: bytes | str | None) -> Any:
    if data is None:
        return None
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    try:
        return json.loads(text)
    except ValueError:
        return text


def _as_error(exchange: Exchange) -> ApiException:
    error = ApiException(status=exchange.status, reason="")
    error.body = _encode(exchange.answer)
    error.headers = {"Retry-After": exchange.retry_after} if exchange.retry_after is not None else {}
    return error


# -- recording -------------------------------------------------------------------------------


class Recorder:
    """A real `ApiClient` whose exchanges are kept in `scenario`, for `Kube` to talk through.
    `before(method, path)` is called before each request is sent (to change the cluster at
    that very moment, as another client would)."""

    def __init__(self, api_client: ApiClient, scenario: Scenario, *,
                 before: Callable[[str, str], None] | None = None) -> None:
        self._api = api_client
        self.scenario = scenario
        self._before = before
        self.configuration = api_client.configuration
        self.rest_client = api_client.rest_client
        self._lock = threading.Lock()

    def call_api(self, path: str, method: str, *, query_params: list[tuple[str, str]] | None = None,
                 header_params: Mapping[str, str] | None = None, body: Any = None, **kwargs: Any) -> Answer:
        accept = (header_params or {}).get("Accept", "application/json")
        exchange = Exchange(method, path, dict(query_params or []), accept, body, 0, None)
        if self._before is not None:
            self._before(method, path)
        try:
            resp = self._api.call_api(path, method, query_params=query_params, header_params=header_params,
                                      body=body, **kwargs)
        except ApiException as e:
            if not e.status:
                raise  # no answer at all: nothing the server said to record
            exchange.status, exchange.answer = e.status, _decode(e.body)
            exchange.retry_after = (e.headers or {}).get("Retry-After")
            self._keep(exchange)
            raise
        data = resp.read()
        resp.release_conn()
        exchange.status, exchange.answer = resp.status, _decode(data)
        self._keep(exchange)
        return Answer(data, resp.status)

    def _keep(self, exchange: Exchange) -> None:
        with self._lock:
            self.scenario.exchanges.append(exchange)

    def close(self) -> None:
        self._api.close()


# -- replaying -------------------------------------------------------------------------------


class NotRecorded(AssertionError):
    """The code under test sent a request no recording holds (or more often than recorded)."""


class Replay:
    """Enough of `ApiClient` for `Kube`: answers from a recorded scenario, never made up."""

    class configuration:  # noqa: N801 - mimics the attribute
        host = "https://recorded.invalid"

    class rest_client:  # noqa: N801 - `Kube.close` clears the pool
        class pool_manager:  # noqa: N801
            @staticmethod
            def clear() -> None:
                pass

    def __init__(self, scenario: Scenario, *, in_order: bool = False) -> None:
        """`in_order`: every request must be the next one recorded (else a request repeated
        with the same key, a GET of a Lease, could be given a later answer)."""
        self.scenario = scenario
        self._in_order = in_order
        self._next = 0
        self._answers: dict[Key, deque[Exchange]] = defaultdict(deque)
        for exchange in scenario.exchanges:
            self._answers[exchange.key()].append(exchange)
        self._lock = threading.Lock()
        self.sent: list[Exchange] = []  # every request answered, in order, with its recorded answer

    def call_api(self, path: str, method: str, *, query_params: list[tuple[str, str]] | None = None,
                 header_params: Mapping[str, str] | None = None, body: Any = None, **_: Any) -> Answer:
        accept = (header_params or {}).get("Accept", "application/json")
        key = _key(method, path, dict(query_params or []), accept, body)
        with self._lock:
            answers = self._answers.get(key)
            if not answers:
                raise NotRecorded(self._explain(key, seen=key in self._answers))
            if self._in_order and self.scenario.exchanges[self._next].key() != key:
                expected = self.scenario.exchanges[self._next]
                raise NotRecorded(f"{method} {path} sent where scenario {self.scenario.name!r} has "
                                  f"{expected.method} {expected.path} body={json.dumps(expected.body)[:300]}")
            exchange = answers.popleft()
            self._next += 1
            self.sent.append(exchange)
        if exchange.status >= 400:
            raise _as_error(exchange)
        return Answer(_encode(exchange.answer), exchange.status)

    def requests(self, method: str = "", path: str = "") -> list[Exchange]:
        """The requests answered so far, of `method` and whose path starts with `path`."""
        return [e for e in self.sent if (not method or e.method == method) and e.path.startswith(path)]

    def unanswered(self) -> list[tuple[str, str]]:
        """(method, path) of the recorded exchanges no request has asked for yet."""
        return [(k[0], k[1]) for k, left in self._answers.items() for _ in left]

    def _explain(self, key: Key, *, seen: bool) -> str:
        method, path, query, accept, body = key
        what = f"{method} {path} query={dict(query)} accept={accept!r} body={body[:300]}"
        if seen:
            return f"{what}: sent more often than in scenario {self.scenario.name!r}"
        near = [e for e in self.scenario.exchanges if (e.method, e.path) == (method, path)]
        hint = "".join(f"\n  recorded: query={e.query} body={json.dumps(e.body)[:300]}" for e in near[:3])
        return (f"{what}: not in scenario {self.scenario.name!r} (if the agent's requests changed on purpose, "
                f"record again: {RERECORD}){hint}")

    def close(self) -> None:
        pass


def replaying(name: str, *, in_order: bool = False, retries: int = 2) -> tuple[Kube, Replay]:
    """The agent's real `Kube` over the recording NAME (retries without sleeping)."""
    replay = Replay(load(name), in_order=in_order)
    return Kube(replay, retries=retries, sleep=lambda _: None), replay


# -- files -----------------------------------------------------------------------------------


def load(name: str, directory: Path = RECORDED) -> Scenario:
    doc = _read(directory / f"{name}.json")
    if doc.get("format") != FORMAT:
        raise ValueError(f"{name}.json is not a recording of format {FORMAT}")
    return Scenario(doc["name"], doc["description"], [Exchange(**e) for e in doc["exchanges"]])


@functools.cache
def _read(path: Path) -> Any:
    return json.loads(path.read_text())  # each file once per session: the exchanges are never changed


def save(scenario: Scenario, directory: Path = RECORDED) -> Path:
    """Write the scenario with its volatile values replaced (see the module docstring)."""
    directory.mkdir(parents=True, exist_ok=True)
    exchanges = Placeholders().apply(scenario.exchanges)
    lines = ",\n".join(json.dumps(e.__dict__, sort_keys=False) for e in exchanges)
    head = json.dumps({"format": FORMAT, "name": scenario.name, "description": scenario.description})
    path = directory / f"{scenario.name}.json"
    path.write_text(f"{head[:-1]}, \"exchanges\": [\n{lines}\n]}}\n")
    return path


VOLATILE = ("resourceVersion", "uid", "continue")
SET_ASIDE = "(differs between recordings)"


def comparable(exchanges: list[Exchange]) -> list[dict[str, Any]]:
    """The exchanges with the placeholders themselves set aside: two recordings of one
    scenario compare equal even when the server wrote something of its own between two
    lists of one (a new resourceVersion, so other placeholders)."""

    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: SET_ASIDE if k in VOLATILE and isinstance(v, str) and v else walk(v) for k, v in value.items()}
        return value

    return [walk({**e.__dict__, "query": {k: SET_ASIDE if k == "continue" else v for k, v in e.query.items()}})
            for e in Placeholders().apply(exchanges)]
TIMESTAMP = "creationTimestamp"
CREATED = "2026-01-01T00:00:00Z"


class Placeholders:
    """Stable names for the values that change between recordings of the same scenario."""

    def __init__(self) -> None:
        self._names: dict[tuple[str, str], str] = {}

    def apply(self, exchanges: list[Exchange]) -> list[Exchange]:
        out = []
        for e in exchanges:  # requests first: they carry values earlier answers gave
            query = {k: self._name("continue", v) if k == "continue" else v for k, v in e.query.items()}
            body = self._walk(_stable_event(e.body))
            out.append(Exchange(e.method, e.path, query, e.accept, body, e.status, self._walk(_stable_event(e.answer)),
                                e.retry_after))
        return out

    def _name(self, kind: str, value: str) -> str:
        if (kind, value) not in self._names:
            n = sum(1 for k, _ in self._names if k == kind) + 1
            self._names[(kind, value)] = {
                "resourceVersion": f"{1000 + n}",
                "uid": f"00000000-0000-4000-8000-{n:012d}",
                "continue": f"recorded-continue-{n}",
            }[kind]
        return self._names[(kind, value)]

    def _walk(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._walk(v) for v in value]
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k == "managedFields":
                continue
            if k in VOLATILE and isinstance(v, str) and v:
                out[k] = self._name(k, v)
            elif k == TIMESTAMP and isinstance(v, str):
                out[k] = CREATED
            else:
                out[k] = self._walk(v)
        if out.get("kind") == "APIResourceList" and isinstance(out.get("resources"), list):
            out["resources"] = sorted(out["resources"], key=lambda r: str(r.get("name")))
        return out
