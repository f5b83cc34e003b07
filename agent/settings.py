"""The agent's settings: one validated, immutable `Settings` value.

Layers, each overriding the one before: the defaults declared here, a YAML file
(`config/default.yaml` documents every key), `PREPULL_*` environment variables, and the
command line (`--target` through `with_target`; `with_overrides` for any other key).

Every setting is declared once, as a field of a frozen dataclass with a type, a default and
a one-line help (`field.metadata["help"]`; `describe()` lists them, and a test keeps
`config/default.yaml` documenting every one).
The dataclasses validate themselves in `__post_init__`, so a `Settings` that exists is
valid however it was made. Loading is generic: it walks the dataclass fields, with one
converter per kind of leaf, and every error is a `SettingsError` that names where the value
came from (file or environment variable), the dotted key, and what is accepted.

Environment variables: `PREPULL_` + the dotted key upper-cased with `.` as `__`
(`PREPULL_SELECTION__MAX_IMAGES=20`); lists are comma-separated; `PREPULL_TARGET=NS/NAME`
replaces the targets. A `PREPULL_*__*` variable that names no key is an error. A variable
without `__` is read only when it names a top-level key, and otherwise ignored: Kubernetes
injects `PREPULL_AGENT_SERVICE_HOST`-style variables for a Service named `prepull-agent`.

Also here, because the node source needs the same rule: `parse_quantity` (Kubernetes
quantity text to bytes) and `format_quantity`.

What this module is not: it reads no cluster (the applications namespace's fallback to the
DSCInitialization is resolved by the observer) and parses no command line. Of image
references it checks only the pinned ones (with `agent.refs`), so a bad pin stops the agent
at start; exclude and deny patterns are globs, not references.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from agent.refs import ImageRef

__all__ = [
    "CLI_VARIABLES",
    "ENV_PREFIX",
    "DiskBudget",
    "Kube",
    "LeaderElection",
    "Logging",
    "References",
    "Selection",
    "Serve",
    "Settings",
    "SettingsError",
    "Sizes",
    "Sources",
    "Target",
    "TARGET_VARIABLE",
    "Weights",
    "describe",
    "env_name",
    "format_quantity",
    "load_settings",
    "parse_quantity",
    "settings_from_mapping",
    "to_mapping",
    "with_overrides",
    "with_target",
]

ENV_PREFIX = "PREPULL_"

#: The command line's own variables: not settings, and never reported as unknown here.
CLI_VARIABLES: frozenset[str] = frozenset(
    {
        "PREPULL_CONFIG",
        "PREPULL_DRY_RUN",
        "PREPULL_OUTPUT",
        "PREPULL_KUBECONFIG",
        "PREPULL_CONTEXT",
        "PREPULL_LOG_FORMAT",
        "PREPULL_LOG_LEVEL",
    }
)

#: Read by `load_settings` and applied with `with_target`; not a dotted key.
TARGET_VARIABLE = "PREPULL_TARGET"

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


class SettingsError(ValueError):
    """A setting is missing, unknown or invalid. The message says where, which key, and what
    is accepted, e.g. `config c.yaml: selection.max_images must be an integer >= 0, got 'ten'
    (str)`."""


# ---------------------------------------------------------------------------------------
# Quantities


_QUANTITY = re.compile(
    r"(?P<number>\d+(?:\.\d*)?|\.\d+)"
    r"(?:(?P<exponent>[eE][+-]?\d+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E))?"
)
_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_INT64_MAX = (1 << 63) - 1


def parse_quantity(text: str | int) -> int:
    """A Kubernetes quantity of bytes as an int: "100Gi", "104845292Ki", "500M", "1.5Ti",
    "1e3", "1500m", "42" (or an int). A fraction of a byte is rounded up, as Kubernetes'
    `Quantity.Value()` does. Raises ValueError for anything else, including negative values
    and values beyond int64."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"not a size: {text!r} is negative")
        return text
    if not isinstance(text, str):
        raise ValueError(f"not a Kubernetes quantity: {text!r} ({type(text).__name__})")
    match = _QUANTITY.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"not a Kubernetes quantity: {text!r} (expected a number with an optional "
            "suffix Ki, Mi, Gi, Ti, Pi, k, M, G, T, P, e.g. '100Gi' or '500M')"
        )
    try:
        number = Decimal(match["number"])
        if match["exponent"]:
            number = number.scaleb(int(match["exponent"][1:]))
        value = number * _SUFFIXES[match["suffix"] or ""]
    except (InvalidOperation, OverflowError, ValueError) as e:
        raise ValueError(f"not a Kubernetes quantity: {text!r} ({e})") from None
    if value > _INT64_MAX:
        raise ValueError(f"quantity {text!r} is too large")
    return math.ceil(value)


def format_quantity(value: int) -> str:
    """Bytes as the shortest exact binary quantity: 6442450944 -> "6Gi", 1000 -> "1000"."""
    for suffix, scale in (
        ("Ei", 1 << 60),
        ("Pi", 1 << 50),
        ("Ti", 1 << 40),
        ("Gi", GiB),
        ("Mi", MiB),
        ("Ki", KiB),
    ):
        if value and value % scale == 0:
            return f"{value // scale}{suffix}"
    return str(value)


