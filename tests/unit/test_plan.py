"""The planner's promises, with records in and a Plan out: no cluster, no mocks."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from agent.model import NodeInfo, ObjectRef, Role, State, StreamTag, Usage
from agent.placement import Placement
from agent.plan import Plan, PlanInput, Tier, make_plan
from agent.puller import OWNED_ANNOTATION, PullerCR, parse_images, puller_view, read_owned, render_images, render_owned
from agent.refs import ImageRef, parse_reference
from agent.settings import DiskBudget, Settings, SettingsError
from agent.sizes import ImageSizes

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
PLACEHOLDER = "kubernetes-image-puller=quay.io/eclipse/kubernetes-image-puller:next"
GiB = 2**30
APPS = "redhat-ods-applications"


def use(image: str, *, name: str = "wb", ns: str = "team-a", kind: str = "Notebook",
        role: Role = Role.WORKBENCH, state: State = State.RUNNING) -> Usage:
    return Usage(parse_reference(image), ObjectRef(kind, ns, name), "spec.template.spec.containers[wb].image", role, state)


def cr(images: str = "", owned: dict[str, str] | None = None, selector: dict[str, str] | None = None) -> PullerCR:
    return PullerCR("openshift-operators", "image-puller", "7", images, owned or {}, selector or {})


def settings(**selection: object) -> Settings:
    base = Settings()
    sel = {"disk_budget": DiskBudget(bytes=None, fraction=None), "min_score": 0.0, **selection}
    return replace(base, selection=replace(base.selection, **sel))


def digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def reported(sizes: dict[str, int]) -> ImageSizes:
    """What nodes report: each key one `status.images` entry of that one name."""
    found = ImageSizes()
    for name, size in sizes.items():
        found.add([name], size)
    return found


def plan(usages: list[Usage], puller: PullerCR | None = None, *, cfg: Settings | None = None,
         nodes: list[NodeInfo] | None = None, sizes: dict[str, int] | ImageSizes | None = None,
         failed: dict[str, str] | None = None, missing: dict[str, str] | None = None) -> Plan:
    return make_plan(PlanInput(
        usages=usages, puller=puller or cr(), nodes=nodes or [],
        sizes=sizes if isinstance(sizes, ImageSizes) else reported(sizes or {}),
        settings=cfg or settings(), now=NOW, applications_namespace=APPS, failed=failed or {}, missing=missing or {},
    ))


def applied(p: Plan) -> PullerCR:
    """The CR as it would be after writing the plan."""
    d = p.desired
    return replace(cr(render_images(d.entries), dict(d.owned)), entry_kinds=dict(d.entry_kinds),
                   entry_tags=dict(d.entry_tags))


def texts(p: Plan) -> list[str]:
    return [e.text for e in p.desired.entries]


def selected_images(p: Plan) -> list[str]:
    """The images chosen for what they are used for (not the placeholder of an empty list)."""
    return [str(c.image) for c in p.selected if c.tier is not Tier.PLACEHOLDER]


def by_image(p: Plan, image: str):
    return next(c for c in p.candidates if c.image == parse_reference(image))


# -- scoring -----------------------------------------------------------------------------


def test_running_workbench_outranks_stopped_ones():
    usages = [use("quay.io/a/running:1", name="r")] + [
        use("quay.io/a/stopped:1", name=f"s{i}", state=State.STOPPED) for i in range(4)
    ]
    p = plan(usages)
    assert by_image(p, "quay.io/a/running:1").score == 10
    assert by_image(p, "quay.io/a/stopped:1").score == 8
    assert selected_images(p)[0] == "quay.io/a/running:1"


def test_one_object_counts_once_per_image_at_its_heaviest_use():
    usages = [
        use("quay.io/a/wb:1", state=State.STOPPED),
        use("quay.io/a/wb:1", state=State.RUNNING),  # same object, another field
    ]
    assert by_image(plan(usages), "quay.io/a/wb:1").score == 10


def test_recommended_tag_has_a_baseline_even_unused():
    stream = dict(kind="ImageStream", ns=APPS, name="pytorch")
    p = plan([use("quay.io/modh/pytorch:2025.1", state=State.RECOMMENDED, **stream),
              use("quay.io/modh/pytorch:2024.1", state=State.OUTDATED, **stream)],
             cfg=settings(min_score=2.0))
    assert selected_images(p) == ["quay.io/modh/pytorch:2025.1"]
    assert "below the minimum" in by_image(p, "quay.io/modh/pytorch:2024.1").reason


def test_ties_break_by_reference_so_the_order_is_deterministic():
    usages = [use(f"quay.io/x/img{i}:1", name=f"n{i}") for i in (3, 1, 2)]
    assert selected_images(plan(usages)) == ["quay.io/x/img1:1", "quay.io/x/img2:1", "quay.io/x/img3:1"]


# -- ownership and layout --------------------------------------------------------------------

ADMIN = "ubi-minimal=registry.access.redhat.com/ubi9/ubi-minimal:latest"


def test_user_entries_survive_every_cycle():
    puller = cr(f"{ADMIN};\nbroken-entry-without-equals;\n")
    for usages in ([use("quay.io/a/wb:1")], [use("quay.io/a/other:2")], []):
        p = plan(usages, puller)
        assert texts(p)[:2] == [ADMIN, "broken-entry-without-equals"]
        puller = applied(p)


def test_admin_listed_image_is_not_listed_twice():
    p = plan([use("registry.access.redhat.com/ubi9/ubi-minimal:latest")], cr(ADMIN + ";"))
    c = by_image(p, "registry.access.redhat.com/ubi9/ubi-minimal:latest")
    assert not c.selected and "already listed by the administrator as 'ubi-minimal'" in c.reason
    assert texts(p) == [ADMIN]


def test_an_entry_the_admin_edited_becomes_theirs():
    owned = {"wb": "quay.io/a/wb:1"}
    p = plan([], cr("wb=quay.io/a/wb:2;", owned))  # the admin changed the image
    assert texts(p) == ["wb=quay.io/a/wb:2"]
    assert dict(p.desired.owned) == {}


def test_second_cycle_on_the_result_changes_nothing():
    usages = [use("quay.io/a/wb:1"), use("quay.io/a/rt:1", kind="InferenceService", name="m", state=State.READY)]
    first = plan(usages, cr(ADMIN + ";"))
    assert first.changed
    second = plan(usages, applied(first))
    assert not second.changed
    assert second.desired.entries == first.desired.entries


def test_layout_differences_alone_are_not_a_change():
    first = plan([use("quay.io/a/wb:1")], cr(ADMIN))
    one_line = " ; ".join(e.text for e in first.desired.entries)  # as an administrator might reformat it
    assert not plan([use("quay.io/a/wb:1")], replace(applied(first), images=one_line)).changed


def test_names_are_stable_and_new_images_are_appended():
    first = plan([use("quay.io/a/wb:1", name="x")])
    more = [use("quay.io/a/wb:1", name="x"), use("quay.io/b/aaa:1", name="y"), use("quay.io/c/zzz:1", name="z")]
    second = plan(more, applied(first))
    assert texts(second)[0] == "wb=quay.io/a/wb:1"
    assert {e.name for e in second.desired.entries} == {"wb", "aaa", "zzz"}


def test_same_repository_twice_gets_distinct_valid_names():
    p = plan([use("quay.io/a/wb:2025.1", name="x"), use("quay.io/b/wb:2024.2", name="y")])
    names = [e.name for e in p.desired.entries]
    assert names == ["wb", "wb-2024-2"]


def test_rendered_list_reads_back_as_planned_and_marks_ownership():
    p = plan([use("quay.io/a/wb:1"), use("quay.io/a/side:1", role=Role.SIDECAR)], cr(ADMIN))
    text = render_images(p.desired.entries)
    assert text.endswith(";\n") and text.count("\n") == 3
    assert puller_view(text) == {"ubi-minimal": "registry.access.redhat.com/ubi9/ubi-minimal:latest",
                                 "wb": "quay.io/a/wb:1", "side": "quay.io/a/side:1"}
    assert read_owned({OWNED_ANNOTATION: render_owned(p.desired.owned)}) == {"wb": "quay.io/a/wb:1", "side": "quay.io/a/side:1"}
    assert [e.text for e in parse_images(text)] == texts(p)


# -- selection limits -----------------------------------------------------------------------


def test_max_images_cuts_the_ranking():
    usages = [use(f"quay.io/x/img{i}:1", name=f"n{i}") for i in range(5)]
    p = plan(usages, cfg=settings(max_images=2))
    assert len(p.selected) == 2
    assert "over the limit of 2 images" in by_image(p, "quay.io/x/img4:1").reason


def test_disk_budget_is_a_fraction_of_the_smallest_node_the_puller_runs_on():
    nodes = [NodeInfo("big", {"role": "worker"}, 1000 * GiB), NodeInfo("small", {"role": "worker"}, 100 * GiB)]
    a, b = f"quay.io/x/a@{digest('a')}", f"quay.io/x/b@{digest('b')}"
    usages = [use(a, name="a"), use(a, name="a2", ns="team-b"), use(b, name="b"), use(b, name="b", ns="team-b")]
    p = plan(usages, nodes=nodes, sizes={a: 20 * GiB, b: 15 * GiB},
             cfg=settings(disk_budget=DiskBudget(fraction=0.3)))
    assert p.budget_bytes == 30 * GiB
    assert selected_images(p) == [a]
    assert "does not fit the disk budget" in by_image(p, b).reason


def test_sizes_come_from_nodes_by_digest_else_from_the_role_estimate():
    d = "sha256:" + "ab" * 32
    modelcar = [use("quay.io/x/m:1", role=Role.MODELCAR, name="m", ns=ns) for ns in ("team-a", "team-b")]
    p = plan([use(f"quay.io/x/a@{d}"), *modelcar], sizes={f"quay.io/other/a@{d}": 123})
    a, m = by_image(p, f"quay.io/x/a@{d}"), by_image(p, "quay.io/x/m:1")
    assert (a.size_bytes, a.size_known) == (123, True)
    assert (m.size_bytes, m.size_known) == (Settings().sizes.modelcar, False)


def test_pinned_images_are_always_in_and_count_against_the_budget():
    pin, a = f"quay.io/x/pin@{digest('pin')}", f"quay.io/x/a@{digest('a')}"
    p = plan([use(a)], sizes={pin: 8 * GiB, a: 5 * GiB},
             cfg=settings(pinned=(pin,), disk_budget=DiskBudget(bytes=10 * GiB, fraction=None)))
    assert selected_images(p) == [pin]
    assert by_image(p, pin).reason == "pinned in the configuration"


def test_excluded_images_are_always_out_even_when_managed():
    owned = {"a": "quay.io/x/a:1"}
    p = plan([use("quay.io/x/a:1")], cr("a=quay.io/x/a:1;", owned), cfg=settings(exclude=("quay.io/x/*",)),
             failed={"Notebook": "HTTP 500"})
    assert texts(p) == [PLACEHOLDER]
    assert "excluded by pattern 'quay.io/x/*'" in by_image(p, "quay.io/x/a:1").reason


def test_one_namespace_cannot_crowd_out_everyone_else():
    hog = [use(f"quay.io/hog/img{i}:1", ns="hog", name=f"n{i}", state=State.RUNNING) for i in range(10)]
    hog += [use(f"quay.io/hog/img{i}:1", ns="hog", name=f"m{i}", state=State.RUNNING) for i in range(10)]
    shared = [use("quay.io/shared/wb:1", ns=ns, name="w") for ns in ("a", "b")]
    p = plan(hog + shared, cfg=settings(max_images=6, max_per_namespace=2))
    chosen = selected_images(p)
    assert "quay.io/shared/wb:1" in chosen
    assert sum(i.startswith("quay.io/hog/") for i in chosen) == 2
    assert "namespace hog already has 2 images" in by_image(p, "quay.io/hog/img5:1").reason


# -- churn --------------------------------------------------------------------------------


def test_a_managed_image_stays_until_it_falls_behind_by_the_margin():
    incumbent, newcomer = "quay.io/x/old:1", "quay.io/x/new:1"
    first = plan([use(incumbent, name="o")], cfg=settings(max_images=1))
    cfg = settings(max_images=1, retain_margin=0.25)

    def scores(old: int, new: int) -> list[Usage]:
        return [use(incumbent, name=f"o{i}") for i in range(old)] + [use(newcomer, name=f"n{i}") for i in range(new)]

    assert selected_images(plan(scores(5, 6), applied(first), cfg=cfg)) == [incumbent]  # 50*1.25 > 60
    assert selected_images(plan(scores(4, 6), applied(first), cfg=cfg)) == [newcomer]  # 60 beats 50


def test_a_managed_image_keeps_a_lower_minimum_score():
    first = plan([use("quay.io/x/a:1")], cfg=settings(min_score=10))
    weaker = [use("quay.io/x/a:1", state=State.STOPPED) for _ in range(1)]  # score 2
    cfg = replace(settings(min_score=2.5), weights=replace(Settings().weights, stopped=2.0))
    assert selected_images(plan(weaker, applied(first), cfg=cfg)) == ["quay.io/x/a:1"]  # 2 >= 2.5*0.75
    assert selected_images(plan(weaker, cfg=cfg)) == []  # a newcomer needs the full 2.5


# -- safety ---------------------------------------------------------------------------------


def test_a_failed_source_never_shrinks_the_list():
    first = plan([use("quay.io/x/a:1", name="a"), use("quay.io/x/b:1", name="b")])
    p = plan([], applied(first), failed={"Notebook": "403 Forbidden"})
    assert texts(p) == texts(first)
    assert not p.changed
    assert all("could not be listed" in c.reason for c in p.candidates)


def test_without_failures_unused_managed_images_are_dropped():
    first = plan([use("quay.io/x/a:1", name="a"), use("quay.io/x/b:1", name="b")])
    p = plan([use("quay.io/x/a:1", name="a")], applied(first))
    assert texts(p) == ["a=quay.io/x/a:1"]
    assert dict(p.desired.owned) == {"a": "quay.io/x/a:1"}


@pytest.mark.parametrize("bad_pin", ["quay.io/x;y", "UPPER/case:1"])
def test_an_invalid_pinned_reference_stops_the_agent_at_start(bad_pin: str):
    with pytest.raises(SettingsError, match=r"pinned must be a list of image references"):
        settings(pinned=(bad_pin,))


# -- what keeps an entry when a kind cannot be listed ---------------------------------------


def two_entries() -> PullerCR:
    """The agent manages one image found in Notebooks and one found in LLMInferenceServices."""
    first = plan([use("quay.io/x/nb:1", name="n"), use("quay.io/x/llm:1", kind="LLMInferenceService", name="l")])
    assert dict(first.desired.entry_kinds) == {"nb": ("Notebook",), "llm": ("LLMInferenceService",)}
    return applied(first)


def test_a_failed_kind_keeps_only_the_entries_it_supplied():
    p = plan([], two_entries(), failed={"Notebook": "HTTP 503"})
    assert [e.name for e in p.desired.entries] == ["nb"]
    assert by_image(p, "quay.io/x/nb:1").reason == "kept: Notebook could not be listed this cycle"


def test_a_missing_crd_keeps_the_entries_it_supplied():
    p = plan([use("quay.io/x/nb:1", name="n")], two_entries(), missing={"LLMInferenceService": "404"})
    assert [e.name for e in p.desired.entries] == ["llm", "nb"]
    assert not p.changed


def test_a_failed_kind_stays_in_the_record_of_the_entries_it_supplied():
    """An image found in a Notebook and a ServingRuntime; Notebooks cannot be listed for two
    cycles, and the runtime goes away in between: the Notebook (unseen) may still use it, so
    it stays. The first failed cycle must neither forget the Notebook nor write (only the
    record would change). Against the real server: tests/integration/test_once.py
    test_a_denied_source_never_shrinks_the_list."""
    both = [use("quay.io/x/wb:1"), use("quay.io/x/wb:1", kind="ServingRuntime", name="rt")]
    first = applied(plan(both))
    assert first.entry_kinds == {"wb": ("Notebook", "ServingRuntime")}
    denied = plan(both[1:], first, failed={"Notebook": "HTTP 403"})
    assert dict(denied.desired.entry_kinds) == dict(first.entry_kinds) and not denied.changed
    again = plan([], applied(denied), failed={"Notebook": "HTTP 403"})
    assert texts(again) == ["wb=quay.io/x/wb:1"]
    assert by_image(again, "quay.io/x/wb:1").reason == "kept: Notebook could not be listed this cycle"


def test_entries_without_a_record_are_kept_whenever_anything_failed():
    legacy = replace(two_entries(), entry_kinds={})
    p = plan([], legacy, failed={"Template": "403"})
    assert [e.name for e in p.desired.entries] == ["llm", "nb"]


def test_a_failed_dscinitialization_keeps_every_entry():
    p = plan([], two_entries(), failed={"DSCInitialization": "HTTP 500"})
    assert [e.name for e in p.desired.entries] == ["llm", "nb"]


def test_an_administrator_entry_with_a_managed_name_is_not_overridden():
    """The puller keeps the last of two equal names: the agent gives its entry up and lists
    its image under another name, so the administrator's image is the one pulled."""
    mine = applied(plan([use("quay.io/modh/vllm:1")]))
    theirs = replace(mine, images="vllm=quay.io/admin/vllm:9;\n" + mine.images)
    p = plan([use("quay.io/modh/vllm:1")], theirs)
    view = puller_view(render_images(p.desired.entries))
    assert view["vllm"] == "quay.io/admin/vllm:9"
    assert "quay.io/modh/vllm:1" in view.values() and "vllm" not in p.desired.owned


