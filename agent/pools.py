"""Pools: which usages count for which target, and which nodes no target covers.

Pure. One KubernetesImagePuller per node pool (the operator allows one per namespace): each
target's puller DaemonSet runs on the nodes its CR's `nodeSelector`, `affinity` and
`tolerations` allow, plus the tolerations the DaemonSet controller adds (so a cordoned node
counts: it holds every image of the list). That is the target's pool.

A usage counts for a target when the pod that pulls its image could run on at least one
node of the target's pool (`Usage.placement`, see `agent.placement`). An image none of
whose usages count for a target is left out of that target's plan with the reason
("no node of this pool has nvidia.com/gpu; runs on nodes of pool gpu-pullers"), and an
image no node of the cluster can run is listed nowhere ("recommended for amd.com/gpu; no
node has it").

Workloads that can run only on nodes no target covers are the coverage gap: their node
groups, the images those groups miss, and a ready-to-apply KubernetesImagePuller for each.

Without the nodes (the Nodes could not be listed, or none exist) nothing can be placed:
every usage counts for every target, as with a single list.

What this is not: it decides nothing about scores, limits or entries (`agent.plan` does),
and reads nothing from the API.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from agent.model import NodeInfo, State, Usage
from agent.placement import NodeGroup, Placement, can_run_on, pool_misfit, suggest_puller, uncovered_groups
from agent.puller import Entry, PullerCR, entry_name, render_images
from agent.refs import ImageRef

__all__ = ["Gap", "Placing", "Pool", "TargetUsages", "place"]

WORKLOAD_STATES = frozenset({State.RUNNING, State.STOPPED, State.READY, State.NOT_READY})
MAX_SUGGESTED_IMAGES = 15  # images in a suggested puller's list (the most used first)


@dataclass(frozen=True, slots=True)
class Pool:
    """The nodes one target's puller DaemonSet runs on."""

    name: str  # the target's namespace: one puller per namespace
    nodes: tuple[NodeInfo, ...]

    @property
    def smallest_disk(self) -> int | None:
        """The smallest `ephemeral-storage` capacity: that node holds every image of the list."""
        disks = [n.ephemeral_storage for n in self.nodes if n.ephemeral_storage]
        return min(disks) if disks else None

    @property
    def accelerators(self) -> tuple[str, ...]:
        return tuple(sorted({r for n in self.nodes for r in n.extended}))


@dataclass(frozen=True, slots=True)
class TargetUsages:
    """What one target is planned from."""

    pool: Pool | None  # None: the nodes are unknown, every usage counts
    usages: tuple[Usage, ...]  # the usages that count for this target
    elsewhere: tuple[Usage, ...] = ()  # usages of images none of whose usages count here
    reasons: Mapping[ImageRef, str] = field(default_factory=dict)  # why each such image is not planned here


@dataclass(frozen=True, slots=True)
class Gap:
    """Nodes no target covers that some workload can only run on."""

    group: NodeGroup
    images: tuple[ImageRef, ...]  # what those workloads run, the most used first
    suggestion: Mapping[str, object]  # a KubernetesImagePuller that would cover the group


@dataclass(frozen=True, slots=True)
class Placing:
    targets: tuple[TargetUsages, ...]  # in the order of the pullers given
    gaps: tuple[Gap, ...] = ()
    nowhere: Mapping[ImageRef, str] = field(default_factory=dict)  # images no node can run, and why


def place(usages: Sequence[Usage], *, pullers: Sequence[PullerCR], nodes: Sequence[NodeInfo] | None) -> Placing:
    """Split `usages` between the targets (`pullers`, as read) by where they can run.

    Everything is worked out per distinct placement, not per usage: 10,000 workbenches share
    a handful of placements, so the cost is images x placements x pools, not usages x nodes."""
    if not nodes:
        return Placing(tuple(TargetUsages(None, tuple(usages)) for _ in pullers))
    fit = _Fit(nodes)
    pools = [Pool(p.namespace, fit.nodes_of(p.placement())) for p in pullers]
    covered = frozenset(n.name for pool in pools for n in pool.nodes)
    by_image = _by_image(usages)
    nowhere = {image: why for image, group in by_image.items() if (why := _nowhere(group.placements, fit))}
    targets = tuple(_target(pool, pools, by_image, fit, nowhere) for pool in pools)
    gaps = _gaps(by_image, fit, covered, [p.placement() for p in pullers], nodes)
    return Placing(targets, gaps, nowhere)


class _Fit:
    """Which nodes a placement can run on, worked out once per distinct placement; and, per
    pool, whether a placement can run there and why not."""

    def __init__(self, nodes: Sequence[NodeInfo]) -> None:
        self.nodes = tuple(nodes)
        self._all = frozenset(n.name for n in self.nodes)
        self._names: dict[Placement, frozenset[str]] = {}
        self._misfits: dict[tuple[Placement, str], str | None] = {}

    def names(self, placement: Placement | None) -> frozenset[str]:
        """The names of the nodes `placement` can run on (None: unknown, so all of them).

        Node conditions that come and go (cordoned, not ready, under pressure) are not held
        against a pod: a pool whose nodes are being drained keeps its images, and a
        cordoned node still runs the puller's DaemonSet and holds every image of its list.
        """
        if placement is None:
            return self._all
        found = self._names.get(placement)
        if found is None:
            found = self._names[placement] = frozenset(n.name for n in self.nodes if can_run_on(placement, n))
        return found

    def nodes_of(self, placement: Placement) -> tuple[NodeInfo, ...]:
        names = self.names(placement)
        return tuple(n for n in self.nodes if n.name in names)

    def misfit(self, placement: Placement, pool: Pool) -> str | None:
        """`pool_misfit` of `placement` on the pool's nodes, once per (placement, pool)."""
        key = (placement, pool.name)
        if key not in self._misfits:
            self._misfits[key] = pool_misfit(placement, pool.nodes)
        return self._misfits[key]


