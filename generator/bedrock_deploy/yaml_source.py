"""YAML documents that remember where every key and item came from.

ruamel.yaml's round-trip loader keeps line/column information on each mapping and sequence;
we turn a document into plain Python data plus a table ``key path -> SourceLocation`` so later
stages (pydantic validation, semantic checks, ``extends`` merging) can point at the exact place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from bedrock_deploy.diagnostics import KeyPath, SourceLocation, fail
from bedrock_deploy.files import read_input_text

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


def _plain(node: Any, file: str, path: KeyPath, locations: Locations) -> Any:
    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        for key in node:
            line, col = node.lc.key(key)
            sub = (*path, str(key))
            locations[sub] = SourceLocation(file, line + 1, col + 1)
            out[str(key)] = _plain(node[key], file, sub, locations)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for i, item in enumerate(node):
            line, col = node.lc.item(i)
            sub = (*path, i)
            locations[sub] = SourceLocation(file, line + 1, col + 1)
            items.append(_plain(item, file, sub, locations))
        return items
    if isinstance(node, str):
        return str(node)  # drop ruamel's scalar string subclasses
    return node


def parse_yaml(text: str, file: str) -> YamlDocument:
    """Parse YAML text; syntax errors become an InputError at the offending line."""
    yaml = YAML(typ="rt")
    try:
        raw = yaml.load(text)
    except MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        loc = SourceLocation(file, mark.line + 1, mark.column + 1) if mark else None
        raise fail(f"invalid YAML: {err.problem or err.context}", location=loc, file=file,
                   hint="check indentation and quoting around this line") from None
    except YAMLError as err:
        raise fail(f"invalid YAML: {err}", file=file) from None
    locations: Locations = {(): SourceLocation(file, 1, 1)}
    data = _plain(raw, file, (), locations)
    return YamlDocument(file=file, data={} if data is None else data, locations=locations)


def load_yaml(path: str | Path) -> YamlDocument:
    return parse_yaml(read_input_text(path), str(path))