def test_no_entry_is_named_like_the_pullers_own_container():
    p = plan([use("quay.io/x/copy-sleep:1"), use("quay.io/y/copy_sleep:2", name="other")])
    assert "copy-sleep" not in [e.name for e in p.desired.entries]
    assert len(p.desired.entries) == 2


def test_a_managed_image_survives_its_size_becoming_known():
    """Estimated at 6 GiB when written; a node now reports 11 GiB against a 10 GiB budget:
    within the retain margin, the managed image stays; a newcomer of that size would not."""
    cfg = settings(disk_budget=DiskBudget(bytes=10 * GiB, fraction=None), retain_margin=0.25)
    wb = f"quay.io/x/wb@{digest('wb')}"
    shared = [use(wb, ns="team-a"), use(wb, ns="team-b")]
    first = plan(shared, cfg=cfg)
    assert selected_images(first) == [wb]
    now_known = {wb: 11 * GiB}
    assert selected_images(plan(shared, applied(first), cfg=cfg, sizes=now_known)) == [wb]
    assert selected_images(plan(shared, cfg=cfg, sizes=now_known)) == []


# -- tenants cannot steer the list (issue 9) ---------------------------------------------------


def recommended(image: str, stream: str = "wb") -> Usage:
    return use(image, kind="ImageStream", ns=APPS, name=stream, state=State.RECOMMENDED)


