"""Tests for agent.puller: reading and writing the KubernetesImagePuller's spec.images."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.placement import DAEMONSET_TOLERATIONS, Toleration
from agent.puller import (
    OWNED_ANNOTATION,
    RESERVED_NAMES,
    Condition,
    Entry,
    InvalidPullerCR,
    PullerCR,
    entry_name,
    has_entry,
    is_dns1123_label,
    is_object_name,
    parse_images,
    puller_view,
    read_owned,
    read_puller,
    render_images,
    render_owned,
    same_list,
)

PROPERTY = settings(max_examples=300, deadline=None)


@dataclass(frozen=True)
class Ref:
    """Stand-in for agent.refs.ImageRef: only what agent.puller uses."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def short_name(self) -> str:
        return self.repository.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


DIGEST = "sha256:" + "ab" * 32
WORKBENCH = "odh-workbench-jupyter-datascience-cpu-py312-ubi9"


def e(text: str) -> Entry:
    """The entry parse_images makes of one piece."""
    (entry,) = parse_images(text)
    return entry


def hash8(ref: Ref) -> str:
    return hashlib.sha256(str(ref).encode()).hexdigest()[:8]


# --- parse_images -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(None, [], id="none"),
        pytest.param("", [], id="empty"),
        pytest.param("  \n\t ", [], id="only-whitespace"),
        pytest.param(";;\n;", [], id="only-separators"),
        pytest.param("a=x;b=y", [("a=x", "a", "x"), ("b=y", "b", "y")], id="one-line"),
        pytest.param("a=x;b=y;", [("a=x", "a", "x"), ("b=y", "b", "y")], id="one-line-trailing"),
        pytest.param("a=x;\nb=y;\n", [("a=x", "a", "x"), ("b=y", "b", "y")], id="semicolon-newline"),
        pytest.param(
            "\n  a=x;\n  b=y\n  ;c=z  ;  ",
            [("a=x", "a", "x"), ("b=y", "b", "y"), ("c=z", "c", "z")],
            id="indented-mixed",
        ),
        pytest.param("a=x;;  ;b=y", [("a=x", "a", "x"), ("b=y", "b", "y")], id="empty-middle"),
        pytest.param(";a=x", [("a=x", "a", "x")], id="leading-empty"),
        pytest.param(
            "a=x\nb=y", [("a=x\nb=y", None, None)], id="newline-is-not-a-separator"
        ),
        pytest.param("junk;a=x", [("junk", None, None), ("a=x", "a", "x")], id="no-equals-kept"),
        pytest.param("a=b=c", [("a=b=c", None, None)], id="two-equals-kept"),
        pytest.param("a = b", [("a = b", "a ", " b")], id="spaces-around-equals"),
        pytest.param("=img;a=", [("=img", "", "img"), ("a=", "a", "")], id="empty-name-or-image"),
        pytest.param(
            "a=x;a=y", [("a=x", "a", "x"), ("a=y", "a", "y")], id="repeated-name-kept-twice"
        ),
        pytest.param("\xa0a=x\u3000", [("a=x", "a", "x")], id="go-unicode-space-trimmed"),
        pytest.param("\x1ca=x", [("\x1ca=x", "\x1ca", "x")], id="python-only-space-kept"),
    ],
)
def test_parse_images(text: str | None, expected: list[tuple[str, str | None, str | None]]) -> None:
    assert parse_images(text) == tuple(Entry(t, n, i) for t, n, i in expected)


# --- puller_view ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(None, {}, id="none"),
        pytest.param("", {}, id="empty"),
        pytest.param(" ; ", {}, id="blank-pieces"),
        pytest.param("a=x;b=y", {"a": "x", "b": "y"}, id="one-line"),
        pytest.param("a=x;\nb=y;\n", {"a": "x", "b": "y"}, id="semicolon-newline"),
        pytest.param("a=x;", {"a": "x"}, id="trailing-semicolon"),
        pytest.param("a=x;b=y;a=z", {"a": "z", "b": "y"}, id="last-wins"),
        pytest.param("a = b", {"a ": " b"}, id="spaces-around-equals-kept"),
        pytest.param("a=b=c;d=e", {"d": "e"}, id="two-equals-dropped"),
        pytest.param("junk;d=e", {"d": "e"}, id="no-equals-dropped"),
        pytest.param("a=x\nb=y", {}, id="newline-only-is-one-malformed-piece"),
        pytest.param("a=x;;b=y", {"a": "x", "b": "y"}, id="empty-middle"),
        pytest.param("=img", {"": "img"}, id="empty-name-is-read"),
        pytest.param(
            "quay.io/x=y", {"quay.io/x": "y"}, id="invalid-label-still-read"
        ),
    ],
)
def test_puller_view(text: str | None, expected: dict[str, str]) -> None:
    assert puller_view(text) == expected


