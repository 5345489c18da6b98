"""Rank variables have one home, share/launch/rank-variables.json: rank-exec.sh, engine_mpi and
the launchers all read it (the compiled engine: tests/engine/test_rank_variables.py)."""

from __future__ import annotations

import re

import pytest

from bedrock_deploy import engine_mpi
from bedrock_deploy.generate import Inputs, build_plan
from bedrock_deploy.launch import render_scripts
from bedrock_deploy.launch.launcher import LAUNCHERS
from bedrock_deploy.rank_env import (
    local_rank_vars,
    rank_env,
    rank_environments,
    rank_vars,
    size_vars,
)
from bedrock_deploy.resources import share_path
from bedrock_deploy.service import load_service
from bedrock_deploy.sites import load_site


def _loop(text: str, after: str) -> list[str]:
    """The names of the ``for bd_name in ...; do`` loop that follows ``after``."""
    start = text.index(after)
    m = re.search(r"for bd_name in (.*?); do", text[start:], re.S)
    assert m, f"no loop after {after!r}"
    return [w for w in m.group(1).replace("\\\n", " ").split()]


@pytest.mark.parametrize("site", ["frontier", "aurora", "improv"])
def test_rank_exec_reads_the_data_file_in_its_order(site: str) -> None:
    plan, _ = build_plan(Inputs(site=load_site(site), service=load_service(
        share_path("examples", "kv-service.yaml")), account="PROJECT"))
    text = render_scripts(plan)["scripts/rank-exec.sh"]
    local = _loop(text, 'bd_var=""')
    launcher = LAUNCHERS.get(plan.site.launcher.type)
    assert local == ['"${BEDROCK_DEPLOY_LOCAL_RANK_VAR:-}"', launcher.local_rank_variable(),
                     *local_rank_vars()]
    assert _loop(text, 'bd_rank="?"') == rank_vars()
    assert ", ".join(local_rank_vars()[1:]) + " is set;" in text  # the error message too


def test_the_data_file_orders_slurm_last_and_names_each_variable_once() -> None:
    envs = rank_environments()
    assert envs[-1].name == "slurm"  # a Slurm batch shell already has SLURM_LOCALID=0
    names = [v for e in envs for v in (e.local_rank, e.rank, e.size) if v]
    assert len(names) == len(set(names))
    assert all(e.sources for e in envs)


def test_every_launcher_names_an_environment_with_a_local_rank() -> None:
    for cls in LAUNCHERS:
        assert rank_env(cls.rank_env).local_rank == cls.local_rank_variable()
        assert cls.local_rank_variable() in local_rank_vars()
    with pytest.raises(KeyError, match="no rank environment 'nope'"):
        rank_env("nope")


def test_engine_mpi_checks_the_world_size_of_every_environment() -> None:
    for env in rank_environments():
        if env.size:
            assert engine_mpi.launcher_world_size({env.size: "3"}) == 3
    first, last = size_vars()[0], size_vars()[-1]
    assert engine_mpi.launcher_world_size({last: "1", first: "4"}) == 4  # file order wins
    assert engine_mpi.launcher_world_size({}) is None
