"""Load YAML fixtures into a cluster: create-or-replace each object, then write its status.

Fixtures describe cluster state the way `kubectl get -o yaml` shows it, status included.
The API server ignores `status` on create and update, so after creating or replacing an
object the loader writes its status through the kind's `/status` subresource when the kind
has one: built-in kinds such as Nodes and Pods, and CRDs declared with
`subresources.status` (both found through API discovery). Kinds without the subresource
keep `status` only if their schema stores it.

Order: Namespaces, then CustomResourceDefinitions (waited for until Established), then
built-in kinds, then kinds served by CRDs; within that, files in sorted order and documents
in file order. `kind: List` documents are flattened.

    python -m tests.harness.loader --kubeconfig PATH [--namespace NS] DIR_OR_FILE...
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

JSON = dict[str, Any]

# Server-owned metadata that `kubectl get -o yaml` output carries and a create refuses.
_SERVER_FIELDS = (
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "managedFields",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)


def request(
    api_client: ApiClient, method: str, path: str, body: JSON | None = None, query: dict[str, Any] | None = None
) -> JSON:
    """One raw JSON call to the API server as `api_client`'s user. Raises ApiException."""
    resp = api_client.call_api(
        path,
        method,
        query_params=list((query or {}).items()),
        header_params={"Accept": "application/json", "Content-Type": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
        _preload_content=False,
    )
    return json.loads(resp.data) if resp.data else {}


@dataclass(frozen=True)
class Resource:
    """How the API serves one kind (from discovery)."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool
    has_status: bool

    def path(self, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
        root = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        parts = [root]
        if self.namespaced:
            parts.append(f"namespaces/{quote(namespace or 'default', safe='')}")
        parts.append(self.plural)
        if name:
            parts.append(quote(name, safe=""))
        if sub:
            parts.append(sub)
        return "/".join(parts)


class Discovery:
    """Resolves apiVersion + kind to a Resource, re-reading discovery for new CRDs."""

    def __init__(self, api_client: ApiClient) -> None:
        self._api = api_client
        self._groups: dict[str, list[JSON]] = {}

    def forget(self) -> None:
        self._groups.clear()

    def resource(self, api_version: str, kind: str, timeout: float = 15.0) -> Resource:
        deadline = time.monotonic() + timeout
        while True:
            found = self._lookup(api_version, kind)
            if found or time.monotonic() > deadline:
                break
            self._groups.pop(api_version, None)  # a CRD may still be appearing
            time.sleep(0.2)
        if not found:
            raise LookupError(f"the server does not serve kind {kind} in {api_version}")
        return found

    def _lookup(self, api_version: str, kind: str) -> Resource | None:
        if api_version not in self._groups:
            path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            try:
                self._groups[api_version] = request(self._api, "GET", path)["resources"]
            except ApiException as e:
                if e.status != 404:
                    raise
                return None
        resources = self._groups[api_version]
        names = {r["name"] for r in resources}
        for r in resources:
            if r["kind"] == kind and "/" not in r["name"]:
                return Resource(api_version, kind, r["name"], r["namespaced"], f"{r['name']}/status" in names)
        return None


@dataclass
class Summary:
    """What an apply did: objects per kind, and statuses written per kind."""

    applied: Counter[str] = field(default_factory=Counter)
    status_written: Counter[str] = field(default_factory=Counter)
    created: int = 0
    replaced: int = 0

    def __str__(self) -> str:
        lines = [
            f"{kind}: {n}" + (f" (status written for {self.status_written[kind]})" if self.status_written[kind] else "")
            for kind, n in sorted(self.applied.items())
        ]
        lines.append(f"total: {sum(self.applied.values())} ({self.created} created, {self.replaced} replaced)")
        return "\n".join(lines)


def read_objects(path: str | os.PathLike[str]) -> list[JSON]:
    """Every object in a YAML file, or in every *.yaml / *.yml file of a dir (sorted)."""
    p = Path(path)
    files = [p] if p.is_file() else sorted(f for f in p.iterdir() if f.is_file() and f.suffix in (".yaml", ".yml"))
    objs: list[JSON] = []
    for f in files:
        with f.open(encoding="utf-8") as fh:
            for doc in yaml.safe_load_all(fh):
                if not doc:
                    continue
                if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                    raise ValueError(f"{f}: a document without kind/apiVersion")
                objs.extend((doc.get("items") or []) if doc["kind"] == "List" else [doc])
    return objs


def apply_dir(api_client: ApiClient, path: str | os.PathLike[str], *, namespace_override: str | None = None) -> Summary:
    """Apply every object found in `path` (a dir or one file); see `apply_objects`."""
    return apply_objects(api_client, read_objects(path), namespace_override=namespace_override)


def apply_objects(api_client: ApiClient, objs: Iterable[JSON], *, namespace_override: str | None = None) -> Summary:
    """Create or replace each object, then write its status where the kind has /status.

    `namespace_override` puts every namespaced object into that namespace.
    """
    objs = list(objs)
    discovery = Discovery(api_client)
    summary = Summary()
    crds = [o for o in objs if o["kind"] == "CustomResourceDefinition"]
    first = [o for o in objs if _group(o) == "" and o["kind"] == "Namespace"] + crds
    for obj in first:
        _apply_one(api_client, discovery, obj, namespace_override, summary)
    if crds:
        _wait_established(api_client, [c["metadata"]["name"] for c in crds])
        discovery.forget()
    crd_kinds = _served_crd_kinds(api_client)
    done = {id(o) for o in first}
    rest = [o for o in objs if id(o) not in done]
    rest.sort(key=lambda o: (_group(o), o["kind"]) in crd_kinds)  # stable: built-ins first
    for obj in rest:
        _apply_one(api_client, discovery, obj, namespace_override, summary)
    return summary


def _group(obj: JSON) -> str:
    return str(obj["apiVersion"]).rpartition("/")[0]


def _served_crd_kinds(api_client: ApiClient) -> set[tuple[str, str]]:
    crds = request(api_client, "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
    return {(c["spec"]["group"], c["spec"]["names"]["kind"]) for c in crds["items"]}


def _wait_established(api_client: ApiClient, names: list[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    for name in names:
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
        while True:
            conds = (request(api_client, "GET", path).get("status") or {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conds):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not Established after {timeout}s")
            time.sleep(0.1)


def _apply_one(
    api_client: ApiClient, discovery: Discovery, obj: JSON, namespace_override: str | None, summary: Summary
) -> None:
    res = discovery.resource(obj["apiVersion"], obj["kind"])
    body = copy.deepcopy(obj)
    status = body.pop("status", None)
    meta = body.setdefault("metadata", {})
    for key in _SERVER_FIELDS:
        meta.pop(key, None)
    if res.namespaced:
        meta["namespace"] = namespace_override or meta.get("namespace") or "default"
    else:
        meta.pop("namespace", None)
    ns, name = meta.get("namespace"), meta["name"]

    try:
        request(api_client, "POST", res.path(ns), body)
        summary.created += 1
    except ApiException as e:
        if e.status != 409:
            raise _explain(e, body) from e
        _put_latest(api_client, res.path(ns, name), lambda current: copy.deepcopy(body))
        summary.replaced += 1
    summary.applied[obj["kind"]] += 1

    if status is not None and res.has_status:
        _put_latest(
            api_client, res.path(ns, name, "status"), lambda current: {**current, "status": copy.deepcopy(status)}
        )
        summary.status_written[obj["kind"]] += 1


def _put_latest(api_client: ApiClient, path: str, make: Callable[[JSON], JSON], attempts: int = 5) -> JSON:
    """PUT `make(current object)` at `path` with the current resourceVersion.

    Retries when the object changed in between (409 Conflict).
    """
    object_path = path.removesuffix("/status")
    for attempt in range(attempts):
        current = request(api_client, "GET", object_path)
        new = make(current)
        new.setdefault("metadata", {})["resourceVersion"] = current["metadata"]["resourceVersion"]
        try:
            return request(api_client, "PUT", path, new)
        except ApiException as e:
            if e.status != 409 or attempt == attempts - 1:
                raise _explain(e, new) from e
    raise AssertionError("unreachable")


def _explain(e: ApiException, obj: JSON) -> ApiException:
    meta = obj.get("metadata", {})
    where = f"{meta.get('namespace')}/{meta.get('name')}" if meta.get("namespace") else meta.get("name")
    e.reason = f"{e.reason} applying {obj.get('kind')} {where}"
    return e


def main(argv: list[str] | None = None) -> int:
    from kubernetes.config import new_client_from_config

    parser = argparse.ArgumentParser(
        prog="python -m tests.harness.loader", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG"),
        help="kubeconfig of the target cluster (default: $KUBECONFIG)",
    )
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument("--namespace", help="put every namespaced object into this namespace")
    parser.add_argument("paths", nargs="+", metavar="DIR_OR_FILE")
    args = parser.parse_args(argv)
    if not args.kubeconfig:
        parser.error("--kubeconfig (or $KUBECONFIG) is required")
    with new_client_from_config(args.kubeconfig, context=args.context) as api_client:
        for path in args.paths:
            print(f"# {path}")
            print(apply_dir(api_client, path, namespace_override=args.namespace))
    return 0


if __name__ == "__main__":
    sys.exit(main())
