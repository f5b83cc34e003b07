"""Record what the real API server answers the agent, one scenario per file.

    python -m tests.harness.record [--out DIR] [NAME ...]

Starts a private local cluster (hack/local-cluster.sh in a temp dir; never a developer's
or the test session's, since the agent lists cluster-wide and would record their objects
too), loads samples/cluster, and runs every scenario of `SCENARIOS` in order: the agent's
own code (`run_cycle`, `LeaderElector`) talking to the server through a
`tests.harness.recorded.Recorder`, as an administrator or as a ServiceAccount with the
rights the scenario names. The files land in tests/data/recorded/ (or DIR), each saying
what it is a recording of; review the diff, as for any test data.

The fast tests (tests/unit/test_recorded_*.py) replay the files with the settings of
`settings_for(NAME)`; tests/integration/test_recorded.py records them all again and checks
the server still answers what the files say.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from kubernetes.config import new_client_from_config

from agent.cycle import run_cycle
from agent.kube import kinds
from agent.kube.client import Kube
from agent.leader import LeaderElector, LeaseConfig
from agent.settings import Settings, Target, load_settings
from tests.harness.cluster import LocalCluster
from tests.harness.loader import apply_dir, apply_objects, read_objects, request
from tests.harness.recorded import RECORDED, Recorder, Scenario, save

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = REPO_ROOT / "samples" / "cluster"
LLM_CRD = REPO_ROOT / "hack" / "crds" / "llminferenceservices.yaml"
ADMIN_ENTRY = "ubi-minimal=registry.access.redhat.com/ubi9/ubi-minimal:latest"
WORKERS = '{"node-role.kubernetes.io/worker": ""}'
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)  # every plan's generated_at
# The administrator's edit made between the agent's read and its write (conflict scenarios).
THEIRS = "ubi-minimal=registry.access.redhat.com/ubi9/ubi-minimal:9.5"
ADDED = "mine=quay.io/admin/tool:1"

# What the agent's ServiceAccount may read (as tests/integration/conftest.py ALL_READS).
READS = {
    "image.openshift.io": ["imagestreams"],
    "template.openshift.io": ["templates"],
    "kubeflow.org": ["notebooks"],
    "serving.kserve.io": ["servingruntimes", "clusterservingruntimes", "inferenceservices", "llminferenceservices"],
    "dscinitialization.opendatahub.io": ["dscinitializations"],
    "": ["nodes"],
}

# The lease scenario: two replicas, each with its own clock (client-go's rules are about
# each replica's own clock) and a wall clock that follows it, so every body is the same
# at every recording.
LEASE_NAMESPACE = "rec-lease"
LEASE_NAME = "prepull-agent"
DURATION, RENEW, RETRY = 4.0, 3.0, 0.5
CLOCK_START = 1000.0

SOURCES = ("imagestreams", "notebooks", "servingruntimes", "clusterservingruntimes", "templates", "inferenceservices",
           "llminferenceservices", "nodes")
NOTEBOOKS_ONLY = ("notebooks",)


@dataclass(frozen=True)
class Definition:
    name: str
    description: str
    record: Callable[[Context, Scenario], None]
    targets: tuple[str, ...] = ()
    page_size: int = 500
    sources: tuple[str, ...] = SOURCES  # the kinds listed (a scenario about the puller lists one, to stay small)


def settings_for(name: str) -> Settings:
    """The settings scenario NAME was recorded with: the defaults, its targets, page size and
    sources."""
    d = DEFINITIONS[name]
    env = {f"PREPULL_SOURCES__{s.upper()}": str(s in d.sources).lower() for s in SOURCES}
    settings = load_settings(None, env={"PREPULL_KUBE__PAGE_SIZE": str(d.page_size), **env})
    targets = tuple(Target(namespace=t.split("/")[0], name=t.split("/")[1]) for t in d.targets)
    return replace(settings, targets=targets) if targets else settings


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = CLOCK_START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def elector(kube: Kube, identity: str, clock: Clock) -> LeaderElector:
    config = LeaseConfig(LEASE_NAMESPACE, LEASE_NAME, identity, lease_duration=DURATION, renew_deadline=RENEW,
                         retry_period=RETRY)
    return LeaderElector(kube, config, clock=clock, wall=lambda: NOW + timedelta(seconds=clock() - CLOCK_START))


# -- the cluster and its identities -----------------------------------------------------------


class Context:
    """The private cluster, an admin client, and connections that record."""

    def __init__(self, cluster: LocalCluster, admin: ApiClient, workdir: Path) -> None:
        self.cluster = cluster
        self.admin = admin
        self.workdir = workdir
        self._made: list[Kube] = []

    def puller(self, namespace: str, *, images: str = f"{ADMIN_ENTRY};", **spec: str) -> None:
        """A namespace holding a KubernetesImagePuller with the administrator's entry."""
        apply_objects(self.admin, [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
            {"apiVersion": kinds.IMAGE_PULLER.api_version, "kind": kinds.IMAGE_PULLER.kind,
             "metadata": {"name": "image-puller", "namespace": namespace},
             "spec": {"daemonsetName": "kubernetes-image-puller", "images": images, "nodeSelector": WORKERS, **spec}},
        ])

    def kube(self, scenario: Scenario | None, *, kubeconfig: Path | None = None,
             before: Callable[[str, str], None] | None = None) -> Kube:
        """A connection as the admin (or `kubeconfig`'s user) recording into `scenario`
        (None: not recorded, for setting a scenario up)."""
        api = new_client_from_config(str(kubeconfig or self.cluster.kubeconfig))
        transport: Any = api if scenario is None else Recorder(api, scenario, before=before)
        kube = Kube(transport)
        self._made.append(kube)
        return kube

    def service_account(self, namespace: str, *, reads: dict[str, list[str]],
                        puller_verbs: tuple[str, ...] = ("get", "patch")) -> Path:
        """A kubeconfig for ServiceAccount NAMESPACE/agent with `reads` cluster-wide and
        `puller_verbs` on the namespace's image-puller."""
        name = f"{namespace}-agent"
        subject = [{"kind": "ServiceAccount", "name": "agent", "namespace": namespace}]
        objs: list[dict[str, Any]] = [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
             "rules": [{"apiGroups": [g], "resources": r, "verbs": ["get", "list"]} for g, r in reads.items() if r]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
             "subjects": subject},
        ]
        if puller_verbs:
            objs += [
                {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                 "metadata": {"name": "puller", "namespace": namespace},
                 "rules": [{"apiGroups": [kinds.IMAGE_PULLER.group], "resources": [kinds.IMAGE_PULLER.plural],
                            "resourceNames": ["image-puller"], "verbs": list(puller_verbs)}]},
                {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                 "metadata": {"name": "puller", "namespace": namespace},
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "puller"},
                 "subjects": subject},
            ]
        apply_objects(self.admin, objs)
        token = self.cluster.token_for(namespace, "agent")
        return self.cluster.kubeconfig_for_token(token, self.workdir / f"{namespace}.kubeconfig")

    def bad_token(self) -> Path:
        return self.cluster.kubeconfig_for_token("not-a-token-the-server-knows", self.workdir / "bad.kubeconfig")

    def edit(self, namespace: str, images: str) -> None:
        """The administrator rewrites spec.images (a merge patch, as `oc edit` would)."""
        self.admin.call_api(
            kinds.IMAGE_PULLER.path(namespace=namespace, name="image-puller"), "PATCH",
            header_params={"Accept": "application/json", "Content-Type": "application/merge-patch+json"},
            body={"spec": {"images": images}}, auth_settings=["BearerToken"], _preload_content=False,
        )

    def close(self) -> None:
        for kube in self._made:
            kube.close()


