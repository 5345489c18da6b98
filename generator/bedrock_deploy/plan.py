"""The deployment plan: every decision ``generate`` makes, in one object.

Produced by :mod:`bedrock_deploy.generate` from a site profile and a service description;
consumed by every renderer (Bedrock configs, Spack environment, launch scripts, manifest,
layout picture). Renderers read the plan only; they never re-decide anything.

Deployment directory contract (what ``generate`` writes, what scripts and ``up`` rely on)::

    DIR/manifest.json              inputs, hashes, tool version, every choice and why
    DIR/configs/rank-<L>.json      Bedrock config of local rank L (same on every node)
    DIR/spack.yaml                 Spack environment
    DIR/scripts/...                launch scripts (one per scheduler/launcher pair)
    DIR/layout.svg                 picture of the core map
    DIR/run/                       working directory of the engines at run time; the flock
                                   group file is DIR/run/<GROUP_FILE>, logs are DIR/run/logs/
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bedrock_deploy.bedrock_validator import ConfigIssue
    from bedrock_deploy.generate import Inputs
    from bedrock_deploy.service import ServiceDescription
    from bedrock_deploy.site_profile import SiteProfile

GROUP_FILE = "group.json"  # flock group file name, relative to DIR/run
CONFIG_DIR = "configs"
SCRIPTS_DIR = "scripts"
RUN_DIR = "run"
RANK_EXEC = f"{SCRIPTS_DIR}/rank-exec.sh"  # run on every rank: picks configs/rank-<L>.json


def config_name(local_rank: int) -> str:
    return f"rank-{local_rank}.json"


class Role(StrEnum):
    primary = "primary"    # the __primary__ xstream (main thread)
    progress = "progress"  # Mercury progress loop, alone on its xstream
    rpc = "rpc"            # RPC handlers
    io = "io"              # blocking I/O (abt_io)


@dataclass(frozen=True)
class XstreamPlan:
    """One Argobots execution stream of a rank: its role, pools and CPUs.

    Example::

        for x in plan.layout.ranks[0].xstreams:
            print(x.name, x.role, x.cpus)   # rpc_xstream_0 rpc (3,)
    """

    name: str
    role: Role
    pools: tuple[str, ...]  # scheduler pools, first = the pool this xstream serves
    cpus: tuple[int, ...]  # absolute OS CPU ids it is pinned to (affinity); empty = unpinned


@dataclass(frozen=True)
class RankLayout:
    """The CPUs of one local rank (what the launcher binds it to) and its xstreams.

    Example::

        rank = plan.layout.ranks[1]
        print(rank.local_rank, rank.cpus, rank.numa)
    """

    local_rank: int
    cpus: tuple[int, ...]  # every CPU this rank may use: what the launcher binds it to
    numa: tuple[int, ...]  # NUMA domains of those CPUs
    xstreams: tuple[XstreamPlan, ...]


@dataclass(frozen=True)
class NodeLayout:
    """The planned core map of one node (the same on every node), and the planner's notes.

    Example::

        print(len(plan.layout.ranks), plan.layout.pins_threads, plan.layout.notes)
    """

    ranks: tuple[RankLayout, ...]
    pins_threads: bool  # any xstream has cpubind/affinity (Spack then needs argobots+affinity)
    use_smt: bool
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TransportChoice:
    """The transport a deployment uses, what it needs, and why it was chosen.

    Example::

        print(plan.transport.protocol, plan.transport.reason)   # na+sm ... / why
    """

    name: str  # the site profile's transport name
    protocol: str  # what to pass to bedrock / put in mercury.address, e.g. "cxi://"
    provider: str | None
    fabrics: tuple[str, ...]  # libfabric fabrics the Spack environment needs
    env: dict[str, str]
    launcher_flags: tuple[str, ...]
    mercury: dict[str, Any]
    reason: str


@dataclass(frozen=True)
class Choice:
    """One decision, recorded in the manifest: what was decided, the value, and why.

    Example::

        for c in plan.choices:
            print(f"{c.what}: {c.value} ({c.why})")   # transport: sm (na+sm://) (...)
    """

    what: str
    value: Any
    why: str


@dataclass(frozen=True)
class DeploymentPlan:
    """Every decision of a deployment, before anything is written (read-only).

    ``configs[L]`` is the Bedrock config of local rank L (the same on every node), ``layout``
    the core map, ``transport`` the chosen transport, ``choices`` every decision with its
    reason (what the manifest records), ``warnings`` what the config validator found that is
    not an error, ``inputs`` what the plan was made from. Made by :func:`bedrock_deploy.plan`;
    written by :func:`bedrock_deploy.generate`. Treat it as read-only: renderers read it and
    never re-decide anything.

    Example::

        plan = bd.plan("local", "share/examples/kv-service.yaml", ppn=2)
        print(plan.transport.protocol, plan.total_processes)
        for c in plan.choices:
            print(f"{c.what}: {c.value} ({c.why})")
    """

    site: SiteProfile
    site_files: list[str]
    service: ServiceDescription
    transport: TransportChoice
    layout: NodeLayout
    configs: list[dict[str, Any]]  # Bedrock config per local rank (index = local rank)
    choices: list[Choice] = field(default_factory=list)
    warnings: list[tuple[int, ConfigIssue]] = field(default_factory=list)  # (local rank, issue)
    inputs: Inputs | None = None  # what it was planned from (None: built by hand, e.g. tests)

    @property
    def nodes(self) -> int:
        """Compute nodes the service spans."""
        return self.service.nodes

    @property
    def processes_per_node(self) -> int:
        """Engines (ranks) per node."""
        return self.service.processes_per_node

    @property
    def total_processes(self) -> int:
        """Engines in all: nodes x processes per node."""
        return self.nodes * self.processes_per_node

    def choice(self, what: str) -> Choice | None:
        """The first recorded decision called ``what`` (e.g. ``"transport"``), or None.

        Example::

            print(plan.choice("transport").why)
        """
        return next((c for c in self.choices if c.what == what), None)
