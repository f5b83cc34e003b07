"""Faults between the agent and a real API server: nothing is lost, nothing invalid is written.

The agent runs `once` against `tests.harness.faultproxy.FaultProxy`, a proxy in front of the
session's kube-apiserver, as a ServiceAccount bound to cluster-admin, with small pages
(`kube.page_size: 2`, so every source takes several list requests) and a 2 s request
timeout. Each scenario injects one kind of fault on one kind of request and then checks
the KubernetesImagePuller as the operator would read it (`check_cr`): the administrator's
entry is there verbatim, every entry is a `name=image` piece with a DNS-1123 name and an
image `agent.refs.parse_reference` accepts, names are unique, and after a partial failure
no entry was dropped.

What the scenarios prove:

- a transient 5xx, 429 (Retry-After), reset, stall or cut body on any read (a source's
  first list page, a later page, the CR's GET) is retried and the run writes exactly what
  a clean run would;
- the same fault, persistent, on a source marks that kind failed, exits 8 (done, but some
  kinds could not be listed) and keeps every entry; on the CR's GET it exits 3 and leaves
  the CR untouched;
- writes are never retried: a PATCH that fails before reaching the server exits 5 and
  leaves the CR untouched; one whose answer is lost after the server applied it exits 5
  and leaves exactly the planned list; a 409 is re-read and re-planned once, twice exits 5;
- an expired continue token restarts the listing once, then marks the kind failed;
- the CR deleted between read and write is not re-created; edits made by someone else
  between read and write survive; a CRD removed while the agent runs is reported missing;
- the API server killed mid-cycle (a private cluster, restarted on the same etcd) makes
  the agent exit 3 with a clear message, and the CR is intact afterwards.

A tally of faults injected and survived is printed at the end of the module.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from agent.kube import kinds
from agent.puller import is_dns1123_label, parse_images, puller_view, read_owned
from agent.refs import InvalidReference, parse_reference
from tests.harness.cluster import ClusterUnavailable, LocalCluster, binaries_dir
from tests.harness.faultproxy import FaultProxy, Record, Rule
from tests.harness.loader import apply_dir, apply_objects, request
from tests.integration.conftest import ADMIN_ENTRY, SAMPLES, Puller

NOTEBOOKS = r"/apis/kubeflow\.org/v1/notebooks"
NODES = r"/api/v1/nodes"
PULLER = r"/apis/che\.eclipse\.org/v1alpha1/namespaces/[^/]+/kubernetesimagepullers/image-puller"
TIMEOUT = 2  # kube.request_timeout_seconds for the agent in these tests
STALL = TIMEOUT + 1.5  # a stall outlasts the client's timeout
ATTEMPTS = 3  # Kube's default: one try and two retries for reads
LLMISVC_CRD = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/llminferenceservices.serving.kserve.io"

FIRST_PAGE: Callable[[dict[str, str]], bool] = lambda q: "continue" not in q  # noqa: E731
LATER_PAGE: Callable[[dict[str, str]], bool] = lambda q: "continue" in q  # noqa: E731

# One of each fault a read can meet, as Rule keyword arguments.
READ_FAULTS: dict[str, dict[str, Any]] = {
    "500": {"action": "status", "status": 500},
    "503": {"action": "status", "status": 503},
    "429": {"action": "status", "status": 429, "retry_after": 1},
    "reset": {"action": "reset"},
    "stall": {"action": "stall", "delay": STALL},
    "cut": {"action": "cut"},
}
# Faults where the client gets no HTTP answer (Unreachable): a cycle stops listing after one.
NO_ANSWER = {"reset", "stall", "cut"}
# Where: a source's first page, one of its later pages, the puller CR's GET.
READS: dict[str, dict[str, Any]] = {
    "list": {"method": "GET", "path": NOTEBOOKS, "query": FIRST_PAGE},
    "page": {"method": "GET", "path": NOTEBOOKS, "query": LATER_PAGE},
    "cr-get": {"method": "GET", "path": PULLER},
}

TALLY = {"faults injected": 0, "faults survived": 0, "CR checks": 0, "administrator entries lost": 0,
         "invalid CR writes": 0}


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _tally(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    print_line(request.config, "faults: " + ", ".join(f"{k}: {v}" for k, v in TALLY.items()))


def print_line(config: pytest.Config, line: str) -> None:
    """Write one line to the terminal even while output is captured."""
    reporter = config.pluginmanager.getplugin("terminalreporter")
    capture = config.pluginmanager.getplugin("capturemanager")
    if reporter is None or capture is None:  # pragma: no cover - plugins disabled
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(line)


def _admin_token(cluster: LocalCluster, name: str = "prepull-faults") -> str:
    """A token of ServiceAccount default/NAME, bound to cluster-admin."""
    with cluster.new_api_client() as client:
        apply_objects(client, [{
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "default"}],
        }])
    return cluster.token_for("default", name)


def _kubeconfig(server: str, token: str, path: Path) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "proxy", "cluster": {"server": server}}],
        "users": [{"name": "agent", "user": {"token": token}}],
        "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "agent"}}],
        "current-context": "proxy",
    }))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def _proxy(sample_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FaultProxy, Path]]:
    token = _admin_token(sample_cluster)
    with FaultProxy(str(sample_cluster.server), sample_cluster.ca_file) as proxy:
        yield proxy, _kubeconfig(proxy.url, token, tmp_path_factory.mktemp("faults") / "kubeconfig")


@pytest.fixture
def proxy(_proxy: tuple[FaultProxy, Path]) -> Iterator[FaultProxy]:
    """The module's proxy, with no rule and no record; its faults are tallied afterwards."""
    p, _ = _proxy
    p.reset()
    yield p
    TALLY["faults injected"] += len(p.faults)
    p.reset()


