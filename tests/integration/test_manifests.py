"""The cluster install in manifests/: what the overlays render, what the API server accepts,
and what the agent's ServiceAccount may and may not do.

- Rendering (`kubectl kustomize`): the objects each overlay holds, RBAC that matches what
  the code reads and writes, a ConfigMap the agent accepts, pod templates that meet
  OpenShift's restricted-v2 SCC.
- The session's API server: a server-side dry run of every rendered object, pod templates
  admitted under the Pod Security "restricted" profile, and `prepull-agent once` run as the
  `prepull-agent/prepull-agent` ServiceAccount with exactly the base's RBAC.

The module installs the base (namespace `prepull-agent`, ClusterRole and bindings, the Role
in `openshift-operators`) and removes it at the end; the sample KubernetesImagePuller it
writes to is put back as it was after each test.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from kubernetes.config import new_client_from_config

from agent.events import EVENTS_PATH
from agent.kube import kinds
from agent.observe import SOURCES
from agent.puller import (
    DEFAULT_DAEMONSET_NAME,
    DEFAULT_DEPLOYMENT_NAME,
    OWNED_ANNOTATION,
    puller_view,
    read_owned,
    read_puller,
)
from agent.report import puller_role_rules
from agent.settings import load_settings
from tests.harness.cluster import ClusterUnavailable, LocalCluster, binaries_dir
from tests.harness.loader import apply_objects, request
from tests.integration.conftest import ADMIN_ENTRY, ALL_READS, REPO_ROOT

JSON = dict[str, Any]

MANIFESTS = REPO_ROOT / "manifests"
OVERLAYS = ("deployment", "cronjob", "deployment-monitoring", "deployment-gpu")
AGENT_NS = "prepull-agent"
SA = "prepull-agent"
PULLER_NS = "openshift-operators"
KSERVE_NS = "redhat-ods-applications"  # KServe's namespace on OpenShift AI: the applications namespace
PULLER = "image-puller"
LEASE = "prepull-agent"
SUMMARY = "prepull-agent-startup"
IMAGE = "quay.io/prepull-agent/prepull-agent:0.1.0"
CONFIG_FILE = "/etc/prepull-agent/config.yaml"

BASE = {
    ("Namespace", "", AGENT_NS),
    ("ServiceAccount", AGENT_NS, SA),
    ("ConfigMap", AGENT_NS, "prepull-agent-config"),
    ("ClusterRole", "", "prepull-agent-reader"),
    ("ClusterRoleBinding", "", "prepull-agent-reader"),
    ("Role", PULLER_NS, "prepull-agent-puller"),
    ("RoleBinding", PULLER_NS, "prepull-agent-puller"),
    ("Role", KSERVE_NS, "prepull-agent-kserve-config"),
    ("RoleBinding", KSERVE_NS, "prepull-agent-kserve-config"),
    ("Role", AGENT_NS, "prepull-agent-leader"),
    ("RoleBinding", AGENT_NS, "prepull-agent-leader"),
    ("ConfigMap", AGENT_NS, "prepull-agent-startup"),
    ("Role", AGENT_NS, "prepull-agent-startup"),
    ("RoleBinding", AGENT_NS, "prepull-agent-startup"),
    ("NetworkPolicy", AGENT_NS, "prepull-agent"),
}
WORKLOADS = {
    "deployment": {
        ("Deployment", AGENT_NS, "prepull-agent"),
        ("Service", AGENT_NS, "prepull-agent-metrics"),
        ("PodDisruptionBudget", AGENT_NS, "prepull-agent"),
    },
    "cronjob": {("CronJob", AGENT_NS, "prepull-agent")},
}
WORKLOADS["deployment-monitoring"] = WORKLOADS["deployment"] | {
    ("ServiceMonitor", AGENT_NS, "prepull-agent"),
    ("PrometheusRule", AGENT_NS, "prepull-agent"),
}
GPU_NS = "image-puller-gpu"
WORKLOADS["deployment-gpu"] = WORKLOADS["deployment"] | {
    ("Namespace", "", GPU_NS),
    ("KubernetesImagePuller", GPU_NS, PULLER),
    ("Role", GPU_NS, "prepull-agent-puller"),
    ("RoleBinding", GPU_NS, "prepull-agent-puller"),
}
MONITORING_CRDS = REPO_ROOT / "tests" / "data" / "crds" / "monitoring.coreos.com.yaml"


# ---------------------------------------------------------------------------------------
# Rendering


@pytest.fixture(scope="module")
def kubectl() -> Path:
    """The kubectl built with the local cluster's binaries (it embeds kustomize), else the
    one on PATH (KUBEBUILDER_ASSETS may hold only kube-apiserver and etcd)."""
    try:
        built = binaries_dir() / "kubectl"
        reason = f"no kubectl in {built.parent}"
    except ClusterUnavailable as e:
        built, reason = None, str(e)
    if built is not None and built.is_file():
        return built
    on_path = shutil.which("kubectl")
    if on_path:
        return Path(on_path)
    if os.environ.get("CI") == "true":
        pytest.fail(f"no kubectl under CI: {reason}", pytrace=False)
    pytest.skip(f"the manifest tests need kubectl (`make binaries`): {reason}")


def _kubectl(kubectl: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(kubectl), *args], input=stdin, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.fixture(scope="module")
def rendered(kubectl: Path) -> dict[str, tuple[str, list[JSON]]]:
    """overlay -> (the YAML `kubectl kustomize` prints, its objects)."""
    out = {}
    for overlay in OVERLAYS:
        done = _kubectl(kubectl, "kustomize", str(MANIFESTS / "overlays" / overlay))
        assert done.returncode == 0, f"kubectl kustomize overlays/{overlay}:\n{done.stderr}"
        out[overlay] = (done.stdout, [d for d in yaml.safe_load_all(done.stdout) if d])
    return out


def key(obj: JSON) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"]


def find(objs: list[JSON], kind: str, name: str) -> JSON:
    matches = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind} {name}: {len(matches)} rendered"
    return matches[0]


def pod_templates(objs: list[JSON]) -> list[tuple[str, JSON]]:
    """(kind/name, pod template) of every workload."""
    found = []
    for o in objs:
        spec = o.get("spec") or {}
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
            found.append((f"{o['kind']}/{o['metadata']['name']}", spec["template"]))
        elif o["kind"] == "CronJob":
            found.append((f"CronJob/{o['metadata']['name']}", spec["jobTemplate"]["spec"]["template"]))
        elif o["kind"] == "Pod":
            found.append((f"Pod/{o['metadata']['name']}", {"metadata": o["metadata"], "spec": spec}))
    return found


def only_container(template: JSON) -> JSON:
    containers = template["spec"]["containers"]
    assert [c["name"] for c in containers] == ["agent"]
    return containers[0]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_renders_the_base_and_its_workload(rendered, overlay):
    _, objs = rendered[overlay]
    keys = [key(o) for o in objs]
    assert len(keys) == len(set(keys)), "an object is rendered twice"
    assert set(keys) == BASE | WORKLOADS[overlay]
    # No kustomize-wide namespace: each puller's Role stays in that puller's namespace, the
    # GPU pool's puller in its own, and everything else is in the agent's.
    for kind, namespace, name in keys:
        if kind in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert namespace == ""
        elif name == "prepull-agent-puller":
            assert namespace in (PULLER_NS, GPU_NS)
        elif name == "prepull-agent-kserve-config":
            assert namespace == KSERVE_NS
        elif kind == "KubernetesImagePuller":
            assert namespace == GPU_NS
        else:
            assert namespace == AGENT_NS, (kind, name)


def test_the_reader_role_grants_get_and_list_on_exactly_what_the_agent_reads(rendered):
    _, objs = rendered["deployment"]
    rules = find(objs, "ClusterRole", "prepull-agent-reader")["rules"]
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        assert not rule.get("resourceNames"), rule
        assert not rule.get("nonResourceURLs"), rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    assert all(verbs == {"get", "list"} for verbs in granted.values()), granted
    # What the code lists: every source of agent/observe.py, the DSCInitializations, and the
    # kubelet's events (agent/events.py, a core path).
    read_by_code = {(s.kind.group, s.kind.plural) for s in SOURCES}
    read_by_code.add((kinds.DSC_INITIALIZATION.group, kinds.DSC_INITIALIZATION.plural))
    assert EVENTS_PATH == "/api/v1/events"
    read_by_code.add(("", "events"))
    assert set(granted) == read_by_code
    assert set(granted) == {(g, r) for g, resources in ALL_READS.items() for r in resources}


def test_the_only_writes_granted_are_the_puller_patch_its_events_the_lease_and_the_startup_summary(rendered):
    _, objs = rendered["deployment"]
    for role in (o for o in objs if o["kind"] in ("Role", "ClusterRole")):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(field, []), (role["metadata"]["name"], rule)

    puller_rules = find(objs, "Role", "prepull-agent-puller")["rules"]
    assert puller_rules == [
        {"apiGroups": [kinds.IMAGE_PULLER.group], "resources": [kinds.IMAGE_PULLER.plural],
         "resourceNames": [PULLER], "verbs": ["get", "patch"]},
        # The puller's workloads, read by name only; Events posted on the CR (issue 13).
        {"apiGroups": [kinds.DEPLOYMENT.group], "resources": [kinds.DEPLOYMENT.plural],
         "resourceNames": [DEFAULT_DEPLOYMENT_NAME], "verbs": ["get"]},
        {"apiGroups": [kinds.DAEMON_SET.group], "resources": [kinds.DAEMON_SET.plural],
         "resourceNames": [DEFAULT_DAEMONSET_NAME], "verbs": ["get"]},
        {"apiGroups": [kinds.EVENT.group], "resources": [kinds.EVENT.plural], "verbs": ["create", "patch"]},
    ]
    assert puller_rules == puller_role_rules(PULLER)  # what the table suggests for a new puller

    # KServe's ConfigMap: get, by name, nothing else (agent/observe.py `_storage_config`)
    kserve_rules = find(objs, "Role", "prepull-agent-kserve-config")["rules"]
    assert kserve_rules == [{"apiGroups": [""], "resources": [kinds.CONFIG_MAP.plural],
                             "resourceNames": ["inferenceservice-config"], "verbs": ["get"]}]

    leader_rules = find(objs, "Role", "prepull-agent-leader")["rules"]
    by_verb = {verb: rule.get("resourceNames") for rule in leader_rules for verb in rule["verbs"]}
    assert set(by_verb) == {"create", "get", "update"}
    assert by_verb["create"] is None  # create cannot be limited by name
    assert all(by_verb[v] == [LEASE] for v in ("get", "update"))
    assert all(r["apiGroups"] == [kinds.LEASE.group] and r["resources"] == [kinds.LEASE.plural] for r in leader_rules)

    # The start-up summary: its one ConfigMap, read and updated by name, never created.
    assert find(objs, "Role", SUMMARY)["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [SUMMARY], "verbs": ["get", "update"]}]

    # Every binding gives its own role to the agent's ServiceAccount, and to nobody else.
    roles = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objs
             if o["kind"] in ("Role", "ClusterRole")}
    for binding in (o for o in objs if o["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        ref = binding["roleRef"]
        role_ns = binding["metadata"].get("namespace", "") if ref["kind"] == "Role" else ""
        assert (ref["kind"], role_ns, ref["name"]) in roles
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": SA, "namespace": AGENT_NS}]


def test_the_config_map_is_a_configuration_the_agent_accepts_and_matches_rbac(rendered, tmp_path):
    _, objs = rendered["deployment"]
    config = tmp_path / "config.yaml"
    config.write_text(find(objs, "ConfigMap", "prepull-agent-config")["data"]["config.yaml"])
    settings = load_settings(config, env={})

    puller_role = find(objs, "Role", "prepull-agent-puller")
    assert [(t.namespace, t.name, t.create) for t in settings.targets] == [
        (puller_role["metadata"]["namespace"], name, False) for name in puller_role["rules"][0]["resourceNames"]]
    election = settings.serve.leader_election
    assert election.enabled
    assert election.lease_namespace == ""
    assert [election.lease_name] == find(objs, "Role", "prepull-agent-leader")["rules"][1]["resourceNames"]
    assert settings.startup.enabled and settings.startup.summary_namespace == ""
    assert [settings.startup.summary_name] == find(objs, "Role", SUMMARY)["rules"][0]["resourceNames"]
    summary = find(objs, "ConfigMap", SUMMARY)
    assert summary["metadata"]["namespace"] == AGENT_NS and not summary.get("data")
    port = only_container(find(objs, "Deployment", "prepull-agent")["spec"]["template"])["ports"]
    assert port == [{"name": "metrics", "containerPort": settings.serve.port, "protocol": "TCP"}]
    assert settings.logging.format == "json"


def test_the_gpu_target_adds_a_puller_per_pool_with_rbac_for_exactly_that_cr(rendered, tmp_path):
    """components/gpu-target: the GPU pool's puller in its own namespace, selecting the GPU
    nodes and tolerating their taint; the agent's targets name both pullers, and each
    target has a Role that lets the agent read and patch that CR only, get its puller's
    Deployment and DaemonSet, and post Events."""
    _, objs = rendered["deployment-gpu"]
    container = only_container(find(objs, "Deployment", "prepull-agent")["spec"]["template"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    config = tmp_path / "config.yaml"
    config.write_text(find(objs, "ConfigMap", "prepull-agent-config")["data"]["config.yaml"])
    settings = load_settings(config, env={"PREPULL_TARGET": env["PREPULL_TARGET"]})
    assert [(t.namespace, t.name) for t in settings.targets] == [(PULLER_NS, PULLER), (GPU_NS, PULLER)]
    for target in settings.targets:
        role = next(o for o in objs if key(o) == ("Role", target.namespace, "prepull-agent-puller"))
        assert role["rules"] == puller_role_rules(target.name)
    gpu = read_puller({**find(objs, "KubernetesImagePuller", PULLER), "metadata": {
        "name": PULLER, "namespace": GPU_NS, "resourceVersion": "1"}})
    assert gpu.node_selector == {"nvidia.com/gpu.present": "true"}
    assert [(t.key, t.operator, t.effect) for t in gpu.tolerations] == [("nvidia.com/gpu", "Exists", "NoSchedule")]
    assert gpu.entries(), "an empty list makes the operator pull its default images"


def restricted_v2_violations(template: JSON) -> list[str]:
    """What OpenShift's restricted-v2 SCC (and this project's rules on top) would refuse."""
    spec = template["spec"]
    pod_sc = spec.get("securityContext") or {}
    problems = []
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            problems.append(f"pod {field}")
    for field in ("runAsUser", "runAsGroup", "fsGroup", "supplementalGroups"):
        if field in pod_sc:
            problems.append(f"pod securityContext.{field} is fixed: OpenShift assigns it")
    if pod_sc.get("runAsNonRoot") is not True:
        problems.append("pod runAsNonRoot is not true")
    if (pod_sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problems.append("pod seccompProfile is not RuntimeDefault")
    for volume in spec.get("volumes", []):
        if "hostPath" in volume:
            problems.append(f"volume {volume['name']} is a hostPath")
    if spec.get("automountServiceAccountToken") is not True:
        problems.append("automountServiceAccountToken is not true: the agent needs its token")
    for c in spec.get("initContainers", []) + spec["containers"]:
        sc = c.get("securityContext") or {}
        name = c["name"]
        for field in ("runAsUser", "runAsGroup"):
            if field in sc:
                problems.append(f"{name}: securityContext.{field} is fixed")
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        caps = sc.get("capabilities") or {}
        if caps.get("drop") != ["ALL"] or caps.get("add"):
            problems.append(f"{name}: capabilities are not drop [ALL] with nothing added")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: readOnlyRootFilesystem is not true")
        if sc.get("seccompProfile", {"type": "RuntimeDefault"})["type"] != "RuntimeDefault":
            problems.append(f"{name}: seccompProfile is not RuntimeDefault")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            problems.append(f"{name}: hostPort")
        resources = c.get("resources") or {}
        for section in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in resources.get(section, {}):
                    problems.append(f"{name}: no {resource} {section[:-1]}")
    return problems


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pod_templates_meet_restricted_v2(rendered, overlay):
    _, objs = rendered[overlay]
    templates = pod_templates(objs)
    assert len(templates) == 1
    for where, template in templates:
        assert restricted_v2_violations(template) == [], where
        spec = template["spec"]
        container = only_container(template)
        assert container["image"] == IMAGE
        assert spec["serviceAccountName"] == SA
        # The only writable path is an emptyDir at /tmp.
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
        assert set(volumes) == {m["name"] for m in mounts.values()}
        # The configuration: --config names a file of the mounted ConfigMap.
        args = container["args"]
        assert args[args.index("--config") + 1] == CONFIG_FILE
        config_mount = mounts[os.path.dirname(CONFIG_FILE)]
        assert config_mount["readOnly"] is True
        assert volumes[config_mount["name"]]["configMap"]["name"] == "prepull-agent-config"


def test_the_restricted_v2_check_catches_what_it_should(rendered):
    _, objs = rendered["deployment"]
    (_, good), = pod_templates(objs)
    bad = copy.deepcopy(good)
    bad["spec"]["securityContext"]["runAsUser"] = 1000
    bad["spec"]["hostNetwork"] = True
    bad["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/var"}})
    container = bad["spec"]["containers"][0]
    container["securityContext"].update(privileged=True, allowPrivilegeEscalation=True, readOnlyRootFilesystem=False)
    container["securityContext"]["capabilities"] = {"drop": ["ALL"], "add": ["NET_ADMIN"]}
    del container["resources"]["limits"]
    problems = " | ".join(restricted_v2_violations(bad))
    for expected in ("runAsUser is fixed", "hostNetwork", "hostPath", "privileged", "allowPrivilegeEscalation",
                     "readOnlyRootFilesystem", "capabilities", "no cpu limit", "no memory limit"):
        assert expected in problems


def test_the_deployment_serves_with_leader_election_and_probes(rendered):
    _, objs = rendered["deployment"]
    deployment = find(objs, "Deployment", "prepull-agent")
    template = deployment["spec"]["template"]
    spec, container = template["spec"], only_container(template)
    assert deployment["spec"]["replicas"] == 2
    assert container["args"][0] == "serve"
    assert "--dry-run" not in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}  # the Lease holder
    assert not [name for name in env if name.startswith("PREPULL_")]  # all in the ConfigMap
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["enableServiceLinks"] is False
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["ports"][0]["name"] == "metrics"
    assert container["ports"][0]["containerPort"] == 8080

    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= template["metadata"]["labels"].items()
    service = find(objs, "Service", "prepull-agent-metrics")
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8080, "protocol": "TCP", "targetPort": "metrics"}]
    # The CronJob's pods, if both are installed, serve nothing: the Service must skip them.
    (_, job_template), = pod_templates(rendered["cronjob"][1])
    assert not service["spec"]["selector"].items() <= job_template["metadata"]["labels"].items()
    pdb = find(objs, "PodDisruptionBudget", "prepull-agent")
    assert pdb["spec"]["selector"]["matchLabels"] == selector


def test_the_disruption_budget_never_blocks_a_drain_with_unready_pods(rendered):
    """Two unready replicas (a crash loop, an API server outage) must not block node drains
    and cluster upgrades: an unready pod may always be evicted."""
    pdb = find(rendered["deployment"][1], "PodDisruptionBudget", "prepull-agent")["spec"]
    assert pdb["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert pdb["maxUnavailable"] == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_has_the_recommended_labels_and_no_selector_uses_the_version(rendered, overlay):
    import tomllib

    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    expected = {"app.kubernetes.io/name": "prepull-agent", "app.kubernetes.io/instance": "prepull-agent",
                "app.kubernetes.io/version": version, "app.kubernetes.io/part-of": "prepull-agent",
                "app.kubernetes.io/managed-by": "kustomize"}
    text, objs = rendered[overlay]
    for obj in objs:
        assert expected.items() <= obj["metadata"].get("labels", {}).items(), key(obj)
    for where, template in pod_templates(objs):
        assert expected.items() <= template["metadata"]["labels"].items(), where
    for obj in objs:
        selector = (obj.get("spec") or {}).get("selector") or {}
        labels = selector.get("matchLabels", selector if obj["kind"] == "Service" else {})
        assert "app.kubernetes.io/version" not in labels, key(obj)


def test_only_the_monitoring_namespaces_may_connect_and_only_to_the_metrics_port(rendered):
    _, objs = rendered["deployment"]
    policy = find(objs, "NetworkPolicy", "prepull-agent")["spec"]
    (_, template), = pod_templates(objs)
    (_, job_template), = pod_templates(rendered["cronjob"][1])
    for labels in (template["metadata"]["labels"], job_template["metadata"]["labels"]):
        assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["policyTypes"] == ["Ingress"]  # the agent's own requests out are not restricted
    (rule,) = policy["ingress"]
    (source,) = rule["from"]
    assert set(source) == {"namespaceSelector"}  # no ipBlock, no pods of other namespaces
    (expression,) = source["namespaceSelector"]["matchExpressions"]
    assert expression == {"key": "kubernetes.io/metadata.name", "operator": "In",
                          "values": ["openshift-monitoring", "openshift-user-workload-monitoring"]}
    assert rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert only_container(template)["ports"][0]["name"] == "metrics"


def test_the_service_monitor_scrapes_the_metrics_service(rendered):
    _, objs = rendered["deployment-monitoring"]
    monitor = find(objs, "ServiceMonitor", "prepull-agent")["spec"]
    service = find(objs, "Service", "prepull-agent-metrics")
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["endpoints"]] == [p["name"] for p in service["spec"]["ports"]]
    assert monitor["endpoints"][0]["path"] == "/metrics"


# The series a standby exports at their start values (it runs no cycle): a rule must never
# read one replica's value of them.
PER_REPLICA = ("prepull_agent_last_success_timestamp_seconds", "prepull_agent_consecutive_failed_cycles",
               "prepull_agent_target_failed", "prepull_agent_source_failed", "prepull_agent_leader")


def test_the_alerts_are_right_with_two_replicas(rendered):
    """The standby exports last_success 0: an alert on one pod's value would fire on it
    forever. Every rule aggregates the per-replica series with max over the Service's pods,
    reads only metrics the agent exports, and selects the Service's job."""
    import re

    from agent.metrics import Metrics

    _, objs = rendered["deployment-monitoring"]
    rule = find(objs, "PrometheusRule", "prepull-agent")
    alerts = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    assert {a["alert"] for a in alerts} >= {"PrepullAgentNoRecentSuccess", "PrepullAgentNoLeader",
                                            "PrepullAgentCyclesFailing", "PrepullAgentSourceFailing"}
    exported = {m.name + ("_total" if m.type == "counter" else "") for m in Metrics(targets=[]).registry.collect()}
    job = find(objs, "Service", "prepull-agent-metrics")["metadata"]["name"]
    for alert in alerts:
        expr = " ".join(alert["expr"].split())
        for metric in re.findall(r"\b(prepull_agent_[a-z_]+)\{", expr):
            assert metric in exported, (alert["alert"], metric)
            assert f'{metric}{{job="{job}"}}' in expr, (alert["alert"], metric)
            if metric in PER_REPLICA:
                assert re.search(r"max by \([a-z, ]+\) \(" + metric, expr), (alert["alert"], expr)
        assert alert["labels"]["severity"] in ("info", "warning", "critical")
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]
        assert re.fullmatch(r"\d+[mh]", alert["for"]), alert["alert"]


