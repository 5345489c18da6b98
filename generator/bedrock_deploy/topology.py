"""The node topology as the planner sees it: cores with their CPUs, socket and NUMA domain.

Derived from a :class:`~bedrock_deploy.site_profile.Node`; pure, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from bedrock_deploy.diagnostics import Problem
from bedrock_deploy.site_profile import Nic, Node


def core_cpus(node: Node) -> tuple[list[tuple[int, ...]], list[Problem]]:
    """Each core's hardware-thread CPU ids, in core order, and problems with the sibling map."""
    total = node.total_cores
    t = node.threads_per_core
    problems: list[Problem] = []
    if node.sibling_map == "stride":
        return [tuple(c + k * total for k in range(t)) for c in range(total)], problems
    if node.sibling_map == "adjacent":
        return [tuple(c * t + k for k in range(t)) for c in range(total)], problems
    cores = [tuple(cpus) for cpus in node.sibling_map]
    if len(cores) != total:
        problems.append(Problem(
            f"sibling_map lists {len(cores)} cores but the node has {total} "
            f"({node.sockets} sockets x {node.cores_per_socket} cores)",
            path=("node", "sibling_map"),
            hint="list one CPU list per core, or fix sockets/cores_per_socket"))
    seen: dict[int, int] = {}
    for i, cpus in enumerate(cores):
        if len(cpus) != t:
            problems.append(Problem(
                f"core {i} lists {len(cpus)} hardware threads, threads_per_core is {t}",
                path=("node", "sibling_map", i),
                hint="give every core threads_per_core CPUs"))
        for c in cpus:
            if c in seen:
                problems.append(Problem(f"CPU {c} is listed for cores {seen[c]} and {i}",
                                        path=("node", "sibling_map", i),
                                        hint="a CPU belongs to one core"))
            seen[c] = i
    return cores, problems


@dataclass(frozen=True)
class Core:
    index: int
    socket: int
    numa: int
    cpus: tuple[int, ...]  # hardware threads, first = the core's primary thread


@dataclass(frozen=True)
class Topology:
    """Usable view of a node: every core, which are reserved, which CPUs a job may use."""

    cores: tuple[Core, ...]
    reserved: frozenset[int]  # core indices
    allowed_cpus: frozenset[int]  # online, inside the cpuset
    nics: tuple[Nic, ...]
    threads_per_core: int

    @classmethod
    def from_node(cls, node: Node) -> Topology:
        per_core, _ = core_cpus(node)
        numa_of = {c: d.id for d in node.numa_domains for c in d.cpus}
        cores = tuple(
            Core(index=i, socket=i // node.cores_per_socket,
                 numa=numa_of.get(cpus[0], 0), cpus=cpus)
            for i, cpus in enumerate(per_core)
        )
        every = {c for core in cores for c in core.cpus}
        allowed = set(every)
        if node.online_cpus is not None:
            allowed &= set(node.online_cpus)
        if node.allowed_cpus is not None:
            allowed &= set(node.allowed_cpus)
        return cls(cores=cores, reserved=frozenset(node.reserved_cores),
                   allowed_cpus=frozenset(allowed), nics=tuple(node.nics),
                   threads_per_core=node.threads_per_core)

    @cached_property
    def numa_domains(self) -> tuple[int, ...]:
        return tuple(sorted({c.numa for c in self.cores}))

    @cached_property
    def usable_cores(self) -> tuple[Core, ...]:
        """Cores not reserved for the OS whose primary thread the job may use."""
        return tuple(c for c in self.cores
                     if c.index not in self.reserved and c.cpus[0] in self.allowed_cpus)

    def usable_cpus(self, core: Core) -> tuple[int, ...]:
        return tuple(c for c in core.cpus if c in self.allowed_cpus)

    @cached_property
    def all_cpus(self) -> frozenset[int]:
        return frozenset(c for core in self.cores for c in core.cpus)

    def nic_numa(self, kind: str | None = None) -> tuple[int, ...]:
        """NUMA domains that hold a NIC (of ``kind`` if given)."""
        return tuple(sorted({n.numa_domain for n in self.nics
                             if n.numa_domain is not None and (kind is None or n.kind == kind)}))
