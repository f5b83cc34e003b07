"""The exit codes of `prepull-agent once` and `prepull-agent serve`: one table for both.

`Exit` is what the processes return; `TABLE` is the text `--help` prints and the README
documents (a test keeps the README's table equal to this one). The CronJob's
`podFailurePolicy` (manifests/overlays/cronjob) maps some of them to "do not retry".

What this module is not: it decides no exit code. `agent.cli` maps a finished or failed
`once` to one, `agent.loop` ends `serve` with one.
"""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    UNREACHABLE = 3
    TARGET = 4
    WRITE = 5
    SERVE_FAILURES = 6
    LEADERSHIP_LOST = 7
    PARTIAL = 8


#: What each code means, as `--help` and the README say it.
MEANING: dict[Exit, str] = {
    Exit.OK: "success: the list is current (changed or not), every enabled kind was listed",
    Exit.ERROR: "unexpected error (a bug: please report it with the log)",
    Exit.USAGE: "bad command line, environment variable or configuration, or serve's port is in use",
    Exit.UNREACHABLE: "no usable kubeconfig, the API server does not answer, or it refused the credentials (401)",
    Exit.TARGET: "the KubernetesImagePuller is missing, unreadable or access to it is denied",
    Exit.WRITE: "the list could not be written (denied, refused by admission, conflict twice, not kept)",
    Exit.SERVE_FAILURES: "serve: serve.max_consecutive_failures failed cycles in a row",
    Exit.LEADERSHIP_LOST: "serve: the leader lost its Lease (the pod restarts as a standby)",
    Exit.PARTIAL: "once: done (written, up to date, or planned), but some kinds could not be listed",
}


def table() -> str:
    """The exit codes, one per line: `  N  meaning`."""
    return "\n".join(f"  {int(code)}  {MEANING[code]}" for code in Exit)
