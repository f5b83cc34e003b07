"""Start-up time saved, with records in and figures out: counting each event once, the
bounded summary and its stored form, which events are trusted, what a target saved, and
how measured pulls change the ranking (only where the disk budget forces a choice)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from agent.kubelet import PullMessage, PulledEvent
from agent.model import ObjectRef, Role, State, Usage
from agent.plan import Candidate, Plan, PlanInput, make_plan
from agent.puller import PullerCR, PullerState
from agent.pulls import (
    MAX_NAMESPACES_PER_IMAGE,
    MAX_NODES_PER_IMAGE,
    MAX_SAMPLES_PER_NAMESPACE,
    MAX_SEEN_STORED,
    MAX_STORED_BYTES,
    ImageRecord,
    Summary,
    SummaryError,
    decode,
    encode,
)
from agent.refs import ImageRef, parse_reference
from agent.settings import DiskBudget, Settings
from agent.sizes import ImageSizes
from agent.startup import (
    CAPPED,
    COMBINED,
    MAX_NEW_PER_EVENT,
    NO_SUCH_NODE,
    NODES_UNKNOWN,
    NOT_A_REFERENCE,
    NOT_IN_USE,
    PULLER_POD,
    CyclePulls,
    Trust,
    account,
    count_cycle,
)

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
GiB = 2**30
VLLM = "quay.io/modh/vllm:rhoai-2.19-cuda"
WB = "quay.io/modh/odh-workbench-jupyter-minimal-cpu-py311-ubi9:2025.1"


def pulled(image: str = WB, *, uid: str = "e1", ns: str = "team-a", pod: str = "wb-0", node: str = "worker-0",
           count: int = 1, at: datetime = T0, last: datetime | None = None, seconds: float | None = None,
           size: int | None = None, combined: bool = False, pod_uid: str = "") -> PulledEvent:
    cold = seconds is not None
    message = PullMessage(image, cold=cold, pull_seconds=seconds, size_bytes=size, combined=combined)
    return PulledEvent(uid=uid, namespace=ns, pod=pod, pod_uid=pod_uid or f"{ns}/{pod}", container="spec.containers{c}",
                       node=node, count=count, first=at, last=last or at, message=message)


def use(image: str, ns: str = "team-a", name: str = "wb", state: State = State.RUNNING) -> Usage:
    return Usage(parse_reference(image), ObjectRef("Notebook", ns, name), "spec", Role.WORKBENCH, state)


def trust(*usages: Usage, nodes: tuple[str, ...] | None = ("worker-0", "worker-1", "gpu-0"),
          pullers: tuple[str, ...] = ("openshift-operators",)) -> Trust:
    found = usages or (use(WB), use(VLLM))
    return Trust.of(found, nodes=nodes, puller_namespaces=pullers)


def counted(summary: Summary, *events: PulledEvent, t: Trust | None = None, complete: bool = True) -> CyclePulls:
    return count_cycle(summary, events, t or trust(), assumed_rate=50 * 2**20, listed=len(events),
                       listed_uids=[e.uid for e in events] if complete else None, ignored={})


# -- each event once --------------------------------------------------------------------------


def test_an_event_with_count_five_is_five_starts_and_listing_it_again_adds_nothing():
    summary = Summary()
    first = counted(summary, pulled(count=5))
    assert first.counts.counted == 5 and summary.images[str(parse_reference(WB))].warm == 5
    again = counted(summary, pulled(count=5))
    assert again.counts.counted == 0
    assert summary.images[str(parse_reference(WB))].warm == 5


def test_a_count_that_grows_adds_only_the_increase():
    summary = Summary()
    counted(summary, pulled(count=2))
    later = counted(summary, pulled(count=7, last=T0 + timedelta(minutes=5)))
    assert later.counts.counted == 5
    assert [s.fresh for s in later.starts] == [False]


def test_events_that_expired_are_forgotten_only_after_a_complete_listing():
    summary = Summary()
    counted(summary, pulled(uid="a"), pulled(uid="b"))
    counted(summary, pulled(uid="a"), complete=False)
    assert set(summary.seen) == {"a", "b"}
    counted(summary, pulled(uid="a"))
    assert set(summary.seen) == {"a"}


def test_an_event_left_out_of_the_stored_record_is_never_counted_twice():
    """Past the cut (the newest event left out of the store), an unknown event that began
    before it has only its last occurrence new, and none if it ended before it."""
    summary = Summary(cut=T0 + timedelta(minutes=10))
    assert summary.occurrences("x", 4, first=T0, last=T0 + timedelta(minutes=5)) == (0, False)
    assert summary.occurrences("x", 4, first=T0, last=T0 + timedelta(minutes=20)) == (1, False)
    assert summary.occurrences("x", 4, first=T0 + timedelta(minutes=11), last=T0 + timedelta(minutes=20)) == (4, True)


def test_a_combined_event_counts_only_the_occurrence_it_names():
    summary = Summary()
    cycle = counted(summary, pulled(count=12, combined=True))
    assert cycle.counts.counted == 1 and cycle.counts.ignored == {COMBINED: 11}
    assert not cycle.starts[0].fresh  # it cannot save: the other occurrences are unknown


def test_one_event_counts_at_most_a_hundred_occurrences_a_cycle():
    cycle = counted(Summary(), pulled(count=10_000))
    assert cycle.counts.counted == MAX_NEW_PER_EVENT
    assert cycle.counts.ignored == {CAPPED: 10_000 - MAX_NEW_PER_EVENT}


# -- trust ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("event", "t", "why"), [
    (pulled(), trust(nodes=None), NODES_UNKNOWN),
    (pulled(node="ghost"), trust(), NO_SUCH_NODE),
    (pulled(ns="openshift-operators"), trust(use(WB, ns="openshift-operators")), PULLER_POD),
    (pulled("quay.io/evil/x:1;pwn=y"), trust(), NOT_A_REFERENCE),
    (pulled(VLLM, ns="team-b"), trust(use(VLLM, ns="team-a")), NOT_IN_USE),  # in use elsewhere only
    (pulled("quay.io/team-a/other:1"), trust(), NOT_IN_USE),
    (pulled(ns="team-a"), trust(use(WB, state=State.OFFERED)), NOT_IN_USE),  # offered is not in use
])
def test_an_event_is_believed_only_for_an_existing_node_and_an_image_its_namespace_runs(event, t, why):
    cycle = counted(Summary(), event, t=t)
    assert cycle.starts == () and cycle.counts.untrusted == {why: 1}


@pytest.mark.parametrize("state", [State.RUNNING, State.STARTING, State.STOPPED, State.READY, State.NOT_READY])
def test_an_event_for_any_workload_of_its_namespace_is_believed(state):
    """A workbench still pulling its image is "starting" (its status not ready yet) at the very
    moment the kubelet reports the pull: its events count like a running one's."""
    cycle = counted(Summary(), pulled(ns="team-a"), t=trust(use(WB, state=state)))
    assert len(cycle.starts) == 1 and cycle.counts.untrusted == {}