def test_shared_images_are_chosen_before_a_busy_projects_own():
    """One project: a runtime of 3 containers behind 30 not-Ready InferenceServices scores 90
    per image, each estimated at the largest estimate (10 GiB). It may not push out what
    several projects use, and its own images get a bounded share of the budget as well as of
    the places."""
    hog = [use(f"quay.io/hog/rt-{c}:1", kind="InferenceService", ns="hog", name=f"isvc-{i}",
               role=Role.SERVING_RUNTIME, state=State.NOT_READY) for i in range(30) for c in "abc"]
    shared = [use(f"quay.io/team/wb-{j}:1", ns=ns, name=f"wb-{j}") for j in range(3) for ns in ("team-a", "team-b")]
    cfg = settings(disk_budget=DiskBudget(bytes=50 * GiB, fraction=None))
    p = plan(hog + shared, cfg=cfg)
    assert by_image(p, "quay.io/hog/rt-a:1").score == 90
    chosen = selected_images(p)
    assert {f"quay.io/team/wb-{j}:1" for j in range(3)} <= set(chosen)
    hogs = [c for c in p.selected if c.namespace == "hog"]
    assert sum(c.size_bytes for c in hogs) <= 50 * GiB * Settings().selection.max_namespace_share
    left_out = by_image(p, "quay.io/hog/rt-c:1")
    assert not left_out.selected and "share of the disk budget" in left_out.reason


