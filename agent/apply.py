"""Apply: read the target puller CR and its puller's workloads, and write a Plan to the CR
with one checked patch.

The write is one JSON merge patch of `spec.images` and the ownership annotation, carrying
`metadata.resourceVersion`: if anyone changed the CR since it was read, the server answers
409 and nothing is written. The object the server returns is compared with the plan, so
a write the server did not keep as sent is an error, not a silent success. A list the
puller would read no entry from is never sent (`agent.puller.has_entry`): the planner
never plans one, and this is the last check before the wire.

`read_workloads` GETs the puller's Deployment and DaemonSet by the names the CR gives (the
only reads the RBAC allows on them: `get`, by name); it never fails the cycle: what could
not be read is said in `agent.status.Seen`.
"""

from __future__ import annotations

from dataclasses import replace

from agent.kube import kinds
from agent.kube.client import JSON, Kube
from agent.kube.errors import Forbidden, KubeError, NotFound
from agent.plan import Plan
from agent.puller import (
    DEFAULT_PULLER_IMAGE,
    Entry,
    InvalidPullerCR,
    PullerCR,
    PullerState,
    has_entry,
    is_object_name,
    read_puller,
    render_images,
)
from agent.settings import Target
from agent.status import Seen, read_daemonset, read_deployment

# What a CR the agent creates starts with: one harmless entry (the puller's own image, on
# every node already), owned by the agent, since an empty list crash-loops the puller and ""
# makes the operator pull its default Che images. The first plan replaces it.
PLACEHOLDER_NAME = "kubernetes-image-puller"


class TargetMissing(Exception):
    """The KubernetesImagePuller to keep current does not exist (and creating it is off)."""


class ApplyError(Exception):
    """The write failed or the server did not keep what was sent."""


def read_target(kube: Kube, target: Target, *, dry_run: bool = False) -> PullerCR:
    """GET the CR; create one holding the placeholder first when missing and `target.create`
    is set (in a dry run, plan against such a one without creating it)."""
    path = kinds.IMAGE_PULLER.path(namespace=target.namespace, name=target.name)
    try:
        obj = kube.get(path)
    except NotFound:
        if target.create and dry_run:
            state = placeholder_state()
            return PullerCR(target.namespace, target.name, "0", render_images(state.entries), dict(state.owned), {},
                            entry_kinds=dict(state.entry_kinds))
        if not target.create:
            raise TargetMissing(
                f"KubernetesImagePuller {target.namespace}/{target.name} does not exist: create it "
                "(see the Kubernetes Image Puller operator) or point --target at the right one; "
                "create: true on the target makes the agent create it, but that needs the create verb on "
                f"kubernetesimagepullers in {target.namespace}, which the shipped RBAC does not grant"
            ) from None
        obj = kube.create(kinds.IMAGE_PULLER.path(namespace=target.namespace), _new_puller(target))
        # Creating it with the placeholder is not a choice of images: the first list is never
        # deferred by puller.min_write_interval_seconds.
        return replace(read_puller(obj), last_written=None)
    return read_puller(obj)


def write_plan(kube: Kube, plan: Plan, *, resource_version: str) -> PullerCR:
    """Patch the CR to `plan.desired`, with a resourceVersion precondition; return what the
    server kept, checked against `plan.desired`.

    Raises `agent.kube.errors.Conflict` when the CR changed since it was read.
    """
    desired = plan.desired
    if not has_entry(desired.entries):
        raise ApplyError(
            f"KubernetesImagePuller {plan.target_namespace}/{plan.target_name}: refusing to write a spec.images "
            f"the puller reads no entry from ({desired.images!r}): it would crash-loop"
        )
    body: JSON = {
        "metadata": {"resourceVersion": resource_version, "annotations": desired.annotations},
        "spec": {"images": desired.images},
    }
    path = kinds.IMAGE_PULLER.path(namespace=plan.target_namespace, name=plan.target_name)
    kept = kube.patch_merge(path, body)
    try:
        result = read_puller(kept)
    except InvalidPullerCR as e:
        raise ApplyError(f"the server's answer to the patch cannot be read: {e}") from e
    if PullerState.of(result) != desired:
        raise ApplyError(
            f"KubernetesImagePuller {plan.target_namespace}/{plan.target_name}: the server kept "
            f"spec.images {result.images!r}, not what was sent (is a webhook or another controller rewriting it?)"
        )
    return result


def _new_puller(target: Target) -> JSON:
    state = placeholder_state()
    return {
        "apiVersion": kinds.IMAGE_PULLER.api_version,
        "kind": kinds.IMAGE_PULLER.kind,
        "metadata": {"name": target.name, "namespace": target.namespace, "annotations": state.annotations},
        "spec": {"images": render_images(state.entries)},
    }


def placeholder_state() -> PullerState:
    """The list a CR the agent creates starts with (see PLACEHOLDER_NAME)."""
    entry = Entry.of(PLACEHOLDER_NAME, DEFAULT_PULLER_IMAGE)
    return PullerState((entry,), {PLACEHOLDER_NAME: DEFAULT_PULLER_IMAGE}, {PLACEHOLDER_NAME: ()})


def read_workloads(kube: Kube, puller: PullerCR) -> Seen:
    """The puller's Deployment and DaemonSet, each GET by name; what cannot be read is said."""
    deployment, deployment_error = _get_named(kube, kinds.DEPLOYMENT, puller, field="deploymentName")
    daemonset, daemonset_error = _get_named(kube, kinds.DAEMON_SET, puller, field="daemonsetName")
    return Seen(
        deployment=read_deployment(deployment) if deployment is not None else None,
        daemonset=read_daemonset(daemonset) if daemonset is not None else None,
        deployment_error=deployment_error,
        daemonset_error=daemonset_error,
    )


def _get_named(kube: Kube, kind: kinds.Kind, puller: PullerCR, *, field: str) -> tuple[JSON | None, str]:
    """(the object, "") when read; (None, "") when it does not exist; (None, why) otherwise."""
    name = puller.deployment_name if kind is kinds.DEPLOYMENT else puller.daemonset_name
    where = f"KubernetesImagePuller {puller.namespace}/{puller.name}"
    if not is_object_name(name):
        return None, f"{where}: spec.{field} {name[:80]!r} is not an object name: the puller's {kind.kind} is unknown"
    try:
        return kube.get(kind.path(namespace=puller.namespace, name=name)), ""
    except NotFound:
        return None, ""
    except Forbidden:
        return None, (
            f"{kind.kind} {puller.namespace}/{name} may not be read: grant get on {kind.plural} "
            f"(apiGroups [{kind.group}], resourceNames [{name}]) in {puller.namespace}, "
            "as manifests/base/rbac-puller.yaml does"
        )
    except KubeError as e:
        return None, f"{kind.kind} {puller.namespace}/{name} could not be read: {e}"


__all__ = [
    "ApplyError", "KubeError", "TargetMissing", "placeholder_state", "read_target", "read_workloads", "write_plan",
]
