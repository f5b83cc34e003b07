"""The values of `agent.placement`: frozen, hashable, canonical, cheap to intern and compare.

A `Placement` is where one pod could be scheduled: its nodeSelector, its required node
affinity, its tolerations and the extended resources it needs. Placements repeat across
thousands of workloads (every workbench of one image and size has the same one), so each is
built in a canonical form (sorted, without duplicates: equal meaning gives equal values)
and caches its hash: an interning dict or a memo keyed by placement costs one lookup.

The matching rules are those of the Kubernetes scheduler, each transliterated from the
upstream function named where it is implemented. Nothing here reads wire data (that is
`agent.placement.reading`) or decides anything about images.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from agent.model import Taint

__all__ = [
    "BLOCKING_EFFECTS",
    "NodeAffinity",
    "Placement",
    "PodScheduling",
    "Requirement",
    "Resources",
    "Term",
    "Toleration",
    "parse_int64",
]

NO_SCHEDULE = "NoSchedule"
PREFER_NO_SCHEDULE = "PreferNoSchedule"
NO_EXECUTE = "NoExecute"
# The effects that keep a pod off a node (the scheduler's TaintToleration filter and the
# DaemonSet controller's `predicates` both check these two; PreferNoSchedule only scores).
BLOCKING_EFFECTS = frozenset({NO_SCHEDULE, NO_EXECUTE})

# Toleration operators (k8s.io/api core/v1 `toleration.go`; "" is Equal).
EQUAL = "Equal"
EXISTS = "Exists"
# Node selector operators (k8s.io/api core/v1 `NodeSelectorOperator`).
IN = "In"
NOT_IN = "NotIn"
DOES_NOT_EXIST = "DoesNotExist"
GT = "Gt"
LT = "Lt"
NODE_NAME_FIELD = "metadata.name"  # the one field `matchFields` can see on a node

_INT64 = re.compile(r"[+-]?[0-9]+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def parse_int64(text: str) -> int | None:
    """Go's `strconv.ParseInt(text, 10, 64)`: an optional sign and decimal digits, within
    int64; None for anything else (" 1", "1.0", "1e3", "0x1", "1_000")."""
    if not _INT64.fullmatch(text):
        return None
    number = int(text)
    return number if _INT64_MIN <= number <= _INT64_MAX else None


@dataclass(frozen=True, slots=True, order=True)
class Toleration:
    """One pod toleration. `operator` "" is Equal (the reader writes it so); `effect` ""
    matches every effect."""

    key: str = ""
    operator: str = EQUAL
    value: str = ""
    effect: str = ""

    def tolerates(self, taint: Taint) -> bool:
        """k8s.io/api core/v1 `toleration.go` `ToleratesTaint`: an empty effect matches every
        effect, an empty key every key; Exists matches every value; Equal compares values;
        Lt and Gt compare them as int64; any other operator tolerates nothing.

        Taken literally, as upstream does: an empty key with Equal tolerates every taint
        whose value equals this value (API validation refuses that combination in pods)."""
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if self.operator in (EQUAL, ""):
            return self.value == taint.value
        if self.operator == EXISTS:
            return True
        if self.operator in (LT, GT):
            mine, theirs = parse_int64(self.value), parse_int64(taint.value)
            if mine is None or theirs is None:
                return False
            return theirs < mine if self.operator == LT else theirs > mine
        return False

    def __str__(self) -> str:  # as `kubectl describe` shows tolerations
        effect = f":{self.effect}" if self.effect else ""
        if self.operator == EXISTS:
            return f"{self.key}{effect} op=Exists" if self.key else f"every taint{effect}"
        if self.operator == EQUAL:
            return f"{self.key}={self.value}{effect}"
        return f"{self.key}{effect} op={self.operator} {self.value}"


@dataclass(frozen=True, slots=True, order=True)
class Requirement:
    """One `matchExpressions` or `matchFields` entry; `values` sorted, without duplicates."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """k8s.io/apimachinery `pkg/labels/selector.go` `Requirement.Matches`: In needs the
        label with one of the values; NotIn and DoesNotExist match a node without the
        label; Gt and Lt need the label, parsed as int64, above / below the value (a label
        that is no integer matches neither)."""
        value = labels.get(self.key)
        if self.operator == IN:
            return value is not None and value in self.values
        if self.operator == NOT_IN:
            return value is None or value not in self.values
        if self.operator == EXISTS:
            return value is not None
        if self.operator == DOES_NOT_EXIST:
            return value is None
        if self.operator in (GT, LT) and value is not None and len(self.values) == 1:
            have, bound = parse_int64(value), parse_int64(self.values[0])
            if have is None or bound is None:
                return False
            return have > bound if self.operator == GT else have < bound
        return False

    def matches_field(self, node_name: str) -> bool:
        """k8s.io/apimachinery `pkg/fields` one-term selectors as `nodeaffinity` builds them:
        In is `field == value`, NotIn `field != value`; a node has only `metadata.name`,
        every other field reads as ""."""
        have = node_name if self.key == NODE_NAME_FIELD else ""
        if self.operator == IN:
            return have == self.values[0]
        if self.operator == NOT_IN:
            return have != self.values[0]
        return False

    def __str__(self) -> str:
        if self.operator in (EXISTS, DOES_NOT_EXIST):
            return f"{self.key} {self.operator}"
        return f"{self.key} {self.operator} ({', '.join(self.values)})"


@dataclass(frozen=True, slots=True, order=True)
class Term:
    """One `nodeSelectorTerms` entry: its expressions and fields, ANDed.

    `problem` is why upstream could not parse the term ("" when it could): such a term
    matches no node, as k8s.io/component-helpers `nodeaffinity` `LazyErrorNodeSelector`
    does (a pod with it is refused by API validation and never runs).
    """

    expressions: tuple[Requirement, ...] = ()
    fields: tuple[Requirement, ...] = ()
    problem: str = ""

    def matches(self, node_name: str, labels: Mapping[str, str]) -> bool:
        if self.problem or not (self.expressions or self.fields):
            return False  # upstream `isEmptyNodeSelectorTerm`: an empty term selects nothing
        return all(r.matches(labels) for r in self.expressions) and all(
            r.matches_field(node_name) for r in self.fields
        )


@dataclass(frozen=True, slots=True)
class NodeAffinity:
    """`requiredDuringSchedulingIgnoredDuringExecution`: its terms, ORed.

    No terms matches no node (k8s.io/component-helpers `scheduling/corev1/nodeaffinity`
    `LazyErrorNodeSelector.Match` returns false when no term matches, and empty terms are
    dropped as "selects no objects"); "no required affinity" is None on the Placement.
    """

    terms: tuple[Term, ...] = ()

    def matches(self, node_name: str, labels: Mapping[str, str]) -> bool:
        return any(term.matches(node_name, labels) for term in self.terms)


def _canonical_pairs(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(dict(pairs).items()))


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one pod could run: every field must hold on a node.

    `resources` are extended resources the pod requests (each must be allocatable on the
    node); `one_of_resources` is a need for at least one of them (an accelerator hint). A
    default Placement is a plain pod: no selector, no affinity, no tolerations, no
    extended resources. Built canonical (sorted, duplicates dropped) with its hash cached.
    """

    node_selector: tuple[tuple[str, str], ...] = ()
    affinity: NodeAffinity | None = None
    tolerations: tuple[Toleration, ...] = ()
    resources: frozenset[str] = frozenset()
    one_of_resources: frozenset[str] = frozenset()
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.node_selector) > 1 or type(self.node_selector) is not tuple:
            object.__setattr__(self, "node_selector", _canonical_pairs(self.node_selector))
        if len(self.tolerations) > 1 or type(self.tolerations) is not tuple:
            object.__setattr__(self, "tolerations", tuple(sorted(set(self.tolerations))))
        if type(self.resources) is not frozenset:
            object.__setattr__(self, "resources", frozenset(self.resources))
        if type(self.one_of_resources) is not frozenset:
            object.__setattr__(self, "one_of_resources", frozenset(self.one_of_resources))
        key = (self.node_selector, self.affinity, self.tolerations, self.resources, self.one_of_resources)
        object.__setattr__(self, "_hash", hash(key))

    def __hash__(self) -> int:
        return self._hash

    def describe(self) -> str:
        """One line for explanations: "any node" for a plain pod."""
        parts = []
        if self.node_selector:
            parts.append("nodeSelector " + ",".join(f"{k}={v}" for k, v in self.node_selector))
        if self.affinity is not None:
            parts.append(f"required node affinity ({len(self.affinity.terms)} terms)")
        if self.tolerations:
            parts.append("tolerates " + ", ".join(str(t) for t in self.tolerations))
        if self.resources:
            parts.append("needs " + ", ".join(sorted(self.resources)))
        if self.one_of_resources:
            parts.append("needs one of " + ", ".join(sorted(self.one_of_resources)))
        return "; ".join(parts) or "any node"