def test_platform_images_that_one_project_alone_runs_count_against_its_cap():
    """An outdated tag, an offered tag, a hidden stream, a pipeline runtime and an unused
    template image: a platform object naming each does not make it shared when only one
    project's workloads run it."""
    offers = [
        use("quay.io/p/outdated:1", kind="ImageStream", ns=APPS, name="s1", state=State.OUTDATED),
        use("quay.io/p/offered:1", kind="ImageStream", ns=APPS, name="s2", state=State.OFFERED),
        use("quay.io/p/hidden:1", kind="ImageStream", ns=APPS, name="s3", state=State.OUTDATED),
        use("quay.io/p/pipeline:1", kind="ImageStream", ns=APPS, name="s4", role=Role.PIPELINE_RUNTIME,
            state=State.OFFERED),
        use("quay.io/p/template:1", kind="Template", ns=APPS, name="t", role=Role.SERVING_RUNTIME, state=State.DEFINED),
    ]
    solo = [use(str(o.image), ns="solo", name=f"nb-{i}") for i, o in enumerate(offers)]
    p = plan(offers + solo, cfg=settings(max_per_namespace=3))
    assert {c.tier for c in p.candidates} == {"project"}
    assert len(p.selected) == 3
    assert sum("namespace solo already has 3 images" in c.reason for c in p.candidates) == 2


