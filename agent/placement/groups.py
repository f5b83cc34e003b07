"""Node groups no target covers, and the KubernetesImagePuller that would cover one.

When workloads can only run on nodes that no target's DaemonSet reaches (GPU nodes behind a
taint the only puller does not tolerate, an infra pool), the administrator is told which
nodes they are and is handed a CR to apply: one puller per group, in its own namespace
(the operator's webhook allows one KubernetesImagePuller per namespace).

Nodes are grouped by what makes a pool a pool: their blocking taints (node-state taints
left out, see `agent.placement.matching`), their extended resources, and their
`node-role.kubernetes.io/*` labels. A group's nodeSelector is a small set of the labels all
its nodes share that tells them apart from every other node: picked greedily, the label
that excludes the most other nodes first, preferring role labels and flag-like values
("", "true") so the selector survives a driver upgrade that changes a version label.

Pure: plain values and dicts in, plain values and dicts out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agent.model import NodeInfo, Taint
from agent.placement.matching import TRANSIENT_TAINT_KEYS, can_run_on
from agent.placement.values import BLOCKING_EFFECTS, EXISTS, Placement

__all__ = ["NodeGroup", "group_nodes", "suggest_puller", "uncovered_groups"]

ROLE_PREFIX = "node-role.kubernetes.io/"
# Labels that name one node or where it sits, never a pool.
_NOT_POOL_LABELS = ("kubernetes.io/hostname",)
_NOT_POOL_PREFIXES = ("topology.kubernetes.io/", "failure-domain.beta.kubernetes.io/", "topology.")
_COMMON_ROLES = frozenset({"worker", "master", "control-plane"})
_NOT_LABEL = re.compile(r"[^a-z0-9]+")
_LABEL_MAX = 63


@dataclass(frozen=True, slots=True)
class NodeGroup:
    """Nodes that form one pool. `node_selector` picks them; `exact` is False when no shared
    label tells them from some other node (the suggested puller would run there too)."""

    name: str  # a DNS-1123 label: "nvidia-gpu", "infra", "pool"
    nodes: tuple[str, ...]  # node names, sorted
    taints: tuple[Taint, ...]  # the blocking taints every node carries
    extended: frozenset[str]  # the extended resources every node has allocatable
    node_selector: tuple[tuple[str, str], ...]
    exact: bool


def _pool_taints(node: NodeInfo) -> frozenset[Taint]:
    return frozenset(t for t in node.taints if t.effect in BLOCKING_EFFECTS and t.key not in TRANSIENT_TAINT_KEYS)


def _roles(node: NodeInfo) -> frozenset[str]:
    return frozenset(k[len(ROLE_PREFIX) :] for k in node.labels if k.startswith(ROLE_PREFIX))


def _is_pool_label(key: str) -> bool:
    return key not in _NOT_POOL_LABELS and not key.startswith(_NOT_POOL_PREFIXES)


def _shared_labels(members: Sequence[NodeInfo]) -> list[tuple[str, str]]:
    first, *rest = members
    return sorted(
        (k, v) for k, v in first.labels.items() if _is_pool_label(k) and all(n.labels.get(k) == v for n in rest)
    )


def _preference(label: tuple[str, str]) -> tuple[bool, bool, int, str, str]:
    key, value = label
    return (not key.startswith(ROLE_PREFIX), value not in ("", "true"), len(key), key, value)


def _excluded(label: tuple[str, str], nodes: Sequence[NodeInfo]) -> int:
    return sum(node.labels.get(label[0]) != label[1] for node in nodes)


def _selector(members: Sequence[NodeInfo], others: Sequence[NodeInfo]) -> tuple[tuple[tuple[str, str], ...], bool]:
    candidates = _shared_labels(members)
    chosen: list[tuple[str, str]] = []
    left = list(others)
    while left and candidates:
        scored = [(-_excluded(label, left), _preference(label), label) for label in candidates]
        score, _, best = min(scored)
        if score == 0:
            break
        chosen.append(best)
        candidates.remove(best)
        left = [node for node in left if node.labels.get(best[0]) == best[1]]
    return tuple(sorted(chosen)), not left


def _sanitize(text: str) -> str:
    return _NOT_LABEL.sub("-", text.lower()).strip("-")[:_LABEL_MAX].rstrip("-")


def _base_name(taints: frozenset[Taint], extended: frozenset[str], roles: frozenset[str]) -> str:
    if extended:
        domain, _, resource = sorted(extended)[0].partition("/")
        return _sanitize(f"{domain.split('.')[0]}-{resource}") or "accelerated"
    special = sorted(roles - _COMMON_ROLES)
    if special:
        return _sanitize(special[0]) or "pool"
    if taints:
        return _sanitize(sorted(taints)[0].key.rpartition("/")[2]) or "tainted"
    return "pool"


def _unique(base: str, taken: set[str]) -> str:
    name, counter = base, 1
    while name in taken:
        counter += 1
        suffix = f"-{counter}"
        name = base[: _LABEL_MAX - len(suffix)].rstrip("-") + suffix
    taken.add(name)
    return name


def group_nodes(members: Sequence[NodeInfo], *, among: Sequence[NodeInfo]) -> tuple[NodeGroup, ...]:
    """`members` in pools (see the module docstring), each with a selector that tells it
    from every other node of `among` (all the cluster's nodes). Deterministic: groups are
    ordered by their first node's name, and named in that order."""
    pools: dict[tuple[frozenset[Taint], frozenset[str], frozenset[str]], list[NodeInfo]] = {}
    for node in sorted(members, key=lambda n: n.name):
        pools.setdefault((_pool_taints(node), node.extended, _roles(node)), []).append(node)
    taken: set[str] = set()
    groups = []
    for (taints, extended, roles), nodes in pools.items():
        names = {n.name for n in nodes}
        selector, exact = _selector(nodes, [n for n in among if n.name not in names])
        groups.append(
            NodeGroup(
                name=_unique(_base_name(taints, extended, roles), taken),
                nodes=tuple(sorted(names)),
                taints=tuple(sorted(taints)),
                extended=extended,
                node_selector=selector,
                exact=exact,
            )
        )
    return tuple(groups)


def uncovered_groups(nodes: Sequence[NodeInfo], targets: Sequence[Placement]) -> tuple[NodeGroup, ...]:
    """The nodes that no target's DaemonSet (`targets`: their `puller_placement`s) runs on,
    in groups. Empty when every node is covered."""
    uncovered = [n for n in nodes if not any(can_run_on(target, n) for target in targets)]
    return group_nodes(uncovered, among=nodes) if uncovered else ()


def suggest_puller(
    group: NodeGroup, *, images: str, namespace: str | None = None, name: str = "image-puller"
) -> dict[str, object]:
    """A KubernetesImagePuller for `group`, ready to apply: in its own namespace (default
    `image-puller-<group>`), `spec.nodeSelector` from the group's selector and
    `spec.tolerations` (Exists, per key and effect) for its taints, as the JSON strings the
    CR takes. `images` is the rendered `spec.images`; it may not be empty, because the
    operator replaces an empty list with its own default images."""
    if not images.strip():
        raise ValueError("spec.images may not be empty: the operator would pull its default images instead")
    spec: dict[str, str] = {"images": images}
    if group.node_selector:
        spec["nodeSelector"] = json.dumps(dict(group.node_selector), sort_keys=True)
    if group.taints:
        tolerations = [{"key": t.key, "operator": EXISTS, "effect": t.effect} for t in group.taints]
        spec["tolerations"] = json.dumps(_unique_dicts(tolerations))
    return {
        "apiVersion": "che.eclipse.org/v1alpha1",
        "kind": "KubernetesImagePuller",
        "metadata": {"name": name, "namespace": namespace or _sanitize(f"image-puller-{group.name}")},
        "spec": spec,
    }


def _unique_dicts(items: Sequence[Mapping[str, str]]) -> list[Mapping[str, str]]:
    seen: list[Mapping[str, str]] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen
