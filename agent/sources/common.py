"""Helpers every source uses: safe field access on wire dicts, strict reference parsing
that turns a bad reference into a `Rejection` naming the object and field, the Ready
condition, and the bounds on what is read from one object and kept from all of them.

Wire data is whatever a tenant or a controller wrote: any field may be missing or of the
wrong type, any list as long as the object's size allows, any string as long, any value
nested as deep. So nothing here assumes a shape, nothing recurses over a value, and:

- a reader takes at most the first `MAX_*` entries of each list it walks (containers,
  storage URIs, stream tags, model formats...); the excess is one rejection naming the
  object and the field (`bounded`);
- every tenant string kept in a rejection, a problem or a field path is cut to
  `MAX_TEXT` characters (`clip`);
- `Findings` keeps the first `MAX_REJECTIONS_KEPT` rejections and counts the rest
  (`rejections_total`), and one usage per object, image and way of using it (`use`).

Where a pod could run (`scheduling`, through `agent.placement`) is read the same way: a
pod spec whose scheduling fields cannot be read is one rejection naming the object and the
field, and its images are not used (the API server would refuse that pod). Placements
repeat across thousands of workloads, so each is kept once (`intern`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.model import ObjectRef, Rejection, Role, State, StreamTag, Usage
from agent.placement import (
    MAX_TOLERATIONS,
    Placement,
    PlacementError,
    PodScheduling,
    hint_placement,
    read_pod_scheduling,
)
from agent.refs import ImageRef, InvalidReference, parse_modelcar_uri, parse_reference

MAX_TEXT = 200  # characters of any tenant string kept in a rejection, a problem or a log line
MAX_REFERENCE_REPORTED = MAX_TEXT  # (the older name, for the reference of a rejection)
MAX_NAME_IN_FIELD = 64  # characters of a tenant-chosen name shown inside a field path
# Characters of a name kept to be matched (a runtime, a stream, a tag): the longest an
# object name can be, so a clipped name matches nothing, as the full one would.
MAX_NAME = 253
MAX_REJECTIONS_KEPT = 1000  # rejections kept per cycle; the rest are only counted
MAX_PROBLEMS_KEPT = 1000  # unresolved InferenceServices kept per cycle; the rest are only counted
# What one object may make the agent read. Real objects stay far below: a workbench has a
# handful of containers, a runtime a few model formats, a stream a few dozen tags.
MAX_CONTAINERS = 64  # per `containers` / `initContainers` list of one pod spec
MAX_STORAGE_URIS = 16  # `storageUris` of one predictor, transformer or explainer
MAX_STREAM_TAGS = 256  # `spec.tags` / `status.tags` of one ImageStream
MAX_MODEL_FORMATS = 64  # `supportedModelFormats` of one runtime
MAX_PROTOCOLS = 8  # `protocolVersions` of one runtime
MAX_TEMPLATE_OBJECTS = 64  # `objects` of one Template


@dataclass
class Findings:
    """What one or more objects said about images: accepted usages and rejected references.

    `rejections` holds the first `MAX_REJECTIONS_KEPT`; `rejections_total` counts them all.
    A reader's Findings is one object's: `use` keeps one usage per (image, role, state,
    stream tag) of it, since further fields naming the same image add nothing the planner
    uses (it scores an image once per object).
    """

    usages: list[Usage] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    rejections_dropped: int = 0  # rejections counted but not kept
    _used: set[tuple[ImageRef, ObjectRef, Role, State, StreamTag | None, Placement | None]] = field(
        default_factory=set, repr=False, compare=False
    )

    @property
    def rejections_total(self) -> int:
        """Every rejection, kept or not."""
        return len(self.rejections) + self.rejections_dropped

    def use(self, usage: Usage) -> None:
        key = (usage.image, usage.source, usage.role, usage.state, usage.stream_tag, usage.placement)
        if key not in self._used:
            self._used.add(key)
            self.usages.append(usage)

    def reject(self, rejection: Rejection) -> None:
        if len(self.rejections) < MAX_REJECTIONS_KEPT:
            self.rejections.append(rejection)
        else:
            self.rejections_dropped += 1

    def extend(self, other: Findings) -> None:
        self.usages.extend(other.usages)
        room = max(MAX_REJECTIONS_KEPT - len(self.rejections), 0)
        self.rejections.extend(other.rejections[:room])
        self.rejections_dropped += other.rejections_total - min(room, len(other.rejections))


_INTERNED: dict[Placement, Placement] = {}
MAX_INTERNED = 4096  # distinct placements kept for sharing; a cluster has a few dozen


def intern(placement: Placement) -> Placement:
    """One shared copy of each placement (10,000 workbenches have a handful between them)."""
    found = _INTERNED.get(placement)
    if found is not None:
        return found
    if len(_INTERNED) >= MAX_INTERNED:
        _INTERNED.clear()
    _INTERNED[placement] = placement
    return placement


def scheduling(
    spec: Any, *, field: str, source: ObjectRef, findings: Findings, model_key: str | None = None
) -> PodScheduling | None:
    """Where the pod of `spec` may run, before any merge; None (and one rejection naming the
    object and field) when its scheduling fields cannot be read. Only the first
    MAX_TOLERATIONS tolerations are read (the excess is one rejection)."""
    tolerations = dig(spec, "tolerations")
    bounded(tolerations, limit=MAX_TOLERATIONS, source=source, field=f"{field}.tolerations", findings=findings)
    try:
        return read_pod_scheduling(spec, field=field, source=str(source), model_key=model_key)
    except PlacementError as e:
        findings.reject(Rejection(reference="", reason=clip(e.problem), source=source, field=clip(e.field)))
        return None


def hinted(obj: Any, *, source: ObjectRef, findings: Findings) -> Placement:
    """Where an image `obj` offers belongs: its `opendatahub.io/recommended-accelerators`
    annotation (`agent.placement.hint_placement`). A value that cannot be read is one
    rejection, and the image is placed like a plain pod."""
    try:
        return intern(hint_placement(annotations_of(obj) if isinstance(obj, Mapping) else None, source=str(source)))
    except PlacementError as e:
        findings.reject(Rejection(reference="", reason=clip(e.problem), source=source, field=clip(e.field)))
        return intern(Placement())


def dig(obj: Any, *keys: str) -> Any:
    """`obj[k1][k2]...`, or None as soon as a level is missing or not a mapping."""
    for key in keys:
        if type(obj) is not dict and not isinstance(obj, Mapping):  # parsed JSON: skip the slower ABC check
            return None
        obj = obj.get(key)
    return obj


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """`text`, cut to `limit` characters (plus a note of its real length) when longer."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