# --- render_images, same_list, Entry ----------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        pytest.param([], "", id="empty"),
        pytest.param([Entry.of("a", "x")], "a=x;\n", id="one"),
        pytest.param(
            [Entry.of("a", "x"), e("junk"), Entry.of("b", "y")],
            "a=x;\njunk;\nb=y;\n",
            id="malformed-kept-verbatim",
        ),
    ],
)
def test_render_images(entries: list[Entry], expected: str) -> None:
    assert render_images(entries) == expected
    assert parse_images(expected) == tuple(entries)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a=quay.io/x:1;b=registry.io/y@" + DIGEST, id="one-line"),
        pytest.param("  a = b ;junk; c=d=e ;a=z;", id="messy"),
        pytest.param("a=x\nb=y;c=z", id="newline-inside-piece"),
    ],
)
def test_rerender_keeps_puller_view(text: str) -> None:
    rendered = render_images(parse_images(text))
    assert puller_view(rendered) == puller_view(text)
    assert parse_images(rendered) == parse_images(text)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        pytest.param("a=x;b=y", "a=x;\nb=y;\n", True, id="layout-only"),
        pytest.param("a=x;b=y", " a=x ;; b=y ", True, id="spaces-and-empty-pieces"),
        pytest.param("a=x;b=y", "b=y;a=x", False, id="order"),
        pytest.param("a=x;b=y", "a=x;b=z", False, id="image"),
        pytest.param("a=x", "a=x;junk", False, id="malformed-added"),
        pytest.param("", None, True, id="both-empty"),
    ],
)
def test_same_list(a: str | None, b: str | None, same: bool) -> None:
    assert same_list(parse_images(a), parse_images(b)) is same


@pytest.mark.parametrize(
    ("name", "image"),
    [
        pytest.param("Bad", "x", id="uppercase-name"),
        pytest.param("", "x", id="empty-name"),
        pytest.param("a" * 64, "x", id="long-name"),
        pytest.param("a", "", id="empty-image"),
        pytest.param("a", "x;y", id="semicolon"),
        pytest.param("a", "x=y", id="equals"),
        pytest.param("a", "x y", id="space"),
        pytest.param("a", "x\n", id="newline"),
    ],
)
def test_entry_of_refuses_what_cannot_be_written(name: str, image: str) -> None:
    with pytest.raises(ValueError):
        Entry.of(name, image)


@pytest.mark.parametrize(
    ("text", "name", "image"),
    [
        pytest.param("a=x", "b", "x", id="wrong-name"),
        pytest.param("a=b=c", "a", "b=c", id="not-what-the-puller-reads"),
        pytest.param(" a=x", "a", "x", id="untrimmed"),
        pytest.param("a=x;b=y", None, None, id="two-pieces"),
        pytest.param("", None, None, id="empty"),
    ],
)
def test_entry_refuses_inconsistent_fields(text: str, name: str | None, image: str | None) -> None:
    with pytest.raises(ValueError):
        Entry(text, name, image)


# --- is_dns1123_label, entry_name -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("a", True),
        ("0", True),
        ("ose-kube-rbac-proxy", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("", False),
        ("-a", False),
        ("a-", False),
        ("A", False),
        ("a_b", False),
        ("a.b", False),
        ("a\n", False),
    ],
    ids=lambda v: repr(v)[:20],
)
def test_is_dns1123_label(name: str, valid: bool) -> None:
    assert is_dns1123_label(name) is valid


LONG_REPO = "a" * 40 + "_" + "b" * 39  # 80 characters
DASH_AT_CUT = "x" * 62 + "." + "y" * 17  # sanitized, char 63 is '-'


