"""JSON documents that remember where every key and item came from, within the input limits.

:func:`parse_json` parses strictly with :mod:`json` (RFC 8259: no NaN or Infinity, no trailing
commas), then walks the text once more with a small iterative tokenizer that records the
``file:line:column`` of every key path (the same :class:`~bedrock_deploy.yaml_source.YamlDocument`
shape the YAML loader gives). Nesting beyond ``max_depth`` and integers beyond
``max_integer_digits`` (:mod:`bedrock_deploy.limits`) are located errors, never a
``RecursionError`` or Python's own 4,300-digit ``ValueError``.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from typing import Any

from bedrock_deploy.diagnostics import InputError, KeyPath, SourceLocation, fail
from bedrock_deploy.limits import DEPTH, INTEGER_DIGITS
from bedrock_deploy.yaml_source import Locations, YamlDocument

_TOKEN = re.compile(r"""
    [ \t\r\n]+
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<num>-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)
  | (?P<lit>true|false|null|NaN|-?Infinity)
  | (?P<punct>[{}\[\]:,])
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)


class _NumberTooLong(Exception):
    pass


class _NotJson(Exception):
    pass


def _int(text: str) -> int:
    if len(text.lstrip("-")) > INTEGER_DIGITS.value:
        raise _NumberTooLong(text)
    return int(text)


def _constant(text: str) -> Any:
    raise _NotJson(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJson(text)
    return value


def loads(text: str) -> Any:
    """``json.loads`` with the limits' guards; raises ``json.JSONDecodeError`` for bad syntax
    and ValueError for what the limits refuse (use :func:`parse_json` for located errors)."""
    try:
        return json.loads(text, parse_int=_int, parse_float=_float,
                          parse_constant=_constant)
    except (_NumberTooLong, _NotJson, RecursionError) as err:
        raise ValueError(str(err)) from None


class _Positions:
    def __init__(self, text: str, file: str) -> None:
        self.file = file
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def at(self, offset: int) -> SourceLocation:
        i = bisect.bisect_right(self.starts, offset) - 1
        return SourceLocation(self.file, i + 1, offset - self.starts[i] + 1)


def scan(text: str, file: str) -> tuple[Locations, InputError | None]:
    """Locations of every key path, and the first limit broken (depth, integer digits, a
    non-JSON constant), found without recursion. Syntax is :mod:`json`'s business."""
    pos = _Positions(text, file)
    locations: Locations = {(): SourceLocation(file, 1, 1)}
    # frames: [path, is_object, next index or pending key, expecting a key]
    stack: list[list[Any]] = []

    def slot(offset: int) -> KeyPath:
        if not stack:
            return ()
        path, is_object, state, _ = stack[-1]
        if is_object:
            return (*path, state) if isinstance(state, str) else tuple(path)
        sub = (*path, state)
        locations[sub] = pos.at(offset)
        stack[-1][2] += 1
        return sub

    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind is None:
            continue
        token, offset = m.group(), m.start()
        if kind == "punct":
            if token in "{[":
                path = slot(offset)
                if len(stack) >= DEPTH.value:
                    return locations, fail(DEPTH.exceeded("nested too deeply"), path=path,
                                           location=pos.at(offset),
                                           hint="flatten the structure")
                stack.append([path, token == "{", 0 if token == "[" else None, token == "{"])
            elif token in "}]":
                if stack:
                    stack.pop()
            elif token == "," and stack and stack[-1][1]:
                stack[-1][3] = True  # a key comes next
            continue
        if kind == "str" and stack and stack[-1][1] and stack[-1][3]:
            try:
                key = json.loads(token)
            except ValueError:
                key = token[1:-1]
            stack[-1][2], stack[-1][3] = str(key), False
            locations[(*stack[-1][0], str(key))] = pos.at(offset)
            continue
        path = slot(offset)
        if kind == "num" and not re.search("[.eE]", token) and \
                len(token.lstrip("-")) > INTEGER_DIGITS.value:
            return locations, fail(INTEGER_DIGITS.exceeded("integer too long"), path=path,
                                   location=pos.at(offset),
                                   hint="write it as a string (in quotes)")
        if kind == "num" and not math.isfinite(float(token)):
            return locations, fail(f"{token} is too large for a number JSON can hold",
                                   path=path, location=pos.at(offset),
                                   hint="write a smaller number, or a string")
        if kind == "lit" and token not in ("true", "false", "null"):
            return locations, fail(f"{token} is not JSON (RFC 8259 has no NaN or Infinity)",
                                   path=path, location=pos.at(offset),
                                   hint="write a finite number, or a string")
    return locations, None


def parse_json(text: str, file: str) -> YamlDocument:
    """Parse JSON strictly; bad syntax and broken limits are InputErrors at their line."""
    try:
        data = json.loads(text, parse_int=_int, parse_float=_float,
                          parse_constant=_constant)
        failure: BaseException | None = None
    except json.JSONDecodeError as err:
        raise fail(f"invalid JSON: {err.msg}", location=SourceLocation(file, err.lineno,
                                                                       err.colno),
                   file=file, hint="check commas, quotes and brackets around this position"
                   ) from None
    except (_NumberTooLong, _NotJson, RecursionError) as err:
        data, failure = None, err
    locations, problem = scan(text, file)
    if problem is not None:
        raise problem
    if failure is not None:  # the scan always finds what json refused; just in case
        raise fail(f"invalid JSON: {type(failure).__name__}", location=SourceLocation(file, 1, 1),
                   file=file, hint="check the document's structure")
    return YamlDocument(file=file, data=data, locations=locations)