@pytest.fixture
def once(agent, puller: Puller, _proxy: tuple[FaultProxy, Path], monkeypatch: pytest.MonkeyPatch):
    """`once(*args)` runs `prepull-agent once` on the test's puller through the proxy."""
    _, kubeconfig = _proxy
    monkeypatch.setenv("PREPULL_KUBE__PAGE_SIZE", "2")
    monkeypatch.setenv("PREPULL_KUBE__REQUEST_TIMEOUT_SECONDS", str(TIMEOUT))

    def run(*args: str):
        return agent("once", *args, target=puller.target, kubeconfig=kubeconfig)

    return run


# -- what every scenario checks ------------------------------------------------------------------


def check_cr(obj: dict[str, Any], *, admin: str = ADMIN_ENTRY, before: str | None = None) -> dict[str, str]:
    """Assert the CR is one the puller reads as intended; return its view {name: image}.

    `before`: spec.images before a partial failure; every one of its entries must still be
    there, in the same order.
    """
    images = obj["spec"].get("images", "")
    entries = parse_images(images)
    texts = [e.text for e in entries]
    view = puller_view(images)
    problems = []
    admin_lost = admin not in texts
    if admin_lost:
        problems.append(f"the administrator entry {admin!r} is gone")
    problems += [f"piece {e.text!r} is not one name=image" for e in entries if e.name is None]
    if len(view) != len(entries):
        problems.append("a name is repeated")
    for name, image in view.items():
        if not is_dns1123_label(name):
            problems.append(f"name {name!r} is not a DNS-1123 label")
        try:
            parse_reference(image)
        except InvalidReference as e:
            problems.append(f"image {image!r} {e}")
    owned = read_owned(obj["metadata"].get("annotations"))
    problems += [f"owned entry {n}={i} is not in the list" for n, i in owned.items() if view.get(n) != i]
    if before is not None:
        kept = iter(texts)
        problems += [f"entry {t!r} was dropped" for t in (e.text for e in parse_images(before)) if t not in kept]
    TALLY["CR checks"] += 1
    TALLY["administrator entries lost"] += admin_lost
    TALLY["invalid CR writes"] += bool(problems) and not admin_lost
    assert not problems, problems
    return view


