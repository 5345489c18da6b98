"""The layout planner: which cores each local rank gets, and its Argobots pools and xstreams.

Pure (no I/O): from a :class:`~bedrock_deploy.topology.Topology`, the service's thread counts
and placement policy, and the NIC kind of the chosen transport, build a :class:`plan.NodeLayout`.
Every step below is a small function that returns its result together with the decision it
made and why (a :class:`plan.Choice`); the decisions are recorded in ``NodeLayout.decisions``
as they are made, and the manifest, ``generate``'s notes and the picture read them from there.
How a rank's cores become xstreams is a *layout policy* (:mod:`bedrock_deploy.layout_policies`).
The whole policy is explained, with its measurements, in ``docs/layout.md``.

* **Roles per rank** (:func:`roles_per_rank`): one progress xstream serving ``progress_pool``
  alone (``threads.progress: dedicated``, the default: a progress loop sharing its xstream
  starves the other pools or stalls up to 100 ms, https://github.com/mochi-hpc/mochi-margo/pull/278),
  the ``__primary__`` xstream (the main thread, always defined so that it can be pinned),
  ``threads.rpc`` rpc xstreams and, only if a component uses ``pool: io``, io xstreams (at
  least num_urings+1 for abt_io with io_uring). With ``progress: shared`` the progress loop
  runs on ``__primary__``; with ``rpc: 0`` the RPC handlers do.
* **SMT** (:func:`use_smt`): ``placement.smt: use`` puts xstreams other than progress on single
  hardware threads; it has no effect on a node with one thread per core.
* **Cores per rank** (:func:`cores_per_rank`): enough for every xstream to have a core (or a
  hardware thread) of its own. When the node has fewer, ``placement.too_few_cores: error``
  (default) fails with the numbers; ``share`` (explicit opt-in) gives each rank
  ``usable // ppn`` cores. Fewer usable cores than processes is always an error: ranks never
  share a core. Reserved cores and CPUs outside the allowed cpuset are never used.
* **Which cores** (:func:`assign_cores`): ranks go round-robin over NUMA domains (Slurm's
  default block:cyclic), domains with a NIC of the transport's kind first, sockets alternating
  (so 4 ranks on a 2-socket node with 8 domains use both sockets); a rank takes contiguous cores
  of one domain, and spans domains only when no single domain has room, unless the site's MPI
  forbids it (``placement.numa_confined_ranks``): then the plan is refused with the numbers.
  Inside a rank the core nearest the NIC comes first (the progress loop goes there).
* **Xstreams** (:func:`bedrock_deploy.layout_policies.choose`): one policy per rank.
* ``placement.pin: false`` leaves every xstream unpinned (no affinity emitted).
"""

from __future__ import annotations

from bedrock_deploy.cpulist import format_cpulist
from bedrock_deploy.diagnostics import InputError, Problem
from bedrock_deploy.layout_policies import (
    IO_POOL,
    MERGING_POLICIES,
    PROGRESS_POOL,
    RPC_POOL,
    Chooser,
    RankCores,
    RankShape,
    RankXstreams,
    choose,
    cores_needed,
)
from bedrock_deploy.plan import PRIMARY, Choice, NodeLayout, RankLayout, XstreamPlan
from bedrock_deploy.service import ServiceDescription, ShortagePolicy, SmtPolicy
from bedrock_deploy.topology import Core, Topology

__all__ = ["IO_POOL", "PRIMARY", "PROGRESS_POOL", "RPC_POOL", "RankShape", "plan_layout"]


def roles_per_rank(service: ServiceDescription) -> tuple[RankShape, Choice]:
    """The roles every process runs, from the service's ``threads``."""
    shape = RankShape.of(service)
    t = service.threads
    return shape, Choice("xstreams per process", shape.describe(),
                         f"threads of the service: progress {t.progress.value}, rpc {t.rpc}, "
                         f"primary {t.primary.value}, io {shape.io} (docs/layout.md)")


def use_smt(topo: Topology, service: ServiceDescription) -> tuple[bool, Choice]:
    """Whether xstreams go on single hardware threads (``placement.smt: use``)."""
    asked = service.placement.smt is SmtPolicy.use
    if asked and topo.threads_per_core == 1:
        return False, Choice("use SMT siblings", False, "placement.smt: use has no effect, the "
                             "node has 1 hardware thread per core", note=True)
    return asked, Choice("use SMT siblings", asked, f"placement.smt: {service.placement.smt.value}")


def cores_per_rank(topo: Topology, service: ServiceDescription, shape: RankShape,
                   smt: bool) -> tuple[int, Choice]:
    """How many cores each rank gets; raises InputError (path ``processes_per_node``) when they
    do not fit and the service did not opt into sharing, or when ranks would share a core."""
    ppn = service.processes_per_node
    tpc = max(1, min((len(topo.usable_cpus(c)) for c in topo.usable_cores), default=1))
    k = cores_needed(shape, tpc, smt)
    usable = len(topo.usable_cores)
    unit = "a hardware thread" if smt else "a core"
    if ppn * k <= usable:
        return k, Choice("cores per process", k, f"{shape.describe()} xstreams, each on {unit} "
                         "of its own")
    sharing = service.placement.too_few_cores is ShortagePolicy.share
    if not sharing or usable < ppn:
        raise InputError(_shortage_problem(topo, ppn, k, shape, smt, sharing))
    return usable // ppn, Choice(
        "cores per process", usable // ppn,
        f"too_few_cores: share: {ppn} x {k} cores wanted, {usable} usable", note=True)


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


