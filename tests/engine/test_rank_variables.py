"""bedrock-engine takes $MPI_COMM_WORLD.rank/size (for ``__if__``) from the launcher variables
of share/launch/rank-variables.json, compiled in by native/CMakeLists.txt, in the file's order:
the same list rank-exec.sh and engine_mpi read (tests/test_rank_env.py checks those)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from bedrock_deploy.rank_env import (
    RankEnv,
    local_rank_vars,
    rank_environments,
    rank_vars,
    size_vars,
)

pytestmark = pytest.mark.engine

CONFIG = {
    "libraries": ["libyokan-bedrock-module.so"],
    "providers": [
        {"name": "rank0", "type": "yokan", "__if__": "$MPI_COMM_WORLD.rank == 0"},
        {"name": "rank1_of_2", "type": "yokan",
         "__if__": "($MPI_COMM_WORLD.rank == 1) && ($MPI_COMM_WORLD.size == 2)"},
    ],
}
LAUNCHER_VARS = {*local_rank_vars(), *rank_vars(), *size_vars(), "SLURM_STEP_NUM_TASKS"}


def providers(daemon: Any, tmp_path: Path, **variables: str) -> list[str]:
    """The providers the engine keeps when these are its only launcher variables."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS} | variables
    out = tmp_path / f"out-{len(list(tmp_path.glob('out-*')))}.json"
    d = daemon("na+sm", CONFIG, "-o", str(out), env=env)
    try:
        return [p["name"] for p in json.loads(out.read_text())["providers"]]
    finally:
        d.stop()


WITH_RANK = [e for e in rank_environments() if e.rank and e.size]


@pytest.mark.parametrize("env", WITH_RANK, ids=[e.name for e in WITH_RANK])
def test_engine_reads_each_launchers_rank_and_size(env: RankEnv, daemon: Any,
                                                   tmp_path: Path) -> None:
    assert env.rank and env.size
    assert providers(daemon, tmp_path, **{env.rank: "1", env.size: "2"}) == ["rank1_of_2"]


def test_engine_takes_the_first_environment_in_the_files_order(daemon: Any,
                                                               tmp_path: Path) -> None:
    first, last = WITH_RANK[0], WITH_RANK[-1]
    assert first.rank and first.size and last.rank and last.size
    # e.g. an mpirun inside a Slurm batch shell: SLURM_PROCID=0 is inherited by every rank
    both = {first.rank: "1", first.size: "2", last.rank: "0", last.size: "1"}
    assert providers(daemon, tmp_path, **both) == ["rank1_of_2"]
    assert providers(daemon, tmp_path) == ["rank0"]  # no launcher: rank 0 of 1