def test_the_cronjob_runs_one_cycle_at_a_time(rendered):
    _, objs = rendered["cronjob"]
    cronjob = find(objs, "CronJob", "prepull-agent")["spec"]
    job = cronjob["jobTemplate"]["spec"]
    container = only_container(job["template"])
    assert container["args"][0] == "once"
    assert "--dry-run" not in container["args"]
    assert len(cronjob["schedule"].split()) == 5
    assert cronjob["concurrencyPolicy"] == "Forbid"
    assert cronjob["successfulJobsHistoryLimit"] >= 1
    assert cronjob["failedJobsHistoryLimit"] >= 1
    assert job["backoffLimit"] == 2
    assert job["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure")
    assert "livenessProbe" not in container
    assert "ports" not in container
    for rule in job.get("podFailurePolicy", {}).get("rules", []):
        if "onExitCodes" in rule:
            assert rule["onExitCodes"]["containerName"] == container["name"]


def test_the_job_fails_at_once_on_what_a_retry_cannot_fix_and_on_a_partial_run(rendered):
    from agent.exits import Exit

    job = find(rendered["cronjob"][1], "CronJob", "prepull-agent")["spec"]["jobTemplate"]["spec"]
    (fail,) = [r for r in job["podFailurePolicy"]["rules"] if r["action"] == "FailJob"]
    assert fail["onExitCodes"]["operator"] == "In"
    assert fail["onExitCodes"]["values"] == [Exit.USAGE, Exit.TARGET, Exit.PARTIAL]


