"""Shared fixtures. ``local_slurm``: the project's real single-node Slurm (tests/slurm/);
``local_cluster``: the real multi-node Slurm cluster of network namespaces (tests/cluster/)."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from golden_files import Goldens

LOCAL_SLURM = Path(__file__).parent / "slurm" / "local-slurm.sh"
CLUSTER = Path(__file__).parent / "cluster" / "cluster.sh"
CLUSTER_NODES = 3  # enough for the 3-node tests; 2-node jobs use node1 and node2


def _exported(script: Path) -> dict[str, str]:
    """The variables a script's ``env`` action exports (``export NAME=value`` lines)."""
    done = subprocess.run(["bash", str(script), "env"], capture_output=True, text=True,
                          check=True)
    out = {}
    for line in done.stdout.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, value = words[1].split("=", 1)
            out[key] = value
    return out


def _stale_editable_modules() -> list[str]:
    """Modules the editable install still maps to a file that no longer exists (a module that
    was renamed, removed, or turned into a package since the last ``bash .ci/install``)."""
    import sys

    stale = []
    for finder in sys.meta_path:
        known = getattr(finder, "known_source_files", None)
        if not isinstance(known, dict):
            continue
        stale += [name for name, path in known.items()
                  if name.startswith("bedrock_deploy") and not Path(path).exists()]
    return sorted(stale)


def pytest_sessionstart(session: pytest.Session) -> None:
    stale = _stale_editable_modules()
    if stale:
        pytest.exit(f"the editable install maps {', '.join(stale)} to deleted files (a module "
                    "was renamed or removed): re-run `bash .ci/install`", returncode=4)


@pytest.fixture(scope="session")
def local_slurm() -> Iterator[str]:
    """Start (or reuse) the local Slurm; yields its partition. Several pytest sessions may
    share it: each holds a lease, and the daemons stop when the last lease is dropped.
    Its clients find it through SLURM_CONF, set in this session's environment meanwhile."""
    lease = str(os.getpid())
    done = subprocess.run(["bash", str(LOCAL_SLURM), "start", "--lease", lease],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"local Slurm did not start:\n{done.stdout}\n{done.stderr}")
    before = os.environ.get("SLURM_CONF")
    os.environ.update(_exported(LOCAL_SLURM))
    try:
        yield "debug"
    finally:
        if before is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = before
        subprocess.run(["bash", str(LOCAL_SLURM), "stop", "--lease", lease],
                       capture_output=True, text=True, timeout=300)


@dataclass(frozen=True)
class Cluster:
    """The running test cluster: its partition, its nodes, and the environment its clients
    need (this session's environment plus the cluster's SLURM_CONF)."""

    partition: str
    nodes: int
    run: Path
    env: dict[str, str]

    def node_names(self) -> list[str]:
        return [f"node{i}" for i in range(1, self.nodes + 1)]

    def hosts(self) -> dict[str, str]:
        """Host name -> address, from the cluster's hosts file."""
        out = {}
        for line in (self.run / "etc" / "hosts").read_text().splitlines():
            words = line.split()
            if len(words) == 2:
                out[words[1]] = words[0]
        return out

    def netns_of_node(self) -> dict[int, str]:
        """Network namespace inode -> node name (from /run/netns/bdc-node<i>)."""
        return {os.stat(f"/run/netns/bdc-{name}").st_ino: name for name in self.node_names()}


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[Cluster]:
    """Start (or reuse) the namespace cluster with CLUSTER_NODES nodes, under a lease of this
    session (several sessions may share it; the last one out stops it)."""
    if os.geteuid() != 0:
        pytest.skip("the namespace cluster needs root (network namespaces, a bridge)")
    lease = str(os.getpid())
    done = subprocess.run(["bash", str(CLUSTER), "start", "--nodes", str(CLUSTER_NODES),
                           "--lease", lease], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"the test cluster did not start:\n{done.stdout}\n{done.stderr}")
    exported = _exported(CLUSTER)
    run = Path(exported["BEDROCK_CLUSTER_RUN"])
    try:  # at least CLUSTER_NODES: another session may have started it with more
        yield Cluster(partition="cluster", nodes=int((run / "nodes").read_text()), run=run,
                      env={**os.environ, **exported})
    finally:
        subprocess.run(["bash", str(CLUSTER), "stop", "--lease", lease],
                       capture_output=True, text=True, timeout=300)


# ---- golden files (tests/golden_files.py, tests/golden/README.md) ------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-goldens", action="store_true", default=False,
                     help="rewrite the golden files (tests/golden/, README's site table) from "
                     "the current code instead of comparing; review the diff by eye")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "goldens" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.golden)


@pytest.fixture
def goldens(request: pytest.FixtureRequest) -> Goldens:
    return Goldens(bool(request.config.getoption("--update-goldens")))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fuzz harness's figures (tests/test_fuzz_cli.py), in every run's log."""
    import sys

    fuzz = sys.modules.get("test_fuzz_cli")
    if fuzz is None or not fuzz.STATS:
        return
    terminalreporter.section("fuzz harness (tests/test_fuzz_cli.py)")
    total, seconds = 0, 0.0
    for target, outcomes in fuzz.STATS.items():
        times = fuzz.TIMES.get(target, [])
        total += sum(outcomes.values())
        seconds += sum(times)
        terminalreporter.write_line(
            f"{target:>13}: {sum(outcomes.values()):6,} inputs, "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items()))
            + f"; slowest {max(times, default=0):.2f} s")
    terminalreporter.write_line(f"{'total':>13}: {total:6,} inputs, {seconds:.0f} s in the CLI")