def assign_cores(topo: Topology, ppn: int, k: int, nic_domains: tuple[int, ...],
                 numa_confined: bool = False) -> tuple[list[list[Core]], list[Choice]]:
    """Disjoint core sets, one per rank, round-robin over NUMA domains (NIC domains first,
    sockets alternating), and for each rank the decision with its reason. ``numa_confined``:
    a rank never spans domains (InputError)."""
    free: dict[int, list[Core]] = {}
    for c in topo.usable_cores:
        free.setdefault(c.numa, []).append(c)
    order = domain_order(topo, nic_domains)
    out: list[list[Core]] = []
    decided: list[Choice] = []
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
        spans = chosen is None
        if chosen is None:
            # no single domain has room: take the largest leftovers first
            chosen = []
            for d in sorted(order, key=lambda d: -len(free[d])):
                take = free[d][: k - len(chosen)]
                chosen += take
                free[d] = free[d][len(take):]
                if len(chosen) == k:
                    break
        chosen.sort(key=lambda c: c.index)
        out.append(chosen)
        domains = ",".join(str(d) for d in sorted({c.numa for c in chosen}))
        cpus = format_cpulist(sorted(cpu for c in chosen for cpu in topo.usable_cpus(c)))
        if spans:
            why = f"spans NUMA domains {domains}: no single domain had {k} free cores"
        else:
            near = " (a NIC domain)" if chosen[0].numa in nic_domains else ""
            why = (f"NUMA {domains}{near}; ranks take NUMA domains round-robin, NIC domains "
                   "first, sockets alternating")
        decided.append(Choice(f"local rank {rank} cores", cpus, why, note=spans))
    return out, decided


def _by_domain(topo: Topology) -> dict[int, list[Core]]:
    out: dict[int, list[Core]] = {}
    for c in topo.usable_cores:
        out.setdefault(c.numa, []).append(c)
    return out


def rank_cores(topo: Topology, cores: list[Core], nic_domains: tuple[int, ...],
               pin: bool) -> RankCores:
    """A rank's cores as a policy sees them: the first one in a NIC domain first (the progress
    loop goes nearest the NIC), then the others in order."""
    near = next((c for c in cores if c.numa in nic_domains), cores[0])
    ordered = [near] + [c for c in cores if c is not near]
    return RankCores(cores=tuple(topo.usable_cpus(c) for c in ordered), pin=pin)


def describe_xstreams(xstreams: tuple[XstreamPlan, ...]) -> str:
    """``name=cpus`` of each xstream, with the roles it serves beyond its own."""
    parts = []
    for x in xstreams:
        roles = f" ({'+'.join(r.value for r in x.roles)})" if x.also else ""
        parts.append(f"{x.name}{roles}={format_cpulist(x.cpus) if x.cpus else 'unpinned'}")
    return ", ".join(parts)


def plan_layout(topo: Topology, service: ServiceDescription,
                nic_kind: str | None = None, *, uses_nic: bool = True,
                numa_confined: bool = False, choose_policy: Chooser = choose) -> NodeLayout:
    """Plan every local rank of one node. Raises InputError (path into the service) if the
    request cannot fit and the service did not opt into sharing, or, with ``numa_confined``
    (the site's MPI binds each rank to its NUMA domain's NIC), if a rank would span domains.
    ``choose_policy`` picks each rank's xstream policy (the layout benchmark plans other
    candidates through it)."""
    decisions: list[Choice] = []
    shape, decided = roles_per_rank(service)
    decisions.append(decided)
    smt, decided = use_smt(topo, service)
    decisions.append(decided)
    k, decided = cores_per_rank(topo, service, shape, smt)
    decisions.append(decided)
    nic_domains = topo.nic_numa(nic_kind) if uses_nic else ()
    if uses_nic and not nic_domains:
        nic_domains = topo.nic_numa()
    per_rank, assigned = assign_cores(topo, service.processes_per_node, k, nic_domains,
                                      numa_confined)
    ranks: list[RankLayout] = []
    for rank, (cores, placed) in enumerate(zip(per_rank, assigned, strict=True)):
        decisions.append(placed)
        mine = rank_cores(topo, cores, nic_domains, service.placement.pin)
        policy, why = choose_policy(mine, shape, smt)
        xs: RankXstreams = policy(mine, shape)
        ranks.append(RankLayout(local_rank=rank, cpus=mine.cpus,
                                numa=tuple(sorted({c.numa for c in cores})),
                                xstreams=xs.xstreams, progress_pool=xs.progress_pool,
                                rpc_pool=xs.rpc_pool, io_pool=xs.io_pool,
                                policy=policy.__name__))
        decisions.append(Choice(f"local rank {rank} xstreams",
                                f"{policy.__name__}: {describe_xstreams(xs.xstreams)}", why,
                                note=policy.__name__ in MERGING_POLICIES))
    spare = len(topo.usable_cores) - sum(len(c) for c in per_rank)
    if spare > 0:
        decisions.append(Choice("idle cores", spare, "usable cores no rank needs", note=True))
    return NodeLayout(ranks=tuple(ranks),
                      pins_threads=any(x.cpus for r in ranks for x in r.xstreams),
                      use_smt=smt, decisions=tuple(decisions))
