"""User-facing problems with input files: where (file:line:column, key path), what, how to fix.

Every command reports bad input through :class:`InputError`; the CLI prints its problems and
exits with status 2. Nothing here knows about a particular file format.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

PathPart = str | int
KeyPath = tuple[PathPart, ...]


@dataclass(frozen=True)
class SourceLocation:
    """A 1-based position in a text file."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


def format_path(path: Sequence[PathPart]) -> str:
    """``("node", "numa_domains", 1, "cpus")`` -> ``node.numa_domains[1].cpus``."""
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
        where = str(self.location) if self.location else (self.file or "<input>")
        text = f"{where}: error: {format_path(self.path)}: {self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
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
