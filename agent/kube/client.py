"""The only code that talks to the API server.

`Kube` sends raw requests through the official client's `ApiClient` (which owns
authentication: kubeconfig, exec plugins, in-cluster tokens that rotate) and reads the
answers as plain JSON. Lists are paginated with `limit`/`continue` and yielded a page at a
time, so a caller can keep only the fields it needs and memory stays bounded by one page.
Typed models are never built: on large lists they cost more than the listing itself.

What one answer may cost is bounded, whatever the objects in it hold (tenants write most
of them). The body is read in chunks and abandoned once it passes `MAX_ANSWER_BYTES` on
the wire or an estimate of `MAX_ANSWER_DECODED_BYTES` once decoded (small dicts cost up to
27 times their JSON). A list page abandoned so is asked for again, from the same continue
token, one object at a time, then more as the sizes seen allow (`_next_ask`); a single
object still too large is skipped and reported (`Page.unread`), its name read from the
metadata-only form of the page. An object `json.loads` cannot decode (nested deeper than
its recursion allows, which the API server accepts in any free-form field) costs no
request: its page is decoded item by item and that one item skipped and reported
(`agent.kube.listjson`). Either way the rest of the list goes on.

`connect` finds the connection settings as kubectl does (--kubeconfig, $KUBECONFIG,
~/.kube/config, then the pod's ServiceAccount) and records where they came from
(`Kube.credentials`), so the start line and error messages can say it.

Idempotent reads are retried a bounded number of times on 429 (honouring Retry-After),
5xx and lost connections. Writes are never retried here: the caller decides, because a
write carries a resourceVersion precondition and a retry after an unknown outcome must
re-read first.

Every request carries the agent's User-Agent (`agent.version.USER_AGENT`) and every write
`fieldManager=prepull-agent` (`agent.version.FIELD_MANAGER`), so `managedFields` and the
audit log name the agent rather than the client library.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.config.incluster_config import InClusterConfigLoader
from kubernetes.config.kube_config import KubeConfigLoader, KubeConfigMerger

from agent.kube.errors import (
    AnswerNotJSON,
    AnswerTooDeep,
    AnswerTooLarge,
    KubeError,
    ServerError,
    TooManyRequests,
    Unreachable,
    UnreadableAnswer,
    error_for,
)
from agent.kube.listjson import BadList, decode_list, skim_list
from agent.version import FIELD_MANAGER, USER_AGENT

JSON = dict[str, Any]
Body = bytes | bytearray

MAX_RETRY_AFTER_SECONDS = 10.0
MiB = 1024 * 1024
# One answer: bytes on the wire, and the estimated size of its decoded Python objects
# (`decoded_size_estimate`). The largest object etcd stores by default (1.5 MiB) decodes to
# at most ~40 MiB, so every storable object fits in a page of its own; the largest page of
# a 500-node cluster (7 MB, ~24 MiB estimated) fits whole.
MAX_ANSWER_BYTES = 16 * MiB
MAX_ANSWER_DECODED_BYTES = 48 * MiB
READ_CHUNK_BYTES = 256 * 1024
# The metadata-only form of a list: names and continue tokens without spec or status
# (as kube-rs/kube asks for it, kube-core/src/request.rs `JSON_METADATA_LIST_MIME`), with
# the full form as the fallback for a server that does not offer it.
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1, application/json"


class ConfigError(Exception):
    """No usable connection settings (kubeconfig missing or broken, unknown context). The
    message is one line that says where the agent looked and what to fix."""


@dataclass(frozen=True)
class Credentials:
    """Where a connection's settings came from, for the start line and error messages."""

    source: str  # "--kubeconfig", "PREPULL_KUBECONFIG", "$KUBECONFIG", "~/.kube/config" or "in-cluster"
    path: str  # the kubeconfig file(s), or the ServiceAccount directory
    context: str = ""  # the kubeconfig context; "" in-cluster
    server: str = ""

    def __str__(self) -> str:
        if self.source == "in-cluster":
            return f"in-cluster ServiceAccount ({self.path})"
        return f"kubeconfig {self.path} ({self.source}), context {self.context or '-'}"


