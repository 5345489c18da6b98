"""``srun``: Slurm's own launcher.

Binding: ``--cpu-bind=verbose,mask_cpu:<hex>,...`` (one mask per local rank) when the layout
pins, else ``--cpu-bind=none``; ``--whole`` so the step holds every CPU of the (exclusive)
allocation, since a mask outside the step allocation fails ("CPU binding outside of job step
allocation"). ``--mpi=`` follows the site's MPI: Open MPI needs pmix and MPICH pmi2 (a wrong
pairing silently starts singletons); Cray MPICH uses cray_shasta.
Slurm: https://slurm.schedmd.com/srun.html (--cpu-bind, --whole, --mpi, --network).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bedrock_deploy.launch.binding import (
    cpus_per_task,
    hex_mask,
    is_pinned,
    rank_cpus,
    smt_threads,
)
from bedrock_deploy.launch.launcher import LaunchCommand, Launcher, register_launcher

if TYPE_CHECKING:
    from bedrock_deploy.plan import DeploymentPlan
    from bedrock_deploy.site_profile import SiteProfile

# srun --wait: seconds srun lets the other ranks run after the first one ended. Longer than the
# job script needs to notice a dead engine and shut the others down (health check + queries +
# shutdown, _service.sh.j2), short enough that an engine failing at start does not leave the
# service waiting for readiness until BEDROCK_DEPLOY_READY_TIMEOUT
# (https://slurm.schedmd.com/srun.html#OPT_wait, #OPT_kill-on-bad-exit).
SRUN_WAIT = 60

# Which srun --mpi plugin an MPI needs.
_SRUN_MPI_FOR = (("cray-mpich", "cray_shasta"), ("openmpi", "pmix"), ("mpich", "pmi2"),
                 ("intel-oneapi-mpi", "pmi2"), ("intel-mpi", "pmi2"), ("mvapich", "pmi2"),
                 ("mvapich2", "pmi2"))


def srun_mpi_plugin(plan: DeploymentPlan) -> tuple[str | None, str]:
    """The ``--mpi=`` value and why: the profile's ``launcher.mpi``, else from the MPI external."""
    if plan.site.launcher.mpi:
        return plan.site.launcher.mpi, "launcher.mpi of the site profile"
    for ext in plan.site.spack.externals:
        name = ext.spec.split("@")[0].strip()
        for mpi, plugin in _SRUN_MPI_FOR:
            if name == mpi:
                return plugin, f"the site's MPI is {name} (spack external {ext.spec})"
    return None, "no launcher.mpi and no MPI external: the cluster's MpiDefault applies"


@register_launcher
class Srun(Launcher):
    name = "srun"
    description = "Slurm's srun"
    default_command = "srun"
    rank_env = "slurm"
    schedulers = frozenset({"slurm"})
    # Perlmutter/Frontier: a CXI job gets its VNI from srun --network=job_vni,single_node_vni.
    cxi_vni_flags = ("--network=job_vni,single_node_vni",)

    def run_command(self) -> LaunchCommand:
        plan = self.plan
        notes = []
        argv = [self.executable, f"--nodes={plan.nodes}",
                f"--ntasks={plan.total_processes}",
                f"--ntasks-per-node={plan.processes_per_node}",
                f"--cpus-per-task={cpus_per_task(plan)}", "--whole",
                "--kill-on-bad-exit=0", f"--wait={SRUN_WAIT}"]
        notes.append(f"--kill-on-bad-exit=0 --wait={SRUN_WAIT}: when an engine dies after the "
                     "service is ready, the job script names it and shuts the others down; srun "
                     f"ends the remaining ranks {SRUN_WAIT}s after the first one ended")
        threads = smt_threads(plan)
        if threads:
            argv.append(f"--threads-per-core={threads}")
            notes.append("--threads-per-core: the layout uses the cores' sibling threads")
        if is_pinned(plan):
            masks = ",".join(hex_mask(c) for c in rank_cpus(plan))
            argv.append(f"--cpu-bind=verbose,mask_cpu:{masks}")
            notes.append("--cpu-bind mask_cpu: local rank L gets exactly the CPUs of the layout")
        else:
            argv.append("--cpu-bind=none")
            notes.append("--cpu-bind=none: the layout does not pin; a rank may use every CPU")
        mpi, why = srun_mpi_plugin(plan)
        if mpi:
            argv.append(f"--mpi={mpi}")
        notes.append(f"--mpi: {why}")
        argv += self.extra_flags()
        return self.command(argv, env=dict(self.site.launcher.env), notes=tuple(notes))

    @classmethod
    def single_process_argv(cls, site: SiteProfile) -> list[str]:
        return [cls.command_for(site), "-N", "1", "-n", "1"]

    @classmethod
    def helper_argv(cls, site: SiteProfile) -> list[str]:
        # The service's step holds every CPU (--whole): a second step waits for them unless it
        # may share them (--overlap, Slurm >= 20.11; https://slurm.schedmd.com/srun.html).
        return [cls.command_for(site), "--overlap", "-N", "1", "-n", "1", "--cpu-bind=none"]
