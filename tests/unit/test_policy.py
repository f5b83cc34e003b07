"""The references policy: one list of rejections, decided before planning, for every spelling."""

from __future__ import annotations

import pytest

from agent.model import ObjectRef, Rejection, Role, State, Usage
from agent.policy import apply_policy
from agent.refs import parse_reference
from agent.resolve import Inventory
from agent.settings import References


def inventory(*images: str) -> Inventory:
    bad = Rejection("x;y=z", "contains ';'", ObjectRef("Notebook", "t", "bad"), "spec.template.spec.containers[n].image")
    usages = tuple(
        Usage(parse_reference(image), ObjectRef("Notebook", "t", f"nb-{i}"), "spec.template.spec.containers[n].image",
              Role.WORKBENCH, State.RUNNING)
        for i, image in enumerate(images)
    )
    return Inventory(usages, (bad,), ())


def test_denied_and_foreign_registry_references_join_the_one_list_of_rejections():
    refs = References(allowed_registries=("quay.io",), deny=("quay.io/evil/*",))
    out = apply_policy(inventory("quay.io/good/a:1", "quay.io/evil/miner:1", "docker.io/x/y:1"), refs)
    assert [str(u.image) for u in out.usages] == ["quay.io/good/a:1"]
    assert [(r.source.name, r.reason) for r in out.rejections] == [
        ("bad", "contains ';'"),
        ("nb-1", "matches references.deny pattern 'quay.io/evil/*'"),
        ("nb-2", "registry 'docker.io' is not in references.allowed_registries"),
    ]


@pytest.mark.parametrize(("spelling", "pattern"), [
    ("quay.io:443/x/miner:1", "quay.io/x/*"),
    ("QUAY.IO:443/x/miner:1", "quay.io/x/*"),
    ("registry-1.docker.io/x/miner:1", "docker.io/x/*"),
    ("index.docker.io:443/x/miner:1", "docker.io/x/*"),
])
def test_deny_patterns_cannot_be_escaped_by_spelling(spelling, pattern):
    out = apply_policy(inventory(spelling), References(deny=(pattern,)))
    assert out.usages == () and out.rejections[-1].source.name == "nb-0"


def test_allowed_registries_see_one_spelling_of_docker_hub():
    out = apply_policy(inventory("registry-1.docker.io/x/y:1"), References(allowed_registries=("docker.io",)))
    assert [str(u.image) for u in out.usages] == ["docker.io/x/y:1"]


def test_no_policy_leaves_the_inventory_as_it_is():
    given = inventory("quay.io/a/b:1")
    assert apply_policy(given, References()) is given
