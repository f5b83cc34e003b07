"""Scheduling constraints read from wire dicts into `agent.placement` values.

Wire data is untrusted: a tenant writes their Notebook's pod template and their
InferenceService, an administrator the puller CR's JSON strings. Any field may be missing
(read as "no constraint", like JSON null) or of the wrong type (a `PlacementError` naming
the field); what one object can cost is bounded (more tolerations, terms, expressions,
values, labels, containers or resources than the limits below is an error naming the
field, never a slow cycle).

Values that are well typed but that Kubernetes would refuse (an unknown operator, Gt with
two values...) are not errors here: they are read the way the scheduler reads them (a term
it cannot parse matches no node; a toleration with an unknown operator tolerates nothing).

Pure: no API calls, no logging.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from agent.placement.values import (
    DOES_NOT_EXIST,
    EQUAL,
    EXISTS,
    GT,
    IN,
    LT,
    NOT_IN,
    NodeAffinity,
    PodScheduling,
    Requirement,
    Resources,
    Term,
    Toleration,
    parse_int64,
)

__all__ = [
    "MAX_CONTAINERS",
    "MAX_RESOURCES",
    "MAX_REQUIREMENTS",
    "MAX_SELECTOR_LABELS",
    "MAX_TERMS",
    "MAX_TOLERATIONS",
    "MAX_VALUES",
    "PlacementError",
    "is_extended_resource",
    "quantity_is_positive",
    "read_affinity_json",
    "read_node_affinity",
    "read_node_selector",
    "read_pod_scheduling",
    "read_resources",
    "read_tolerations",
    "read_tolerations_json",
]

# What one object may hold; far above anything real, low enough that a hostile object
# costs microseconds.
MAX_TOLERATIONS = 64
MAX_TERMS = 32  # nodeSelectorTerms
MAX_REQUIREMENTS = 32  # matchExpressions, and matchFields, of one term
MAX_VALUES = 64  # values of one requirement
MAX_SELECTOR_LABELS = 64  # nodeSelector entries
MAX_CONTAINERS = 64  # containers, and initContainers, of one pod spec
MAX_RESOURCES = 32  # entries of one container's requests, and of its limits

_SELECTOR_OPERATORS = (IN, NOT_IN, EXISTS, DOES_NOT_EXIST, GT, LT)
_FIELD_OPERATORS = (IN, NOT_IN)
# k8s.io/apimachinery `pkg/util/validation` IsQualifiedName / IsValidLabelValue /
# IsDNS1123Subdomain.
_NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_NAME_MAX, _PREFIX_MAX = 63, 253
# k8s.io/apimachinery `pkg/api/resource` quantity: signed number, then a binary SI suffix,
# a decimal SI suffix, or a decimal exponent.
_QUANTITY = re.compile(r"([+-]?)([0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE])?")


class PlacementError(ValueError):
    """A scheduling field that cannot be read. The message names the object (when known)
    and the field: "Notebook team-a/wb: spec.template.spec.tolerations is not a list: str"."""

    def __init__(self, field: str, problem: str, source: str = "") -> None:
        self.field, self.problem, self.source = field, problem, source
        super().__init__(f"{source}: {field} {problem}" if source else f"{field} {problem}")

    def named(self, source: str) -> PlacementError:
        return PlacementError(self.field, self.problem, source) if source else self


def _type(value: Any) -> str:
    return type(value).__name__


def _mapping(value: Any, field: str) -> Mapping[str, Any] | None:
    if value is None or type(value) is dict:  # parsed JSON: skip the slower ABC check
        return value
    if not isinstance(value, Mapping):
        raise PlacementError(field, f"is not an object: {_type(value)}")
    return value


def _list(value: Any, field: str, limit: int) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PlacementError(field, f"is not a list: {_type(value)}")
    if len(value) > limit:
        raise PlacementError(field, f"has {len(value)} entries, more than the {limit} read")
    return value


def _string(value: Any, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PlacementError(field, f"is not a string: {_type(value)}")
    return value


def _get(value: Any, field: str, key: str) -> Any:
    """`value[key]` when `value` is an object, None when it is missing; an error naming
    `field` when it is something else."""
    mapping = _mapping(value, field)
    return None if mapping is None else mapping.get(key)


def _bounded_mapping(value: Any, field: str, limit: int) -> Mapping[str, Any]:
    mapping = _mapping(value, field) or {}
    if len(mapping) > limit:
        raise PlacementError(field, f"has {len(mapping)} entries, more than the {limit} read")
    return mapping


def _is_qualified_name(text: str) -> bool:
    prefix, slash, name = text.rpartition("/")
    if slash and (not prefix or len(prefix) > _PREFIX_MAX or not _DNS1123_SUBDOMAIN.fullmatch(prefix)):
        return False
    return len(name) <= _NAME_MAX and _NAME_PART.fullmatch(name) is not None


def _is_label_value(text: str) -> bool:
    return text == "" or (len(text) <= _NAME_MAX and _NAME_PART.fullmatch(text) is not None)


def is_extended_resource(name: str) -> bool:
    """k8s.io/kubernetes `pkg/apis/core/v1/helper` `IsExtendedResourceName`: a
    domain-qualified name outside `*kubernetes.io/` (so not cpu, memory, ephemeral-storage,
    hugepages-*), not prefixed `requests.`, and a qualified name once so prefixed.
    `nvidia.com/gpu`, `amd.com/gpu`, `habana.ai/gaudi`, `intel.com/gpu` are."""
    if "/" not in name or "kubernetes.io/" in name or name.startswith("requests."):
        return False
    return _is_qualified_name("requests." + name)


def quantity_is_positive(value: Any) -> bool | None:
    """Whether a resource quantity (a string as the API returns it, or a JSON number) is
    above zero; None when it is not a quantity."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value > 0 if value == value else None  # NaN is no quantity
    if not isinstance(value, str):
        return None
    match = _QUANTITY.fullmatch(value.strip())
    if match is None:
        return None
    return match[1] != "-" and any(c in "123456789" for c in match[2])


