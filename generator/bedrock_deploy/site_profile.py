"""The site profile: one validated description of a cluster that every generator reads.

Schema first (as Spack's ``lib/spack/spack/schema``): these pydantic models *are* the schema;
``share/schemas/site-profile.schema.json`` is exported from them (``bedrock-deploy sites schema``)
and a test keeps the two in sync. Unknown keys are rejected everywhere. Loading (with
``extends``) lives in :mod:`bedrock_deploy.sites`; cross-field checks in :func:`check_site`.
"""

from __future__ import annotations

import datetime
import re
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from bedrock_deploy.cpulist import CpuListError, format_cpulist, parse_cpulist
from bedrock_deploy.diagnostics import Problem
from bedrock_deploy.limits import MAX_CPU_ID, NODE_CPUS, NUMA_DOMAINS

if TYPE_CHECKING:
    from bedrock_deploy.launch.registry import Registry


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _cpus(value: object) -> object:
    """Accept a cpulist string (``"0-51,104-155"``) or a list of ints."""
    if isinstance(value, str):
        try:
            return parse_cpulist(value)
        except CpuListError as err:
            raise ValueError(str(err)) from None
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    return value


# What a CPU list may be written as in a profile (the JSON Schema of the *document*; the
# model itself holds a sorted list of ints after the before-validator).
_CPULIST_JSON_SCHEMA: dict[str, object] = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*(\d+(-\d+)?(\s*,\s*\d+(-\d+)?)*)?\s*$"},
        {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": MAX_CPU_ID}},
        {"type": "integer", "minimum": 0, "maximum": MAX_CPU_ID},
    ],
    "description": "CPU ids: a Linux cpulist string such as '0-51,104-155' or a list of ints",
}

def _cpu_id(cpu: int) -> int:
    if cpu > MAX_CPU_ID:
        raise ValueError(NODE_CPUS.exceeded(f"CPU {cpu} is above the largest CPU id {MAX_CPU_ID}"))
    return cpu


CpuId = Annotated[int, Field(ge=0), AfterValidator(_cpu_id),
                  WithJsonSchema({"type": "integer", "minimum": 0, "maximum": MAX_CPU_ID})]

CpuList = Annotated[
    list[CpuId],
    Field(description="CPU ids: a Linux cpulist string such as '0-51,104-155' or a list of ints"),
    PlainSerializer(format_cpulist, return_type=str, when_used="json"),
    WithJsonSchema(_CPULIST_JSON_SCHEMA, mode="validation"),
]


# An environment variable name as a shell can export it (POSIX "Name": letters, digits and
# underscores, not starting with a digit; pubs.opengroup.org/onlinepubs/9799919799, XBD 3.216).
# Checked when the profile loads, so a key such as "FOO\n" is an error at its line.
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_name(name: str) -> str:
    if not _ENV_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not an environment variable name (letters, digits and "
                         "'_', not starting with a digit)")
    return name


EnvName = Annotated[str, AfterValidator(_env_name),
                    WithJsonSchema({"type": "string", "pattern": ENV_NAME_PATTERN})]
Environment = Annotated[
    dict[EnvName, str],
    WithJsonSchema({"type": "object", "propertyNames": {"pattern": ENV_NAME_PATTERN},
                    "additionalProperties": {"type": "string"}}),
]


class NumaDomain(_Strict):
    id: int = Field(ge=0, description="NUMA node id as in /sys/devices/system/node/nodeN")
    cpus: CpuList
    socket: int | None = Field(default=None, ge=0, description="socket holding this domain")
    memory_gib: float | None = Field(default=None, ge=0, description="memory of this domain")

    _norm = field_validator("cpus", mode="before")(_cpus)


class NicKind(StrEnum):
    cxi = "cxi"
    verbs = "verbs"
    tcp = "tcp"
    opx = "opx"
    psm2 = "psm2"
    ucx = "ucx"
    efa = "efa"
    gni = "gni"


