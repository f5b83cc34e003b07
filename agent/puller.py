"""The KubernetesImagePuller custom resource as the agent reads and writes it.

What this module is for:

* reading `spec.images` exactly the way the puller does (`puller_view`, mirroring
  che-incubator/kubernetes-image-puller `cfg/envvars.go` `processImagesEnvVar`), and as
  a list of the pieces actually written (`parse_images`), so the agent can keep entries it
  does not own byte for byte;
* writing `spec.images` in one stable layout (`render_images`) and deciding whether a
  write would change anything (`same_list`), because every change to the string makes the
  puller delete and recreate its DaemonSet on every node;
* choosing entry names (`entry_name`): each name becomes a container name, so it must be a
  DNS-1123 label, and it is derived from the repository (never from a list position) so
  adding or removing one image renames nothing else;
* recording which entries the agent owns (`OWNED_ANNOTATION`, `read_owned`,
  `render_owned`);
* turning the object returned by the API into a `PullerCR` (`read_puller`), with the
  placement fields the puller copies into its DaemonSet (`spec.nodeSelector`,
  `spec.affinity`, `spec.tolerations`, each a JSON string) read strictly: the puller exits
  on a value it cannot unmarshal, so a malformed one makes the whole CR invalid; and what
  says where the puller runs and what it last did: the names of its Deployment and
  DaemonSet with the operator's defaults, the puller's own image, `status.conditions` where
  an operator writes them, and when the agent last wrote the CR (its field manager's time
  in `metadata.managedFields`).

What it is not: it makes no API calls, reads no settings, and decides nothing about which
images to pull. Choosing the set, keeping owned names stable and building the patch belong
to the planner and the output code.

Two upstream traps the callers must know about:

* The operator replaces an EMPTY `spec.images` with its own default list (Che images,
  che-incubator/kubernetes-image-puller-operator `pkg/config/configmap.go`). Writing ""
  therefore does not mean "pull nothing". `puller_view` describes the puller's reading of
  a string, not that substitution.
* A repeated name silently keeps the last image, and a piece without exactly one `=` is
  dropped with only a log line; `parse_images` keeps such pieces so they survive a rewrite.
* A list the puller reads no entry from (`";"`, or only malformed pieces) crash-loops it:
  it exits when `IMAGES` is empty and otherwise creates a DaemonSet with no container,
  which the API server rejects, after deleting the old one (che-incubator/
  kubernetes-image-puller `cfg/envvars.go`, `utils/clusterutils.go`). `has_entry` says
  whether a list is safe to write; the planner never writes one that is not.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agent.placement import (
    NodeAffinity,
    Placement,
    PlacementError,
    Toleration,
    puller_placement,
    read_affinity_json,
    read_tolerations_json,
)
from agent.version import FIELD_MANAGER

if TYPE_CHECKING:  # only `short_name`, `tag`, `digest` and `str()` are used at run time
    from agent.refs import ImageRef

__all__ = [
    "DEFAULT_CONFIG_MAP_NAME",
    "DEFAULT_DAEMONSET_NAME",
    "DEFAULT_DEPLOYMENT_NAME",
    "DEFAULT_PULLER_IMAGE",
    "Condition",
    "KINDS_ANNOTATION",
    "TAGS_ANNOTATION",
    "OWNED_ANNOTATION",
    "RESERVED_NAMES",
    "Entry",
    "InvalidPullerCR",
    "PullerCR",
    "PullerState",
    "entry_name",
    "has_entry",
    "is_dns1123_label",
    "is_object_name",
    "parse_images",
    "puller_view",
    "read_entry_kinds",
    "read_entry_tags",
    "last_write_by",
    "parse_time",
    "read_owned",
    "render_entry_kinds",
    "render_entry_tags",
    "read_puller",
    "entry_changes",
    "render_images",
    "render_owned",
    "same_list",
]

OWNED_ANNOTATION = "prepull-agent.io/owned-entries"
# {entry name: [kinds of the objects using its image]}: what keeps an entry when one of
# those kinds cannot be listed.
KINDS_ANNOTATION = "prepull-agent.io/entry-kinds"
# {entry name: tag}: an entry listing the digest nodes reported for a tag (never the tag
# itself, whose content may change), so the tag keeps meaning that digest while no node
# says otherwise.
TAGS_ANNOTATION = "prepull-agent.io/entry-tags"
# Container names the puller's DaemonSet uses itself (newer pullers copy their `sleep`
# binary with an init container of this name): an entry named so would collide with it.
RESERVED_NAMES = frozenset({"copy-sleep"})

KIND = "KubernetesImagePuller"  # agent.model.KindName.IMAGE_PULLER (this module imports no model)

# What an empty field means, as the operator and the puller read it. The operator writes
# `deploymentName` and `imagePullerImage` defaults into the CR and passes `daemonsetName`
# to the puller only when set (che-incubator/kubernetes-image-puller-operator
# `controllers/kubernetesimagepuller_controller.go`, `pkg/config/configmap.go`,
# `pkg/defaults/defaults.go`: DaemonSetName, DeploymentName "kubernetes-image-puller");
# the puller's own defaults agree (che-incubator/kubernetes-image-puller `cfg/envvars.go`:
# DAEMONSET_NAME "kubernetes-image-puller", KIP_IMAGE "quay.io/eclipse/kubernetes-image-puller:next").
DEFAULT_DEPLOYMENT_NAME = "kubernetes-image-puller"
DEFAULT_CONFIG_MAP_NAME = "k8s-image-puller"
DEFAULT_DAEMONSET_NAME = "kubernetes-image-puller"
DEFAULT_PULLER_IMAGE = "quay.io/eclipse/kubernetes-image-puller:next"
_SUBDOMAIN_MAX = 253

# Go's strings.TrimSpace trims what unicode.IsSpace accepts: the Unicode White_Space set.
# Python's str.strip() also trims U+001C..U+001F, which Go keeps, so the set is explicit.
_GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)

_DNS1123_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
_LABEL_MAX = 63
_NOT_LABEL_CHARS = re.compile(r"[^a-z0-9]+")
_HASH_CHARS = 8
# A tag suffix longer than this is cut, so the repository part keeps most of the name.
_TAG_SUFFIX_MAX = 24


def _go_trim(text: str) -> str:
    return text.strip(_GO_SPACE)


def _split_piece(piece: str) -> tuple[str, str] | tuple[None, None]:
    """The puller's `strings.Split(image, "=")` with its `len != 2` check."""
    parts = piece.split("=")
    if len(parts) != 2:
        return None, None
    return parts[0], parts[1]