def test_the_image_text_is_normalised_and_aliased_like_the_usages():
    internal = "image-registry.openshift-image-registry.svc:5000/redhat-ods-applications/minimal:2025.1"
    resolved = parse_reference(WB)

    def alias(ref: ImageRef, namespace: str) -> ImageRef:
        return resolved if str(ref) == internal else ref

    t = Trust.of([use(WB), use("busybox")], nodes=["worker-0"], puller_namespaces=[], alias=alias)
    cycle = counted(Summary(), pulled(internal, uid="a"), pulled("busybox:latest", uid="b"),
                    pulled("docker.io/library/busybox", uid="c"), t=t)
    assert [str(s.image) for s in cycle.starts] == [WB, "docker.io/library/busybox:latest"] + [
        "docker.io/library/busybox:latest"]


# -- the summary's figures and bounds ---------------------------------------------------------------


def test_the_median_gives_each_namespace_one_vote():
    record = ImageRecord()
    for seconds in (300, 310, 320):
        record.add_sample("team-a", seconds, 0)
    for _ in range(8):
        record.add_sample("forger", 10_000, 0)
    assert record.median() == pytest.approx((310 + 10_000) / 2)
    record.add_sample("team-c", 330, 0)
    assert record.median() == 330  # two of three namespaces say about five minutes


def test_samples_nodes_and_namespaces_are_bounded():
    record = ImageRecord()
    for i in range(40):
        record.add_sample(f"ns-{i}", float(i), 0)
        record.add_node(f"node-{i}")
    for i in range(40):
        record.add_sample("ns-39", float(i), 0)
    assert len(record.samples) == MAX_NAMESPACES_PER_IMAGE
    assert len(record.samples["ns-39"]) == MAX_SAMPLES_PER_NAMESPACE
    assert len(record.nodes) == MAX_NODES_PER_IMAGE


