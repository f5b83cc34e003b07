"""The PrometheusRule's alerts, evaluated by Prometheus's own PromQL engine on two replicas'
series (tests/promql/rules_test.go, `go test`): quiet while the leader is healthy whatever
the standby exports (last success 0), firing when the leader is not.

Needs Go (as `make binaries` does): skipped without it, except under CI=true, where it
fails. The first run downloads and compiles Prometheus's PromQL packages (about two
minutes on 2 cores); later runs take seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

PROMQL_TESTS = Path(__file__).resolve().parents[1] / "promql"


def test_the_alerts_are_right_with_two_replicas_in_prometheus_own_engine():
    go = shutil.which("go")
    if go is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no Go under CI: the alert rules cannot be evaluated", pytrace=False)
        pytest.skip("the alert rules are evaluated with Go (>= 1.25): install it to run this test")
    done = subprocess.run([go, "test", "-count=1", "./..."], cwd=PROMQL_TESTS, capture_output=True, text=True,
                          timeout=900, check=False, env={**os.environ, "GOFLAGS": "-mod=readonly"})
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
