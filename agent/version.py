"""The agent's version and identity: `--version`, the start line, `prepull_agent_build_info`,
and the names it gives itself on the API server (the User-Agent of every request, the field
manager of every write, the controller named in its Events)."""

from __future__ import annotations

import platform
from importlib import metadata

try:
    VERSION = metadata.version("prepull-agent")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    VERSION = "0+unknown"

PYTHON = platform.python_version()

# The field manager of every write (`?fieldManager=`): `managedFields` and the audit log name
# the agent, and the planner reads the time of the agent's last write of a target from it.
FIELD_MANAGER = "prepull-agent"
# Sent on every request (the audit log's userAgent); "name/version" as kubectl sends it.
USER_AGENT = f"prepull-agent/{VERSION} (python/{PYTHON})"
# `reportingController` of the Events the agent posts (a qualified name, as the API requires).
EVENT_CONTROLLER = "prepull-agent.io/prepull-agent"