@dataclass(slots=True)
class _Image:
    """The usages of one image, and their distinct placements (a handful, however many usages)."""

    usages: list[Usage] = field(default_factory=list)
    placements: dict[Placement | None, list[Usage]] = field(default_factory=dict)


def _by_image(usages: Iterable[Usage]) -> dict[ImageRef, _Image]:
    found: dict[ImageRef, _Image] = {}
    for usage in usages:
        image = found.get(usage.image)
        if image is None:
            image = found[usage.image] = _Image()
        image.usages.append(usage)
        image.placements.setdefault(usage.placement, []).append(usage)
    return found


def _nowhere(placements: Mapping[Placement | None, list[Usage]], fit: _Fit) -> str:
    """Why no node of the cluster can run any use of the image, or "" when one can."""
    if any(fit.names(p) for p in placements):
        return ""
    placement = next(p for p in placements if p is not None)
    if placement.one_of_resources and not placement.resources:
        return f"recommended for {' or '.join(sorted(placement.one_of_resources))}; no node has it"
    why = pool_misfit(placement, fit.nodes) or "no node fits"
    return "no node can run it: " + why.replace("of this pool ", "")


def _target(
    pool: Pool,
    pools: Sequence[Pool],
    by_image: Mapping[ImageRef, _Image],
    fit: _Fit,
    nowhere: Mapping[ImageRef, str],
) -> TargetUsages:
    here = frozenset(n.name for n in pool.nodes)
    runs_here: dict[Placement | None, bool] = {}
    counting: list[Usage] = []
    elsewhere: list[Usage] = []
    reasons: dict[ImageRef, str] = {}
    for image, group in by_image.items():
        mine = False
        for placement, usages in group.placements.items():
            hit = runs_here.get(placement)
            if hit is None:
                hit = runs_here[placement] = not fit.names(placement).isdisjoint(here)
            if hit:
                counting.extend(usages)
                mine = True
        if mine:
            continue
        elsewhere.extend(group.usages)
        reasons[image] = nowhere.get(image) or _not_here(group, pool, pools, fit)
    return TargetUsages(pool, tuple(counting), tuple(elsewhere), reasons)


def _not_here(group: _Image, pool: Pool, pools: Sequence[Pool], fit: _Fit) -> str:
    """Why an image that runs somewhere is not planned for `pool`."""
    placement = next((p for p in group.placements if p is not None and fit.names(p)), None)
    if not pool.nodes:
        return "this target's puller runs on no node"
    why = fit.misfit(placement, pool) if placement is not None else None
    runs = frozenset().union(*(fit.names(p) for p in group.placements))
    others = [p.name for p in pools if p is not pool and not runs.isdisjoint(n.name for n in p.nodes)]
    where = f"runs only on nodes of pool {', '.join(others)}" if others else "runs only on nodes no puller covers"
    return f"{why}; {where}" if why else where


def _gaps(
    by_image: Mapping[ImageRef, _Image],
    fit: _Fit,
    covered: frozenset[str],
    targets: Sequence[Placement],
    nodes: Sequence[NodeInfo],
) -> tuple[Gap, ...]:
    """Node groups no target covers, with the images workloads can run only there."""
    groups = uncovered_groups(nodes, targets)
    if not groups:
        return ()
    members = [(group.name, frozenset(group.nodes)) for group in groups]
    hits: dict[Placement | None, tuple[str, ...]] = {}  # the groups a placement can run only in
    missed: dict[str, dict[ImageRef, int]] = {g.name: {} for g in groups}
    for image, uses in by_image.items():
        for placement, usages in uses.placements.items():
            found = hits.get(placement)
            if found is None:
                runs = fit.names(placement)
                found = hits[placement] = (
                    () if not runs or not runs.isdisjoint(covered)
                    else tuple(name for name, nodes_of in members if not runs.isdisjoint(nodes_of))
                )
            if not found:
                continue
            workloads = sum(1 for u in usages if u.state in WORKLOAD_STATES)
            for name in found:
                if workloads:
                    counts = missed[name]
                    counts[image] = counts.get(image, 0) + workloads
    gaps = []
    for group in groups:
        ranked = sorted(missed[group.name], key=lambda i: (-missed[group.name][i], str(i)))
        if ranked:
            gaps.append(Gap(group, tuple(ranked), suggest_puller(group, images=_rendered(ranked))))
    return tuple(gaps)


def _rendered(images: Sequence[ImageRef]) -> str:
    taken: set[str] = set()
    entries = []
    for image in images[:MAX_SUGGESTED_IMAGES]:
        name = entry_name(image, taken=taken)
        taken.add(name)
        entries.append(Entry.of(name, str(image)))
    return render_images(entries)