@pytest.mark.parametrize(
    ("ref", "taken", "expected"),
    [
        pytest.param(Ref("quay.io", f"modh/{WORKBENCH}", "2025.1"), (), WORKBENCH, id="workbench"),
        pytest.param(
            Ref("registry.redhat.io", "openshift4/ose-kube-rbac-proxy", "v4.15"),
            (),
            "ose-kube-rbac-proxy",
            id="rbac-proxy",
        ),
        pytest.param(Ref("quay.io", "me/my_model.v2", "1"), (), "my-model-v2", id="dots-underscores"),
        pytest.param(Ref("docker.io", "library/nginx"), (), "nginx", id="plain"),
        pytest.param(Ref("r.io", "x/My__Model"), (), "my-model", id="uppercase-runs"),
        pytest.param(Ref("r.io", "x/__"), (), "image", id="nothing-left"),
        pytest.param(Ref("r.io", "x/3scale"), (), "3scale", id="leading-digit"),
        pytest.param(Ref("r.io", f"x/{LONG_REPO}"), (), "a" * 40 + "-" + "b" * 22, id="80-chars"),
        pytest.param(Ref("r.io", f"x/{DASH_AT_CUT}"), (), "x" * 62, id="cut-at-dash"),
        pytest.param(
            Ref("quay.io", f"modh/{WORKBENCH}", "2025.1"),
            [WORKBENCH],
            f"{WORKBENCH}-2025-1",
            id="taken-tag-suffix",
        ),
        pytest.param(
            Ref("quay.io", "modh/vllm", "2025.1", DIGEST),
            {"vllm"},
            "vllm-2025-1",
            id="tag-and-digest",
        ),
        pytest.param(Ref("quay.io", "modh/vllm", None, DIGEST), {"vllm"}, "HASH", id="digest-only"),
        pytest.param(
            Ref("quay.io", "modh/vllm", "2025.1"), {"vllm", "vllm-2025-1"}, "HASH", id="hash"
        ),
        pytest.param(
            Ref("quay.io", "modh/vllm", "2025.1"),
            {"vllm", "vllm-2025-1", "HASH"},
            "HASH-2",
            id="counter-2",
        ),
        pytest.param(
            Ref("quay.io", "modh/vllm", "2025.1"),
            {"vllm", "vllm-2025-1", "HASH", "HASH-2"},
            "HASH-3",
            id="counter-3",
        ),
        pytest.param(Ref("quay.io", "modh/vllm", "_"), {"vllm"}, "HASH", id="tag-sanitizes-empty"),
        pytest.param(
            Ref("r.io", f"x/{LONG_REPO}", "v1"),
            {LONG_REPO[:63].replace("_", "-")},
            "a" * 40 + "-" + "b" * 19 + "-v1",
            id="80-chars-tag",
        ),
        pytest.param(
            Ref("r.io", f"x/{LONG_REPO}", None, DIGEST),
            {LONG_REPO[:63].replace("_", "-")},
            "a" * 40 + "-" + "b" * 13 + "-HASH8",
            id="80-chars-hash",
        ),
        pytest.param(
            Ref("r.io", "x/vllm", "t" * 128),
            {"vllm"},
            "vllm-" + "t" * 24,
            id="long-tag-cut",
        ),
    ],
)
def test_entry_name(ref: Ref, taken: Any, expected: str) -> None:
    h = hash8(ref)
    taken = [t.replace("HASH", f"vllm-{h}") for t in taken]
    expected = expected.replace("HASH8", h).replace("HASH", f"vllm-{h}")
    name = entry_name(ref, taken=taken)
    assert name == expected
    assert is_dns1123_label(name)
    assert name not in taken
    assert entry_name(ref, taken=set(taken)) == name  # deterministic, any collection


