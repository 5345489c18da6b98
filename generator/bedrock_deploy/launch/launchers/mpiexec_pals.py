"""``mpiexec`` of Cray PALS (Aurora, Polaris, Sunspot under PBS).

Binding: ``--cpu-bind list:a,b:c,d`` (one ``:``-separated CPU set per local rank, as ALCF's
make-cpu-bind-list builds it) or ``--cpu-bind none``; ``PALS_LOCAL_LAUNCH=0`` so PALS launches
on every node. ALCF: https://docs.alcf.anl.gov/aurora/running-jobs-aurora/ and
https://github.com/mochi-hpc-experiments/platform-configurations (ANL/Aurora).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

from bedrock_deploy.launch.binding import is_pinned, rank_cpus
from bedrock_deploy.launch.launcher import LaunchCommand, Launcher, register_launcher

if TYPE_CHECKING:
    from bedrock_deploy.site_profile import SiteProfile


@register_launcher
class MpiexecPals(Launcher):
    name = "mpiexec-pals"
    description = "mpiexec of Cray PALS"
    default_command = "mpiexec"
    rank_env = "pals"
    schedulers = frozenset({"pbs"})
    # Aurora/Polaris: a CXI job gets its VNI from mpiexec --single-node-vni, PALS_LOCAL_LAUNCH=0.
    cxi_vni_flags = ("--single-node-vni",)
    cxi_vni_env = MappingProxyType({"PALS_LOCAL_LAUNCH": "0"})

    def run_command(self) -> LaunchCommand:
        plan = self.plan
        argv = [self.executable, "-n", str(plan.total_processes),
                "--ppn", str(plan.processes_per_node)]
        if is_pinned(plan):
            sets = ":".join(",".join(str(c) for c in cpus) for cpus in rank_cpus(plan))
            argv += ["--cpu-bind", f"list:{sets}"]
            note = "--cpu-bind list: one CPU set per local rank, from the layout"
        else:
            argv += ["--cpu-bind", "none"]
            note = "--cpu-bind none: the layout does not pin"
        argv += self.extra_flags()
        env = {"PALS_LOCAL_LAUNCH": "0", **self.site.launcher.env}
        return self.command(
            argv, env=env,
            notes=(note, "PALS_LOCAL_LAUNCH=0: launch through PALS on every node "
                   "(ALCF platform-configurations, mochi-stack.md §4)"))

    @classmethod
    def single_process_argv(cls, site: SiteProfile) -> list[str]:
        return [cls.command_for(site), "-n", "1", "--ppn", "1"]

    @classmethod
    def helper_argv(cls, site: SiteProfile) -> list[str]:
        # PALS binds a process to one CPU by default; a helper runs beside the service.
        return [cls.command_for(site), "-n", "1", "--ppn", "1", "--cpu-bind", "none"]
