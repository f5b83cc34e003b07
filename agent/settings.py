"""The agent's settings: one validated, immutable `Settings` value.

Layers, each overriding the one before: the defaults declared here, a YAML file
(`config/default.yaml` documents every key), `PREPULL_*` environment variables, and the
command line (`--target` through `with_target`).

Every setting is declared once, as a field of a frozen pydantic dataclass with its type,
its constraints (in the `Annotated` type), a default and a one-line docstring. pydantic
(v2) validates in strict mode: no bool is an int, no "10" is a number, a list item is never
coerced; cross-field rules are model validators. A `Settings` that exists is valid however
it was made, whether loaded, constructed in code or copied with `dataclasses.replace`.

Hand-written here, because no library does them the way an administrator needs: the origin
of each key (file or environment variable) in messages, the did-you-mean hint for an
unknown key, the environment layer (pydantic-settings silently ignores a misspelt nested
variable and cannot read comma lists), and the YAML loader that refuses a repeated key. Every
error is a `SettingsError` naming where the value came from, the dotted key and what is
accepted, one line per problem, all problems of a file and the environment at once.

Environment variables: `PREPULL_` + the dotted key upper-cased with `.` as `__`
(`PREPULL_SELECTION__MAX_IMAGES=20`); lists are comma-separated; booleans are true/false,
yes/no or 1/0; `PREPULL_TARGET=NS/NAME` replaces the targets. A `PREPULL_*__*` variable
that names no key is an error. A variable without `__` is read only when it names a
top-level key, and otherwise ignored: Kubernetes injects `PREPULL_AGENT_SERVICE_HOST`-style
variables for a Service named `prepull-agent`.

What this module is not: it reads no cluster (the applications namespace's fallback to the
DSCInitialization is resolved by the observer) and parses no command line. Of image
references it checks only the pinned ones (with `agent.refs`), so a bad pin stops the agent
at start; exclude and deny patterns are globs, not references. Quantities are
`agent.quantity`'s.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC
from typing import Annotated, Any, Literal, TypeGuard, TypeVar, cast, dataclass_transform, get_args

import yaml
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.dataclasses import dataclass as pydantic_dataclass
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from agent.quantity import GiB, MiB, parse_quantity
from agent.refs import ImageRef, InvalidReference, parse_reference

__all__ = [
    "CLI_VARIABLES",
    "ENV_PREFIX",
    "DiskBudget",
    "KServe",
    "Kube",
    "LeaderElection",
    "Logging",
    "Puller",
    "References",
    "Selection",
    "Serve",
    "Settings",
    "SettingsError",
    "Sizes",
    "Sources",
    "Startup",
    "Target",
    "TARGET_VARIABLE",
    "Weights",
    "env_name",
    "load_settings",
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


class SettingsError(ValueError):
    """Settings are missing, unknown or invalid. Each problem says where, which key, and what
    is accepted, e.g. `config c.yaml: selection.max_images must be an integer >= 0, got
    'ten' (str)`; several are counted and listed one per line. `problems` holds them."""

    def __init__(self, *problems: str) -> None:
        lines = "".join(f"\n  {problem}" for problem in problems)
        super().__init__(problems[0] if len(problems) == 1 else f"{len(problems)} problems:{lines}")
        self.problems = problems


# ---------------------------------------------------------------------------------------
# What a value may be: constrained types, each saying what it accepts


@dataclasses.dataclass(frozen=True, slots=True)
class _Accepts:
    """`Annotated` metadata for messages: completes "KEY must be ..."."""

    text: str


class _Rule(ValueError):
    """A cross-field rule is broken. `text` names the fields involved as {0}, {1}...; the
    message gives them their dotted keys."""

    def __init__(self, text: str, *fields: str) -> None:
        super().__init__(text.format(*fields))
        self.text = text
        self.fields = fields


def _holds(ok: Callable[[Any], bool]) -> AfterValidator:
    def check(value: Any) -> Any:
        if not ok(value):
            raise ValueError()
        return value

    return AfterValidator(check)


_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_RULE = "lowercase letters, digits and '-', starting and ending with a letter or digit"


def _is_label(value: str) -> bool:
    return len(value) <= 63 and _LABEL.fullmatch(value) is not None


def _is_subdomain(value: str) -> bool:
    return len(value) <= 253 and all(_is_label(part) for part in value.split("."))


def _cron(expression: str) -> str:
    if not expression:
        return expression
    fields = expression.split()
    if len(fields) == 5 and re.search(r"\d", fields[4]):
        raise ValueError(
            "write the weekday field with names (sun, mon-fri): APScheduler 3 counts "
            "weekday 0 as Monday, cron counts it as Sunday"
        )

    from apscheduler.triggers.cron import CronTrigger  # only when a cron is set

    CronTrigger.from_crontab(expression, timezone=UTC)  # its ValueError says what is wrong
    return expression


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list | tuple) and all(isinstance(v, str) and v.strip() for v in value):
        return tuple(v.strip() for v in value)
    raise ValueError()


_REGISTRY = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*(:\d{1,5})?")


def _registries(value: Any) -> tuple[str, ...]:
    hosts = tuple(v.lower() for v in _strings(value))
    if not all(_REGISTRY.fullmatch(host) for host in hosts):
        raise ValueError()
    return hosts


def _references(value: Any) -> tuple[str, ...]:
    texts = _strings(value)
    for text in texts:
        try:
            parse_reference(text)
        except InvalidReference as e:
            raise ValueError(f"{text!r} {e.reason}") from None
    return texts


def _size(value: Any) -> Any:
    if isinstance(value, bool):
        return value  # refused as not an integer
    try:
        return parse_quantity(value)
    except ValueError:
        raise ValueError() from None


_Strict = Strict()
_Finite = Field(allow_inf_nan=False)
Flag = Annotated[bool, _Strict, _Accepts("true or false")]
Count = Annotated[int, _Strict, Field(ge=0), _Accepts("an integer >= 0")]
Positive = Annotated[int, _Strict, Field(ge=1), _Accepts("an integer >= 1")]
PageSize = Annotated[int, _Strict, Field(ge=1, le=5000), _Accepts("an integer from 1 to 5000")]
Port = Annotated[int, _Strict, Field(ge=1, le=65535), _Accepts("an integer from 1 to 65535")]
Score = Annotated[float, _Strict, _Finite, Field(ge=0), _Accepts("a number >= 0")]
Seconds = Annotated[float, _Strict, _Finite, Field(gt=0), _Accepts("a number > 0")]
SecondsOrOff = Annotated[float, _Strict, _Finite, Field(ge=0), _Accepts("a number >= 0 (0: off)")]
Margin = Annotated[float, _Strict, _Finite, Field(ge=0, lt=1), _Accepts("a number >= 0 and < 1")]
Share = Annotated[float, _Strict, _Finite, Field(gt=0, le=1), _Accepts("a number > 0 and <= 1")]
Factor = Annotated[float, _Strict, _Finite, Field(ge=1), _Accepts("a number >= 1")]
Size = Annotated[int, _Strict, Field(gt=0), BeforeValidator(_size), _Accepts("a size (6Gi, 200Mi, 500M or bytes) > 0")]
Strings = Annotated[tuple[str, ...], BeforeValidator(_strings), _Accepts("a list of non-empty strings")]
ImageRefs = Annotated[
    tuple[str, ...], BeforeValidator(_references), _Accepts("a list of image references such as quay.io/org/image:tag")
]
_REGISTRY_RULE = "each a domain with an optional port (e.g. quay.io, registry.example.com:5000), without scheme or path"
Registries = Annotated[
    tuple[str, ...], BeforeValidator(_registries), _Accepts(f"a list of registry hosts, {_REGISTRY_RULE}")
]
_NAMESPACE = f"a namespace name (DNS-1123 label: {_LABEL_RULE}, at most 63 characters)"
Namespace = Annotated[str, _Strict, _holds(_is_label), _Accepts(_NAMESPACE)]
OptionalNamespace = Annotated[str, _Strict, _holds(lambda v: not v or _is_label(v)), _Accepts("empty or " + _NAMESPACE)]
_NAME = f"an object name (DNS-1123 subdomain: {_LABEL_RULE}, with '.' between parts, at most 253 characters)"
Name = Annotated[str, _Strict, _holds(_is_subdomain), _Accepts(_NAME)]
_PREFIX = "empty, or the start of an object name (lowercase letters, digits, '-' and '.')"
NamePrefix = Annotated[
    str, _Strict, _holds(lambda v: len(v) <= 200 and re.fullmatch(r"([a-z0-9][-a-z0-9.]*)?", v) is not None),
    _Accepts(_PREFIX),
]
_CRON = "empty or a 5-field crontab expression (minute hour day month weekday, e.g. '0 */6 * * *')"
Cron = Annotated[str, _Strict, AfterValidator(_cron), _Accepts(_CRON)]

_S = TypeVar("_S")
#: A section: read key by key; written with no keys (`selection:`) it keeps its defaults.
Section = Annotated[_S, BeforeValidator(lambda value: {} if value is None else value)]


# ---------------------------------------------------------------------------------------
# The settings classes


# Strict per type (above), not here, so that sections can be read from mappings.
_CONFIG = ConfigDict(extra="forbid", use_attribute_docstrings=True)
_T = TypeVar("_T")


@dataclass_transform(frozen_default=True, field_specifiers=(Field,))
def _settings(cls: type[_T]) -> type[_T]:
    """A frozen, slotted pydantic dataclass whose construction in code raises
    `SettingsError` (with bare field names) instead of pydantic's `ValidationError`."""
    made = cast(type[_T], pydantic_dataclass(cls, frozen=True, slots=True, config=_CONFIG))
    validate = made.__init__

    @functools.wraps(validate)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            validate(self, *args, **kwargs)
        except ValidationError as e:
            raise SettingsError(*_problems(e, made, _Where(""))) from None

    setattr(made, "__init__", __init__)  # noqa: B010 - mypy refuses assigning a method
    return made