def test_the_pull_rate_ignores_pulls_that_found_their_layers_cached():
    summary = Summary()
    summary.images["a"] = ImageRecord(samples={"team-a": [(10.0, 1000_000_000), (0.2, 1000_000_000)]})
    assert summary.rate() == pytest.approx(100_000_000)


def test_the_stored_summary_reads_back_and_stays_under_its_bound():
    summary = Summary()
    counted(summary, pulled(seconds=62.5, size=4 * GiB, uid="u-1"), pulled(uid="u-2", pod="wb-1", count=3))
    target = summary.targets.setdefault("openshift-operators/image-puller", replace_target())
    target.listed[WB] = T0
    back = decode(encode(summary, now=T0))
    assert back.seen == {"u1": 1, "u2": 3}
    assert back.images.keys() == summary.images.keys()
    image = back.images[str(parse_reference(WB))]
    assert (image.cold, image.warm, image.samples) == (1, 3, {"team-a": [(62.5, 4 * GiB)]})
    assert back.targets["openshift-operators/image-puller"].listed == {WB: T0}

    for i in range(20_000):
        summary.mark(f"{i:016x}-4000-8000", 1, last=T0 + timedelta(seconds=i))
    back = decode(encode(summary, now=T0))
    assert len(back.seen) == MAX_SEEN_STORED
    assert f"{19_999:016x}" in back.seen and f"{0:016x}" not in back.seen  # the newest are kept
    assert back.cut == T0 + timedelta(seconds=20_000 - MAX_SEEN_STORED - 1)  # the newest left out


def test_a_summary_too_large_to_store_sheds_events_then_the_least_started_images():
    summary = Summary()
    for i in range(300):
        record = summary.images[f"quay.io/x/image-{i}:1"] = ImageRecord(warm=i)
        for n in range(MAX_NODES_PER_IMAGE):
            record.add_node(f"node-{n}-" + "x" * 240)
    text = encode(summary, now=T0)
    assert len(text) <= MAX_STORED_BYTES
    kept = decode(text).images
    assert "quay.io/x/image-299:1" in kept and "quay.io/x/image-0:1" not in kept


def replace_target():
    from agent.pulls import TargetRecord

    return TargetRecord()


@pytest.mark.parametrize(("doc", "field"), [
    ("not json", "is not JSON"),
    ("[]", "the document must be a mapping"),
    ('{"version": 2}', "version is 2"),
    ('{"version": 1, "seen": {"a": -1}}', "seen[a]"),
    ('{"version": 1, "images": {"x": {"cold": "many"}}}', "images[x].cold"),
    ('{"version": 1, "images": {"x": {"samples": {"ns": [[1]]}}}}', "images[x].samples[ns]"),
    ('{"version": 1, "targets": {"t": {"images": {"i": [1, 2]}}}}', "targets[t].images[i]"),
    ('{"version": 1, "cut": 99999999999999999999}', "cut"),
])
def test_a_stored_summary_that_cannot_be_read_names_the_field(doc: str, field: str):
    with pytest.raises(SummaryError) as refused:
        decode(doc)
    assert field in str(refused.value)


# -- what a target saved --------------------------------------------------------------------------


def candidate(image: str, *, selected: bool = True, managed: bool = True, size: int = 4 * GiB) -> Candidate:
    return Candidate(image=parse_reference(image), score=10, size_bytes=size, size_known=True, roles=("workbench",),
                     sources=(), selected=selected, reason="", managed=managed, name="x" if selected else "")


def a_plan(*candidates: Candidate) -> Plan:
    nothing = PullerState(entries=(), owned={}, entry_kinds={})
    return Plan("openshift-operators", "image-puller", T0, None, 0, tuple(candidates), nothing, nothing)


TARGET = "openshift-operators/image-puller"
POOL = frozenset({"worker-0", "worker-1"})


def listed_before(summary: Summary, *images: str, at: datetime = T0 - timedelta(hours=1)) -> None:
    record = summary.targets.setdefault(TARGET, replace_target())
    for image in images:
        record.listed[str(parse_reference(image))] = at


