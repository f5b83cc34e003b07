"""Helpers every source uses: safe field access on wire dicts, strict reference parsing
that turns a bad reference into a `Rejection` naming the object and field, and the
Ready condition.

Wire data is whatever a tenant or a controller wrote: any field may be missing or of the
wrong type, so nothing here assumes a shape.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.model import ObjectRef, Rejection, Usage
from agent.refs import ImageRef, InvalidReference, parse_modelcar_uri, parse_reference

MAX_REFERENCE_REPORTED = 200  # characters of a rejected reference kept in reports


@dataclass
class Findings:
    """What one or more objects said about images: accepted usages and rejected references."""

    usages: list[Usage] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    def extend(self, other: Findings) -> None:
        self.usages.extend(other.usages)
        self.rejections.extend(other.rejections)


def dig(obj: Any, *keys: str) -> Any:
    """`obj[k1][k2]...`, or None as soon as a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


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
        findings.rejections.append(
            Rejection(
                reference=repr(value)[:MAX_REFERENCE_REPORTED], reason="is not a string", source=source, field=field
            )
        )
        return None
    try:
        return parse_modelcar_uri(value) if modelcar else parse_reference(value)
    except InvalidReference as e:
        shown = value if len(value) <= MAX_REFERENCE_REPORTED else value[:MAX_REFERENCE_REPORTED] + "..."
        findings.rejections.append(Rejection(reference=shown, reason=e.reason, source=source, field=field))
        return None


def containers(pod_spec: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """`(container name, field path, image value)` for containers and initContainers."""
    for key in ("initContainers", "containers"):
        for i, container in enumerate(as_list(dig(pod_spec, key))):
            if not isinstance(container, Mapping):
                continue
            name = as_str(container.get("name"))
            where = f"{path}.{key}[{name or i}].image"
            if "image" in container:
                yield name, where, container.get("image")


def is_ready(obj: Mapping[str, Any]) -> bool:
    """True when `status.conditions` has type Ready with status "True"."""
    for condition in as_list(dig(obj, "status", "conditions")):
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False