@pytest.mark.parametrize(
    ("text", "taken", "expected"),
    [
        pytest.param(f"quay.io/modh/{WORKBENCH}@{DIGEST}", (), WORKBENCH, id="digest"),
        pytest.param("nginx", ("nginx",), "nginx-latest", id="docker-hub-default-tag"),
        pytest.param(
            "registry.redhat.io/rhoai/odh-vllm-cuda-rhel9:v2.19", (), "odh-vllm-cuda-rhel9", id="vllm"
        ),
    ],
)
def test_entry_name_with_real_image_ref(text: str, taken: tuple[str, ...], expected: str) -> None:
    refs = pytest.importorskip("agent.refs")
    assert entry_name(refs.parse_reference(text), taken=taken) == expected


def test_entry_name_never_uses_list_position() -> None:
    refs = [Ref("quay.io", f"modh/{n}", "1") for n in ("a", "b", "c")]
    names = [entry_name(r, taken=()) for r in refs]
    assert names == ["a", "b", "c"]
    assert entry_name(refs[2], taken={"x", "y"}) == "c"


# --- read_owned, render_owned -----------------------------------------------------------


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        pytest.param(None, {}, id="none"),
        pytest.param({}, {}, id="absent"),
        pytest.param({OWNED_ANNOTATION: ""}, {}, id="empty"),
        pytest.param({OWNED_ANNOTATION: "not json"}, {}, id="not-json"),
        pytest.param({OWNED_ANNOTATION: '["a"]'}, {}, id="list"),
        pytest.param({OWNED_ANNOTATION: "42"}, {}, id="number"),
        pytest.param({OWNED_ANNOTATION: "null"}, {}, id="null"),
        pytest.param({OWNED_ANNOTATION: '{"a": 1, "b": null}'}, {}, id="non-string-values"),
        pytest.param({OWNED_ANNOTATION: '{"Bad Name": "x"}'}, {}, id="bad-name"),
        pytest.param({OWNED_ANNOTATION: '{"a": "x;y", "b": "", "c": "p q"}'}, {}, id="bad-images"),
        pytest.param({OWNED_ANNOTATION: "[" * 100_000}, {}, id="deeply-nested"),
        pytest.param({OWNED_ANNOTATION: 7}, {}, id="value-not-string"),
        pytest.param(["not", "a", "mapping"], {}, id="annotations-not-mapping"),
        pytest.param(
            {OWNED_ANNOTATION: '{"vllm": "quay.io/v:1", "Bad": "x", "n": 5}'},
            {"vllm": "quay.io/v:1"},
            id="mixed-keeps-good",
        ),
        pytest.param(
            {"other": "x", OWNED_ANNOTATION: '{"a":"r.io/a@' + DIGEST + '"}'},
            {"a": "r.io/a@" + DIGEST},
            id="good",
        ),
    ],
)
def test_read_owned(annotations: Any, expected: dict[str, str]) -> None:
    assert read_owned(annotations) == expected


def test_render_owned_is_deterministic_and_reads_back() -> None:
    one = {"vllm": "quay.io/v:1", "a-b": "r.io/a@" + DIGEST}
    other = dict(reversed(list(one.items())))
    text = render_owned(one)
    assert text == render_owned(other)
    assert text == '{"a-b":"r.io/a@' + DIGEST + '","vllm":"quay.io/v:1"}'
    assert read_owned({OWNED_ANNOTATION: text}) == one
    assert render_owned({}) == "{}"


