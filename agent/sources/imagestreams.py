"""ImageStreams: the workbench and pipeline-runtime images OpenShift AI offers.

A stream labelled `opendatahub.io/notebook-image=true` (workbenches) or
`opendatahub.io/runtime-image=true` (pipeline runtimes) offers its tags to users. A tag
resolves to `status.tags[].items[0].dockerImageReference`, the image pods really run.

Only streams in the applications namespace are *offered* to every user, so only they earn
the offered/recommended baseline. Streams in project namespaces are tenant-made: they earn
nothing by existing, and count only through the workloads that use them.

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

from agent.model import Role, State, StreamTag, Usage
from agent.refs import ImageRef
from agent.sources.common import Findings, annotations_of, as_list, as_str, dig, labels_of, object_ref, parse_image

KIND = "ImageStream"
WORKBENCH_LABEL = "opendatahub.io/notebook-image"
RUNTIME_LABEL = "opendatahub.io/runtime-image"
LABEL_SELECTORS = (f"{WORKBENCH_LABEL}=true", f"{RUNTIME_LABEL}=true")
HIDDEN = "opendatahub.io/notebook-image-hidden"
RECOMMENDED = "opendatahub.io/workbench-image-recommended"
OUTDATED = "opendatahub.io/image-tag-outdated"


@dataclass
class StreamFindings(Findings):
    """Usages plus the tables that tie other spellings to the resolved image.

    `aliases` maps a spelling to every stream tag that claims it (with the namespace the
    stream lives in) and the image that tag resolves to. Claims are kept apart rather than
    overwritten, so the answer never depends on the order the streams were listed in.
    """

    aliases: dict[str, dict[StreamTag, ImageRef]] = field(default_factory=dict)
    stream_tags: dict[StreamTag, ImageRef] = field(default_factory=dict)

    def extend(self, other: Findings) -> None:
        super().extend(other)
        if isinstance(other, StreamFindings):
            for spelling, claims in other.aliases.items():
                self.aliases.setdefault(spelling, {}).update(claims)
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
            owners = [claim for claim in claims if claim.namespace == scope]
            if owners:
                return claims[min(owners)]
        return None


def read_image_stream(obj: Mapping[str, Any], *, applications_namespace: str) -> StreamFindings:
    out = StreamFindings()
    source = object_ref(KIND, obj)
    stream_labels = labels_of(obj)
    role = Role.WORKBENCH if stream_labels.get(WORKBENCH_LABEL) == "true" else Role.PIPELINE_RUNTIME
    offered_to_all = source.namespace == applications_namespace
    hidden = annotations_of(obj).get(HIDDEN) == "true"
    internal_repo = as_str(dig(obj, "status", "dockerImageRepository"))
    public_repo = as_str(dig(obj, "status", "publicDockerImageRepository"))

    spec_tags = {as_str(t.get("name")): t for t in as_list(dig(obj, "spec", "tags")) if isinstance(t, Mapping)}
    status_tags = {as_str(t.get("tag")): t for t in as_list(dig(obj, "status", "tags")) if isinstance(t, Mapping)}

    for tag in sorted(set(spec_tags) | set(status_tags)):
        if not tag:
            continue
        spec_tag = spec_tags.get(tag, {})
        items = as_list(status_tags.get(tag, {}).get("items"))
        latest = items[0] if items and isinstance(items[0], Mapping) else {}
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
                    out.aliases.setdefault(str(alias), {})[stream_tag] = resolved

        if offered_to_all:
            state = _offer_state(hidden=hidden, tag_annotations=spec_tag.get("annotations"))
            out.usages.append(Usage(resolved, source, f"spec.tags[{tag}]", role, state))
    return out


def _offer_state(*, hidden: bool, tag_annotations: Any) -> State:
    notes = tag_annotations if isinstance(tag_annotations, Mapping) else {}
    if hidden or OUTDATED in notes:
        return State.OUTDATED
    if notes.get(RECOMMENDED) == "true":
        return State.RECOMMENDED
    return State.OFFERED