def describe(value: Any) -> str:
    """A short description of a non-string value, for a rejection. Never recursive and never
    longer than `MAX_TEXT`, whatever the value holds (`repr` of a list nested 100,000 deep
    raises RecursionError; of a 1 MB one, builds a 1 MB string)."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int | float):
        return clip(str(value)) if isinstance(value, float) or abs(value) < 10**100 else "a very large number"
    if isinstance(value, list):
        return f"a list of {len(value):,} items"
    if isinstance(value, Mapping):
        return f"an object with {len(value):,} keys"
    return f"a {type(value).__name__}"


def bounded(value: Any, *, limit: int, source: ObjectRef, field: str, findings: Findings) -> list[Any]:
    """The first `limit` entries of a list field (a non-list reads as empty). More is one
    rejection naming the object and the field."""
    items = as_list(value)
    if len(items) <= limit:
        return items
    findings.reject(
        Rejection(
            reference="",
            reason=f"has {len(items):,} entries; only the first {limit} are read",
            source=source,
            field=field,
        )
    )
    return items[:limit]


def object_ref(kind: str, obj: Mapping[str, Any]) -> ObjectRef:
    return ObjectRef(kind, as_str(dig(obj, "metadata", "namespace")), as_str(dig(obj, "metadata", "name")))


def annotations_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    value = dig(obj, "metadata", "annotations")
    return value if isinstance(value, Mapping) else {}


def labels_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    value = dig(obj, "metadata", "labels")
    return value if isinstance(value, Mapping) else {}


def parse_image(
    value: Any, *, source: ObjectRef, field: str, findings: Findings, modelcar: bool = False
) -> ImageRef | None:
    """Parse a reference; on failure record a Rejection and return None."""
    if not isinstance(value, str):
        findings.reject(Rejection(reference=describe(value), reason="is not a string", source=source, field=field))
        return None
    try:
        return parse_modelcar_uri(value) if modelcar else parse_reference(value)
    except InvalidReference as e:
        shown = value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "..."
        findings.reject(Rejection(reference=shown, reason=clip(e.reason), source=source, field=field))
        return None


def containers(pod_spec: Any, path: str, *, source: ObjectRef, findings: Findings) -> Iterator[tuple[str, str, Any]]:
    """`(container name, field path, image value)` for containers and initContainers, at most
    `MAX_CONTAINERS` of each (more is one rejection). Names in the path are clipped."""
    for key in ("initContainers", "containers"):
        listed = bounded(
            dig(pod_spec, key), limit=MAX_CONTAINERS, source=source, field=f"{path}.{key}", findings=findings
        )
        for i, container in enumerate(listed):
            if type(container) is not dict and not isinstance(container, Mapping):
                continue
            name = as_str(container.get("name"))
            where = f"{path}.{key}[{clip(name, MAX_NAME_IN_FIELD) or i}].image"
            if "image" in container:
                yield name, where, container.get("image")


def is_ready(obj: Mapping[str, Any]) -> bool:
    """True when `status.conditions` has type Ready with status "True"."""
    for condition in as_list(dig(obj, "status", "conditions")):
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False
