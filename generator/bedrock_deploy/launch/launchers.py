"""Launchers: how one scheduler-agnostic launcher starts every rank of a deployment.

One small class per :class:`~bedrock_deploy.site_profile.LauncherKind`, registered in
:data:`LAUNCHERS` (ReFrame's pattern). A launcher turns the plan into a :class:`LaunchCommand`:
the argument vector placed before ``scripts/rank-exec.sh``, its fixed environment, the variable
that carries the local rank, and whether ``rank-exec.sh`` must bind itself to its CPUs.

CPU binding follows the layout (mochi-stack.md rule 9: never leave the launcher's default
one-core binding, it starves Margo's extra execution streams). When the layout pins threads, each
local rank is bound to exactly the CPUs the layout gave it; otherwise binding is disabled:

- srun: ``--cpu-bind=verbose,mask_cpu:<hex>,...`` per local rank, or ``none``; ``--whole`` so the
  step holds every CPU of the (exclusive) allocation, since a mask outside the step allocation
  fails ("CPU binding outside of job step allocation", hpc-local.md §3 and §8.5).
- Cray PALS mpiexec: ``--cpu-bind list:a,b:c,d`` (one ``:``-separated set per local rank, Aurora's
  make-cpu-bind-list, mochi-stack.md §4) or ``--cpu-bind none``; ``PALS_LOCAL_LAUNCH=0``.
- MPICH Hydra: ``-bind-to user:a+b,c+d`` (``+`` joins the CPUs of one rank) or ``-bind-to none``.
- Open MPI mpirun: ``--bind-to none`` and ``rank-exec.sh`` binds itself with ``taskset`` (Open MPI
  can only express per-rank CPU sets with a rankfile naming the hosts, unknown until run time).
- flux run: ``-o cpu-affinity=off`` and ``rank-exec.sh`` binds itself with ``taskset``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

from bedrock_deploy.plan import DeploymentPlan
from bedrock_deploy.site_profile import EngineKind, LauncherKind


@dataclass(frozen=True)
class LaunchCommand:
    argv: tuple[str, ...]  # launcher and its flags; rank-exec.sh follows
    local_rank_var: str  # environment variable holding the local rank in every launched process
    env: dict[str, str] = field(default_factory=dict)  # fixed environment the launcher needs
    self_bind: bool = False  # rank-exec.sh applies the layout's CPUs itself (taskset)
    as_root_env: dict[str, str] = field(default_factory=dict)  # exported only when run as root
    notes: tuple[str, ...] = ()  # why: one comment line each in the script


def is_pinned(plan: DeploymentPlan) -> bool:
    """Does the layout bind each local rank to its own CPUs?"""
    ranks = plan.layout.ranks
    return plan.layout.pins_threads and bool(ranks) and all(r.cpus for r in ranks)


def rank_cpus(plan: DeploymentPlan) -> list[tuple[int, ...]]:
    """CPUs of each local rank, in local-rank order."""
    return [tuple(sorted(r.cpus)) for r in sorted(plan.layout.ranks, key=lambda r: r.local_rank)]


def hex_mask(cpus: tuple[int, ...]) -> str:
    return hex(sum(1 << c for c in cpus))


def usable_cpu_count(plan: DeploymentPlan) -> int:
    """CPUs (hardware threads) of one node that a job may use: reserved cores excluded."""
    from bedrock_deploy.topology import Topology

    topo = Topology.from_node(plan.site.node)
    return sum(len(topo.usable_cpus(core)) for core in topo.usable_cores)


def smt_threads(plan: DeploymentPlan) -> int | None:
    """Hardware threads per core to ask Slurm for, when a rank is bound to a core's second
    thread: sites such as Frontier give jobs one thread per core unless told
    (``--threads-per-core``), and a mask outside the allocation fails."""
    from bedrock_deploy.topology import Topology

    if not is_pinned(plan) or plan.site.node.threads_per_core < 2:
        return None
    topo = Topology.from_node(plan.site.node)
    primaries = {core.cpus[0] for core in topo.cores}
    used = {c for cpus in rank_cpus(plan) for c in cpus}
    return plan.site.node.threads_per_core if used - primaries else None


def cpus_per_task(plan: DeploymentPlan) -> int:
    """What each rank asks the scheduler for: its share of the node's usable CPUs."""
    widest = max(len(c) for c in rank_cpus(plan)) if is_pinned(plan) else 1
    share = usable_cpu_count(plan) // max(plan.processes_per_node, 1)
    return max(widest, share, 1)


# Which srun --mpi plugin an MPI needs (hpc-local.md §4: Open MPI needs pmix, MPICH pmi2; the
# wrong pairing silently starts singletons). Cray MPICH uses cray_shasta.
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


# srun --wait: seconds srun lets the other ranks run after the first one ended. Longer than the
# job script needs to notice a dead engine and shut the others down (health check + queries +
# shutdown, see _service.sh.j2), short enough that an engine failing at start does not leave the
# service waiting for readiness until BEDROCK_DEPLOY_READY_TIMEOUT
# (https://slurm.schedmd.com/srun.html#OPT_wait, #OPT_kill-on-bad-exit).
SRUN_WAIT = 60


