"""Reading a list answer whose objects `json.loads` cannot all decode.

`json.loads` recurses once per level of nesting and gives up (RecursionError) at about a
thousand levels, while the API server stores objects nested ten times deeper in any
free-form field; a tenant's one such object would make its whole page unreadable. Two
readers here never let one object spoil the others:

- `decode_list` decodes a list answer item by item (the C decoder, one item at a time, so
  each item has the whole depth allowance to itself). An item it cannot decode is
  *skimmed* instead: walked token by token to its end, keeping only its
  `metadata.namespace` and `metadata.name`, and reported as unread.
- `skim_list` reads only `items[*].metadata.{namespace,name}` and `metadata.continue`
  from an answer it does not decode at all (a page of one object too large to decode).

Skimming uses an explicit stack (never recursion, whatever the depth) and decodes only
the few strings at the paths it wants, so its memory is the stack, not the object. It is
not a JSON validator: a skim that does not end where a list or an item ends says so, and
the caller never takes a cut or garbled answer for a complete one.
"""

from __future__ import annotations

import json
import re
from array import array
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

_STRING_RE = r'"[^"\\]*(?:\\.[^"\\]*)*"'  # a JSON string, escapes included
_STRING = re.compile(_STRING_RE, re.DOTALL)
_TOKEN = re.compile(_STRING_RE + r"|[{}\[\]:,]", re.DOTALL)  # literals and spaces are skipped
_DEEP_TOKEN = re.compile(_STRING_RE + r"|[{}\[\]]", re.DOTALL)
_CHUNK = 4096  # tokens (characters, or whole strings) counted at once below the kept frames
_DEEP_CHUNK = re.compile(f"(?:{_STRING_RE}|[^\"]){{1,{_CHUNK}}}", re.DOTALL)
_NOT_BRACKET = re.compile(r"[^{}\[\]]+")
_SMALL = 32  # tokens walked one by one before counting chunks
_STEPS = bytes.maketrans(b"{[}]", b"\x01\x01\xff\xff")  # as signed bytes: +1, +1, -1, -1
_SPACE = re.compile(r"[ \t\n\r]*")
_LITERAL = re.compile(r"[^,\]}\s]+")
_DECODER = json.JSONDecoder()


class BadList(ValueError):
    """The answer is not a list answer these readers can follow."""


@dataclass
class DecodedList:
    meta: dict[str, Any] = field(default_factory=dict)  # the list's own metadata
    items: list[Any] = field(default_factory=list)
    unread: list[tuple[str, str, str]] = field(default_factory=list)  # (namespace, name, why) per item skipped


@dataclass
class ListSkim:
    """What `skim_list` found in one list answer."""

    items: list[tuple[str, str]] = field(default_factory=list)  # (namespace, name) per item
    continue_token: str = ""
    complete: bool = False  # the answer closed its top-level object and had a `metadata` object


def decode_list(data: bytes | bytearray, *, too_deep: str) -> DecodedList:
    """Decode `{"items": [...], "metadata": {...}, ...}` item by item. `too_deep` is the
    reason given for an item nested too deeply. Raises `BadList` if the answer is not a
    list answer (or an item cannot even be skimmed)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadList(f"is not UTF-8: {e}") from e
    out = DecodedList()
    i = _expect(text, _space(text, 0), "{")
    if text.startswith("}", i):
        return out
    while True:
        key, i = _decode_at(text, i)
        if not isinstance(key, str):
            raise BadList("has a key that is not a string")
        i = _expect(text, i, ":")
        if key == "items" and text.startswith("[", i):
            i = _items(text, i + 1, out, too_deep=too_deep)
        else:
            value, i = _decode_at(text, i)
            if key == "metadata" and isinstance(value, dict):
                out.meta = value
        if text.startswith(",", i):
            i = _space(text, i + 1)
            continue
        i = _expect(text, i, "}")
        if i != len(text):
            raise BadList("goes on after the list")
        return out


def _items(text: str, i: int, out: DecodedList, *, too_deep: str) -> int:
    """Decode the items from just after `[`; return the index after `]`."""
    i = _space(text, i)
    if text.startswith("]", i):
        return _space(text, i + 1)
    while True:
        try:
            item, end = _DECODER.raw_decode(text, i)
        except RecursionError:
            end = _skip_item(text, i, out, why=too_deep)
        except ValueError as e:
            end = _skip_item(text, i, out, why=f"is not JSON the agent can read: {str(e)[:200]}")
        else:
            out.items.append(item)
        i = _space(text, end)
        if text.startswith(",", i):
            i = _space(text, i + 1)
            continue
        return _expect(text, i, "]")


def _skip_item(text: str, start: int, out: DecodedList, *, why: str) -> int:
    end, namespace, name = skim_item(text, start)
    if end is None:
        raise BadList(f"has an item that cannot be skimmed ({why})")
    out.unread.append((namespace, name, why))
    return end


def skim_item(text: str, start: int) -> tuple[int | None, str, str]:
    """Walk one JSON value from `start` without decoding it: (its end, or None if it does
    not end; `metadata.namespace`; `metadata.name`)."""
    if not text.startswith(("{", "[", '"'), start):  # a number or a literal
        literal = _LITERAL.match(text, start)
        return (literal.end() if literal and literal.end() > start else None), "", ""
    walk = _ItemWalk(text)
    end = walk.run(start)
    return end, walk.meta.get("namespace", ""), walk.meta.get("name", "")


def skim_list(data: bytes | bytearray) -> ListSkim:
    """Skim a list answer (`{"items": [...], "metadata": {...}}`); never raises on bad input."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return ListSkim()
    start = _space(text, 0)
    if not text.startswith("{", start):
        return ListSkim()
    walk = _ListWalk(text)
    end = walk.run(start)
    out = walk.out
    out.items = [(meta.get("namespace", ""), meta.get("name", "")) for _, meta in sorted(walk.names.items())]
    out.complete = end is not None and walk.saw_metadata and _space(text, end) == len(text)
    return out