class Nic(_Strict):
    name: str = Field(description="device name, e.g. cxi0, mlx5_0, hsn0, eth0")
    kind: NicKind = Field(description="cxi, verbs, tcp, opx, psm2, ucx, efa or gni")
    numa_domain: int | None = Field(default=None, ge=0, description="NUMA domain the NIC sits on")


class Gpu(_Strict):
    name: str = Field(description="GPU model or device name")
    count: int = Field(default=1, ge=1)
    numa_domain: int | None = Field(default=None, ge=0)


class Node(_Strict):
    """Compute-node topology. Cores are numbered socket-major, ``0 .. sockets*cores_per_socket-1``.

    A core's hardware threads are given by ``sibling_map``:
    ``stride`` (Intel/AMD Linux default): core c has CPUs c, c+C, c+2C, ... (C = total cores);
    ``adjacent``: core c has CPUs c*T .. c*T+T-1 (T = threads_per_core);
    or an explicit list, one CPU list per core in core order (what ``probe`` writes when the
    numbering is irregular).
    """

    sockets: int = Field(ge=1, description="sockets (packages) per node")
    cores_per_socket: int = Field(ge=1, description="physical cores per socket")
    threads_per_core: int = Field(default=1, ge=1, le=8, description="hardware threads per core")
    sibling_map: Literal["stride", "adjacent"] | list[CpuList] = Field(
        default="stride",
        description="'stride', 'adjacent', or one CPU list per core (hardware-thread siblings)",
    )
    numa_domains: list[NumaDomain] = Field(min_length=1, description="NUMA domains and their CPUs")
    reserved_cores: list[Annotated[int, Field(ge=0)]] = Field(
        default_factory=list,
        description="core ids kept for the OS (all their hardware threads are unused)",
    )
    online_cpus: CpuList | None = Field(
        default=None, description="online CPUs, if not all of them (sysfs 'online')"
    )
    allowed_cpus: CpuList | None = Field(
        default=None, description="the job/process cpuset, if restricted (Cpus_allowed_list)"
    )
    memory_gib: float | None = Field(default=None, ge=0, description="node memory in GiB")
    gpus: list[Gpu] = Field(default_factory=list)
    nics: list[Nic] = Field(default_factory=list, description="high-speed NICs and their NUMA")

    @field_validator("online_cpus", "allowed_cpus", mode="before")
    @classmethod
    def _cpu_lists(cls, v: object) -> object:
        return _cpus(v) if v is not None else None

    @field_validator("sibling_map", mode="before")
    @classmethod
    def _siblings(cls, v: object) -> object:
        if isinstance(v, list):
            return [_cpus(x) for x in v]
        return v

    @property
    def total_cores(self) -> int:
        return self.sockets * self.cores_per_socket

    @model_validator(mode="before")
    @classmethod
    def _within_limits(cls, data: object) -> object:
        """Before anything is derived from the counts (a list per core...): the limits."""
        if not isinstance(data, dict):
            return data
        counts = [data.get(k, 1) for k in ("sockets", "cores_per_socket", "threads_per_core")]
        if all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in counts):
            cpus = counts[0] * counts[1] * counts[2]
            if cpus > NODE_CPUS.value:
                raise ValueError(NODE_CPUS.exceeded(
                    f"{counts[0]} sockets x {counts[1]} cores x {counts[2]} threads is "
                    f"{cpus:,} CPUs"))
        domains = data.get("numa_domains")
        if isinstance(domains, list) and len(domains) > NUMA_DOMAINS.value:
            raise ValueError(NUMA_DOMAINS.exceeded(f"{len(domains):,} NUMA domains"))
        return data


class TransportScope(StrEnum):
    inter_node = "inter-node"
    intra_node = "intra-node"


