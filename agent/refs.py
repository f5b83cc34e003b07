"""Strict parsing of container image references taken from untrusted Kubernetes objects.

What this module is: the one gate every image reference passes through before it can reach
the KubernetesImagePuller's `spec.images` string (`name=image;name=image`, split by the
puller on `;` and `=`). References come from objects that tenants write (Notebooks,
InferenceServices, ServingRuntimes...), so they are parsed against the
distribution/reference grammar and normalised the way Docker's `ParseDockerRef` does:

    [domain '/'] path-component ['/' path-component]* [':' tag] ['@' digest]

* The first component is a registry only if it contains '.' or ':' or is `localhost`;
  otherwise the registry is `docker.io`. `index.docker.io` becomes `docker.io`, and a
  one-component Docker Hub repository gets `library/`. Registries are lowercased.
* Two more spellings pull the same content and are folded, so that `references.deny`,
  `allowed_registries`, `selection.exclude` and de-duplication all see one form: the HTTPS
  port is dropped (`quay.io:443` is `quay.io`), and `registry-1.docker.io`, Docker Hub's
  API endpoint, is `docker.io` too. A pattern written for `quay.io/x/*` then also holds
  for `quay.io:443/x/...`.
* No tag and no digest means tag `latest`; a tag *and* a digest keeps only the digest.
* Only sha256, sha384 and sha512 digests in lowercase hex are accepted.
* IPv6 registry addresses (`[::1]:5000/...`), which the grammar allows, are rejected: they
  do not occur in OpenShift AI clusters and refusing them keeps '[' and ']' out of the
  puller's list. A refused reference is only not pre-pulled; the workload still runs.
* Anything else is refused with `InvalidReference`, whose `reason` names the problem.

Every `ImageRef` is valid and canonical by construction (its `__post_init__` checks the
fields), so `str(ref)` contains only `[A-Za-z0-9._-/:@]` and parses back to `ref`.

What it is not: it does not contact registries, resolve tags to digests, check that an
image exists, or choose names for the puller's list entries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

__all__ = [
    "ImageRef",
    "InvalidReference",
    "is_modelcar_uri",
    "parse_modelcar_uri",
    "parse_reference",
]

MAX_REFERENCE_LENGTH: Final = 1024  # checked before anything else, so huge inputs are cheap
MAX_NAME_LENGTH: Final = 255  # registry + "/" + repository, as distribution/reference
MAX_TAG_LENGTH: Final = 128

DEFAULT_REGISTRY: Final = "docker.io"
LEGACY_DEFAULT_REGISTRY: Final = "index.docker.io"
# Other names of Docker Hub that pull the same content.
DOCKER_HUB_ALIASES: Final = frozenset({LEGACY_DEFAULT_REGISTRY, "registry-1.docker.io"})
HTTPS_PORT_SUFFIX: Final = ":443"
OFFICIAL_REPO_PREFIX: Final = "library/"
DEFAULT_TAG: Final = "latest"
MODELCAR_SCHEME: Final = "oci://"

# Hex length of the encoded part of each accepted digest algorithm.
_DIGEST_LENGTHS: Final[dict[str, int]] = {"sha256": 64, "sha384": 96, "sha512": 128}

# --- the grammar (distribution/reference regexp.go), ASCII only ----------------------------
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
# Only what Docker's normalisation treats as a registry: a name with a '.', a host with a
# port, or localhost. (No IPv6, see the module docstring.)
_REGISTRY = (
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})+(?::[0-9]+)?"
    rf"|{_DOMAIN_COMPONENT}:[0-9]+"
    r"|(?i:localhost))"
)
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"\w[\w.-]{0,127}"
_DIGEST = "|".join(f"{alg}:[0-9a-f]{{{n}}}" for alg, n in _DIGEST_LENGTHS.items())

_REFERENCE_RE: Final = re.compile(
    rf"(?:(?P<registry>{_REGISTRY})/)?"
    rf"(?P<repository>{_REPOSITORY})"
    rf"(?::(?P<tag>{_TAG}))?"
    rf"(?:@(?P<digest>{_DIGEST}))?",
    re.ASCII,
)
# Always used with fullmatch(): '$' would accept a trailing newline.
_REGISTRY_RE: Final = re.compile(_REGISTRY, re.ASCII)
_REPOSITORY_RE: Final = re.compile(_REPOSITORY, re.ASCII)
_PATH_COMPONENT_RE: Final = re.compile(_PATH_COMPONENT, re.ASCII)
_TAG_RE: Final = re.compile(_TAG, re.ASCII)
_DIGEST_RE: Final = re.compile(_DIGEST, re.ASCII)
_HEX_RE: Final = re.compile(r"[0-9a-fA-F]+", re.ASCII)
_IDENTIFIER_RE: Final = re.compile(r"[0-9a-f]{64}", re.ASCII)
# Any character that can never appear in a reference (the first one found is reported).
_FORBIDDEN_CHAR_RE: Final = re.compile(r"[^A-Za-z0-9._\-/:@]")
# "repo:sha256:<hex>" or "sha256:<hex>": a digest written without its '@'.
_DIGEST_WITHOUT_AT_RE: Final = re.compile(r"(?:^|[/:])(?:sha256|sha384|sha512):", re.ASCII)


class InvalidReference(ValueError):
    """A reference that must not reach the puller.

    `reason` is a short phrase that completes "image reference X ...", e.g.
    "contains ';', which would split the puller's list". `str(exc) == reason`.
    Reasons are always printable ASCII (offending characters are escaped).
    """

    reason: str

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


# `order=True` is not used: the generated comparison compares `tag`/`digest` as tuples
# and raises TypeError on `str < None` (a tagged and a digested ref of the same repository).
# The explicit methods below give the same field order with None sorting first.
@dataclass(frozen=True, slots=True)
class ImageRef:
    """A canonical image reference: exactly one of `tag` and `digest` is set.

    registry:   lowercased domain[:port], e.g. "docker.io", "quay.io", "localhost:5000"
                (never ":443", never another name of Docker Hub)
    repository: lowercase path, e.g. "library/nginx", "modh/odh-workbench-jupyter"
    tag:        None iff digest is set
    digest:     "sha256:<64 lowercase hex>" (or sha384 / sha512 with their lengths)
    """

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    def __post_init__(self) -> None:
        problem = _field_problem(self.registry, self.repository, self.tag, self.digest)
        if problem is not None:
            raise InvalidReference(problem)

    def __str__(self) -> str:
        if self.digest is not None:
            return f"{self.registry}/{self.repository}@{self.digest}"
        return f"{self.registry}/{self.repository}:{self.tag}"

    @property
    def name(self) -> str:
        """`registry/repository`, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def short_name(self) -> str:
        """The last path segment of the repository, e.g. "nginx" for docker.io/library/nginx."""
        return self.repository.rpartition("/")[2]

    def with_tag(self, tag: str) -> ImageRef:
        """The same repository with `tag`. Raises InvalidReference for an invalid tag and
        ValueError on a digest reference (callers check `.digest` first)."""
        if self.digest is not None:
            raise ValueError(f"{self} is pinned by digest; it cannot take a tag")
        problem = _tag_problem(tag)
        if problem is not None:
            raise InvalidReference(problem)
        return ImageRef(self.registry, self.repository, tag, None)

    def _sort_key(self) -> tuple[str, str, str, str]:
        return (self.registry, self.repository, self.tag or "", self.digest or "")

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, ImageRef):
            return NotImplemented
        return self._sort_key() < other._sort_key()

    def __le__(self, other: object) -> bool:
        if not isinstance(other, ImageRef):
            return NotImplemented
        return self._sort_key() <= other._sort_key()

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, ImageRef):
            return NotImplemented
        return self._sort_key() > other._sort_key()

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, ImageRef):
            return NotImplemented
        return self._sort_key() >= other._sort_key()