def cycle(ctx: Context, kube: Kube, name: str, *, dry_run: bool = False) -> None:
    run_cycle(kube, settings_for(name), dry_run=dry_run, now=lambda: NOW)


# -- the scenarios ------------------------------------------------------------------------------


def _write(ctx: Context, s: Scenario) -> None:
    ctx.puller("rec-write")
    kube = ctx.kube(s)
    cycle(ctx, kube, s.name)  # writes
    cycle(ctx, kube, s.name)  # finds nothing to change


def _pages(ctx: Context, s: Scenario) -> None:
    ctx.puller("rec-pages")
    cycle(ctx, ctx.kube(s), s.name, dry_run=True)


def _notebooks_denied(ctx: Context, s: Scenario) -> None:
    ctx.puller("rec-denied")
    cycle(ctx, ctx.kube(None), s.name)  # a complete cycle first: the agent manages Notebook images
    without_notebooks = {g: [r for r in res if r != "notebooks"] for g, res in READS.items()}
    cycle(ctx, ctx.kube(s, kubeconfig=ctx.service_account("rec-denied", reads=without_notebooks)), s.name)


def _conflict(times: int) -> Callable[[Context, Scenario], None]:
    def record(ctx: Context, s: Scenario) -> None:
        namespace = s.name.replace("conflict", "rec-conflict")
        ctx.puller(namespace)
        edits = [0]

        def edit_before_patch(method: str, path: str) -> None:
            if method == "PATCH" and path.startswith(kinds.IMAGE_PULLER.path(namespace=namespace)) and edits[0] < times:
                edits[0] += 1
                ctx.edit(namespace, f"{THEIRS};\n{ADDED};\n" if edits[0] == 1 else f"{THEIRS};\n{ADDED}-{edits[0]};\n")

        cycle(ctx, ctx.kube(s, before=edit_before_patch), s.name)

    return record


