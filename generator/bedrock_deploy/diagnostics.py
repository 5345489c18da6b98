"""User-facing problems with input files: where (file:line:column, key path), what, how to fix.

Every command reports bad input through :class:`InputError`; the CLI prints its problems and
exits with status 2. Nothing here knows about a particular file format.

Text taken from inputs (file names, keys, values) may hold control characters and terminal
escape sequences: :func:`printable` escapes them, and :meth:`Problem.format` applies it to every
part, so a problem is always one line (plus its hint line) of inert text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

PathPart = str | int
KeyPath = tuple[PathPart, ...]

# C0 and C1 controls, DEL, lone surrogates (undecodable bytes of file names), line and paragraph
# separators, and the bidirectional overrides that reorder what a terminal shows.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e"
                          "\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """``text`` with every control character, escape sequence introducer, line separator,
    bidirectional override and lone surrogate written as a backslash escape: safe to show on a
    terminal, and always one line."""
    return _UNPRINTABLE.sub(_escape, str(text))


@dataclass(frozen=True)
class SourceLocation:
    """A 1-based position in a text file."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


def format_path(path: Sequence[PathPart]) -> str:
    """``("node", "numa_domains", 1, "cpus")`` -> ``node.numa_domains[1].cpus`` (a very long
    path keeps its first and last parts)."""
    if len(path) > 16:
        return f"{format_path(path[:6])}...{format_path(path[-6:])}"
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where (``location``, or ``file``), the key path, what,
    and a hint.

    Example::

        print(problem.format())   # svc.yaml:5:5: error: components[0].poool: unknown key ...
    """

    message: str
    path: KeyPath = ()
    location: SourceLocation | None = None
    hint: str | None = None
    file: str | None = None  # used when no precise location is known

    def format(self) -> str:
        """``file:line:column: error: key.path: message`` and an indented hint line, every
        part :func:`printable`."""
        where = str(self.location) if self.location else (self.file or "<input>")
        text = (f"{printable(where)}: error: {printable(format_path(self.path))}: "
                f"{printable(self.message)}")
        if self.hint:
            text += f"\n    hint: {printable(self.hint)}"
        return text

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.location.file if self.location else self.file,
            "line": self.location.line if self.location else None,
            "column": self.location.column if self.location else None,
            "path": format_path(self.path),
            "message": self.message,
            "hint": self.hint,
        }


@dataclass
class InputError(Exception):
    """Bad input: one or more problems, each with its location and a fix hint.

    Example::

        try:
            bd.load_service("svc.yaml")
        except bd.InputError as err:
            for p in err.problems:
                print(p.location, p.message, p.hint)
    """

    problems: list[Problem] = field(default_factory=list)

    def __init__(self, problems: Problem | Iterable[Problem]):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return "\n".join(p.format() for p in self.problems)


def fail(message: str, *, file: str | None = None, hint: str | None = None,
         path: KeyPath = (), location: SourceLocation | None = None) -> InputError:
    """Build an :class:`InputError` with a single problem (``raise fail(...)``)."""
    return InputError(Problem(message, path=path, location=location, hint=hint, file=file))


class OutputError(Exception):
    """Writing the output failed for a reason outside the input (disk full, quota, permissions,
    read-only file system). Nothing was left half-written; the CLI prints one line, exit 1."""

    def __init__(self, path: str, reason: str, hint: str | None = None) -> None:
        super().__init__(f"cannot write {path}: {reason}")
        self.path = path
        self.reason = reason
        self.hint = hint