@_settings
class Target:
    """One KubernetesImagePuller CR the agent keeps current."""

    namespace: Namespace = "openshift-operators"
    """namespace of the KubernetesImagePuller"""
    name: Name = "image-puller"
    """name of the KubernetesImagePuller"""
    create: Flag = False
    """create the KubernetesImagePuller if it is missing (else an error)"""

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@_settings
class DiskBudget:
    """How much node disk the listed images may take: a fixed number of bytes, a fraction of
    the smallest target node's ephemeral storage, or unlimited (both None).

    In YAML: bytes (120000000000), a quantity ("120Gi", "500M", "1.5Ti"), a percentage
    ("25%"), a fraction below 1 (0.25 or "0.25"), or "unlimited" / null. When `bytes` is set
    it wins and `fraction` is cleared, so `DiskBudget(bytes=n)` means just n bytes.
    """

    bytes: Annotated[int | None, _Strict, Field(gt=0), _Accepts("an integer > 0")] = None
    """fixed budget in bytes (wins over fraction)"""
    fraction: Annotated[float | None, _Strict, _Finite, Field(gt=0, le=1), _Accepts("a number > 0 and <= 1")] = 0.3
    """budget as a fraction of the smallest target node's ephemeral-storage capacity"""

    @model_validator(mode="after")
    def _bytes_win(self) -> DiskBudget:
        if self.bytes is not None and self.fraction is not None:
            object.__setattr__(self, "fraction", None)  # frozen: this is the only write
        return self

    def resolve(self, smallest_node_capacity: int | None) -> int | None:
        """The budget in bytes, or None when there is none (unlimited, or a fraction of a
        capacity that no node reported)."""
        if self.bytes is not None:
            return self.bytes
        if self.fraction is None or smallest_node_capacity is None:
            return None
        return math.floor(smallest_node_capacity * self.fraction)


