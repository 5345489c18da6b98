"""Benchmark 2: raw round trips (cache line, Unix socket, TCP loopback), client and server on
different CPUs. The floor every engine figure is compared with (``raw_pingpong.c``)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench_util import HERE, Result, Skip, pyplot, save_plot, summarize, two_cpus

NAME = "raw_baselines"
MODES = {"shm": "shared-memory spin (one cache line)",
         "unix": "blocking Unix socket (socketpair)",
         "tcp": "blocking TCP loopback (TCP_NODELAY)",
         "tcpspin": "spinning TCP loopback (non-blocking sockets, busy-polled, TCP_NODELAY)"}
# Medians measured earlier on this machine (issue 9); none for tcpspin (added by issue 18).
REFERENCE_US = {"shm": 0.5, "unix": 58.0, "tcp": 81.0}


def compile_pingpong(build_dir: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise Skip("no C compiler (cc) on PATH")
    build_dir.mkdir(parents=True, exist_ok=True)
    exe = build_dir / "raw_pingpong"
    cmd = [cc, "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", "-o", str(exe),
           str(HERE / "raw_pingpong.c")]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return exe


def measure(exe: Path, mode: str, iterations: int, warmup: int, server_cpu: int,
            client_cpu: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        samples_file = Path(tmp) / "samples.txt"
        proc = subprocess.run([str(exe), mode, str(iterations), str(warmup), str(server_cpu),
                               str(client_cpu), str(samples_file)],
                              capture_output=True, text=True, check=False, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"raw_pingpong {mode} failed: {proc.stderr.strip()}")
        ns = [int(x) for x in samples_file.read_text().split()]
    stats = summarize(v / 1000.0 for v in ns)
    row = {"mode": mode, "what": MODES[mode], "iterations": iterations, "warmup": warmup,
           "server_cpu": server_cpu, "client_cpu": client_cpu, **stats}
    if mode in REFERENCE_US:
        row["reference_median_us"] = REFERENCE_US[mode]
    return row


def run(out: Path, quick: bool) -> Result:
    res = Result(NAME, "Raw round-trip baselines (client and server on different CPUs)", quick)
    client_cpu, server_cpu = two_cpus()
    iterations, warmup = (2000, 200) if quick else (100_000, 10_000)
    with tempfile.TemporaryDirectory(prefix="raw_pingpong-") as build:
        exe = compile_pingpong(Path(build))
        res.results = [measure(exe, m, iterations, warmup, server_cpu, client_cpu)
                       for m in MODES]
    res.parameters = {"iterations": iterations, "warmup": warmup, "client_cpu": client_cpu,
                      "server_cpu": server_cpu, "compiler_flags": "-O2 -std=c11",
                      "timer": "clock_gettime(CLOCK_MONOTONIC) around each round trip"}
    res.notes.append("8-byte messages; percentiles are nearest-rank over all timed iterations")
    plt = pyplot()
    if plt is not None:
        fig, ax = plt.subplots(figsize=(7, 4))
        labels = [r["mode"] for r in res.results]
        width = 0.25
        for i, key in enumerate(("median_us", "p90_us", "p99_us")):
            ax.bar([x + (i - 1) * width for x in range(len(labels))],
                   [r[key] for r in res.results], width, label=key.removesuffix("_us"))
        known = [(i, REFERENCE_US[m]) for i, m in enumerate(labels) if m in REFERENCE_US]
        ax.scatter([i for i, _ in known], [v for _, v in known], marker="_", s=600,
                   color="black", zorder=3, label="earlier median on this machine")
        ax.set_xticks(range(len(labels)), [f"{m}\n{MODES[m].split(' (')[0]}" for m in labels],
                      fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("round trip (µs, log)")
        ax.set_title(f"Raw ping-pong, client CPU {client_cpu} / server CPU {server_cpu}")
        ax.legend(fontsize=8)
        res.plot = save_plot(fig, out, NAME)
    return res
