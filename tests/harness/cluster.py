"""A real Kubernetes API server for integration tests, driven through hack/local-cluster.sh.

`LocalCluster.start(dir)` runs `hack/local-cluster.sh up DIR` (etcd + kube-apiserver on
127.0.0.1, RBAC on, the project's CRDs installed) and `stop()` runs `down`;
`LocalCluster.attach(kubeconfig)` uses a cluster that is already running instead. It hands
out admin API clients, ServiceAccount tokens (TokenRequest API) and kubeconfigs that
authenticate with such a token, so code can be run with exactly a ServiceAccount's rights.

There is no controller-manager: no `default` ServiceAccount appears in new namespaces and
deleted namespaces are never emptied by the server, hence `delete_namespace`.
"""

from __future__ import annotations

import base64
import os
import shlex
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from kubernetes.client import (
    ApiClient,
    AuthenticationV1TokenRequest,
    CoreV1Api,
    V1ObjectMeta,
    V1ServiceAccount,
    V1TokenRequestSpec,
)
from kubernetes.client.exceptions import ApiException
from kubernetes.config import new_client_from_config

from tests.harness.loader import request

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "hack" / "local-cluster.sh"


class ClusterUnavailable(RuntimeError):
    """The binaries could not be had or the cluster did not start; the message says why."""