_DECIMAL = re.compile(r"\d+\.\d*|\.\d+")


def _budget(value: Any) -> DiskBudget:
    """A DiskBudget from a YAML value; a ValueError says why not, when there is a reason."""
    if isinstance(value, DiskBudget):
        return value
    if value is None or (isinstance(value, str) and value.strip().lower() in ("unlimited", "none")):
        return DiskBudget(fraction=None)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError()
    if isinstance(value, int):
        if value <= 0:
            raise ValueError("a budget must be above 0; use 'unlimited' for none")
        return DiskBudget(bytes=value)
    if isinstance(value, float):
        if 0 < value < 1:
            return DiskBudget(fraction=value)
        raise ValueError(
            "a plain number must be a fraction above 0 and below 1; write larger budgets as a size or a percentage"
        )
    return _budget_text(value.strip())


def _budget_text(text: str) -> DiskBudget:
    if text.endswith("%"):
        try:
            percent = float(text[:-1])
        except ValueError:
            raise ValueError() from None
        if not 0 < percent <= 100:
            raise ValueError("a percentage must be above 0 and at most 100")
        return DiskBudget(fraction=percent / 100)
    if _DECIMAL.fullmatch(text):
        return _budget(float(text))
    try:
        return _budget(parse_quantity(text))
    except ValueError:
        raise ValueError() from None