def parse_reference(text: str) -> ImageRef:
    """Parse and normalise an image reference; raise InvalidReference if it is not valid."""
    if not isinstance(text, str):
        raise InvalidReference("is not a string")
    return _parse_reference(text)


@lru_cache(maxsize=8192)
def _parse_reference(text: str) -> ImageRef:
    """`parse_reference` for a str, memoised: thousands of objects repeat a few hundred
    references, and an ImageRef is immutable. An invalid reference raises: not cached."""
    if len(text) > MAX_REFERENCE_LENGTH:
        raise InvalidReference(f"is longer than {MAX_REFERENCE_LENGTH} characters")
    match = _REFERENCE_RE.fullmatch(text)
    if match is None:
        raise InvalidReference(_diagnose(text))
    registry, repository, tag, digest = match.group("registry", "repository", "tag", "digest")

    if registry is None:
        first, slash, _ = repository.partition("/")
        if slash and "." in first:
            # Docker takes a first component with a '.' as a registry, and this one is not a
            # valid host name (e.g. "my_registry.io/app").
            raise InvalidReference(f"has an invalid registry {first!a}")
        if len(text) == 64 and _IDENTIFIER_RE.fullmatch(text):
            raise InvalidReference("is a bare 64-character hex image ID, not a name")
        registry = DEFAULT_REGISTRY
    else:
        registry = _canonical_registry(registry)
    if registry == DEFAULT_REGISTRY and "/" not in repository:
        repository = OFFICIAL_REPO_PREFIX + repository

    if digest is not None:
        tag = None
    else:
        if tag is None:
            tag = DEFAULT_TAG
        elif _is_digest_without_at(repository, tag):
            raise InvalidReference("has a digest without '@' before it")
    if len(registry) + 1 + len(repository) > MAX_NAME_LENGTH:
        raise InvalidReference(f"has a name longer than {MAX_NAME_LENGTH} characters")
    return _validated_ref(registry, repository, tag, digest)


