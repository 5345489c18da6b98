"""Running the real command line in-process on hostile input, and judging the outcome.

Used by ``test_fuzz_cli.py`` (hypothesis mutations of shipped inputs) and ``test_hardening.py``
(the committed reproducers in ``tests/data/fuzz-corpus``). :func:`run_cli` calls
:func:`bedrock_deploy.cli.main` with captured stdout/stderr, a time limit (SIGALRM) and an
address-space limit (RLIMIT_AS), in a scratch working directory; :func:`verdict` says what is
wrong with an outcome, if anything:

- an exception escaped ``main`` (a traceback), or the time or memory limit was hit;
- an exit status other than 0 (accepted) or 2 (bad input);
- exit 2 with a problem that is not ``file:line:column: error: ...`` followed by a hint;
- a control character (an escape sequence...) in what was printed (output is not a terminal,
  so rich adds none of its own).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import resource
import signal
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from bedrock_deploy.cli import main

TIME_LIMIT = 10.0  # seconds per input: the slowest legitimate input takes well under 1 s
MEMORY_HEADROOM = 1 << 30  # bytes of address space an input may add to the process
ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "data" / "fuzz-corpus"

_LOCATED = re.compile(r"^.+:\d+:\d+: error: ")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class Hang(BaseException):
    """The time limit of one input ran out."""


@dataclass
class Outcome:
    argv: list[str]
    status: int | None
    stdout: str
    stderr: str
    seconds: float
    crash: str | None = None  # the traceback of what escaped main(), or "hang"/"memory"

    @property
    def kind(self) -> str:
        if self.crash == "hang":
            return "hang"
        if self.crash is not None:
            return "traceback"
        return {0: "accepted", 2: "refused"}.get(self.status or 0, f"exit {self.status}")


def _vm_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def _limits(seconds: float) -> Iterator[None]:
    def expired(signum: int, frame: FrameType | None) -> None:
        raise Hang()

    old_handler = signal.signal(signal.SIGALRM, expired)
    old_as = resource.getrlimit(resource.RLIMIT_AS)
    want = _vm_size() + MEMORY_HEADROOM
    if old_as[1] == resource.RLIM_INFINITY or want < old_as[1]:
        resource.setrlimit(resource.RLIMIT_AS, (want, old_as[1]))
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        resource.setrlimit(resource.RLIMIT_AS, old_as)


def run_cli(argv: Sequence[str], cwd: Path, seconds: float = TIME_LIMIT) -> Outcome:
    """``bedrock-deploy ARGV`` in-process, in directory ``cwd``."""
    out, err = io.StringIO(), io.StringIO()
    status: int | None = None
    crash: str | None = None
    here = os.getcwd()
    start = time.perf_counter()
    try:
        os.chdir(cwd)
        with _limits(seconds), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(list(argv))
            except SystemExit as exc:  # argparse
                status = exc.code if isinstance(exc.code, int) else 2
    except Hang:
        crash = "hang"
    except MemoryError:
        crash = "memory:\n" + traceback.format_exc()
    except Exception:
        crash = traceback.format_exc()
    finally:
        os.chdir(here)
    return Outcome(list(argv), status, out.getvalue(), err.getvalue(),
                   time.perf_counter() - start, crash)


def verdict(o: Outcome) -> str | None:
    """What is wrong with an outcome, or None."""
    if o.crash is not None:
        return f"{o.kind}: {o.crash}"
    if o.status not in (0, 2):
        return f"exit status {o.status}: {o.stderr[-2000:]}"
    for name, text in (("stdout", o.stdout), ("stderr", o.stderr)):
        bad = _CONTROL.search(text)
        if bad:
            around = text[max(0, bad.start() - 80):bad.end() + 40]
            return f"control character {bad.group()!r} in {name}: {around!r}"
    if o.status == 2:
        problems = [line for line in o.stderr.splitlines() if ": error: " in line]
        if not problems:
            return f"exit 2 without a problem: {o.stderr[-2000:]!r}"
        for line in problems:
            if not _LOCATED.match(line):
                return f"problem without file:line:column: {line!r}"
        lines = o.stderr.splitlines()
        for i, line in enumerate(lines):
            if ": error: " in line and not (i + 1 < len(lines) and
                                            lines[i + 1].startswith("    hint: ")):
                return f"problem without a hint: {line!r}"
    return None