# ---------------------------------------------------------------------------------------
# Against the session's API server


def _sa_client(kubeconfig: Path) -> ApiClient:
    return new_client_from_config(str(kubeconfig))


def _status(api_client: ApiClient, method: str, path: str, body: JSON | None = None,
            query: dict[str, Any] | None = None) -> int:
    """The HTTP status of one request (2xx included)."""
    try:
        request(api_client, method, path, body, query)
    except ApiException as e:
        return int(e.status)
    return 200


def _merge_patch(api_client: ApiClient, path: str, body: JSON) -> None:
    api_client.call_api(path, "PATCH", header_params={"Accept": "application/json",
                                                     "Content-Type": "application/merge-patch+json"},
                        body=body, auth_settings=["BearerToken"], _preload_content=False)


@pytest.fixture(scope="module")
def installed(sample_cluster: LocalCluster, rendered) -> Iterator[list[JSON]]:
    """The base applied for real (namespace, ServiceAccount, RBAC, ConfigMap), as an admin
    would with `oc apply -k`; removed at the end of the module. Yields the base objects."""
    _, objs = rendered["deployment"]
    base = [o for o in objs if key(o) in BASE]
    with sample_cluster.new_api_client() as admin:
        apply_objects(admin, base)
        try:
            yield base
        finally:
            for o in base:
                kind, namespace, name = key(o)
                if kind in ("ClusterRole", "ClusterRoleBinding") or namespace in (PULLER_NS, KSERVE_NS):
                    group = "rbac.authorization.k8s.io/v1"
                    scope = f"/namespaces/{namespace}" if namespace else ""
                    plural = kind.lower() + "s"
                    _status(admin, "DELETE", f"/apis/{group}{scope}/{plural}/{name}")
            sample_cluster.delete_namespace(admin, AGENT_NS)


