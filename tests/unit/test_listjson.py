"""agent.kube.listjson: list answers whose objects `json.loads` cannot all decode. No cluster:
the bytes are what kube-apiserver sends (its two key orders: custom resources sorted,
built-in lists `kind, apiVersion, metadata, items`)."""

from __future__ import annotations

import json

import pytest

from agent.kube.listjson import BadList, decode_list, skim_item, skim_list

TOO_DEEP = "is nested too deeply"


def deep(depth: int, *, maps: bool = False) -> str:
    """A JSON value nested `depth` levels, built as text: `json.dumps` would recurse too."""
    return '{"a":' * depth + "0" + "}" * depth if maps else "[" * depth + "]" * depth


def item(name: str, ns: str = "team-a", extra: str = '"x"') -> str:
    return (f'{{"apiVersion":"serving.kserve.io/v1alpha1","kind":"LLMInferenceService",'
            f'"metadata":{{"name":"{name}","namespace":"{ns}"}},"spec":{{"free":{extra}}}}}')


def custom_list(*items: str, token: str = "next") -> bytes:
    return (f'{{"apiVersion":"serving.kserve.io/v1alpha1","items":[{",".join(items)}],'
            f'"kind":"LLMInferenceServiceList","metadata":{{"continue":"{token}","resourceVersion":"9"}}}}').encode()


def test_json_loads_gives_up_on_nesting_the_api_server_accepts():
    with pytest.raises(RecursionError):
        json.loads(custom_list(item("deep", extra=deep(1_500))))


@pytest.mark.parametrize("maps", [False, True], ids=["lists", "maps"])
def test_one_deeply_nested_item_is_skipped_by_name_and_the_others_decoded(maps):
    found = decode_list(custom_list(item("a"), item("deep", extra=deep(10_000, maps=maps)), item("b")),
                        too_deep=TOO_DEEP)
    assert [i["metadata"]["name"] for i in found.items] == ["a", "b"]
    assert found.unread == [("team-a", "deep", TOO_DEEP)]
    assert found.meta == {"continue": "next", "resourceVersion": "9"}


def test_built_in_list_order_and_whitespace_are_read_too():
    text = ('{ "kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": "3"},\n'
            f' "items": [ {{"metadata": {{"name": "n1", "labels": {deep(2_000)}}}}} , {{"metadata": {{"name": "n2"}}}} ] }}')
    found = decode_list(text.encode(), too_deep=TOO_DEEP)
    assert [i["metadata"]["name"] for i in found.items] == ["n2"]
    assert found.unread == [("", "n1", TOO_DEEP)]
    assert found.meta == {"resourceVersion": "3"}


def test_an_item_json_loads_refuses_for_another_reason_is_skipped_with_it():
    found = decode_list(custom_list(item("big", extra="1" * 5_000), item("ok")), too_deep=TOO_DEEP)
    assert [i["metadata"]["name"] for i in found.items] == ["ok"]
    ((ns, name, why),) = found.unread
    assert (ns, name) == ("team-a", "big") and why.startswith("is not JSON the agent can read: ")


@pytest.mark.parametrize("data", [
    b"", b"[]", b'{"items":[{"a":1}', b'{"items":[1,]}', b'{"items":[]} x', b"\xff\xfe", b'{"items":{"a":[}}',
    custom_list(item("cut", extra=deep(3_000)))[:-200],
], ids=["empty", "not-an-object", "cut", "trailing-comma", "trailing-garbage", "not-utf8", "garbled", "cut-deep"])
def test_what_is_not_a_list_answer_is_refused_not_guessed(data):
    with pytest.raises(BadList):
        decode_list(data, too_deep=TOO_DEEP)


def test_skimming_reads_names_and_the_continue_token_of_any_depth_without_recursing():
    managed = '[{"fieldsV1":' + deep(20_000, maps=True) + "}]"
    data = custom_list(item("deep", extra=deep(50_000)), item("other", ns="team-b"), token="abc\\u0000")
    data = data.replace(b'"namespace":"team-a"}', b'"namespace":"team-a","managedFields":' + managed.encode() + b"}")
    skim = skim_list(data)
    assert skim.items == [("team-a", "deep"), ("team-b", "other")]
    assert skim.continue_token == "abc\x00" and skim.complete


def test_a_metadata_only_answer_is_skimmed_the_same_way():
    data = json.dumps({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                       "metadata": {"resourceVersion": "5", "continue": "tok"},
                       "items": [{"kind": "PartialObjectMetadata", "metadata": {"name": "x", "namespace": "y"}}]})
    assert skim_list(data.encode()).items == [("y", "x")]


@pytest.mark.parametrize("data", [b"", b"garbage", custom_list(item("x"))[:-1], custom_list(item("x")) + b"{}",
                                  b'{"items":[{"metadata":{"name":"x"}}]}'],
                         ids=["empty", "garbage", "cut", "trailing", "no-list-metadata"])
def test_a_skim_that_does_not_end_like_a_list_answer_is_not_complete(data):
    """A cut answer without its `metadata` would read as the last page: never complete."""
    assert not skim_list(data).complete


def test_skim_item_finds_the_end_of_one_value_and_its_name():
    text = f'[{item("x", extra=deep(5_000))}, 123, "s"]'
    end, ns, name = skim_item(text, 1)
    assert (ns, name) == ("team-a", "x") and text[end:].startswith(", 123")
    assert skim_item(text, end + 2)[0] == end + 5  # a number ends where it ends
    assert skim_item("[[[", 0)[0] is None
