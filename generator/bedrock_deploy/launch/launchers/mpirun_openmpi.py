"""``mpirun`` of Open MPI.

Binding: ``--bind-to none``, and ``rank-exec.sh`` binds itself with ``taskset``: Open MPI can only
express per-rank CPU sets with a rankfile naming the hosts, unknown until run time.
``mpirun`` forwards to the ranks of other nodes only what ``-x`` names.
Open MPI: https://docs.open-mpi.org/en/v5.0.x/man-openmpi/man1/mpirun.1.html
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bedrock_deploy.launch.binding import is_pinned, usable_core_count
from bedrock_deploy.launch.launcher import LaunchCommand, Launcher, register_launcher
from bedrock_deploy.site_profile import EngineKind

if TYPE_CHECKING:
    from bedrock_deploy.site_profile import SiteProfile


@register_launcher
class MpirunOpenMpi(Launcher):
    name = "mpirun-openmpi"
    description = "mpirun of Open MPI"
    default_command = "mpirun"
    rank_env = "openmpi"
    schedulers = frozenset({"slurm", "pbs", "none"})
    # Under PBS, Open MPI's TM support takes the nodes and their slots from PBS_NODEFILE
    # (https://docs.open-mpi.org/en/v5.0.x/launching-apps/scheduling.html).
    slots_from_nodefile = True

    def run_command(self) -> LaunchCommand:
        plan = self.plan
        ppn = plan.processes_per_node
        argv = [self.executable, "-np", str(plan.total_processes),
                "--map-by", f"ppr:{ppn}:node", "--bind-to", "none"]
        notes = ["--bind-to none: Open MPI's default one-core binding starves Margo's "
                 "xstreams; rank-exec.sh binds each rank to its layout CPUs"
                 if is_pinned(plan) else "--bind-to none: the layout does not pin"]
        cores = usable_core_count(plan)
        if ppn > cores and "--oversubscribe" not in self.site.launcher.flags:
            argv.append("--oversubscribe")
            notes.append(f"--oversubscribe: {ppn} ranks per node on {cores} usable cores")
        forwarded = ["PATH", "BEDROCK_DEPLOY_DIR"]
        if self.site.engine == EngineKind.spack:
            forwarded.append("LD_LIBRARY_PATH")  # set by the Spack environment (dlopen of modules)
        else:
            forwarded += ["BEDROCK_DEPLOY_ENGINE_DIR", "BEDROCK_DEPLOY_PYTHON"]
        forwarded += [*self.site.env, *plan.transport.env, *self.site.launcher.env]
        for name in dict.fromkeys(forwarded):
            argv += ["-x", name]
        argv += self.extra_flags()
        return self.command(
            argv, env=dict(self.site.launcher.env), self_bind=is_pinned(plan),
            as_root_env={"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"},
            notes=tuple(notes))

    @classmethod
    def single_process_argv(cls, site: SiteProfile) -> list[str]:
        return [cls.command_for(site), "-n", "1"]
