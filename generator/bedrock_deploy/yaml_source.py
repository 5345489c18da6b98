"""YAML documents that remember where every key and item came from.

A document becomes plain JSON-compatible Python data (dicts with string keys, lists, strings,
ints, finite floats, booleans, None) plus a table ``key path -> SourceLocation``, so later stages
(pydantic validation, semantic checks, ``extends`` merging) can point at the exact place.

The data is built straight from ruamel.yaml's event stream (libyaml's C parser when
``ruamel.yaml.clib`` is installed, ruamel's own parser otherwise), with an explicit stack: no
recursion, so no nesting can exhaust Python's or C's stack. Scalars follow the YAML 1.2 core
schema (null, true/false, integers, floats, everything else a string). Whatever the text holds,
loading ends with data or a located :class:`InputError`: the limits of :mod:`bedrock_deploy.limits`
bound nesting depth, alias uses, the values a document expands to (an alias bomb of a few hundred
bytes) and integer sizes; tags JSON cannot hold (``!!binary``, ``!!set``, ``!!timestamp``, custom
``!tags``), NaN and infinities, non-string and duplicate keys are refused where they are written.
Merge keys (``<<: *base``) are supported: explicit keys win over merged ones.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from ruamel.yaml.reader import ReaderError

from bedrock_deploy.diagnostics import InputError, KeyPath, SourceLocation, fail
from bedrock_deploy.files import read_input_text, text_location
from bedrock_deploy.limits import ALIASES, DEPTH, INTEGER_DIGITS, VALUES

Locations = dict[KeyPath, SourceLocation]


@dataclass
class YamlDocument:
    """Plain data (dicts, lists, scalars) with the location of every key path."""

    file: str
    data: Any
    locations: Locations = field(default_factory=dict)

    def locate(self, path: KeyPath) -> SourceLocation:
        return locate(self.locations, path, self.file)


def locate(locations: Locations, path: KeyPath, file: str) -> SourceLocation:
    """The location of ``path``, or of its nearest ancestor that has one."""
    for n in range(len(path), -1, -1):
        loc = locations.get(tuple(path[:n]))
        if loc is not None:
            return loc
    return SourceLocation(file, 1, 1)


def integer_too_long(value: int) -> bool:
    """More digits than the limit? (without turning a huge integer into text)"""
    bits, limit = abs(value).bit_length(), INTEGER_DIGITS.value
    if bits <= 3 * limit:  # 2**(3n) < 10**n
        return False
    if bits > 4 * limit:  # 2**(4n) > 10**n
        return True
    return len(str(abs(value))) > limit


# ---- scalars: the YAML 1.2 core schema (yaml.org/spec/1.2.2, 10.3.2) ---------------------------
_TAG = "tag:yaml.org,2002:"
_NULL = re.compile(r"(?:~|null|Null|NULL|)")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False,
         "FALSE": False}
# underscores between digits and 0b are accepted as ruamel.yaml accepts them
_INT = re.compile(r"[-+]?[0-9][0-9_]*|0o[0-7_]+|0x[0-9a-fA-F_]+|0b[01_]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9][0-9_]*|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?")
_SPECIAL_FLOAT = re.compile(r"[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)")
_QUOTE_HINT = "quote the value to make it a string"


def _resolve(value: str) -> str:
    """The core schema's tag of a plain (unquoted, untagged) scalar."""
    if _NULL.fullmatch(value):
        return _TAG + "null"
    if value in _BOOL:
        return _TAG + "bool"
    if _INT.fullmatch(value):
        return _TAG + "int"
    if _FLOAT.fullmatch(value) or _SPECIAL_FLOAT.fullmatch(value):
        return _TAG + "float"
    return _TAG + "str"


