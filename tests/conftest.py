"""Shared fixtures. ``local_slurm``: the project's real single-node Slurm (tests/slurm/)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from golden_files import Goldens

LOCAL_SLURM = Path(__file__).parent / "slurm" / "local-slurm.sh"


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
    share it: each holds a lease, and the daemons stop when the last lease is dropped."""
    lease = str(os.getpid())
    done = subprocess.run(["bash", str(LOCAL_SLURM), "start", "--lease", lease],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"local Slurm did not start:\n{done.stdout}\n{done.stderr}")
    try:
        yield "debug"
    finally:
        subprocess.run(["bash", str(LOCAL_SLURM), "stop", "--lease", lease],
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
