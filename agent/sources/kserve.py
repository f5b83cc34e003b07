"""KServe's own configuration: the storage initializer and the ClusterStorageContainers.

- `inferenceservice-config` (a ConfigMap in KServe's namespace, kserve/kserve
  `pkg/constants/constants.go` `InferenceServiceConfigMapName`): its `storageInitializer` key
  is a JSON document whose `image` is the storage initializer's image and whose
  `enableModelcar` says whether `oci://` models are ModelCars (`pkg/types`
  `StorageInitializerConfig`; documented default `true`).
- ClusterStorageContainers (`pkg/apis/serving/v1alpha1/storage_container_types.go`):
  `spec.container.image`, `spec.supportedUriFormats[]` (`prefix` or `regex`),
  `spec.workloadType` (default `initContainer`) and the top-level `disabled`.

What the rules do with them is `agent.storage`'s. The ConfigMap is an administrator's, but
its text is still read within bounds: a document larger than MAX_DOCUMENT characters or that
does not decode is one rejection naming it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.model import KindName, ObjectRef, Rejection
from agent.sources.common import Findings, as_str, bounded, clip, dig, object_ref, parse_image
from agent.storage import StorageConfig, StorageContainer

CONFIG_MAP = KindName.CONFIG_MAP
CLUSTER_STORAGE_CONTAINER = KindName.CLUSTER_STORAGE_CONTAINER
CONFIG_MAP_NAME = "inferenceservice-config"
STORAGE_INITIALIZER_KEY = "storageInitializer"
MAX_DOCUMENT = 64 * 1024  # characters of the `storageInitializer` document read
MAX_URI_FORMATS = 32  # `supportedUriFormats` of one ClusterStorageContainer
MAX_PATTERN = 512  # characters of one `regex`


@dataclass
class KServeFindings(Findings):
    storage_config: StorageConfig | None = None  # None: the ConfigMap was not read
    storage_config_source: ObjectRef | None = None
    storage_containers: list[StorageContainer] = field(default_factory=list)

    def extend(self, other: Findings) -> None:
        super().extend(other)
        if isinstance(other, KServeFindings):
            self.storage_containers.extend(other.storage_containers)
            if other.storage_config is not None:
                self.storage_config, self.storage_config_source = other.storage_config, other.storage_config_source


def read_inference_service_config(obj: Mapping[str, Any]) -> KServeFindings:
    """The ConfigMap; a missing or unreadable `storageInitializer` gives a config without
    an image (KServe itself would fail to start then)."""
    out = KServeFindings()
    source = object_ref(CONFIG_MAP, obj)
    out.storage_config_source = source
    document = _document(dig(obj, "data", STORAGE_INITIALIZER_KEY), source=source, out=out)
    image = None
    if document.get("image") is not None:
        image = parse_image(document.get("image"), source=source, field=_field("image"), findings=out)
    enabled = document.get("enableModelcar")
    out.storage_config = StorageConfig(image, enable_modelcar=enabled if isinstance(enabled, bool) else True)
    return out


def _field(key: str) -> str:
    return f"data.{STORAGE_INITIALIZER_KEY}.{key}"


def _document(text: Any, *, source: ObjectRef, out: Findings) -> Mapping[str, Any]:
    where = f"data.{STORAGE_INITIALIZER_KEY}"
    if not isinstance(text, str):
        out.reject(Rejection("", "is missing: KServe has no storage initializer image", source, where))
        return {}
    if len(text) > MAX_DOCUMENT:
        out.reject(Rejection("", f"is longer than {MAX_DOCUMENT:,} characters; not read", source, where))
        return {}
    try:
        decoded: Any = json.loads(text)
    except (ValueError, RecursionError) as e:
        out.reject(Rejection("", clip(f"is not JSON: {e}"), source, where))
        return {}
    if not isinstance(decoded, Mapping):
        out.reject(Rejection("", "is not a JSON object", source, where))
        return {}
    return decoded


def read_cluster_storage_container(obj: Mapping[str, Any]) -> KServeFindings:
    out = KServeFindings()
    source = object_ref(CLUSTER_STORAGE_CONTAINER, obj)
    raw = dig(obj, "spec", "container", "image")
    image_set = isinstance(raw, str) and bool(raw)
    image = parse_image(raw, source=source, field="spec.container.image", findings=out) if image_set else None
    formats = bounded(
        dig(obj, "spec", "supportedUriFormats"),
        limit=MAX_URI_FORMATS,
        source=source,
        field="spec.supportedUriFormats",
        findings=out,
    )
    prefixes, patterns = [], []
    for i, entry in enumerate(formats):
        prefix, regex = as_str(dig(entry, "prefix")), as_str(dig(entry, "regex"))
        if prefix:  # `IsStorageUriSupported`: a prefix wins over a regex in the same entry
            prefixes.append(prefix)
        elif regex:
            patterns.append(_pattern(regex, source=source, field=f"spec.supportedUriFormats[{i}].regex", out=out))
    out.storage_containers.append(
        StorageContainer(
            name=source.name,
            image=image,
            image_set=image_set,
            prefixes=tuple(prefixes),
            patterns=tuple(patterns),
            disabled=obj.get("disabled") is True,
            init_container=as_str(dig(obj, "spec", "workloadType")) in ("", "initContainer"),
        )
    )
    return out


def _pattern(regex: str, *, source: ObjectRef, field: str, out: Findings) -> re.Pattern[str] | None:
    if len(regex) > MAX_PATTERN:
        out.reject(Rejection("", f"is longer than {MAX_PATTERN} characters; it matches nothing here", source, field))
        return None
    try:
        return re.compile(regex)
    except (re.error, RecursionError, OverflowError) as e:
        out.reject(Rejection(clip(regex), clip(f"is not a regular expression the agent can read ({e})"), source, field))
        return None
