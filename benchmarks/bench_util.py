"""Shared helpers of the benchmarks: statistics, machine description, result files, plots."""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
SCHEMA_VERSION = 1
STATUSES = ("ok", "skipped", "failed")


class Skip(Exception):
    """A benchmark cannot run here (e.g. the engine is not built); the message says why."""


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile (same definition as raw_pingpong.c)."""
    if not sorted_values:
        raise ValueError("no samples")
    k = max(1, min(len(sorted_values), math.ceil(p / 100.0 * len(sorted_values))))
    return sorted_values[k - 1]


def summarize(samples_us: Iterable[float]) -> dict[str, float]:
    """min, median, p90, p99, mean, max (microseconds) and the sample count."""
    s = sorted(samples_us)
    return {"n": len(s), "min_us": s[0], "median_us": percentile(s, 50),
            "p90_us": percentile(s, 90), "p99_us": percentile(s, 99),
            "mean_us": sum(s) / len(s), "max_us": s[-1]}


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine() -> dict[str, Any]:
    """Where the figures come from: lscpu, kernel, Python, allowed CPUs, git commit."""
    return {
        "lscpu": _run(["lscpu"]),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "cpus_allowed": sorted(os.sched_getaffinity(0)),
        "loadavg_at_start": list(os.getloadavg()),
        "git_commit": _run(["git", "-C", str(REPO), "rev-parse", "HEAD"]),
    }


@dataclass
class Target:
    name: str
    value: float | None
    limit: float
    unit: str
    reference: str = ""

    @property
    def met(self) -> bool | None:
        return None if self.value is None else self.value <= self.limit

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "limit": self.limit, "unit": self.unit,
                "met": self.met, "reference": self.reference}


@dataclass
class Result:
    """One benchmark's result file (``results/<name>.json``)."""

    name: str
    title: str
    quick: bool
    status: str = "ok"
    reason: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    results: list[dict[str, Any]] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plot: str | None = None
    started: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(
        timespec="seconds"))
    duration_s: float = 0.0

    def to_dict(self, machine_info: dict[str, Any]) -> dict[str, Any]:
        return {"schema": SCHEMA_VERSION, "benchmark": self.name, "title": self.title,
                "status": self.status, "reason": self.reason, "quick": self.quick,
                "started": self.started, "duration_s": round(self.duration_s, 3),
                "machine": machine_info, "parameters": self.parameters,
                "results": self.results, "targets": [t.to_dict() for t in self.targets],
                "notes": self.notes, "plot": self.plot,
                "loadavg_at_end": list(os.getloadavg())}

    def write(self, out: Path, machine_info: dict[str, Any]) -> Path:
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{self.name}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(machine_info), indent=2) + "\n",
                       encoding="utf-8")
        tmp.replace(path)
        return path


def pyplot() -> Any:
    """matplotlib.pyplot with the non-interactive backend (None if matplotlib is missing)."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_plot(fig: Any, out: Path, name: str) -> str:
    out.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out / f"{name}.png", dpi=110)
    pyplot().close(fig)
    return f"{name}.png"


def pin_self(cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})


def two_cpus() -> tuple[int, int]:
    """(client CPU, server CPU): CPU 0 and 1 when allowed, else the first two allowed."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        raise Skip(f"needs two CPUs to pin client and server apart; allowed: {allowed}")
    if 0 in allowed and 1 in allowed:
        return 0, 1
    return allowed[0], allowed[1]
