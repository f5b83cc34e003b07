"""Notebooks (kubeflow.org/v1): the workbenches users run.

Every container of `spec.template.spec` counts: the one named like the Notebook is the
workbench, the others (kube-rbac-proxy, oauth-proxy) are sidecars. A Notebook is stopped
when `kubeflow-resource-stopped` holds a timestamp (the value
`odh-notebook-controller-lock` means it is about to start, so it is not stopped). One that
is not stopped is running only when its status says so, as Kubeflow's own workbench UI
decides (kubeflow/kubeflow `components/crud-web-apps/jupyter/backend/apps/common/status.py`
`process_status`): a ready replica (`status.readyReplicas`), or here also its container
running (`status.containerState.running`: the image is on the node). Otherwise it is
starting: wanted but not ready, like a workbench stuck in Pending because its image is
still being pulled, the case pre-pulling is for.

`notebooks.opendatahub.io/last-image-selection` (`STREAM:TAG`, in the namespace named by
`opendatahub.io/workbench-image-namespace`, else the applications namespace) says which
ImageStream tag the workbench image came from; it travels with the usage so the planner
can tie the two spellings together.

Where the workbench pod could run (its `nodeSelector`, required node affinity,
`tolerations`, and the extended resources such as `nvidia.com/gpu` its containers ask
for) travels with every usage too, so each node pool's puller lists only what can run there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.model import KindName, Role, State, StreamTag, Usage
from agent.sources.common import (
    MAX_NAME,
    Findings,
    annotations_of,
    as_str,
    clip,
    containers,
    dig,
    intern,
    object_ref,
    parse_image,
    scheduling,
)

KIND = KindName.NOTEBOOK
STOPPED = "kubeflow-resource-stopped"
STARTING_LOCK = "odh-notebook-controller-lock"
LAST_IMAGE_SELECTION = "notebooks.opendatahub.io/last-image-selection"
IMAGE_NAMESPACE = "opendatahub.io/workbench-image-namespace"


def read_notebook(obj: Mapping[str, Any]) -> Findings:
    out = Findings()
    source = object_ref(KIND, obj)
    notes = annotations_of(obj)
    stopped = bool(notes.get(STOPPED)) and notes.get(STOPPED) != STARTING_LOCK
    state = State.STOPPED if stopped else State.RUNNING if _runs(obj) else State.STARTING
    selection = _stream_tag(notes)
    pod_spec = dig(obj, "spec", "template", "spec")
    pod = scheduling(pod_spec, field="spec.template.spec", source=source, findings=out)
    if pod is None:
        return out
    placement = intern(pod.placement())
    for name, field_path, value in containers(pod_spec, "spec.template.spec", source=source, findings=out):
        image = parse_image(value, source=source, field=field_path, findings=out)
        if image is None:
            continue
        workbench = name == source.name
        out.use(
            Usage(
                image,
                source,
                field_path,
                Role.WORKBENCH if workbench else Role.SIDECAR,
                state,
                stream_tag=selection if workbench else None,
                placement=placement,
            )
        )
    return out


def _runs(obj: Mapping[str, Any]) -> bool:
    ready = dig(obj, "status", "readyReplicas")
    if isinstance(ready, int) and not isinstance(ready, bool) and ready > 0:
        return True
    return isinstance(dig(obj, "status", "containerState", "running"), Mapping)


def _stream_tag(notes: Mapping[str, Any]) -> StreamTag | None:
    stream, sep, tag = as_str(notes.get(LAST_IMAGE_SELECTION)).partition(":")
    if not (sep and stream and tag):
        return None
    # Clipped: a selection longer than any stream or tag name can only match nothing.
    namespace = as_str(notes.get(IMAGE_NAMESPACE))
    return StreamTag(clip(namespace, MAX_NAME), clip(stream, MAX_NAME), clip(tag, MAX_NAME))