def test_a_warm_start_of_a_listed_image_saves_its_median_cold_pull_once_per_pod():
    summary = Summary()
    listed_before(summary, WB)
    earlier = counted(summary, pulled(seconds=120.0, uid="cold", pod="wb-9", node="worker-1", at=T0 - timedelta(hours=2)))
    account(earlier, target=TARGET, nodes=POOL, plan=a_plan(candidate(WB)), written=False, now=T0 - timedelta(hours=1))
    cycle = counted(
        summary,
        pulled(seconds=120.0, uid="cold", pod="wb-9", node="worker-1", at=T0 - timedelta(hours=2)),
        pulled(uid="init", pod="wb-0", at=T0),  # a ModelCar's init container and sidecar: one pull avoided
        pulled(uid="side", pod="wb-0", at=T0 + timedelta(seconds=1)),
        pulled(uid="gpu", pod="wb-5", node="gpu-0", at=T0),  # another pool's node
    )
    figures = account(cycle, target=TARGET, nodes=POOL, plan=a_plan(candidate(WB)), written=False, now=T0 + timedelta(hours=1))
    assert (figures.new_warm, figures.new_cold) == (2, 0)
    assert figures.saved_measured == 120.0 and figures.saved_estimated == 0
    pulls = figures.images[parse_reference(WB)]
    assert (pulls.warm, pulls.median_seconds, pulls.seconds_saved, pulls.estimated) == (2, 120.0, 120.0, False)
    assert (figures.starts, figures.warm) == (3, 2)  # the cold pull counted in the first cycle too
    assert figures.warm_share == pytest.approx(2 / 3)


def test_no_saving_for_a_pod_that_pulled_it_cold_a_restart_or_a_start_before_the_listing():
    summary = Summary()
    listed_before(summary, WB, at=T0)
    counted(summary, pulled(uid="restarted", pod="wb-2", at=T0 + timedelta(minutes=1)))
    cycle = counted(
        summary,
        pulled(uid="restarted", pod="wb-2", count=3, at=T0 + timedelta(minutes=1), last=T0 + timedelta(minutes=9)),
        pulled(seconds=30.0, uid="c", pod="wb-1", at=T0 + timedelta(minutes=2)),  # the same pod pulled it
        pulled(uid="w", pod="wb-1", at=T0 + timedelta(minutes=2)),
        pulled(uid="early", pod="wb-3", at=T0 - timedelta(minutes=5)),  # before the agent listed it
    )
    figures = account(cycle, target=TARGET, nodes=POOL, plan=a_plan(candidate(WB)), written=False, now=T0 + timedelta(hours=1))
    assert figures.new_saved == 0.0
    assert figures.new_warm == 4 and figures.new_cold == 1


def test_without_a_cold_pull_the_saving_is_its_size_over_the_pull_rate_and_says_so():
    summary = Summary()
    listed_before(summary, WB)
    counted(summary, pulled(VLLM, seconds=100.0, size=10 * GiB, uid="c", node="gpu-0"))  # sets the observed rate
    cycle = counted(summary, pulled(uid="w"))
    figures = account(cycle, target=TARGET, nodes=POOL, plan=a_plan(candidate(WB, size=4 * GiB)), written=False,
                      now=T0 + timedelta(hours=1))
    assert figures.rate_observed and figures.rate == pytest.approx(10 * GiB / 100)
    assert figures.saved_estimated == pytest.approx(40.0) and figures.saved_measured == 0
    assert figures.images[parse_reference(WB)].estimated


def test_only_images_the_agent_lists_there_now_save_and_new_ones_are_listed_from_the_write():
    summary = Summary()
    cycle = counted(summary, pulled(uid="w"))
    plan = a_plan(candidate(WB, managed=False), candidate(VLLM, selected=False, managed=True))
    figures = account(cycle, target=TARGET, nodes=POOL, plan=plan, written=True, now=T0 + timedelta(seconds=30.5))
    assert figures.new_saved == 0
    assert summary.targets[TARGET].listed == {WB: T0 + timedelta(seconds=30)}
    assert figures.saved_per_day(figures.images[parse_reference(WB)]) == 0


# -- the ranking ------------------------------------------------------------------------------------


def ranked(usages: list[Usage], *, budget: int | None, pulls: dict[str, float], rate: float = 50 * 2**20,
           sizes: dict[str, int] | None = None, factor: float = 4.0, share: float = 0.5) -> Plan:
    base = Settings()
    cfg = replace(base, selection=replace(base.selection, disk_budget=DiskBudget(bytes=budget, fraction=None),
                                          min_score=0.0, max_namespace_share=share),
                  startup=replace(base.startup, max_rank_factor=factor))
    found = ImageSizes()
    for name, size in (sizes or {}).items():
        found.add([name], size)
    return make_plan(PlanInput(
        usages=usages, puller=PullerCR("openshift-operators", "image-puller", "7", "", {}, {}), nodes=[],
        sizes=found, settings=cfg, now=T0, applications_namespace="redhat-ods-applications",
        pull_seconds={parse_reference(k): v for k, v in pulls.items()}, pull_rate=rate,
    ))