class Transport(_Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.+-]*$", description="short id, e.g. cxi")
    protocol: str = Field(
        pattern=r"^[a-z0-9+;_]+://\S*$",
        description="Mercury address prefix as margo-info lists it, e.g. 'cxi://', 'ofi+tcp://'",
    )
    nic_kind: NicKind | None = Field(default=None, description="which NIC kind it uses")
    provider: str | None = Field(default=None, description="libfabric provider, e.g. cxi, tcp")
    fabrics: list[str] = Field(
        default_factory=list, description="libfabric fabrics it needs (Spack 'fabrics=' values)"
    )
    scope: TransportScope = Field(
        default=TransportScope.inter_node,
        description="'inter-node' or 'intra-node' (na+sm reaches only processes on one node)",
    )
    env: Environment = Field(default_factory=dict, description="environment for this fabric")
    launcher_flags: list[str] = Field(
        default_factory=list, description="flags the launcher needs, e.g. Slingshot VNI flags"
    )
    mercury: dict[str, str | int | bool] = Field(
        default_factory=dict, description="extra margo 'mercury' settings, e.g. ip_subnet"
    )
    notes: str | None = None


def _registry(kind: Literal["launcher", "scheduler"]) -> Registry[Any]:
    # local imports: the launch package imports this module
    if kind == "launcher":
        from bedrock_deploy.launch.launcher import LAUNCHERS

        return LAUNCHERS
    from bedrock_deploy.launch.scheduler import SCHEDULERS

    return SCHEDULERS


def _check_registered(kind: Literal["launcher", "scheduler"], value: str) -> str:
    registry = _registry(kind)
    if value not in registry:
        expected = ", ".join(repr(n) for n in registry.names())
        raise PydanticCustomError("enum", "Input should be {expected}", {"expected": expected})
    return value


def _registered_schema(kind: Literal["launcher", "scheduler"], field: dict[str, Any]) -> None:
    classes = list(_registry(kind))
    field["enum"] = [c.name for c in classes]
    field["description"] = "; ".join(f"{c.name}: {c.description}" for c in classes)


# A ``type`` field whose values are the names in the scheduler or launcher registry
# (bedrock_deploy/launch/schedulers/, .../launchers/): validation accepts exactly those, and
# the JSON Schema lists them with their descriptions.
SchedulerName = Annotated[
    str, AfterValidator(partial(_check_registered, "scheduler")),
    Field(json_schema_extra=partial(_registered_schema, "scheduler"))]
LauncherName = Annotated[
    str, AfterValidator(partial(_check_registered, "launcher")),
    Field(json_schema_extra=partial(_registered_schema, "launcher"))]


WALLTIME_PATTERN = r"^(\d+-)?\d{1,3}:\d{2}(:\d{2})?$"


class QueueOption(StrEnum):
    queue = "queue"  # Slurm --partition, PBS -q, Flux -q
    qos = "qos"  # Slurm --qos (NERSC's "queues", Frontier's debug QOS)


