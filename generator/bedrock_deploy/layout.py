"""The layout planner: which cores each local rank gets, and its Argobots pools and xstreams.

Pure (no I/O): from a :class:`~bedrock_deploy.topology.Topology`, the service's thread counts
and placement policy, and the NIC kind of the chosen transport, build a :class:`plan.NodeLayout`.

Policy (the same for every node; every local rank L gets ``configs/rank-<L>.json``):

* **Per rank** the xstreams are, in this order: one ``progress_xstream`` serving
  ``progress_pool`` alone (``threads.progress: dedicated``, the default; margo PR#278: a shared
  progress loop starves other pools or stalls 100 ms), the ``__primary__`` xstream (the main
  thread, serving pool ``__primary__``, always defined so it can be pinned; Bedrock rule 4),
  ``threads.rpc`` xstreams ``rpc_xstream_<i>`` serving ``rpc_pool``, and, only if a component
  uses ``pool: io``, ``io_xstream_<i>`` serving ``io_pool`` (at least num_urings+1 of them for
  abt_io with io_uring). With ``progress: shared`` the progress loop runs on ``__primary__``;
  with ``rpc: 0`` the RPC handlers do.
* **Cores.** Each xstream gets its own physical core (its affinity is that core's allowed
  hardware threads), except ``__primary__`` with ``threads.primary: shared``, which floats over
  the rpc xstreams' cores. With ``placement.smt: use`` xstreams other than progress get single
  hardware threads, so siblings are used; the progress xstream always keeps a whole core.
  Reserved cores and CPUs outside the allowed cpuset are never used; ranks never share a core.
* **NUMA.** Ranks go round-robin over NUMA domains (Slurm's default block:cyclic), domains with
  a NIC of the transport's kind first, sockets alternating (so 4 ranks on a 2-socket node with
  8 domains use both sockets); a rank takes contiguous cores of one domain, and spans domains
  only when no single domain has room (recorded in ``notes``), unless the site's MPI forbids it
  (``placement.numa_confined_ranks``): then the plan is refused with the numbers. Inside a rank the
  progress xstream takes a core in a NIC domain when the rank has one (nearest the NIC).
* **Too few cores.** With ``placement.too_few_cores: error`` (default) the planner fails with
  the numbers. With ``share`` (explicit opt-in) each rank gets ``usable // ppn`` cores, the
  progress xstream keeps one alone if the rank has at least two, and the other xstreams are
  packed round-robin on the rest; the sharing is written to ``notes`` (and the manifest).
  Fewer usable cores than processes is always an error: ranks never share a core.
* ``placement.pin: false`` leaves every xstream unpinned (no affinity emitted).
"""

from __future__ import annotations

from dataclasses import dataclass

from bedrock_deploy.cpulist import format_cpulist
from bedrock_deploy.diagnostics import InputError, Problem
from bedrock_deploy.plan import NodeLayout, RankLayout, Role, XstreamPlan
from bedrock_deploy.service import PrimaryMode, ProgressMode, ServiceDescription, ShortagePolicy
from bedrock_deploy.topology import Core, Topology

PRIMARY = "__primary__"
PROGRESS_POOL = "progress_pool"
RPC_POOL = "rpc_pool"
IO_POOL = "io_pool"


@dataclass(frozen=True)
class RankShape:
    """What one rank runs, independent of the node."""

    progress_dedicated: bool
    primary_dedicated: bool
    rpc: int
    io: int

    @classmethod
    def of(cls, service: ServiceDescription) -> RankShape:
        t = service.threads
        rpc = t.rpc
        # with rpc: 0 the handlers run on __primary__: it cannot float over rpc cores
        primary_dedicated = t.primary is PrimaryMode.dedicated or rpc == 0
        return cls(progress_dedicated=t.progress is ProgressMode.dedicated,
                   primary_dedicated=primary_dedicated, rpc=rpc, io=service.io_xstreams)

    @property
    def slots(self) -> list[Role]:
        """Roles that need their own CPU slot, in placement order."""
        out: list[Role] = []
        if self.progress_dedicated:
            out.append(Role.progress)
        if self.primary_dedicated:
            out.append(Role.primary)
        out += [Role.rpc] * self.rpc + [Role.io] * self.io
        return out

    def describe(self) -> str:
        parts = []
        if self.progress_dedicated:
            parts.append("1 progress")
        if self.primary_dedicated:
            parts.append("1 __primary__")
        if self.rpc:
            parts.append(f"{self.rpc} rpc")
        if self.io:
            parts.append(f"{self.io} io")
        return " + ".join(parts)


def progress_pool_of(layout: RankLayout) -> str:
    return PROGRESS_POOL if any(x.role is Role.progress for x in layout.xstreams) else PRIMARY


def rpc_pool_of(layout: RankLayout) -> str:
    return RPC_POOL if any(x.role is Role.rpc for x in layout.xstreams) else PRIMARY


def io_pool_of(layout: RankLayout) -> str | None:
    return IO_POOL if any(x.role is Role.io for x in layout.xstreams) else None