def _overlay(
    base: tuple[tuple[str, bool], ...], top: tuple[tuple[str, bool], ...]
) -> tuple[tuple[str, bool], ...]:
    return tuple(sorted({**dict(base), **dict(top)}.items()))


@dataclass(frozen=True, slots=True)
class Resources:
    """The extended resources one container names in `resources.requests` and
    `resources.limits`, each with whether its quantity is above zero (kept apart because
    KServe overlays each map key by key, so a component's `nvidia.com/gpu: 0` cancels a
    runtime's `nvidia.com/gpu: 1`)."""

    requests: tuple[tuple[str, bool], ...] = ()
    limits: tuple[tuple[str, bool], ...] = ()

    def overlay(self, top: Resources) -> Resources:
        """Strategic-merge-patch of `top` onto this: each key of `top` replaces this one's."""
        return Resources(_overlay(self.requests, top.requests), _overlay(self.limits, top.limits))

    def needed(self) -> frozenset[str]:
        """What the container needs allocatable: a name above zero in requests or limits
        (a limit alone becomes the request when the pod is created; the scheduler's
        `noderesources` fit skips a zero request)."""
        return frozenset(name for name, positive in (*self.requests, *self.limits) if positive)

    def __bool__(self) -> bool:
        return bool(self.requests or self.limits)


@dataclass(frozen=True, slots=True)
class PodScheduling:
    """What one pod spec says about where it may run, before any merge.

    `affinity` None means the spec sets no required node affinity (KServe's merge keeps the
    runtime's then). `containers` holds, by name, the containers and init containers that
    name extended resources. `model` is the InferenceService predictor's model container
    (what KServe overlays on the runtime's `kserve-container`), None elsewhere.
    """

    node_selector: tuple[tuple[str, str], ...] = ()
    affinity: NodeAffinity | None = None
    tolerations: tuple[Toleration, ...] = ()
    containers: tuple[tuple[str, Resources], ...] = ()
    model: Resources | None = None

    def placement(self) -> Placement:
        """This spec on its own: a Notebook's pod, a custom predictor, a transformer."""
        needed = [resources.needed() for _, resources in self.containers]
        if self.model is not None:
            needed.append(self.model.needed())
        return Placement(
            node_selector=self.node_selector,
            affinity=self.affinity,
            tolerations=self.tolerations,
            resources=frozenset().union(*needed) if needed else frozenset(),
        )