_BUDGET = "a size (120Gi, 500M or bytes), a percentage (25%), a fraction below 1 (0.25) or 'unlimited'"
Budget = Annotated[DiskBudget, BeforeValidator(_budget), _Accepts(_BUDGET)]


@_settings
class Selection:
    """Which images make the list."""

    max_images: Count = 15
    """most images in the list"""
    min_score: Score = 2.0
    """images scoring below this are left out"""
    disk_budget: Budget = DiskBudget()
    """total size the listed images may take on a node: 120Gi, 25% or unlimited"""
    retain_margin: Margin = 0.25
    """a listed image stays until it scores this fraction below what would replace it"""
    max_per_namespace: Count = 3
    """most selected images used by only one single namespace (0: no limit)"""
    max_namespace_share: Share = 0.5
    """most of the disk budget the images used by only one single namespace may take"""
    pinned: ImageRefs = ()
    """image references always in the list"""
    exclude: Strings = ()
    """glob patterns over the normalised reference; matching images are always left out"""

    @property
    def pinned_refs(self) -> tuple[ImageRef, ...]:
        """`pinned` as canonical references (checked when the settings were made)."""
        return tuple(parse_reference(text) for text in self.pinned)


_STATE_FIELDS = {
    "running": "running",
    "starting": "starting",
    "stopped": "stopped",
    "ready": "ready",
    "not-ready": "not_ready",
    "recommended": "recommended",
    "offered": "offered",
    "outdated": "outdated",
    "defined": "defined",
}


@_settings
class Weights:
    """Score added per object using an image, by how it uses it."""

    running: Score = 10.0
    """per running workbench (its status says a replica is ready or its container runs)"""
    starting: Score = 5.0
    """per workbench that should run but does not yet (pending, pulling its image, failing)"""
    stopped: Score = 2.0
    """per stopped workbench"""
    ready: Score = 10.0
    """per Ready model server (InferenceService)"""
    not_ready: Score = 3.0
    """per model server that is not Ready"""
    recommended: Score = 5.0
    """for the recommended tag of a workbench image offered to new users"""
    offered: Score = 1.0
    """for any other offered workbench image tag"""
    outdated: Score = 0.0
    """for an outdated tag or hidden stream (counts only when something uses it)"""
    defined: Score = 1.0
    """per serving runtime or runtime template that exists"""

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
    "storage-initializer": "storage_initializer",
    "router": "router",
}
# Roles whose images come in CPU and accelerator builds of very different sizes.
_ACCELERATED_FIELDS = {"workbench": "workbench_accelerated", "serving-runtime": "serving_runtime_accelerated"}


@_settings
class Sizes:
    """Size estimates by role, used when no node reports an image's size."""

    workbench: Size = 4 * GiB
    """a CPU workbench image"""
    workbench_accelerated: Size = 12 * GiB
    """a workbench image recommended for, or requesting, an accelerator (CUDA, ROCm, Gaudi)"""
    sidecar: Size = 200 * MiB
    """a sidecar image (e.g. kube-rbac-proxy)"""
    pipeline_runtime: Size = 3 * GiB
    """a pipeline runtime image"""
    serving_runtime: Size = 4 * GiB
    """a CPU model serving runtime image"""
    serving_runtime_accelerated: Size = 20 * GiB
    """a model serving runtime image recommended for, or requesting, an accelerator"""
    modelcar: Size = 10 * GiB
    """a ModelCar (model weights as an image)"""
    custom_container: Size = 4 * GiB
    """a custom container of a model server"""
    storage_initializer: Size = 1 * GiB
    """KServe's storage initializer (the init container that downloads a model)"""
    router: Size = 1 * GiB
    """an LLMInferenceService's scheduler (endpoint picker)"""

    def for_role(self, role: str, *, accelerated: bool = False) -> int:
        """The estimate for an image role ("workbench", "serving-runtime", ...;
        `agent.model.Role`); `accelerated`: for an image recommended for or requesting an
        accelerator (only workbenches and serving runtimes have their own estimate)."""
        try:
            name = _ROLE_FIELDS[role]
        except KeyError:
            raise ValueError(f"unknown image role {role!r}; expected one of {', '.join(_ROLE_FIELDS)}") from None
        if accelerated:
            name = _ACCELERATED_FIELDS.get(role, name)
        return int(getattr(self, name))

    def largest(self, *, accelerated: bool = False) -> int:
        """The largest estimate of any role; `accelerated`: the accelerated ones included
        (without, only what a pod that needs no accelerator can be estimated at)."""
        names = [f.name for f in dataclasses.fields(self)]
        if not accelerated:
            names = [n for n in names if n not in _ACCELERATED_FIELDS.values()]
        return max(int(getattr(self, n)) for n in names)


