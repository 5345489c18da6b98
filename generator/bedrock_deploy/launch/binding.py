"""CPU facts of a plan that launchers and schedulers turn into flags.

CPU binding follows the layout (never leave a launcher's default one-core binding: it starves
Margo's extra execution streams). When the layout pins threads, each local rank is bound to
exactly the CPUs the layout gave it; otherwise binding is disabled. How each launcher says so is
in its own module under :mod:`bedrock_deploy.launch.launchers`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bedrock_deploy.plan import DeploymentPlan


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


def usable_core_count(plan: DeploymentPlan) -> int:
    """Cores of one node that a job may use."""
    from bedrock_deploy.topology import Topology

    return len(Topology.from_node(plan.site.node).usable_cores)


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