# --- nodeSelector ---------------------------------------------------------------------


def _node_selector(value: Any, field: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for key, label in _bounded_mapping(value, field, MAX_SELECTOR_LABELS).items():
        pairs.append((key, _string(label, f"{field}[{key}]")))
    return tuple(sorted(pairs))


def read_node_selector(value: Any, *, field: str, source: str = "") -> tuple[tuple[str, str], ...]:
    """A pod's `nodeSelector` map as sorted (label, value) pairs."""
    try:
        return _node_selector(value, field)
    except PlacementError as e:
        raise e.named(source) from None


# --- required node affinity -----------------------------------------------------------


def _values(raw: Mapping[str, Any], field: str) -> tuple[str, ...]:
    values = _list(raw.get("values"), f"{field}.values", MAX_VALUES)
    return tuple(_string(v, f"{field}.values[{i}]") for i, v in enumerate(values))


def _requirement(raw: Any, field: str) -> Requirement:
    entry = _mapping(raw, field) or {}
    key = _string(entry.get("key"), f"{field}.key")
    operator = _string(entry.get("operator"), f"{field}.operator")
    return Requirement(key, operator, _values(entry, field))


def _canonical(r: Requirement) -> Requirement:
    return Requirement(r.key, r.operator, tuple(sorted(set(r.values))))


def _expression_problem(r: Requirement) -> str:
    """k8s.io/apimachinery `pkg/labels` `NewRequirement`'s checks, as `nodeaffinity` uses
    them: "" when the scheduler can parse the expression."""
    if r.operator not in _SELECTOR_OPERATORS:
        return f"operator {r.operator!r} is not supported"
    if not _is_qualified_name(r.key):
        return f"key {r.key!r} is not a valid label key"
    if r.operator in (IN, NOT_IN) and not r.values:
        return f"{r.operator} needs at least one value"
    if r.operator in (EXISTS, DOES_NOT_EXIST) and r.values:
        return f"{r.operator} takes no values"
    if r.operator in (GT, LT) and (len(r.values) != 1 or parse_int64(r.values[0]) is None):
        return f"{r.operator} needs exactly one integer value"
    bad = [v for v in r.values if not _is_label_value(v)]
    return f"value {bad[0]!r} is not a valid label value" if bad else ""


def _field_problem(r: Requirement) -> str:
    """`nodeSelectorRequirementsAsFieldSelector`: In or NotIn with exactly one value."""
    if r.operator not in _FIELD_OPERATORS:
        return f"operator {r.operator!r} is not supported for fields"
    return "" if len(r.values) == 1 else f"{r.operator} on a field needs exactly one value"


def _term(raw: Any, field: str) -> Term | None:
    entry = _mapping(raw, field) or {}
    groups: dict[str, tuple[Requirement, ...]] = {}
    problems = []
    for key, check in (("matchExpressions", _expression_problem), ("matchFields", _field_problem)):
        requirements = []
        for i, item in enumerate(_list(entry.get(key), f"{field}.{key}", MAX_REQUIREMENTS)):
            requirement = _requirement(item, f"{field}.{key}[{i}]")
            problem = check(requirement)
            if problem:
                problems.append(f"{key}[{i}]: {problem}")
            requirements.append(_canonical(requirement))
        groups[key] = tuple(sorted(set(requirements)))
    if not groups["matchExpressions"] and not groups["matchFields"]:
        return None  # upstream drops empty terms: they select nothing
    return Term(groups["matchExpressions"], groups["matchFields"], "; ".join(problems))


def _node_affinity(affinity: Any, field: str) -> NodeAffinity | None:
    key = "requiredDuringSchedulingIgnoredDuringExecution"
    node_affinity = _get(affinity, field, "nodeAffinity")
    where = f"{field}.nodeAffinity.{key}"
    required = _mapping(_get(node_affinity, f"{field}.nodeAffinity", key), where)
    if required is None:
        return None
    terms = []
    for i, raw in enumerate(_list(required.get("nodeSelectorTerms"), f"{where}.nodeSelectorTerms", MAX_TERMS)):
        term = _term(raw, f"{where}.nodeSelectorTerms[{i}]")
        if term is not None:
            terms.append(term)
    return NodeAffinity(tuple(sorted(set(terms))))


def read_node_affinity(affinity: Any, *, field: str, source: str = "") -> NodeAffinity | None:
    """The required node affinity of a pod's `affinity` object (`field` names that object),
    or None when it sets none. Preferred terms and pod (anti-)affinity do not restrict
    nodes and are not read."""
    try:
        return _node_affinity(affinity, field)
    except PlacementError as e:
        raise e.named(source) from None


# --- tolerations ----------------------------------------------------------------------


def _toleration(raw: Any, field: str) -> Toleration:
    entry = _mapping(raw, field) or {}
    seconds = entry.get("tolerationSeconds")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int)):
        raise PlacementError(f"{field}.tolerationSeconds", f"is not an integer: {_type(seconds)}")
    return Toleration(
        key=_string(entry.get("key"), f"{field}.key"),
        operator=_string(entry.get("operator"), f"{field}.operator") or EQUAL,
        value=_string(entry.get("value"), f"{field}.value"),
        effect=_string(entry.get("effect"), f"{field}.effect"),
    )