def survived(proxy: FaultProxy | None, expected: int | None = None, *, other: int = 0) -> None:
    """Count the test's faults as survived (call after every assertion has passed).

    `other`: faults injected by the test itself rather than the proxy (a CR deleted or
    edited mid-cycle, a CRD removed), counted as injected here too.
    """
    faults = len(proxy.faults) if proxy is not None else 0
    if expected is not None:
        assert faults == expected, [(r.method, r.path, r.query, r.action) for r in proxy.faults]
    assert faults + other > 0
    TALLY["faults injected"] += other
    TALLY["faults survived"] += faults + other


def patches(proxy: FaultProxy, since: int = 0) -> int:
    return proxy.count(method="PATCH", path=PULLER, since=since)


# -- reads: transient faults are retried ----------------------------------------------------------


@pytest.mark.parametrize("where", READS)
@pytest.mark.parametrize("fault", READ_FAULTS)
def test_a_transient_fault_on_a_read_is_retried(once, puller, proxy, fault, where):
    proxy.add(Rule(**READ_FAULTS[fault], **READS[where], times=1))
    run = once()
    assert run.code == 0, (run.err, run.events)
    doc = run.json()
    assert doc["cycle"]["failed"] == {} and doc["targets"][0]["written"] is True
    assert proxy.count(action=READ_FAULTS[fault]["action"]) == 1
    check_cr(puller.get())
    rv = puller.resource_version()
    again = once()  # a clean run finds nothing to change: the faulty run wrote the same list
    assert again.code == 0 and again.target()["changed"] is False
    assert puller.resource_version() == rv
    survived(proxy, 1)


# -- reads: persistent faults on a source never shrink the list -----------------------------------


@pytest.mark.parametrize("where", ["list", "page"])
@pytest.mark.parametrize("fault", READ_FAULTS)
def test_a_failing_source_keeps_every_entry(once, puller, proxy, fault, where):
    assert once().code == 0
    before = puller.images()
    assert len(parse_images(before)) > 3
    proxy.add(Rule(**READ_FAULTS[fault], **READS[where], times=None))
    run = once()
    assert run.code == 8, (run.err, run.events)
    doc = run.json()
    failed = doc["cycle"]["failed"]
    assert "Notebook" in failed
    if fault in NO_ANSWER:  # the server gave no answer at all: the sources after it are not tried
        assert all(reason.startswith("not listed:") for kind, reason in failed.items() if kind != "Notebook")
        assert "Node" in failed
    else:
        assert set(failed) == {"Notebook"}
    assert proxy.count(action=READ_FAULTS[fault]["action"], path=NOTEBOOKS) == ATTEMPTS
    assert any(e.get("kind") == "Notebook" for e in run.logged("listing failed"))
    check_cr(puller.get(), before=before)
    assert puller.images() == before
    survived(proxy, ATTEMPTS)


def test_a_passing_404_on_a_served_kind_never_shrinks_the_list(once, puller, proxy):
    """An aggregated API server (OpenShift's, for ImageStreams) can answer 404 for a
    moment. Discovery still lists the kind, so it counts as failed, not as uninstalled."""
    assert once().code == 0
    before = puller.images()
    proxy.add(Rule("status", status=404, method="GET", path=NOTEBOOKS, query=FIRST_PAGE, times=None))
    run = once()
    assert run.code == 8, (run.err, run.events)
    cycle = run.json()["cycle"]
    assert "Notebook" in cycle["failed"] and "Notebook" not in cycle["missing"]
    assert puller.images() == before
    survived(proxy, 1)


