"""Shared pieces of the tool-output parsers: numbered lines, ANSI colours, unknown lines.

``margo-info``, ``fi_info`` and ``hg_info`` print plain text meant for people. Each parser walks
the text line by line (1-based numbers, as in an editor), strips terminal colour codes, keeps
every line it does not understand as an :class:`UnknownLine` (never fatal), and reports broken or
truncated content as an :class:`~bedrock_deploy.diagnostics.InputError` at ``file:line``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from bedrock_deploy.diagnostics import InputError, Problem, SourceLocation

# CSI sequences such as "\x1b[32m" / "\x1b[0m" (margo-info colours YES rows green, NO rows red
# and the host name and temp-file paths magenta; the reset code comes after the newline, so it
# starts the *next* line).
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


@dataclass(frozen=True)
class UnknownLine:
    """A line a parser did not recognise: kept for the report, never an error."""

    line: int
    text: str

    def to_dict(self) -> dict[str, object]:
        return {"line": self.line, "text": self.text}


def numbered_lines(text: str) -> Iterator[tuple[int, str]]:
    """``(line number, line without colour codes and trailing whitespace)``, 1-based.

    Lines end at "\n" only (as editors and :func:`line_of_offset` count them; a "\r" before it
    is trailing whitespace), not at the other breaks ``str.splitlines`` knows.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, raw in enumerate(lines, start=1):
        yield number, strip_ansi(raw).rstrip()


def parse_error(message: str, *, file: str, line: int, column: int = 1,
                hint: str | None = None) -> InputError:
    """A located error in a tool's output file."""
    return InputError(Problem(message, location=SourceLocation(file, line, column), hint=hint,
                              file=file))


def line_of_offset(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of a character offset."""
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column