class _Frame:
    __slots__ = ("is_object", "key", "index", "expect_key")

    def __init__(self, is_object: bool) -> None:
        self.is_object = is_object
        self.key = ""  # the current key (objects)
        self.index = 0  # the current index (lists)
        self.expect_key = is_object


class _Walk:
    """Walks one JSON value (an object or a list) to its end, keeping a frame only for the
    containers on the paths the subclass wants (`keeps`) and a count of the levels below
    them. Below the kept frames nothing but brackets matters: after a few tokens walked
    one by one, chunks of `_CHUNK` tokens are counted whole (`_reduce`, in the regex engine
    and `str.replace`) as long as they cannot come back up, so a value of a million `{}` or
    of ten thousand levels costs milliseconds, not a Python step per bracket."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.stack: list[_Frame] = []
        self.extra = 0  # levels open below the kept frames

    def run(self, start: int) -> int | None:
        """The index just after the value that starts at `start`, or None if it does not end
        (or its brackets do not match)."""
        try:
            return self._run(start)
        except _Garbled:
            return None

    # -- what a subclass wants -----------------------------------------------------------

    def keeps(self, is_object: bool) -> bool:
        """Whether a container opening under `self.stack` (its parents) gets a frame."""
        return not self.stack

    def wants_index(self) -> bool:
        """Whether the position in the list `self.stack[-1]` matters."""
        return False

    def on_open(self, is_object: bool) -> None:
        """A kept container opens; `self.stack` is its parents."""

    def on_value(self, token: str) -> None:
        """A string value in a kept container (`self.stack[-1]`)."""

    # -- the walk ------------------------------------------------------------------------

    def _run(self, i: int) -> int | None:
        text = self.text
        while True:
            if self.extra:
                i = self._deep(i)
                if not self.extra and not self.stack:
                    return i  # the value was not kept at all (a list where an object was wanted)
                continue
            top = self.stack[-1] if self.stack else None
            every = top is None or top.is_object or self.wants_index()
            match = (_TOKEN if every else _DEEP_TOKEN).search(text, i)
            if match is None:
                return None
            token, i = match.group(), match.end()
            char = token[0]
            if char == '"':
                if top is None:
                    return None  # a string outside the value: it never began
                if top.is_object and top.expect_key:
                    top.key = _text(token)
                else:
                    self.on_value(token)
            elif char in "{[":
                if self.keeps(char == "{"):
                    self.on_open(char == "{")
                    self.stack.append(_Frame(char == "{"))
                else:
                    self.extra = 1
            elif char in "}]":
                if top is None or top.is_object != (char == "}"):
                    raise _Garbled
                self.stack.pop()
                if not self.stack:
                    return i
            elif top is not None:
                _punctuation(top, char)

    def _deep(self, i: int) -> int:
        """From `i`, below the kept frames: where the walk is back at them."""
        text = self.text
        for n, match in enumerate(_DEEP_TOKEN.finditer(text, i)):  # short excursions: one by one
            if match.group()[0] != '"':
                self.extra += 1 if match.group() in "{[" else -1
                if not self.extra:
                    return match.end()
            if n == _SMALL:
                i = match.end()
                break
        else:
            raise _Garbled  # the text ends below the kept frames
        while True:
            chunk = _DEEP_CHUNK.match(text, i)
            if chunk is None:
                raise _Garbled
            closes, opens = _reduce(chunk.group())
            if self.extra <= closes:  # it may come back up in this chunk: walk it
                return self._walk_out(i, chunk.end())
            self.extra += opens - closes
            i = chunk.end()

    def _walk_out(self, i: int, end: int) -> int:
        for match in _DEEP_TOKEN.finditer(self.text, i, end):
            if match.group()[0] != '"':
                self.extra += 1 if match.group() in "{[" else -1
                if not self.extra:
                    return match.end()
        return end


class _ItemWalk(_Walk):
    """An item: its `metadata.namespace` and `metadata.name`."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.meta: dict[str, str] = {}

    def keeps(self, is_object: bool) -> bool:
        depth = len(self.stack)
        return is_object and (depth == 0 or (depth == 1 and self.stack[0].key == "metadata"))

    def on_value(self, token: str) -> None:
        if len(self.stack) == 2 and self.stack[0].key == "metadata" and self.stack[1].key in ("name", "namespace"):
            self.meta[self.stack[1].key] = _text(token)