def _canonical_registry(registry: str) -> str:
    """Lowercase, without the HTTPS port, Docker Hub's other names as `docker.io`."""
    registry = registry.lower().removesuffix(HTTPS_PORT_SUFFIX)
    return DEFAULT_REGISTRY if registry in DOCKER_HUB_ALIASES else registry


def is_modelcar_uri(uri: str) -> bool:
    """True if `uri` names a ModelCar image: it starts with exactly "oci://", as KServe checks."""
    return uri.startswith(MODELCAR_SCHEME)


def parse_modelcar_uri(uri: str) -> ImageRef:
    """Parse a ModelCar storage URI "oci://REGISTRY/REPO:TAG" (or "...@sha256:...").

    Raises InvalidReference without the "oci://" scheme, or with anything after the
    reference (a query, a fragment, whitespace...), since KServe would run the image named
    by everything after the scheme.
    """
    if not isinstance(uri, str):
        raise InvalidReference("is not a string")
    if len(uri) > MAX_REFERENCE_LENGTH:
        raise InvalidReference(f"is longer than {MAX_REFERENCE_LENGTH} characters")
    if not is_modelcar_uri(uri):
        raise InvalidReference(f"does not start with {MODELCAR_SCHEME!a}")
    reference = uri[len(MODELCAR_SCHEME) :]
    if not reference:
        raise InvalidReference(f"names no image after {MODELCAR_SCHEME!a}")
    return parse_reference(reference)


def _is_digest_without_at(repository: str, tag: str) -> bool:
    """True for "[...]/sha256:<hex>": valid grammar (repository "sha256", a hex tag), but
    surely a digest that lost its '@'. 32 hex digits is the shortest digest Docker knows."""
    return repository.rpartition("/")[2] in _DIGEST_LENGTHS and len(tag) >= 32 and _HEX_RE.fullmatch(tag) is not None


def _validated_ref(registry: str, repository: str, tag: str | None, digest: str | None) -> ImageRef:
    """Build an ImageRef from fields `parse_reference` has just checked, skipping the
    second check in `__post_init__` (it would more than double the cost of a parse)."""
    ref = object.__new__(ImageRef)
    object.__setattr__(ref, "registry", registry)
    object.__setattr__(ref, "repository", repository)
    object.__setattr__(ref, "tag", tag)
    object.__setattr__(ref, "digest", digest)
    return ref


# --- explaining a rejection (only runs on invalid input) ------------------------------------


def _char_reason(char: str) -> str:
    if char == ";":
        return "contains ';', which would split the puller's list"
    if char == "=":
        return "contains '=', which would break the puller's name=image entries"
    if not char.isascii():
        return f"contains non-ASCII character U+{ord(char):04X}"
    if char in "[]":
        return f"contains {char!a} (IPv6 registry addresses are not supported)"
    return f"contains {char!a}"


def _tag_problem(tag: str) -> str | None:
    if not isinstance(tag, str):
        return "has a tag that is not a string"
    if _TAG_RE.fullmatch(tag):
        return None
    if not tag:
        return "has an empty tag"
    bad = _FORBIDDEN_CHAR_RE.search(tag)
    if bad is not None:
        return _char_reason(bad.group())
    if len(tag) > MAX_TAG_LENGTH:
        return f"has a tag longer than {MAX_TAG_LENGTH} characters"
    return f"has an invalid tag {tag!a} (letters, digits, '_', '.', '-'; not starting with '.' or '-')"