@pytest.mark.parametrize(
    "owned",
    [pytest.param({"Bad": "x"}, id="bad-name"), pytest.param({"a": "x;y"}, id="bad-image")],
)
def test_render_owned_refuses_what_would_not_read_back(owned: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        render_owned(owned)


# --- read_puller ------------------------------------------------------------------------


def realistic(**spec_overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "configMapName": "k8s-image-puller",
        "daemonsetName": "k8s-image-puller",
        "deploymentName": "kubernetes-image-puller",
        "imagePullerImage": "quay.io/eclipse/kubernetes-image-puller:next",
        "cachingIntervalHours": "1",
        "cachingMemoryLimit": "20Mi",
        "images": f"{WORKBENCH}=quay.io/modh/{WORKBENCH}@{DIGEST};\nmine=quay.io/me/x:1;\n",
        "nodeSelector": '{"node-role.kubernetes.io/worker": ""}',
    }
    spec.update(spec_overrides)
    return {
        "apiVersion": "che.eclipse.org/v1alpha1",
        "kind": "KubernetesImagePuller",
        "metadata": {
            "name": "image-puller",
            "namespace": "openshift-operators",
            "resourceVersion": "48213",
            "uid": "0b7c1d64-1111-4d1e-9c3e-5f0b3c2a9e11",
            "generation": 3,
            "annotations": {
                OWNED_ANNOTATION: json.dumps({WORKBENCH: f"quay.io/modh/{WORKBENCH}@{DIGEST}"}),
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
            },
        },
        "spec": spec,
        "status": {"imagePullerImage": "quay.io/eclipse/kubernetes-image-puller:next"},
    }


def test_read_puller_realistic() -> None:
    cr = read_puller(realistic())
    assert cr == PullerCR(
        namespace="openshift-operators",
        name="image-puller",
        resource_version="48213",
        images=f"{WORKBENCH}=quay.io/modh/{WORKBENCH}@{DIGEST};\nmine=quay.io/me/x:1;\n",
        owned={WORKBENCH: f"quay.io/modh/{WORKBENCH}@{DIGEST}"},
        node_selector={"node-role.kubernetes.io/worker": ""},
        uid="0b7c1d64-1111-4d1e-9c3e-5f0b3c2a9e11",
        deployment_name="kubernetes-image-puller",
        daemonset_name="k8s-image-puller",
        puller_image="quay.io/eclipse/kubernetes-image-puller:next",
    )
    assert cr.entries() == (
        Entry.of(WORKBENCH, f"quay.io/modh/{WORKBENCH}@{DIGEST}"),
        Entry.of("mine", "quay.io/me/x:1"),
    )


def test_read_puller_missing_spec_and_annotations() -> None:
    obj = realistic()
    del obj["spec"]
    del obj["metadata"]["annotations"]
    cr = read_puller(obj)
    assert (cr.images, cr.owned, cr.node_selector) == ("", {}, {})
    assert cr.entries() == ()


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param(None, {}, id="null"),
        pytest.param("", {}, id="empty-string"),
        pytest.param("{}", {}, id="empty-object"),
        pytest.param("null", {}, id="json-null-like-go"),
        pytest.param(' {"a": "b", "c": "d"} ', {"a": "b", "c": "d"}, id="object"),
    ],
)
def test_read_puller_node_selector(selector: str | None, expected: dict[str, str]) -> None:
    assert read_puller(realistic(nodeSelector=selector)).node_selector == expected


def test_read_puller_placement_fields() -> None:
    cr = read_puller(realistic(
        affinity='{"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": '
                 '[{"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]}]}}}',
        tolerations='[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]',
    ))
    assert cr.affinity is not None and [str(r) for t in cr.affinity.terms for r in t.expressions] == [
        "nvidia.com/gpu.present In (true)"
    ]
    assert cr.tolerations == (Toleration("nvidia.com/gpu", "Exists", "", "NoSchedule"),)
    placement = cr.placement()
    assert placement.node_selector == (("node-role.kubernetes.io/worker", ""),)
    assert set(cr.tolerations) | set(DAEMONSET_TOLERATIONS) == set(placement.tolerations)


@pytest.mark.parametrize("empty", [None, "", "null"])
def test_read_puller_without_affinity_or_tolerations(empty: str | None) -> None:
    cr = read_puller(realistic(affinity=empty, tolerations=empty))
    assert (cr.affinity, cr.tolerations) == (None, ())


def test_read_puller_garbage_annotation_owns_nothing() -> None:
    obj = realistic()
    obj["metadata"]["annotations"][OWNED_ANNOTATION] = "{oops"
    assert read_puller(obj).owned == {}


WHERE = "KubernetesImagePuller openshift-operators/image-puller: "


