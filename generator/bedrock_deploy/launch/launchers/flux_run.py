"""``flux run`` inside a Flux instance.

Binding: ``-o cpu-affinity=off``, and ``rank-exec.sh`` binds itself with ``taskset``.
Flux: https://flux-framework.readthedocs.io/projects/flux-core/en/latest/man1/flux-run.html
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bedrock_deploy.launch.binding import cpus_per_task, is_pinned
from bedrock_deploy.launch.launcher import LaunchCommand, Launcher, register_launcher

if TYPE_CHECKING:
    from bedrock_deploy.site_profile import SiteProfile


@register_launcher
class FluxRun(Launcher):
    name = "flux-run"
    description = "flux run"
    default_command = "flux"
    rank_env = "flux"
    schedulers = frozenset({"flux"})

    def run_command(self) -> LaunchCommand:
        plan = self.plan
        argv = [self.executable, "run", "-N", str(plan.nodes), "-n", str(plan.total_processes),
                f"--tasks-per-node={plan.processes_per_node}", "-c", str(cpus_per_task(plan)),
                "-o", "cpu-affinity=off", *self.extra_flags()]
        return self.command(
            argv, env=dict(self.site.launcher.env), self_bind=is_pinned(plan),
            notes=("-o cpu-affinity=off: rank-exec.sh binds each rank to its layout CPUs"
                   if is_pinned(plan) else "-o cpu-affinity=off: the layout does not pin",))

    @classmethod
    def single_process_argv(cls, site: SiteProfile) -> list[str]:
        return [cls.command_for(site), "run", "-N", "1", "-n", "1"]