class _ListWalk(_Walk):
    """A list answer: `items[*].metadata.{namespace,name}` and `metadata.continue`."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.out = ListSkim()
        self.names: dict[int, dict[str, str]] = {}
        self.saw_metadata = False

    def keeps(self, is_object: bool) -> bool:
        stack = self.stack
        depth = len(stack)
        if depth == 0:
            return is_object
        if depth == 1:
            return (stack[0].key == "items" and not is_object) or (stack[0].key == "metadata" and is_object)
        if depth == 2:
            return stack[0].key == "items" and is_object  # an item
        return depth == 3 and is_object and stack[0].key == "items" and stack[2].key == "metadata"

    def wants_index(self) -> bool:
        return len(self.stack) == 2 and self.stack[0].key == "items"

    def on_open(self, is_object: bool) -> None:
        stack = self.stack
        if len(stack) == 1 and stack[0].key == "metadata" and is_object:
            self.saw_metadata = True
        elif len(stack) == 2 and stack[0].key == "items" and not stack[1].is_object:
            self.names.setdefault(stack[1].index, {})  # an item, whether or not it has a name

    def on_value(self, token: str) -> None:
        stack = self.stack
        depth = len(stack)
        if depth == 2 and stack[0].key == "metadata" and stack[1].is_object and stack[1].key == "continue":
            self.out.continue_token = _text(token)
        elif (
            depth == 4
            and stack[0].key == "items"
            and not stack[1].is_object
            and stack[2].is_object
            and stack[2].key == "metadata"
            and stack[3].is_object
            and stack[3].key in ("name", "namespace")
        ):
            self.names.setdefault(stack[1].index, {})[stack[3].key] = _text(token)


class _Garbled(Exception):
    """Brackets that do not match: not JSON."""


def _reduce(chunk: str) -> tuple[int, int]:
    """(up, down) for a chunk of whole tokens: it closes `up` levels (at its highest point
    above where it starts), then opens `down`. Counted in C: brackets become +1/-1 steps,
    their running sum's minimum is how far up the chunk goes."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", chunk))
    if not brackets:
        return 0, 0
    steps = array("b", brackets.encode("ascii").translate(_STEPS))
    up = max(0, -min(accumulate(steps)))
    return up, sum(steps) + up


def _punctuation(top: _Frame, char: str) -> None:
    if char == ":":
        top.expect_key = False
    elif top.is_object:  # ","
        top.expect_key = True
        top.key = ""
    else:
        top.index += 1


def _decode_at(text: str, i: int) -> tuple[Any, int]:
    try:
        value, end = _DECODER.raw_decode(text, i)
    except (RecursionError, ValueError) as e:
        raise BadList(f"cannot be decoded at character {i:,}: {str(e)[:200]}") from e
    return value, _space(text, end)


def _expect(text: str, i: int, char: str) -> int:
    if not text.startswith(char, i):
        raise BadList(f"has no {char!r} at character {i:,}")
    return _space(text, i + 1)


def _space(text: str, i: int) -> int:
    match = _SPACE.match(text, i)
    return match.end() if match else i


def _text(token: str) -> str:
    """One JSON string token, decoded (a flat string: no recursion). "" if malformed."""
    try:
        value = json.loads(token)
    except ValueError:
        return ""
    return value if isinstance(value, str) else ""
