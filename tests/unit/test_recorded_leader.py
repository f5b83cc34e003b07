"""Leader election replayed over what the real API server answered two replicas.

The agent's `LeaderElector` runs over the recording `lease` (tests/harness/record.py
`_lease`: the same steps, on a local kube-apiserver, with the same injected clocks), in
the recorded order: each request must be the next one recorded, so a replica that sent
one request more or less, or another body (holder, times, resourceVersion), fails here.
Faults are injected into the agent's `Kube`, as tests/integration/test_leader.py does.
"""

from __future__ import annotations

import structlog
from kubernetes.client.exceptions import ApiException

from agent.leader import LeaderElector
from tests.harness.record import DURATION, RENEW, RETRY, Clock, elector
from tests.harness.recorded import Replay, replaying

LEASES = "/apis/coordination.k8s.io/v1/namespaces/rec-lease/leases"


def electors() -> tuple[LeaderElector, Clock, LeaderElector, Clock, Replay]:
    """Replicas a and b, each with its own clock, over one replay (as recorded); the lease
    connection never retries (`agent.loop.lease_connection`)."""
    kube, replay = replaying("lease", in_order=True, retries=0)
    a_clock, b_clock = Clock(), Clock()
    return elector(kube, "a", a_clock), a_clock, elector(kube, "b", b_clock), b_clock, replay


def test_a_candidate_takes_a_free_lease_and_renews_it():
    """tests/integration/test_leader.py::test_a_candidate_takes_a_free_lease_and_renews_it"""
    a, a_clock, _, _, replay = electors()
    a.tick()
    assert a.is_leader and a.holds()
    created = replay.sent[-1]
    assert (created.method, created.path, created.status) == ("POST", LEASES, 201)
    assert created.body["spec"]["holderIdentity"] == "a" and created.body["spec"]["leaseDurationSeconds"] == DURATION
    a_clock.advance(RETRY)
    a.tick()
    renewed = replay.sent[-1]
    assert renewed.method == "PUT" and renewed.body["spec"]["renewTime"] > created.body["spec"]["renewTime"]
    assert renewed.body["metadata"]["resourceVersion"] == created.answer["metadata"]["resourceVersion"]
    assert a.holds()


def test_a_follower_takes_the_lease_over_only_once_it_expired_by_its_own_clock():
    """tests/integration/test_leader.py::test_a_follower_takes_the_lease_over_only_once_it_expired_by_its_own_clock"""
    a, a_clock, b, b_clock, replay = electors()
    a.tick()
    a_clock.advance(RETRY)
    a.tick()
    b.tick()
    assert a.is_leader and not b.is_leader and not b.holds()
    b_clock.advance(DURATION - 0.25)  # a has not renewed since b first saw it, but the lease is not over
    b.tick()
    assert not b.is_leader and replay.sent[-1].method == "GET"
    b_clock.advance(0.25)
    b.tick()
    taken = replay.sent[-1]
    assert b.is_leader and taken.method == "PUT" and taken.status == 200
    assert taken.body["spec"]["holderIdentity"] == "b" and taken.body["spec"]["leaseTransitions"] == 1


def test_another_holder_taking_over_stops_the_leader_at_once_and_release_frees_it_once():
    """tests/integration/test_leader.py::test_another_holder_taking_over_stops_the_leader_at_once,
    test_stopping_the_elector_keeps_the_lease_and_release_frees_it_once"""
    a, a_clock, b, b_clock, replay = electors()
    a.tick()
    a_clock.advance(RETRY)
    a.tick()
    b.tick()
    b_clock.advance(DURATION - 0.25)
    b.tick()
    b_clock.advance(0.25)
    b.tick()
    assert b.is_leader
    a_clock.advance(RETRY)  # well within a's renew deadline: only the other holder tells
    with structlog.testing.capture_logs() as events:
        a.tick()
        assert not a.is_leader and not a.holds()
        sent = len(replay.sent)
        a.release()  # a does not hold it: nothing to send
        assert len(replay.sent) == sent
        b.release()
        b.release()  # once only
    freed = replay.sent[-1]
    assert freed.method == "PUT" and freed.body["spec"]["holderIdentity"] is None
    assert not b.is_leader and replay.unanswered() == []
    assert [e["event"] for e in events] == ["lost leadership to another holder", "released the lease"]


def test_a_leader_that_cannot_reach_the_server_stops_holding_at_the_renew_deadline(mocker):
    """tests/integration/test_leader.py::test_a_leader_that_cannot_renew_stops_holding_at_the_renew_deadline"""
    a, clock, _, _, replay = electors()
    a.tick()
    mocker.patch.object(replay, "call_api", side_effect=ApiException(status=500, reason="Internal Server Error"))
    clock.advance(1.0)
    a.tick()  # the renewal fails; within the deadline the leader keeps leading
    assert a.is_leader and a.holds() and not a.api_reachable
    clock.advance(RENEW - 1.0 - 0.25)
    assert a.holds()
    clock.advance(0.25)
    assert a.is_leader and not a.holds()  # no write from now on, whether or not a tick comes
    a.tick()
    assert not a.is_leader
