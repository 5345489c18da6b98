"""``dragon``: the HPE Dragon runtime (``pip install dragonhpc``) starts every rank as one
``ProcessGroup``.

The job script runs ``scripts/dragon-run.sh dragon [--single-node-override]``; that wrapper
runs the Python driver ``scripts/dragon-driver.py`` under ``dragon`` (inside an allocation, or
``--single-node-override`` on one host: without it Dragon 0.15 refuses to start on a host that
has Slurm installed but no allocation) and, once the runtime has ended, removes what a killed
runtime leaves behind (its processes, found by a token in their environment, and its
shared-memory pools in ``/dev/shm``). The driver adds one process per rank, each placed on its
node with a Dragon ``Policy`` (``host_name``, ``cpu_affinity``: the layout's CPUs of its local
rank; Dragon binds the process before it runs anything), with its rank in its environment
(``share/launch/rank-variables.json``, environment ``dragon``), running ``rank-exec.sh`` (the
engine's output goes to ``run/logs/engine-<host>-<L>.log``). It ends when every engine has
finalized (the job script's shutdown through the group file), or stops the group (SIGINT,
SIGTERM, SIGKILL) when it is signalled or a rank fails.

No MPI world: Dragon's PMI support (``ProcessGroup(pmi="pmix")``) needs PMIx >= 5 (dragonhpc
0.15.0 calls PMIx 5 functions such as ``PMIx_Info_create`` through pointers it does not check,
and segfaults with Debian 12's libpmix 4.2.2). Flock therefore bootstraps with the list
``["join", "self"]`` on a ``centralized`` group: rank 0 finds no group file and creates the
group (self), every other rank waits for that file and joins. Mochi Flock:
https://github.com/mochi-hpc/mochi-flock/blob/9520fca7ba24977795735e28da364bc4863cb3fd/src/bedrock-module.cpp
(a bootstrap list is tried in order; "join" reads the group file and needs a group type that
can grow, such as centralized).
Dragon: https://github.com/DragonHPC/dragon (src/dragon/native/process_group.py,
src/dragon/native/process.py, src/dragon/infrastructure/policy.py, the launcher's ``--help``;
dragonhpc 0.15.0 as installed from PyPI, checked 2026-11-29).
"""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from bedrock_deploy.launch.binding import is_pinned, rank_cpus
from bedrock_deploy.launch.launcher import (
    LaunchCommand,
    Launcher,
    RenderTemplate,
    register_launcher,
)
from bedrock_deploy.plan import GROUP_FILE, RANK_EXEC, SCRIPTS_DIR
from bedrock_deploy.rank_env import rank_env

if TYPE_CHECKING:
    from bedrock_deploy.site_profile import SiteProfile

WRAPPER = f"{SCRIPTS_DIR}/dragon-run.sh"
DRIVER = f"{SCRIPTS_DIR}/dragon-driver.py"
SINGLE_NODE = "--single-node-override"


@register_launcher
class Dragon(Launcher):
    name = "dragon"
    description = "HPE Dragon (dragonhpc): one ProcessGroup, a Policy per rank"
    default_command = "dragon"
    rank_env = "dragon"
    schedulers = frozenset({"slurm", "pbs", "none"})
    mpi_world = False
    flock_bootstrap = MappingProxyType({"bootstrap": ["join", "self"],
                                        "group": {"type": "centralized"}})
    flock_bootstrap_why = (
        "launcher dragon starts the ranks without an MPI world (Dragon's PMIx backend needs "
        "PMIx >= 5, this host has 4.2): rank 0 finds no group file and creates the group "
        "(self), every other rank waits for run/group.json and joins it (centralized group)")

    def dragon_argv(self) -> list[str]:
        """``dragon`` and its flags: ``--single-node-override`` without a scheduler."""
        argv = [self.executable]
        if self.site.scheduler.type == "none" and SINGLE_NODE not in self.site.launcher.flags:
            argv.append(SINGLE_NODE)
        return argv + self.extra_flags()

    def run_command(self) -> LaunchCommand:
        plan = self.plan
        notes = [
            "scripts/dragon-run.sh runs scripts/dragon-driver.py under the dragon command "
            "given here, then removes whatever of the runtime is left (processes, /dev/shm)",
            "each rank is a process of one Dragon ProcessGroup, bound by a Dragon Policy to "
            + ("its layout CPUs" if is_pinned(plan) else "no CPUs (the layout does not pin)")]
        if self.site.scheduler.type == "none":
            notes.append(f"{SINGLE_NODE}: Dragon's single-node launcher on this host "
                         "(without it Dragon refuses to start where Slurm is installed but "
                         "no allocation exists)")
        return LaunchCommand(argv=(), local_rank_var=self.local_rank_variable(), program=WRAPPER,
                             program_args=tuple(self.dragon_argv()),
                             env=dict(self.site.launcher.env), notes=tuple(notes))

    def driver_plan(self) -> dict[str, Any]:
        """What the driver needs to know, written into it as JSON."""
        plan = self.plan
        env = rank_env(self.rank_env)
        join = any(p.get("type") == "flock"
                   and "join" in _as_list(p.get("config", {}).get("bootstrap"))
                   for p in plan.configs[0].get("providers", [])) if plan.configs else False
        return {
            "service": str(plan.service.name),
            "nodes": plan.nodes,
            "processes_per_node": plan.processes_per_node,
            "rank_cpus": [list(c) for c in rank_cpus(plan)] if is_pinned(plan) else
            [[] for _ in range(plan.processes_per_node)],
            "program": RANK_EXEC,
            "variables": {"local_rank": env.local_rank, "rank": env.rank, "size": env.size},
            # ranks other than 0 wait for this file (relative to DIR/run) before they start
            "join_file": GROUP_FILE if join else None,
        }

    def driver_files(self, render: RenderTemplate) -> dict[str, str]:
        data = json.dumps(self.driver_plan(), indent=2, sort_keys=True)
        return {WRAPPER: render("dragon-run.sh.j2", driver=DRIVER, dragon_dir=dragon_dir()),
                DRIVER: render("dragon-driver.py.j2", plan_literal=repr(data))}

    @classmethod
    def single_process_argv(cls, site: SiteProfile) -> list[str]:
        argv = [cls.command_for(site)]
        if site.scheduler.type == "none":
            argv.append(SINGLE_NODE)
        return argv


def dragon_dir() -> str:
    """The ``bin/`` of the Python environment generating the deployment, if ``dragon`` is
    there (pip puts it there; a venv's or pyenv's ``bin/`` is often not on PATH), else ""."""
    scripts = Path(sysconfig.get_path("scripts"))
    return str(scripts.resolve()) if (scripts / "dragon").is_file() else ""


def _as_list(value: object) -> list[object]:
    return value if isinstance(value, list) else [value]