def _is_image_text(image: str) -> bool:
    """An image the agent may write after `name=`: non-empty, no separator, no whitespace."""
    return (
        bool(image) and ";" not in image and "=" not in image and not any(c.isspace() or c in _GO_SPACE for c in image)
    )


@dataclass(frozen=True, slots=True)
class Entry:
    """One `name=image` piece of spec.images as written: `text` is the trimmed piece verbatim.

    `name`/`image` are what the puller would read from it, or None when the puller drops it
    (no '=' or more than one '='). The constructor checks that `name`/`image` agree with
    `text`, so an Entry never misdescribes what the puller sees.
    """

    text: str
    name: str | None
    image: str | None

    def __post_init__(self) -> None:
        if not self.text or ";" in self.text or _go_trim(self.text) != self.text:
            raise ValueError(f"not a trimmed, non-empty spec.images piece: {self.text!r}")
        if (self.name, self.image) != _split_piece(self.text):
            raise ValueError(
                f"entry {self.text!r} is read by the puller as {_split_piece(self.text)!r}, "
                f"not {(self.name, self.image)!r}"
            )

    @classmethod
    def of(cls, name: str, image: str) -> Entry:
        """An entry the agent writes: `name` a DNS-1123 label, `image` without `;`, `=` or
        whitespace. Raises ValueError otherwise, so the agent cannot write an entry that
        would break the DaemonSet or be read differently by the puller."""
        if not is_dns1123_label(name):
            raise ValueError(f"entry name is not a DNS-1123 label: {name!r}")
        if name in RESERVED_NAMES:
            raise ValueError(f"entry name is used by the puller itself: {name!r}")
        if not _is_image_text(image):
            raise ValueError(f"image cannot be written in spec.images: {image!r}")
        return cls(text=f"{name}={image}", name=name, image=image)