def _write_denied(ctx: Context, s: Scenario) -> None:
    ctx.puller("rec-no-patch")
    cycle(ctx, ctx.kube(s, kubeconfig=ctx.service_account("rec-no-patch", reads=READS, puller_verbs=("get",))), s.name)


def _target_denied(ctx: Context, s: Scenario) -> None:
    ctx.puller("rec-no-get")
    _raising(lambda: cycle(ctx, ctx.kube(s, kubeconfig=ctx.service_account("rec-no-get", reads=READS,
                                                                           puller_verbs=())), s.name))


def _target_missing(ctx: Context, s: Scenario) -> None:
    _raising(lambda: cycle(ctx, ctx.kube(s), s.name))


def _unauthorized(ctx: Context, s: Scenario) -> None:
    _raising(lambda: cycle(ctx, ctx.kube(s, kubeconfig=ctx.bad_token()), s.name))


def _two_targets(ctx: Context, s: Scenario) -> None:
    ctx.puller("rec-bad-selector", nodeSelector='{"nvidia.com/gpu.present": ')
    ctx.puller("rec-good")
    cycle(ctx, ctx.kube(s), s.name)


def _lease(ctx: Context, s: Scenario) -> None:
    """Replica a takes the free Lease and renews it once; b waits until a's record has not
    changed for the lease duration by b's own clock and takes it over; a sees the other
    holder and stops; a's release sends nothing, b's frees the Lease."""
    apply_objects(ctx.admin, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LEASE_NAMESPACE}}])
    a_clock, b_clock = Clock(), Clock()
    a, b = elector(ctx.kube(s), "a", a_clock), elector(ctx.kube(s), "b", b_clock)
    a.tick()  # GET 404, POST
    a_clock.advance(RETRY)
    a.tick()  # GET, PUT: renewed
    b.tick()  # GET: held by a
    b_clock.advance(DURATION - 0.25)
    b.tick()  # GET: not expired yet by b's clock
    b_clock.advance(0.25)
    b.tick()  # GET, PUT: taken over
    a_clock.advance(RETRY)
    a.tick()  # GET: held by b
    a.release()  # nothing: a does not hold it
    b.release()  # GET, PUT: freed


def _crd_missing(ctx: Context, s: Scenario) -> None:
    """Last: it removes the LLMInferenceService CRD (and with it the sample's objects)."""
    ctx.puller("rec-missing")
    cycle(ctx, ctx.kube(None), s.name)  # the agent manages the LLMInferenceService's images
    crd = next(o for o in read_objects(LLM_CRD) if o["kind"] == "CustomResourceDefinition")
    request(ctx.admin, "DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}")
    _wait_gone(ctx.admin, kinds.LLM_INFERENCE_SERVICE.path())
    cycle(ctx, ctx.kube(s), s.name)


def _raising(run: Callable[[], None]) -> None:
    """Run a cycle that ends in an exception (what the scenario records)."""
    try:
        run()
    except Exception:  # noqa: BLE001 - the recorded answers are the point, not the outcome
        return
    raise AssertionError("the scenario was meant to end the cycle with an error")


