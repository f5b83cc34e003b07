"""Nodes: image sizes and disk capacity.

`status.images` lists up to 50 images per node with their `names` and `sizeBytes`: the
only real source of sizes for images some node already holds. `status.capacity` carries
`ephemeral-storage`, the disk the budget is a fraction of. Node names and labels are kept
so the planner can pick the nodes the puller targets (its `nodeSelector`).

Names in `status.images` are node-reported strings, not parsed: they are only looked up,
never written. `agent.sizes.ImageSizes` keeps them, and decides which sizes can be trusted
(a tag's only with the digest the same entry names).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.model import NodeInfo
from agent.settings import parse_quantity
from agent.sizes import ImageSizes
from agent.sources.common import as_list, as_str, dig, labels_of

KIND = "Node"


@dataclass
class NodeFindings:
    nodes: list[NodeInfo] = field(default_factory=list)
    sizes: ImageSizes = field(default_factory=ImageSizes)

    def extend(self, other: NodeFindings) -> None:
        self.nodes.extend(other.nodes)
        self.sizes.extend(other.sizes)


def read_node(obj: Mapping[str, Any], into: NodeFindings) -> None:
    """Add one Node to `into` (in place: sizes are shared across hundreds of nodes)."""
    node_labels = {str(k): str(v) for k, v in labels_of(obj).items()}
    into.nodes.append(NodeInfo(as_str(dig(obj, "metadata", "name")), node_labels, _capacity(obj)))
    for image in as_list(dig(obj, "status", "images")):
        if not isinstance(image, Mapping):
            continue
        size = image.get("sizeBytes")
        if isinstance(size, int) and not isinstance(size, bool) and size > 0:
            into.sizes.add((n for n in as_list(image.get("names")) if isinstance(n, str)), size)


def _capacity(obj: Mapping[str, Any]) -> int | None:
    value = dig(obj, "status", "capacity", "ephemeral-storage")
    if not isinstance(value, str | int):
        return None
    try:
        return parse_quantity(str(value))
    except ValueError:
        return None
