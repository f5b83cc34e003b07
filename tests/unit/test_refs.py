"""Tests for agent.refs: strict parsing of untrusted image references."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.refs import (
    ImageRef,
    InvalidReference,
    is_modelcar_uri,
    parse_modelcar_uri,
    parse_reference,
)

H64 = "0123456789abcdef" * 4
H96 = "0123456789abcdef" * 6
H128 = "0123456789abcdef" * 8
INTERNAL = "image-registry.openshift-image-registry.svc:5000"

VALID: list[tuple[str, str]] = [
    # Docker Hub short names and normalisation
    ("nginx", "docker.io/library/nginx:latest"),
    ("nginx:1.27", "docker.io/library/nginx:1.27"),
    ("library/nginx", "docker.io/library/nginx:latest"),
    ("docker.io/nginx", "docker.io/library/nginx:latest"),
    ("index.docker.io/nginx:1", "docker.io/library/nginx:1"),
    ("index.docker.io/bitnami/redis:7", "docker.io/bitnami/redis:7"),
    ("Docker.IO/library/nginx", "docker.io/library/nginx:latest"),
    ("bitnami/redis", "docker.io/bitnami/redis:latest"),
    ("example.com", "docker.io/library/example.com:latest"),  # one component: never a registry
    # Spellings that pull the same content fold into one form, so deny and exclude patterns
    # written for it cannot be escaped by spelling (issue 9)
    ("registry-1.docker.io/x/y:1", "docker.io/x/y:1"),
    ("registry-1.docker.io/nginx", "docker.io/library/nginx:latest"),
    ("quay.io:443/evil/miner:1", "quay.io/evil/miner:1"),
    ("Quay.IO:443/evil/miner:1", "quay.io/evil/miner:1"),
    ("docker.io:443/nginx", "docker.io/library/nginx:latest"),
    ("index.docker.io:443/x/y:1", "docker.io/x/y:1"),
    ("registry.example.com:4430/x:1", "registry.example.com:4430/x:1"),  # only the HTTPS port
    # Registries, ports, localhost
    ("quay.io/modh/odh-workbench-jupyter:2025.1", "quay.io/modh/odh-workbench-jupyter:2025.1"),
    ("Quay.IO/modh/vllm:v1", "quay.io/modh/vllm:v1"),
    ("localhost/app", "localhost/app:latest"),
    ("LOCALHOST/app", "localhost/app:latest"),
    ("localhost:5000/app:dev", "localhost:5000/app:dev"),
    ("localhost:5000", "docker.io/library/localhost:5000"),  # no '/': name plus tag
    ("myregistry:5000/team/app", "myregistry:5000/team/app:latest"),
    ("10.0.0.1:5000/app:v2", "10.0.0.1:5000/app:v2"),
    (f"{INTERNAL}/ns/stream:2025.1", f"{INTERNAL}/ns/stream:2025.1"),
    (
        "registry.redhat.io/rhoai/odh-notebook-rhel9:v2.19.0",
        "registry.redhat.io/rhoai/odh-notebook-rhel9:v2.19.0",
    ),
    # Digests
    (f"quay.io/modh/vllm@sha256:{H64}", f"quay.io/modh/vllm@sha256:{H64}"),
    (f"quay.io/modh/vllm@sha384:{H96}", f"quay.io/modh/vllm@sha384:{H96}"),
    (f"quay.io/modh/vllm@sha512:{H128}", f"quay.io/modh/vllm@sha512:{H128}"),
    (f"quay.io/modh/vllm:v1@sha256:{H64}", f"quay.io/modh/vllm@sha256:{H64}"),  # digest wins
    (f"busybox:latest@sha256:{H64}", f"docker.io/library/busybox@sha256:{H64}"),
    # Path separators and depth
    ("a_b/c__d/e-f/g--h/i.j:t", "docker.io/a_b/c__d/e-f/g--h/i.j:t"),
    ("quay.io/a/b/c/d/e/f/g/h:1", "quay.io/a/b/c/d/e/f/g/h:1"),
    ("quay.io/x0/9y:_Tag-1.2_", "quay.io/x0/9y:_Tag-1.2_"),
    ("quay.io/x/y:" + "t" * 128, "quay.io/x/y:" + "t" * 128),
    ("sha256:abc", "docker.io/library/sha256:abc"),  # a repository named sha256, short tag
]

SEMICOLON = "split the puller's list"
EQUALS = "puller's name=image"

INVALID: list[tuple[str, str, str]] = [
    ("empty", "", "is empty"),
    ("semicolon", "nginx;evil=quay.io/x", SEMICOLON),
    ("semicolon-trailing", "quay.io/x/y:1;", SEMICOLON),
    ("equals", "name=quay.io/x/y", EQUALS),
    ("newline", "nginx\nquay.io/x", r"'\n'"),
    ("trailing-newline", "nginx:1\n", r"'\n'"),
    ("carriage-return", "nginx\r", r"'\r'"),
    ("tab", "nginx\t:1", r"'\t'"),
    ("space", "nginx :1", "contains ' '"),
    ("nul", "nginx\x00", r"'\x00'"),
    ("del", "nginx\x7f", r"'\x7f'"),
    ("comma", "a,b", "contains ','"),
    ("double-quote", 'a"b', """contains '"'"""),
    ("single-quote", "a'b", "contains"),
    ("question", "a?b", "contains '?'"),
    ("hash", "a#b", "contains '#'"),
    ("percent", "a%20b", "contains '%'"),
    ("backslash", "a\\b", r"contains '\\'"),
    ("cyrillic-a", "quay.io/org/n\u0430me:1", "non-ASCII character U+0430"),
    ("fullwidth-colon", "nginx\uff1a1", "non-ASCII character U+FF1A"),
    ("zero-width-space", "ngi\u200bnx", "non-ASCII character U+200B"),
    ("bidi-override", "nginx\u202e", "non-ASCII character U+202E"),
    ("uppercase-repo", "quay.io/Org/app", "repository must be lowercase"),
    ("uppercase-hub", "Foo/bar", "repository must be lowercase"),
    ("uppercase-single", "NGINX", "repository must be lowercase"),
    ("10kb", "a" * 10_000, "longer than 1024 characters"),
    ("1025-chars", "a" * 1025, "longer than 1024 characters"),
    ("long-name", "quay.io/" + "a" * 250, "name longer than 255"),
    ("long-hub-name", "a" * 240, "name longer than 255"),  # docker.io/library/ pushes it over
    ("tag-129", "nginx:" + "t" * 129, "tag longer than 128"),
    ("tag-empty", "nginx:", "empty tag"),
    ("tag-leading-dot", "nginx:.x", "invalid tag '.x'"),
    ("tag-leading-dash", "nginx:-x", "invalid tag '-x'"),
    ("digest-63-hex", f"nginx@sha256:{H64[:-1]}", "63 hex characters, expected 64"),
    ("digest-65-hex", f"nginx@sha256:{H64}0", "65 hex characters, expected 64"),
    ("digest-uppercase-hex", f"nginx@sha256:{H64.upper()}", "uppercase hex"),
    ("digest-md5", f"nginx@md5:{H64[:32]}", "unsupported digest algorithm 'md5'"),
    ("digest-uppercase-alg", f"nginx@SHA256:{H64}", "unsupported digest algorithm 'SHA256'"),
    ("digest-non-hex", f"nginx@sha256:{'g' * 64}", "non-hex"),
    ("digest-no-colon", f"nginx@{H64}", "malformed digest"),
    ("digest-empty", "nginx@", "malformed digest"),
    ("two-ats", f"nginx@sha256:{H64}@sha256:{H64}", "more than one '@'"),
    ("digest-without-at", f"quay.io/x/y:sha256:{H64}", "digest without '@'"),
    ("bare-digest", f"sha256:{H64}", "digest without '@'"),
    ("bare-hex-id", H64, "bare 64-character hex image ID"),
    ("double-slash", "a//b", "empty path component"),
    ("trailing-slash", "quay.io/a/", "empty path component"),
    ("leading-slash", "/a", "empty path component"),
    ("registry-only", "quay.io/", "empty path component"),
    ("leading-dash", "-leading", "invalid path component '-leading'"),
    ("trailing-dot", "quay.io/a./b", "invalid path component 'a.'"),
    ("triple-underscore", "a___b", "invalid path component 'a___b'"),
    ("double-dot", "a..b", "invalid path component 'a..b'"),
    ("no-name", ":tag", "no repository name"),
    ("two-colons", "a:b:c", "':' inside the repository path"),
    ("bad-port", "quay.io:abc/x", "invalid registry 'quay.io:abc'"),
    ("registry-underscore", "my_reg.io/app", "invalid registry 'my_reg.io'"),
    ("registry-leading-dash", "-quay.io/app", "invalid registry '-quay.io'"),
    ("ipv6", "[::1]:5000/app", "IPv6"),
    ("ipv6-inner-bracket", "a[::1]/b", "contains '['"),
]


@pytest.mark.parametrize(("text", "canonical"), VALID, ids=[v[0][:60] for v in VALID])
def test_parses_valid_reference_to_canonical_form(text: str, canonical: str) -> None:
    ref = parse_reference(text)
    assert str(ref) == canonical
    assert parse_reference(canonical) == ref


@pytest.mark.parametrize(("text", "reason"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_rejects_invalid_reference_with_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse_reference(text)
    assert reason in info.value.reason
    assert str(info.value) == info.value.reason
    assert info.value.reason.isascii() and info.value.reason.isprintable()


def test_invalid_reference_is_a_value_error() -> None:
    assert issubclass(InvalidReference, ValueError)
    assert InvalidReference("is empty").reason == "is empty"


def test_fields_of_parsed_reference() -> None:
    ref = parse_reference(f"{INTERNAL}/ns/stream:2025.1")
    assert ref == ImageRef(INTERNAL, "ns/stream", "2025.1", None)
    assert ref.name == f"{INTERNAL}/ns/stream"
    assert ref.short_name == "stream"
    digested = parse_reference(f"quay.io/modh/vllm:v1@sha256:{H64}")
    assert (digested.tag, digested.digest) == (None, f"sha256:{H64}")
    assert digested.short_name == "vllm"
    assert parse_reference("nginx").short_name == "nginx"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("nginx", "docker.io/library/nginx:latest"),
        ("index.docker.io/library/nginx", "docker.io/nginx:latest"),
        ("Quay.io/a/b:1", "quay.io/a/b:1"),
        (f"quay.io/a/b:1@sha256:{H64}", f"quay.io/a/b@sha256:{H64}"),
    ],
    ids=["short-name", "index-docker-io", "registry-case", "tag-and-digest"],
)
def test_two_spellings_parse_equal(first: str, second: str) -> None:
    a, b = parse_reference(first), parse_reference(second)
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1


def test_ordering_is_total_across_tags_and_digests() -> None:
    refs = [
        parse_reference("quay.io/a/b:2"),
        parse_reference(f"quay.io/a/b@sha256:{H64}"),
        parse_reference("quay.io/a/b:1"),
        parse_reference("docker.io/z:1"),
    ]
    assert [str(r) for r in sorted(refs)] == [
        "docker.io/library/z:1",
        f"quay.io/a/b@sha256:{H64}",
        "quay.io/a/b:1",
        "quay.io/a/b:2",
    ]
    assert refs[2] < refs[0] <= refs[0] and refs[0] > refs[2] >= refs[2]


def test_with_tag() -> None:
    ref = parse_reference("quay.io/modh/jupyter:2024.2")
    newer = ref.with_tag("2025.1")
    assert str(newer) == "quay.io/modh/jupyter:2025.1"
    assert ref.tag == "2024.2"  # immutable


@pytest.mark.parametrize(
    ("tag", "reason"),
    [
        ("", "empty tag"),
        ("a;b", SEMICOLON),
        ("a=b", EQUALS),
        ("a b", "contains ' '"),
        ("v1\n", r"'\n'"),
        ("v\u0131", "non-ASCII"),
        ("t" * 129, "tag longer than 128"),
        (".x", "invalid tag"),
        ("a:b", "invalid tag"),
        ("a/b", "invalid tag"),
    ],
    ids=[
        "empty", "semicolon", "equals", "space", "newline",
        "dotless-i", "129", "leading-dot", "colon", "slash",
    ],
)
def test_with_tag_rejects_invalid_tag(tag: str, reason: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse_reference("quay.io/a/b:1").with_tag(tag)
    assert reason in info.value.reason


@pytest.mark.parametrize("value", [None, 2025, b"nginx", ["nginx"]], ids=["none", "int", "bytes", "list"])
def test_non_string_input_is_invalid(value: object) -> None:
    with pytest.raises(InvalidReference, match="not a string"):
        parse_reference(value)  # type: ignore[arg-type]
    with pytest.raises(InvalidReference, match="not a string"):
        parse_modelcar_uri(value)  # type: ignore[arg-type]
    with pytest.raises(InvalidReference, match="not a string"):
        parse_reference("quay.io/a/b:1").with_tag(value)  # type: ignore[arg-type]


def test_with_tag_on_digest_reference_raises_value_error() -> None:
    with pytest.raises(ValueError, match="digest"):
        parse_reference(f"quay.io/a/b@sha256:{H64}").with_tag("v1")


@pytest.mark.parametrize(
    ("registry", "repository", "tag", "digest"),
    [
        ("quay.io", "a/b", None, None),
        ("quay.io", "a/b", "1", f"sha256:{H64}"),
        ("quay.io", "a/b", "a;b", None),
        ("quay.io", "A/b", "1", None),
        ("Quay.io", "a/b", "1", None),
        ("quay", "a/b", "1", None),  # would re-parse as docker.io/quay/a/b
        ("docker.io", "nginx", "1", None),  # needs library/
        ("index.docker.io", "library/nginx", "1", None),
        ("registry-1.docker.io", "library/nginx", "1", None),
        ("quay.io:443", "a/b", "1", None),
        ("quay.io", "a/b", None, f"sha256:{H64[:-1]}"),
        ("quay.io\n", "a/b", "1", None),
        ("quay.io", "a/sha256", H64, None),  # would print as a digest without '@'
    ],
    ids=[
        "neither", "both", "semicolon-tag", "uppercase-repo", "uppercase-registry",
        "no-dot-registry", "hub-no-library", "legacy-hub", "hub-endpoint", "https-port", "short-digest",
        "newline-registry", "digest-as-tag",
    ],
)
def test_constructor_refuses_non_canonical_fields(
    registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    with pytest.raises(InvalidReference):
        ImageRef(registry, repository, tag, digest)


# --- ModelCar URIs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "canonical"),
    [
        ("oci://quay.io/models/granite:1.0", "quay.io/models/granite:1.0"),
        (f"oci://quay.io/models/granite@sha256:{H64}", f"quay.io/models/granite@sha256:{H64}"),
        ("oci://registry.example.com:5000/m/x", "registry.example.com:5000/m/x:latest"),
        ("oci://granite", "docker.io/library/granite:latest"),
    ],
    ids=["tag", "digest", "port-default-tag", "hub-short-name"],
)
def test_parse_modelcar_uri(uri: str, canonical: str) -> None:
    assert is_modelcar_uri(uri)
    assert str(parse_modelcar_uri(uri)) == canonical


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("oci://quay.io/m/x:1?x=1", "contains '?'"),
        ("oci://quay.io/m/x:1#frag", "contains '#'"),
        ("oci://quay.io/m/x:1 ", "contains ' '"),
        ("oci://quay.io/m/x:1\n", r"'\n'"),
        ("oci://quay.io/m/x:1;b=c", SEMICOLON),
        ("oci://", "no image after 'oci://'"),
        ("oci:///quay.io/m/x", "empty path component"),
        ("OCI://quay.io/m/x:1", "does not start with 'oci://'"),
        ("quay.io/m/x:1", "does not start with 'oci://'"),
        ("s3://bucket/model", "does not start with 'oci://'"),
        ("oci://" + "a" * 2000, "longer than 1024"),
    ],
    ids=["query", "fragment", "trailing-space", "newline", "semicolon", "empty", "triple-slash",
         "upper-scheme", "no-scheme", "s3", "huge"],
)
def test_parse_modelcar_uri_rejects(uri: str, reason: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse_modelcar_uri(uri)
    assert reason in info.value.reason


@pytest.mark.parametrize(
    ("uri", "expected"),
    [("oci://quay.io/x", True), ("oci://", True), ("OCI://quay.io/x", False), ("s3://b/m", False),
     ("hf://org/model", False), (" oci://x", False), ("", False)],
    ids=["oci", "bare-scheme", "upper", "s3", "hf", "leading-space", "empty"],
)
def test_is_modelcar_uri(uri: str, expected: bool) -> None:
    assert is_modelcar_uri(uri) is expected


# --- properties ------------------------------------------------------------------------------

# Characters that make up references, plus the hostile ones, so random text often gets far.
_ALPHABET = (
    string.ascii_letters + string.digits + "._-/:@"  # reference characters
    + ";= \t\n\r\x00,\"'?#%\\[]"  # hostile ASCII
    + "\u0430\uff1a\u200b"  # Cyrillic a, fullwidth colon, zero-width space
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(alphabet=_ALPHABET, max_size=80), st.text(max_size=40)))
def test_any_text_is_rejected_or_canonical(text: str) -> None:
    try:
        ref = parse_reference(text)
    except InvalidReference as exc:
        assert exc.reason and exc.reason.isascii() and exc.reason.isprintable()
        return
    canonical = str(ref)
    assert canonical.isascii() and canonical.isprintable()
    assert not any(c in canonical for c in ";= \t\n\r\x0b\x0c")
    assert parse_reference(canonical) == ref
    assert str(parse_reference(canonical)) == canonical


_alnum = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=6)
_path_component = st.builds(
    lambda head, separator, tail: head + separator + tail if separator else head,
    _alnum,
    st.sampled_from(["", ".", "_", "__", "-", "---"]),
    _alnum,
)
_repository = st.lists(_path_component, min_size=1, max_size=4).map("/".join)
_label = st.builds(
    lambda head, dashes, tail: head + dashes + tail,
    st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=5),
    st.sampled_from(["", "", "-", "--"]),
    st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=5),
)
_port = st.one_of(st.just(""), st.integers(1, 65535).map(lambda port: f":{port}"))
_registry = st.one_of(
    st.sampled_from(
        ["docker.io", "index.docker.io", "quay.io", "localhost", "localhost:5000", INTERNAL]
    ),
    st.builds(lambda a, b, port: f"{a}.{b}{port}", _label, _label, _port),  # dotted
    st.builds(lambda host, port: f"{host}:{port}", _label, st.integers(1, 65535)),  # host:port
)
_tag = st.builds(
    str.__add__,
    st.sampled_from(string.ascii_letters + string.digits + "_"),
    st.text(alphabet=string.ascii_letters + string.digits + "_.-", max_size=20),
)
_digest = st.one_of(
    st.binary(min_size=32, max_size=32).map(lambda raw: f"sha256:{raw.hex()}"),
    st.binary(min_size=48, max_size=48).map(lambda raw: f"sha384:{raw.hex()}"),
    st.binary(min_size=64, max_size=64).map(lambda raw: f"sha512:{raw.hex()}"),
)


def _canonical_ref(registry: str, repository: str, tag: str | None, digest: str | None) -> ImageRef:
    """An ImageRef from valid components, normalised the way parse_reference does."""
    registry = registry.lower().removesuffix(":443")  # the HTTPS port is dropped, as parse_reference does
    if registry == "index.docker.io":
        registry = "docker.io"
    if registry == "docker.io" and "/" not in repository:
        repository = "library/" + repository
    return ImageRef(registry, repository, tag, digest)


_image_refs = st.one_of(
    st.builds(_canonical_ref, _registry, _repository, _tag, st.none()),
    st.builds(_canonical_ref, _registry, _repository, st.none(), _digest),
)


@settings(max_examples=200, deadline=None)
@given(_image_refs)
def test_canonical_form_round_trips(ref: ImageRef) -> None:
    assert parse_reference(str(ref)) == ref
    assert str(ref).startswith(ref.name)
    assert ref.short_name == ref.repository.rsplit("/", 1)[-1]


@settings(max_examples=60, deadline=None)
@given(
    _image_refs,
    st.sampled_from([";", "=", "\n", "\t", " ", "\x00", "\u0430", "?", "#"]),
    st.data(),
)
def test_one_hostile_character_anywhere_is_rejected(
    ref: ImageRef, bad: str, data: st.DataObject
) -> None:
    text = str(ref)
    at = data.draw(st.integers(0, len(text)))
    with pytest.raises(InvalidReference):
        parse_reference(text[:at] + bad + text[at:])
