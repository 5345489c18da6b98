"""Turn pydantic validation errors into located, fixable :class:`Problem` s."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from bedrock_deploy.diagnostics import InputError, KeyPath, PathPart, Problem, SourceLocation

M = TypeVar("M", bound=BaseModel)

# Per pydantic error type: how to fix it (``{expected}`` is the field's description).
_HINTS: dict[str, str] = {
    "int_parsing": "write a whole number",
    "int_type": "write a whole number",
    "int_from_float": "write a whole number",
    "float_parsing": "write a number",
    "bool_parsing": "write true or false",
    "bool_type": "write true or false",
    "string_type": "write a string (quote it if it looks like a number)",
    "list_type": "write a YAML list (one '- item' per line, or [a, b])",
    "dict_type": "write a mapping of 'key: value' lines",
    "model_type": "write a mapping of 'key: value' lines",
    "literal_error": "use one of the allowed values",
    "enum": "use one of the allowed values",
    "greater_than_equal": "use a larger value",
    "greater_than": "use a larger value",
    "less_than_equal": "use a smaller value",
    "string_pattern_mismatch": "follow the required pattern",
}


# Where every key of a document is described, when no more precise hint applies.
_SCHEMA_HINTS = {
    "SiteProfile": "'bedrock-deploy sites schema' describes every key of a site profile",
    "ServiceDescription": "'bedrock-deploy service schema' describes every key of a service",
}


def _unwrap(annotation: Any) -> list[Any]:
    """Candidate inner types of an annotation (through Optional, list, dict, Annotated)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for a in typing.get_args(annotation) for t in _unwrap(a)]
    if origin in (list, tuple, set, frozenset):
        return [t for a in typing.get_args(annotation) for t in _unwrap(a)]
    if origin is dict:
        return _unwrap(typing.get_args(annotation)[1])
    return [annotation]


def _model_at(model: type[BaseModel], path: KeyPath) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``path`` (best effort)."""
    current: type[BaseModel] | None = model
    for part in path:
        if current is None:
            return None
        if isinstance(part, int):
            continue
        f = current.model_fields.get(part)
        if f is None:
            # dict-valued fields: the key is a user name, stay on the value model
            continue
        nxt = [t for t in _unwrap(f.annotation) if isinstance(t, type) and issubclass(t, BaseModel)]
        current = nxt[0] if nxt else None
    return current


def _data_path(data: Any, loc: tuple[Any, ...]) -> KeyPath:
    """Keep the parts of a pydantic ``loc`` that address the data (drop union/type tags)."""
    out: list[PathPart] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str):
            out.append(part)
            node = node.get(part)  # None for a missing key
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        # else: a tag such as 'str' or 'list[int]' from a union member; skip it
    return tuple(out)


def problems_from_validation(
    err: ValidationError,
    model: type[BaseModel],
    data: Any,
    locate: Callable[[KeyPath], SourceLocation],
) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple[KeyPath, str]] = set()
    for e in err.errors(include_url=False):
        path = _data_path(data, tuple(e["loc"]))
        etype = e["type"]
        hint: str | None = None
        msg = e["msg"]
        if etype == "extra_forbidden":
            key = path[-1] if path else "?"
            parent = _model_at(model, path[:-1])
            known = sorted(parent.model_fields) if parent else []
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            msg = f"unknown key {key!r}"
            if close:
                hint = f"did you mean {close[0]!r}?"
            else:
                hint = "allowed keys here: " + ", ".join(known) if known else "remove this key"
        elif etype == "missing":
            msg = f"missing required key {path[-1]!r}" if path else "missing required key"
            parent = _model_at(model, path[:-1])
            f = parent.model_fields.get(str(path[-1])) if parent and path else None
            hint = f"add '{path[-1]}:' ({f.description})" if f and f.description else \
                f"add '{path[-1]}:'"
        else:
            parent = _model_at(model, path[:-1])
            f = parent.model_fields.get(str(path[-1])) if parent and path and \
                isinstance(path[-1], str) else None
            if f is None and len(path) >= 2 and isinstance(path[-2], str):
                # a key of a dict-valued field (e.g. env: NAME -> value): that field's rule
                grand = _model_at(model, path[:-2])
                f = grand.model_fields.get(path[-2]) if grand else None
            base = _HINTS.get(etype)
            if etype.startswith("value_error") or etype == "assertion_error":
                msg = msg.removeprefix("Value error, ")
                base = None
            expected = f"expected: {f.description}" if f and f.description else None
            parts = [p for p in (base, expected) if p]
            hint = "; ".join(parts) or None
            if "input" in e and etype not in ("value_error",) and not isinstance(
                    e["input"], dict | list):
                msg = f"{msg} (got {e['input']!r})"
        if "(limit max_" in msg:
            hint = "; ".join(x for x in (hint, "the limits are in docs/limits.md: no real "
                                         "input comes near them") if x)
        hint = hint or _SCHEMA_HINTS.get(model.__name__, "see the documentation of this key")
        # a missing key is reported at its parent mapping
        loc_path = path[:-1] if etype == "missing" else path
        if (path, msg) in seen:
            continue
        seen.add((path, msg))
        problems.append(Problem(msg, path=path, location=locate(loc_path), hint=hint))
    return problems


def validate_model(
    model: type[M], data: Any, locate: Callable[[KeyPath], SourceLocation]
) -> M:
    """``model.model_validate(data)`` with located, hinted problems on failure."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise InputError(problems_from_validation(err, model, data, locate)) from None