def _without(path: str) -> dict[str, Any]:
    obj = realistic()
    *parents, last = path.split(".")
    node = obj
    for key in parents:
        node = node[key]
    del node[last]
    return obj


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        pytest.param(realistic(nodeSelector="not json"), WHERE + "spec.nodeSelector is not a JSON object of strings: ", id="selector-not-json"),
        pytest.param(realistic(nodeSelector="  "), WHERE + "spec.nodeSelector is not a JSON object", id="selector-blank"),
        pytest.param(realistic(nodeSelector='["a"]'), WHERE + "spec.nodeSelector is not a JSON object", id="selector-list"),
        pytest.param(realistic(nodeSelector='{"a": 1}'), WHERE + "spec.nodeSelector is not a JSON object", id="selector-number-value"),
        pytest.param(realistic(nodeSelector={"a": "b"}), WHERE + "spec.nodeSelector is not a string", id="selector-not-string"),
        pytest.param(realistic(affinity="{nope"), WHERE + "spec.affinity is not a JSON object: '{nope' (", id="affinity-not-json"),
        pytest.param(realistic(affinity="[]"), WHERE + "spec.affinity is not a JSON object: '[]'", id="affinity-list"),
        pytest.param(realistic(affinity={"nodeAffinity": {}}), WHERE + "spec.affinity is not a string: dict", id="affinity-not-string"),
        pytest.param(realistic(affinity='{"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": {}}]}}}'),
                     WHERE + "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions is not a list: dict",
                     id="affinity-inner-type"),
        pytest.param(realistic(tolerations="nvidia.com/gpu"), WHERE + "spec.tolerations is not a JSON list: 'nvidia.com/gpu' (", id="tolerations-not-json"),
        pytest.param(realistic(tolerations='{"key": "a"}'), WHERE + "spec.tolerations is not a JSON list", id="tolerations-object"),
        pytest.param(realistic(tolerations='[{"key": 1}]'), WHERE + "spec.tolerations[0].key is not a string: int", id="toleration-key"),
        pytest.param(realistic(tolerations=json.dumps([{"operator": "Exists"}] * 65)),
                     WHERE + "spec.tolerations has 65 entries, more than the 64 read", id="too-many-tolerations"),
        pytest.param(realistic(images=["a=b"]), WHERE + "spec.images is not a string", id="images-not-string"),
        pytest.param({**realistic(), "spec": "x"}, WHERE + "spec is not an object", id="spec-not-object"),
        pytest.param(_without("metadata.resourceVersion"), WHERE + "metadata.resourceVersion is missing", id="no-resource-version"),
        pytest.param(_without("metadata.name"), "KubernetesImagePuller openshift-operators/<unknown>: metadata.name is missing", id="no-name"),
        pytest.param(_without("metadata.namespace"), "KubernetesImagePuller <unknown>/image-puller: metadata.namespace is missing", id="no-namespace"),
        pytest.param(_without("metadata"), "KubernetesImagePuller <unknown>: metadata is missing", id="no-metadata"),
        pytest.param([], "KubernetesImagePuller <unknown>: not an object", id="not-object"),
    ],
)  # fmt: skip
def test_read_puller_invalid(obj: Any, message: str) -> None:
    with pytest.raises(InvalidPullerCR) as caught:
        read_puller(obj)
    assert str(caught.value).startswith(message)
    assert isinstance(caught.value, ValueError)


# --- properties -------------------------------------------------------------------------

ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
IMAGE_CHARS = ALNUM + "ABZ./:@_-+~!#$%&*'\"\\,()[]{}<>?|^`\x00\x7féßø中\U0001f600"


def _pairs(names: str, images: str) -> list[tuple[str, str]]:
    """Unique (DNS-1123 label, image) pairs from two space-separated random texts.

    Two flat text draws instead of a list of tuples: same coverage, a third of the cost.
    """
    pairs: dict[str, str] = {}
    for name, image in zip(names.split(" "), images.split(" ")):
        name = name.strip("-")
        if name and image and name not in RESERVED_NAMES:
            pairs.setdefault(name, image)
    return list(pairs.items())


named_images = st.builds(_pairs, st.text(ALNUM + "- ", max_size=60), st.text(IMAGE_CHARS + " ", max_size=60))
labels = st.text(ALNUM + "-", min_size=1, max_size=12).map(lambda s: s.strip("-") or "x")
spec_text = st.text(st.sampled_from("ab=; \n\t\xa0\x1cé"), max_size=40)


@PROPERTY
@given(named_images)
def test_render_round_trips(pairs: list[tuple[str, str]]) -> None:
    entries = [Entry.of(name, image) for name, image in pairs]
    text = render_images(entries)
    assert puller_view(text) == dict(pairs)
    assert parse_images(text) == tuple(entries)
    assert same_list(parse_images(text), entries)


