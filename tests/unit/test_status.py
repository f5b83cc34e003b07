"""The puller's state, judged from its Deployment and DaemonSet as plain objects: no cluster."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent.metrics import Metrics
from agent.model import NODE_STATUS_MAX_IMAGES, NodeImages, NodeInfo
from agent.outcome import CycleResult, TargetOutcome
from agent.puller import Condition, PullerCR
from agent.settings import Target
from agent.sizes import ImageSizes
from agent.status import Seen, Sync, judge, presence, read_daemonset, read_deployment

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
GRACE = timedelta(minutes=10)
LIST = "ubi=registry.access.redhat.com/ubi9/ubi-minimal:latest;\nvllm=quay.io/modh/vllm:rhoai-2.20-cuda;\n"
ENTRIES = {"ubi": "registry.access.redhat.com/ubi9/ubi-minimal:latest", "vllm": "quay.io/modh/vllm:rhoai-2.20-cuda"}


def cr(images: str = LIST, **fields: Any) -> PullerCR:
    base = PullerCR("openshift-operators", "image-puller", "7", images, {}, {}, images_set=T0 - timedelta(hours=1))
    return replace(base, **fields)


def daemonset(entries: dict[str, str], *, created: datetime = T0, ready: int = 3) -> dict[str, Any]:
    return {
        "metadata": {"name": "kubernetes-image-puller", "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ")},
        "spec": {"template": {"spec": {
            "initContainers": [{"name": "copy-sleep", "image": "quay.io/eclipse/kubernetes-image-puller:next"}],
            "containers": [{"name": n, "image": i} for n, i in entries.items()]}}},
        "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": ready},
    }


def deployment(ready: int = 1) -> dict[str, Any]:
    return {"metadata": {"name": "kubernetes-image-puller"}, "spec": {"replicas": 1},
            "status": {"readyReplicas": ready}}


def seen(ds: dict[str, Any] | None, *, dep: dict[str, Any] | None = None, error: str = "") -> Seen:
    return Seen(read_deployment(dep or deployment()), read_daemonset(ds) if ds else None, daemonset_error=error)


def test_the_daemonset_is_read_as_the_puller_makes_it():
    view = read_daemonset(daemonset(ENTRIES, ready=2))
    assert dict(view.containers) == ENTRIES  # copy-sleep is not an entry
    assert view.puller_image == "quay.io/eclipse/kubernetes-image-puller:next"
    assert (view.desired, view.scheduled, view.ready, view.created) == (3, 3, 2, T0)
    assert read_daemonset({"spec": "garbage", "status": {"numberReady": True}}).ready == 0


def test_in_sync_since_the_daemonset_was_created():
    status, _ = judge(cr(), seen(daemonset(ENTRIES, created=T0 - timedelta(minutes=3))), previous=None, now=T0,
                      grace=GRACE)
    assert status.sync is Sync.IN_SYNC and status.since == T0 - timedelta(minutes=3)
    assert not status.stalled and status.stalled_for(T0) == 0


def test_out_of_sync_names_what_differs_and_warns_only_past_the_grace_period():
    old = {"ubi": ENTRIES["ubi"], "che-code": "quay.io/che-incubator/che-code:next"}
    puller = cr(images_set=T0)  # the list changed at T0; the DaemonSet is older
    early, record = judge(puller, seen(daemonset(old, created=T0 - timedelta(days=1))), previous=None,
                          now=T0 + timedelta(minutes=9), grace=GRACE)
    assert early.sync is Sync.OUT_OF_SYNC and early.since == T0
    assert (early.not_in_daemonset, early.not_in_list) == (("vllm",), ("che-code",))
    assert not early.stalled
    late, _ = judge(puller, seen(daemonset(old, created=T0 - timedelta(days=1))), previous=record,
                    now=T0 + timedelta(minutes=11), grace=GRACE)
    assert "does not hold the entries of spec.images" in late.stalled
    assert "not in the DaemonSet: vllm; not in the list: che-code" in late.stalled
    assert "get configmap k8s-image-puller" in late.hint
    assert late.stalled_for(T0 + timedelta(minutes=11)) == 660


def test_a_changed_image_under_the_same_name_is_out_of_sync():
    other = {**ENTRIES, "vllm": "quay.io/modh/vllm:rhoai-2.19-cuda"}
    status, _ = judge(cr(), seen(daemonset(other)), previous=None, now=T0, grace=GRACE)
    assert status.sync is Sync.OUT_OF_SYNC and status.not_in_daemonset == ("vllm",) and status.not_in_list == ()


def test_missing_without_memory_counts_from_the_lists_last_change():
    status, _ = judge(cr(), seen(None), previous=None, now=T0, grace=GRACE)
    assert status.sync is Sync.MISSING and status.since == T0 - timedelta(hours=1)
    assert "does not exist" in status.stalled
    assert "delete pod -l app=kubernetes-image-puller" in status.hint  # the Deployment is ready: the race


def test_what_serve_remembers_makes_since_exact_and_never_earlier_than_seen():
    _, record = judge(cr(), seen(daemonset(ENTRIES)), previous=None, now=T0, grace=GRACE)
    gone, record = judge(cr(), seen(None), previous=record, now=T0 + timedelta(minutes=5), grace=GRACE)
    assert gone.since == T0  # it was in sync at T0: missing since then at the latest, not since the list's change
    assert not gone.stalled
    still, _ = judge(cr(), seen(None), previous=record, now=T0 + timedelta(minutes=25), grace=GRACE)
    assert still.since == T0 and still.stalled


def test_without_any_time_since_is_unknown_and_the_grace_counts_from_first_seen():
    puller = cr(images_set=None)
    first, record = judge(puller, seen(None), previous=None, now=T0, grace=GRACE)
    assert first.since is None and not first.stalled
    later, _ = judge(puller, seen(None), previous=record, now=T0 + timedelta(minutes=11), grace=GRACE)
    assert later.since is None and later.first_seen == T0
    assert "first seen so 2026-11-27 12:00:00 UTC" in later.stalled


def test_an_unreadable_daemonset_is_unknown_never_a_warning():
    status, _ = judge(cr(), seen(None, error="DaemonSet x/y may not be read: grant get"), previous=None,
                      now=T0 + timedelta(days=3), grace=GRACE)
    assert status.sync is Sync.UNKNOWN and status.error.startswith("DaemonSet x/y may not be read")
    assert not status.stalled


@pytest.mark.parametrize(("dep", "hint"), [
    (None, "does not exist either: the Kubernetes Image Puller operator has not deployed the puller"),
    (deployment(ready=0), "the puller is not running (0/1 ready): see oc -n openshift-operators logs"),
])
def test_the_hint_follows_the_deployment(dep, hint):
    status, _ = judge(cr(), Seen(read_deployment(dep) if dep else None, None), previous=None, now=T0, grace=GRACE)
    assert hint in status.hint


def test_the_degraded_condition_is_shown_where_the_cr_has_conditions():
    conditions = (Condition("Ready", "False"), Condition("Degraded", "True", "DaemonSetFailed", "no containers"))
    status, _ = judge(cr(conditions=conditions), seen(daemonset(ENTRIES)), previous=None, now=T0, grace=GRACE)
    assert status.degraded == "DaemonSetFailed: no containers" and status.has_conditions
    plain, _ = judge(cr(), seen(daemonset(ENTRIES)), previous=None, now=T0, grace=GRACE)
    assert plain.degraded == "" and not plain.has_conditions


# -- presence on the nodes ------------------------------------------------------------------------

X = "quay.io/test/x:1"
X_DIGEST = "quay.io/test/x@sha256:" + "a" * 64


def held(names: set[str], *, count: int, smallest: int, clipped: frozenset[str] = frozenset()) -> NodeInfo:
    return NodeInfo("n", {}, None, images=NodeImages(frozenset(names), count, smallest, clipped))


def test_an_image_is_present_missing_or_unknown_on_each_node():
    sizes = ImageSizes()
    sizes.add([X_DIGEST, X], 5 * 2**30)
    full = NODE_STATUS_MAX_IMAGES
    nodes = [
        held({X, X_DIGEST}, count=full, smallest=2**30),  # present
        held(set(), count=full, smallest=2**30),  # a full list whose smallest is smaller than x: missing
        held(set(), count=full, smallest=10 * 2**30),  # x may be below the 50 largest: unknown
        held(set(), count=3, smallest=2**20),  # the whole store: missing
        NodeInfo("n", {}, None),  # no status.images: unknown
        held(set(), count=full, smallest=2**20, clipped=frozenset({"quay.io/test/x"})),  # x's names cut: unknown
    ]
    (found,) = presence({"x": X}, nodes, sizes)
    assert (found.present, found.missing, found.unknown) == (1, 2, 3)
    assert str(found) == "x: on 1/6 nodes (3 unknown)"
    (small,) = presence({"y": "quay.io/test/y:1"}, nodes, sizes)  # size unknown: missing only on a whole store
    assert (small.present, small.missing, small.unknown) == (0, 1, 5)


def test_presence_matches_the_canonical_spelling_nodes_report():
    node = held({"docker.io/library/nginx:1.27"}, count=1, smallest=1)
    (found,) = presence({"nginx": "nginx:1.27"}, [node], ImageSizes())
    assert found.present == 1


# -- the puller's series ----------------------------------------------------------------------------


def outcome(status_ds: dict[str, Any] | None, present: dict[str, int]) -> TargetOutcome:
    status, _ = judge(cr(), seen(status_ds), previous=None, now=T0, grace=GRACE)
    found = tuple(p for p in presence({n: f"quay.io/x/{n}:1" for n in present}, [], ImageSizes()))
    found = tuple(replace(p, present=present[p.name]) for p in found)
    return TargetOutcome(Target(), None, status=status, presence=found)


def test_metrics_say_the_pullers_state_and_forget_images_no_longer_listed():
    metrics = Metrics(targets=["openshift-operators/image-puller"])
    target = {"target": "openshift-operators/image-puller"}
    metrics.record(CycleResult(outcomes=(outcome(daemonset(ENTRIES, ready=2), {"a": 2, "b": 1}),)))
    value = metrics.registry.get_sample_value
    assert value("prepull_agent_puller_nodes", {**target, "state": "ready"}) == 2
    assert value("prepull_agent_puller_in_sync", target) == 1
    assert value("prepull_agent_puller_stalled", target) == 0
    assert value("prepull_agent_image_nodes_present", {**target, "image": "quay.io/x/b:1"}) == 1
    metrics.record(CycleResult(outcomes=(outcome(None, {"a": 3}),)))
    assert value("prepull_agent_puller_nodes", {**target, "state": "ready"}) is None
    assert value("prepull_agent_puller_in_sync", target) == 0
    assert value("prepull_agent_puller_stalled", target) == 1  # missing since an hour ago
    assert value("prepull_agent_image_nodes_present", {**target, "image": "quay.io/x/b:1"}) is None
    assert value("prepull_agent_image_nodes_present", {**target, "image": "quay.io/x/a:1"}) == 3
