"""Shared fixtures. ``local_slurm``: the project's real single-node Slurm (tests/slurm/)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

LOCAL_SLURM = Path(__file__).parent / "slurm" / "local-slurm.sh"


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