@pytest.fixture(scope="module")
def agent_kubeconfig(installed, sample_cluster: LocalCluster, tmp_path_factory) -> Path:
    """A kubeconfig authenticating as prepull-agent/prepull-agent and nothing more."""
    token = sample_cluster.token_for(AGENT_NS, SA)
    return sample_cluster.kubeconfig_for_token(token, tmp_path_factory.mktemp("sa") / "agent.kubeconfig")


@pytest.fixture
def sample_puller(api_client: ApiClient) -> Iterator[Callable[[], JSON]]:
    """The sample openshift-operators/image-puller, its spec.images and ownership
    annotation put back afterwards (other tests expect only the administrator's entry)."""
    path = kinds.IMAGE_PULLER.path(namespace=PULLER_NS, name=PULLER)
    saved = request(api_client, "GET", path)
    yield lambda: request(api_client, "GET", path)
    _merge_patch(api_client, path, {
        "metadata": {"annotations": {OWNED_ANNOTATION: saved["metadata"].get("annotations", {}).get(OWNED_ANNOTATION)}},
        "spec": {"images": saved["spec"].get("images")},
    })


@pytest.fixture(scope="module")
def monitoring_crds(sample_cluster: LocalCluster) -> Iterator[None]:
    """ServiceMonitor and PrometheusRule served (tests/data/crds), as on OpenShift. They stay
    for the session: removing a CRD races namespace clean-up, which lists every collection."""
    crds = [d for d in yaml.safe_load_all(MONITORING_CRDS.read_text()) if d]
    with sample_cluster.new_api_client() as admin:
        apply_objects(admin, crds)
        for crd in crds:
            _wait_established(admin, crd["metadata"]["name"])
    yield