class Queue(_Strict):
    """One row of a site's queue table: which node counts and wall times a queue accepts."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.@-]+$", description="queue/partition/QOS name")
    option: QueueOption = Field(
        default=QueueOption.queue,
        description="'queue' (Slurm --partition, PBS -q) or 'qos' (Slurm --qos)")
    min_nodes: int = Field(default=1, ge=1, description="smallest job the queue accepts")
    max_nodes: int | None = Field(
        default=None, ge=1, description="largest job; unset when the site publishes none")
    max_walltime: str | None = Field(
        default=None, pattern=WALLTIME_PATTERN,
        description="longest wall time as [D-]HH:MM[:SS]; unset when not published")
    auto: bool = Field(
        default=True, description="chosen automatically by node count (false: by request, "
        "preemptable, special-purpose; only used when named with --queue)")
    notes: str | None = None


class Scheduler(_Strict):
    type: SchedulerName = Field(description="the scheduler: a name in the scheduler registry")
    partition: str | None = Field(
        default=None, description="Slurm partition / PBS queue; with a queue table, this "
        "queue is used instead of choosing one by node count")
    account: str | None = Field(default=None, description="account / project to charge")
    account_required: bool = Field(
        default=False, description="the scheduler rejects jobs without an account "
        "(generate then refuses to write one without --account or scheduler.account)")
    account_error: str | None = Field(
        default=None, description="what the scheduler says when the account is missing")
    queues: list[Queue] = Field(
        default_factory=list, description="queue table in order of preference; generate "
        "picks the first automatic queue whose node range and wall-time limit fit the job")
    login_shell: bool = Field(
        default=False, description="start the job script with '#!/bin/bash -l' (a login "
        "shell, so the site's module system and profile are set up)")
    time: str = Field(default="00:30:00", pattern=WALLTIME_PATTERN,
                      description="wall time as [D-]HH:MM[:SS]")
    directives: list[str] = Field(
        default_factory=list, description="extra raw directives, e.g. '-l filesystems=home'"
    )


class Launcher(_Strict):
    type: LauncherName = Field(description="the launcher: a name in the launcher registry")
    command: str | None = Field(default=None, description="executable, if not the usual one")
    flags: list[str] = Field(default_factory=list, description="extra launcher flags")
    mpi: str | None = Field(default=None, description="srun --mpi= plugin: pmix, pmi2, cray_shasta")
    env: Environment = Field(default_factory=dict, description="environment for the launcher")


class SpackExternal(_Strict):
    spec: str = Field(description="Spack spec of the external, e.g. 'libfabric@1.22.0'")
    prefix: str | None = None
    modules: list[str] = Field(default_factory=list)
    buildable: bool = Field(default=False, description="may Spack build this package itself?")


class CompilerPaths(_Strict):
    c: str = Field(description="absolute path of the C compiler")
    cxx: str = Field(description="absolute path of the C++ compiler")
    fortran: str | None = Field(default=None, description="absolute path of the Fortran compiler")


class SpackCompiler(_Strict):
    spec: str = Field(description="compiler spec, e.g. 'gcc@13.3.0'")
    prefix: str | None = Field(
        default=None, description="install prefix; the compilers are <prefix>/bin/<name> "
        "unless 'paths' says otherwise")
    paths: CompilerPaths | None = Field(
        default=None, description="the compiler executables (Spack >= 1.0 needs them: "
        "extra_attributes.compilers)")
    modules: list[str] = Field(default_factory=list)


class SpackRepoPin(_Strict):
    git: str | None = None
    branch: str | None = None
    commit: str | None = None
    tag: str | None = None


class Spack(_Strict):
    version: str | None = Field(default=None, description="Spack release the site uses, e.g. 1.1.0")
    root: str | None = Field(
        default=None, description="where the job finds Spack (its SPACK_ROOT), e.g. "
        "'$HOME/spack'; default: SPACK_ROOT of the shell that runs generate. A batch job "
        "does not inherit the submitting shell's environment on every site (PBS)")
    repos: dict[str, SpackRepoPin] = Field(
        default_factory=dict, description="package repos to pin, e.g. mochi: {commit: ...}"
    )
    compilers: list[SpackCompiler] = Field(default_factory=list)
    externals: list[SpackExternal] = Field(default_factory=list)
    modules: list[str] = Field(default_factory=list, description="modules to load before Spack")
    mirrors: dict[str, str] = Field(default_factory=dict)
    require: dict[str, list[str]] = Field(
        default_factory=dict, description="extra package requirements, e.g. mercury: ['+hwloc']"
    )


class Placement(_Strict):
    """Placement rules the site's MPI imposes on the layout planner."""

    numa_confined_ranks: bool = Field(
        default=False, description="every rank's CPUs must lie in one NUMA domain (HPE Cray "
        "MPICH's NUMA NIC policy rejects a rank that spans domains at MPI_Init)")
    spanning_env: Environment = Field(
        default_factory=dict, description="environment that makes ranks spanning NUMA domains "
        "acceptable (e.g. another MPICH_OFI_NIC_POLICY); without it such a layout is refused")
    notes: str | None = None