@_settings
class References:
    """Which image references are acceptable at all."""

    allowed_registries: Registries = ()
    """only images from these registries (domain[:port]); empty: any registry"""
    deny: Strings = ()
    """glob patterns; matching references are rejected like invalid ones"""


@_settings
class Sources:
    """Which kinds of objects to scan."""

    imagestreams: Flag = True
    """workbench and pipeline runtime ImageStreams"""
    notebooks: Flag = True
    """workbenches (Notebook)"""
    servingruntimes: Flag = True
    """ServingRuntimes in project namespaces"""
    clusterservingruntimes: Flag = True
    """ClusterServingRuntimes"""
    templates: Flag = True
    """serving runtime templates (OpenShift Templates)"""
    inferenceservices: Flag = True
    """model servers (InferenceService)"""
    llminferenceservices: Flag = True
    """LLM model servers (LLMInferenceService)"""
    llminferenceserviceconfigs: Flag = True
    """the LLMInferenceServiceConfigs LLM model servers take their images from"""
    clusterstoragecontainers: Flag = True
    """ClusterStorageContainers (they may replace the storage initializer's image)"""
    storage_initializer: Flag = True
    """KServe's inferenceservice-config ConfigMap: the storage initializer's image"""
    nodes: Flag = True
    """Nodes: image sizes and ephemeral-storage capacity"""


@_settings
class Startup:
    """Start-up time saved, from the kubelet's Pulled events (`agent.startup`)."""

    enabled: Flag = True
    """read the kubelet's Pulled events: start-up figures, and ranking by pull time"""
    summary_name: Name = "prepull-agent-startup"
    """the ConfigMap that keeps the start-up summary (serve writes it, once only reads it)"""
    summary_namespace: OptionalNamespace = ""
    """its namespace; empty: the pod's own (POD_NAMESPACE), else prepull-agent"""
    max_events: Positive = 100_000
    """most Pulled events read in one cycle"""
    max_events_per_namespace: Positive = 2_000
    """most Pulled events read from one namespace in one cycle"""
    assumed_pull_rate: Size = 50 * MiB
    """bytes per second a pull is assumed to take until the kubelet reports a pull with its size"""
    max_rank_factor: Factor = 4.0
    """most a measured pull time may raise or lower an image's rank value (as a factor)"""


@_settings
class KServe:
    """Where KServe keeps its own configuration."""

    namespace: OptionalNamespace = ""
    """KServe's namespace (inferenceservice-config, well-known LLM configs); empty: the applications namespace"""
    llm_config_prefix: NamePrefix = "kserve-"
    """prefix of the well-known LLMInferenceServiceConfig names, for services KServe has not recorded them in yet"""


@_settings
class Kube:
    """How the agent talks to the API server."""

    page_size: PageSize = 500
    """objects per list request"""
    request_timeout_seconds: Seconds = 30.0
    """timeout of each API request, in seconds"""


@_settings
class LeaderElection:
    """Only one replica of the agent writes; the others wait on a Lease."""

    enabled: Flag = True
    """elect a leader with a Lease before writing"""
    lease_name: Name = "prepull-agent"
    """name of the Lease"""
    lease_namespace: OptionalNamespace = ""
    """namespace of the Lease; empty: the pod's namespace (POD_NAMESPACE)"""
    lease_duration_seconds: Seconds = 30.0
    """how long a leader's lease lasts without renewal, in seconds"""
    renew_deadline_seconds: Seconds = 20.0
    """how long the leader keeps trying to renew before it steps down, in seconds"""
    retry_period_seconds: Seconds = 4.0
    """pause between attempts to acquire or renew, in seconds"""

    @model_validator(mode="after")
    def _renews_in_time(self) -> LeaderElection:
        d, r, p = self.lease_duration_seconds, self.renew_deadline_seconds, self.retry_period_seconds
        if d > r > p:
            return self
        keys = ("lease_duration_seconds", "renew_deadline_seconds", "retry_period_seconds")
        (high, low), (above, below) = (keys[:2], (d, r)) if d <= r else (keys[1:], (r, p))
        raise _Rule(
            f"{{0}} ({above:g}) must be greater than {{1}} ({below:g}): "
            "a leader renews its lease before it expires, and retries several times meanwhile",
            high,
            low,
        )