def test_the_recommended_tag_is_shared_even_when_one_project_runs_it():
    p = plan([recommended("quay.io/p/wb:1"), use("quay.io/p/wb:1", ns="solo")], cfg=settings(max_per_namespace=1))
    assert by_image(p, "quay.io/p/wb:1").tier == "shared"


def test_images_in_use_come_before_images_merely_offered():
    """Four unused recommended workbench images must not push out the image a workbench runs."""
    offered = [recommended(f"quay.io/p/wb-{i}:1", stream=f"s{i}") for i in range(4)]
    used = [use("quay.io/team/own:1", ns="team-a"), use("quay.io/team/own:1", ns="team-b", state=State.STOPPED)]
    p = plan(offered + used, cfg=settings(max_images=2))
    assert selected_images(p)[0] == "quay.io/team/own:1"
    assert by_image(p, "quay.io/p/wb-0:1").score > 0 and by_image(p, "quay.io/p/wb-0:1").tier == "offered"


def test_a_projects_unreported_image_is_estimated_at_the_largest_estimate():
    """Any container of a Notebook but the workbench is a "sidecar", estimated at 200 MiB:
    the project chooses the role, so it must not choose the estimate too."""
    big = [use("quay.io/evil/huge:1", ns="solo", name="nb", role=Role.SIDECAR)]
    p = plan(big, cfg=settings(disk_budget=DiskBudget(bytes=100 * GiB, fraction=None), max_namespace_share=1.0))
    c = by_image(p, "quay.io/evil/huge:1")
    largest = max(Settings().sizes.for_role(r.value) for r in Role)
    assert (c.size_bytes, c.size_known) == (largest, False) == (Settings().sizes.largest(), False)
    shared = plan(big + [use("quay.io/evil/huge:1", ns="other", name="nb", role=Role.SIDECAR)])
    assert by_image(shared, "quay.io/evil/huge:1").size_bytes == Settings().sizes.sidecar
    # its pod asks for a GPU: the accelerated estimates count too (asking can only raise it)
    on_gpu = [replace(big[0], placement=Placement(resources=frozenset({"nvidia.com/gpu"})))]
    c = by_image(plan(on_gpu, cfg=settings(disk_budget=DiskBudget(bytes=100 * GiB, fraction=None),
                                             max_namespace_share=1.0)), "quay.io/evil/huge:1")
    assert c.size_bytes == max(Settings().sizes.for_role(r.value, accelerated=True) for r in Role)
    assert c.size_bytes == Settings().sizes.largest(accelerated=True) > largest


def test_one_projects_unreported_cpu_image_fits_its_share_of_a_cpu_pools_budget():
    """The largest estimate of any role is 20 GiB with the accelerated runtime's: counted for a
    CPU workbench, no project's own image could ever fit half of a 36 GiB CPU pool budget."""
    own = [use("quay.io/team-a/custom-wb:1", ns="team-a", name="wb")]
    p = plan(own, cfg=settings(disk_budget=DiskBudget(bytes=36 * GiB, fraction=None)))
    assert by_image(p, "quay.io/team-a/custom-wb:1").selected


def node_images(*entries: tuple[list[str], int]) -> ImageSizes:
    found = ImageSizes()
    for names, size in entries:
        found.add(names, size)
    return found


def test_a_tags_reported_size_is_listed_as_the_digest_it_was_seen_with():
    """A node reports 100 MiB for a tag the tenant may re-push as 200 GB: the entry lists
    the digest the size belongs to, never the tag."""
    tag, pinned = "quay.io/evil/small:1", f"quay.io/evil/small@{digest('small')}"
    sizes = node_images(([pinned, tag], 100 * 2**20))
    p = plan([use(tag, ns="a"), use(tag, ns="b")], sizes=sizes)
    c = p.selected[0]
    assert (str(c.image), c.size_bytes, c.size_known) == (pinned, 100 * 2**20, True)
    assert [str(t) for t in c.tags] == [tag]
    assert puller_view(render_images(p.desired.entries)) == {"small": pinned}


