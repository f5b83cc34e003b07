"""The planner's promises, with records in and a Plan out: no cluster, no mocks."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from agent.model import NodeInfo, ObjectRef, Rejection, Role, State, Usage
from agent.plan import Plan, make_plan
from agent.puller import OWNED_ANNOTATION, PullerCR, parse_images, puller_view, read_owned, render_images, render_owned
from agent.refs import parse_reference
from agent.settings import DiskBudget, References, Settings, SettingsError

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
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


def plan(usages: list[Usage], puller: PullerCR | None = None, *, cfg: Settings | None = None,
         nodes: list[NodeInfo] | None = None, sizes: dict[str, int] | None = None,
         failed: dict[str, str] | None = None) -> Plan:
    return make_plan(
        usages=usages, rejections=[], puller=puller or cr(), nodes=nodes or [], sizes=sizes or {},
        failed_sources=failed or {}, applications_namespace=APPS, settings=cfg or settings(), now=NOW,
    )


def applied(p: Plan) -> PullerCR:
    """The CR as it would be after writing the plan."""
    return replace(cr(render_images(p.entries_after), dict(p.owned_after)), entry_kinds=dict(p.entry_kinds_after))


def selected_images(p: Plan) -> list[str]:
    return [c.image for c in p.selected]


def by_image(p: Plan, image: str):
    return next(c for c in p.candidates if c.image == str(parse_reference(image)))


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
        texts = [e.text for e in p.entries_after]
        assert texts[:2] == [ADMIN, "broken-entry-without-equals"]
        puller = applied(p)


def test_admin_listed_image_is_not_listed_twice():
    p = plan([use("registry.access.redhat.com/ubi9/ubi-minimal:latest")], cr(ADMIN + ";"))
    c = by_image(p, "registry.access.redhat.com/ubi9/ubi-minimal:latest")
    assert not c.selected and "already listed by the administrator as 'ubi-minimal'" in c.reason
    assert [e.text for e in p.entries_after] == [ADMIN]


def test_an_entry_the_admin_edited_becomes_theirs():
    owned = {"wb": "quay.io/a/wb:1"}
    p = plan([], cr("wb=quay.io/a/wb:2;", owned))  # the admin changed the image
    assert [e.text for e in p.entries_after] == ["wb=quay.io/a/wb:2"]
    assert dict(p.owned_after) == {}


def test_second_cycle_on_the_result_changes_nothing():
    usages = [use("quay.io/a/wb:1"), use("quay.io/a/rt:1", kind="InferenceService", name="m", state=State.READY)]
    first = plan(usages, cr(ADMIN + ";"))
    assert first.changed
    second = plan(usages, applied(first))
    assert not second.changed
    assert second.entries_after == first.entries_after


def test_layout_differences_alone_are_not_a_change():
    first = plan([use("quay.io/a/wb:1")], cr(ADMIN))
    one_line = " ; ".join(e.text for e in first.entries_after)  # as an administrator might reformat it
    assert not plan([use("quay.io/a/wb:1")], replace(applied(first), images=one_line)).changed


def test_names_are_stable_and_new_images_are_appended():
    first = plan([use("quay.io/a/wb:1", name="x")])
    more = [use("quay.io/a/wb:1", name="x"), use("quay.io/b/aaa:1", name="y"), use("quay.io/c/zzz:1", name="z")]
    second = plan(more, applied(first))
    assert [e.text for e in second.entries_after][0] == "wb=quay.io/a/wb:1"
    assert {e.name for e in second.entries_after} == {"wb", "aaa", "zzz"}


def test_same_repository_twice_gets_distinct_valid_names():
    p = plan([use("quay.io/a/wb:2025.1", name="x"), use("quay.io/b/wb:2024.2", name="y")])
    names = [e.name for e in p.entries_after]
    assert names == ["wb", "wb-2024-2"]


def test_rendered_list_reads_back_as_planned_and_marks_ownership():
    p = plan([use("quay.io/a/wb:1"), use("quay.io/a/side:1", role=Role.SIDECAR)], cr(ADMIN))
    text = render_images(p.entries_after)
    assert text.endswith(";\n") and text.count("\n") == 3
    assert puller_view(text) == {"ubi-minimal": "registry.access.redhat.com/ubi9/ubi-minimal:latest",
                                 "wb": "quay.io/a/wb:1", "side": "quay.io/a/side:1"}
    assert read_owned({OWNED_ANNOTATION: render_owned(p.owned_after)}) == {"wb": "quay.io/a/wb:1", "side": "quay.io/a/side:1"}
    assert [e.text for e in parse_images(text)] == [e.text for e in p.entries_after]


# -- selection limits -----------------------------------------------------------------------


def test_max_images_cuts_the_ranking():
    usages = [use(f"quay.io/x/img{i}:1", name=f"n{i}") for i in range(5)]
    p = plan(usages, cfg=settings(max_images=2))
    assert len(p.selected) == 2
    assert "over the limit of 2 images" in by_image(p, "quay.io/x/img4:1").reason


def test_disk_budget_is_a_fraction_of_the_smallest_target_node():
    nodes = [
        NodeInfo("big", {"role": "worker"}, 1000 * GiB),
        NodeInfo("small", {"role": "worker"}, 100 * GiB),
        NodeInfo("tiny-infra", {"role": "infra"}, 10 * GiB),  # not a target: the selector excludes it
    ]
    sizes = {"quay.io/x/a:1": 20 * GiB, "quay.io/x/b:1": 15 * GiB}
    usages = [use("quay.io/x/a:1", name="a"), use("quay.io/x/a:1", name="a2"), use("quay.io/x/b:1", name="b")]
    p = plan(usages, cr(selector={"role": "worker"}), nodes=nodes, sizes=sizes,
             cfg=settings(disk_budget=DiskBudget(fraction=0.3)))
    assert p.budget_bytes == 30 * GiB
    assert selected_images(p) == ["quay.io/x/a:1"]
    assert "does not fit the disk budget" in by_image(p, "quay.io/x/b:1").reason


def test_sizes_come_from_nodes_by_digest_else_from_the_role_estimate():
    digest = "sha256:" + "ab" * 32
    p = plan([use(f"quay.io/x/a@{digest}"), use("quay.io/x/m:1", role=Role.MODELCAR, name="m")],
             sizes={digest: 123})
    a, m = by_image(p, f"quay.io/x/a@{digest}"), by_image(p, "quay.io/x/m:1")
    assert (a.size_bytes, a.size_known) == (123, True)
    assert (m.size_bytes, m.size_known) == (Settings().sizes.modelcar, False)


def test_pinned_images_are_always_in_and_count_against_the_budget():
    p = plan([use("quay.io/x/a:1")], sizes={"quay.io/x/pin:1": 8 * GiB, "quay.io/x/a:1": 5 * GiB},
             cfg=settings(pinned=("quay.io/x/pin:1",), disk_budget=DiskBudget(bytes=10 * GiB, fraction=None)))
    assert selected_images(p) == ["quay.io/x/pin:1"]
    assert by_image(p, "quay.io/x/pin:1").reason == "pinned in the configuration"


def test_excluded_images_are_always_out_even_when_managed():
    owned = {"a": "quay.io/x/a:1"}
    p = plan([use("quay.io/x/a:1")], cr("a=quay.io/x/a:1;", owned), cfg=settings(exclude=("quay.io/x/*",)),
             failed={"Notebook": "HTTP 500"})
    assert p.entries_after == ()
    assert "excluded by pattern 'quay.io/x/*'" in by_image(p, "quay.io/x/a:1").reason


def test_denied_and_foreign_registry_references_are_rejected():
    cfg = replace(settings(), references=References(allowed_registries=("quay.io",), deny=("quay.io/evil/*",)))
    p = plan([use("quay.io/good/a:1"), use("quay.io/evil/miner:1", name="e"), use("docker.io/x/y:1", name="d")], cfg=cfg)
    assert selected_images(p) == ["quay.io/good/a:1"]
    reasons = sorted(r.reason for r in p.rejected)
    assert reasons == ["matches references.deny pattern 'quay.io/evil/*'",
                       "registry 'docker.io' is not in references.allowed_registries"]


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
    assert [e.text for e in p.entries_after] == [e.text for e in first.entries_after]
    assert not p.changed
    assert all("could not be listed" in c.reason for c in p.candidates)


def test_without_failures_unused_managed_images_are_dropped():
    first = plan([use("quay.io/x/a:1", name="a"), use("quay.io/x/b:1", name="b")])
    p = plan([use("quay.io/x/a:1", name="a")], applied(first))
    assert [e.text for e in p.entries_after] == ["a=quay.io/x/a:1"]
    assert dict(p.owned_after) == {"a": "quay.io/x/a:1"}


def test_rejections_pass_through_to_the_plan():
    bad = Rejection("x;y=z", "contains ';'", ObjectRef("Notebook", "t", "n"), "spec.template.spec.containers[n].image")
    p = make_plan(usages=[], rejections=[bad], puller=cr(), nodes=[], sizes={}, failed_sources={},
                  applications_namespace=APPS, settings=settings(), now=NOW)
    assert p.rejected == (bad,)
    assert p.entries_after == ()


@pytest.mark.parametrize("bad_pin", ["quay.io/x;y", "UPPER/case:1"])
def test_an_invalid_pinned_reference_stops_the_agent_at_start(bad_pin: str):
    with pytest.raises(SettingsError, match=r"pinned must be a list of image references"):
        settings(pinned=(bad_pin,))


# -- what keeps an entry when a kind cannot be listed ---------------------------------------


def two_entries() -> PullerCR:
    """The agent manages one image found in Notebooks and one found in LLMInferenceServices."""
    first = plan([use("quay.io/x/nb:1", name="n"), use("quay.io/x/llm:1", kind="LLMInferenceService", name="l")])
    assert dict(first.entry_kinds_after) == {"nb": ("Notebook",), "llm": ("LLMInferenceService",)}
    return applied(first)


def test_a_failed_kind_keeps_only_the_entries_it_supplied():
    p = make_plan(usages=[], rejections=[], puller=two_entries(), nodes=[], sizes={},
                  failed_sources={"Notebook": "HTTP 503"}, applications_namespace=APPS, settings=settings(), now=NOW)
    assert [e.name for e in p.entries_after] == ["nb"]
    assert by_image(p, "quay.io/x/nb:1").reason == "kept: Notebook could not be listed this cycle"


def test_a_missing_crd_keeps_the_entries_it_supplied():
    p = make_plan(usages=[use("quay.io/x/nb:1", name="n")], rejections=[], puller=two_entries(), nodes=[], sizes={},
                  failed_sources={}, missing_sources={"LLMInferenceService": "404"}, applications_namespace=APPS,
                  settings=settings(), now=NOW)
    assert [e.name for e in p.entries_after] == ["llm", "nb"]
    assert not p.changed


def test_entries_without_a_record_are_kept_whenever_anything_failed():
    legacy = replace(two_entries(), entry_kinds={})
    p = make_plan(usages=[], rejections=[], puller=legacy, nodes=[], sizes={}, failed_sources={"Template": "403"},
                  applications_namespace=APPS, settings=settings(), now=NOW)
    assert [e.name for e in p.entries_after] == ["llm", "nb"]


def test_a_failed_dscinitialization_keeps_every_entry():
    p = make_plan(usages=[], rejections=[], puller=two_entries(), nodes=[], sizes={},
                  failed_sources={"DSCInitialization": "HTTP 500"}, applications_namespace=APPS,
                  settings=settings(), now=NOW)
    assert [e.name for e in p.entries_after] == ["llm", "nb"]


def test_an_administrator_entry_with_a_managed_name_is_not_overridden():
    """The puller keeps the last of two equal names: the agent gives its entry up and lists
    its image under another name, so the administrator's image is the one pulled."""
    mine = applied(plan([use("quay.io/modh/vllm:1")]))
    theirs = replace(mine, images="vllm=quay.io/admin/vllm:9;\n" + mine.images)
    p = plan([use("quay.io/modh/vllm:1")], theirs)
    view = puller_view(render_images(p.entries_after))
    assert view["vllm"] == "quay.io/admin/vllm:9"
    assert "quay.io/modh/vllm:1" in view.values() and "vllm" not in p.owned_after


def test_no_entry_is_named_like_the_pullers_own_container():
    p = plan([use("quay.io/x/copy-sleep:1"), use("quay.io/y/copy_sleep:2", name="other")])
    assert "copy-sleep" not in [e.name for e in p.entries_after]
    assert len(p.entries_after) == 2


def test_a_managed_image_survives_its_size_becoming_known():
    """Estimated at 6 GiB when written; a node now reports 11 GiB against a 10 GiB budget:
    within the retain margin, the managed image stays; a newcomer of that size would not."""
    cfg = settings(disk_budget=DiskBudget(bytes=10 * GiB, fraction=None), retain_margin=0.25)
    first = plan([use("quay.io/x/wb:1")], cfg=cfg)
    assert selected_images(first) == ["quay.io/x/wb:1"]
    now_known = {"quay.io/x/wb:1": 11 * GiB}
    assert selected_images(plan([use("quay.io/x/wb:1")], applied(first), cfg=cfg, sizes=now_known)) == ["quay.io/x/wb:1"]
    assert selected_images(plan([use("quay.io/x/wb:1")], cfg=cfg, sizes=now_known)) == []