def _wait_gone(admin: ApiClient, path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            request(admin, "GET", path)
        except ApiException as e:
            if e.status == 404:
                discovery = request(admin, "GET", f"/apis/{kinds.LLM_INFERENCE_SERVICE.group}/"
                                                  f"{kinds.LLM_INFERENCE_SERVICE.version}")
                if all(r["name"] != kinds.LLM_INFERENCE_SERVICE.plural for r in discovery["resources"]):
                    return
        time.sleep(0.2)
    raise AssertionError(f"{path} is still served")


DEFINITIONS: dict[str, Definition] = {d.name: d for d in (
    Definition("write", "as an administrator: a cycle that writes the sample cluster's images to a puller "
               "holding one administrator entry, then a cycle that finds nothing to change",
               _write, targets=("rec-write/image-puller",)),
    Definition("pages", "as an administrator, Notebooks and Nodes only, in pages of 2 objects: a dry run",
               _pages, targets=("rec-pages/image-puller",), page_size=2, sources=("notebooks", "nodes")),
    Definition("notebooks-denied", "as a ServiceAccount that may read every kind but Notebooks (403), a cycle on "
               "a puller the agent wrote in a complete cycle before", _notebooks_denied,
               targets=("rec-denied/image-puller",)),
    Definition("conflict-once", f"as an administrator: the puller is edited (to {THEIRS!r} and {ADDED!r}) "
               "between the agent's read and its write: the write meets a 409, the agent re-reads and writes",
               _conflict(1), targets=("rec-conflict-once/image-puller",), sources=NOTEBOOKS_ONLY),
    Definition("conflict-always", "as an administrator: the puller is edited before each of the agent's writes: "
               "both meet a 409", _conflict(2), targets=("rec-conflict-always/image-puller",), sources=NOTEBOOKS_ONLY),
    Definition("write-denied", "as a ServiceAccount that may read everything and get the puller, but not patch "
               "it: the write is denied (403)", _write_denied, targets=("rec-no-patch/image-puller",),
               sources=NOTEBOOKS_ONLY),
    Definition("target-denied", "as a ServiceAccount that may read every kind but not get the puller (403)",
               _target_denied, targets=("rec-no-get/image-puller",), sources=NOTEBOOKS_ONLY),
    Definition("target-missing", "as an administrator: the target does not exist (404)", _target_missing,
               targets=("rec-write/no-such-puller",), sources=NOTEBOOKS_ONLY),
    Definition("unauthorized", "with a token the server does not know (401)", _unauthorized,
               targets=("rec-write/image-puller",)),
    Definition("two-targets", "as an administrator: two targets, the first with a malformed spec.nodeSelector, "
               "the second holding one administrator entry", _two_targets,
               targets=("rec-bad-selector/image-puller", "rec-good/image-puller"), sources=NOTEBOOKS_ONLY),
    Definition("lease", _lease.__doc__ or "", _lease),
    Definition("crd-missing", "as an administrator: after a complete cycle, the LLMInferenceService CRD is "
               "removed; a cycle then finds the kind not served (404, and not in discovery)", _crd_missing,
               targets=("rec-missing/image-puller",)),
)}


def describe(d: Definition) -> str:
    listed = "every kind" if d.sources == SOURCES else ", ".join(d.sources)
    return f"{' '.join(d.description.split())} (lists {listed}, {d.page_size} objects a page)"


def record_all(cluster: LocalCluster, names: list[str], workdir: Path) -> list[Scenario]:
    """Load the samples into `cluster` (a private, empty one) and record the scenarios."""
    recorded = []
    with cluster.new_api_client() as admin:
        apply_dir(admin, SAMPLES)
        ctx = Context(cluster, admin, workdir)
        try:
            for d in DEFINITIONS.values():  # in order: crd-missing changes the cluster
                if names and d.name not in names:
                    continue
                scenario = Scenario(d.name, describe(d))
                with structlog.testing.capture_logs():
                    d.record(ctx, scenario)
                recorded.append(scenario)
        finally:
            ctx.close()
    return recorded


@contextmanager
def private_cluster() -> Iterator[tuple[LocalCluster, Path]]:
    with tempfile.TemporaryDirectory(prefix="prepull-record-") as tmp:
        cluster = LocalCluster()
        try:
            cluster.start(Path(tmp) / "cluster")
            yield cluster, Path(tmp)
        finally:
            cluster.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.record", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"scenarios to record (default: all of "
                        f"{', '.join(DEFINITIONS)})")
    parser.add_argument("--out", type=Path, default=RECORDED, help=f"where to write them (default: {RECORDED})")
    args = parser.parse_args(argv)
    unknown = set(args.names) - set(DEFINITIONS)
    if unknown:
        parser.error(f"no scenario {', '.join(sorted(unknown))}")
    with private_cluster() as (cluster, tmp):
        for scenario in record_all(cluster, args.names, tmp):
            path = save(scenario, args.out)
            print(f"{path}: {len(scenario.exchanges)} exchanges, {path.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