def test_a_failing_nodes_listing_does_not_lift_the_disk_budget(once, puller, proxy):
    """Nodes carry the capacity the disk budget is computed from. When they cannot be
    listed, the agent must not add images the budget kept out (and remove them again next
    cycle, recreating the puller's DaemonSet twice on every node)."""
    assert once().code == 0
    before = puller.images()
    proxy.add(Rule("status", method="GET", path=NODES, status=503, times=None))
    run = once()
    assert run.code == 8, (run.err, run.events)
    assert set(run.json()["cycle"]["failed"]) == {"Node"}
    check_cr(puller.get(), before=before)
    assert puller.images() == before, "a partial view changed the list: " + run.target()["images_after"]
    survived(proxy, ATTEMPTS)


# -- reads: the puller CR itself --------------------------------------------------------------------


@pytest.mark.parametrize("fault", READ_FAULTS)
def test_an_unreadable_puller_stops_the_run_and_leaves_it_untouched(once, puller, proxy, fault):
    assert once().code == 0
    obj = puller.get()
    proxy.add(Rule(**READ_FAULTS[fault], **READS["cr-get"], times=None))
    mark = proxy.mark()
    run = once()
    assert run.code == 3, (run.code, run.err)
    assert run.err.startswith("prepull-agent: ") and "kubernetesimagepullers/image-puller" in run.err
    assert patches(proxy, mark) == 0
    assert puller.get()["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    check_cr(puller.get(), before=obj["spec"]["images"])
    survived(proxy, ATTEMPTS)


# -- pagination: expired continue tokens -------------------------------------------------------------


def test_an_expired_continue_token_restarts_the_listing_once(once, puller, proxy):
    proxy.add(Rule("expire", method="GET", path=NOTEBOOKS, times=1))
    run = once()
    assert run.code == 0, (run.err, run.events)
    doc = run.json()
    assert doc["cycle"]["failed"] == {}
    assert proxy.count(method="GET", path=NOTEBOOKS, query=FIRST_PAGE) == 2  # listed again from the start
    assert run.logged("list expired")
    check_cr(puller.get())
    assert once().target()["changed"] is False  # the restarted listing saw every Notebook
    survived(proxy, 1)


def test_a_continue_token_that_keeps_expiring_fails_the_kind(once, puller, proxy):
    assert once().code == 0
    before = puller.images()
    proxy.add(Rule("expire", method="GET", path=NOTEBOOKS, times=None))
    mark = proxy.mark()
    run = once()
    assert run.code == 8, (run.err, run.events)
    assert set(run.json()["cycle"]["failed"]) == {"Notebook"}
    assert proxy.count(method="GET", path=NOTEBOOKS, query=FIRST_PAGE, since=mark) == 2
    check_cr(puller.get(), before=before)
    assert puller.images() == before
    survived(proxy, 2)


# -- writes ---------------------------------------------------------------------------------------------

PATCH_FAULTS = {k: v for k, v in READ_FAULTS.items() if k != "cut"}


@pytest.mark.parametrize("fault", PATCH_FAULTS)
def test_a_failed_write_is_not_retried_and_changes_nothing(once, puller, proxy, fault):
    obj = puller.get()
    proxy.add(Rule(**PATCH_FAULTS[fault], method="PATCH", path=PULLER, times=1))
    run = once()
    assert run.code == 5, (run.code, run.err)
    assert "write failed" in run.err
    assert patches(proxy) == 1  # a write is never retried blindly
    assert puller.get()["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    check_cr(puller.get())
    next_run = once()  # the next cycle writes
    assert next_run.code == 0 and next_run.target()["written"] is True
    check_cr(puller.get())
    survived(proxy, 1)


@pytest.mark.parametrize("fault", ["cut", "reset", "stall"])
def test_a_write_whose_answer_is_lost_leaves_exactly_the_plan(once, puller, proxy, fault):
    """The server applied the patch; the agent never saw the answer (unknown outcome)."""
    kwargs = dict(READ_FAULTS[fault])
    if fault != "cut":
        kwargs["forward_first"] = True
    proxy.add(Rule(**kwargs, method="PATCH", path=PULLER, times=1))
    run = once()
    assert run.code == 5, (run.code, run.err)
    assert patches(proxy) == 1
    planned = run.target()["images_after"]
    assert puller.images() == planned  # what the server kept is the plan, nothing half-written
    check_cr(puller.get())
    assert once().target()["changed"] is False
    survived(proxy, 1)


def test_a_conflict_once_is_re_read_and_re_planned(once, puller, proxy):
    proxy.add(Rule("conflict", method="PATCH", path=PULLER, times=1))
    run = once()
    assert run.code == 0, (run.err, run.events)
    assert run.logged("re-reading it")
    assert patches(proxy) == 2
    assert proxy.count(method="GET", path=PULLER) == 2
    check_cr(puller.get())
    assert run.target()["written"] is True
    survived(proxy, 1)


def test_a_conflict_every_time_gives_up_and_leaves_the_cr_untouched(once, puller, proxy):
    obj = puller.get()
    proxy.add(Rule("conflict", method="PATCH", path=PULLER, times=None))
    run = once()
    assert run.code == 5
    assert "409 twice" in run.err
    assert patches(proxy) == 2
    assert puller.get()["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    check_cr(puller.get())
    survived(proxy, 2)


# -- the CR changing under the agent ---------------------------------------------------------------


def test_a_cr_deleted_between_read_and_write_is_not_re_created(once, puller, proxy, mocker):
    import agent.cycle as cycle

    real_read = cycle.read_target

    def read_then_delete(kube, target, **kw):
        found = real_read(kube, target, **kw)
        request(puller.api_client, "DELETE", kinds.IMAGE_PULLER.path(namespace=puller.namespace, name=puller.name))
        return found

    mocker.patch.object(cycle, "read_target", side_effect=read_then_delete)
    run = once()
    assert run.code == 5, (run.code, run.err)
    assert "write failed" in run.err and "404" in run.err
    assert proxy.count(method="POST") == 0 and proxy.count(method="PUT") == 0
    with pytest.raises(ApiException) as gone:
        puller.get()
    assert gone.value.status == 404
    survived(None, other=1)


def test_edits_made_between_read_and_write_survive(once, puller, proxy, mocker):
    """An administrator changes their entry's image and adds one while the agent plans;
    the agent's write meets a 409, re-reads, re-plans, and both edits survive."""
    import agent.cycle as cycle

    real_read = cycle.read_target
    theirs = "ubi-minimal=registry.access.redhat.com/ubi9/ubi-minimal:9.5"
    added = "mine=quay.io/admin/tool:1"

    def read_then_edit(kube, target, **kw):
        found = real_read(kube, target, **kw)
        if proxy.count(method="GET", path=PULLER) == 1:  # the first read only
            puller.patch({"spec": {"images": f"{theirs};\n{added};"}})
        return found

    mocker.patch.object(cycle, "read_target", side_effect=read_then_edit)
    run = once()
    assert run.code == 0, (run.err, run.events)
    assert run.logged("re-reading it")
    view = check_cr(puller.get(), admin=theirs)
    assert view["mine"] == "quay.io/admin/tool:1"
    assert puller.images().splitlines()[:2] == [f"{theirs};", f"{added};"]
    survived(proxy, 0, other=1)


def test_an_agent_entry_edited_mid_cycle_becomes_the_administrators(once, puller, proxy, mocker, monkeypatch):
    """After a clean run, an administrator removes one agent entry (so the agent will write)
    and, while the agent plans, rewrites another agent entry's image: that entry is theirs
    now and survives verbatim."""
    import agent.cycle as cycle

    # Putting the removed entry back is a change the minimum interval would defer: off here.
    monkeypatch.setenv("PREPULL_PULLER__MIN_WRITE_INTERVAL_SECONDS", "0")

    assert once().code == 0
    obj = puller.get()
    owned = read_owned(obj["metadata"]["annotations"])
    removed, edited = sorted(owned)[:2]
    entries = [e.text for e in parse_images(obj["spec"]["images"]) if e.name != removed]
    puller.patch({"spec": {"images": "".join(f"{t};\n" for t in entries)}})
    edited_text = f"{edited}=quay.io/admin/{edited}:pinned"
    real_read = cycle.read_target
    edits: list[int] = []

    def read_then_edit(kube, target, **kw):
        found = real_read(kube, target, **kw)
        if not edits:
            edits.append(1)
            current = [e.text for e in parse_images(puller.images())]
            puller.patch({"spec": {"images": "".join(
                f"{edited_text if t.startswith(edited + '=') else t};\n" for t in current)}})
        return found

    mocker.patch.object(cycle, "read_target", side_effect=read_then_edit)
    run = once()
    assert run.code == 0, (run.err, run.events)
    assert run.logged("re-reading it")
    after = puller.get()
    view = check_cr(after)
    assert edited_text in [e.text for e in parse_images(after["spec"]["images"])]
    assert edited not in read_owned(after["metadata"]["annotations"])
    assert view[removed] == owned[removed] or owned[removed] in view.values()  # the agent put it back
    survived(proxy, 0, other=1)


# -- a CRD removed while the agent runs -------------------------------------------------------------


def test_a_crd_removed_mid_run_is_reported_missing(once, puller, proxy, api_client, monkeypatch):
    clean = once()
    assert clean.code == 0
    before = puller.images()
    llm_only = {c["image"] for c in clean.target()["candidates"]
                if {s["kind"] for s in c["sources"]} == {"LLMInferenceService"}}
    crd = request(api_client, "GET", LLMISVC_CRD)
    monkeypatch.setenv("PREPULL_KUBE__REQUEST_TIMEOUT_SECONDS", "30")  # the hook waits for the deletion

    def remove_crd(_: Record) -> None:
        request(api_client, "DELETE", LLMISVC_CRD)
        _wait_status(api_client, "/apis/serving.kserve.io/v1alpha1/llminferenceservices", 404)

    # The agent lists sources in order; the first ImageStream request triggers the removal,
    # so the agent is mid-cycle when the kind disappears.
    proxy.add(Rule("pass", method="GET", path=r"/apis/image\.openshift\.io/v1/imagestreams",
                   times=1, on_hit=remove_crd))
    try:
        run = once()
        assert run.code == 0, (run.err, run.events)
        doc = run.json()
        assert set(doc["cycle"]["missing"]) == {"LLMInferenceService"}
        assert doc["cycle"]["failed"] == {}
        assert len(run.logged("kind not served")) == 1
        check_cr(puller.get())  # the administrator entry survives; LLM images may go: the kind is gone
        kept = {e.text for e in parse_images(puller.images())}
        lost = [e for e in parse_images(before) if e.text not in kept]
        assert all(e.image in llm_only for e in lost), lost  # only what the vanished kind alone used
    finally:
        _restore_crd(api_client, crd)
    run = once()
    assert run.code == 0 and "LLMInferenceService" in run.json()["cycle"]["listed"]
    check_cr(puller.get())
    survived(proxy, 0, other=1)


# -- the API server killed mid-cycle ----------------------------------------------------------------


def test_the_api_server_killed_mid_cycle(agent, tmp_path, monkeypatch):
    """A private cluster (killing the session's would break other tests). A clean run;
    then the kube-apiserver is killed with SIGKILL when the agent lists Notebooks; the agent
    exits 3 naming the server; the apiserver is restarted on the same etcd (the same
    command line: `hack/local-cluster.sh up` would make a new, empty cluster); the CR is
    intact and the next run changes nothing."""
    if os.environ.get("PREPULL_TEST_KUBECONFIG"):
        pytest.skip("needs the local binaries to start a private cluster")
    private = LocalCluster()
    try:
        binaries_dir()
        private.start(tmp_path / "cluster")
    except ClusterUnavailable as e:
        private.stop()
        if os.environ.get("CI") == "true":  # CI must never pass by skipping
            pytest.fail(f"cannot start a private cluster: {e}", pytrace=False)
        pytest.skip(f"cannot start a private cluster: {e}")
    restarted: subprocess.Popen[bytes] | None = None
    try:
        with private.new_api_client() as client:
            apply_dir(client, SAMPLES)
            pull = Puller("openshift-operators", "image-puller", client)
            token = _admin_token(private)
            with FaultProxy(str(private.server), private.ca_file) as proxy:
                kubeconfig = _kubeconfig(proxy.url, token, tmp_path / "kubeconfig")
                monkeypatch.setenv("PREPULL_KUBE__PAGE_SIZE", "2")
                monkeypatch.setenv("PREPULL_KUBE__REQUEST_TIMEOUT_SECONDS", "1")

                def once():
                    return agent("once", target=pull.target, kubeconfig=kubeconfig)

                first = once()
                assert first.code == 0, first.err
                written = pull.get()
                check_cr(written)
                pid = int(private.env["APISERVER_PID"])
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]

                def kill(_: Record) -> None:
                    os.kill(pid, signal.SIGKILL)
                    _wait_dead(pid)

                proxy.add(Rule("pass", method="GET", path=NOTEBOOKS, query=LATER_PAGE, times=1, on_hit=kill))
                started = time.monotonic()
                run = once()
                took = time.monotonic() - started
                assert run.code == 3, (run.code, run.err)
                assert f"cannot use the API server at {proxy.url}" in run.err
                assert [e["kind"] for e in run.logged("listing failed")] == ["Notebook"]
                (skipped,) = run.logged("the remaining kinds were not listed")
                assert {"InferenceService", "Node"} <= set(skipped["kinds"])
                assert took < 60

                restarted = _restart_apiserver(private, argv)
                after = pull.get()
                assert after["metadata"]["resourceVersion"] == written["metadata"]["resourceVersion"]
                check_cr(after, before=written["spec"]["images"])
                again = once()
                assert again.code == 0 and again.target()["changed"] is False, again.err
                survived(None, other=1)
    finally:
        private.stop()
        if restarted is not None and restarted.poll() is None:
            restarted.kill()
            restarted.wait(10)


# -- helpers -----------------------------------------------------------------------------------------


def _wait_status(api_client, path: str, status: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            request(api_client, "GET", path)
        except ApiException as e:
            if e.status == status:
                return
            raise
        time.sleep(0.1)
    pytest.fail(f"{path} did not answer {status}")


def _restore_crd(api_client, crd: dict[str, Any]) -> None:
    """Re-create the CRD (the old one may still be terminating) and its sample objects."""
    for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"):
        crd["metadata"].pop(key, None)
    crd.pop("status", None)
    deadline = time.monotonic() + 60
    while True:
        try:
            apply_objects(api_client, [crd])
            break
        except (ApiException, TypeError):  # TypeError: loader._wait_established meets "conditions": null
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    apply_dir(api_client, SAMPLES / "51-llminferenceservices.yaml")


def _wait_dead(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except FileNotFoundError:
            return
        if state == "Z":
            return
        time.sleep(0.05)
    raise AssertionError(f"kube-apiserver {pid} did not die")


def _restart_apiserver(cluster: LocalCluster, argv: list[bytes]) -> subprocess.Popen[bytes]:
    """Start kube-apiserver again with its old command line (same etcd, ports, certs) and
    record its pid where `hack/local-cluster.sh down` looks for it."""
    assert cluster.dir is not None
    log = open(cluster.dir / "kube-apiserver.log", "ab")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    log.close()
    env_file = cluster.dir / "env"
    env_file.write_text(re.sub(r"(?m)^APISERVER_PID=.*$", f"APISERVER_PID={proc.pid}", env_file.read_text()))
    with cluster.new_api_client() as client:
        deadline = time.monotonic() + 60
        while True:
            try:
                resp = client.call_api("/readyz", "GET", auth_settings=["BearerToken"], _preload_content=False)
                if resp.status == 200:
                    return proc
            except Exception:  # noqa: BLE001 - not up yet
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("kube-apiserver did not come back")
            time.sleep(0.2)
