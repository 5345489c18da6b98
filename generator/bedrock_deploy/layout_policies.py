"""Layout policies: which xstreams one rank runs, on which of its CPUs, serving which roles.

A policy is a pure function from a rank's cores (:class:`RankCores`) and the roles the service
asks of every process (:class:`RankShape`) to that rank's xstreams and the pool of each role
(:class:`RankXstreams`). The planner (:mod:`bedrock_deploy.layout`) first gives every rank its
cores, then :func:`choose` picks one policy per rank; the policy's name and the reason
:func:`choose` gives are recorded in the manifest, and the Bedrock configs, the manifest and the
picture read the result (they never work it out again).

* :func:`one_core_per_xstream`: the rank has a core for each xstream (``placement.smt: avoid``);
* :func:`hardware_threads`: it has enough cores counted in hardware threads
  (``placement.smt: use``);
* :func:`one_xstream_per_core`: it has fewer cores than roles (``placement.too_few_cores:
  share``): roles are merged so that no two xstreams share a core.

The measurements behind each choice are in ``docs/layout.md``. Changing a policy is one function
here and its test in ``tests/test_layout_policies.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from bedrock_deploy.plan import PRIMARY, Role, XstreamPlan
from bedrock_deploy.service import PrimaryMode, ProgressMode, ServiceDescription

PROGRESS_POOL = "progress_pool"
RPC_POOL = "rpc_pool"
IO_POOL = "io_pool"
FEWER_CORES_DOC = "docs/layout.md#fewer-cores-than-roles"


@dataclass(frozen=True)
class RankShape:
    """The roles one rank runs, independent of the node (from the service's ``threads``)."""

    progress_dedicated: bool
    primary_dedicated: bool
    rpc: int
    io: int
    io_min: int = 0  # io xstreams the components cannot do without (abt_io: num_urings+1)

    @classmethod
    def of(cls, service: ServiceDescription) -> RankShape:
        t = service.threads
        rpc = t.rpc
        # with rpc: 0 the handlers run on __primary__: it cannot float over rpc cores
        primary_dedicated = t.primary is PrimaryMode.dedicated or rpc == 0
        fewest = service.model_copy(update={"threads": t.model_copy(update={"io": 1})})
        return cls(progress_dedicated=t.progress is ProgressMode.dedicated,
                   primary_dedicated=primary_dedicated, rpc=rpc, io=service.io_xstreams,
                   io_min=fewest.io_xstreams)

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

    @property
    def xstreams(self) -> int:
        """xstreams per process when every role has its own (``__primary__`` included)."""
        return 1 + self.progress_dedicated + self.rpc + self.io

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


@dataclass(frozen=True)
class RankCores:
    """What a policy sees of one rank: its cores, each as the hardware threads the job may use,
    the first one nearest the NIC (where the progress loop goes), and whether to pin."""

    cores: tuple[tuple[int, ...], ...]
    pin: bool = True

    @property
    def cpus(self) -> tuple[int, ...]:
        return tuple(sorted(c for core in self.cores for c in core))

    @property
    def threads_per_core(self) -> int:
        return max(1, min((len(c) for c in self.cores), default=1))


@dataclass(frozen=True)
class RankXstreams:
    """A policy's answer: the rank's xstreams and the pool each role's work goes to."""

    xstreams: tuple[XstreamPlan, ...]
    progress_pool: str
    rpc_pool: str
    io_pool: str | None


XstreamPolicy = Callable[[RankCores, RankShape], RankXstreams]
Chooser = Callable[[RankCores, RankShape, bool], tuple[XstreamPolicy, str]]  # like choose()


def cores_needed(shape: RankShape, threads_per_core: int, smt: bool) -> int:
    """Cores one rank needs for every role to have a CPU slot of its own: one core per slot, or
    with SMT a whole core for the progress loop and one hardware thread for each other slot."""
    slots = len(shape.slots)
    if not smt:
        return max(1, slots)
    progress = 1 if shape.progress_dedicated else 0
    return max(1, progress + -(-(slots - progress) // max(1, threads_per_core)))


def choose(rank: RankCores, shape: RankShape, smt: bool) -> tuple[XstreamPolicy, str]:
    """The policy for one rank, and why (recorded in the manifest)."""
    need = cores_needed(shape, rank.threads_per_core, smt)
    have = len(rank.cores)
    if have >= need:
        if smt:
            return hardware_threads, ("placement.smt: use: the progress loop keeps a whole "
                                      "core, every other xstream gets a hardware thread")
        return one_core_per_xstream, ("every xstream gets a core of its own, the progress "
                                      "loop the one nearest the NIC")
    return one_xstream_per_core, (
        f"{have} core{'s' * (have != 1)} for {need} xstreams: roles merged until no two "
        f"xstreams share a core, which measured best ({FEWER_CORES_DOC})")


def _pinned(rank: RankCores, cpus: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(sorted(cpus)) if rank.pin else ()


def _separate(rank: RankCores, shape: RankShape, units: Sequence[tuple[int, ...]],
              progress_cpus: tuple[int, ...], io_on_primary: bool = False) -> RankXstreams:
    """Every role of ``shape`` on an xstream of its own: progress on ``progress_cpus``, the
    other slots on ``units`` in slot order (when a policy has more slots than units, the
    extra ones cycle over the units after the first); a shared ``__primary__`` floats over the
    rpc xstreams' CPUs. ``__primary__`` also runs what has no xstream of its own: the progress
    loop (``progress: shared``), the RPC handlers (``rpc: 0``) and, with ``io_on_primary``,
    the I/O."""
    xstreams: list[XstreamPlan] = []
    if shape.progress_dedicated:
        xstreams.append(XstreamPlan("progress_xstream", Role.progress, (PROGRESS_POOL,),
                                    _pinned(rank, progress_cpus)))
    rest = [r for r in shape.slots if r is not Role.progress]
    primary_cpus: tuple[int, ...] = ()
    rpc_cpus: set[int] = set()
    counters = {Role.rpc: 0, Role.io: 0}
    pools = {Role.rpc: RPC_POOL, Role.io: IO_POOL}
    for i, role in enumerate(rest):
        cpus = units[i] if i < len(units) else units[1 + (i - 1) % (len(units) - 1)] \
            if len(units) > 1 else units[0]
        if role is Role.primary:
            primary_cpus = cpus
            continue
        name = f"{role.value}_xstream_{counters[role]}"
        counters[role] += 1
        xstreams.append(XstreamPlan(name, role, (pools[role],), _pinned(rank, cpus)))
        if role is Role.rpc:
            rpc_cpus.update(cpus)
    if not shape.primary_dedicated:
        primary_cpus = tuple(sorted(rpc_cpus))
    also = [r for r, on in ((Role.progress, not shape.progress_dedicated),
                            (Role.rpc, not shape.rpc), (Role.io, io_on_primary)) if on]
    xstreams.insert(1 if shape.progress_dedicated else 0,
                    XstreamPlan(PRIMARY, Role.primary, (PRIMARY,), _pinned(rank, primary_cpus),
                                also=tuple(also)))
    return RankXstreams(
        xstreams=tuple(xstreams),
        progress_pool=PROGRESS_POOL if shape.progress_dedicated else PRIMARY,
        rpc_pool=RPC_POOL if shape.rpc else PRIMARY,
        io_pool=IO_POOL if shape.io else (PRIMARY if io_on_primary else None))


def _on_cores(rank: RankCores, shape: RankShape, io_on_primary: bool = False) -> RankXstreams:
    first, *others = rank.cores
    if shape.progress_dedicated:
        return _separate(rank, shape, others or [first], first, io_on_primary)
    return _separate(rank, shape, list(rank.cores), (), io_on_primary)


def one_core_per_xstream(rank: RankCores, shape: RankShape) -> RankXstreams:
    """Each xstream alone on a physical core (all its hardware threads); the progress xstream
    on the first core (nearest the NIC), then ``__primary__`` (if dedicated), rpc and io
    xstreams in order. An xstream is an OS thread: two on one core pay a thread switch per
    hand-off."""
    return _on_cores(rank, shape)


def hardware_threads(rank: RankCores, shape: RankShape) -> RankXstreams:
    """``placement.smt: use``: the progress xstream keeps a whole core, every other xstream
    gets one hardware thread (so SMT siblings are used), in core order."""
    first, *others = rank.cores
    cores = list(others) if shape.progress_dedicated else list(rank.cores)
    threads = [(cpu,) for core in cores for cpu in core]
    return _separate(rank, shape, threads, first if shape.progress_dedicated else ())


def fewer_xstreams(shape: RankShape, cores: int) -> tuple[RankShape, bool]:
    """The roles of ``shape`` merged until the xstreams no longer outnumber ``cores``, one step
    at a time and only while they still do: (1) ``__primary__`` floats over the rpc cores,
    (2) fewer rpc xstreams (at least one), (3) fewer io xstreams (as few as the components
    need), (4) the progress loop and the RPC handlers together on ``__primary__``, (5) the
    I/O on ``__primary__`` too (returned as the bool)."""
    if len(shape.slots) > cores and shape.primary_dedicated and shape.rpc:
        shape = replace(shape, primary_dedicated=False)
    if len(shape.slots) > cores and shape.rpc > 1:
        shape = replace(shape, rpc=max(1, shape.rpc - (len(shape.slots) - cores)))
    if len(shape.slots) > cores and shape.io > shape.io_min:
        shape = replace(shape, io=max(shape.io_min, shape.io - (len(shape.slots) - cores)))
    if len(shape.slots) > cores and (shape.progress_dedicated or shape.rpc):
        shape = replace(shape, progress_dedicated=False, rpc=0, primary_dedicated=True)
    io_on_primary = len(shape.slots) > cores and shape.io == 1 and shape.io_min <= 1
    return (replace(shape, io=0) if io_on_primary else shape), io_on_primary


def one_xstream_per_core(rank: RankCores, shape: RankShape) -> RankXstreams:
    """Fewer cores than roles: the roles are merged (:func:`fewer_xstreams`) until every
    xstream has a core of its own, then placed as :func:`one_core_per_xstream` does. On one
    core everything runs on ``__primary__`` (Margo's default shape); on two, with I/O,
    ``__primary__`` runs the progress loop and the RPC handlers on the first core and the io
    xstream the blocking I/O on the second. abt_io with io_uring needs num_urings+1 io
    xstreams (abt-io.c): when they outnumber the cores they share them."""
    merged, io_on_primary = fewer_xstreams(shape, len(rank.cores))
    return _on_cores(rank, merged, io_on_primary)


# Policies that merge roles onto fewer xstreams than the service asked for: the validator's
# advice against RPC handlers in the progress pool is their decision, not a mistake.
MERGING_POLICIES = frozenset({one_xstream_per_core.__name__})
