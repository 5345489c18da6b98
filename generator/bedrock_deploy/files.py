"""Reading input files and writing output files: errors as InputError, writes atomic.

Nothing half-written: a file is written to a temporary name next to its target, then renamed
over it (rename is atomic within a filesystem).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bedrock_deploy.diagnostics import fail


def read_input_text(path: str | Path) -> str:
    """The text of an input file; a missing or unreadable file is an InputError."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise fail("file not found", file=str(p), hint="check the path") from None
    except (OSError, UnicodeDecodeError) as err:
        raise fail(f"cannot read file: {err}", file=str(p)) from None


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename; returns the path."""
    out = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    except OSError as err:
        raise fail(f"cannot write here: {err.strerror}", file=str(out),
                   hint="check that the directory exists and is writable") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
