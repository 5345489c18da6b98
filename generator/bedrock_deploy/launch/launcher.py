"""What a launcher is: the interface every module of :mod:`bedrock_deploy.launch.launchers`
implements, and the registry the site profile's ``launcher.type`` is looked up in.

A launcher starts every rank of a deployment inside an allocation (or directly on a host). Like
ReFrame's ``JobLauncher`` (``command``/``run_command``,
https://github.com/reframe-hpc/reframe/blob/v4.6.0/reframe/core/launchers/__init__.py) it owns
its run line; it may also write driver files of its own (a launcher that runs a program of ours,
such as a Python driver, instead of starting ``rank-exec.sh`` on every rank).

To add one, write ``bedrock_deploy/launch/launchers/<name>.py``::

    @register_launcher
    class MyLauncher(Launcher):
        name = "my-launcher"                # the profile's launcher.type
        description = "one line for the schema"
        default_command = "mylaunch"        # launcher.command overrides it
        rank_env = "openmpi"                # share/launch/rank-variables.json environment
        schedulers = frozenset({"slurm", "none"})   # where it may run

        def run_command(self) -> LaunchCommand: ...       # the run line
        @classmethod
        def single_process_argv(cls, site): ...           # one process on one node
        def helper_argv(cls, site): ...                   # optional: one beside the service

and, if it writes driver files, a template in ``share/templates/launch/`` named in
``driver_templates``. Nothing else lists launchers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from bedrock_deploy.launch.registry import Registry
from bedrock_deploy.plan import RANK_EXEC
from bedrock_deploy.rank_env import rank_env

if TYPE_CHECKING:
    from bedrock_deploy.plan import DeploymentPlan
    from bedrock_deploy.site_profile import SiteProfile


@dataclass(frozen=True)
class LaunchCommand:
    """The run line of the job script: ``argv... "$DIR/<program>" program_args...``.

    ``argv`` and ``program_args`` are written one shell-quoted word each; ``program`` is a path
    relative to the deployment directory (``scripts/rank-exec.sh`` unless the launcher runs a
    driver of its own, which it then writes with :meth:`Launcher.driver_files`).
    """

    argv: tuple[str, ...]  # the launcher and its flags
    local_rank_var: str  # environment variable holding the local rank in every started process
    program: str = RANK_EXEC
    program_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)  # fixed environment the launcher needs
    self_bind: bool = False  # rank-exec.sh applies the layout's CPUs itself (taskset)
    as_root_env: dict[str, str] = field(default_factory=dict)  # exported only when run as root
    notes: tuple[str, ...] = ()  # why: one comment line each in the script


class RenderTemplate(Protocol):
    """Renders ``share/templates/launch/<template>`` with the launch scripts' context."""

    def __call__(self, template: str, /, **extra: Any) -> str: ...


class Launcher(ABC):
    """One launcher. Subclasses set the class attributes below and implement
    :meth:`run_command` and :meth:`single_process_argv`."""

    name: ClassVar[str]  # the site profile's launcher.type
    description: ClassVar[str]  # one line: the JSON Schema and error hints show it
    default_command: ClassVar[str]  # executable unless the profile's launcher.command is set
    rank_env: ClassVar[str]  # which environment of share/launch/rank-variables.json it sets
    schedulers: ClassVar[frozenset[str]]  # schedulers it runs under ("none": on a host)
    # Slingshot (CXI) needs a VNI from the launcher: flags and environment that get one.
    cxi_vni_flags: ClassVar[tuple[str, ...]] = ()
    cxi_vni_env: ClassVar[Mapping[str, str]] = MappingProxyType({})
    # Takes its slots per node from the batch system's node file (PBS: PBS_NODEFILE lists
    # each chunk's host mpiprocs times, pbs_resources(7B)): the job must ask for the slots.
    slots_from_nodefile: ClassVar[bool] = False
    # Driver files: deployment-relative path -> template in share/templates/launch/.
    driver_templates: ClassVar[Mapping[str, str]] = MappingProxyType({})
    # Do the processes it starts share one MPI world (MPI_COMM_WORLD spans the job)? If not,
    # flock cannot bootstrap with "mpi": the plan gives flock providers the config keys of
    # ``flock_bootstrap`` instead (recorded in the manifest with ``flock_bootstrap_why``), and
    # refuses a service that asks for "mpi" itself.
    mpi_world: ClassVar[bool] = True
    flock_bootstrap: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    flock_bootstrap_why: ClassVar[str] = ""

    def __init__(self, plan: DeploymentPlan) -> None:
        self.plan = plan
        self.site = plan.site

    # ---- what every launcher implements -------------------------------------------------
    @abstractmethod
    def run_command(self) -> LaunchCommand:
        """The run line of the job script for this plan (ReFrame's ``run_command``)."""

    @classmethod
    @abstractmethod
    def single_process_argv(cls, site: SiteProfile) -> list[str]:
        """Words that run one process on one compute node, for the commands
        ``bedrock-deploy transports`` tells a user to run (``srun -N 1 -n 1``)."""

    # ---- optional ---------------------------------------------------------------------------
    @classmethod
    def helper_argv(cls, site: SiteProfile) -> list[str]:
        """Words that run one helper process (the readiness query, the shutdown tool, the
        client command) on one node of the job *while the service runs*: by default
        :meth:`single_process_argv`. Used when the transport needs the launcher to hand out
        network credentials (a Slingshot VNI); the transport's ``launcher_flags`` follow."""
        return cls.single_process_argv(site)

    def driver_files(self, render: RenderTemplate) -> dict[str, str]:
        """Extra files of the deployment (relative path -> text): by default each of
        ``driver_templates`` rendered with the scripts' context."""
        return {path: render(template) for path, template in self.driver_templates.items()}

    # ---- helpers ----------------------------------------------------------------------------
    @classmethod
    def command_for(cls, site: SiteProfile) -> str:
        return site.launcher.command or cls.default_command

    @classmethod
    def local_rank_variable(cls) -> str:
        """The variable holding the local rank in every process this launcher starts."""
        var = rank_env(cls.rank_env).local_rank
        if var is None:
            raise ValueError(f"rank environment {cls.rank_env!r} of launcher {cls.name!r} "
                             "has no local_rank variable")
        return var

    @property
    def executable(self) -> str:
        return self.command_for(self.site)

    def extra_flags(self) -> list[str]:
        """Transport flags (e.g. Slingshot VNI), then the site's own flags (last: they win)."""
        return [*self.plan.transport.launcher_flags, *self.site.launcher.flags]

    def command(self, argv: list[str], **fields: Any) -> LaunchCommand:
        """A :class:`LaunchCommand` with this launcher's local-rank variable."""
        return LaunchCommand(argv=tuple(argv), local_rank_var=self.local_rank_variable(),
                             **fields)


LAUNCHERS: Registry[Launcher] = Registry("launcher", "bedrock_deploy.launch.launchers")
register_launcher = LAUNCHERS.register


def launcher_class(name: str) -> type[Launcher]:
    """The launcher registered as ``name``; :class:`~.registry.UnknownName` if none."""
    return LAUNCHERS.get(name)


def launcher_for(plan: DeploymentPlan) -> Launcher:
    return launcher_class(plan.site.launcher.type)(plan)