def parse_images(text: str | None) -> tuple[Entry, ...]:
    """Every non-empty trimmed `;`-separated piece of `text`, in order.

    Malformed pieces (no `=`, or more than one) are kept with `name`/`image` None, and
    repeated names are all kept, so rendering the result again changes nothing the puller
    reads. Newlines are not separators: `a=x\\nb=y` is one piece.
    """
    if not text:
        return ()
    entries: list[Entry] = []
    for raw in text.split(";"):
        piece = _go_trim(raw)
        if piece:
            name, image = _split_piece(piece)
            entries.append(Entry(text=piece, name=name, image=image))
    return tuple(entries)


def puller_view(text: str | None) -> dict[str, str]:
    """Exactly the puller's reading of `text` as {container name: image}.

    Transliterates `processImagesEnvVar`: trim the whole string, split on `;`, trim each
    piece, drop only a trailing empty piece, drop pieces without exactly one `=`, and let a
    repeated name keep the last image. Whitespace around `=` is kept ("a = b" is name "a ",
    image " b"). None and "" give {} (the operator would substitute its defaults for "").
    """
    images = [_go_trim(piece) for piece in _go_trim(text or "").split(";")]
    if images[-1] == "":
        images.pop()
    view: dict[str, str] = {}
    for piece in images:
        name, image = _split_piece(piece)
        if name is None or image is None:
            continue
        view[name] = image
    return view


def entry_changes(before: PullerState, after: PullerState) -> tuple[list[str], list[str]]:
    """The entry names `after` adds to `before` and removes from it, each sorted (an entry
    whose image changed is both; an entry without a name is named by its text)."""
    old = {e.text: e.name or e.text for e in before.entries}
    new = {e.text: e.name or e.text for e in after.entries}
    return sorted(n for t, n in new.items() if t not in old), sorted(n for t, n in old.items() if t not in new)


def render_images(entries: Sequence[Entry]) -> str:
    """spec.images with one `text;` per line, every line ending in a newline.

    "a=x;\\nb=y;\\n", readable in `oc edit`; deterministic; the empty sequence gives "".
    Beware: the operator replaces an empty spec.images with its default images.
    """
    return "".join(f"{entry.text};\n" for entry in entries)


def same_list(a: Sequence[Entry], b: Sequence[Entry]) -> bool:
    """True when `a` and `b` hold the same pieces in the same order: no write is needed.

    Compares the pieces' texts, in order (same texts also means the same `puller_view`).
    Layout differences of the original string (one line or many, spaces around `;`,
    empty pieces) do not count as a change; a reordering does.
    """
    return tuple(entry.text for entry in a) == tuple(entry.text for entry in b)


def is_dns1123_label(name: str) -> bool:
    """Lowercase alphanumerics and `-`, alphanumeric at both ends, 1 to 63 characters."""
    return isinstance(name, str) and len(name) <= _LABEL_MAX and _DNS1123_LABEL.fullmatch(name) is not None


def is_object_name(name: str) -> bool:
    """A DNS-1123 subdomain (labels joined by `.`, at most 253 characters): what the API
    accepts as a Deployment's or DaemonSet's name, and safe to put in a request path."""
    return (
        isinstance(name, str) and 0 < len(name) <= _SUBDOMAIN_MAX and all(map(is_dns1123_label, name.split(".")))
    )


