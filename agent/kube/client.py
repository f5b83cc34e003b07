"""The only code that talks to the API server.

`Kube` sends raw requests through the official client's `ApiClient` (which owns
authentication: kubeconfig, exec plugins, in-cluster tokens that rotate) and reads the
answers as plain JSON. Lists are paginated with `limit`/`continue` and yielded a page at a
time, so a caller can keep only the fields it needs and memory stays bounded by one page.
Typed models are never built: on large lists they cost more than the listing itself.

Idempotent reads are retried a bounded number of times on 429 (honouring Retry-After),
5xx and lost connections. Writes are never retried here: the caller decides, because a
write carries a resourceVersion precondition and a retry after an unknown outcome must
re-read first.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from agent.kube.errors import KubeError, ServerError, TooManyRequests, Unreachable, error_for

JSON = dict[str, Any]

MAX_RETRY_AFTER_SECONDS = 10.0


class ConfigError(Exception):
    """No usable connection settings (kubeconfig missing or broken, unknown context)."""


class Kube:
    """Raw JSON access to one API server. Counts the requests it sends."""

    def __init__(
        self,
        api_client: k8s.ApiClient,
        *,
        timeout: float = 30.0,
        retries: int = 2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._api = api_client
        self._timeout = timeout
        self._retries = retries
        self._sleep = sleep
        self.requests = 0

    @property
    def server(self) -> str:
        return str(self._api.configuration.host)

    def close(self) -> None:
        self._api.close()

    # -- reads ---------------------------------------------------------------------------

    def get(self, path: str, *, query: Mapping[str, str] | None = None) -> JSON:
        return self._with_retries("GET", path, lambda: self._send("GET", path, query=query))

    def list_pages(
        self, path: str, *, label_selector: str = "", page_size: int = 500
    ) -> Iterator[tuple[JSON, list[JSON]]]:
        """Yield `(list metadata, items)` for each page of a collection.

        A 410 Gone (the continue token expired) propagates as `Gone`: the caller restarts
        the whole listing, since half a list and the rest of a newer one do not add up.
        """
        query: dict[str, str] = {"limit": str(page_size)}
        if label_selector:
            query["labelSelector"] = label_selector
        page = self.get(path, query=query)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kube-next-page") as pool:
            while True:
                meta = page.get("metadata") or {}
                token = meta.get("continue")
                # Ask for the next page before handing this one out: the server prepares and
                # sends it while the caller reads this one. At most two pages are held.
                following = pool.submit(self.get, path, query={**query, "continue": token}) if token else None
                try:
                    yield meta, page.get("items") or []
                except GeneratorExit:
                    if following is not None:
                        following.cancel()
                    raise
                if following is None:
                    return
                page = following.result()

    # -- writes --------------------------------------------------------------------------

    def patch_merge(self, path: str, body: JSON) -> JSON:
        """JSON merge patch. Include `metadata.resourceVersion` for a precondition."""
        return self._send("PATCH", path, body=body, content_type="application/merge-patch+json")

    def create(self, path: str, body: JSON) -> JSON:
        return self._send("POST", path, body=body, content_type="application/json")

    def replace(self, path: str, body: JSON) -> JSON:
        return self._send("PUT", path, body=body, content_type="application/json")

    # -- plumbing ------------------------------------------------------------------------

    def _with_retries(self, method: str, path: str, send: Callable[[], JSON]) -> JSON:
        attempt = 0
        while True:
            try:
                return send()
            except (TooManyRequests, ServerError, Unreachable) as e:
                if attempt >= self._retries:
                    raise
                attempt += 1
                self._sleep(_retry_delay(e, attempt))

    def _send(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: JSON | None = None,
        content_type: str | None = None,
    ) -> JSON:
        headers = {"Accept": "application/json"}
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
            data = resp.data
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise Unreachable(method=method, path=path, message=f"answer cut short: {_short(e)}") from e
        finally:
            resp.release_conn()
        try:
            doc = json.loads(data)
        except ValueError as e:
            raise Unreachable(method=method, path=path, message=f"answer is not JSON: {e}") from e
        if not isinstance(doc, dict):
            raise Unreachable(method=method, path=path, message="answer is not a JSON object")
        return doc


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


def connect(
    *, kubeconfig: str | None = None, context: str | None = None, timeout: float = 30.0, retries: int = 2
) -> Kube:
    """Connect with a kubeconfig (explicit, $KUBECONFIG, ~/.kube/config) or in-cluster.

    In a pod with no kubeconfig given, the pod's ServiceAccount is used; its token file is
    re-read by the official client as it rotates. `timeout` bounds each request and
    `retries` how often a failed read is retried (0: never, as the leader elector wants).
    """
    cfg = k8s.Configuration()
    in_cluster = "KUBERNETES_SERVICE_HOST" in os.environ and not kubeconfig and not context
    try:
        if in_cluster:
            k8s_config.load_incluster_config(client_configuration=cfg)
        else:
            k8s_config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
    except (k8s_config.ConfigException, OSError, ValueError, TypeError) as e:
        where = "in-cluster service account" if in_cluster else (kubeconfig or "the default kubeconfig")
        raise ConfigError(f"cannot load connection settings from {where}: {e}") from e
    cfg.retries = 0  # our own bounded retries decide; urllib3's would hide failures
    return Kube(k8s.ApiClient(configuration=cfg), timeout=timeout, retries=retries)