@PROPERTY
@given(spec_text)
def test_parse_images_agrees_with_puller_view(text: str) -> None:
    entries = parse_images(text)
    assert puller_view(text) == {e.name: e.image for e in entries if e.name is not None}
    rendered = render_images(entries)
    assert puller_view(rendered) == puller_view(text)
    assert parse_images(rendered) == entries


def _ref(*, repository: str, times: int, tag: str, pinned: bool) -> Ref:
    """A ref-ish value; `times` stretches the repository past the 63-character limit."""
    return Ref("r.io", repository * times, tag or None, DIGEST if pinned else None)


refs = st.builds(
    _ref,
    repository=st.text(ALNUM + "_.-/ABZé\u212a", max_size=16),
    times=st.sampled_from([1, 1, 1, 6]),
    tag=st.text(ALNUM + "_.-ABZ", max_size=40),
    pinned=st.booleans(),
)
taken_names = st.text(ALNUM + "- ", max_size=30).map(lambda s: set(s.split()))


@PROPERTY
@given(refs, taken_names, st.integers(0, 4))
def test_entry_name_is_a_free_label(ref: Ref, taken: set[str], rounds: int) -> None:
    taken = set(taken)
    for _ in range(rounds + 1):
        name = entry_name(ref, taken=taken)
        assert is_dns1123_label(name)
        assert name not in taken
        assert entry_name(ref, taken=frozenset(taken)) == name
        taken.add(name)  # next round must step to the next candidate


# --- what says where the puller runs and what the agent last did (issue 13) ---------------------


def test_read_puller_names_the_puller_workloads_with_the_operators_defaults() -> None:
    obj = realistic()
    for key in ("deploymentName", "daemonsetName", "imagePullerImage"):
        obj["spec"].pop(key)
    del obj["status"]
    cr = read_puller(obj)
    assert (cr.deployment_name, cr.daemonset_name, cr.puller_image) == (
        "kubernetes-image-puller", "kubernetes-image-puller", "")
    obj["status"] = {"imagePullerImage": "quay.io/eclipse/kubernetes-image-puller:1.1.1"}
    assert read_puller(obj).puller_image == "quay.io/eclipse/kubernetes-image-puller:1.1.1"


def test_read_puller_reads_conditions_where_an_operator_writes_them() -> None:
    obj = realistic()
    obj["status"]["conditions"] = [
        {"type": "Degraded", "status": "True", "reason": "DaemonSetFailed", "message": "containers: Required value"},
        {"type": "Ready"},  # no status: skipped
        "garbage",
    ]
    assert read_puller(obj).conditions == (
        Condition("Degraded", "True", "DaemonSetFailed", "containers: Required value"),)


def test_the_agents_last_write_is_its_field_managers_time() -> None:
    obj = realistic()
    obj["metadata"]["managedFields"] = [
        {"manager": "kubectl-edit", "operation": "Update", "time": "2026-11-27T11:00:00Z"},
        {"manager": "prepull-agent", "operation": "Update", "time": "2026-11-27T10:00:00Z"},
        {"manager": "prepull-agent", "operation": "Update", "time": "2026-11-27T10:30:00Z", "subresource": "status"},
        {"manager": "prepull-agent", "operation": "Update", "time": "not a time"},
    ]
    assert read_puller(obj).last_written == datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    del obj["metadata"]["managedFields"]
    assert read_puller(obj).last_written is None


@pytest.mark.parametrize(("entries", "expected"), [
    ("", False), (";", False), ("no-equals;", False), ("a=b=c;", False), ("a=x;", True), ("junk;a=x;", True),
])
def test_has_entry_is_what_the_puller_needs_to_run(entries: str, expected: bool) -> None:
    assert has_entry(parse_images(entries)) is expected


@pytest.mark.parametrize(("name", "ok"), [
    ("kubernetes-image-puller", True), ("a.b-c", True), ("", False), ("../secrets", False), ("A", False),
    ("a/b", False), ("x" * 254, False),
])
def test_object_names_are_checked_before_they_go_in_a_path(name: str, ok: bool) -> None:
    assert is_object_name(name) is ok
