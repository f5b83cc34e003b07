"""The command line: `prepull-agent once` and `prepull-agent serve`.

Parses flags (each with a `PREPULL_*` environment fallback, read as strictly as the
configuration file: an unknown word stops the agent), loads the settings, sets up logging
and the connection, logs one start line, runs, and maps every failure to an exit code of
`agent.exits` with one line that says what to fix. Nothing else lives here.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import structlog

from agent import logs
from agent.apply import TargetMissing
from agent.exits import Exit
from agent.exits import table as exit_table
from agent.kube.client import ConfigError, Kube, connect
from agent.kube.errors import KubeError
from agent.puller import InvalidPullerCR
from agent.settings import Settings, SettingsError, load_settings, with_target
from agent.version import VERSION

DESCRIPTION = """\
Keep the Kubernetes Image Puller's list current with the images OpenShift AI users really
start: workbench images (ImageStreams, Notebooks), serving runtimes (ServingRuntimes,
ClusterServingRuntimes, runtime Templates) and ModelCar images of InferenceServices. It
ranks them by use, fits them to the nodes' disk, and writes the KubernetesImagePuller's
spec.images, keeping every entry an administrator wrote.
"""

EPILOG = f"""\
examples:
  prepull-agent once --dry-run                  show the ranked plan and the diff, write nothing
  prepull-agent once --dry-run --output wide    the same with full references and reasons
  prepull-agent once --dry-run --output json    the same as one JSON document
  prepull-agent once                            write the list once (a CronJob)
  prepull-agent serve                           keep it current (a Deployment)
  prepull-agent once --target my-ns/my-puller --config my-config.yaml

credentials, as kubectl finds them: --kubeconfig, else $KUBECONFIG, else ~/.kube/config,
else the pod's ServiceAccount.

environment: every flag has a fallback, e.g. PREPULL_DRY_RUN=true, PREPULL_TARGET=ns/name,
PREPULL_CONFIG=/etc/prepull-agent/config.yaml; every setting of the configuration file too,
e.g. PREPULL_SELECTION__MAX_IMAGES=20 (see config/default.yaml). An unknown value stops
the agent (exit 2).

exit codes:
{exit_table()}
"""

BOOLEAN_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
OUTPUTS = ("table", "wide", "json")
LOG_FORMATS = ("auto", "console", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")

log = structlog.get_logger("prepull_agent")


class UsageError(Exception):
    """A flag's environment fallback holds a value the flag would refuse."""


@dataclass(frozen=True)
class Options:
    """The command line with its environment fallbacks applied."""

    command: str
    kubeconfig: str | None
    kubeconfig_origin: str
    context: str | None
    config: str | None
    target: str | None
    log_format: str | None
    log_level: str | None
    dry_run: bool
    output: str


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        options = options_from(args, os.environ)
        settings = _settings(options)
    except (UsageError, SettingsError) as e:
        print(f"prepull-agent: {e}", file=sys.stderr)
        return Exit.USAGE
    logs.configure(
        fmt=options.log_format or settings.logging.format,
        level=options.log_level or settings.logging.level,
        report_on_terminal=options.command == "once" and options.output != "json",
    )
    try:
        kube = _connect(options, settings)
    except ConfigError as e:
        print(f"prepull-agent: {e}", file=sys.stderr)
        return Exit.UNREACHABLE
    _log_start(options, settings, kube)
    if options.command == "serve":
        from agent.loop import ServeError, serve  # the scheduler is only imported when serving

        try:
            return serve(
                settings,
                kube=kube,
                connect_lease_kube=lambda timeout: _connect(options, settings, timeout=timeout, retries=0),
                dry_run=options.dry_run,
            )
        except ServeError as e:
            print(f"prepull-agent: {e}", file=sys.stderr)
            return e.code
    return _once(options, settings, kube)


def _once(options: Options, settings: Settings, kube: Kube) -> int:
    from agent import report
    from agent.cycle import failure, run_cycle

    try:
        result = run_cycle(kube, settings, dry_run=options.dry_run)
    except (KubeError, TargetMissing, InvalidPullerCR) as e:
        logs.release_held_warnings()  # no report will say them
        code, message = failure(e, kube=kube)
        print(f"prepull-agent: {message}", file=sys.stderr)
        return code
    finally:
        kube.close()
    sys.stdout.write(report.render(result, output=options.output, dry_run=options.dry_run))
    if not result.ok:
        for outcome in result.outcomes:
            if outcome.error:
                print(f"prepull-agent: {outcome.target}: {outcome.error}", file=sys.stderr)
        # a CR that cannot be read as a KubernetesImagePuller (the other targets went on)
        return Exit.TARGET if any(o.plan is None for o in result.outcomes) else Exit.WRITE
    if result.failed:
        done = "planned" if options.dry_run else "done"
        print(
            f"prepull-agent: {done}, but {len(result.failed)} kind(s) could not be listed "
            f"({', '.join(sorted(result.failed))}); the images the agent manages from them were kept",
            file=sys.stderr,
        )
        return Exit.PARTIAL
    return Exit.OK