@pytest.mark.parametrize("entries", [
    [([f"quay.io/evil/small@{digest('one')}", "quay.io/evil/small:1"], 2**20),
     ([f"quay.io/evil/small@{digest('two')}", "quay.io/evil/small:1"], 2**20)],
    [(["quay.io/evil/small:1"], 2**20)],
], ids=["nodes-disagree-on-the-digest", "no-digest-named"])
def test_a_tags_size_without_one_digest_is_unknown(entries):
    p = plan([use("quay.io/evil/small:1", ns="a"), use("quay.io/evil/small:1", ns="b")], sizes=node_images(*entries))
    c = p.selected[0]
    assert (str(c.image), c.size_known) == ("quay.io/evil/small:1", False)
    assert c.size_bytes == Settings().sizes.workbench


def test_one_image_identity_from_the_sources_to_the_entries():
    """A managed entry is matched to its image by the canonical reference, never by text:
    an entry an older version wrote as `quay.io:443/...` stays where and as it is."""
    owned = {"wb": "quay.io:443/x/wb:1"}
    p = plan([use("quay.io/x/wb:1")], replace(cr("wb=quay.io:443/x/wb:1;", owned), entry_kinds={"wb": ("Notebook",)}))
    assert texts(p) == ["wb=quay.io:443/x/wb:1"] and not p.changed
    assert isinstance(p.candidates[0].image, ImageRef)


def test_only_the_entry_kinds_changing_is_a_change():
    first = applied(plan([use("quay.io/x/wb:1")]))
    p = plan([use("quay.io/x/wb:1"), use("quay.io/x/wb:1", kind="InferenceService", name="m")], first)
    assert texts(p) == [e.text for e in first.entries()] and dict(p.desired.owned) == first.owned
    assert p.changed and p.desired.entry_kinds == {"wb": ("InferenceService", "Notebook")}


def test_a_digest_listed_from_node_reports_stays_when_the_nodes_cannot_be_listed():
    tag, pinned = "quay.io/team/wb:1", f"quay.io/team/wb@{digest('wb')}"
    usages = [use(tag, ns="a"), use(tag, ns="b")]
    first = plan(usages, sizes=node_images(([pinned, tag], 2 * GiB)))
    assert first.desired.entry_kinds == {"wb": ("Node", "Notebook")}
    assert first.desired.entry_tags == {"wb": tag}
    p = plan(usages, applied(first), failed={"Node": "HTTP 503"})
    assert texts(p) == [f"wb={pinned}"] and not p.changed


def test_a_digest_listed_for_a_tag_stays_while_no_node_reports_the_tag():
    """The image fell out of every node's 50 largest: the tag keeps meaning the digest listed
    for it, until a node reports the tag with another digest."""
    tag, old, new = "quay.io/team/wb:1", f"quay.io/team/wb@{digest('old')}", f"quay.io/team/wb@{digest('new')}"
    usages = [use(tag, ns="a"), use(tag, ns="b")]
    first = applied(plan(usages, sizes=node_images(([old, tag], 2 * GiB))))
    quiet = plan(usages, first)
    assert texts(quiet) == [f"wb={old}"] and not quiet.changed
    moved = plan(usages, first, sizes=node_images(([new, tag], 2 * GiB)))
    assert texts(moved) == [f"wb={new}"]


def test_two_images_of_one_repository_listed_by_digest_are_named_by_their_tags():
    """Two ModelCars of one catalog repository read as their models, not a hash."""
    a, b = "quay.io/ai/modelcar-catalog:granite-3.1-8b", "quay.io/ai/modelcar-catalog:qwen2.5-7b"
    da, db = f"quay.io/ai/modelcar-catalog@{digest('a')}", f"quay.io/ai/modelcar-catalog@{digest('b')}"
    usages = [use(a, ns="x", name="m1", role=Role.MODELCAR), use(a, ns="y", name="m1", role=Role.MODELCAR),
              use(b, ns="x", name="m2", role=Role.MODELCAR), use(b, ns="y", name="m2", role=Role.MODELCAR)]
    p = plan(usages, sizes=node_images(([da, a], GiB), ([db, b], GiB)))
    names = sorted(e.name for e in p.desired.entries)
    assert names[0] == "modelcar-catalog" and names[1] in ("modelcar-catalog-granite-3-1-8b", "modelcar-catalog-qwen2-5-7b")


# -- issue 12: estimates by accelerator, readable names for one repository's images ----------------


def gpu(usage: Usage, *, hint: bool = False) -> Usage:
    """The usage's pod requests a GPU (or, `hint`, is recommended for one)."""
    where = Placement(one_of_resources=frozenset({"nvidia.com/gpu"})) if hint else \
        Placement(resources=frozenset({"nvidia.com/gpu"}))
    return replace(usage, placement=where)


