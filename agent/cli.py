"""The command line: `prepull-agent once` and `prepull-agent serve`.

Parses flags (each with a `PREPULL_*` environment fallback), loads the settings, sets up
logging and the connection, runs, and maps every failure to an exit code with a message
that says what to fix. Nothing else lives here.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import structlog

from agent import logs
from agent.apply import TargetMissing
from agent.kube.client import ConfigError, Kube, connect
from agent.kube.errors import Forbidden, KubeError, Unauthorized, Unreachable
from agent.puller import InvalidPullerCR
from agent.settings import Settings, SettingsError, load_settings, with_target

EXIT_OK = 0
EXIT_ERROR = 1  # unexpected failure (a bug: please report it)
EXIT_USAGE = 2  # bad command line or configuration
EXIT_UNREACHABLE = 3  # no kubeconfig, API server unreachable, or credentials refused
EXIT_TARGET = 4  # the KubernetesImagePuller is missing or unreadable
EXIT_WRITE = 5  # the puller could not be written (denied, conflict twice, not kept)
EXIT_SERVE_FAILURES = 6  # serve: too many failed cycles in a row
EXIT_LEADERSHIP_LOST = 7  # serve: the lease was lost; the kubelet restarts the pod as a follower

DESCRIPTION = """\
Keep the Kubernetes Image Puller's list current with the images OpenShift AI users really
start: workbench images (ImageStreams, Notebooks), serving runtimes (ServingRuntimes,
ClusterServingRuntimes, runtime Templates) and ModelCar images of InferenceServices. It
ranks them by use, fits them to the nodes' disk, and writes the KubernetesImagePuller's
spec.images, keeping every entry an administrator wrote.
"""

EPILOG = """\
examples:
  prepull-agent once --dry-run                  show the ranked plan and the diff, write nothing
  prepull-agent once --dry-run --output json    the same as one JSON document
  prepull-agent once                            write the list once (a CronJob)
  prepull-agent serve                           keep it current (a Deployment)
  prepull-agent once --target my-ns/my-puller --config my-config.yaml

environment: every flag has a fallback, e.g. PREPULL_DRY_RUN=true, PREPULL_TARGET=ns/name,
PREPULL_CONFIG=/etc/prepull-agent/config.yaml; every setting of the configuration file too,
e.g. PREPULL_SELECTION__MAX_IMAGES=20 (see config/default.yaml).

exit codes:
  0  success, whether or not the list changed
  1  unexpected error
  2  bad command line or configuration
  3  cannot reach the API server, or credentials refused
  4  the KubernetesImagePuller is missing or unreadable
  5  the list could not be written
  6  serve: too many failed cycles in a row
  7  serve: leadership lost (restart to rejoin the election)