def has_entry(entries: Sequence[Entry]) -> bool:
    """Whether the puller reads at least one `name=image` entry from `entries`: a list
    without one crash-loops it (see the module docstring)."""
    return any(e.name is not None and e.image is not None for e in entries)


def _sanitize(text: str) -> str:
    return _NOT_LABEL_CHARS.sub("-", text.lower()).strip("-")


def _join(base: str, suffix: str) -> str:
    """`base-suffix`, cutting `base` (never the suffix) so the result fits a label."""
    room = _LABEL_MAX - len(suffix) - 1
    return f"{base[:room].rstrip('-')}-{suffix}"


def entry_name(
    ref: ImageRef, *, taken: Collection[str], tag: str | None = None, hints: Sequence[str] = ()
) -> str:
    """A DNS-1123 label for `ref`, derived from its repository and not in `taken`.

    Deterministic: the same ref and the same `taken` give the same name. Candidates in
    order: the sanitized last repository segment ("image" if nothing is left of it); that
    plus the sanitized tag, when there is one (`tag`, for an image listed by digest: the
    tag it was found under, so two ModelCars of one repository read as their models);
    that plus each of `hints` (readable names of the image, such as the ImageStream
    offering it), sanitized; that plus the first 8 hex digits of
    sha256(str(ref)); then the hash form plus "-2", "-3"... The repository part is cut
    so every candidate fits 63 characters. Keeping an entry's name once chosen is the
    caller's job: call this only for images that have no name yet.
    """
    used = frozenset(taken) | RESERVED_NAMES
    base = _sanitize(ref.short_name)[:_LABEL_MAX].rstrip("-") or "image"
    if base not in used:
        return base
    for readable in (tag or ref.tag, *hints):
        suffix = _sanitize(readable)[:_TAG_SUFFIX_MAX].rstrip("-") if readable else ""
        if suffix and suffix != base:
            candidate = _join(base, suffix)
            if candidate not in used:
                return candidate
    digest = hashlib.sha256(str(ref).encode()).hexdigest()[:_HASH_CHARS]
    candidate = _join(base, digest)
    counter = 1
    while candidate in used:
        counter += 1
        candidate = _join(base, f"{digest}-{counter}")
    return candidate


def read_owned(annotations: Mapping[str, str] | None) -> dict[str, str]:
    """The entries the agent owns, {entry name: image text}, from OWNED_ANNOTATION.

    Never raises. Anything malformed reads as not owned: a value that is not JSON or not
    a JSON object gives {}, and pairs whose name is not a DNS-1123 label or whose image
    could not have been written by the agent are left out. Owning less is the safe
    reading: the agent never touches entries it does not own.
    """
    return {
        name: image
        for name, image in _annotation_map(annotations, OWNED_ANNOTATION).items()
        if is_dns1123_label(name) and isinstance(image, str) and _is_image_text(image)
    }


def render_owned(owned: Mapping[str, str]) -> str:
    """OWNED_ANNOTATION's value: compact JSON with sorted keys, so equal maps give equal text.

    Raises ValueError for a pair `read_owned` would drop, so what is written reads back
    unchanged.
    """
    for name, image in owned.items():
        if not is_dns1123_label(name) or not isinstance(image, str) or not _is_image_text(image):
            raise ValueError(f"cannot record owned entry {name!r}={image!r}")
    return _compact(dict(owned))


def read_entry_kinds(annotations: Mapping[str, str] | None) -> dict[str, tuple[str, ...]]:
    """{entry name: kinds} from KINDS_ANNOTATION; anything malformed is left out (never raises)."""
    return {
        name: tuple(sorted(set(kinds)))
        for name, kinds in _annotation_map(annotations, KINDS_ANNOTATION).items()
        if is_dns1123_label(name) and isinstance(kinds, list) and all(isinstance(k, str) and k for k in kinds)
    }