@pytest.mark.parametrize(
    ("role", "accelerated", "size"),
    [
        (Role.WORKBENCH, False, "workbench"),
        (Role.WORKBENCH, True, "workbench_accelerated"),
        (Role.SERVING_RUNTIME, False, "serving_runtime"),
        (Role.SERVING_RUNTIME, True, "serving_runtime_accelerated"),
        (Role.STORAGE_INITIALIZER, False, "storage_initializer"),
        (Role.STORAGE_INITIALIZER, True, "storage_initializer"),  # no accelerated estimate of its own
        (Role.ROUTER, False, "router"),
    ],
)
def test_an_unreported_images_estimate_depends_on_its_accelerator(role, accelerated, size):
    # shared by two projects, so the estimate is the role's, not a project's largest
    usages = [use("quay.io/x/img:1", ns=ns, role=role) for ns in ("a", "b")]
    if accelerated:
        usages = [gpu(u) for u in usages]
    c = by_image(plan(usages), "quay.io/x/img:1")
    assert (c.size_bytes, c.size_known) == (getattr(Settings().sizes, size), False)


def test_an_offered_image_recommended_for_an_accelerator_takes_the_accelerated_estimate():
    offered = gpu(use("quay.io/x/cuda-wb:1", ns=APPS, kind="ImageStream", state=State.RECOMMENDED), hint=True)
    cpu = use("quay.io/x/cpu-wb:1", ns=APPS, kind="ImageStream", state=State.RECOMMENDED)
    p = plan([offered, cpu])
    assert by_image(p, "quay.io/x/cuda-wb:1").size_bytes == Settings().sizes.workbench_accelerated
    assert by_image(p, "quay.io/x/cpu-wb:1").size_bytes == Settings().sizes.workbench
    assert Settings().sizes.workbench_accelerated > Settings().sizes.workbench


def test_two_custom_images_of_one_repository_are_named_by_their_stream_tag_not_a_hash():
    """Issue 12: `workbench-images` and `workbench-images-f7a152e6` became a readable name."""
    a, b = f"quay.io/acme/workbench-images@{digest('nlp')}", f"quay.io/acme/workbench-images@{digest('cv')}"
    usages = [
        replace(use(a, ns=APPS, name="custom-nlp", kind="ImageStream", state=State.RECOMMENDED),
                stream_tag=StreamTag("", "custom-nlp", "2.0")),
        replace(use(b, ns=APPS, name="custom-cv", kind="ImageStream", state=State.RECOMMENDED),
                stream_tag=StreamTag("", "custom-cv", "1.4")),
    ]
    names = sorted(e.name for e in plan(usages).desired.entries)
    assert names in (["workbench-images", "workbench-images-2-0"], ["workbench-images", "workbench-images-1-4"])
    # a third image under the same tag as another: the stream's name comes next, before any hash
    c = f"quay.io/acme/workbench-images@{digest('geo')}"
    third = replace(use(c, ns=APPS, name="custom-geo", kind="ImageStream", state=State.RECOMMENDED),
                    stream_tag=StreamTag("", "custom-geo", "2.0"))
    by_ref = {e.image: e.name for e in plan([*usages, third]).desired.entries}
    assert sorted(by_ref.values())[0] == "workbench-images"
    assert {by_ref[a], by_ref[c]} - {"workbench-images"} <= {"workbench-images-2-0", "workbench-images-custom-nlp",
                                                            "workbench-images-custom-geo"}
    assert not any(len(n.rpartition("-")[2]) == 8 for n in by_ref.values()), by_ref  # no hash suffix


def test_the_storage_initializer_one_project_uses_is_not_that_projects_own():
    """KServe's ConfigMap (or a ClusterStorageContainer) chooses it; the project only uses it,
    so it must not take one of the project's places (nor its share of the budget)."""
    init = replace(use("quay.io/modh/storage-initializer:1", ns="solo", kind="InferenceService",
                       role=Role.STORAGE_INITIALIZER, state=State.READY), supplier="ConfigMap")
    own = [use(f"quay.io/solo/m{i}:1", ns="solo", name=f"m{i}", kind="InferenceService", role=Role.MODELCAR,
               state=State.READY) for i in range(3)]
    p = plan([init, *own], cfg=settings(max_per_namespace=3))
    c = by_image(p, "quay.io/modh/storage-initializer:1")
    assert (c.tier.value, c.selected, c.size_bytes) == ("shared", True, Settings().sizes.storage_initializer)
    assert all(by_image(p, f"quay.io/solo/m{i}:1").selected for i in range(3))
    # the same image spelled out by the project itself is its own
    mine = replace(init, supplier="")
    assert by_image(plan([mine, *own], cfg=settings(max_per_namespace=3)), str(mine.image)).tier.value == "project"
# -- never break the puller (issue 13) ---------------------------------------------------------


def test_an_empty_plan_never_writes_an_empty_list():
    """";" or "" would crash-loop the puller (no entry); an empty plan lists its own image."""
    for images in ("", ";", " ; ;\n"):
        p = plan([], cr(images))
        assert texts(p) == [PLACEHOLDER]
        assert puller_view(render_images(p.desired.entries)) == {
            "kubernetes-image-puller": "quay.io/eclipse/kubernetes-image-puller:next"}
        (filler,) = p.selected
        assert filler.tier is Tier.PLACEHOLDER and "at least one entry" in filler.reason


def test_the_placeholder_is_the_image_the_cr_runs_the_puller_with():
    p = plan([], replace(cr(), puller_image="registry.example.com/mirror/kubernetes-image-puller:1.1.1"))
    assert texts(p) == ["kubernetes-image-puller=registry.example.com/mirror/kubernetes-image-puller:1.1.1"]


