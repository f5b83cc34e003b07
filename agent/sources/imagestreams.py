"""ImageStreams: the workbench and pipeline-runtime images OpenShift AI offers.

A stream labelled `opendatahub.io/notebook-image=true` (workbenches) or
`opendatahub.io/runtime-image=true` (pipeline runtimes) offers its tags to users. A tag
resolves to `status.tags[].items[0].dockerImageReference`, the image pods really run.

Only streams in the applications namespace are *offered* to every user, so only they earn
the offered/recommended baseline. Streams in project namespaces are tenant-made: they earn
nothing by existing, and count only through the workloads that use them. An offered tag
goes where the stream's `opendatahub.io/recommended-accelerators` sends it (a CUDA image to
nodes with `nvidia.com/gpu`), else where a plain pod could run.

Every stream tag also yields aliases: the other spellings of the same image (the
internal-registry `REPO:TAG`, the `spec.tags[].from` reference) mapped to the resolved
one, so a workbench that names the image either way counts once.

Aliases are scoped by the stream's namespace, because whoever can create a stream can
claim any spelling: a stream in a project namespace could otherwise make every workbench
in the cluster that names `registry.corp/ml/vllm:1` count as an image of its choosing. So
a stream in the applications namespace (admin-controlled) speaks for every usage, and a
stream in a project namespace only for usages in that same namespace, where it takes
precedence (that is how project-scoped workbench images work). See `StreamFindings.alias`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.model import KindName, ObjectRef, Role, State, StreamTag, Usage
from agent.refs import ImageRef
from agent.sources.common import (
    MAX_NAME,
    MAX_STREAM_TAGS,
    Findings,
    annotations_of,
    as_str,
    bounded,
    clip,
    dig,
    hinted,
    labels_of,
    object_ref,
    parse_image,
)

KIND = KindName.IMAGE_STREAM
WORKBENCH_LABEL = "opendatahub.io/notebook-image"
RUNTIME_LABEL = "opendatahub.io/runtime-image"
LABEL_SELECTORS = (f"{WORKBENCH_LABEL}=true", f"{RUNTIME_LABEL}=true")
HIDDEN = "opendatahub.io/notebook-image-hidden"
RECOMMENDED = "opendatahub.io/workbench-image-recommended"
OUTDATED = "opendatahub.io/image-tag-outdated"


Claim = tuple[StreamTag, ImageRef]


@dataclass
class StreamFindings(Findings):
    """Usages plus the tables that tie other spellings to the resolved image.

    `aliases` maps a spelling and the namespace of a stream claiming it to the winning
    claim there: the smallest stream tag (stream name, tag) and the image it resolves to.
    The winner is kept as findings merge, so a lookup is two dict reads however many tags
    claim one spelling, and min() makes it independent of the order streams were listed in.
    """

    aliases: dict[str, dict[str, Claim]] = field(default_factory=dict)
    stream_tags: dict[StreamTag, ImageRef] = field(default_factory=dict)

    def claim(self, spelling: str, stream_tag: StreamTag, image: ImageRef) -> None:
        by_namespace = self.aliases.setdefault(spelling, {})
        held = by_namespace.get(stream_tag.namespace)
        if held is None or stream_tag <= held[0]:
            by_namespace[stream_tag.namespace] = (stream_tag, image)

    def extend(self, other: Findings) -> None:
        super().extend(other)
        if isinstance(other, StreamFindings):
            for spelling, claims in other.aliases.items():
                for stream_tag, image in claims.values():
                    self.claim(spelling, stream_tag, image)
            self.stream_tags.update(other.stream_tags)

    def alias(self, spelling: str, *, namespace: str, applications_namespace: str) -> ImageRef | None:
        """The image `spelling` stands for, seen from a usage in `namespace` ("" when the
        usage is cluster-scoped): a claim by a stream in that namespace first, else by a
        stream in the applications namespace. Streams in any other namespace are not heard.

        When several stream tags in one scope claim the spelling, the smallest
        (stream name, tag) wins. Any of them is a faithful answer (each says the spelling is
        its image, and the scope already limits who can say so); a fixed rule keeps the
        result independent of list order, and unlike dropping the alias it still counts the
        workbench as one of the images offered.
        """
        claims = self.aliases.get(spelling)
        if not claims:
            return None
        for scope in (namespace, applications_namespace):
            held = claims.get(scope)
            if held is not None:
                return held[1]
        return None


def read_image_stream(obj: Mapping[str, Any], *, applications_namespace: str) -> StreamFindings:
    out = StreamFindings()
    source = object_ref(KIND, obj)
    stream_labels = labels_of(obj)
    role = Role.WORKBENCH if stream_labels.get(WORKBENCH_LABEL) == "true" else Role.PIPELINE_RUNTIME
    offered_to_all = source.namespace == applications_namespace
    hidden = annotations_of(obj).get(HIDDEN) == "true"
    placement = hinted(obj, source=source, findings=out) if offered_to_all else None
    internal_repo = as_str(dig(obj, "status", "dockerImageRepository"))
    public_repo = as_str(dig(obj, "status", "publicDockerImageRepository"))

    spec_tags = _tags(dig(obj, "spec", "tags"), "name", source=source, field="spec.tags", findings=out)
    status_tags = _tags(dig(obj, "status", "tags"), "tag", source=source, field="status.tags", findings=out)

    for tag in sorted(set(spec_tags) | set(status_tags)):
        if not tag:
            continue
        spec_tag = spec_tags.get(tag, {})
        items = status_tags.get(tag, {}).get("items")
        latest = items[0] if isinstance(items, list) and items and isinstance(items[0], Mapping) else {}
        from_ref = dig(spec_tag, "from", "name") if dig(spec_tag, "from", "kind") == "DockerImage" else None
        if latest.get("dockerImageReference"):
            field_path, value = f"status.tags[{tag}].items[0].dockerImageReference", latest["dockerImageReference"]
        elif from_ref:
            field_path, value = f"spec.tags[{tag}].from.name", from_ref
        else:
            continue  # nothing imported and nothing to import from: no image yet
        resolved = parse_image(value, source=source, field=field_path, findings=out)
        if resolved is None:
            continue

        stream_tag = StreamTag(source.namespace, source.name, tag)
        out.stream_tags[stream_tag] = resolved
        for spelling in (
            f"{internal_repo}:{tag}" if internal_repo else None,
            f"{public_repo}:{tag}" if public_repo else None,
            from_ref,
        ):
            if spelling:
                alias = parse_image(spelling, source=source, field=f"spec.tags[{tag}]", findings=out)
                if alias is not None and alias != resolved:
                    out.claim(str(alias), stream_tag, resolved)

        if offered_to_all:
            state = _offer_state(hidden=hidden, tag_annotations=spec_tag.get("annotations"))
            out.use(
                Usage(resolved, source, f"spec.tags[{tag}]", role, state, stream_tag=stream_tag, placement=placement)
            )
    return out


def _tags(value: Any, key: str, *, source: ObjectRef, field: str, findings: Findings) -> dict[str, Mapping[str, Any]]:
    """Tag name (clipped: a clipped name matches no tag) -> entry, for the first tags."""
    listed = bounded(value, limit=MAX_STREAM_TAGS, source=source, field=field, findings=findings)
    return {clip(as_str(t.get(key)), MAX_NAME): t for t in listed if isinstance(t, Mapping)}


def _offer_state(*, hidden: bool, tag_annotations: Any) -> State:
    notes = tag_annotations if isinstance(tag_annotations, Mapping) else {}
    if hidden or OUTDATED in notes:
        return State.OUTDATED
    if notes.get(RECOMMENDED) == "true":
        return State.RECOMMENDED
    return State.OFFERED