class Verified(_Strict):
    """When the profile's decaying facts (queues, modules, versions) were last checked."""

    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$",
                      description="day of the last check, 'YYYY-MM-DD' (quoted)")
    against: list[str] = Field(
        min_length=1, description="what was checked: documentation URLs or upstream files "
        "(with commit), or 'bedrock-deploy probe --site' on a named host")
    not_verified: list[str] = Field(
        default_factory=list, description="facts that could not be checked against a public "
        "source (kept, marked, to be confirmed on the machine)")

    @field_validator("date", mode="before")
    @classmethod
    def _date_text(cls, v: object) -> object:
        return v.isoformat() if isinstance(v, datetime.date) else v

    @field_validator("date")
    @classmethod
    def _real_date(cls, v: str) -> str:
        datetime.date.fromisoformat(v)  # ValueError: not a calendar day
        return v

    @property
    def day(self) -> datetime.date:
        return datetime.date.fromisoformat(self.date)


class EngineKind(StrEnum):
    spack = "spack"
    embedded = "embedded"


class Hooks(_Strict):
    before_modules: list[str] = Field(default_factory=list, description="shell lines")
    before_launch: list[str] = Field(default_factory=list, description="shell lines")
    after: list[str] = Field(default_factory=list, description="shell lines")


class SiteProfile(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="profile name")
    description: str = ""
    extends: str | None = Field(default=None, description="name or path of a profile to inherit")
    node: Node
    nodes: int | None = Field(default=None, ge=1, description="compute nodes in the machine")
    transports: list[Transport] = Field(
        min_length=1, description="transports in order of preference"
    )
    scheduler: Scheduler = Field(default_factory=lambda: Scheduler(type="none"))
    launcher: Launcher
    spack: Spack = Field(default_factory=Spack)
    engine: EngineKind = Field(default=EngineKind.spack, description="spack or embedded")
    env: Environment = Field(default_factory=dict, description="environment for every job")
    placement: Placement = Field(default_factory=Placement)
    hooks: Hooks = Field(default_factory=Hooks)
    verified: Verified | None = Field(
        default=None, description="when and against what the facts were last verified; "
        "generate warns when that is older than six months")
    sources: list[str] = Field(
        default_factory=list, description="where the facts in this profile come from"
    )