A = "quay.io/x/a@sha256:" + "a" * 64
B = "quay.io/x/b@sha256:" + "b" * 64
C = "quay.io/x/c@sha256:" + "c" * 64


def shared(image: str, score_users: int = 1) -> list[Usage]:
    return [use(image, ns=f"team-{i}", name=f"wb-{i}") for i in range(score_users + 1)]


def test_of_two_equal_images_competing_for_the_last_place_the_slower_pull_wins_it():
    usages = shared(A) + shared(B)
    sizes = {A: 5 * GiB, B: 5 * GiB}
    by_score = ranked(usages, budget=6 * GiB, pulls={}, sizes=sizes)
    assert [str(c.image) for c in by_score.selected] == [A]  # ties break by reference
    measured = ranked(usages, budget=6 * GiB, pulls={A: 60.0, B: 300.0}, sizes=sizes)
    assert [str(c.image) for c in measured.selected] == [B]
    chosen = next(c for c in measured.candidates if c.selected)
    assert chosen.pull_seconds == 300.0 and chosen.pull_factor > 1
    assert "pulls in 5m0s" in chosen.reason


def test_with_no_measured_pull_or_room_for_everything_the_order_is_the_scores():
    usages = shared(A, 3) + shared(B, 2) + shared(C)
    sizes = {A: 5 * GiB, B: 5 * GiB, C: 5 * GiB}
    today = [str(c.image) for c in ranked(usages, budget=11 * GiB, pulls={}, sizes=sizes).candidates]
    assert today == [A, B, C]
    fits = ranked(usages, budget=16 * GiB, pulls={C: 3000.0}, sizes=sizes)
    assert [str(c.image) for c in fits.candidates] == today
    assert all(c.pull_factor == 1.0 for c in fits.candidates)
    unlimited = ranked(usages, budget=None, pulls={C: 3000.0}, sizes=sizes)
    assert [str(c.image) for c in unlimited.candidates] == today


def test_a_measured_pull_moves_the_rank_value_by_at_most_the_factor():
    usages = shared(A, 4) + shared(B)  # A scores 50, B 20
    sizes = {A: 5 * GiB, B: 5 * GiB}
    forged = ranked(usages, budget=6 * GiB, pulls={B: 1e9}, sizes=sizes, factor=2.0)
    assert [str(c.image) for c in forged.selected] == [A]  # 20 x 2 < 50
    assert next(c for c in forged.candidates if str(c.image) == B).pull_factor == 2.0
    bigger = ranked(usages, budget=6 * GiB, pulls={B: 1e9}, sizes=sizes, factor=4.0)
    assert [str(c.image) for c in bigger.selected] == [B]


def test_a_projects_share_of_the_budget_forces_a_choice_among_its_own_images_too():
    usages = [use(A, ns="team-x", name="a"), use(B, ns="team-x", name="b")]
    sizes = {A: 5 * GiB, B: 5 * GiB}
    plan = ranked(usages, budget=20 * GiB, pulls={A: 60.0, B: 300.0}, sizes=sizes, share=0.3)  # 6 GiB: one of two
    assert [str(c.image) for c in plan.selected] == [B]
    assert [str(c.image) for c in ranked(usages, budget=20 * GiB, pulls={A: 60.0, B: 300.0}, sizes=sizes,
                                         share=0.5).selected] == [A, B]  # both fit: the score's order


def test_no_pull_time_lifts_a_projects_own_image_over_a_shared_one():
    own = [use(C, ns="team-x", name=f"wb-{i}") for i in range(10)]  # one project, score 100
    usages = own + shared(A)  # shared, score 20
    plan = ranked(usages, budget=6 * GiB, pulls={C: 1e9, A: 1.0}, sizes={A: 5 * GiB, C: 5 * GiB})
    assert [str(c.image) for c in plan.selected] == [A]
    assert [c.tier.value for c in plan.candidates] == ["shared", "project"]


def test_every_figure_round_trips_through_json():
    summary = Summary()
    counted(summary, pulled(seconds=1.5, size=3, uid="x"))
    assert json.loads(encode(summary, now=T0))["images"][str(parse_reference(WB))]["samples"] == {"team-a": [[1.5, 3]]}