"""

log = structlog.get_logger("prepull_agent")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
    except SettingsError as e:
        print(f"prepull-agent: {e}", file=sys.stderr)
        return EXIT_USAGE
    logs.configure(fmt=args.log_format or settings.logging.format, level=args.log_level or settings.logging.level)
    if args.command == "serve":
        from agent.loop import serve  # the scheduler is only imported when serving

        try:
            return serve(
                settings,
                connect_kube=lambda: _connect(args, settings),
                connect_lease_kube=lambda timeout: connect(
                    kubeconfig=args.kubeconfig, context=args.context, timeout=timeout, retries=0
                ),
                dry_run=args.dry_run,
            )
        except ConfigError as e:
            print(f"prepull-agent: {e}", file=sys.stderr)
            return EXIT_UNREACHABLE
    return _once(args, settings)


def _once(args: argparse.Namespace, settings: Settings) -> int:
    from agent import report
    from agent.cycle import run_cycle

    try:
        kube = _connect(args, settings)
    except ConfigError as e:
        print(f"prepull-agent: {e}", file=sys.stderr)
        return EXIT_UNREACHABLE
    try:
        result = run_cycle(kube, settings, dry_run=args.dry_run)
    except (KubeError, TargetMissing, InvalidPullerCR) as e:
        code, message = _failure(e, server=kube.server)
        print(f"prepull-agent: {message}", file=sys.stderr)
        return code
    finally:
        kube.close()
    render = report.as_json if args.output == "json" else report.as_table
    sys.stdout.write(render(result, dry_run=args.dry_run))
    if not result.ok:
        for outcome in result.outcomes:
            if outcome.error:
                print(f"prepull-agent: {outcome.target}: {outcome.error}", file=sys.stderr)
        # a CR that cannot be read as a KubernetesImagePuller (the other targets went on)
        return EXIT_TARGET if any(o.plan is None for o in result.outcomes) else EXIT_WRITE
    return EXIT_OK


def _failure(error: Exception, *, server: str) -> tuple[int, str]:
    """The exit code and message for a cycle that could not run to the end."""
    if isinstance(error, Unreachable | Unauthorized):
        return EXIT_UNREACHABLE, f"cannot use the API server at {server}: {error}"
    if isinstance(error, Forbidden):
        return EXIT_TARGET, f"access denied: {error} (check the agent's RBAC)"
    if isinstance(error, TargetMissing | InvalidPullerCR):
        return EXIT_TARGET, str(error)
    return EXIT_UNREACHABLE, str(error)


def _connect(args: argparse.Namespace, settings: Settings) -> Kube:
    return connect(kubeconfig=args.kubeconfig, context=args.context, timeout=settings.kube.request_timeout_seconds)


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config, env=os.environ)
    if args.target:
        settings = with_target(settings, args.target, origin="--target")
    return settings


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    env = os.environ.get
    common.add_argument(
        "--kubeconfig",
        default=env("PREPULL_KUBECONFIG"),
        metavar="PATH",
        help="kubeconfig to use (default: in-cluster service account, else $KUBECONFIG or ~/.kube/config)",
    )
    common.add_argument("--context", default=env("PREPULL_CONTEXT"), metavar="NAME", help="kubeconfig context to use")
    common.add_argument(
        "--config",
        default=env("PREPULL_CONFIG"),
        metavar="FILE",
        help="YAML configuration (see config/default.yaml); defaults apply without it",
    )
    common.add_argument(
        "--target",
        default=env("PREPULL_TARGET"),
        metavar="NS/NAME",
        help="the KubernetesImagePuller to keep current (default: openshift-operators/image-puller)",
    )
    common.add_argument(
        "--log-format",
        default=env("PREPULL_LOG_FORMAT"),
        choices=("auto", "console", "json"),
        help="log format on standard error (default: from the configuration, auto)",
    )
    common.add_argument(
        "--log-level",
        default=env("PREPULL_LOG_LEVEL"),
        choices=("debug", "info", "warning", "error"),
        help="log level (default: from the configuration, info)",
    )

    parser = argparse.ArgumentParser(
        prog="prepull-agent",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    once = sub.add_parser(
        "once",
        parents=[common],
        help="run one cycle and exit (for a CronJob or a look with --dry-run)",
        description="Run one cycle: scan, rank, plan, and write the puller's list unless --dry-run.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    once.add_argument(
        "--dry-run",
        action="store_true",
        default=_env_flag("PREPULL_DRY_RUN"),
        help="write nothing; print the ranked plan and the diff of spec.images",
    )
    once.add_argument(
        "--output",
        default=env("PREPULL_OUTPUT", "table"),
        choices=("table", "json"),
        help="table (default) or one JSON document on standard output",
    )
    serve = sub.add_parser(
        "serve",
        parents=[common],
        help="keep the list current on a schedule (for a Deployment)",
        description="Run a cycle at start and then on the configured interval or cron schedule, with "
        "leader election, /healthz, /readyz and /metrics.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "--dry-run", action="store_true", default=_env_flag("PREPULL_DRY_RUN"), help="plan every cycle but never write"
    )
    return parser


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