@_settings
class Serve:
    """The long-running mode (`serve`)."""

    interval_seconds: Seconds = 900.0
    """seconds between cycles"""
    cron: Cron = ""
    """5-field crontab schedule; when set it replaces interval_seconds"""
    max_consecutive_failures: Positive = 5
    """failed cycles in a row before the agent reports itself unhealthy"""
    port: Port = 8080
    """port of the health and metrics endpoint"""
    leader_election: Section[LeaderElection] = LeaderElection()
    """leader election between replicas"""


@_settings
class Puller:
    """How the agent treats the puller it writes for: how often it may make it roll out, and
    how long it waits for the puller to show a change before it warns."""

    min_write_interval_seconds: SecondsOrOff = 300.0
    """seconds between two writes of one target; a change within them waits (0: off)"""
    sync_grace_seconds: Seconds = 600.0
    """seconds the puller's DaemonSet may be missing or out of sync before the agent warns"""


@_settings
class Logging:
    """Log output."""

    format: Annotated[Literal["auto", "console", "json"], _Accepts("one of auto, console, json")] = "auto"
    """auto, console or json (auto: console on a terminal, json otherwise)"""
    level: Annotated[
        Literal["debug", "info", "warning", "error"], _Accepts("one of debug, info, warning, error")
    ] = "info"
    """debug, info, warning or error"""


Targets = Annotated[
    tuple[Target, ...],
    Field(min_length=1),
    _Accepts("a non-empty list of mappings with keys create, name, namespace"),
]


@_settings
class Settings:
    """Everything the agent can be told."""

    applications_namespace: OptionalNamespace = ""
    """OpenShift AI's applications namespace; empty: from the DSCInitialization, else redhat-ods-applications"""
    targets: Targets = (Target(),)
    """the KubernetesImagePullers to keep current (at least one, each once)"""
    selection: Section[Selection] = Selection()
    """which images make the list"""
    weights: Section[Weights] = Weights()
    """score per object using an image, by how it uses it"""
    sizes: Section[Sizes] = Sizes()
    """image size estimates by role, when no node reports the size"""
    references: Section[References] = References()
    """which image references are acceptable"""
    sources: Section[Sources] = Sources()
    """which kinds of objects to scan"""
    startup: Section[Startup] = Startup()
    """start-up time saved, from the kubelet's Pulled events"""
    kserve: Section[KServe] = KServe()
    """where KServe keeps its own configuration"""
    kube: Section[Kube] = Kube()
    """API server requests"""
    serve: Section[Serve] = Serve()
    """the long-running mode"""
    puller: Section[Puller] = Puller()
    """writes to the puller and what the agent expects of it"""
    logging: Section[Logging] = Logging()
    """log output"""

    @model_validator(mode="after")
    def _one_target_per_namespace(self) -> Settings:
        """Each target once, and one per namespace: the image puller operator's webhook
        refuses a second KubernetesImagePuller in a namespace, so one puller per node pool
        means one namespace per pool."""
        seen: dict[str, tuple[int, Target]] = {}
        for i, target in enumerate(self.targets):
            first, other = seen.setdefault(target.namespace, (i, target))
            if first == i:
                continue
            if other.name == target.name:
                raise _Rule(f"{{0}} repeats {target} (already targets[{first}])", f"targets[{i}]")
            raise _Rule(
                f"{{0}} is a second KubernetesImagePuller in namespace {target.namespace} (targets[{first}] is "
                f"{other}): the image puller operator allows one per namespace, so give each node pool's puller "
                "a namespace of its own",
                f"targets[{i}]",
            )
        return self


# ---------------------------------------------------------------------------------------
# Messages: pydantic's errors told with origins, dotted keys and what is accepted


def _fields(cls: type) -> dict[str, FieldInfo]:
    """The fields of a settings class by name, in declaration order."""
    return cast(dict[str, FieldInfo], cls.__pydantic_fields__)  # type: ignore[attr-defined]


def _is_section(kind: Any) -> TypeGuard[type]:
    """A settings class read key by key (DiskBudget is one as well, but one YAML value)."""
    return isinstance(kind, type) and hasattr(kind, "__pydantic_fields__") and kind is not DiskBudget


def _item(kind: Any) -> type | None:
    """The settings class of a `tuple[X, ...]` of sections (targets), else None."""
    args = get_args(kind)
    return args[0] if len(args) == 2 and args[1] is Ellipsis and _is_section(args[0]) else None