def _run_script(*args: str, timeout: float | None = None, env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(
            [str(SCRIPT), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
    except subprocess.TimeoutExpired as e:
        raise ClusterUnavailable(f"hack/local-cluster.sh {' '.join(args)} timed out") from e
    if done.returncode != 0:
        raise ClusterUnavailable(
            f"hack/local-cluster.sh {' '.join(args)} exited {done.returncode}:\n"
            f"{done.stderr.strip()}\n{done.stdout.strip()}".strip()
        )
    return done.stdout


def binaries_dir() -> Path:
    """The dir holding kube-apiserver, etcd, kubectl (builds them once if needed)."""
    return Path(_run_script("binaries").strip().splitlines()[-1])


def read_env(path: Path) -> dict[str, str]:
    """The KEY=value lines the script records in DIR/env."""
    env = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        env[key] = " ".join(shlex.split(value))
    return env


class LocalCluster:
    """One API server: `kubeconfig` (admin), `server` URL, `ca_file` (PEM)."""

    def __init__(self) -> None:
        self.dir: Path | None = None  # set when this object started the cluster
        self.kubeconfig: Path | None = None
        self.server: str | None = None
        self.ca_file: Path | None = None
        self.start_seconds: float | None = None
        self._namespaced_collections: list[str] | None = None

    # ---- lifecycle ------------------------------------------------------------------

    def start(self, dir: str | os.PathLike[str], owner_pid: int | None = None) -> LocalCluster:
        """Start a cluster recorded in `dir` (or reuse the live one recorded there).

        The cluster goes down by itself when process `owner_pid` (default: this one) dies,
        so a test run killed before its teardown leaves nothing running.
        """
        owner = str(owner_pid or os.getpid())
        t0 = time.monotonic()
        _run_script("up", str(dir), timeout=300, env={"PREPULL_CLUSTER_OWNER_PID": owner})
        self.start_seconds = time.monotonic() - t0
        self.dir = Path(dir).resolve()
        env = self.env
        self.kubeconfig = Path(env["KUBECONFIG_FILE"])
        self.server = env["SERVER"]
        self.ca_file = self.dir / "ca.crt"
        return self

    def stop(self) -> None:
        """Stop a cluster this object started (an attached one is left running)."""
        if self.dir is not None:
            _run_script("down", str(self.dir), timeout=60)

    @classmethod
    def attach(cls, kubeconfig: str | os.PathLike[str]) -> LocalCluster:
        """Use a running cluster, as the current context of `kubeconfig` reaches it."""
        self = cls()
        self.kubeconfig = Path(kubeconfig).resolve()
        config = yaml.safe_load(self.kubeconfig.read_text())
        context = next(c["context"] for c in config["contexts"] if c["name"] == config["current-context"])
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        self.server = cluster["server"]
        if "certificate-authority-data" in cluster:
            fd, name = tempfile.mkstemp(prefix="prepull-ca-", suffix=".crt")
            os.write(fd, base64.b64decode(cluster["certificate-authority-data"]))
            os.close(fd)
            self.ca_file = Path(name)
        elif "certificate-authority" in cluster:
            self.ca_file = (self.kubeconfig.parent / cluster["certificate-authority"]).resolve()
        return self

    @property
    def env(self) -> dict[str, str]:
        """What the script recorded: pids, ports, data dir (only for a started cluster)."""
        if self.dir is None:
            raise RuntimeError("an attached cluster has no recorded state")
        return read_env(self.dir / "env")

    # ---- clients and identities -----------------------------------------------------

    def new_api_client(self) -> ApiClient:
        """An API client authenticated as the cluster admin (close it when done)."""
        return new_client_from_config(str(self.kubeconfig))

    def token_for(
        self, namespace: str, service_account: str, audiences: list[str] | None = None, expiration_seconds: int = 3600
    ) -> str:
        """A bound token for `namespace/service_account` (created if missing).

        `audiences` defaults to the API server's own, so the token works against it.
        """
        with self.new_api_client() as api_client:
            core = CoreV1Api(api_client)
            try:
                core.create_namespaced_service_account(
                    namespace, V1ServiceAccount(metadata=V1ObjectMeta(name=service_account))
                )
            except ApiException as e:
                if e.status != 409:
                    raise
            spec = V1TokenRequestSpec(audiences=audiences or [], expiration_seconds=expiration_seconds)
            answer = core.create_namespaced_service_account_token(
                service_account, namespace, AuthenticationV1TokenRequest(spec=spec)
            )
            return str(answer.status.token)

    def kubeconfig_for_token(self, token: str, path: str | os.PathLike[str]) -> Path:
        """Write a kubeconfig for this cluster that authenticates with a bearer token."""
        cluster: dict[str, str] = {"server": str(self.server)}
        if self.ca_file:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca_file.read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "prepull-local", "cluster": cluster}],
            "users": [{"name": "token", "user": {"token": token}}],
            "contexts": [{"name": "prepull-local-token", "context": {"cluster": "prepull-local", "user": "token"}}],
            "current-context": "prepull-local-token",
        }
        path = Path(path)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path

    # ---- namespaces -----------------------------------------------------------------

    def delete_namespace(self, api_client: ApiClient, name: str) -> None:
        """Delete a namespace and everything in it, now.

        Without a namespace controller the server only marks a namespace Terminating and
        keeps its objects, which cluster-wide lists would still return. So: mark it
        Terminating (no new objects), delete every namespaced collection in it (grace
        period 0: no kubelet acknowledges pod deletion), clear the finalizer, delete again.
        Kinds of CRDs created after the first call are not covered.
        """
        ns_path = f"/api/v1/namespaces/{name}"
        try:
            request(api_client, "DELETE", ns_path)
        except ApiException as e:
            if e.status == 404:
                return
            raise
        for collection in self._collections(api_client):
            _delete_collection(api_client, collection.format(ns=name))
        try:
            ns = request(api_client, "GET", ns_path)
            ns["spec"]["finalizers"] = []
            request(api_client, "PUT", f"{ns_path}/finalize", ns)
            request(api_client, "DELETE", ns_path)
        except ApiException as e:
            if e.status != 404:
                raise

    def _collections(self, api_client: ApiClient) -> list[str]:
        """Path templates of every namespaced resource that supports deletecollection."""
        if self._namespaced_collections is None:
            roots = ["/api/v1"] + [
                f"/apis/{g['preferredVersion']['groupVersion']}" for g in request(api_client, "GET", "/apis")["groups"]
            ]
            self._namespaced_collections = [
                f"{root}/namespaces/{{ns}}/{r['name']}"
                for root in roots
                for r in request(api_client, "GET", root)["resources"]
                if r["namespaced"] and "/" not in r["name"] and "deletecollection" in r.get("verbs", [])
            ]
        return self._namespaced_collections


def _delete_collection(api_client: ApiClient, path: str, *, attempts: int = 5) -> None:
    """DELETE a collection; on a loaded machine a collection of large objects (a dozen
    1.4 MB Notebooks) can outlast the API server's request timeout (504): the server goes on
    deleting, so asking again finishes the job."""
    for attempt in range(1, attempts + 1):
        try:
            request(api_client, "DELETE", path, query={"gracePeriodSeconds": 0})
            return
        except ApiException as e:
            if e.status in (404, 405):
                return
            if e.status not in (500, 503, 504) or attempt == attempts:
                raise
        time.sleep(attempt)
