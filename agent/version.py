"""The agent's version, for `--version`, the start line and `prepull_agent_build_info`."""

from __future__ import annotations

import platform
from importlib import metadata

try:
    VERSION = metadata.version("prepull-agent")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    VERSION = "0+unknown"

PYTHON = platform.python_version()
