"""agent.events.begin: when it asks the API server at all (the listing itself is tested on
the real API server, tests/integration/test_pulled_events.py)."""

from __future__ import annotations

from typing import Any, cast

from agent.events import StartupStore, begin
from agent.kube.client import Kube
from agent.resolve import Inventory
from agent.settings import Settings
from agent.sources import Observation


class NeverAsked:
    """Any use of it fails the test: the API server must not be asked."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the API server was asked ({name})")


def test_no_events_are_listed_once_the_api_server_stopped_answering():
    observation = Observation(applications_namespace="redhat-ods-applications",
                              unreachable="connection refused")
    store = StartupStore(namespace="prepull-agent", name="prepull-agent-startup", writable=True)
    inventory = Inventory(usages=(), rejections=(), problems=())
    pulls = begin(cast(Kube, NeverAsked()), Settings(), store, observation, inventory, nodes=None)
    assert pulls is None
