"""Shared fixtures: one real API server per test session, a fresh namespace per test.

Tests under tests/integration/ are marked `integration`; only they should ask for
`cluster`, `api_client` or `namespace`. The cluster is the one named by
PREPULL_TEST_KUBECONFIG when that is set, else a new one started in a pytest temp dir (a
developer's `make cluster-up` cluster in .cluster/ is never touched) and stopped at the end.
Without binaries the integration tests skip with instructions, except under CI=true, where
they fail: CI must never pass by skipping them.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `pytest` run without `python -m`: make `tests.` importable
    sys.path.insert(0, str(REPO_ROOT))

from kubernetes.client import ApiClient, CoreV1Api, V1Namespace, V1ObjectMeta  # noqa: E402

from tests.harness.cluster import ClusterUnavailable, LocalCluster, binaries_dir  # noqa: E402

INTEGRATION_DIR = REPO_ROOT / "tests" / "integration"
_timings: dict[str, float] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if "start" in _timings:
        terminalreporter.write_line(
            f"local cluster: binaries ready in {_timings['binaries']:.1f}s, API server up in {_timings['start']:.1f}s"
        )


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"no test cluster under CI: {reason}", pytrace=False)
    pytest.skip(
        "integration tests need kube-apiserver and etcd: install Go >= 1.25 and run "
        "`make binaries`, or set KUBEBUILDER_ASSETS to a dir holding kube-apiserver "
        f"and etcd; or point PREPULL_TEST_KUBECONFIG at a running cluster. ({reason})"
    )


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """The session's API server (admin kubeconfig, server URL, CA file, token helpers)."""
    kubeconfig = os.environ.get("PREPULL_TEST_KUBECONFIG")
    if kubeconfig:
        yield LocalCluster.attach(kubeconfig)
        return
    started = LocalCluster()
    try:
        t0 = time.monotonic()
        binaries_dir()
        _timings["binaries"] = time.monotonic() - t0
        started.start(tmp_path_factory.mktemp("cluster"))
        _timings["start"] = started.start_seconds or 0.0
    except ClusterUnavailable as e:
        started.stop()
        _unavailable(str(e))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def api_client(cluster: LocalCluster) -> Iterator[ApiClient]:
    """An admin API client for the session cluster."""
    with cluster.new_api_client() as client:
        yield client


def _new_namespace(api_client: ApiClient, request: pytest.FixtureRequest, prefix: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    name = f"{prefix}-{slug[:50].rstrip('-')}-{secrets.token_hex(3)}"
    CoreV1Api(api_client).create_namespace(V1Namespace(metadata=V1ObjectMeta(name=name)))
    return name


@pytest.fixture
def namespace(cluster: LocalCluster, api_client: ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new, empty namespace for this test only, deleted with its contents afterwards."""
    name = _new_namespace(api_client, request, "t")
    yield name
    cluster.delete_namespace(api_client, name)


@pytest.fixture
def second_namespace(cluster: LocalCluster, api_client: ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """Another namespace for this test only: one KubernetesImagePuller per namespace."""
    name = _new_namespace(api_client, request, "u")
    yield name
    cluster.delete_namespace(api_client, name)