def _section_of(node: type | FieldInfo | None) -> type | None:
    """The settings class that `node` (a class, or a field) reads key by key, if any."""
    if isinstance(node, FieldInfo):
        return node.annotation if _is_section(node.annotation) else None
    return node


def _at(root: type, loc: tuple[int | str, ...]) -> type | FieldInfo | None:
    """What `loc` points at under `root`: a settings class (the root, or one of the
    targets), a field, or None."""
    node: type | FieldInfo | None = root
    for part in loc:
        section = _section_of(node)
        if isinstance(part, int):
            node = _item(node.annotation) if isinstance(node, FieldInfo) else None
        elif section is not None and part in _fields(section):
            node = _fields(section)[part]
        else:
            return None
    return node


def _dotted(loc: tuple[int | str, ...]) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else str(part)
    return key


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind_of_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "a list" if value else "an empty list"
    return "a mapping" if isinstance(value, dict) else f"{value!r} ({type(value).__name__})"


def _suggest(cls: type, key: str, path: str) -> str:
    names = list(_fields(cls))
    close = difflib.get_close_matches(key, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    under = f"known keys under {path!r}" if path else "known top-level keys"
    return f"{hint}{under}: {', '.join(sorted(names))}"


def _problems(error: ValidationError, root: type, where: _Where) -> list[str]:
    """One line per problem; an error about a list whose items have their own is left out
    (pydantic adds "too short" when no item of the targets was valid)."""
    details = error.errors()
    inner = {tuple(d["loc"][:n]) for d in details for n in range(len(d["loc"]))}
    return [_problem(d, root, where) for d in details if tuple(d["loc"]) not in inner]


def _problem(error: ErrorDetails, root: type, where: _Where) -> str:
    loc = tuple(error["loc"])
    key = _dotted(loc)
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, _Rule):
        keys = [_join(key, name) for name in cause.fields]
        return where.prefix(*keys) + cause.text.format(*keys)
    if error["type"] in ("unexpected_keyword_argument", "extra_forbidden", "invalid_key"):
        path = _dotted(loc[:-1])
        key = _join(path, str(loc[-1]))
        section = _section_of(_at(root, loc[:-1])) or root
        return where.prefix(key) + f"unknown key {key!r} ({_suggest(section, str(loc[-1]), path)})"
    node, value = _at(root, loc), error["input"]
    if node is None:  # not a place a setting can be: pydantic's own words
        return where.prefix(key) + f"{key}: {error['msg']}"
    if _section_of(node) is not None:
        return where.prefix(key) + f"{key or 'the top level'} must be a mapping of keys, got {_kind_of_value(value)}"
    assert isinstance(node, FieldInfo)
    accepts = next(m.text for m in node.metadata if isinstance(m, _Accepts))
    got = _kind_of_value(value) if _item(node.annotation) else f"{value!r} ({type(value).__name__})"
    detail = f": {cause}" if cause is not None and str(cause) else ""
    return where.prefix(key) + f"{key} must be {accepts}, got {got}{detail}"


class _Where:
    """Which layer each dotted key came from, for error messages."""

    def __init__(self, fallback: str, origins: Mapping[str, str] | None = None) -> None:
        self.fallback = fallback
        self.origins = dict(origins or {})

    def prefix(self, *keys: str) -> str:
        """"ORIGIN, ORIGIN: " for the layers that set `keys` (none in code: "")."""
        found: list[str] = []
        for key in keys:
            origin = self._lookup(key)
            if origin and origin not in found:
                found.append(origin)
        origins = ", ".join(found) or self.fallback
        return f"{origins}: " if origins else ""

    def _lookup(self, key: str) -> str | None:
        while key:
            if key in self.origins:
                return self.origins[key]
            parent = re.fullmatch(r"(.*)(\.[^.\[\]]+|\[\d+\])", key)
            key = parent[1] if parent else ""
        return None


# ---------------------------------------------------------------------------------------
# The YAML file


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


# ---------------------------------------------------------------------------------------
# The environment


def env_name(key: str) -> str:
    """The environment variable of a dotted key: "selection.max_images" ->
    "PREPULL_SELECTION__MAX_IMAGES"."""
    return ENV_PREFIX + key.replace(".", "__").upper()


