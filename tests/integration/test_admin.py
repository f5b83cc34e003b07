"""What an administrator meets, on the real API server: which credentials the agent uses,
how a refused token, an admission denial and a missing CR are told, and the exit code of a
run that could not list everything.

Admission denials come from a real validating webhook (HTTPS on loopback, as the puller
operator's webhook refuses a second CR) and from a ValidatingAdmissionPolicy: the agent
must show the server's message, not blame RBAC.
"""

from __future__ import annotations

import os
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from agent.cli import main
from agent.kube import kinds
from agent.kube.client import connect
from tests.harness.cluster import LocalCluster
from tests.harness.loader import apply_objects, request
from tests.integration.conftest import Puller

VAP = "admissionregistration.k8s.io/v1"
FROZEN = "the puller list is frozen for the change window"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for var in [v for v in os.environ if v.startswith("PREPULL_") or v.startswith("KUBERNETES_") or v == "KUBECONFIG"]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr("agent.cli.logs.configure", lambda **_: None)
    return monkeypatch


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str, list[dict[str, Any]]]:
    with structlog.testing.capture_logs() as events:
        code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err, events


# -- credentials: kubectl's order, on the real server ---------------------------------------------


def test_in_a_pod_the_kubeconfig_of_oc_login_wins_over_the_service_account(cluster, puller, clean_env, capsys):
    """The reported case: a workbench or web terminal (KUBERNETES_SERVICE_HOST set) after
    `oc login` used the pod's ServiceAccount. The bogus in-cluster address proves it is not."""
    clean_env.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    clean_env.setenv("KUBERNETES_SERVICE_PORT", "1")
    clean_env.setenv("KUBECONFIG", str(cluster.kubeconfig))
    code, out, err, events = run_main(capsys, "once", "--dry-run", "--output", "json", "--target", puller.target)
    assert code == 0, err
    (start,) = [e for e in events if e["event"] == "starting"]
    assert (start["credentials"], start["kubeconfig"], start["server"]) == (
        "$KUBECONFIG", str(cluster.kubeconfig), cluster.server)
    assert start["context"]