# ---------------------------------------------------------------------------------------
# Field declarations and checks


class _Bad(Exception):
    """A value does not fit its field; `detail` adds the reason when there is one."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail


class _Invalid(SettingsError):
    """Raised by the dataclasses themselves. The message uses bare field names; the loader
    re-renders it with full dotted keys and the origin of the values."""

    def __init__(self, keys: tuple[str, ...], render: Callable[[tuple[str, ...]], str]) -> None:
        super().__init__(render(keys))
        self.keys = keys
        self.render = render


@dataclass(frozen=True, slots=True)
class _Check:
    """A constraint on a converted value: `ok` says whether it holds (or raises _Bad with a
    reason); `text` completes "must be <noun> ..." (e.g. ">= 0"); `must` replaces the whole
    description when the noun would read badly."""

    ok: Callable[[Any], bool]
    text: str = ""
    must: str = ""


def _at_least(low: float) -> _Check:
    return _Check(lambda v: v >= low, f">= {low:g}")


def _above(low: float) -> _Check:
    return _Check(lambda v: v > low, f"> {low:g}")


def _between(low: int, high: int) -> _Check:
    return _Check(lambda v: low <= v <= high, f"from {low} to {high}")


def _choice(*options: str) -> _Check:
    return _Check(lambda v: v in options, must=f"one of {', '.join(options)}")


_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_RULE = "lowercase letters, digits and '-', starting and ending with a letter or digit"


def _is_label(value: str) -> bool:
    return len(value) <= 63 and _LABEL.fullmatch(value) is not None


def _is_subdomain(value: str) -> bool:
    return len(value) <= 253 and all(_is_label(part) for part in value.split("."))


_NAMESPACE = _Check(_is_label, must=f"a namespace name (DNS-1123 label: {_LABEL_RULE}, at most 63 characters)")
_OPTIONAL_NAMESPACE = _Check(
    lambda v: v == "" or _is_label(v),
    must=f"empty or a namespace name (DNS-1123 label: {_LABEL_RULE}, at most 63 characters)",
)
_NAME = _Check(
    _is_subdomain,
    must=f"an object name (DNS-1123 subdomain: {_LABEL_RULE}, with '.' between parts, at most 253 characters)",
)
_REGISTRY = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*(:\d{1,5})?")
_REGISTRIES = _Check(
    lambda v: all(_REGISTRY.fullmatch(r) for r in v),
    must="a list of registry hosts, each a domain with an optional port "
    "(e.g. quay.io, registry.example.com:5000), without scheme or path",
)


def _cron_ok(expression: str) -> bool:
    if not expression:
        return True
    fields = expression.split()
    if len(fields) == 5 and re.search(r"\d", fields[4]):
        raise _Bad(
            "write the weekday field with names (sun, mon-fri): APScheduler 3 counts "
            "weekday 0 as Monday, cron counts it as Sunday"
        )

    from apscheduler.triggers.cron import CronTrigger  # only when a cron is set

    try:
        CronTrigger.from_crontab(expression, timezone=UTC)
    except ValueError as e:
        raise _Bad(str(e)) from None
    return True


_CRON = _Check(
    _cron_ok,
    must="empty or a 5-field crontab expression (minute hour day month weekday, e.g. '0 */6 * * *')",
)


def _setting(default: Any, help: str, *, check: _Check | None = None, kind: str = "") -> Any:
    """Declare a field: default, one-line help, optional constraint, optional leaf kind that
    overrides the one derived from the type ("quantity": an int given as "6Gi" or bytes)."""
    metadata = {"help": help, "check": check, "kind": kind}
    if isinstance(default, list | dict | set):  # pragma: no cover - a declaration mistake
        raise TypeError("settings defaults must be immutable")
    return field(default=default, metadata=metadata)


class _Node:
    """Base of the settings dataclasses: validates and normalises every field on creation,
    then runs the class's cross-field `_check`."""

    __slots__ = ()

    def __post_init__(self) -> None:
        for name, spec in _specs(type(self)).items():
            value = getattr(self, name)
            try:
                normalised = spec.value(value)
            except _Bad as e:
                raise _Invalid((name,), _must(type(self), name, value, e.detail)) from None
            if normalised is not value:
                object.__setattr__(self, name, normalised)
        self._check()

    def _check(self) -> None:
        """Cross-field rules; raise `_Invalid` naming the fields involved."""


def _must(
    cls: type, name: str, value: Any, detail: str = "", *, text: bool = False
) -> Callable[[tuple[str, ...]], str]:
    """The renderer of "KEY must be WHAT, got VALUE (TYPE)[: detail]"."""
    got = repr(value) if text else f"{value!r} ({type(value).__name__})"
    message = f" must be {_specs(cls)[name].description}, got {got}" + (f": {detail}" if detail else "")
    return lambda keys: keys[0] + message