def _digest_problem(digest: str) -> str | None:
    if _DIGEST_RE.fullmatch(digest):
        return None
    algorithm, colon, encoded = digest.partition(":")
    if not colon:
        return f"has a malformed digest {digest!a} (expected ALGORITHM:HEX)"
    if algorithm not in _DIGEST_LENGTHS:
        return f"has an unsupported digest algorithm {algorithm!a} (only sha256, sha384, sha512)"
    if not _HEX_RE.fullmatch(encoded):
        return f"has a {algorithm} digest with non-hex characters"
    if encoded != encoded.lower():
        return f"has a {algorithm} digest in uppercase hex (digests must be lowercase)"
    expected = _DIGEST_LENGTHS[algorithm]
    return f"has a {algorithm} digest of {len(encoded)} hex characters, expected {expected}"


def _registry_problem(registry: str) -> str | None:
    if registry.startswith("["):
        return "has an IPv6 registry address, which is not supported"
    if not _REGISTRY_RE.fullmatch(registry):
        return f"has an invalid registry {registry!a}"
    return None


def _repository_problem(repository: str) -> str | None:
    if _REPOSITORY_RE.fullmatch(repository):
        return None
    for component in repository.split("/"):
        if not component:
            return "has an empty path component (leading, trailing or double '/')"
        if component != component.lower():
            return "repository must be lowercase"
        if not _PATH_COMPONENT_RE.fullmatch(component):
            return (
                f"has an invalid path component {component!a} (lowercase letters and digits"
                " joined by '.', '_', '__' or '-')"
            )
    return "has an invalid repository"  # not reached: some component is always at fault


def _diagnose(text: str) -> str:
    """Say why `text`, which the grammar refused, is not a valid reference."""
    if not text:
        return "is empty"
    bad = _FORBIDDEN_CHAR_RE.search(text)
    if bad is not None:
        if bad.group() == "[" and bad.start() == 0:
            return "has an IPv6 registry address, which is not supported"
        return _char_reason(bad.group())

    name_and_tag, at, digest = text.partition("@")
    if at:
        if "@" in digest:
            return "contains more than one '@'"
        problem = _digest_problem(digest)
        if problem is not None:
            return problem
    elif _DIGEST_WITHOUT_AT_RE.search(text):
        return "has a digest without '@' before it"

    name = name_and_tag
    colon = name_and_tag.rfind(":")
    if colon > name_and_tag.rfind("/"):
        name, tag = name_and_tag[:colon], name_and_tag[colon + 1 :]
        problem = _tag_problem(tag)
        if problem is not None:
            return problem
    if not name:
        return "has no repository name"

    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first.lower() == "localhost"):
        problem = _registry_problem(first)
        if problem is not None:
            return problem
        name = rest
    if ":" in name:
        return "contains ':' inside the repository path (only REGISTRY:PORT and :TAG use ':')"
    return _repository_problem(name) or "is not a valid image reference"


def _field_problem(registry: str, repository: str, tag: str | None, digest: str | None) -> str | None:
    """Why these fields do not form a canonical ImageRef, or None if they do."""
    if not isinstance(registry, str) or not _REGISTRY_RE.fullmatch(registry):
        return f"has an invalid registry {registry!a}"
    if registry != _canonical_registry(registry):
        return f"has a non-canonical registry {registry!a}"
    if not isinstance(repository, str):
        return f"has an invalid repository {repository!a}"
    problem = _repository_problem(repository)
    if problem is not None:
        return problem
    if registry == DEFAULT_REGISTRY and "/" not in repository:
        return f"has a non-canonical Docker Hub repository {repository!a} (needs 'library/')"
    if len(registry) + 1 + len(repository) > MAX_NAME_LENGTH:
        return f"has a name longer than {MAX_NAME_LENGTH} characters"
    if (tag is None) == (digest is None):
        return "must have exactly one of a tag and a digest"
    if tag is not None:
        if isinstance(tag, str) and _is_digest_without_at(repository, tag):
            return "has a digest without '@' before it"
        return _tag_problem(tag)
    if not isinstance(digest, str):
        return f"has an invalid digest {digest!a}"
    return _digest_problem(digest)