class Launcher(ABC):
    kind: ClassVar[LauncherKind]
    default_command: ClassVar[str]
    local_rank_var: ClassVar[str]

    def __init__(self, plan: DeploymentPlan) -> None:
        self.plan = plan
        self.site = plan.site

    @property
    def executable(self) -> str:
        return self.site.launcher.command or self.default_command

    def extra_flags(self) -> list[str]:
        """Transport flags (e.g. Slingshot VNI), then the site's own flags (last: they win)."""
        return [*self.plan.transport.launcher_flags, *self.site.launcher.flags]

    @abstractmethod
    def command(self) -> LaunchCommand: ...


LAUNCHERS: dict[LauncherKind, type[Launcher]] = {}


def register_launcher(cls: type[Launcher]) -> type[Launcher]:
    LAUNCHERS[cls.kind] = cls
    return cls


def launcher_for(plan: DeploymentPlan) -> Launcher:
    return LAUNCHERS[plan.site.launcher.type](plan)


@register_launcher
class Srun(Launcher):
    kind = LauncherKind.srun
    default_command = "srun"
    local_rank_var = "SLURM_LOCALID"

    def command(self) -> LaunchCommand:
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
        return LaunchCommand(argv=tuple(argv), local_rank_var=self.local_rank_var,
                             env=dict(self.site.launcher.env), notes=tuple(notes))


@register_launcher
class MpiexecPals(Launcher):
    kind = LauncherKind.mpiexec_pals
    default_command = "mpiexec"
    local_rank_var = "PALS_LOCAL_RANKID"

    def command(self) -> LaunchCommand:
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
        return LaunchCommand(
            argv=tuple(argv), local_rank_var=self.local_rank_var, env=env,
            notes=(note, "PALS_LOCAL_LAUNCH=0: launch through PALS on every node "
                   "(ALCF platform-configurations, mochi-stack.md §4)"))


@register_launcher
class MpirunOpenMpi(Launcher):
    kind = LauncherKind.mpirun_openmpi
    default_command = "mpirun"
    local_rank_var = "OMPI_COMM_WORLD_LOCAL_RANK"

    def command(self) -> LaunchCommand:
        plan = self.plan
        from bedrock_deploy.topology import Topology

        ppn = plan.processes_per_node
        argv = [self.executable, "-np", str(plan.total_processes),
                "--map-by", f"ppr:{ppn}:node", "--bind-to", "none"]
        notes = ["--bind-to none: Open MPI's default one-core binding starves Margo's "
                 "xstreams; rank-exec.sh binds each rank to its layout CPUs"
                 if is_pinned(plan) else "--bind-to none: the layout does not pin"]
        cores = len(Topology.from_node(self.site.node).usable_cores)
        if ppn > cores and "--oversubscribe" not in self.site.launcher.flags:
            argv.append("--oversubscribe")
            notes.append(f"--oversubscribe: {ppn} ranks per node on {cores} usable cores")
        # mpirun forwards only what -x names to the ranks of other nodes.
        forwarded = ["PATH", "BEDROCK_DEPLOY_DIR"]
        if self.site.engine == EngineKind.spack:
            forwarded.append("LD_LIBRARY_PATH")  # set by the Spack environment (dlopen of modules)
        else:
            forwarded += ["BEDROCK_DEPLOY_ENGINE_DIR", "BEDROCK_DEPLOY_PYTHON"]
        forwarded += [*self.site.env, *plan.transport.env, *self.site.launcher.env]
        for name in dict.fromkeys(forwarded):
            argv += ["-x", name]
        argv += self.extra_flags()
        return LaunchCommand(
            argv=tuple(argv), local_rank_var=self.local_rank_var,
            env=dict(self.site.launcher.env), self_bind=is_pinned(plan),
            as_root_env={"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"},
            notes=tuple(notes))


@register_launcher
class MpiexecHydra(Launcher):
    kind = LauncherKind.mpiexec_hydra
    default_command = "mpiexec.hydra"
    local_rank_var = "MPI_LOCALRANKID"

    def command(self) -> LaunchCommand:
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
        return LaunchCommand(argv=tuple(argv), local_rank_var=self.local_rank_var,
                             env=dict(self.site.launcher.env), notes=(note,))


@register_launcher
class FluxRun(Launcher):
    kind = LauncherKind.flux_run
    default_command = "flux"
    local_rank_var = "FLUX_TASK_LOCAL_ID"

    def command(self) -> LaunchCommand:
        plan = self.plan
        argv = [self.executable, "run", "-N", str(plan.nodes), "-n", str(plan.total_processes),
                f"--tasks-per-node={plan.processes_per_node}", "-c", str(cpus_per_task(plan)),
                "-o", "cpu-affinity=off", *self.extra_flags()]
        return LaunchCommand(
            argv=tuple(argv), local_rank_var=self.local_rank_var,
            env=dict(self.site.launcher.env), self_bind=is_pinned(plan),
            notes=("-o cpu-affinity=off: rank-exec.sh binds each rank to its layout CPUs"
                   if is_pinned(plan) else "-o cpu-affinity=off: the layout does not pin",))
