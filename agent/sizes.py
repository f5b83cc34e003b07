"""What nodes say about image sizes, and which image a size really belongs to.

Pure. `Node.status.images` lists each node's largest images (up to 50), each with up to
five `names` and its `sizeBytes`. A digest name (`repo@sha256:...`) is content-addressed:
its size is the size of that content, whoever reports it. A tag name (`repo:tag`) is not:
the tag can be pushed again, so a size a node reports for a tag is only the size of the
content the tag had when that node pulled it. A tenant could run a small image once, let a
node report 100 MiB for its tag, then push 200 GB under the same tag; listing the tag with
a 100 MiB budget would make the puller fetch 200 GB on every node.

So a tag's size is trusted only together with a digest: when the node entry that gives the
size also names a digest of the same repository, the size belongs to that digest, and the
image to list is `repo@digest` (`SizeReport.digest`). When nodes disagree on the digest of
one tag, or the entry names no digest, the tag's size is unknown.

What this is not: it reads no Node (agent.sources.nodes feeds it) and parses no reference
of a node's (names are only looked up, never written).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agent.refs import ImageRef

__all__ = ["ImageSizes", "SizeReport"]


@dataclass(frozen=True, slots=True)
class SizeReport:
    """A size nodes report for an image. `digest` is set when the image was named by a tag
    and the size belongs to that digest of the same repository."""

    size: int
    digest: str | None = None


_DISAGREE = SizeReport(0)  # nodes name different digests for one tag: the tag's size is unknown


class ImageSizes:
    """Sizes by digest, and by tag with the digest each tag was seen with."""

    __slots__ = ("_by_digest", "_by_tag")

    def __init__(self) -> None:
        self._by_digest: dict[str, int] = {}
        self._by_tag: dict[str, SizeReport] = {}

    def __len__(self) -> int:
        return len(self._by_digest) + len(self._by_tag)

    def add(self, names: Iterable[str], size: int) -> None:
        """One `status.images` entry of one node: its names and its size in bytes."""
        if size <= 0:
            return
        tags: list[str] = []
        digests: dict[str, str] = {}  # repository -> digest named in this entry
        for name in names:
            repository, at, digest = name.partition("@")
            if at:
                digests.setdefault(repository, digest)
                if size > self._by_digest.get(digest, 0):
                    self._by_digest[digest] = size
            else:
                tags.append(name)
        for tag in tags:
            self._add_tag(tag, size, digests.get(_repository_of(tag)))

    def _add_tag(self, tag: str, size: int, digest: str | None) -> None:
        seen = self._by_tag.get(tag)
        if seen is None:
            self._by_tag[tag] = SizeReport(size, digest) if digest else _DISAGREE
        elif seen is not _DISAGREE and seen.digest != digest:
            self._by_tag[tag] = _DISAGREE
        elif seen is not _DISAGREE and size > seen.size:
            self._by_tag[tag] = SizeReport(size, digest)

    def extend(self, other: ImageSizes) -> None:
        for digest, size in other._by_digest.items():
            if size > self._by_digest.get(digest, 0):
                self._by_digest[digest] = size
        for tag, report in other._by_tag.items():
            if report is _DISAGREE:
                self._by_tag[tag] = _DISAGREE
            else:
                self._add_tag(tag, report.size, report.digest)

    def tag_digest(self, ref: ImageRef) -> str | None | bool:
        """What nodes say a tag is: its digest; True when they report the tag but not one
        digest for it (they disagree, or name none); False when no node reports the tag."""
        report = self._by_tag.get(str(ref))
        if report is None:
            return False
        return report.digest or True

    def of(self, ref: ImageRef) -> SizeReport | None:
        """What nodes report for `ref`, or None when its size is unknown."""
        if ref.digest is not None:
            size = self._by_digest.get(ref.digest)
            return SizeReport(size) if size else None
        report = self._by_tag.get(str(ref))
        return None if report is None or report is _DISAGREE else report


def _repository_of(tag_name: str) -> str:
    """`registry/repo` of `registry/repo:tag` (a ':' after the last '/' starts the tag)."""
    slash = tag_name.rfind("/")
    colon = tag_name.rfind(":")
    return tag_name[:colon] if colon > slash else tag_name