def render_entry_kinds(kinds: Mapping[str, Sequence[str]]) -> str:
    return _compact({name: sorted(set(k)) for name, k in kinds.items()})


def read_entry_tags(annotations: Mapping[str, str] | None) -> dict[str, str]:
    """{entry name: tag} from TAGS_ANNOTATION; anything malformed is left out (never raises)."""
    return {
        name: tag
        for name, tag in _annotation_map(annotations, TAGS_ANNOTATION).items()
        if is_dns1123_label(name) and isinstance(tag, str) and _is_image_text(tag)
    }


def render_entry_tags(tags: Mapping[str, str]) -> str:
    return _compact(dict(tags))


def _annotation_map(annotations: Mapping[str, str] | None, key: str) -> dict[Any, Any]:
    """The JSON object an agent annotation holds, or {} for anything else (never raises)."""
    raw = annotations.get(key) if isinstance(annotations, Mapping) else None
    if not isinstance(raw, str):
        return {}
    try:
        decoded: Any = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _compact(value: Mapping[str, Any]) -> str:
    """Compact JSON with sorted keys: equal maps give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class PullerCR:
    """What the agent needs from a KubernetesImagePuller object."""

    namespace: str
    name: str
    resource_version: str
    images: str  # spec.images, "" if absent
    owned: dict[str, str]  # from OWNED_ANNOTATION
    node_selector: dict[str, str]  # spec.nodeSelector decoded; {} if absent or empty
    entry_kinds: dict[str, tuple[str, ...]] = field(default_factory=dict)  # from KINDS_ANNOTATION
    entry_tags: dict[str, str] = field(default_factory=dict)  # from TAGS_ANNOTATION
    affinity: NodeAffinity | None = None  # spec.affinity's required node affinity; None if none
    tolerations: tuple[Toleration, ...] = ()  # spec.tolerations decoded
    uid: str = ""  # metadata.uid: what an Event names
    deployment_name: str = DEFAULT_DEPLOYMENT_NAME  # spec.deploymentName, the operator's default if empty
    config_map_name: str = DEFAULT_CONFIG_MAP_NAME  # spec.configMapName, the default if empty
    daemonset_name: str = DEFAULT_DAEMONSET_NAME  # spec.daemonsetName, the default if empty
    puller_image: str = ""  # spec.imagePullerImage, else status.imagePullerImage; "" if neither
    conditions: tuple[Condition, ...] = ()  # status.conditions, where an operator writes them
    last_written: datetime | None = None  # the agent's field manager's time in managedFields
    images_set: datetime | None = None  # the latest time of a field manager that owns spec.images

    def entries(self) -> tuple[Entry, ...]:
        return parse_images(self.images)

    def placement(self) -> Placement:
        """Where the puller's DaemonSet runs (`agent.placement.puller_placement`)."""
        return puller_placement(node_selector=self.node_selector, affinity=self.affinity, tolerations=self.tolerations)


@dataclass(frozen=True, slots=True, eq=False)
class PullerState:
    """What the agent reads and writes of a KubernetesImagePuller: the entries of
    `spec.images` and the agent's annotations (ownership, kinds, tags). The planner
    computes the state the CR should have after a cycle (`Plan.desired`) once; the writer
    sends it, the report diffs it against the state read (`Plan.current`), and the check
    after the write compares the server's copy with it.

    Two states are equal when they hold the same pieces in the same order and the same
    annotation maps: layout differences of the string (one line or many, spaces around
    `;`) are not a change, so they never cause a write.
    """

    entries: tuple[Entry, ...]
    owned: Mapping[str, str]
    entry_kinds: Mapping[str, tuple[str, ...]]
    entry_tags: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, puller: PullerCR) -> PullerState:
        return cls(puller.entries(), dict(puller.owned), dict(puller.entry_kinds), dict(puller.entry_tags))

    def _key(self) -> tuple[object, ...]:
        kinds = tuple(sorted((name, tuple(sorted(set(k)))) for name, k in self.entry_kinds.items()))
        tags = tuple(sorted(self.entry_tags.items()))
        return (tuple(e.text for e in self.entries), tuple(sorted(self.owned.items())), kinds, tags)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PullerState) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @property
    def images(self) -> str:
        """`spec.images` as the agent writes it (see `render_images`)."""
        return render_images(self.entries)

    @property
    def annotations(self) -> dict[str, str]:
        return {
            OWNED_ANNOTATION: render_owned(self.owned),
            KINDS_ANNOTATION: render_entry_kinds(self.entry_kinds),
            TAGS_ANNOTATION: render_entry_tags(self.entry_tags),
        }