def test_without_a_kubeconfig_the_pods_service_account_is_used(cluster, namespace, tmp_path):
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text(cluster.token_for(namespace, "agent"))
    (sa / "ca.crt").write_bytes(Path(cluster.ca_file).read_bytes())
    url = urllib.parse.urlsplit(cluster.server)
    env = {"KUBERNETES_SERVICE_HOST": url.hostname or "", "KUBERNETES_SERVICE_PORT": str(url.port),
           "HOME": str(tmp_path / "nobody")}
    kube = connect(env=env, service_account_dir=str(sa))
    try:
        review = kube.create("/apis/authentication.k8s.io/v1/selfsubjectreviews",
                             {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    finally:
        kube.close()
    assert review["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:agent"
    assert kube.credentials.source == "in-cluster" and kube.server == cluster.server


# -- 4. a refused token, an admission denial, a missing CR ---------------------------------------


def test_a_refused_token_is_one_message_log_in_again_and_exit_3(agent, cluster, puller, tmp_path):
    kubeconfig = cluster.kubeconfig_for_token("expired-or-wrong", tmp_path / "stale.kubeconfig")
    run = agent("once", "--dry-run", target=puller.target, kubeconfig=kubeconfig)
    assert run.code == 3
    assert run.err.count("\n") == 1, run.err
    assert "HTTP 401" in run.err and "log in again" in run.err and str(kubeconfig) in run.err
    assert "RBAC" not in run.err
    assert not [e for e in run.events if e.get("log_level") == "warning"], "one message, not a warning per kind"
    assert not run.logged("cycle finished")


@pytest.fixture
def frozen(api_client: ApiClient, namespace: str) -> Iterator[str]:
    """A ValidatingAdmissionPolicy refusing every create and update of pullers in the test's
    namespace, live (a server-side dry run is refused) before the test starts."""
    name = f"freeze-{namespace}"
    apply_objects(api_client, [
        {"apiVersion": VAP, "kind": "ValidatingAdmissionPolicy", "metadata": {"name": name},
         "spec": {"failurePolicy": "Fail",
                  "matchConstraints": {
                      "resourceRules": [{"apiGroups": ["che.eclipse.org"], "apiVersions": ["*"],
                                         "operations": ["CREATE", "UPDATE"],
                                         "resources": ["kubernetesimagepullers"]}],
                      "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}},
                  "validations": [{"expression": "false", "message": FROZEN, "reason": "Forbidden"}]}},
        {"apiVersion": VAP, "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": name},
         "spec": {"policyName": name, "validationActions": ["Deny"]}},
    ])
    _wait_denied(api_client, namespace, FROZEN)
    yield name
    for kind in ("validatingadmissionpolicybindings", "validatingadmissionpolicies"):
        request(api_client, "DELETE", f"/apis/{VAP}/{kind}/{name}")


WEBHOOK_SAYS = "a second KubernetesImagePuller in this namespace is not allowed"


@pytest.fixture
def denying_webhook(api_client: ApiClient, namespace: str, tmp_path: Path) -> Iterator[str]:
    """A real validating admission webhook (HTTPS on loopback, self-signed) refusing creates
    and updates of pullers in the test's namespace, as the puller operator's webhook refuses
    a second CR; live before the test starts."""
    import base64
    import json
    import ssl
    import subprocess
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    cert, key = tmp_path / "webhook.crt", tmp_path / "webhook.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=webhook", "-days", "1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)

    class Deny(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {
                "uid": review["request"]["uid"], "allowed": False,
                "status": {"code": 403, "message": WEBHOOK_SAYS}}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Deny)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    name = f"deny.{namespace}.prepull.test"
    path = f"/apis/{VAP}/validatingwebhookconfigurations/{name}"
    apply_objects(api_client, [{
        "apiVersion": VAP, "kind": "ValidatingWebhookConfiguration", "metadata": {"name": name},
        "webhooks": [{
            "name": name, "admissionReviewVersions": ["v1"], "sideEffects": "None", "failurePolicy": "Fail",
            "timeoutSeconds": 5,
            "clientConfig": {"url": f"https://127.0.0.1:{server.server_address[1]}/validate",
                             "caBundle": base64.b64encode(cert.read_bytes()).decode()},
            "rules": [{"apiGroups": ["che.eclipse.org"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"],
                       "resources": ["kubernetesimagepullers"]}],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        }],
    }])
    try:
        _wait_denied(api_client, namespace, WEBHOOK_SAYS)
        yield name
    finally:
        request(api_client, "DELETE", path)
        server.shutdown()
        server.server_close()


def _wait_denied(api_client: ApiClient, namespace: str, message: str) -> None:
    probe = {"apiVersion": "che.eclipse.org/v1alpha1", "kind": "KubernetesImagePuller",
             "metadata": {"name": "probe", "namespace": namespace}, "spec": {"images": ";"}}
    deadline = time.monotonic() + 30
    while True:
        try:
            request(api_client, "POST", kinds.IMAGE_PULLER.path(namespace=namespace), probe, {"dryRun": "All"})
        except ApiException as e:
            if message in str(e.body):
                return
            raise
        assert time.monotonic() < deadline, "the admission check never took effect"
        time.sleep(0.2)


def test_a_webhook_denial_of_the_write_shows_the_webhooks_message(agent, puller: Puller, denying_webhook):
    before = puller.images()
    run = agent("once", target=puller.target)
    assert run.code == 5
    assert f'admission webhook "{denying_webhook}" denied the request: {WEBHOOK_SAYS}' in run.err
    assert "RBAC" not in run.err
    assert puller.images() == before


def test_a_webhook_denial_of_a_create_is_not_called_an_rbac_problem(agent, sample_cluster, namespace,
                                                                   denying_webhook, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(f"targets:\n  - namespace: {namespace}\n    name: new-puller\n    create: true\n")
    run = agent("once", "--config", str(config))
    assert run.code == 4 and run.err.count("\n") == 1, run.err
    assert f"refused POST {kinds.IMAGE_PULLER.path(namespace=namespace)}" in run.err
    assert WEBHOOK_SAYS in run.err and "RBAC" not in run.err


def test_an_admission_denial_of_the_write_shows_the_servers_message(agent, puller: Puller, frozen):
    before = puller.images()
    run = agent("once", target=puller.target)
    assert run.code == 5
    assert FROZEN in run.err and "denied request" in run.err
    assert "RBAC" not in run.err
    assert puller.images() == before


def test_an_admission_denial_of_a_create_is_not_called_an_rbac_problem(agent, sample_cluster, namespace, frozen,
                                                                       tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(f"targets:\n  - namespace: {namespace}\n    name: new-puller\n    create: true\n")
    run = agent("once", "--config", str(config))
    assert run.code == 4
    assert run.err.count("\n") == 1, run.err
    assert FROZEN in run.err and "refused POST" in run.err
    assert "RBAC" not in run.err


def test_a_missing_target_says_create_true_needs_a_grant_the_shipped_rbac_lacks(agent, sample_cluster, namespace):
    run = agent("once", "--dry-run", target=f"{namespace}/nothing-here")
    assert run.code == 4
    assert f"KubernetesImagePuller {namespace}/nothing-here does not exist" in run.err
    assert "create: true" in run.err and "the shipped RBAC does not grant" in run.err


# -- 5. written, but some kinds could not be listed ---------------------------------------------------


def test_a_dry_run_that_could_not_list_everything_exits_8(agent, puller, restricted_kubeconfig):
    from tests.integration.conftest import ALL_READS, read_rules

    reads = {g: [r for r in res if r != "inferenceservices"] for g, res in ALL_READS.items()}
    run = agent("once", "--dry-run", target=puller.target, kubeconfig=restricted_kubeconfig(read_rules(reads)))
    assert run.code == 8, run.err
    assert set(run.json()["cycle"]["failed"]) == {"InferenceService"}
    assert "planned, but 1 kind(s) could not be listed (InferenceService)" in run.err


def test_a_complete_run_exits_0(agent, puller: Puller, cluster: LocalCluster):
    run = agent("once", target=puller.target)
    assert run.code == 0 and run.json()["cycle"]["failed"] == {}