def _wait_established(api_client: ApiClient, name: str) -> None:
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        crd = request(api_client, "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        if any(c["type"] == "Established" and c["status"] == "True" for c in crd.get("status", {}).get("conditions", [])):
            return
        time.sleep(0.2)
    pytest.fail(f"CRD {name} not established")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_passes_a_server_side_dry_run(installed, monitoring_crds, kubectl, sample_cluster,
                                                            rendered, overlay):
    text, objs = rendered[overlay]
    done = _kubectl(kubectl, "--kubeconfig", str(sample_cluster.kubeconfig), "apply", "--dry-run=server",
                    "-f", "-", stdin=text)
    assert done.returncode == 0, done.stderr
    assert "PodSecurity" not in done.stderr, done.stderr  # "would violate PodSecurity ..."
    lines = [line for line in done.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(lines) == len(objs), done.stdout


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pod_templates_are_admitted_under_pod_security_restricted(installed, api_client, rendered, overlay):
    namespace = request(api_client, "GET", f"/api/v1/namespaces/{AGENT_NS}")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    (where, template), = pod_templates(rendered[overlay][1])
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": f"psa-{overlay}", "namespace": AGENT_NS, "labels": template["metadata"]["labels"]},
           "spec": template["spec"]}
    pods = f"/api/v1/namespaces/{AGENT_NS}/pods"
    request(api_client, "POST", pods, pod, {"dryRun": "All"})  # raises 403 if refused

    # The control: the same pod allowed to escalate privileges is refused, so the check bites.
    del pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"]
    with pytest.raises(ApiException) as refused:
        request(api_client, "POST", pods, pod, {"dryRun": "All"})
    assert refused.value.status == 403, where
    assert "PodSecurity" in str(refused.value.body), where


def test_once_as_the_service_account_keeps_the_sample_puller_current(
        agent, agent_kubeconfig, installed, sample_puller, tmp_path):
    before = sample_puller()
    assert puller_view(before["spec"]["images"]) == dict([ADMIN_ENTRY.split("=")])
    config = tmp_path / "config.yaml"  # the ConfigMap's file, as the pod mounts it
    config.write_text(next(o for o in installed if o["kind"] == "ConfigMap")["data"]["config.yaml"])

    run = agent("once", "--config", str(config), kubeconfig=agent_kubeconfig)

    assert run.code == 0, (run.out, run.events)
    doc = run.target()
    assert doc["target"] == {"namespace": PULLER_NS, "name": PULLER}
    assert run.json()["cycle"]["failed"] == {}, "a kind the agent reads is not granted"
    assert not run.logged("listing failed")
    assert doc["written"] is True
    after = sample_puller()
    images = after["spec"]["images"]
    assert images == doc["images_after"]
    view = puller_view(images)
    admin_name, admin_image = ADMIN_ENTRY.split("=")
    assert view[admin_name] == admin_image
    owned = read_owned(after["metadata"]["annotations"])
    assert owned
    assert admin_name not in owned
    assert {name: view[name] for name in owned} == owned
    assert set(view) == set(owned) | {admin_name}


def test_the_service_account_cannot_touch_other_pullers_secrets_or_workloads(
        agent_kubeconfig, api_client, installed):
    other = {"apiVersion": "che.eclipse.org/v1alpha1", "kind": "KubernetesImagePuller",
             "metadata": {"name": "other", "namespace": PULLER_NS}, "spec": {"images": ""}}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "prepull-test-secret", "namespace": PULLER_NS},
              "stringData": {"token": "not for the agent"}}
    apply_objects(api_client, [other, secret])
    pullers = kinds.IMAGE_PULLER.path(namespace=PULLER_NS)
    secrets = f"/api/v1/namespaces/{PULLER_NS}/secrets"
    try:
        with _sa_client(agent_kubeconfig) as sa:
            # The positive control: the identity works, and reaches its own puller.
            assert _status(sa, "GET", f"{pullers}/{PULLER}") == 200
            assert _status(sa, "GET", kinds.NOTEBOOK.path()) == 200

            patch = {"spec": {"images": "x=quay.io/evil/x:1;"}}
            try:
                _merge_patch(sa, f"{pullers}/other", patch)
                status = 200
            except ApiException as e:
                status = int(e.status)
            assert status == 403, "patched a KubernetesImagePuller it does not own"
            assert _status(sa, "GET", f"{pullers}/other") == 403
            assert _status(sa, "GET", pullers) == 403  # list
            assert _status(sa, "POST", pullers, {**other, "metadata": {"name": "mine", "namespace": PULLER_NS}}) == 403
            assert _status(sa, "DELETE", f"{pullers}/{PULLER}") == 403

            assert _status(sa, "GET", secrets) == 403
            assert _status(sa, "GET", f"{secrets}/prepull-test-secret") == 403
            assert _status(sa, "GET", "/api/v1/secrets") == 403

            # Reads only: a workload it lists is not one it may change.
            notebook = kinds.NOTEBOOK.path(namespace="team-vision", name="vision-train")
            assert _status(sa, "GET", notebook) == 200
            assert _status(sa, "DELETE", notebook) == 403

            # The puller's Deployment and DaemonSet: get by name (none here: 404, not 403), nothing more.
            for kind, name in ((kinds.DEPLOYMENT, DEFAULT_DEPLOYMENT_NAME), (kinds.DAEMON_SET, DEFAULT_DAEMONSET_NAME)):
                assert _status(sa, "GET", kind.path(namespace=PULLER_NS, name=name)) == 404
                assert _status(sa, "GET", kind.path(namespace=PULLER_NS, name="other")) == 403
                assert _status(sa, "GET", kind.path(namespace=PULLER_NS)) == 403  # list
                assert _status(sa, "DELETE", kind.path(namespace=PULLER_NS, name=name)) == 403
                assert _status(sa, "GET", kind.path(namespace="team-vision", name=name)) == 403
            # Events: create (and patch) in the puller's namespace only; never read or delete.
            events = kinds.EVENT.path(namespace=PULLER_NS)
            event = {"apiVersion": "events.k8s.io/v1", "kind": "Event",
                     "metadata": {"name": "prepull-rbac-probe", "namespace": PULLER_NS},
                     "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "prepull-agent.io/prepull-agent",
                     "reportingInstance": "probe", "action": "CheckPuller", "reason": "Probe", "type": "Normal",
                     "regarding": {"kind": "KubernetesImagePuller", "namespace": PULLER_NS, "name": PULLER}}
            assert _status(sa, "POST", events, event) == 200
            assert _status(sa, "GET", events) == 403
            assert _status(sa, "DELETE", f"{events}/prepull-rbac-probe") == 403
            assert _status(sa, "POST", kinds.EVENT.path(namespace="team-vision"),
                           {**event, "metadata": {"name": "prepull-rbac-probe", "namespace": "team-vision"}}) == 403
        assert request(api_client, "GET", f"{pullers}/other")["spec"]["images"] == ""
    finally:
        _status(api_client, "DELETE", f"{pullers}/other")
        _status(api_client, "DELETE", f"{secrets}/prepull-test-secret")
        _status(api_client, "DELETE", f"{kinds.EVENT.path(namespace=PULLER_NS)}/prepull-rbac-probe")