@dataclass(frozen=True, slots=True)
class Condition:
    """One entry of `status.conditions` (metav1.Condition's shape)."""

    type: str
    status: str
    reason: str = ""
    message: str = ""


class InvalidPullerCR(ValueError):
    """The object cannot be read as a KubernetesImagePuller; the message names object and field."""


def _text_or_unknown(value: Any) -> str:
    return value if isinstance(value, str) and value else "<unknown>"


def read_puller(obj: Mapping[str, Any]) -> PullerCR:
    """A `PullerCR` from the object as the API returns it (a plain dict).

    Raises InvalidPullerCR, naming the object and the field, when metadata is incomplete,
    spec or one of the fields read is of the wrong type, spec.nodeSelector is not a JSON
    object of strings, spec.affinity not a JSON object of the pod `affinity` shape, or
    spec.tolerations not a JSON list of tolerations (the puller would exit on them too; the
    inner field is named: "spec.affinity.nodeAffinity...nodeSelectorTerms is not a list").
    The owned-entries annotation never makes the object invalid: garbage there reads as
    "owns nothing".
    """
    metadata, namespace, name, resource_version = _identity(obj)
    where = f"{KIND} {namespace}/{name}"
    spec = obj.get("spec")
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise InvalidPullerCR(f"{where}: spec is not an object: {type(spec).__name__}")
    images = spec.get("images")
    if images is None:
        images = ""
    if not isinstance(images, str):
        raise InvalidPullerCR(f"{where}: spec.images is not a string: {type(images).__name__}")
    node_selector = _node_selector(spec.get("nodeSelector"))
    if isinstance(node_selector, str):
        raise InvalidPullerCR(f"{where}: spec.nodeSelector {node_selector}")
    try:
        affinity = read_affinity_json(spec.get("affinity"), field="spec.affinity")
        tolerations = read_tolerations_json(spec.get("tolerations"), field="spec.tolerations")
    except PlacementError as e:
        raise InvalidPullerCR(f"{where}: {e.field} {e.problem}") from None
    annotations = metadata.get("annotations")
    status = obj.get("status")
    status = status if isinstance(status, Mapping) else {}
    return PullerCR(
        namespace=namespace,
        name=name,
        resource_version=resource_version,
        images=images,
        owned=read_owned(annotations),
        node_selector=node_selector,
        entry_kinds=read_entry_kinds(annotations),
        entry_tags=read_entry_tags(annotations),
        affinity=affinity,
        tolerations=tolerations,
        uid=_text(metadata.get("uid")),
        deployment_name=_text(spec.get("deploymentName")) or DEFAULT_DEPLOYMENT_NAME,
        config_map_name=_text(spec.get("configMapName")) or DEFAULT_CONFIG_MAP_NAME,
        daemonset_name=_text(spec.get("daemonsetName")) or DEFAULT_DAEMONSET_NAME,
        puller_image=_text(spec.get("imagePullerImage")) or _text(status.get("imagePullerImage")),
        conditions=_conditions(status.get("conditions")),
        last_written=last_write_by(metadata.get("managedFields"), FIELD_MANAGER),
        images_set=_images_set(metadata.get("managedFields")),
    )


