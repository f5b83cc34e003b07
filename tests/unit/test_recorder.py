"""The Events the agent posts on the KubernetesImagePuller, as events.k8s.io/v1 wants them: no cluster
(tests/integration/test_puller_loop.py posts them to the real API server)."""

from __future__ import annotations

from datetime import UTC, datetime

from agent.puller import PullerCR
from agent.recorder import NOTE_MAX_BYTES, EventSeries, _clip, _event

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def cr(*, uid: str, name: str) -> PullerCR:
    return PullerCR("openshift-operators", name, "7", "", {}, {}, uid=uid)


def test_an_event_note_fits_the_api_servers_limit():
    assert len(_clip("é" * 2000).encode()) <= NOTE_MAX_BYTES
    assert _clip("short") == "short"


def test_an_event_is_named_and_shaped_as_events_k8s_io_v1_wants():
    body = _event(cr(uid="u-1", name="p" * 253), type="Normal", reason="ImagesUpdated", action="UpdateImages",
                  note="Added a.", now=T0, instance="prepull-agent-x", stamp=1)
    assert len(body["metadata"]["name"]) <= 253
    assert body["eventTime"] == "2026-11-27T12:00:00.000000Z"
    assert body["regarding"] == {"apiVersion": "che.eclipse.org/v1alpha1", "kind": "KubernetesImagePuller",
                                 "namespace": "openshift-operators", "name": "p" * 253, "uid": "u-1"}
    assert "series" not in body and "resourceVersion" not in body["regarding"]


def test_two_events_of_one_cycle_get_two_names():
    series = EventSeries()
    first, second = series.stamp(T0), series.stamp(T0)
    assert first == int(T0.timestamp() * 1e9) and second == first + 1
    assert series.stamp(T0.replace(hour=13)) > second
