"""The recorded answers the fast tests replay (tests/data/recorded) are still what the real
API server answers the agent.

Every scenario of tests/harness/record.py is recorded again, on a private cluster (the
agent lists cluster-wide: the session's cluster, shared with other tests, would add their
objects), and compared with its file exchange by exchange: the same requests in the same
order, the same statuses, the same answers, with the values that differ between any two
recordings (resourceVersions, continue tokens, uids) set aside. When it fails, either the
agent sends something else now (record again, `python -m tests.harness.record`, and
review the diff), or the server answers something else, and the fast tests are asserting
on answers it no longer gives.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.cluster import ClusterUnavailable, LocalCluster
from tests.harness.record import DEFINITIONS, record_all
from tests.harness.recorded import Scenario, comparable, load


@pytest.fixture(scope="module")
def recorded_again(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Scenario]]:
    """Every scenario, recorded again now (the session's `cluster` says the binaries are there)."""
    if os.environ.get("PREPULL_TEST_KUBECONFIG"):
        pytest.skip("needs the local binaries to start a private cluster")
    tmp = tmp_path_factory.mktemp("recorded")
    private = LocalCluster()
    try:
        private.start(tmp / "cluster")
    except ClusterUnavailable as e:
        private.stop()
        if os.environ.get("CI") == "true":  # CI must never pass by skipping
            pytest.fail(f"cannot start a private cluster: {e}", pytrace=False)
        pytest.skip(f"cannot start a private cluster: {e}")
    try:
        yield {s.name: s for s in record_all(private, [], Path(tmp))}
    finally:
        private.stop()


@pytest.mark.parametrize("name", DEFINITIONS)
def test_the_server_still_answers_what_the_recording_says(recorded_again: dict[str, Scenario], name: str):
    stored, now = comparable(load(name).exchanges), comparable(recorded_again[name].exchanges)
    assert [(e["method"], e["path"]) for e in now] == [(e["method"], e["path"]) for e in stored], (
        f"the agent's requests changed: record again (python -m tests.harness.record {name})")
    for i, (was, is_) in enumerate(zip(stored, now, strict=True)):
        assert is_ == was, f"exchange {i} ({was['method']} {was['path']}) is answered otherwise now"