def _tolerations(value: Any, field: str, *, first: bool = False) -> tuple[Toleration, ...]:
    """`first`: read only the first MAX_TOLERATIONS of a longer list (a workload's pod spec:
    fewer tolerations can only mean fewer nodes, never more, so a pod is never placed where
    it could not run); otherwise more is an error (the puller CR's, an administrator's)."""
    if first and isinstance(value, list):
        value = value[:MAX_TOLERATIONS]
    items = _list(value, field, MAX_TOLERATIONS)
    return tuple(sorted({_toleration(raw, f"{field}[{i}]") for i, raw in enumerate(items)}))


def read_tolerations(value: Any, *, field: str, source: str = "") -> tuple[Toleration, ...]:
    """A pod's `tolerations` list, sorted, duplicates dropped. `tolerationSeconds` only
    bounds how long a NoExecute taint is tolerated, so it does not change placement."""
    try:
        return _tolerations(value, field)
    except PlacementError as e:
        raise e.named(source) from None


# --- container resources ----------------------------------------------------------------


def _quantities(value: Any, field: str) -> tuple[tuple[str, bool], ...]:
    found = []
    for name, quantity in _bounded_mapping(value, field, MAX_RESOURCES).items():
        if "/" not in name or not is_extended_resource(name):  # cpu, memory: the common case, fast
            continue
        positive = quantity_is_positive(quantity)
        if positive is None:
            raise PlacementError(f"{field}[{name}]", f"is not a quantity: {quantity!r}"[:200])
        found.append((name, positive))
    return tuple(sorted(found))


def _resources(container: Any, field: str) -> Resources:
    resources = _mapping(_get(container, field, "resources"), f"{field}.resources") or {}
    return Resources(
        requests=_quantities(resources.get("requests"), f"{field}.resources.requests"),
        limits=_quantities(resources.get("limits"), f"{field}.resources.limits"),
    )


def read_resources(container: Any, *, field: str, source: str = "") -> Resources:
    """The extended resources a container object (`field` names it) requests or limits."""
    try:
        return _resources(container, field)
    except PlacementError as e:
        raise e.named(source) from None


def _nothing_extended(container: Any) -> bool:
    """True for the common container: a well-typed object whose requests and limits name no
    extended resource. Checked without building a single field path (10,000 workbenches
    have 20,000 such containers)."""
    if type(container) is not dict or type(container.get("name", "")) is not str:
        return False
    resources = container.get("resources")
    if resources is None:
        return True
    if type(resources) is not dict:
        return False
    for key in ("requests", "limits"):
        quantities = resources.get(key)
        if quantities is None:
            continue
        if type(quantities) is not dict or len(quantities) > MAX_RESOURCES:
            return False
        for name in quantities:
            if "/" in name:
                return False
    return True


