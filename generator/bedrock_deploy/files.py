"""Reading input files and writing output files: errors as InputError/OutputError, writes atomic.

Reading: at most the size limit of the kind of input (:mod:`bedrock_deploy.limits`) is read, so a
huge file, ``/dev/zero`` or an endless pipe costs nothing; documents (YAML, JSON) must be UTF-8
without NUL characters, and an undecodable byte is reported at its line and column.
Tool outputs (margo-info, fi_info, hg_info) are decoded leniently: they are read for a few
words, and a stray byte becomes U+FFFD.

Writing: nothing half-written. A file is written to a temporary name next to its target, then
renamed over it (rename is atomic within a filesystem); on any failure (disk full, quota,
permissions, Ctrl-C) the temporary file is removed and the target is untouched. Modes are
explicit (0644 files, 0755 scripts and directories): they do not depend on the user's umask.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from bedrock_deploy.diagnostics import InputError, OutputError, SourceLocation, fail
from bedrock_deploy.limits import DOCUMENT_BYTES, Limit

FILE_MODE = 0o644
EXECUTABLE_MODE = 0o755
DIRECTORY_MODE = 0o755
_BOM = "\ufeff"


def byte_location(data: bytes, offset: int, file: str) -> SourceLocation:
    """1-based line and column (in characters) of byte ``offset``."""
    offset = max(0, min(offset, len(data)))
    line_start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", errors="replace")) + 1
    return SourceLocation(file, data.count(b"\n", 0, offset) + 1, column)


def text_location(text: str, offset: int, file: str) -> SourceLocation:
    """1-based line and column of character ``offset``."""
    offset = max(0, min(offset, len(text)))
    return SourceLocation(file, text.count("\n", 0, offset) + 1,
                          offset - (text.rfind("\n", 0, offset) + 1) + 1)


def is_file(path: str | Path) -> bool:
    """Whether a path given in an input names a regular file. A name the system cannot look up
    (too long, a symlink loop, a component that is a file) is not a file, so the caller's
    "not found" error, located in the input, applies instead of an OSError."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):  # ENAMETOOLONG, ELOOP, ...; ValueError: embedded NUL
        return False


def is_dir(path: str | Path) -> bool:
    """Whether a path given in an input names a directory (see :func:`is_file`)."""
    try:
        return Path(path).is_dir()
    except (OSError, ValueError):
        return False


def read_input_bytes(path: str | Path, limit: Limit = DOCUMENT_BYTES) -> bytes:
    """At most ``limit`` bytes of an input file; missing, unreadable or larger files are
    InputErrors."""
    p = Path(path)
    name = str(p)
    try:
        with open(p, "rb") as fh:
            data = fh.read(limit.value + 1)
    except FileNotFoundError:
        raise fail("file not found", file=name, hint="check the path") from None
    except IsADirectoryError:
        raise fail("this is a directory, not a file", file=name,
                   hint="give the path of the file itself") from None
    except PermissionError:
        raise fail("permission denied", file=name,
                   hint="check the file's permissions") from None
    except OSError as err:
        raise fail(f"cannot read file: {err.strerror or err}", file=name,
                   hint="check the path and that the file is readable") from None
    if len(data) > limit.value:
        raise fail(limit.exceeded("the file is larger than the limit"), file=name,
                   location=byte_location(data, limit.value, name),
                   hint="is this the right file? inputs of this kind are far smaller")
    return data


def decode_document(data: bytes, file: str) -> str:
    """UTF-8 text of a document (a leading byte-order mark is dropped); an undecodable byte or a
    NUL character is an InputError at its line and column."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        bad = data[err.start:err.end]
        raise fail(f"byte {bad[:1].hex(' ')} is not UTF-8 text ({err.reason})",
                   location=byte_location(data, err.start, file), file=file,
                   hint="save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
    nul = text.find("\0")
    if nul >= 0:
        raise fail("NUL character: this is not a text file (or it is UTF-16)",
                   location=text_location(text, nul, file), file=file,
                   hint="save the file as UTF-8 text")
    return text.removeprefix(_BOM)


def decode_report(data: bytes) -> str:
    """Text of a tool's output: UTF-8, an undecodable byte becomes U+FFFD."""
    return data.decode("utf-8", errors="replace")


def read_input_text(path: str | Path, limit: Limit = DOCUMENT_BYTES) -> str:
    """The text of an input document (YAML, JSON); see :func:`decode_document`."""
    return decode_document(read_input_bytes(path, limit), str(path))


def output_error(err: OSError, path: str | Path) -> OutputError | InputError:
    """An OSError while writing ``path``: a missing directory is a bad argument
    (:class:`InputError`), anything else (disk full, quota, permissions, read-only) an
    :class:`OutputError`, each with a fix hint."""
    reason = err.strerror or str(err)
    if err.errno in (errno.ENOENT, errno.ENOTDIR):
        return fail(f"cannot write here: {reason}", file=str(path),
                    hint="check that the directory exists")
    hints = {
        errno.ENOSPC: "free some space on that file system, or write elsewhere",
        errno.EDQUOT: "your disk quota is exhausted: free some space, or write elsewhere",
        errno.EACCES: "check that the directory is writable",
        errno.EPERM: "check that the directory is writable",
        errno.EROFS: "that file system is read-only: write elsewhere",
    }
    return OutputError(str(path), reason, hints.get(err.errno or 0))


def write_text_atomic(path: str | Path, text: str, mode: int = FILE_MODE) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename; returns the path.
    The file gets ``mode`` whatever the umask; any failure leaves ``path`` as it was."""
    out = Path(path)
    data = text.encode("utf-8", errors="surrogateescape")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    except OSError as err:
        raise output_error(err, out) from None
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, out)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise output_error(err, out) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