def _cores_needed(shape: RankShape, topo: Topology, smt: bool) -> int:
    slots = shape.slots
    if not smt:
        return max(1, len(slots))
    tpc = max(1, min((len(topo.usable_cpus(c)) for c in topo.usable_cores), default=1))
    rest = len(slots) - (1 if shape.progress_dedicated else 0)
    return max(1, (1 if shape.progress_dedicated else 0) + -(-rest // tpc))


def _shortage_problem(topo: Topology, ppn: int, k: int, shape: RankShape, smt: bool,
                      sharing: bool) -> Problem:
    total = len(topo.cores)
    usable = len(topo.usable_cores)
    reserved = sorted(topo.reserved)
    outside = sorted(c.index for c in topo.cores
                     if c.index not in topo.reserved and c.cpus[0] not in topo.allowed_cpus)
    why = [f"{total} cores"]
    if reserved:
        why.append(f"{len(reserved)} reserved for the OS ({format_cpulist(reserved)})")
    if outside:
        why.append(f"{len(outside)} outside the allowed cpuset ({format_cpulist(outside)})")
    if sharing:
        msg = (f"{ppn} processes per node need at least {ppn} cores (ranks never share a core), "
               f"the node has {usable} usable ({', '.join(why)})")
        hint = f"use at most {usable} processes per node"
    else:
        unit = "hardware-thread slots packed on" if smt else ""
        msg = (f"{ppn} processes per node x {k} cores each = {ppn * k} cores needed "
               f"({shape.describe()} xstreams per process{', ' + unit if unit else ''}), "
               f"the node has {usable} usable ({', '.join(why)})")
        fits = (f"use at most {usable // k} processes per node" if usable >= k else
                f"one process needs {k} cores and the node has {usable}")
        hint = (f"{fits}; or lower threads.rpc / threads.io, or set threads.primary: shared, "
                "threads.progress: shared or placement.smt: use; or opt into packing with "
                "placement.too_few_cores: share")
    return Problem(msg, path=("processes_per_node",), hint=hint)


def domain_order(topo: Topology, nic_domains: tuple[int, ...]) -> list[int]:
    """NUMA domains in the order ranks take them: NIC domains first, then the others; within
    each group the sockets alternate (domain 0 of socket 0, of socket 1, domain 1 of socket 0,
    ...), so consecutive ranks land on different sockets (Slurm's default block:cyclic
    distribution over sockets) instead of filling socket 0 first."""
    socket_of: dict[int, int] = {}
    for c in topo.usable_cores:
        socket_of.setdefault(c.numa, c.socket)

    def interleaved(domains: list[int]) -> list[int]:
        by_socket: dict[int, list[int]] = {}
        for d in sorted(domains):
            by_socket.setdefault(socket_of[d], []).append(d)
        columns = [by_socket[s] for s in sorted(by_socket)]
        return [col[i] for i in range(max((len(c) for c in columns), default=0))
                for col in columns if i < len(col)]

    near = [d for d in socket_of if d in nic_domains]
    return interleaved(near) + interleaved([d for d in socket_of if d not in nic_domains])


def _assign_cores(topo: Topology, ppn: int, k: int, nic_domains: tuple[int, ...],
                  numa_confined: bool = False) -> tuple[list[list[Core]], list[str]]:
    """Disjoint core sets, one per rank, round-robin over NUMA domains (NIC domains first,
    sockets alternating). ``numa_confined``: a rank never spans domains (InputError)."""
    notes: list[str] = []
    free: dict[int, list[Core]] = {}
    for c in topo.usable_cores:
        free.setdefault(c.numa, []).append(c)
    order = domain_order(topo, nic_domains)
    out: list[list[Core]] = []
    start = 0
    for rank in range(ppn):
        chosen: list[Core] | None = None
        for attempt in range(len(order)):
            i = (start + attempt) % len(order)
            d = order[i]
            if len(free[d]) >= k:
                chosen, free[d] = free[d][:k], free[d][k:]
                start = i + 1
                break
        if chosen is None and numa_confined:
            fits = sum(len(cs) // k for cs in _by_domain(topo).values())
            raise InputError(Problem(
                f"{ppn} processes per node x {k} cores each do not fit in the node's NUMA "
                f"domains without a rank spanning two of them (at most {fits} ranks of {k} "
                "cores fit), and this site's MPI requires each rank to stay in one NUMA domain",
                path=("processes_per_node",),
                hint=f"use at most {fits} processes per node, or fewer xstreams per process; "
                "or, if the site allows it, set placement.spanning_env in the site profile "
                "(e.g. another MPICH_OFI_NIC_POLICY, see 'man mpi' on the machine)"))
        if chosen is None:
            # no single domain has room: take the largest leftovers first
            chosen = []
            for d in sorted(order, key=lambda d: -len(free[d])):
                take = free[d][: k - len(chosen)]
                chosen += take
                free[d] = free[d][len(take):]
                if len(chosen) == k:
                    break
            notes.append(f"local rank {rank} spans NUMA domains "
                         + ",".join(str(d) for d in sorted({c.numa for c in chosen})))
        out.append(sorted(chosen, key=lambda c: c.index))
    return out, notes


def _by_domain(topo: Topology) -> dict[int, list[Core]]:
    out: dict[int, list[Core]] = {}
    for c in topo.usable_cores:
        out.setdefault(c.numa, []).append(c)
    return out


def _slot_cpus(cores: list[Core], shape: RankShape, topo: Topology, smt: bool,
               nic_domains: tuple[int, ...], packed: bool) -> list[tuple[Role, tuple[int, ...]]]:
    """CPU set of each slot (in ``shape.slots`` order)."""
    slots = shape.slots
    # the progress core: the rank's first core in a NIC domain, else its first core
    near = next((c for c in cores if c.numa in nic_domains), cores[0])
    ordered = [near] + [c for c in cores if c is not near]
    out: list[tuple[Role, tuple[int, ...]]] = []
    rest_slots = list(slots)
    rest_cores = list(ordered)
    if shape.progress_dedicated and (len(ordered) >= 2 or not packed):
        out.append((Role.progress, topo.usable_cpus(ordered[0])))
        rest_slots = slots[1:]
        rest_cores = ordered[1:]
    units: list[tuple[int, ...]] = []
    if smt:
        units = [(cpu,) for c in rest_cores for cpu in topo.usable_cpus(c)]
    else:
        units = [topo.usable_cpus(c) for c in rest_cores]
    for i, role in enumerate(rest_slots):
        out.append((role, units[i % len(units)]))
    return out


def plan_layout(topo: Topology, service: ServiceDescription,
                nic_kind: str | None = None, *, uses_nic: bool = True,
                numa_confined: bool = False) -> NodeLayout:
    """Plan every local rank of one node. Raises InputError (path into the service) if the
    request cannot fit and the service did not opt into sharing, or, with ``numa_confined``
    (the site's MPI binds each rank to its NUMA domain's NIC), if a rank would span domains."""
    ppn = service.processes_per_node
    shape = RankShape.of(service)
    smt = service.placement.smt.value == "use" and topo.threads_per_core > 1
    pin = service.placement.pin
    k = _cores_needed(shape, topo, smt)
    usable = len(topo.usable_cores)
    notes: list[str] = []
    packed = False
    if ppn * k > usable:
        sharing = service.placement.too_few_cores is ShortagePolicy.share
        if not sharing or usable < ppn:
            raise InputError(_shortage_problem(topo, ppn, k, shape, smt, sharing))
        packed = True
        notes.append(f"too_few_cores: share: {ppn} x {k} cores wanted, {usable} usable; each "
                     f"rank packs its {len(shape.slots)} xstreams on {usable // ppn} cores")
        k = usable // ppn
    if service.placement.smt.value == "use" and topo.threads_per_core == 1:
        notes.append("smt: use has no effect, the node has 1 hardware thread per core")
    nic_domains = topo.nic_numa(nic_kind) if uses_nic else ()
    if uses_nic and not nic_domains:
        nic_domains = topo.nic_numa()
    per_rank, span_notes = _assign_cores(topo, ppn, k, nic_domains, numa_confined)
    notes += span_notes
    ranks: list[RankLayout] = []
    for rank, cores in enumerate(per_rank):
        slot_cpus = _slot_cpus(cores, shape, topo, smt, nic_domains, packed)
        xstreams: list[XstreamPlan] = []
        counters = {Role.rpc: 0, Role.io: 0}
        rpc_cpus: list[int] = []
        primary_cpus: tuple[int, ...] = ()
        for role, cpus in slot_cpus:
            if role is Role.progress:
                xstreams.append(XstreamPlan("progress_xstream", role, (PROGRESS_POOL,),
                                            cpus if pin else ()))
            elif role is Role.primary:
                primary_cpus = cpus
            elif role is Role.rpc:
                xstreams.append(XstreamPlan(f"rpc_xstream_{counters[role]}", role, (RPC_POOL,),
                                            cpus if pin else ()))
                counters[role] += 1
                rpc_cpus += [c for c in cpus if c not in rpc_cpus]
            else:
                xstreams.append(XstreamPlan(f"io_xstream_{counters[role]}", role, (IO_POOL,),
                                            cpus if pin else ()))
                counters[role] += 1
        if not shape.primary_dedicated:
            primary_cpus = tuple(sorted(rpc_cpus))
        xstreams.insert(1 if shape.progress_dedicated else 0,
                        XstreamPlan(PRIMARY, Role.primary, (PRIMARY,), primary_cpus if pin else ()))
        all_cpus = tuple(sorted(c for core in cores for c in topo.usable_cpus(core)))
        ranks.append(RankLayout(local_rank=rank, cpus=all_cpus,
                                numa=tuple(sorted({c.numa for c in cores})),
                                xstreams=tuple(xstreams)))
    spare = usable - sum(len(c) for c in per_rank)
    if spare > 0:
        notes.append(f"{spare} usable cores left idle")
    return NodeLayout(ranks=tuple(ranks),
                      pins_threads=pin and any(x.cpus for r in ranks for x in r.xstreams),
                      use_smt=smt, notes=tuple(notes))