def _containers(spec: Mapping[str, Any], field: str) -> tuple[tuple[str, Resources], ...]:
    """The extended resources of the first MAX_CONTAINERS containers and init containers, as
    the sources read their images (`agent.sources.common.containers`, which reports the
    excess); an entry that is not an object is skipped there and here alike."""
    found = []
    for key in ("initContainers", "containers"):
        items = spec.get(key)
        if type(items) is not list:
            items = _list(items, f"{field}.{key}", MAX_CONTAINERS)
        for i, container in enumerate(items[:MAX_CONTAINERS]):
            if not isinstance(container, Mapping) or _nothing_extended(container):
                continue
            name = _string(_get(container, f"{field}.{key}[{i}]", "name"), f"{field}.{key}[{i}].name")
            resources = _resources(container, f"{field}.{key}[{name or i}]")
            if resources:
                found.append((name, resources))
    return tuple(found)


# --- a whole pod spec -------------------------------------------------------------------


def read_pod_scheduling(
    spec: Any, *, field: str, source: str = "", model_key: str | None = None
) -> PodScheduling:
    """`nodeSelector`, required node affinity, `tolerations` and the containers' extended
    resources of a pod spec (`field` names it: "spec.template.spec", "spec.predictor").

    `model_key` names a container object inside the spec whose resources KServe overlays
    on the runtime's `kserve-container`: "model" for an InferenceService predictor (or the
    framework key of an older predictor, "sklearn"...). Raises PlacementError naming
    `source` and the field.
    """
    if _says_nothing(spec, model_key):
        return NOTHING
    try:
        entry = _mapping(spec, field) or {}
        model = None
        if model_key is not None and entry.get(model_key) is not None:
            model = _resources(entry.get(model_key), f"{field}.{model_key}")
        return PodScheduling(
            node_selector=_node_selector(entry.get("nodeSelector"), f"{field}.nodeSelector"),
            affinity=_node_affinity(entry.get("affinity"), f"{field}.affinity"),
            tolerations=_tolerations(entry.get("tolerations"), f"{field}.tolerations", first=True),
            containers=_containers(entry, field),
            model=model,
        )
    except PlacementError as e:
        raise e.named(source) from None


NOTHING = PodScheduling()
_EMPTY_FIELDS = (("nodeSelector", dict), ("affinity", dict), ("tolerations", list))  # absent or empty: nothing


def _says_nothing(spec: Any, model_key: str | None) -> bool:
    """True for the common pod spec, the CPU workbench's: no `nodeSelector`, affinity or
    tolerations, and no container that names an extended resource. Its PodScheduling is
    NOTHING, found without building a field path (read_pod_scheduling's full reading gives
    the same value; anything unusual takes that reading, errors included)."""
    if type(spec) is not dict:
        return False
    if model_key is not None and spec.get(model_key) is not None:
        return False
    for key, empty in _EMPTY_FIELDS:
        value = spec.get(key)
        if value is not None and (type(value) is not empty or value):
            return False
    for key in ("initContainers", "containers"):
        items = spec.get(key)
        if items is None:
            continue
        if type(items) is not list or len(items) > MAX_CONTAINERS:
            return False
        for container in items:
            if not _nothing_extended(container):
                return False
    return True


# --- the puller CR's JSON strings --------------------------------------------------------


def _json(raw: Any, field: str, expected: type) -> Any:
    """Go's `json.Unmarshal` of a CR string field: "" and "null" give None."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise PlacementError(field, f"is not a string: {_type(raw)}")
    what = "a JSON object" if expected is dict else "a JSON list"
    try:
        decoded: Any = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise PlacementError(field, f"is not {what}: {raw[:200]!r} ({exc})") from None
    if decoded is not None and not isinstance(decoded, expected):
        raise PlacementError(field, f"is not {what}: {raw[:200]!r}")
    return decoded


def read_affinity_json(raw: Any, *, field: str, source: str = "") -> NodeAffinity | None:
    """The required node affinity in a JSON string holding a pod `affinity` object (the
    puller CR's `spec.affinity`); None for "", "null", "{}" or no node affinity."""
    try:
        return _node_affinity(_json(raw, field, dict), field)
    except PlacementError as e:
        raise e.named(source) from None


def read_tolerations_json(raw: Any, *, field: str, source: str = "") -> tuple[Toleration, ...]:
    """The tolerations in a JSON string holding a list (the puller CR's `spec.tolerations`)."""
    try:
        return _tolerations(_json(raw, field, list), field)
    except PlacementError as e:
        raise e.named(source) from None
