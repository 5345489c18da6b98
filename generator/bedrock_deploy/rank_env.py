"""Which environment variables tell a process its local rank, rank and the job's size.

The list lives in one data file, ``share/launch/rank-variables.json``; every consumer reads it
from there: ``scripts/rank-exec.sh`` (rendered from it), the engine ``bedrock-engine`` (a header
generated from it by ``native/CMakeLists.txt``), and :mod:`bedrock_deploy.engine_mpi`. Order is
precedence: the first environment whose variable is set wins (Slurm last, see the file).

Kept light (``json`` only): :mod:`bedrock_deploy.engine_mpi` imports it on every rank.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

from bedrock_deploy.resources import share_path

DATA_FILE = ("launch", "rank-variables.json")


@dataclass(frozen=True)
class RankEnv:
    """The variables one kind of launcher (or process manager) sets in each process."""

    name: str
    local_rank: str | None  # node-local rank, 0 .. processes per node - 1
    rank: str | None  # global rank
    size: str | None  # number of processes of the job (step)
    sources: tuple[str, ...] = ()


def _name(entry: dict[str, object], key: str, where: str) -> str | None:
    value = entry.get(key)
    if value is not None and (not isinstance(value, str) or not value.isidentifier()):
        raise ValueError(f"{where}: {key} must be an environment variable name or null")
    return value


@cache
def rank_environments() -> tuple[RankEnv, ...]:
    """Every environment of the data file, in precedence order."""
    path = share_path(*DATA_FILE)
    data = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for i, entry in enumerate(data["environments"]):
        where = f"{path}: environments[{i}]"
        unknown = set(entry) - {"name", "local_rank", "rank", "size", "sources", "notes"}
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
        out.append(RankEnv(name=str(entry["name"]), local_rank=_name(entry, "local_rank", where),
                           rank=_name(entry, "rank", where), size=_name(entry, "size", where),
                           sources=tuple(entry.get("sources", ()))))
    names = [e.name for e in out]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: an environment name is listed twice")
    return tuple(out)


def rank_env(name: str) -> RankEnv:
    """The environment called ``name`` (a launcher's ``rank_env``)."""
    for env in rank_environments():
        if env.name == name:
            return env
    known = ", ".join(e.name for e in rank_environments())
    raise KeyError(f"no rank environment {name!r} in {'/'.join(DATA_FILE)} (known: {known})")


def local_rank_vars() -> list[str]:
    """Local-rank variables, first set wins."""
    return [e.local_rank for e in rank_environments() if e.local_rank]


def rank_vars() -> list[str]:
    """Global-rank variables, first set wins."""
    return [e.rank for e in rank_environments() if e.rank]


def size_vars() -> list[str]:
    """Job-size variables, first set wins."""
    return [e.size for e in rank_environments() if e.size]