def _env_field(parts: list[str], var: str) -> FieldInfo:
    """The leaf field that the variable `var` (split into `parts`) names; raises
    SettingsError when it names none."""
    cls: type = Settings
    for depth, part in enumerate(parts):
        path, last = ".".join(parts[: depth + 1]), depth == len(parts) - 1
        where = f"environment {var}"
        if part not in _fields(cls):
            raise SettingsError(f"{where}: no setting {path!r} ({_suggest(cls, part, '.'.join(parts[:depth]))})")
        field = _fields(cls)[part]
        section = _section_of(field)
        if _item(field.annotation):
            raise SettingsError(
                f"{where}: {path} cannot be set from the environment; use "
                f"{TARGET_VARIABLE}=NAMESPACE/NAME[,NAMESPACE/NAME...] for the targets, or the config file"
            )
        if section is None:
            if not last:
                raise SettingsError(f"{where}: no setting {'.'.join(parts)!r} ({path} has no keys under it)")
            return field
        if last:
            example = env_name(_join(path, next(iter(_fields(section)))))
            raise SettingsError(f"{where}: {path} is a section; set its keys one by one, e.g. {example}")
        cls = section
    raise AssertionError("unreachable: parts is never empty")


_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _from_text(field: FieldInfo, text: str) -> Any:
    """The YAML-like value that environment text spells for `field`; text that spells none
    stays text, so that the message shows what was given."""
    kind = field.annotation
    word = text.strip()
    if kind is bool:
        return _WORDS.get(word.lower(), text)
    if kind is int:
        try:
            return int(word)
        except ValueError:
            return text
    if kind is float:
        try:
            number = float(word)
        except ValueError:
            return text
        return number if math.isfinite(number) else text
    if get_args(kind)[1:] == (Ellipsis,):
        return [item.strip() for item in text.split(",") if item.strip()]
    return text


def _env_layer(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """The environment as a YAML-shaped mapping, the variable behind each dotted key, and the
    variables that name no setting."""
    data: dict[str, Any] = {}
    origins: dict[str, str] = {}
    problems: list[str] = []
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var in CLI_VARIABLES or var == TARGET_VARIABLE:
            continue
        parts = var[len(ENV_PREFIX) :].lower().split("__")
        if len(parts) == 1 and parts[0] not in _fields(Settings):
            continue  # not ours: e.g. PREPULL_AGENT_SERVICE_HOST from a Service's links
        try:
            field = _env_field(parts, var)
        except SettingsError as e:
            problems.append(str(e))
            continue
        node = data
        for section in parts[:-1]:
            node = node.setdefault(section, {})
        node[parts[-1]] = _from_text(field, env[var])
        origins[".".join(parts)] = f"environment {var}"
    return data, origins, problems


# ---------------------------------------------------------------------------------------
# Loading


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
    `PREPULL_*` variables of `env` (default: `os.environ`), validated as a whole. Every
    problem is reported, one line each, in one SettingsError."""
    env = os.environ if env is None else env
    origin = f"config {os.fspath(path)}" if path is not None else "settings"
    data = _read_yaml(path, origin) if path is not None else None
    overlay, env_origins, problems = _env_layer(env)
    where = _Where(origin, {**dict.fromkeys(_leaf_paths(data), origin), **env_origins})
    try:
        settings = _SETTINGS.validate_python(_merge(data, overlay))
    except ValidationError as e:
        problems += _problems(e, Settings, where)
    if problems:
        raise SettingsError(*problems)
    if TARGET_VARIABLE in env:
        settings = with_target(settings, env[TARGET_VARIABLE], origin=f"environment {TARGET_VARIABLE}")
    return settings


def with_target(settings: Settings, spec: str, *, origin: str = "target") -> Settings:
    """`settings` with the targets of `spec`: "NAMESPACE/NAME", or several separated by
    commas (one per node pool, each in its own namespace), each inheriting `create` from the
    first configured target."""
    targets = []
    for part in spec.split(","):
        namespace, slash, name = part.strip().partition("/")
        if not slash or not namespace or not name or "/" in name:
            raise SettingsError(
                f"{origin}: {part.strip()!r} is not NAMESPACE/NAME (e.g. openshift-operators/image-puller; "
                "several targets are separated by commas)"
            )
        try:
            targets.append(Target(namespace=namespace, name=name, create=settings.targets[0].create))
        except SettingsError as e:
            raise SettingsError(f"{origin}: {part.strip()!r}: {e}") from None
    try:
        return dataclasses.replace(settings, targets=tuple(targets))
    except SettingsError as e:
        raise SettingsError(f"{origin}: {spec!r}: {e}") from None


_SETTINGS = TypeAdapter(Settings)