def test_removing_the_last_managed_entry_leaves_the_placeholder_and_it_stays_put():
    first = plan([use("quay.io/x/a:1")])
    emptied = plan([], applied(first))
    assert texts(emptied) == [PLACEHOLDER]
    assert emptied.desired.owned == {"kubernetes-image-puller": "quay.io/eclipse/kubernetes-image-puller:next"}
    assert emptied.desired.entry_kinds == {"kubernetes-image-puller": ()}  # found in no kind
    again = plan([], applied(emptied))
    assert not again.changed


def test_the_placeholder_goes_as_soon_as_anything_is_listed():
    emptied = applied(plan([]))
    p = plan([use("quay.io/x/a:1")], emptied)
    assert texts(p) == ["a=quay.io/x/a:1"]
    assert p.desired.owned == {"a": "quay.io/x/a:1"}


def test_no_failed_kind_keeps_the_placeholder():
    emptied = applied(plan([]))
    p = plan([use("quay.io/x/a:1", kind="ImageStream", state=State.RECOMMENDED)], emptied,
             failed={"Notebook": "HTTP 500"})
    assert texts(p) == ["a=quay.io/x/a:1"]


def test_an_administrator_entry_is_enough_and_malformed_pieces_are_not():
    assert texts(plan([], cr(f"{ADMIN};"))) == [ADMIN]
    assert texts(plan([], cr("broken-entry-without-equals;"))) == ["broken-entry-without-equals", PLACEHOLDER]


# -- fewer rollouts (issue 13) -----------------------------------------------------------------


def paced(usages: list[Usage], puller: PullerCR, *, last_written: datetime | None, interval: float = 300.0,
          cfg: Settings | None = None) -> Plan:
    base = cfg or settings()
    return make_plan(PlanInput(
        usages=usages, puller=puller, nodes=[], sizes=ImageSizes(),
        settings=replace(base, puller=replace(base.puller, min_write_interval_seconds=interval)),
        now=NOW, applications_namespace=APPS, last_written=last_written,
    ))


A, B = use("quay.io/x/a:1", name="a"), use("quay.io/x/b:1", name="b")


def test_a_change_within_the_minimum_interval_waits_and_says_until_when():
    written = applied(plan([A]))
    p = paced([A, B], written, last_written=NOW - timedelta(seconds=60))
    assert not p.changed
    assert p.deferred is not None
    assert p.deferred.until == NOW + timedelta(seconds=240)
    assert [e.text for e in p.deferred.state.entries] == ["a=quay.io/x/a:1", "b=quay.io/x/b:1"]


def test_after_the_interval_or_with_it_off_the_change_is_written():
    written = applied(plan([A]))
    for p in (paced([A, B], written, last_written=NOW - timedelta(seconds=300)),
              paced([A, B], written, last_written=NOW - timedelta(seconds=60), interval=0),
              paced([A, B], written, last_written=None)):
        assert p.deferred is None
        assert texts(p) == ["a=quay.io/x/a:1", "b=quay.io/x/b:1"]


def test_an_entry_the_policy_now_refuses_is_removed_at_once_and_the_rest_waits():
    written = applied(plan([use("quay.io/x/a:1"), use("docker.io/evil/b:1", name="b")]))
    base = settings()
    strict = replace(base, references=replace(base.references, allowed_registries=("quay.io",)))
    p = paced([use("quay.io/x/a:1"), use("quay.io/x/c:1", name="c")], written,
              last_written=NOW - timedelta(seconds=10), cfg=strict)
    assert texts(p) == ["a=quay.io/x/a:1"]  # b removed now
    assert p.desired.owned == {"a": "quay.io/x/a:1"}
    assert p.deferred is not None and [e.text for e in p.deferred.state.entries] == ["a=quay.io/x/a:1", "c=quay.io/x/c:1"]


def test_an_entry_hiding_an_administrators_entry_of_the_same_name_goes_at_once():
    """The puller keeps only the last of two equal names: the agent's `a` must not stay
    beside the administrator's `a`, not even for the interval."""
    puller = cr("a=quay.io/x/a:1;\na=quay.io/admin/a:2;\n", {"a": "quay.io/x/a:1"})
    p = paced([use("quay.io/x/a:1")], puller, last_written=NOW - timedelta(seconds=10))
    assert texts(p) == ["a=quay.io/admin/a:2"]
    assert p.deferred is not None  # listing x/a again under another name waits
    assert [e.text for e in p.deferred.state.entries] == ["a=quay.io/admin/a:2", "a-1=quay.io/x/a:1"]


def test_a_list_the_puller_cannot_run_is_fixed_at_once():
    p = paced([A], cr(";"), last_written=NOW - timedelta(seconds=10))
    assert texts(p) == [PLACEHOLDER]
    assert p.deferred is not None and texts(replace(p, desired=p.deferred.state)) == ["a=quay.io/x/a:1"]


def test_nothing_urgent_and_nothing_else_within_the_interval_writes_nothing():
    written = applied(plan([A]))
    p = paced([A], written, last_written=NOW - timedelta(seconds=10))
    assert not p.changed and p.deferred is None
