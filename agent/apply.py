"""Apply: read the target puller CR, and write a Plan to it with one checked patch.

The write is one JSON merge patch of `spec.images` and the ownership annotation, carrying
`metadata.resourceVersion`: if anyone changed the CR since it was read, the server answers
409 and nothing is written. The object the server returns is compared with the plan, so
a write the server did not keep as sent is an error, not a silent success.
"""

from __future__ import annotations

from agent.kube import kinds
from agent.kube.client import JSON, Kube
from agent.kube.errors import KubeError, NotFound
from agent.plan import Plan
from agent.puller import InvalidPullerCR, PullerCR, PullerState, read_puller
from agent.settings import Target

# The operator fills an empty `images` with its own defaults (Che's images); a lone ";" is
# an empty list to the puller and leaves the operator's defaults out.
EMPTY_IMAGES = ";"


class TargetMissing(Exception):
    """The KubernetesImagePuller to keep current does not exist (and creating it is off)."""


class ApplyError(Exception):
    """The write failed or the server did not keep what was sent."""


def read_target(kube: Kube, target: Target, *, dry_run: bool = False) -> PullerCR:
    """GET the CR; create an empty one first when missing and `target.create` is set (in a
    dry run, plan against an empty one without creating it)."""
    path = kinds.IMAGE_PULLER.path(namespace=target.namespace, name=target.name)
    try:
        obj = kube.get(path)
    except NotFound:
        if target.create and dry_run:
            return PullerCR(target.namespace, target.name, "0", "", {}, {})
        if not target.create:
            raise TargetMissing(
                f"KubernetesImagePuller {target.namespace}/{target.name} does not exist: create it "
                "(see the Kubernetes Image Puller operator) or point --target at the right one; "
                "create: true on the target makes the agent create it, but that needs the create verb on "
                f"kubernetesimagepullers in {target.namespace}, which the shipped RBAC does not grant"
            ) from None
        obj = kube.create(kinds.IMAGE_PULLER.path(namespace=target.namespace), _new_puller(target))
    return read_puller(obj)


def write_plan(kube: Kube, plan: Plan, *, resource_version: str) -> PullerCR:
    """Patch the CR to `plan.desired`, with a resourceVersion precondition; return what the
    server kept, checked against `plan.desired`.

    Raises `agent.kube.errors.Conflict` when the CR changed since it was read.
    """
    desired = plan.desired
    body: JSON = {
        "metadata": {"resourceVersion": resource_version, "annotations": desired.annotations},
        "spec": {"images": desired.images or EMPTY_IMAGES},
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
    return {
        "apiVersion": kinds.IMAGE_PULLER.api_version,
        "kind": kinds.IMAGE_PULLER.kind,
        "metadata": {"name": target.name, "namespace": target.namespace},
        "spec": {"images": EMPTY_IMAGES},
    }


__all__ = ["ApplyError", "KubeError", "TargetMissing", "read_target", "write_plan"]