class _Bad(Exception):
    """A scalar that cannot be used: message and hint (the caller adds the location)."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def _integer(text: str) -> int:
    clean = text.replace("_", "")
    sign = -1 if clean.startswith("-") else 1
    body = clean.lstrip("+-")
    base = {"0o": 8, "0x": 16, "0b": 2}.get(body[:2].lower(), 10)
    digits = body[2:] if base != 10 else body
    # bits per digit: 1 (binary), 3 (octal), 4 (hex), 3.33 (decimal)
    too_long = len(digits) * {2: 1, 8: 3, 16: 4, 10: 3.33}[base] > 4 * INTEGER_DIGITS.value
    if not digits or not _INT.fullmatch(clean.lstrip("+-") if base == 10 else clean):
        raise _Bad(f"{text!r} is not an integer", "write a whole number, or quote it")
    if too_long or integer_too_long(int(digits, base)):
        raise _Bad(INTEGER_DIGITS.exceeded("integer too long"), _QUOTE_HINT)
    return sign * int(digits, base)


def _scalar(event: ScalarEvent) -> Any:
    """The value of a scalar event, by its tag (explicit, or resolved for a plain scalar)."""
    value, tag = event.value, event.tag
    if tag is None:
        tag = _resolve(value) if event.implicit[0] else _TAG + "str"
    elif tag == "!":
        tag = _TAG + "str"  # the non-specific tag: a string
    if tag == _TAG + "str":
        for ch in value:
            if "\ud800" <= ch <= "\udfff":
                raise _Bad(f"the string holds a lone surrogate (\\u{ord(ch):04x}), not a "
                           "character", "remove the \\u escape")
        return value
    if tag == _TAG + "null":
        if not _NULL.fullmatch(value):
            raise _Bad(f"{value!r} is not null", "write null or ~")
        return None
    if tag == _TAG + "bool":
        if value not in _BOOL:
            raise _Bad(f"{value!r} is not true or false", "write true or false")
        return _BOOL[value]
    if tag == _TAG + "int":
        return _integer(value)
    if tag == _TAG + "float":
        if _SPECIAL_FLOAT.fullmatch(value):
            raise _Bad(f"{value} is not a number JSON can hold", "write a finite number, or "
                       "quote it")
        if not _FLOAT.fullmatch(value) and not _INT.fullmatch(value):
            raise _Bad(f"{value!r} is not a number", "write a number, or quote it")
        number = float(value.replace("_", ""))
        if not math.isfinite(number):
            raise _Bad(f"{value} is too large for a number JSON can hold", _QUOTE_HINT)
        return number
    raise _Bad(f"the tag {tag.replace(_TAG, '!!')} is not supported: values are strings, "
               "numbers, true/false, null, lists and mappings", _QUOTE_HINT + " (and drop the "
               "tag)")


# ---- building the data from events ------------------------------------------------------------
_MERGE = object()  # the pending key is '<<'


@dataclass
class _Anchored:
    value: Any
    size: int  # values it expands to
    locations: Locations  # relative to the anchored node


@dataclass
class _Frame:
    path: KeyPath
    data: Any  # dict or list
    anchor: str | None
    start_values: int
    key: Any = None  # mappings: the key waiting for its value (None: next scalar is a key)
    key_where: SourceLocation | None = None
    merges: list[tuple[Any, Locations]] = field(default_factory=list)


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.locations: Locations = {(): SourceLocation(file, 1, 1)}
        self.anchors: dict[str, _Anchored] = {}
        self.values = 0
        self.aliases = 0
        self.stack: list[_Frame] = []
        self.root: Any = None
        self.documents = 0

    def where(self, event: Event) -> SourceLocation:
        mark = event.start_mark
        return SourceLocation(self.file, mark.line + 1, mark.column + 1)

    def count(self, n: int, event: Event, path: KeyPath) -> None:
        self.values += n
        if self.values > VALUES.value:
            raise fail(VALUES.exceeded("the document expands to too many values" + (
                " (this alias repeats what it names)" if isinstance(event, AliasEvent) else "")),
                path=path, location=self.where(event),
                hint="write fewer values" + (", or use fewer aliases"
                                             if self.aliases else ""))

    def slot(self, event: Event) -> tuple[KeyPath, SourceLocation]:
        """The path and location of the value this event starts (not for mapping keys)."""
        if not self.stack:
            return (), SourceLocation(self.file, 1, 1)
        top = self.stack[-1]
        if isinstance(top.data, list):
            return (*top.path, len(top.data)), self.where(event)
        if top.key is _MERGE:
            return (*top.path, "<<"), top.key_where or self.where(event)
        return (*top.path, top.key), top.key_where or self.where(event)

    def attach(self, value: Any, path: KeyPath, event: Event) -> None:
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
        if isinstance(top.data, list):
            top.data.append(value)
        elif top.key is _MERGE:
            sources = value if isinstance(value, list) else [value]
            if not sources or not all(isinstance(s, dict) for s in sources):
                raise fail("'<<' (merge key) takes a mapping or a list of mappings",
                           path=top.path, location=top.key_where or self.where(event),
                           hint="write '<<: *name' where &name is a mapping")
            relative = {p[len(path):]: loc for p, loc in self.locations.items()
                        if p[:len(path)] == path}
            if isinstance(value, list):
                top.merges += [(s, {p[1:]: loc for p, loc in relative.items() if p[:1] == (i,)})
                               for i, s in enumerate(sources)]
            else:
                top.merges.append((value, relative))
            for p in [p for p in self.locations if p[:len(path)] == path]:
                del self.locations[p]
            top.key = None
        else:
            top.data[top.key] = value
            top.key = None

    def start(self, event: MappingStartEvent | SequenceStartEvent) -> None:
        top = self.stack[-1] if self.stack else None
        if top is not None and isinstance(top.data, dict) and top.key is None:
            raise fail("a mapping or list cannot be a key: keys are names", path=top.path,
                       location=self.where(event), hint="write 'name: value' lines")
        path, where = self.slot(event)
        if len(self.stack) >= DEPTH.value:
            raise fail(DEPTH.exceeded("nested too deeply"), path=path, location=where,
                       hint="flatten the structure")
        mapping = isinstance(event, MappingStartEvent)
        expected = _TAG + ("map" if mapping else "seq")
        if event.tag not in (None, "!", expected):
            raise fail(f"the tag {event.tag.replace(_TAG, '!!')} is not supported: values are "
                       "strings, numbers, true/false, null, lists and mappings", path=path,
                       location=self.where(event), hint="drop the tag")
        self.count(1, event, path)
        self.locations[path] = where
        self.stack.append(_Frame(path=path, data={} if mapping else [], anchor=event.anchor,
                                 start_values=self.values - 1))

    def end(self, event: Event) -> None:
        frame = self.stack.pop()
        if frame.merges:
            for source, relative in frame.merges:
                for key, value in source.items():
                    if key not in frame.data:
                        frame.data[key] = value
                        for p, loc in relative.items():
                            if p[:1] == (key,):
                                self.locations[(*frame.path, *p)] = loc
        if frame.anchor is not None:
            n = len(frame.path)
            self.anchors[frame.anchor] = _Anchored(
                frame.data, self.values - frame.start_values,
                {p[n:]: loc for p, loc in self.locations.items() if p[:n] == frame.path})
        self.attach(frame.data, frame.path, event)

    def scalar(self, event: ScalarEvent) -> None:
        top = self.stack[-1] if self.stack else None
        if top is not None and isinstance(top.data, dict) and top.key is None:
            self.key(top, event)
            return
        path, where = self.slot(event)
        try:
            value = _scalar(event)
        except _Bad as bad:
            raise fail(str(bad), path=path, location=self.where(event), hint=bad.hint) from None
        self.count(1, event, path)
        self.locations.setdefault(path, where)
        if event.anchor is not None:
            self.anchors[event.anchor] = _Anchored(value, 1, {})
        self.attach(value, path, event)

    def key(self, top: _Frame, event: ScalarEvent) -> None:
        where = self.where(event)
        if event.value == "<<" and event.tag is None and event.implicit[0]:
            top.key, top.key_where = _MERGE, where
            return
        try:
            key = _scalar(event)
        except _Bad as bad:
            raise fail(str(bad), path=top.path, location=where, hint=bad.hint) from None
        if not isinstance(key, str):
            raise fail(f"the key {key!r} is not a string", path=top.path, location=where,
                       hint=f"quote the key (\"{event.value}\": ...); keys are names")
        if key in top.data:
            first = self.locations.get((*top.path, key))
            raise fail(f"the key {key!r} appears twice"
                       + (f" (first on line {first.line})" if first else ""),
                       path=(*top.path, key), location=where, hint="remove one of them")
        top.key, top.key_where = key, where
        self.locations[(*top.path, key)] = where

    def alias(self, event: AliasEvent) -> None:
        path, where = self.slot(event)
        top = self.stack[-1] if self.stack else None
        if top is not None and isinstance(top.data, dict) and top.key is None:
            raise fail("an alias cannot be a key", path=top.path, location=self.where(event),
                       hint="write the key out")
        anchored = self.anchors.get(str(event.anchor))
        if anchored is None:
            raise fail(f"unknown alias *{event.anchor} (no &{event.anchor} before it)",
                       path=path, location=self.where(event),
                       hint="define the anchor with &name before using *name")
        self.aliases += 1
        if self.aliases > ALIASES.value:
            raise fail(ALIASES.exceeded("too many alias uses"), path=path,
                       location=self.where(event), hint="write the values out instead")
        self.count(anchored.size, event, path)
        self.locations[path] = where
        for p, loc in anchored.locations.items():
            if p:
                self.locations[(*path, *p)] = loc
        self.attach(anchored.value, path, event)

    def feed(self, events: Iterator[Event]) -> Any:
        for event in events:
            if isinstance(event, ScalarEvent):
                self.scalar(event)
            elif isinstance(event, MappingStartEvent | SequenceStartEvent):
                self.start(event)
            elif isinstance(event, MappingEndEvent | SequenceEndEvent):
                self.end(event)
            elif isinstance(event, AliasEvent):
                self.alias(event)
            elif isinstance(event, DocumentStartEvent):
                self.documents += 1
                if self.documents > 1:
                    raise fail("a second YAML document ('---'): one document per file",
                               location=self.where(event),
                               hint="remove the '---' line and what follows, or merge them")
        return self.root


def _events(text: str) -> Iterator[Event]:
    """ruamel's event stream: libyaml's C parser if ruamel.yaml.clib is installed."""
    return YAML(typ="safe").parse(text)


def parse_yaml(text: str, file: str) -> YamlDocument:
    """Parse YAML text; syntax errors and broken limits become an InputError at the offending
    line."""
    builder = _Builder(file)
    try:
        data = builder.feed(_events(text))
    except ReaderError as err:
        char = err.character
        code = char if isinstance(char, int) else ord(str(char)[:1] or "\0")
        raise fail(f"character U+{code:04X} is not allowed in YAML (control characters are "
                   "not)", location=text_location(text, err.position, file), file=file,
                   hint="remove it, or write it as an escape in a double-quoted string "
                   "(\"\\x1b\")") from None
    except MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        loc = SourceLocation(file, mark.line + 1, mark.column + 1) if mark \
            else SourceLocation(file, 1, 1)
        problem = " ".join(str(err.problem or err.context or "syntax error").split())
        raise fail(f"invalid YAML: {problem}", location=loc, file=file,
                   hint="check indentation and quoting around this line") from None
    except YAMLError as err:
        raise fail(f"invalid YAML: {' '.join(str(err).split())}",
                   location=SourceLocation(file, 1, 1), file=file,
                   hint="check the document's structure") from None
    except InputError:
        raise
    return YamlDocument(file=file, data={} if data is None else data,
                        locations=builder.locations)


def load_yaml(path: str | Path) -> YamlDocument:
    return parse_yaml(read_input_text(path), str(path))