def test_the_service_account_may_hold_its_lease_and_no_other(agent_kubeconfig, api_client, installed):
    leases = kinds.LEASE.path(namespace=AGENT_NS)
    request(api_client, "POST", leases, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                         "metadata": {"name": "someone-else", "namespace": AGENT_NS},
                                         "spec": {"holderIdentity": "someone"}})
    try:
        with _sa_client(agent_kubeconfig) as sa:
            # What agent/leader.py does: create, read, renew (PUT with the resourceVersion).
            created = request(sa, "POST", leases, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                                   "metadata": {"name": LEASE, "namespace": AGENT_NS},
                                                   "spec": {"holderIdentity": "agent-0", "leaseDurationSeconds": 30}})
            lease = request(sa, "GET", f"{leases}/{LEASE}")
            assert lease["metadata"]["uid"] == created["metadata"]["uid"]
            lease["spec"]["holderIdentity"] = "agent-1"
            assert request(sa, "PUT", f"{leases}/{LEASE}", lease)["spec"]["holderIdentity"] == "agent-1"

            other = request(api_client, "GET", f"{leases}/someone-else")
            other["spec"]["holderIdentity"] = "agent-0"
            assert _status(sa, "PUT", f"{leases}/someone-else", other) == 403
            assert _status(sa, "GET", f"{leases}/someone-else") == 403
            assert _status(sa, "GET", kinds.LEASE.path(namespace=PULLER_NS, name=LEASE)) == 403
            assert _status(sa, "POST", kinds.LEASE.path(namespace=PULLER_NS),
                           {**created, "metadata": {"name": LEASE, "namespace": PULLER_NS}}) == 403
    finally:
        _status(api_client, "DELETE", f"{leases}/someone-else")
        _status(api_client, "DELETE", f"{leases}/{LEASE}")


