"""Nodes: image sizes and disk capacity.

`status.images` lists up to 50 images per node with their `names` and `sizeBytes`: the
only real source of sizes for images some node already holds. `status.capacity` carries
`ephemeral-storage`, the disk the budget is a fraction of. Node names and labels are kept
so the planner can pick the nodes the puller targets (its `nodeSelector`).

Names in `status.images` are node-reported strings, not parsed: they are only looked up,
never written, so the sizes table maps each name (and each `@sha256:` digest) to a size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.model import NodeInfo
from agent.quantity import parse_quantity
from agent.sources.common import as_list, as_str, dig, labels_of

KIND = "Node"


@dataclass
class NodeFindings:
    nodes: list[NodeInfo] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)  # image name or digest -> bytes

    def extend(self, other: NodeFindings) -> None:
        self.nodes.extend(other.nodes)
        for key, size in other.sizes.items():
            if size > self.sizes.get(key, 0):
                self.sizes[key] = size


def read_node(obj: Mapping[str, Any], into: NodeFindings) -> None:
    """Add one Node to `into` (in place: sizes are shared across hundreds of nodes)."""
    node_labels = {str(k): str(v) for k, v in labels_of(obj).items()}
    into.nodes.append(NodeInfo(as_str(dig(obj, "metadata", "name")), node_labels, _capacity(obj)))
    sizes = into.sizes
    for image in as_list(dig(obj, "status", "images")):
        if not isinstance(image, Mapping):
            continue
        size = image.get("sizeBytes")
        if not isinstance(size, int) or size <= 0:
            continue
        for name in as_list(image.get("names")):
            if not isinstance(name, str):
                continue
            if size > sizes.get(name, 0):
                sizes[name] = size
            _, at, digest = name.partition("@")
            if at and size > sizes.get(digest, 0):
                sizes[digest] = size


def _capacity(obj: Mapping[str, Any]) -> int | None:
    value = dig(obj, "status", "capacity", "ephemeral-storage")
    if not isinstance(value, str | int):
        return None
    try:
        return parse_quantity(str(value))
    except ValueError:
        return None