def check_site(site: SiteProfile) -> list[Problem]:
    """Cross-field checks pydantic cannot express; paths point into the profile."""
    from bedrock_deploy.topology import core_cpus  # local: topology imports this module

    problems: list[Problem] = []
    node = site.node
    per_core, sib_problems = core_cpus(node)
    problems += sib_problems
    existing = {c for cpus in per_core for c in cpus}

    owner: dict[int, int] = {}
    numa_ids: set[int] = set()
    for i, dom in enumerate(node.numa_domains):
        if dom.id in numa_ids:
            problems.append(Problem(f"NUMA domain id {dom.id} is listed twice",
                                    path=("node", "numa_domains", i, "id"),
                                    hint="give each domain its own id"))
        numa_ids.add(dom.id)
        if dom.socket is not None and dom.socket >= node.sockets:
            problems.append(Problem(
                f"socket {dom.socket} does not exist (the node has {node.sockets})",
                path=("node", "numa_domains", i, "socket"),
                hint=f"use a socket id below {node.sockets}"))
        missing = sorted(set(dom.cpus) - existing)
        if missing:
            problems.append(Problem(
                f"CPU {missing[0]} does not exist on this node"
                + (f" (nor {len(missing) - 1} more)" if len(missing) > 1 else ""),
                path=("node", "numa_domains", i, "cpus"),
                hint=f"the node has CPUs 0-{max(existing)} "
                f"({node.sockets} sockets x {node.cores_per_socket} cores x "
                f"{node.threads_per_core} threads); fix the list or the core counts"))
        for c in dom.cpus:
            if c in owner and owner[c] != dom.id:
                problems.append(Problem(
                    f"CPU {c} is in NUMA domains {owner[c]} and {dom.id}",
                    path=("node", "numa_domains", i, "cpus"),
                    hint="a CPU belongs to exactly one NUMA domain"))
                break
            owner[c] = dom.id
    uncovered = sorted(existing - set(owner))
    if uncovered and not problems:
        problems.append(Problem(
            f"CPU {uncovered[0]} is in no NUMA domain"
            + (f" (nor {len(uncovered) - 1} more)" if len(uncovered) > 1 else ""),
            path=("node", "numa_domains"),
            hint="list every CPU of the node in one numa_domains entry"))

    for i, core in enumerate(node.reserved_cores):
        if core >= node.total_cores:
            problems.append(Problem(
                f"reserved core {core} does not exist (cores are 0-{node.total_cores - 1})",
                path=("node", "reserved_cores", i),
                hint="reserved_cores lists core ids, not hardware-thread ids"))
    for key in ("online_cpus", "allowed_cpus"):
        cpus = getattr(node, key)
        if cpus is not None:
            bad = sorted(set(cpus) - existing)
            if bad:
                problems.append(Problem(f"CPU {bad[0]} does not exist on this node",
                                        path=("node", key),
                                        hint=f"the node has CPUs 0-{max(existing)}"))
    for i, nic in enumerate(node.nics):
        if nic.numa_domain is not None and nic.numa_domain not in numa_ids:
            problems.append(Problem(
                f"NUMA domain {nic.numa_domain} does not exist",
                path=("node", "nics", i, "numa_domain"),
                hint="use one of the ids in node.numa_domains: "
                + ", ".join(str(d) for d in sorted(numa_ids))))
    names: set[str] = set()
    for i, t in enumerate(site.transports):
        if t.name in names:
            problems.append(Problem(f"transport {t.name!r} is listed twice",
                                    path=("transports", i, "name"),
                                    hint="each transport needs its own name"))
        names.add(t.name)
    for i, ext in enumerate(site.spack.externals):
        if ext.prefix is None and not ext.modules:
            problems.append(Problem(
                f"external {ext.spec!r} has neither a prefix nor modules",
                path=("spack", "externals", i),
                hint="Spack finds it by its install prefix or by the modules that load it: "
                "add 'prefix: /path' or 'modules: [name/version]'"))
    for i, comp in enumerate(site.spack.compilers):
        if comp.prefix is None and comp.paths is None:
            problems.append(Problem(
                f"compiler {comp.spec!r} has neither a prefix nor paths: Spack >= 1.0 would "
                "have no C compiler from it (modules alone do not name the executables)",
                path=("spack", "compilers", i),
                hint="add 'prefix: /install/prefix' (compilers in <prefix>/bin) or "
                "'paths: {c: /path/gcc, cxx: /path/g++, fortran: /path/gfortran}'"))
    problems += _queue_problems(site)
    # Which launchers go with which scheduler: each launcher's `schedulers` (and a scheduler's
    # own `launchers`); launching outside an allocation is scheduler 'none'.
    from bedrock_deploy.launch.scheduler import launchers_for

    allowed = launchers_for(site.scheduler.type)
    if site.launcher.type not in allowed:
        problems.append(Problem(
            f"launcher {site.launcher.type!r} does not go with scheduler "
            f"{site.scheduler.type!r}",
            path=("launcher", "type"),
            hint="use one of: " + ", ".join(sorted(allowed))))
    return problems


def _queue_problems(site: SiteProfile) -> list[Problem]:
    problems: list[Problem] = []
    sched = site.scheduler
    for i, q in enumerate(sched.queues):
        if q.max_nodes is not None and q.max_nodes < q.min_nodes:
            problems.append(Problem(
                f"queue {q.name!r} takes {q.min_nodes}-{q.max_nodes} nodes: max_nodes is below "
                "min_nodes", path=("scheduler", "queues", i, "max_nodes"),
                hint="give the node range as the site's queue table shows it"))
        if q.option is QueueOption.qos and sched.type != "slurm":
            problems.append(Problem(
                f"queue {q.name!r} is a QOS, which only Slurm has",
                path=("scheduler", "queues", i, "option"), hint="remove 'option: qos'"))
    if sched.queues and sched.type == "none":
        problems.append(Problem("a queue table needs a scheduler", path=("scheduler", "queues"),
                                hint="set scheduler.type or remove scheduler.queues"))
    return problems