def test_the_service_account_may_keep_its_startup_summary_and_no_other_configmap(
        agent_kubeconfig, api_client, installed):
    configmaps = f"/api/v1/namespaces/{AGENT_NS}/configmaps"
    with _sa_client(agent_kubeconfig) as sa:
        # What agent/events.py does: read it, update it with the resourceVersion it read.
        summary = request(sa, "GET", f"{configmaps}/{SUMMARY}")
        summary["data"] = {"summary.json": "{}"}
        assert request(sa, "PUT", f"{configmaps}/{SUMMARY}", summary)["data"] == {"summary.json": "{}"}
        assert _status(sa, "GET", f"{configmaps}/prepull-agent-config") == 403
        assert _status(sa, "GET", configmaps) == 403  # list
        assert _status(sa, "POST", configmaps, {"apiVersion": "v1", "kind": "ConfigMap",
                                                "metadata": {"name": "mine", "namespace": AGENT_NS}}) == 403
        assert _status(sa, "DELETE", f"{configmaps}/{SUMMARY}") == 403
        assert _status(sa, "GET", f"/api/v1/namespaces/{PULLER_NS}/configmaps/{SUMMARY}") == 403
        # The events it reads: listed across namespaces, as it lists them; never written.
        assert _status(sa, "GET", "/api/v1/events", query={"fieldSelector": "reason=Pulled", "limit": 1}) == 200
        assert _status(sa, "POST", f"/api/v1/namespaces/{AGENT_NS}/events",
                       {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "x", "namespace": AGENT_NS},
                        "involvedObject": {"kind": "Pod", "name": "p", "namespace": AGENT_NS}}) == 403
    request(api_client, "PUT", f"{configmaps}/{SUMMARY}",
            {**request(api_client, "GET", f"{configmaps}/{SUMMARY}"), "data": {}})