# ---------------------------------------------------------------------------------------
# Leaf kinds: one converter per kind, chosen from the field's type (or metadata "kind")


@dataclass(frozen=True, slots=True)
class _Kind:
    noun: str  # completes "must be ..."
    coerce: Callable[[Any], Any]  # YAML or Python value -> normalised value; raises _Bad
    from_text: Callable[[str], Any]  # environment text -> YAML-like value; raises _Bad


def _coerce_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _Bad()


def _bool_text(text: str) -> bool:
    word = text.strip().lower()
    if word in ("true", "1", "yes"):
        return True
    if word in ("false", "0", "no"):
        return False
    raise _Bad()


def _coerce_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _Bad()


def _int_text(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise _Bad() from None


def _coerce_float(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            raise _Bad() from None
        if math.isfinite(number):
            return value if type(value) is float else number
    raise _Bad()


def _float_text(text: str) -> float:
    try:
        return _coerce_float(float(text.strip()))
    except ValueError:
        raise _Bad() from None


def _coerce_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise _Bad()


def _coerce_strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list | tuple) and all(isinstance(v, str) and v.strip() for v in value):
        return tuple(v.strip() for v in value)
    raise _Bad()


def _strings_text(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _coerce_registries(value: Any) -> tuple[str, ...]:
    return tuple(v.lower() for v in _coerce_strings(value))


def _coerce_quantity(value: Any) -> int:
    if isinstance(value, bool):
        raise _Bad()
    try:
        return parse_quantity(value)
    except ValueError:
        raise _Bad() from None


def _coerce_budget(value: Any) -> DiskBudget:
    try:
        return _parse_budget(value)
    except _Invalid:  # pragma: no cover - _parse_budget checks before it constructs
        raise _Bad() from None


def _same(text: str) -> str:
    return text


_KINDS: dict[Any, _Kind] = {
    bool: _Kind("true or false", _coerce_bool, _bool_text),
    int: _Kind("an integer", _coerce_int, _int_text),
    float: _Kind("a number", _coerce_float, _float_text),
    str: _Kind("a string", _coerce_str, _same),
    tuple[str, ...]: _Kind("a list of non-empty strings", _coerce_strings, _strings_text),
    "budget": _Kind(
        "a size (120Gi, 500M or bytes), a percentage (25%), a fraction below 1 (0.25) or 'unlimited'",
        _coerce_budget,
        _same,
    ),
    "quantity": _Kind("a size (6Gi, 200Mi, 500M or bytes)", _coerce_quantity, _same),
    "registries": _Kind("a list of registry hosts", _coerce_registries, _strings_text),
}


def _is_section(hint: Any) -> bool:
    """A nested dataclass read key by key (DiskBudget is a dataclass but one YAML value)."""
    return dataclasses.is_dataclass(hint) and hint is not DiskBudget


@dataclass(frozen=True, slots=True)
class _Spec:
    """What one field is, worked out once from its type and metadata."""

    section: Any  # a nested settings dataclass, read key by key; else None
    item: Any  # the dataclass of a `tuple[X, ...]` of sections (targets); else None
    optional: bool  # `X | None`: None is a value
    kind: _Kind | None  # the converter of a leaf; None for sections
    check: _Check | None
    help: str

    @property
    def description(self) -> str:
        """Completes "KEY must be ..."."""
        if self.check is not None and self.check.must:
            return self.check.must
        if self.kind is None:
            return f"a list of {self.item.__name__}" if self.item else f"a {self.section.__name__}"
        return f"{self.kind.noun} {self.check.text}" if self.check and self.check.text else self.kind.noun

    def value(self, value: Any) -> Any:
        """`value` validated and normalised; raises _Bad."""
        if self.section is not None:
            if isinstance(value, self.section):
                return value
            raise _Bad()
        if self.item is not None:
            if isinstance(value, list | tuple) and all(isinstance(v, self.item) for v in value):
                return value if isinstance(value, tuple) else tuple(value)
            raise _Bad()
        if value is None and self.optional:
            return None
        assert self.kind is not None
        converted = self.kind.coerce(value)
        if self.check is not None and not self.check.ok(converted):
            raise _Bad()
        return converted


_SPECS: dict[type, dict[str, _Spec]] = {}


def _specs(cls: type) -> dict[str, _Spec]:
    """The fields of a settings dataclass by name, in declaration order (worked out once)."""
    if cls not in _SPECS:
        hints = typing.get_type_hints(cls)
        _SPECS[cls] = {f.name: _spec(f, hints[f.name]) for f in dataclasses.fields(cls)}
    return _SPECS[cls]


def _spec(f: dataclasses.Field[Any], hint: Any) -> _Spec:
    args = typing.get_args(hint)
    optional = isinstance(hint, types.UnionType) and type(None) in args
    inner = next(a for a in args if a is not type(None)) if optional else hint
    is_list = typing.get_origin(hint) is tuple and len(args) == 2 and args[1] is Ellipsis
    item = args[0] if is_list and _is_section(args[0]) else None
    section = hint if _is_section(hint) else None
    kind = _KINDS[f.metadata["kind"]] if f.metadata["kind"] else _KINDS.get(inner)
    if kind is None and section is None and item is None:  # pragma: no cover - declaration mistake
        raise TypeError(f"no converter for setting {f.name}: {hint}")
    return _Spec(section, item, optional, kind, f.metadata["check"], f.metadata["help"])


def _key_then(problem: str) -> Callable[[tuple[str, ...]], str]:
    """The renderer of "KEY problem"."""
    return lambda keys: f"{keys[0]} {problem}"


# ---------------------------------------------------------------------------------------
# The settings tree


@dataclass(frozen=True, slots=True)
class Target(_Node):
    """One KubernetesImagePuller CR the agent keeps current."""

    namespace: str = _setting("openshift-operators", "namespace of the KubernetesImagePuller", check=_NAMESPACE)
    name: str = _setting("image-puller", "name of the KubernetesImagePuller", check=_NAME)
    create: bool = _setting(False, "create the KubernetesImagePuller if it is missing (otherwise that is an error)")

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class DiskBudget(_Node):
    """How much node disk the listed images may take: a fixed number of bytes, a fraction of
    the smallest target node's ephemeral storage, or unlimited (both None).

    In YAML: bytes (120000000000), a quantity ("120Gi", "500M", "1.5Ti"), a percentage
    ("25%"), a fraction below 1 (0.25 or "0.25"), or "unlimited" / null. When `bytes` is set
    it wins and `fraction` is cleared, so `DiskBudget(bytes=n)` means just n bytes.
    """

    bytes: int | None = _setting(
        None,
        "fixed budget in bytes (wins over fraction)",
        check=_Check(lambda v: v is None or v > 0, "> 0"),
    )
    fraction: float | None = _setting(
        0.3,
        "budget as a fraction of the smallest target node's ephemeral-storage capacity",
        check=_Check(lambda v: v is None or 0 < v <= 1, "> 0 and <= 1"),
    )

    def _check(self) -> None:
        if self.bytes is not None and self.fraction is not None:
            object.__setattr__(self, "fraction", None)

    def resolve(self, smallest_node_capacity: int | None) -> int | None:
        """The budget in bytes, or None when there is none (unlimited, or a fraction of a
        capacity that no node reported)."""
        if self.bytes is not None:
            return self.bytes
        if self.fraction is None or smallest_node_capacity is None:
            return None
        return math.floor(smallest_node_capacity * self.fraction)

    def __str__(self) -> str:
        if self.bytes is not None:
            return format_quantity(self.bytes)
        if self.fraction is not None:
            return f"{_percent(self.fraction)} of the smallest node's ephemeral storage"
        return "unlimited"

    def to_yaml(self) -> str | float:
        """The YAML value that loads back to this budget."""
        if self.bytes is not None:
            return format_quantity(self.bytes)
        if self.fraction is None:
            return "unlimited"
        percent = _percent(self.fraction)
        return percent if _parse_budget(percent) == self else self.fraction


def _percent(fraction: float) -> str:
    return f"{fraction * 100:g}%"


_DECIMAL = re.compile(r"\d+\.\d*|\.\d+")


def _parse_budget(value: Any) -> DiskBudget:
    """A DiskBudget from a YAML value; raises _Bad."""
    if isinstance(value, DiskBudget):
        return value
    if value is None:
        return DiskBudget(fraction=None)
    if isinstance(value, bool):
        raise _Bad()
    if isinstance(value, int):
        if value <= 0:
            raise _Bad("a budget must be above 0; use 'unlimited' for none")
        return DiskBudget(bytes=value)
    if isinstance(value, float):
        if 0 < value < 1:
            return DiskBudget(fraction=value)
        raise _Bad(
            "a plain number must be a fraction above 0 and below 1; write larger budgets as a size or a percentage"
        )
    if not isinstance(value, str):
        raise _Bad()
    text = value.strip()
    if text.lower() in ("unlimited", "none"):
        return DiskBudget(fraction=None)
    if text.endswith("%"):
        try:
            percent = float(text[:-1])
        except ValueError:
            raise _Bad() from None
        if not 0 < percent <= 100:
            raise _Bad("a percentage must be above 0 and at most 100")
        return DiskBudget(fraction=percent / 100)
    if _DECIMAL.fullmatch(text):
        return _parse_budget(float(text))
    try:
        return _parse_budget(parse_quantity(text))
    except ValueError:
        raise _Bad() from None


def _all_references(values: tuple[str, ...]) -> bool:
    from agent.refs import InvalidReference, parse_reference  # pure; imported late to keep this module first

    for value in values:
        try:
            parse_reference(value)
        except InvalidReference as e:
            raise _Bad(f"{value!r} {e.reason}") from None
    return True


@dataclass(frozen=True, slots=True)
class Selection(_Node):
    """Which images make the list."""

    max_images: int = _setting(15, "most images in the list", check=_at_least(0))
    min_score: float = _setting(2.0, "images scoring below this are left out", check=_at_least(0))
    disk_budget: DiskBudget = _setting(
        DiskBudget(),
        "total size the listed images may take on a node: 120Gi, 25% or unlimited",
        kind="budget",
    )
    retain_margin: float = _setting(
        0.25,
        "a listed image stays until it scores this fraction below what would replace it",
        check=_Check(lambda v: 0 <= v < 1, ">= 0 and < 1"),
    )
    max_per_namespace: int = _setting(
        3,
        "most selected images used by only one single namespace (0: no limit)",
        check=_at_least(0),
    )
    max_namespace_share: float = _setting(
        0.5,
        "most of the disk budget the images used by only one single namespace may take",
        check=_Check(lambda v: 0 < v <= 1, "> 0 and <= 1"),
    )
    pinned: tuple[str, ...] = _setting(
        (),
        "image references always in the list",
        check=_Check(_all_references, must="a list of image references such as quay.io/org/image:tag"),
    )
    exclude: tuple[str, ...] = _setting(
        (), "glob patterns over the normalised reference; matching images are always left out"
    )

    @property
    def pinned_refs(self) -> tuple[ImageRef, ...]:
        """`pinned` as canonical references (checked when the settings were made)."""
        from agent.refs import parse_reference

        return tuple(parse_reference(text) for text in self.pinned)


_STATE_FIELDS = {
    "running": "running",
    "stopped": "stopped",
    "ready": "ready",
    "not-ready": "not_ready",
    "recommended": "recommended",
    "offered": "offered",
    "outdated": "outdated",
    "defined": "defined",
}


@dataclass(frozen=True, slots=True)
class Weights(_Node):
    """Score added per object using an image, by how it uses it."""

    running: float = _setting(10.0, "per started workbench", check=_at_least(0))
    stopped: float = _setting(2.0, "per stopped workbench", check=_at_least(0))
    ready: float = _setting(10.0, "per Ready model server (InferenceService)", check=_at_least(0))
    not_ready: float = _setting(3.0, "per model server that is not Ready", check=_at_least(0))
    recommended: float = _setting(
        5.0, "for the recommended tag of a workbench image offered to new users", check=_at_least(0)
    )
    offered: float = _setting(1.0, "for any other offered workbench image tag", check=_at_least(0))
    outdated: float = _setting(
        0.0,
        "for an outdated tag or hidden stream (counts only when something uses it)",
        check=_at_least(0),
    )
    defined: float = _setting(1.0, "per serving runtime or runtime template that exists", check=_at_least(0))

    def for_state(self, state: str) -> float:
        """The weight of a usage state ("running", "not-ready", ...; `agent.model.State`)."""
        try:
            return float(getattr(self, _STATE_FIELDS[state]))
        except KeyError:
            raise ValueError(f"unknown usage state {state!r}; expected one of {', '.join(_STATE_FIELDS)}") from None


_ROLE_FIELDS = {
    "workbench": "workbench",
    "sidecar": "sidecar",
    "pipeline-runtime": "pipeline_runtime",
    "serving-runtime": "serving_runtime",
    "modelcar": "modelcar",
    "custom-container": "custom_container",
}
_SIZE = _above(0)


@dataclass(frozen=True, slots=True)
class Sizes(_Node):
    """Size estimates by role, used when no node reports an image's size."""

    workbench: int = _setting(6 * GiB, "a workbench image", check=_SIZE, kind="quantity")
    sidecar: int = _setting(200 * MiB, "a sidecar image (e.g. kube-rbac-proxy)", check=_SIZE, kind="quantity")
    pipeline_runtime: int = _setting(3 * GiB, "a pipeline runtime image", check=_SIZE, kind="quantity")
    serving_runtime: int = _setting(15 * GiB, "a model serving runtime image", check=_SIZE, kind="quantity")
    modelcar: int = _setting(10 * GiB, "a ModelCar (model weights as an image)", check=_SIZE, kind="quantity")
    custom_container: int = _setting(4 * GiB, "a custom container of a model server", check=_SIZE, kind="quantity")

    def for_role(self, role: str) -> int:
        """The estimate for an image role ("workbench", "serving-runtime", ...;
        `agent.model.Role`)."""
        try:
            return int(getattr(self, _ROLE_FIELDS[role]))
        except KeyError:
            raise ValueError(f"unknown image role {role!r}; expected one of {', '.join(_ROLE_FIELDS)}") from None


@dataclass(frozen=True, slots=True)
class References(_Node):
    """Which image references are acceptable at all."""

    allowed_registries: tuple[str, ...] = _setting(
        (),
        "only images from these registries (domain[:port]); empty: any registry",
        check=_REGISTRIES,
        kind="registries",
    )
    deny: tuple[str, ...] = _setting((), "glob patterns; matching references are rejected like invalid ones")


@dataclass(frozen=True, slots=True)
class Sources(_Node):
    """Which kinds of objects to scan."""

    imagestreams: bool = _setting(True, "workbench and pipeline runtime ImageStreams")
    notebooks: bool = _setting(True, "workbenches (Notebook)")
    servingruntimes: bool = _setting(True, "ServingRuntimes in project namespaces")
    clusterservingruntimes: bool = _setting(True, "ClusterServingRuntimes")
    templates: bool = _setting(True, "serving runtime templates (OpenShift Templates)")
    inferenceservices: bool = _setting(True, "model servers (InferenceService)")
    llminferenceservices: bool = _setting(True, "LLM model servers (LLMInferenceService)")
    nodes: bool = _setting(True, "Nodes: image sizes and ephemeral-storage capacity")


@dataclass(frozen=True, slots=True)
class Kube(_Node):
    """How the agent talks to the API server."""

    page_size: int = _setting(500, "objects per list request", check=_between(1, 5000))
    request_timeout_seconds: float = _setting(30.0, "timeout of each API request, in seconds", check=_above(0))


@dataclass(frozen=True, slots=True)
class LeaderElection(_Node):
    """Only one replica of the agent writes; the others wait on a Lease."""

    enabled: bool = _setting(True, "elect a leader with a Lease before writing")
    lease_name: str = _setting("prepull-agent", "name of the Lease", check=_NAME)
    lease_namespace: str = _setting(
        "",
        "namespace of the Lease; empty: the pod's namespace (POD_NAMESPACE)",
        check=_OPTIONAL_NAMESPACE,
    )
    lease_duration_seconds: float = _setting(
        30.0, "how long a leader's lease lasts without renewal, in seconds", check=_above(0)
    )
    renew_deadline_seconds: float = _setting(
        20.0,
        "how long the leader keeps trying to renew before it steps down, in seconds",
        check=_above(0),
    )
    retry_period_seconds: float = _setting(
        4.0, "pause between attempts to acquire or renew, in seconds", check=_above(0)
    )

    def _check(self) -> None:
        d, r, p = (
            self.lease_duration_seconds,
            self.renew_deadline_seconds,
            self.retry_period_seconds,
        )
        if d > r > p:
            return
        keys = ("lease_duration_seconds", "renew_deadline_seconds", "retry_period_seconds")
        (high, low), values = (keys[:2], (d, r)) if d <= r else (keys[1:], (r, p))
        raise _Invalid(
            (high, low),
            lambda k: (
                f"{k[0]} ({values[0]:g}) must be greater than {k[1]} ({values[1]:g}): "
                "a leader renews its lease before it expires, and retries several times meanwhile"
            ),
        )


@dataclass(frozen=True, slots=True)
class Serve(_Node):
    """The long-running mode (`serve`)."""

    interval_seconds: float = _setting(900.0, "seconds between cycles", check=_above(0))
    cron: str = _setting("", "5-field crontab schedule; when set it replaces interval_seconds", check=_CRON)
    max_consecutive_failures: int = _setting(
        5, "failed cycles in a row before the agent reports itself unhealthy", check=_at_least(1)
    )
    port: int = _setting(8080, "port of the health and metrics endpoint", check=_between(1, 65535))
    leader_election: LeaderElection = _setting(LeaderElection(), "leader election between replicas")


@dataclass(frozen=True, slots=True)
class Logging(_Node):
    """Log output."""

    format: str = _setting(
        "auto",
        "auto, console or json (auto: console on a terminal, json otherwise)",
        check=_choice("auto", "console", "json"),
    )
    level: str = _setting("info", "debug, info, warning or error", check=_choice("debug", "info", "warning", "error"))


@dataclass(frozen=True, slots=True)
class Settings(_Node):
    """Everything the agent can be told."""

    applications_namespace: str = _setting(
        "",
        "OpenShift AI's applications namespace; empty: from the DSCInitialization, else redhat-ods-applications",
        check=_OPTIONAL_NAMESPACE,
    )
    targets: tuple[Target, ...] = _setting(
        (Target(),), "the KubernetesImagePullers to keep current (at least one, each once)"
    )
    selection: Selection = _setting(Selection(), "which images make the list")
    weights: Weights = _setting(Weights(), "score per object using an image, by how it uses it")
    sizes: Sizes = _setting(Sizes(), "image size estimates by role, when no node reports the size")
    references: References = _setting(References(), "which image references are acceptable")
    sources: Sources = _setting(Sources(), "which kinds of objects to scan")
    kube: Kube = _setting(Kube(), "API server requests")
    serve: Serve = _setting(Serve(), "the long-running mode")
    logging: Logging = _setting(Logging(), "log output")

    def _check(self) -> None:
        if not self.targets:
            raise _Invalid(("targets",), _key_then("must name at least one KubernetesImagePuller"))
        seen: dict[tuple[str, str], int] = {}
        for i, target in enumerate(self.targets):
            first = seen.setdefault((target.namespace, target.name), i)
            if first != i:
                problem = f"repeats {target} (already targets[{first}])"
                raise _Invalid((f"targets[{i}]",), _key_then(problem))


# ---------------------------------------------------------------------------------------
# Building from mappings


def _known(cls: type) -> str:
    return ", ".join(sorted(_specs(cls)))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind_of_value(value: Any) -> str:
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    return "a mapping" if isinstance(value, dict) else f"{value!r} ({type(value).__name__})"


class _Where:
    """Which layer each dotted key came from, for error messages."""

    def __init__(self, fallback: str, origins: Mapping[str, str] | None = None) -> None:
        self.fallback = fallback
        self.origins = dict(origins or {})

    def __call__(self, *keys: str) -> str:
        found: list[str] = []
        for key in keys:
            origin = self._lookup(key)
            if origin and origin not in found:
                found.append(origin)
        return ", ".join(found) or self.fallback

    def _lookup(self, key: str) -> str | None:
        while key:
            if key in self.origins:
                return self.origins[key]
            parent = re.fullmatch(r"(.*)(\.[^.\[\]]+|\[\d+\])", key)
            key = parent[1] if parent else ""
        return None


def _build(cls: type, data: Any, path: str, where: _Where) -> Any:
    """An instance of the dataclass `cls` from a YAML-shaped mapping; raises SettingsError."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        what = path or "the top level"
        raise SettingsError(f"{where(path)}: {what} must be a mapping of keys, got {_kind_of_value(data)}")
    specs = _specs(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        sub = _join(path, str(key))
        if not isinstance(key, str) or key not in specs:
            raise SettingsError(f"{where(sub)}: unknown key {sub!r} ({_suggest(cls, str(key), path)})")
        spec = specs[key]
        if spec.section is not None:
            kwargs[key] = _build(spec.section, value, sub, where)
        elif spec.item is not None:
            if not isinstance(value, list) or not value:
                raise SettingsError(
                    f"{where(sub)}: {sub} must be a non-empty list of mappings with keys "
                    f"{_known(spec.item)}, got {_kind_of_value(value)}"
                )
            items = enumerate(value)
            kwargs[key] = tuple(_build(spec.item, v, f"{sub}[{i}]", where) for i, v in items)
        else:
            kwargs[key] = value
    try:
        return cls(**kwargs)
    except _Invalid as e:
        keys = tuple(_join(path, k) for k in e.keys)
        raise SettingsError(f"{where(*keys)}: {e.render(keys)}") from None


def _suggest(cls: type, key: str, path: str) -> str:
    names = list(_specs(cls))
    close = difflib.get_close_matches(key, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    under = f"known keys under {path!r}" if path else "known top-level keys"
    return f"{hint}{under}: {', '.join(sorted(names))}"


def settings_from_mapping(data: Mapping[str, Any], *, origin: str) -> Settings:
    """Settings from YAML-shaped data (the defaults fill what it leaves out). `origin` starts
    every error message, e.g. "config /etc/prepull/config.yaml"."""
    return _build(Settings, data, "", _Where(origin))  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------
# Files and the environment


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key repeated in one mapping (PyYAML keeps the last)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[str] = set()
    for key_node, _ in node.value:  # the node's own keys; keys merged in with << may repeat
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                )
            seen.add(key_node.value)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_yaml(path: str | os.PathLike[str], origin: str) -> Any:
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise SettingsError(f"{origin}: cannot read the file: {reason}") from e
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as e:
        raise SettingsError(f"{origin}: not valid YAML: {_yaml_problem(e)}") from e


def _yaml_problem(error: yaml.YAMLError) -> str:
    if isinstance(error, yaml.MarkedYAMLError):
        words = " ".join(w for w in (error.context, error.problem) if w) or str(error)
        mark = error.problem_mark or error.context_mark
        if mark is not None:
            return f"{words} (line {mark.line + 1}, column {mark.column + 1})"
        return words
    return str(error).replace("\n", " ")


def _leaf_paths(data: Any, path: str = "") -> Iterator[str]:
    if isinstance(data, Mapping) and data:
        for key, value in data.items():
            yield from _leaf_paths(value, _join(path, str(key)))
    elif path:
        yield path


def env_name(key: str) -> str:
    """The environment variable of a dotted key: "selection.max_images" ->
    "PREPULL_SELECTION__MAX_IMAGES"."""
    return ENV_PREFIX + key.replace(".", "__").upper()


def _env_layer(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The environment as a YAML-shaped mapping, and the variable behind each dotted key."""
    data: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var in CLI_VARIABLES or var == TARGET_VARIABLE:
            continue
        rest = var[len(ENV_PREFIX) :]
        parts = rest.lower().split("__")
        if len(parts) == 1 and parts[0] not in _specs(Settings):
            continue  # not ours: e.g. PREPULL_AGENT_SERVICE_HOST from a Service's links
        cls: type = Settings
        for depth, part in enumerate(parts):
            path = ".".join(parts[: depth + 1])
            where = f"environment {var}"
            if part not in _specs(cls):
                under = ".".join(parts[:depth])
                raise SettingsError(f"{where}: no setting {path!r} ({_suggest(cls, part, under)})")
            spec = _specs(cls)[part]
            last = depth == len(parts) - 1
            if spec.item is not None:
                raise SettingsError(
                    f"{where}: {path} cannot be set from the environment; use "
                    f"{TARGET_VARIABLE}=NAMESPACE/NAME for one target, or the config file"
                )
            if last and spec.section is not None:
                first = next(iter(_specs(spec.section)))
                raise SettingsError(
                    f"{where}: {path} is a section; set its keys one by one, e.g. {env_name(_join(path, first))}"
                )
            if not last and spec.section is None:
                raise SettingsError(f"{where}: no setting {'.'.join(parts)!r} ({path} has no keys under it)")
            if not last:
                cls = spec.section
                continue
            assert spec.kind is not None
            try:
                value = spec.kind.from_text(env[var])
            except _Bad:
                raise SettingsError(f"{where}: {_must(cls, part, env[var], text=True)((path,))}") from None
            node = data
            for section in parts[:-1]:
                node = node.setdefault(section, {})
            node[part] = value
            origins[path] = where
    return data, origins


def _merge(base: Any, overlay: Mapping[str, Any]) -> Any:
    """`overlay` over `base`, section by section; a base that is not a mapping is kept so
    that its own error is reported."""
    if base is None:
        base = {}
    if not isinstance(base, Mapping):
        return base
    merged = dict(base)
    for key, value in overlay.items():
        merged[key] = _merge(merged.get(key), value) if isinstance(value, dict) else value
    return merged


def load_settings(path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None) -> Settings:
    """Defaults, then the YAML file at `path` (a mapping; an empty file is fine), then the
    `PREPULL_*` variables of `env` (default: `os.environ`), validated as a whole."""
    env = os.environ if env is None else env
    origin = f"config {os.fspath(path)}" if path is not None else "settings"
    data = _read_yaml(path, origin) if path is not None else None
    origins = dict.fromkeys(_leaf_paths(data), origin)
    overlay, env_origins = _env_layer(env)
    origins.update(env_origins)
    settings: Settings = _build(Settings, _merge(data, overlay), "", _Where(origin, origins))
    if TARGET_VARIABLE in env:
        settings = with_target(settings, env[TARGET_VARIABLE], origin=f"environment {TARGET_VARIABLE}")
    return settings


# ---------------------------------------------------------------------------------------
# The command-line layer


def with_target(settings: Settings, spec: str, *, origin: str = "target") -> Settings:
    """`settings` with one target, "NAMESPACE/NAME", that inherits `create` from the first
    target."""
    namespace, slash, name = spec.strip().partition("/")
    if not slash or not namespace or not name or "/" in name:
        raise SettingsError(f"{origin}: {spec!r} is not NAMESPACE/NAME (e.g. openshift-operators/image-puller)")
    try:
        target = Target(namespace=namespace, name=name, create=settings.targets[0].create)
    except _Invalid as e:
        raise SettingsError(f"{origin}: {spec!r}: {e.render(e.keys)}") from None
    return dataclasses.replace(settings, targets=(target,))


def with_overrides(settings: Settings, values: Mapping[str, Any], *, origin: str = "command line") -> Settings:
    """`settings` with dotted keys replaced by YAML-shaped values, e.g.
    `{"selection.max_images": 20, "serve.cron": "0 * * * *"}`, validated as a whole."""
    overlay: dict[str, Any] = {}
    for key, value in values.items():
        node = overlay
        *sections, leaf = key.split(".")
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = value
    merged = _merge(to_mapping(settings), overlay)
    return _build(Settings, merged, "", _Where(origin))  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------
# Back to YAML, and documentation


def _yaml_value(cls: type, name: str, value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, DiskBudget):
        return to_mapping(value)
    if isinstance(value, tuple):
        return [to_mapping(v) if dataclasses.is_dataclass(v) else v for v in value]
    if isinstance(value, DiskBudget):
        return value.to_yaml()
    if _specs(cls)[name].kind is _KINDS["quantity"]:
        return format_quantity(value)
    return value


def to_mapping(node: Any) -> dict[str, Any]:
    """A settings dataclass as YAML-shaped data that loads back to an equal value (for
    printing the effective configuration)."""
    cls = type(node)
    return {name: _yaml_value(cls, name, getattr(node, name)) for name in _specs(cls)}


def _yaml_text(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=1 << 16)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def describe() -> list[tuple[str, str, str]]:
    """(dotted key, default as YAML text, help) for every setting, in declaration order.
    The targets' keys appear as "targets[].namespace" etc. after "targets" itself."""
    rows: list[tuple[str, str, str]] = []

    def walk(cls: type, path: str) -> None:
        defaults = cls()
        for name, spec in _specs(cls).items():
            key = _join(path, name)
            if spec.section is not None:
                walk(spec.section, key)
                continue
            value = _yaml_value(cls, name, getattr(defaults, name))
            rows.append((key, _yaml_text(value), spec.help))
            if spec.item is not None:
                walk(spec.item, f"{key}[]")

    walk(Settings, "")
    return rows