_MAX_CONDITIONS = 16
_MAX_CONDITION_TEXT = 512


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _conditions(raw: Any) -> tuple[Condition, ...]:
    """status.conditions as far as they have the metav1.Condition shape; the rest is
    skipped. No stored version of the operator writes them and its CRD prunes them
    (che-incubator/kubernetes-image-puller-operator `api/v1alpha1/kubernetesimagepuller_types.go`:
    status holds only imagePullerImage), so this reads what a future or patched one would."""
    if not isinstance(raw, list):
        return ()
    found = []
    for item in raw[:_MAX_CONDITIONS]:
        if isinstance(item, Mapping) and isinstance(item.get("type"), str) and isinstance(item.get("status"), str):
            found.append(
                Condition(
                    item["type"][:_MAX_CONDITION_TEXT],
                    item["status"][:_MAX_CONDITION_TEXT],
                    _text(item.get("reason"))[:_MAX_CONDITION_TEXT],
                    _text(item.get("message"))[:_MAX_CONDITION_TEXT],
                )
            )
    return tuple(found)


def last_write_by(managed_fields: Any, manager: str) -> datetime | None:
    """When `manager` last changed the object itself (not a subresource), from
    `metadata.managedFields`; None when it never did or the entry cannot be read."""
    if not isinstance(managed_fields, list):
        return None
    times = []
    for entry in managed_fields:
        if not isinstance(entry, Mapping) or entry.get("manager") != manager or entry.get("subresource"):
            continue
        when = parse_time(entry.get("time"))
        if when is not None:
            times.append(when)
    return max(times) if times else None


def _images_set(managed_fields: Any) -> datetime | None:
    """At the latest, when spec.images last changed: the latest time of the field managers
    that own it (a manager's time moves with any change it makes, so this may be later)."""
    if not isinstance(managed_fields, list):
        return None
    times = []
    for entry in managed_fields:
        if not isinstance(entry, Mapping) or entry.get("subresource"):
            continue
        owned = entry.get("fieldsV1")
        spec = owned.get("f:spec") if isinstance(owned, Mapping) else None
        if isinstance(spec, Mapping) and "f:images" in spec and (when := parse_time(entry.get("time"))):
            times.append(when)
    return max(times) if times else None


def parse_time(value: Any) -> datetime | None:
    """A metav1.Time (`2024-05-01T10:00:00Z`, RFC 3339), timezone-aware; None if it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def _identity(obj: Any) -> tuple[Mapping[str, Any], str, str, str]:
    """(metadata, namespace, name, resourceVersion); raises InvalidPullerCR naming what is missing."""
    if not isinstance(obj, Mapping):
        raise InvalidPullerCR(f"{KIND} <unknown>: not an object: {type(obj).__name__}")
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        raise InvalidPullerCR(f"{KIND} <unknown>: metadata is missing")
    where = f"{KIND} {_text_or_unknown(metadata.get('namespace'))}/{_text_or_unknown(metadata.get('name'))}"
    found = []
    for key in ("namespace", "name", "resourceVersion"):
        value = metadata.get(key)
        if not isinstance(value, str) or not value:
            raise InvalidPullerCR(f"{where}: metadata.{key} is missing")
        found.append(value)
    namespace, name, resource_version = found
    return metadata, namespace, name, resource_version


def _node_selector(raw: Any) -> dict[str, str] | str:
    """The decoded selector, or a description of what is wrong with it."""
    if raw is None or raw == "":  # the operator substitutes "{}" for ""
        return {}
    if not isinstance(raw, str):
        return f"is not a string: {type(raw).__name__}"
    problem = f"is not a JSON object of strings: {raw!r}"
    try:
        decoded: Any = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        return f"{problem} ({exc})"
    if decoded is None:  # Go's json.Unmarshal accepts null into a map
        return {}
    if not isinstance(decoded, dict):
        return problem
    bad = sorted(key for key, value in decoded.items() if not isinstance(value, str))
    if bad:
        return f"{problem} (values not strings: {', '.join(bad)})"
    return decoded
