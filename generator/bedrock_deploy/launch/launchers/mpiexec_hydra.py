"""``mpiexec`` of MPICH's Hydra process manager.

Binding: ``-bind-to user:a+b,c+d`` (``+`` joins the CPUs of one rank) or ``-bind-to none``.
MPICH: https://github.com/pmodels/mpich/blob/v4.2.0/src/pm/hydra/mansrc/mpiexec.txt
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bedrock_deploy.launch.binding import is_pinned, rank_cpus
from bedrock_deploy.launch.launcher import LaunchCommand, Launcher, register_launcher

if TYPE_CHECKING:
    from bedrock_deploy.site_profile import SiteProfile


@register_launcher
class MpiexecHydra(Launcher):
    name = "mpiexec-hydra"
    description = "mpiexec of MPICH (Hydra)"
    default_command = "mpiexec.hydra"
    rank_env = "hydra"
    schedulers = frozenset({"slurm", "pbs", "none"})

    def run_command(self) -> LaunchCommand:
        plan = self.plan
        argv = [self.executable, "-n", str(plan.total_processes),
                "-ppn", str(plan.processes_per_node)]
        if is_pinned(plan):
            user = ",".join("+".join(str(c) for c in cpus) for cpus in rank_cpus(plan))
            argv += ["-bind-to", f"user:{user}"]
            note = "-bind-to user: one CPU set per local rank ('+' joins CPUs), from the layout"
        else:
            argv += ["-bind-to", "none"]
            note = "-bind-to none: the layout does not pin"
        argv += self.extra_flags()
        return self.command(argv, env=dict(self.site.launcher.env), notes=(note,))

    @classmethod
    def single_process_argv(cls, site: SiteProfile) -> list[str]:
        return [cls.command_for(site), "-n", "1"]
