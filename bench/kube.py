"""A minimal raw HTTP client for the benchmark: the official client's connection settings
and urllib3 pool, none of its per-call machinery.

`Raw.request()` sends bytes and returns `(status, bytes)`. It is safe to share between
threads (urllib3's PoolManager is), with one pooled connection per worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from kubernetes import client as k8s
from kubernetes import config as k8s_config


def api_client(kubeconfig: str, *, pool_size: int = 4) -> k8s.ApiClient:
    cfg = k8s.Configuration()
    k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    cfg.connection_pool_maxsize = pool_size
    return k8s.ApiClient(configuration=cfg)


class Raw:
    def __init__(self, kubeconfig: str, *, pool_size: int = 4, timeout: float = 120.0) -> None:
        self.api = api_client(kubeconfig, pool_size=pool_size)
        self.host = self.api.configuration.host.rstrip("/")
        self.pool = self.api.rest_client.pool_manager
        self.timeout = timeout

    def close(self) -> None:
        self.api.close()

    def headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        # Bearer tokens (exec plugins, rotating files) come from the client's auth settings;
        # client certificates are already in the pool.
        self.api.update_params_for_auth(headers, [], ["BearerToken"])
        return headers

    def request(self, method: str, path: str, *, body: bytes | None = None,
                query: Mapping[str, str] | None = None, content_type: str | None = None) -> tuple[int, bytes]:
        url = self.host + path + ("?" + urlencode(query) if query else "")
        resp = self.pool.request(method, url, body=body, headers=self.headers(content_type),
                                 timeout=self.timeout, retries=False, preload_content=True)
        return resp.status, resp.data