def _connect(options: Options, settings: Settings, *, timeout: float | None = None, retries: int = 2) -> Kube:
    return connect(
        kubeconfig=options.kubeconfig,
        origin=options.kubeconfig_origin,
        context=options.context,
        timeout=settings.kube.request_timeout_seconds if timeout is None else timeout,
        retries=retries,
    )


def _log_start(options: Options, settings: Settings, kube: Kube) -> None:
    credentials = kube.credentials
    log.info(
        "starting",
        version=VERSION,
        command=options.command,
        dry_run=options.dry_run,
        server=credentials.server,
        credentials=credentials.source,
        kubeconfig=credentials.path if credentials.source != "in-cluster" else "",
        context=credentials.context,
        targets=[str(t) for t in settings.targets],
        config=options.config or "(defaults)",
    )


def _settings(options: Options) -> Settings:
    settings = load_settings(options.config, env=os.environ)
    if options.target:
        settings = with_target(settings, options.target, origin="--target")
    return settings


def options_from(args: argparse.Namespace, env: Mapping[str, str]) -> Options:
    """Fill every flag left out from its `PREPULL_*` variable, refusing values the flag would."""
    kubeconfig, origin = args.kubeconfig, "--kubeconfig"
    if kubeconfig is None and env.get("PREPULL_KUBECONFIG"):
        kubeconfig, origin = env["PREPULL_KUBECONFIG"], "PREPULL_KUBECONFIG"
    dry_run = args.dry_run if args.dry_run is not None else _env_boolean(env, "PREPULL_DRY_RUN")
    output = getattr(args, "output", None) or (_env_choice(env, "PREPULL_OUTPUT", OUTPUTS) or "table")
    return Options(
        command=args.command,
        kubeconfig=kubeconfig,
        kubeconfig_origin=origin,
        context=args.context or env.get("PREPULL_CONTEXT") or None,
        config=args.config or env.get("PREPULL_CONFIG") or None,
        target=args.target or env.get("PREPULL_TARGET") or None,
        log_format=args.log_format or _env_choice(env, "PREPULL_LOG_FORMAT", LOG_FORMATS),
        log_level=args.log_level or _env_choice(env, "PREPULL_LOG_LEVEL", LOG_LEVELS),
        dry_run=dry_run,
        output=output if args.command == "once" else "table",
    )


def _env_boolean(env: Mapping[str, str], name: str) -> bool:
    text = env.get(name, "").strip()
    if not text:
        return False
    try:
        return BOOLEAN_WORDS[text.lower()]
    except KeyError:
        raise UsageError(
            f"environment {name}={text!r} is not a boolean: use true or false (or 1/0, yes/no)"
        ) from None


def _env_choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    text = env.get(name, "").strip()
    if not text:
        return None
    if text.lower() not in choices:
        raise UsageError(f"environment {name}={text!r} is not one of {', '.join(choices)}")
    return text.lower()


def _parser() -> argparse.ArgumentParser:
    # No defaults here: a flag left out is None, and `options_from` reads its variable.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="kubeconfig to use (env PREPULL_KUBECONFIG; default: $KUBECONFIG, ~/.kube/config, "
        "then the pod's ServiceAccount)",
    )
    common.add_argument("--context", metavar="NAME", help="kubeconfig context to use (env PREPULL_CONTEXT)")
    common.add_argument(
        "--config",
        metavar="FILE",
        help="YAML configuration (env PREPULL_CONFIG; see config/default.yaml); defaults apply without it",
    )
    common.add_argument(
        "--target",
        metavar="NS/NAME",
        help="the KubernetesImagePuller to keep current (env PREPULL_TARGET; default: "
        "openshift-operators/image-puller)",
    )
    common.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        help="log format on standard error (env PREPULL_LOG_FORMAT; default: from the configuration, auto)",
    )
    common.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        help="log level (env PREPULL_LOG_LEVEL; default: from the configuration, info)",
    )

    parser = argparse.ArgumentParser(
        prog="prepull-agent",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"prepull-agent {VERSION}")
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
        action=argparse.BooleanOptionalAction,
        help="write nothing; print the ranked plan and the diff of spec.images (env PREPULL_DRY_RUN)",
    )
    once.add_argument(
        "--output",
        choices=OUTPUTS,
        help="table (default: fits the terminal), wide (everything, full width) or one JSON document on "
        "standard output (env PREPULL_OUTPUT)",
    )
    serve = sub.add_parser(
        "serve",
        parents=[common],
        help="keep the list current on a schedule (for a Deployment)",
        description="Run a cycle at start and then on the configured interval or cron schedule, with "
        "leader election, /healthz, /readyz, /metrics and /plan.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "--dry-run",
        action=argparse.BooleanOptionalAction,
        help="plan every cycle but never write (env PREPULL_DRY_RUN); /plan shows the last plan",
    )
    return parser


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
