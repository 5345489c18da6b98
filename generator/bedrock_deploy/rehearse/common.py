"""What every emulated tool of a rehearsal shares: the rehearsal's context (written once by
:mod:`.run`, read by each tool), the event log the tools append their checks to, CPU lists and
the CPU map. Kept light: every emulated command (``qsub``, ``mpiexec``, ``srun``, a rank) is a
new Python process that imports this module and little else.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bedrock_deploy.cpulist import format_cpulist as format_cpus  # one CPU-list syntax

CONTEXT_FILE = "context.json"
EVENTS_FILE = "events.jsonl"
# Marks the messages of the emulated fabrics (native/src/transport_emulated.cpp).
EMULATION_MARK = "[emulated by bedrock-deploy rehearse]"


class ToolError(Exception):
    """An emulated tool refuses, as the real one would: its message goes to stderr."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def parse_cpus(text: str) -> list[int]:
    """``"1-3,8"`` -> ``[1, 2, 3, 8]``; ValueError on anything else."""
    out: set[int] = set()
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        lo, sep, hi = item.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"not a CPU list: {text!r}")
        a, b = int(lo), int(hi) if sep else int(lo)
        if b < a or b - a > 65536:
            raise ValueError(f"not a CPU list: {text!r}")
        out.update(range(a, b + 1))
    return sorted(out)


@dataclass(frozen=True)
class Context:
    """The rehearsal's context (``run/rehearsal/context.json``)."""

    data: dict[str, Any]
    path: Path

    @classmethod
    def load(cls, path: str | Path) -> Context:
        p = Path(path)
        return cls(json.loads(p.read_text()), p)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    @property
    def dir(self) -> Path:
        """The rehearsal directory (``DIR/run/rehearsal``)."""
        return self.path.parent

    @property
    def deployment(self) -> Path:
        return Path(self.data["deployment"])

    @property
    def site_cpus(self) -> int:
        """CPUs (hardware threads) of one node of the site."""
        return int(self.data["site_node"]["cpus"])

    def host_cpus(self, site: Iterable[int]) -> list[int]:
        """The host CPUs the map gives these site CPUs."""
        cmap = self.data["cpu_map"]
        return sorted({cmap[c] for c in site})

    def event(self, rule: str, ok: bool, detail: str = "", **extra: Any) -> None:
        record(self.dir, rule, ok, detail, **extra)

    def tool_argv(self, *args: str) -> list[str]:
        """How one emulated tool starts another."""
        return [self.data["python"], "-m", "bedrock_deploy.rehearse.tool", str(self.path), *args]


def record(directory: Path, rule: str, ok: bool, detail: str = "", **extra: Any) -> None:
    """Append one check to the event log (one line, one write: safe from many processes)."""
    line = json.dumps({"rule": rule, "ok": ok, "detail": detail, "t": time.time(),
                       "pid": os.getpid(), "host": os.uname().nodename, **extra},
                      sort_keys=True) + "\n"
    fd = os.open(directory / EVENTS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read_events(directory: Path) -> list[dict[str, Any]]:
    path = directory / EVENTS_FILE
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def fold(real: list[str], count: int) -> list[str]:
    """The names of ``count`` nodes of the site on the rehearsal's ``real`` nodes: node k runs
    on ``real[k mod len(real)]``; the first ones keep the real names, the others get
    ``<real>v<fold>`` (``node1v1`` is the site's third node on a two-node rehearsal)."""
    return [real[k % len(real)] + (f"v{k // len(real)}" if k >= len(real) else "")
            for k in range(count)]


def real_node(name: str) -> str:
    """The rehearsal node a (possibly folded) node name runs on."""
    base, sep, rest = name.rpartition("v")
    return base if sep and rest.isdigit() and base else name


def next_number(counter: Path, start: int) -> int:
    """A number unique within a rehearsal (VNIs, job ids): a counter file under a lock."""
    import fcntl

    counter.parent.mkdir(parents=True, exist_ok=True)
    with open(counter, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        text = f.read().strip()
        value = int(text) + 1 if text.isdigit() else start
        f.seek(0)
        f.truncate()
        f.write(str(value))
        return value


def run_forwarding_signals(argv: list[str], env: dict[str, str] | None = None) -> int:
    """Run ``argv`` as the stand-in's child and pass it SIGTERM, SIGINT and SIGHUP, as the real
    launchers pass a cancelled job's signals to their ranks; its exit status."""
    proc = subprocess.Popen(argv, env=env)

    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, forward)
    return proc.wait()


def check_cpu_bind(ctx: Context, sets: list[list[int]], problems: list[str], shown: str,
                   tool: str, error_prefix: str) -> None:
    """Record rule ``launcher.cpu-bind`` for the CPU sets a launcher's binding gives the ranks
    of a node (``problems``: what its parser already refused; a CPU the site's node does not
    have is added); raise :class:`ToolError` as the launcher would refuse the step."""
    missing = sorted({c for s in sets for c in s if c >= ctx.site_cpus})
    if missing:
        problems.append(f"--cpu-bind names CPU(s) {format_cpus(missing)}; a node of "
                        f"{ctx['site']} has CPUs 0-{ctx.site_cpus - 1}")
    ctx.event("launcher.cpu-bind", not problems, "; ".join(problems) or shown, tool=tool)
    if problems:
        raise ToolError(error_prefix + "; ".join(problems))
