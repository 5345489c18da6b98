"""Fixtures for the compiled engine: its bindings, its executables, live daemons."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bedrock_deploy import engine as engine_mod

RUNNING = re.compile(r"Bedrock daemon now running at (\S+)")


@pytest.fixture(scope="session")
def eng() -> Any:
    try:
        return engine_mod.bindings()
    except engine_mod.EngineNotFound as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def bin_dir() -> Path:
    directory = engine_mod.engine_dir()
    if directory is None or not (directory / "bedrock-engine").is_file():
        pytest.skip("bedrock-engine executables are not built")
    return directory


class Daemon:
    """A bedrock-engine process started by a test; always stopped by PID."""

    def __init__(self, exe: Path, args: list[str], env: dict[str, str] | None = None,
                 timeout: float = 20.0) -> None:
        self.proc = subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env)
        self.output = ""
        self.address = ""
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                if not line:
                    break
                self.output += line
                m = RUNNING.search(line)
                if m:
                    self.address = m.group(1)
                    return
            elif self.proc.poll() is not None:
                break
        rest = self.proc.stdout.read() if self.proc.poll() is not None else ""
        self.output += rest or ""
        self.stop()
        raise RuntimeError(f"engine did not start: rc={self.proc.returncode}\n{self.output}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, timeout: float = 20.0) -> int:
        rc = self.proc.wait(timeout=timeout)
        assert self.proc.stdout is not None
        self.output += self.proc.stdout.read()
        return rc

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def daemon(bin_dir: Path, tmp_path: Path) -> Iterator[Any]:
    started: list[Daemon] = []

    def start(address: str, config: dict[str, Any] | None = None, *extra: str,
              env: dict[str, str] | None = None) -> Daemon:
        args = [address]
        if config is not None:
            cfg = tmp_path / f"config-{len(started)}.json"
            cfg.write_text(json.dumps(config))
            args += ["-c", str(cfg)]
        d = Daemon(bin_dir / "bedrock-engine", [*args, *extra], env=env)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


def thread_affinity(pid: int) -> dict[int, str]:
    """tid -> Cpus_allowed_list, from /proc/<pid>/task/*/status."""
    out: dict[int, str] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                out[int(task.name)] = line.split(":", 1)[1].strip()
    return out


def enable_test_rpcs(directory: Path | str | None = None) -> dict[str, Any]:
    """The "bedrock_engine" section enabling the engine's test-only RPCs (forward_ping, and
    abt_io's file RPCs beneath ``directory``)."""
    section: dict[str, Any] = {"test_rpcs": ["forward_ping"]}
    if directory is not None:
        section = {"test_rpcs": ["forward_ping", "abt_io"], "abt_io_directory": str(directory)}
    return section


def generator_like_config(io_directory: Path | str | None = None) -> dict[str, Any]:
    """The shape bedrock_config.py emits: dedicated progress, rpc and io xstreams, pinned; with
    ``io_directory``, abt_io's (test-only) file RPCs are enabled beneath it."""
    cfg = {
        "margo": {
            "progress_pool": "progress_pool",
            "rpc_pool": "rpc_pool",
            "progress_timeout_ub_msec": 100,
            "progress_spindown_msec": 10,
            "argobots": {
                "pools": [
                    {"name": "progress_pool", "kind": "fifo_wait", "access": "mpmc"},
                    {"name": "rpc_pool", "kind": "fifo_wait", "access": "mpmc"},
                    {"name": "io_pool", "kind": "fifo_wait", "access": "mpmc"},
                ],
                "xstreams": [
                    {"name": "progress_xstream", "cpubind": 0, "affinity": [0],
                     "scheduler": {"type": "basic_wait", "pools": ["progress_pool"]}},
                    {"name": "rpc_xstream_0", "cpubind": 1, "affinity": [1],
                     "scheduler": {"type": "basic_wait", "pools": ["rpc_pool"]}},
                    {"name": "io_xstream_0", "affinity": [0, 1],
                     "scheduler": {"type": "basic_wait", "pools": ["io_pool"]}},
                ],
            },
        },
        "libraries": ["libflock-bedrock-module.so", "libyokan-bedrock-module.so",
                      "libabt-io-bedrock-module.so"],
        "providers": [
            {"name": "kv", "type": "yokan", "provider_id": 1,
             "config": {"database": {"type": "map"}}, "dependencies": {"pool": "rpc_pool"}},
            {"name": "io", "type": "abt_io", "provider_id": 2,
             "dependencies": {"pool": "io_pool"}},
        ],
        "bedrock": {"pool": "rpc_pool", "provider_id": 0},
    }
    if io_directory is not None:
        cfg["bedrock_engine"] = enable_test_rpcs(io_directory)
    return cfg


def xstream_tids(query: dict[str, Any]) -> dict[str, int]:
    return {x["name"]: x["os_thread_id"] for x in query["bedrock_engine"]["xstreams"]}


def needs_cpus(*cpus: int) -> None:
    if not set(cpus) <= os.sched_getaffinity(0):
        pytest.skip(f"needs CPUs {cpus}")