@dataclass(frozen=True, slots=True)
class UnreadObject:
    """An object of a list that was skipped: it could not be read within the bounds."""

    namespace: str  # "" when cluster-scoped (or when not even its metadata could be read)
    name: str
    reason: str  # completes "<kind> <namespace>/<name> ...", e.g. "is nested deeper than ..."


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list: its metadata, its items, and the objects skipped in it."""

    meta: JSON
    items: list[JSON]
    unread: tuple[UnreadObject, ...] = field(default=())


class Kube:
    """Raw JSON access to one API server. Counts the requests it sends."""

    def __init__(
        self,
        api_client: k8s.ApiClient,
        *,
        timeout: float = 30.0,
        retries: int = 2,
        sleep: Callable[[float], None] = time.sleep,
        credentials: Credentials | None = None,
    ) -> None:
        self._api = api_client
        api_client.user_agent = USER_AGENT
        self.credentials = credentials or Credentials(source="", path="", server=str(api_client.configuration.host))
        self._timeout = timeout
        self._retries = retries
        self._sleep = sleep
        self.requests = 0

    @property
    def server(self) -> str:
        return str(self._api.configuration.host)

    def close(self) -> None:
        """Stop the client's thread pool and close its pooled connections now (the official
        client's `close` leaves the sockets to the garbage collector, which warns)."""
        self._api.close()
        self._api.rest_client.pool_manager.clear()

    # -- reads ---------------------------------------------------------------------------

    def get(self, path: str, *, query: Mapping[str, str] | None = None) -> JSON:
        """GET and decode. Raises `UnreadableAnswer` for an answer over the bounds."""
        return _decode(self._fetch(path, query).data, method="GET", path=path)

    def list_pages(
        self, path: str, *, label_selector: str = "", page_size: int = 500, field_selector: str = ""
    ) -> Iterator[Page]:
        """Yield each page of a collection.

        A page's items are the caller's until it asks for the next page: drop them by then,
        so that at most one decoded page is alive (the next one is fetched meanwhile, as
        bytes). A 410 Gone (the continue token expired) propagates as `Gone`: the caller
        restarts the whole listing, since half a list and the rest of a newer one do not add
        up. Objects that cannot be read are skipped into `Page.unread` (see the module
        docstring); an answer that is not a list at all raises `AnswerNotJSON`.
        """
        base: dict[str, str] = {"labelSelector": label_selector} if label_selector else {}
        if field_selector:
            base["fieldSelector"] = field_selector
        token = ""
        ask = page_size
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kube-next-page") as pool:
            ahead: Future[Answer] | None = None
            while True:
                query = _page_query(base, token, ask)
                try:
                    answer = ahead.result() if ahead is not None else self._fetch(path, query)
                except AnswerTooLarge as e:
                    ahead = None
                    if ask > 1:  # ask for one, then more as the sizes seen allow
                        ask = 1
                        continue
                    page = self._skip_one(path, query, e)
                    ask = min(2, page_size)
                else:
                    ahead = None
                    page = _decode_page(answer, path=path)
                    ask = _next_ask(ask, page_size=page_size, answer=answer, objects=len(page.items) + len(page.unread))
                    del answer
                token = str(page.meta.get("continue") or "")
                # Ask for the next page before handing this one out: the server prepares and
                # sends it while the caller reads this one.
                ahead = pool.submit(self._fetch, path, _page_query(base, token, ask)) if token else None
                try:
                    yield page
                except GeneratorExit:
                    if ahead is not None:
                        ahead.cancel()
                    raise
                del page
                if not token:
                    return

    def _skip_one(self, path: str, query: Mapping[str, str], error: UnreadableAnswer) -> Page:
        """The page of one object too large to decode: who it is and where the list goes
        on, from the metadata-only form of the same page, skimmed rather than decoded."""
        answer = self._fetch(path, query, accept=METADATA_LIST, decoded_limit=False)
        skim = skim_list(answer.data)
        if not skim.complete:
            raise AnswerNotJSON(
                method="GET", path=path, message=f"cannot tell which object to skip ({error.message})"
            ) from error
        unread = tuple(UnreadObject(ns, name, error.message) for ns, name in skim.items)
        meta = {"continue": skim.continue_token} if skim.continue_token else {}
        return Page(meta, [], unread)

    def _fetch(
        self,
        path: str,
        query: Mapping[str, str] | None,
        *,
        accept: str = "application/json",
        decoded_limit: bool = True,
    ) -> Answer:
        return self._with_retries(
            lambda: self._request("GET", path, query=query, accept=accept, decoded_limit=decoded_limit)
        )

    # -- writes --------------------------------------------------------------------------

    def patch_merge(self, path: str, body: JSON) -> JSON:
        """JSON merge patch. Include `metadata.resourceVersion` for a precondition."""
        return self._send("PATCH", path, body=body, content_type="application/merge-patch+json")

    def create(self, path: str, body: JSON) -> JSON:
        return self._send("POST", path, body=body, content_type="application/json")

    def replace(self, path: str, body: JSON) -> JSON:
        return self._send("PUT", path, body=body, content_type="application/json")

    # -- plumbing ------------------------------------------------------------------------

    def _with_retries(self, send: Callable[[], Answer]) -> Answer:
        attempt = 0
        while True:
            try:
                return send()
            except (TooManyRequests, ServerError, Unreachable) as e:
                if attempt >= self._retries:
                    raise
                attempt += 1
                self._sleep(_retry_delay(e, attempt))

    def _send(self, method: str, path: str, *, body: JSON, content_type: str) -> JSON:
        query = {"fieldManager": FIELD_MANAGER}
        answer = self._request(method, path, query=query, body=body, content_type=content_type)
        return _decode(answer.data, method=method, path=path)

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: JSON | None = None,
        content_type: str | None = None,
        accept: str = "application/json",
        decoded_limit: bool = True,
    ) -> Answer:
        headers = {"Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        self.requests += 1
        try:
            resp = self._api.call_api(
                path,
                method,
                query_params=list((query or {}).items()),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=self._timeout,
            )
        except k8s.ApiException as e:
            if not e.status:
                raise Unreachable(method=method, path=path, message=str(e.reason)) from e
            raise error_for(
                method=method, path=path, status=e.status, body=e.body, retry_after=_retry_after(e.headers)
            ) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise Unreachable(method=method, path=path, message=_short(e)) from e
        try:
            return _read_body(resp, method=method, path=path, decoded_limit=decoded_limit)
        finally:
            resp.release_conn()


def _page_query(base: Mapping[str, str], token: str, limit: int) -> dict[str, str]:
    query = {"limit": str(limit), **base}
    if token:
        query["continue"] = token
    return query


@dataclass(frozen=True, slots=True)
class Answer:
    """A body as read, with `decoded_size_estimate` of it."""

    data: Body
    decoded_estimate: int


def _read_body(resp: Any, *, method: str, path: str, decoded_limit: bool) -> Answer:
    """The body, read in chunks; abandoned (connection closed) once over the bounds."""
    data = bytearray()
    decoded = 0
    try:
        for chunk in resp.stream(READ_CHUNK_BYTES):
            data += chunk
            decoded += decoded_size_estimate(chunk)
            if len(data) > MAX_ANSWER_BYTES or (decoded_limit and decoded > MAX_ANSWER_DECODED_BYTES):
                resp.close()  # the rest is never read
                raise AnswerTooLarge(method=method, path=path, message=_too_large())
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise Unreachable(method=method, path=path, message=f"answer cut short: {_short(e)}") from e
    return Answer(data, decoded)


def _next_ask(ask: int, *, page_size: int, answer: Answer, objects: int) -> int:
    """The next page's limit: back to `page_size` step by step (doubling) after a smaller
    page, but never more objects than fit in `MAX_ANSWER_DECODED_BYTES` at the size per
    object just seen, so that a run of large objects is read as many a page as fit
    without asking for more, and being abandoned, again and again."""
    per_object = answer.decoded_estimate / max(objects, 1)
    fits = int(MAX_ANSWER_DECODED_BYTES // max(per_object, 1))
    return max(1, min(page_size, 2 * ask, fits))


def _decode_page(answer: Answer, *, path: str) -> Page:
    """A list answer as a Page. The fast way first; if any item defeats `json.loads`, item
    by item (`decode_list`), the items it cannot decode skipped into `Page.unread`."""
    try:
        doc = _decode(answer.data, method="GET", path=path)
    except (AnswerTooDeep, AnswerNotJSON):
        try:
            found = decode_list(answer.data, too_deep=_too_deep())
        except BadList as e:
            raise AnswerNotJSON(method="GET", path=path, message=f"is not a list answer: {_short(e)}") from e
        unread = tuple(UnreadObject(ns, name, why) for ns, name, why in found.unread)
        return Page(found.meta, found.items, unread)
    meta, items = doc.get("metadata"), doc.get("items")
    return Page(meta if isinstance(meta, dict) else {}, items if isinstance(items, list) else [])


def decoded_size_estimate(chunk: Body) -> int:
    """About how many bytes `json.loads` makes of `chunk`, erring high: a dict with keys
    ~184 bytes (up to 5 entries), an empty one 64, a list 56, 8 per element, a string ~49
    plus its text, each further dict entry ~40 (its slot and its share of the table's
    growth; counted over the chunk, as entries beyond five per dict).
    (Against tracemalloc on CPython 3.11: about the real size for dense shapes such as
    `[{}, {}, ...]`, about twice it for the pages of the bench estate, never under 0.75 of
    it: tests/unit/test_listjson.py.)"""
    opens, empty = chunk.count(b"{"), chunk.count(b"{}")
    entries = chunk.count(b":")
    return (
        len(chunk)
        + 184 * opens
        - 120 * empty
        + 56 * chunk.count(b"[")
        + 8 * chunk.count(b",")
        + 24 * chunk.count(b'"')
        + 40 * max(0, entries - 5 * (opens - empty))  # entries past the 5 a small dict holds
    )


def _decode(data: Body, *, method: str, path: str) -> JSON:
    try:
        doc = json.loads(data)
    except RecursionError as e:
        raise AnswerTooDeep(method=method, path=path, message=_too_deep()) from e
    except ValueError as e:
        raise AnswerNotJSON(method=method, path=path, message=f"is not JSON the agent can read: {_short(e)}") from e
    if not isinstance(doc, dict):
        raise AnswerNotJSON(method=method, path=path, message="is not a JSON object")
    return doc


def _too_large() -> str:
    return (
        f"is larger than the agent reads in one answer ({MAX_ANSWER_BYTES // MiB} MiB on the wire, "
        f"about {MAX_ANSWER_DECODED_BYTES // MiB} MiB decoded)"
    )


def _too_deep() -> str:
    return f"is nested deeper than the {sys.getrecursionlimit():,} levels the JSON reader allows"


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    if not headers:
        return None
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return float(str(value)) if value is not None else None
    except ValueError:
        return None


def _retry_delay(error: KubeError, attempt: int) -> float:
    if error.retry_after is not None:
        return min(max(float(error.retry_after), 0.0), MAX_RETRY_AFTER_SECONDS)
    return min(0.25 * 2.0 ** (attempt - 1), 2.0)


def _short(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def connect(
    *,
    kubeconfig: str | None = None,
    origin: str = "--kubeconfig",
    context: str | None = None,
    timeout: float = 30.0,
    retries: int = 2,
    env: Mapping[str, str] | None = None,
    service_account_dir: str = SERVICE_ACCOUNT_DIR,
) -> Kube:
    """Connect as kubectl would: an explicit `kubeconfig` (named by `origin`), else the
    files of $KUBECONFIG, else ~/.kube/config, else the pod's ServiceAccount.

    The order and its details follow client-go (kubernetes/kubernetes,
    staging/src/k8s.io/client-go/tools/clientcmd/loader.go and merged_client_builder.go):
    an explicit file must exist; files named in $KUBECONFIG that do not exist are skipped;
    in-cluster settings are used only when no kubeconfig is found. So `oc login` in a
    workbench or web terminal wins over the pod's ServiceAccount. The ServiceAccount token
    is re-read by the official client as it rotates. `timeout` bounds each request and
    `retries` how often a failed read is retried (0: never, as the leader elector wants).
    Raises `ConfigError` with one line that says where the agent looked.
    """
    env = os.environ if env is None else env
    cfg = k8s.Configuration()
    if kubeconfig:
        path = os.path.expanduser(kubeconfig)
        if not os.path.exists(path):
            raise ConfigError(f"kubeconfig {path} (from {origin}) does not exist: fix the path, or leave it out to "
                              "use $KUBECONFIG, ~/.kube/config or the pod's ServiceAccount")
        credentials = _from_kubeconfig(cfg, [path], source=origin, context=context)
    else:
        found, looked = _kubeconfig_files(env)
        if found:
            credentials = _from_kubeconfig(cfg, found, source=looked[0][0], context=context)
        elif context:
            raise ConfigError(f"--context {context} needs a kubeconfig, and none was found: {_looked(looked)}")
        else:
            credentials = _in_cluster(cfg, env, service_account_dir, looked)
    cfg.retries = 0  # our own bounded retries decide; urllib3's would hide failures
    credentials = Credentials(credentials.source, credentials.path, credentials.context, str(cfg.host))
    return Kube(k8s.ApiClient(configuration=cfg), timeout=timeout, retries=retries, credentials=credentials)


def _kubeconfig_files(env: Mapping[str, str]) -> tuple[list[str], list[tuple[str, str]]]:
    """The kubeconfig files to merge, and (source, what was found) for every place looked at."""
    listed = env.get("KUBECONFIG", "")
    if listed:
        paths = [os.path.expanduser(p) for p in listed.split(os.pathsep) if p]
        found = [p for p in paths if os.path.exists(p)]
        return found, [("$KUBECONFIG", f"{listed} ({'found' if found else 'no such file'})")]
    default = _home(env) / ".kube" / "config"
    if default.exists():
        return [str(default)], [("~/.kube/config", str(default))]
    return [], [("$KUBECONFIG", "not set"), ("~/.kube/config", f"{default} (no such file)")]


def _home(env: Mapping[str, str]) -> Path:
    """$HOME, else the user's entry; "/" for an arbitrary UID with neither (OpenShift)."""
    if env.get("HOME"):
        return Path(env["HOME"])
    try:
        return Path.home()
    except (KeyError, RuntimeError):
        return Path("/")


def _looked(looked: list[tuple[str, str]]) -> str:
    return "; ".join(f"{source}: {what}" for source, what in looked)


def _from_kubeconfig(cfg: k8s.Configuration, paths: list[str], *, source: str, context: str | None) -> Credentials:
    shown = os.pathsep.join(paths)
    try:
        merged = KubeConfigMerger(shown)
        if merged.config is None:
            raise k8s_config.ConfigException("no configuration found")
        loader = KubeConfigLoader(
            config_dict=merged.config, active_context=context, config_base_path=None,
            config_persister=merged.save_changes,
        )
        loader.load_and_set(cfg)
        name = str(loader.current_context.get("name", ""))
    except yaml.YAMLError as e:
        raise ConfigError(f"kubeconfig {shown} ({source}) is not valid YAML: {_yaml_problem(e)}; fix the file "
                          "or point --kubeconfig at another") from e
    except Exception as e:  # noqa: BLE001 - the client raises anything from a malformed file
        raise ConfigError(f"kubeconfig {shown} ({source}) cannot be used: {_one_line(e)}") from e
    return Credentials(source=source, path=shown, context=name)


def _in_cluster(
    cfg: k8s.Configuration, env: Mapping[str, str], service_account_dir: str, looked: list[tuple[str, str]]
) -> Credentials:
    host = env.get("KUBERNETES_SERVICE_HOST", "")
    if not host:
        looked = [*looked, ("in-cluster", "KUBERNETES_SERVICE_HOST is not set")]
        raise ConfigError(f"no kubeconfig found and not in a pod ({_looked(looked)}): log in (oc login) or "
                          "pass --kubeconfig FILE")
    token = os.path.join(service_account_dir, "token")
    try:
        InClusterConfigLoader(
            token_filename=token, cert_filename=os.path.join(service_account_dir, "ca.crt"), environ=env
        ).load_and_set(cfg)
    except (k8s_config.ConfigException, OSError, ValueError) as e:
        looked = [*looked, ("in-cluster", f"{_one_line(e)} ({service_account_dir})")]
        raise ConfigError(f"no usable connection settings ({_looked(looked)}): mount the ServiceAccount token "
                          "(automountServiceAccountToken: true) or pass --kubeconfig FILE") from e
    return Credentials(source="in-cluster", path=service_account_dir)


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or _one_line(error)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else str(problem)


def _one_line(e: BaseException) -> str:
    return " ".join((str(e) or type(e).__name__).split())
