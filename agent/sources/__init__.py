"""Sources: one module per kind of object, object JSON in, usage records out.

The readers are pure functions over plain dicts; `agent.observe` feeds them what it lists.
`Observation` is everything a cycle learned, the input of `agent.resolve` and the planner.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.sources.common import Findings
from agent.sources.imagestreams import StreamFindings
from agent.sources.kserve import KServeFindings
from agent.sources.llm import LLMFindings
from agent.sources.nodes import NodeFindings
from agent.sources.serving import ServingFindings


@dataclass
class Observation:
    """Everything one cycle learned from the cluster, before planning."""

    applications_namespace: str
    streams: StreamFindings = field(default_factory=StreamFindings)
    workloads: Findings = field(default_factory=Findings)
    serving: ServingFindings = field(default_factory=ServingFindings)
    llm: LLMFindings = field(default_factory=LLMFindings)
    kserve: KServeFindings = field(default_factory=KServeFindings)  # inferenceservice-config, ClusterStorageContainers
    kserve_namespace: str = ""  # where KServe keeps its configuration ("": the applications namespace)
    nodes: NodeFindings = field(default_factory=NodeFindings)
    listed: dict[str, int] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    unreachable: str = ""  # set when a request got no answer at all: later sources are not tried
