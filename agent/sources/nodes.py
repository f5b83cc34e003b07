"""Nodes: image sizes, disk capacity, and what decides which pods may run there.

`status.images` lists up to 50 images per node with their `names` and `sizeBytes`: the
only real source of sizes for images some node already holds. `status.capacity` carries
`ephemeral-storage`, the disk the budget is a fraction of. Node names and labels are kept
so the planner can pick the nodes the puller targets (its `nodeSelector`), and so are what
`agent.placement` checks pods against: `spec.taints`, `spec.unschedulable`, and the extended
resources (`nvidia.com/gpu`...) that `status.allocatable` has above zero. What one node can
cost is bounded (MAX_TAINTS, MAX_ALLOCATABLE, MAX_EXTENDED), and the values hundreds of
nodes repeat (label strings, taint lists, resource sets) are interned: one copy each.

Names in `status.images` are node-reported strings, not parsed: they are only looked up,
never written. `agent.sizes.ImageSizes` keeps them, and decides which sizes can be trusted
(a tag's only with the digest the same entry names). Each node also keeps the names it
reports (`NodeImages`, interned), so the report can say on how many nodes a listed image is.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.model import NODE_STATUS_MAX_IMAGES, NODE_STATUS_MAX_NAMES, KindName, NodeImages, NodeInfo, Taint
from agent.placement import is_extended_resource, quantity_is_positive
from agent.quantity import parse_quantity
from agent.sizes import ImageSizes
from agent.sources.common import as_list, as_str, dig, labels_of

KIND = KindName.NODE
MAX_TAINTS = 64  # taints read per node; a real node has a handful
MAX_ALLOCATABLE = 128  # status.allocatable entries looked at per node
MAX_EXTENDED = 32  # extended resources kept per node
MAX_IMAGES = 4 * NODE_STATUS_MAX_IMAGES  # status.images entries read per node (a kubelet may report all)


@dataclass
class NodeFindings:
    nodes: list[NodeInfo] = field(default_factory=list)
    sizes: ImageSizes = field(default_factory=ImageSizes)
    # One shared copy of each taint tuple and resource set the nodes repeat.
    interned: dict[object, Any] = field(default_factory=dict, repr=False, compare=False)

    def extend(self, other: NodeFindings) -> None:
        self.nodes.extend(other.nodes)
        self.sizes.extend(other.sizes)


def read_node(obj: Mapping[str, Any], into: NodeFindings) -> None:
    """Add one Node to `into` (in place: sizes are shared across hundreds of nodes)."""
    node_labels = {sys.intern(str(k)): sys.intern(str(v)) for k, v in labels_of(obj).items()}
    shared = into.interned
    taints, extended = _taints(obj), _extended(obj)
    images = _images(obj, into)
    into.nodes.append(
        NodeInfo(
            as_str(dig(obj, "metadata", "name")),
            node_labels,
            _capacity(obj),
            taints=shared.setdefault(taints, taints),
            unschedulable=dig(obj, "spec", "unschedulable") is True,
            extended=shared.setdefault(extended, extended),
            images=images,
        )
    )


def _images(obj: Mapping[str, Any], into: NodeFindings) -> NodeImages | None:
    """Feed `into.sizes` with the node's status.images, and return what the node holds."""
    listed = as_list(dig(obj, "status", "images"))
    if not listed:
        return None
    names: set[str] = set()
    clipped: set[str] = set()
    smallest = 0
    for image in listed[:MAX_IMAGES]:
        if not isinstance(image, Mapping):
            continue
        found = [sys.intern(n) for n in as_list(image.get("names")) if isinstance(n, str)]
        names.update(found)
        if len(found) >= NODE_STATUS_MAX_NAMES:
            clipped.update(sys.intern(_repository(n)) for n in found)
        size = image.get("sizeBytes")
        if isinstance(size, int) and not isinstance(size, bool) and size > 0:
            into.sizes.add(found, size)
            smallest = size if not smallest else min(smallest, size)
    count = len(listed) if len(listed) <= MAX_IMAGES else max(len(listed), NODE_STATUS_MAX_IMAGES)
    return NodeImages(frozenset(names), count, smallest, frozenset(clipped))


def _repository(name: str) -> str:
    """`registry/repo` of a reported name (`registry/repo@digest` or `registry/repo:tag`)."""
    at = name.find("@")
    if at >= 0:
        return name[:at]
    slash, colon = name.rfind("/"), name.rfind(":")
    return name[:colon] if colon > slash else name


def _taints(obj: Mapping[str, Any]) -> tuple[Taint, ...]:
    """spec.taints as listed (every effect), up to MAX_TAINTS; malformed entries skipped."""
    taints = []
    for raw in as_list(dig(obj, "spec", "taints"))[:MAX_TAINTS]:
        if not isinstance(raw, Mapping) or not isinstance(raw.get("key"), str):
            continue
        value, effect = raw.get("value"), raw.get("effect")
        taints.append(
            Taint(
                sys.intern(raw["key"]),
                sys.intern(value) if isinstance(value, str) else "",
                sys.intern(effect) if isinstance(effect, str) else "",
            )
        )
    return tuple(taints)


def _extended(obj: Mapping[str, Any]) -> frozenset[str]:
    """The extended resources status.allocatable has above zero, up to MAX_EXTENDED."""
    allocatable = dig(obj, "status", "allocatable")
    if not isinstance(allocatable, Mapping):
        return frozenset()
    found: list[str] = []
    for i, (name, quantity) in enumerate(allocatable.items()):
        if i >= MAX_ALLOCATABLE or len(found) >= MAX_EXTENDED:
            break
        if isinstance(name, str) and is_extended_resource(name) and quantity_is_positive(quantity):
            found.append(sys.intern(name))
    return frozenset(found)


def _capacity(obj: Mapping[str, Any]) -> int | None:
    value = dig(obj, "status", "capacity", "ephemeral-storage")
    if not isinstance(value, str | int):
        return None
    try:
        return parse_quantity(str(value))
    except ValueError:
        return None
