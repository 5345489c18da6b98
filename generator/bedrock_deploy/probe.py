"""Probe a node's topology (CPUs, cores, sockets, NUMA domains, NICs) into a :class:`Node`.

Two sources, one builder:

* :func:`read_sysfs` reads Linux sysfs/procfs under a root directory (``/`` for this host; tests
  point it at fabricated trees for topologies that cannot exist here):
  ``sys/devices/system/cpu/{online,possible}``, ``cpuN/topology/{physical_package_id,
  thread_siblings_list}``, ``sys/devices/system/node/nodeN/cpulist``, ``proc/self/status``
  (``Cpus_allowed_list``), ``proc/meminfo`` (the node's memory; NUMA ``nodeN/meminfo`` is not the
  machine's memory on every host, see ../shared/reference/hpc-local.md §6), and NICs from
  ``sys/class/{cxi,infiniband,net}`` with ``device/numa_node``.
* :func:`read_hwloc_xml` reads ``lstopo --of xml`` output (hwloc 2.x), e.g. one gathered on a
  compute node, or a synthetic topology.

Both describe each core as the tuple of its hardware-thread CPU ids and hand them to
:func:`build_node`, which numbers cores socket-major (the site-profile convention) and chooses
``sibling_map``: ``stride`` (core c has c, c+C, ...), ``adjacent`` (c*T .. c*T+T-1), or the
explicit per-core list when the numbering is irregular. CPUs that are offline and whose topology
the kernel no longer shows (Linux removes ``cpuN/topology`` on hot-unplug) cannot be placed in a
core: they are left out of the node and reported in :attr:`ProbeResult.notes`.
"""

from __future__ import annotations

import functools
import os
import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from bedrock_deploy.cpulist import CpuListError, format_cpulist, parse_cpulist
from bedrock_deploy.diagnostics import InputError, SourceLocation, fail, printable
from bedrock_deploy.files import read_input_bytes
from bedrock_deploy.limits import MAX_CPU_ID, NODE_CPUS, REPORT_BYTES
from bedrock_deploy.site_profile import Nic, NicKind, Node, NumaDomain

GIB = 1024**3


class ProbeError(Exception):
    """The host (or the hwloc file) cannot be described as a site-profile node."""


@dataclass(frozen=True)
class CoreInfo:
    """One physical core as the OS reports it."""

    package: int  # OS package id (physical_package_id / Package os_index)
    cpus: tuple[int, ...]  # hardware-thread CPU ids, ascending


@dataclass(frozen=True)
class NicInfo:
    name: str
    kind: NicKind
    numa: int | None


@dataclass
class ProbeResult:
    """A probed node and how it was obtained."""

    node: Node
    hostname: str
    source: str  # human-readable: "sysfs under /" or "hwloc XML FILE"
    notes: list[str] = field(default_factory=list)
    cpu_model: str | None = None


# --------------------------------------------------------------------------------------------
# The builder shared by both sources
# --------------------------------------------------------------------------------------------


def _sibling_map(per_core: list[tuple[int, ...]], threads: int) -> str | list[str]:
    total = len(per_core)
    if all(cpus == tuple(c + k * total for k in range(threads)) for c, cpus in enumerate(per_core)):
        return "stride"
    if all(cpus == tuple(c * threads + k for k in range(threads))
           for c, cpus in enumerate(per_core)):
        return "adjacent"
    return [format_cpulist(cpus) for cpus in per_core]


def build_node(
    cores: Iterable[CoreInfo],
    numa_cpus: Mapping[int, Iterable[int]],
    *,
    online: Iterable[int] | None = None,
    allowed: Iterable[int] | None = None,
    memory_gib: float | None = None,
    nics: Iterable[NicInfo] = (),
) -> tuple[Node, list[str]]:
    """A validated :class:`Node` from per-core CPU tuples and NUMA CPU lists, plus notes.

    ``online``/``allowed`` are recorded only when they leave out some described CPU.
    Raises :class:`ProbeError` when the cores cannot be described (uneven sockets or threads).
    """
    notes: list[str] = []
    by_package: dict[int, list[tuple[int, ...]]] = {}
    for core in cores:
        by_package.setdefault(core.package, []).append(tuple(sorted(core.cpus)))
    if not by_package:
        raise ProbeError("no CPU with a known topology was found")
    packages = sorted(by_package)
    if packages != list(range(len(packages))):
        notes.append("package ids " + ",".join(map(str, packages))
                     + " renumbered as sockets 0.." + str(len(packages) - 1))
    per_socket = {len(by_package[p]) for p in packages}
    if len(per_socket) != 1:
        counts = ", ".join(f"package {p}: {len(by_package[p])}" for p in packages)
        raise ProbeError(f"sockets have different numbers of usable cores ({counts}); a site "
                         "profile describes uniform sockets (is a whole core offline?)")
    threads = {len(cpus) for p in packages for cpus in by_package[p]}
    if len(threads) != 1:
        raise ProbeError("cores have different numbers of hardware threads "
                         f"({', '.join(map(str, sorted(threads)))}); hybrid CPUs or partially "
                         "offline SMT siblings cannot be described as threads_per_core")
    t = threads.pop()
    per_core = [cpus for p in packages for cpus in sorted(by_package[p])]
    socket_of_cpu = {c: s for s, p in enumerate(packages) for cpus in by_package[p] for c in cpus}
    described = set(socket_of_cpu)

    domains: list[NumaDomain] = []
    covered: set[int] = set()
    for nid in sorted(numa_cpus):
        cpus = sorted(set(numa_cpus[nid]) & described)
        covered.update(cpus)
        sockets = {socket_of_cpu[c] for c in cpus}
        domains.append(NumaDomain(id=nid, cpus=cpus,
                                  socket=sockets.pop() if len(sockets) == 1 else None))
    if not domains:
        domains = [NumaDomain(id=0, cpus=sorted(described),
                              socket=0 if len(packages) == 1 else None)]
        covered = set(described)
        notes.append("no NUMA information: one domain 0 holds every CPU")
    elif covered != described:
        missing = sorted(described - covered)
        raise ProbeError(f"CPUs {format_cpulist(missing)} are in no NUMA domain")

    online_set = set(online) if online is not None else None
    allowed_set = set(allowed) if allowed is not None else None
    node_nics: list[Nic] = []
    numa_ids = {d.id for d in domains}
    for nic in nics:
        numa = nic.numa
        if numa is None and len(domains) == 1:
            numa = domains[0].id  # one NUMA domain: the locality is not in doubt
        if numa is not None and numa not in numa_ids:
            notes.append(f"NIC {nic.name}: NUMA node {numa} unknown, locality dropped")
            numa = None
        node_nics.append(Nic(name=nic.name, kind=nic.kind, numa_domain=numa))

    try:
        node = Node(
            sockets=len(packages),
            cores_per_socket=per_socket.pop(),
            threads_per_core=t,
            sibling_map=_sibling_map(per_core, t),  # type: ignore[arg-type]
            numa_domains=domains,
            online_cpus=sorted(online_set & described)
            if online_set is not None and not described <= online_set else None,
            allowed_cpus=sorted(allowed_set & described)
            if allowed_set is not None and not described <= allowed_set else None,
            memory_gib=memory_gib,
            nics=node_nics,
        )
    except ValidationError as err:  # pragma: no cover - build_node always feeds valid values
        raise ProbeError(f"probed topology is not a valid node: {err}") from None
    return node, notes


# --------------------------------------------------------------------------------------------
# sysfs
# --------------------------------------------------------------------------------------------


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _read_cpulist(path: Path) -> list[int] | None:
    text = _read(path)
    if text is None:
        return None
    try:
        return parse_cpulist(text)
    except CpuListError as err:
        raise ProbeError(f"{path}: {err}") from None


def _numa_node_of(device: Path, root: Path) -> int | None:
    """``numa_node`` of a device or of the nearest parent device that has one (virtio -> PCI),
    looking no higher than ``root/sys/devices``."""
    try:
        current = device.resolve(strict=True)
        top = (root / "sys/devices").resolve()
    except OSError:
        return None
    while current != top and current.is_relative_to(top):
        text = _read(current / "numa_node")
        if text is not None:
            try:
                value = int(text)
            except ValueError:
                return None
            return value if value >= 0 else None
        current = current.parent
    return None


_IB_KINDS = (("hfi1", NicKind.psm2), ("efa", NicKind.efa))


def _ib_kind(name: str) -> NicKind:
    for prefix, kind in _IB_KINDS:
        if name.startswith(prefix):
            return kind
    return NicKind.verbs


def _sysfs_nics(root: Path) -> list[NicInfo]:
    nics: list[NicInfo] = []
    cls = root / "sys/class"
    for kind_dir, kind_of in (("cxi", lambda _n: NicKind.cxi), ("infiniband", _ib_kind)):
        d = cls / kind_dir
        if d.is_dir():
            for entry in sorted(d.iterdir(), key=lambda p: p.name):
                nics.append(NicInfo(entry.name, kind_of(entry.name),
                                    _numa_node_of(entry / "device", root)))
    net = cls / "net"
    if net.is_dir():
        for entry in sorted(net.iterdir(), key=lambda p: p.name):
            device = entry / "device"
            if not device.exists():
                continue  # lo, bridges, ifb, veth...: virtual interfaces have no device
            try:
                if "/virtual/" in str(entry.resolve()):
                    continue
            except OSError:
                continue
            # IPoIB (ib0) and Slingshot Ethernet (hsn0) share their device with an
            # infiniband / cxi entry listed above: the fabric NIC is already recorded.
            if (device / "infiniband").exists() or (device / "cxi").exists():
                continue
            nics.append(NicInfo(entry.name, NicKind.tcp, _numa_node_of(device, root)))
    return nics


def _allowed_from_status(root: Path) -> list[int] | None:
    text = _read(root / "proc/self/status")
    if text is not None:
        m = re.search(r"^Cpus_allowed_list:\s*(\S+)", text, re.MULTILINE)
        if m:
            try:
                return parse_cpulist(m.group(1))
            except CpuListError as err:
                raise ProbeError(f"{root / 'proc/self/status'}: {err}") from None
    if root == Path("/"):
        return sorted(os.sched_getaffinity(0))
    return None


def _memory_gib(root: Path) -> float | None:
    text = _read(root / "proc/meminfo")
    if text is None:
        return None
    m = re.search(r"^MemTotal:\s*(\d+)\s*kB", text, re.MULTILINE)
    return round(int(m.group(1)) * 1024 / GIB, 1) if m else None


def read_sysfs(root: str | Path = "/") -> ProbeResult:
    """Probe the node described by sysfs/procfs under ``root``."""
    root = Path(root)
    cpu_dir = root / "sys/devices/system/cpu"
    possible = _read_cpulist(cpu_dir / "possible") or _read_cpulist(cpu_dir / "present")
    if possible is None:
        raise ProbeError(f"{cpu_dir}: no 'possible' CPU list (is this a Linux sysfs tree?)")
    online_list = _read_cpulist(cpu_dir / "online")
    online = set(online_list) if online_list is not None else set(possible)

    cores: dict[tuple[int, frozenset[int]], CoreInfo] = {}
    unplaced: list[int] = []
    for cpu in possible:
        topo = cpu_dir / f"cpu{cpu}" / "topology"
        package = _read(topo / "physical_package_id")
        siblings = _read_cpulist(topo / "thread_siblings_list")
        if package is None or siblings is None:
            if (cpu_dir / f"cpu{cpu}").is_dir() or cpu in online:
                unplaced.append(cpu)
            continue
        key = (int(package), frozenset(siblings))
        cores.setdefault(key, CoreInfo(package=int(package), cpus=tuple(sorted(siblings))))

    numa: dict[int, list[int]] = {}
    node_dir = root / "sys/devices/system/node"
    if node_dir.is_dir():
        for entry in node_dir.iterdir():
            m = re.fullmatch(r"node(\d+)", entry.name)
            if m:
                numa[int(m.group(1))] = _read_cpulist(entry / "cpulist") or []

    notes: list[str] = []
    if unplaced:
        notes.append(f"CPUs {format_cpulist(unplaced)} are offline and the kernel shows no "
                     "topology for them: they are left out of the node")
    node, build_notes = build_node(
        cores.values(), numa, online=online, allowed=_allowed_from_status(root),
        memory_gib=_memory_gib(root), nics=_sysfs_nics(root))
    model = None
    cpuinfo = _read(root / "proc/cpuinfo")
    if cpuinfo:
        m = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
        model = m.group(1).strip() if m else None
    hostname = (_read(root / "proc/sys/kernel/hostname") if root != Path("/") else None) \
        or (socket.gethostname() if root == Path("/") else root.name)
    return ProbeResult(node=node, hostname=hostname, source=f"sysfs under {root}",
                       notes=notes + build_notes, cpu_model=model)


@functools.lru_cache(maxsize=1)
def probe_host() -> ProbeResult:
    """This host, from its sysfs (cached: the topology does not change while we run)."""
    return read_sysfs("/")


# --------------------------------------------------------------------------------------------
# hwloc XML
# --------------------------------------------------------------------------------------------


def parse_hwloc_bitmap(text: str) -> set[int]:
    """An hwloc bitmap string -> bit indexes.

    32-bit hex words, most significant first, separated by commas; an empty word is zero
    (``0x0fffffff,0xffffff00,,0x000fffff`` has 0 in its third word); a ``0xf...f`` word marks
    an infinite set (dropped).
    """
    value = 0
    words = [w.strip().removeprefix("0x") for w in text.strip().split(",")]
    words = [w for w in words if w != "f...f"]
    while words and words[0].strip("0") == "":
        words.pop(0)  # leading zero words
    if len(words) > NODE_CPUS.value // 32:
        raise ProbeError(NODE_CPUS.exceeded(f"the hwloc bitmap {text[:40]!r}... has bits above "
                                            f"CPU {MAX_CPU_ID}"))
    for w in words:
        try:
            if len(w) > 8:
                raise ValueError(w)
            value = (value << 32) | (int(w, 16) if w else 0)  # an empty word is a zero word
        except ValueError:
            raise ProbeError(f"{text[:60]!r} is not an hwloc bitmap") from None
    out: set[int] = set()
    i = 0
    while value:
        if value & 1:
            out.add(i)
        value >>= 1
        i += 1
    return out


_NET, _OPENFABRICS = "2", "3"  # hwloc_obj_osdev_type_e in hwloc 2.x XML


def read_hwloc_xml(path: str | Path) -> ProbeResult:
    """Probe the node described by an hwloc 2.x XML file (``lstopo --of xml``)."""
    try:
        return _read_hwloc_xml(Path(path))
    except ProbeError as err:
        raise fail(str(err), file=str(path), location=SourceLocation(str(path), 1, 1),
                   hint="give the output of 'lstopo --of xml > FILE' (hwloc 2.x)") from None


def _read_hwloc_xml(p: Path) -> ProbeResult:
    data = read_input_bytes(p, REPORT_BYTES)
    try:
        top = ET.fromstring(data)
    except ET.ParseError as err:
        line, column = err.position
        raise fail(f"not an hwloc XML file: {err}", file=str(p),
                   location=SourceLocation(str(p), max(1, line), column + 1),
                   hint="give the output of 'lstopo --of xml > FILE' (hwloc 2.x)") from None
    try:
        return _hwloc_topology(top, p)
    except (ValueError, TypeError, ValidationError, CpuListError) as err:
        # an attribute that is not a number (os_index="x"), a node no profile can hold
        raise ProbeError(f"unusable hwloc topology: {err}") from None


def _hwloc_topology(top: ET.Element, p: Path) -> ProbeResult:
    machine = top.find("object")
    if top.tag != "topology" or machine is None or machine.get("type") != "Machine":
        raise fail("not an hwloc topology: no <topology><object type='Machine'>", file=str(p),
                   hint="give the output of 'lstopo --of xml > FILE' (hwloc 2.x)")
    parent: dict[ET.Element, ET.Element] = {c: par for par in top.iter() for c in par}

    cores: list[CoreInfo] = []
    numa: dict[int, set[int]] = {}
    numa_mem = 0
    package_ids: dict[ET.Element, int] = {}
    orphan = 0
    for obj in machine.iter("object"):
        otype = obj.get("type")
        if otype == "Package":
            package_ids[obj] = int(obj.get("os_index", len(package_ids)))
        elif otype == "NUMANode":
            numa[int(obj.get("os_index", len(numa)))] = parse_hwloc_bitmap(obj.get("cpuset", "0"))
            numa_mem += int(obj.get("local_memory", "0"))
        elif otype == "Core":
            pus = tuple(sorted(int(pu.get("os_index", "-1")) for pu in obj.iter("object")
                               if pu.get("type") == "PU"))
            anc = parent.get(obj)
            while anc is not None and anc.get("type") != "Package":
                anc = parent.get(anc)
            pkg = package_ids.get(anc, 0) if anc is not None else 0
            if anc is None:
                orphan += 1
            if pus:
                cores.append(CoreInfo(package=pkg, cpus=pus))
    if not cores:
        # Topologies without Core objects (some VMs, 'pu:N' synthetic): one core per PU.
        for obj in machine.iter("object"):
            if obj.get("type") == "PU":
                cores.append(CoreInfo(package=0, cpus=(int(obj.get("os_index", "0")),)))

    nics: list[NicInfo] = []
    numa_with_cpus = {k for k, v in numa.items() if v}
    fabric_parents: set[ET.Element] = set()
    osdevs = [o for o in machine.iter("object") if o.get("type") == "OSDev"]
    for o in osdevs:
        name = o.get("name", "")
        if o.get("osdev_type") == _OPENFABRICS or name.startswith("cxi"):
            kind = NicKind.cxi if name.startswith("cxi") else _ib_kind(name)
            nics.append(NicInfo(name, kind, _hwloc_numa(o, parent, numa_with_cpus)))
            if o in parent:
                fabric_parents.add(parent[o])
    for o in osdevs:
        name = o.get("name", "")
        if o.get("osdev_type") == _NET and not name.startswith("cxi") \
                and parent.get(o) not in fabric_parents:
            nics.append(NicInfo(name, NicKind.tcp, _hwloc_numa(o, parent, numa_with_cpus)))

    cpuset = parse_hwloc_bitmap(machine.get("cpuset", "0"))
    allowed = parse_hwloc_bitmap(machine.get("allowed_cpuset", machine.get("cpuset", "0")))
    complete = parse_hwloc_bitmap(machine.get("complete_cpuset", machine.get("cpuset", "0")))
    notes: list[str] = []
    offline = sorted(complete - cpuset)
    if offline:
        notes.append(f"CPUs {format_cpulist(offline)} are offline (in complete_cpuset only): "
                     "they are left out of the node")
    notes.append("memory_gib is the sum of the NUMA nodes' local_memory")
    node, build_notes = build_node(
        cores, {k: sorted(v) for k, v in numa.items()}, online=cpuset, allowed=allowed,
        memory_gib=round(numa_mem / GIB, 1) if numa_mem else None, nics=nics)
    infos = {i.get("name"): i.get("value") for i in machine.findall("info")}
    model = next((i.get("value") for o in package_ids for i in o.findall("info")
                  if i.get("name") == "CPUModel"), None)
    return ProbeResult(node=node, hostname=infos.get("HostName") or p.stem,
                       source=f"hwloc XML {p}", notes=notes + build_notes, cpu_model=model)


def _hwloc_numa(obj: ET.Element, parent: Mapping[ET.Element, ET.Element],
                with_cpus: set[int]) -> int | None:
    """NUMA node of an I/O object: the nodeset of its nearest ancestor that has one; when
    that holds several nodes (DDR + CPU-less HBM under one group), the one with CPUs."""
    anc = parent.get(obj)
    while anc is not None:
        nodeset = anc.get("nodeset")
        if nodeset is not None:
            ids = parse_hwloc_bitmap(nodeset)
            if len(ids) > 1:
                ids &= with_cpus
            return min(ids) if len(ids) == 1 else None  # whole machine: locality unknown
        anc = parent.get(anc)
    return None


def probe(hwloc_xml: str | Path | None = None, sysfs_root: str | Path = "/") -> ProbeResult:
    """Probe from an hwloc XML file if given, else from sysfs; ProbeError -> InputError."""
    if hwloc_xml is not None:
        return read_hwloc_xml(hwloc_xml)
    try:
        return read_sysfs(sysfs_root)
    except ProbeError as err:
        raise fail(f"cannot probe this host: {err}", file=str(sysfs_root),
                   hint="probe another node with 'lstopo --of xml > FILE' and pass "
                   "--hwloc-xml FILE, or write node: in the profile by hand") from None


# --------------------------------------------------------------------------------------------
# A site profile for the probed host
# --------------------------------------------------------------------------------------------

# Default transports per NIC kind, fastest first (mochi-stack.md §4 platform table and rule 1).
_DEFAULT_TRANSPORTS: dict[NicKind, dict[str, object]] = {
    NicKind.cxi: {"name": "cxi", "protocol": "cxi://", "nic_kind": "cxi", "provider": "cxi",
                  "fabrics": ["cxi"]},
    NicKind.verbs: {"name": "verbs", "protocol": "verbs://", "nic_kind": "verbs",
                    "provider": "verbs", "fabrics": ["rxm", "verbs"],
                    "notes": "needs IPoIB configured on the device (mochi-margo#235)"},
    NicKind.opx: {"name": "opx", "protocol": "ofi+opx://", "nic_kind": "opx", "provider": "opx",
                  "fabrics": ["opx"]},
    NicKind.psm2: {"name": "psm2", "protocol": "ofi+psm2://", "nic_kind": "psm2",
                   "provider": "psm2", "fabrics": ["psm2"],
                   "env": {"PSM2_MULTI_EP": "1", "FI_PSM2_DISCONNECT": "1"}},
    NicKind.efa: {"name": "efa", "protocol": "ofi+efa://", "nic_kind": "efa", "provider": "efa",
                  "fabrics": ["efa"]},
}
_KIND_ORDER = [NicKind.cxi, NicKind.verbs, NicKind.opx, NicKind.psm2, NicKind.efa]


@dataclass
class ReportedTransports:
    """What ``--fi-info`` / ``--margo-info`` files say, when given (parsed by
    :class:`bedrock_deploy.transports.HostReports`, the parsers transport selection uses)."""

    fi_providers: set[str] | None = None  # libfabric core providers fi_info lists (tcp, cxi)
    margo_usable: set[str] | None = None  # margo-info addresses that initialised (YES)
    notes: list[str] = field(default_factory=list)

    def rejects(self, protocol: str) -> str | None:
        """Why the reports rule ``protocol`` out on the probed host, or None."""
        from bedrock_deploy.transports import parse_protocol

        spec = parse_protocol(protocol)
        provider = spec.ofi_provider
        if self.fi_providers is not None and provider is not None \
                and provider not in self.fi_providers:
            return f"fi_info does not list provider {provider}"
        if self.margo_usable is not None \
                and not set(spec.margo_info_addresses()) & self.margo_usable:
            return f"margo-info could not initialise {spec.address}"
        return None


def read_reports(fi_info: str | Path | None, margo_info: str | Path | None) -> ReportedTransports:
    """Parse the given fi_info / margo-info outputs (bad files are located InputErrors)."""
    out = ReportedTransports()
    if fi_info is None and margo_info is None:
        return out
    from bedrock_deploy.transports import HostReports

    reports = HostReports.from_files(
        margo_info=Path(margo_info) if margo_info is not None else None,
        fi_info=Path(fi_info) if fi_info is not None else None)
    out.notes += list(reports.notes)
    if reports.fi_info is not None:
        out.fi_providers = {e.core_provider for e in reports.fi_info.entries}
        out.notes.append(f"fi_info ({fi_info}) lists providers "
                         + (", ".join(sorted(out.fi_providers)) or "none"))
    if reports.fi_providers is not None:
        out.notes.append(f"fi_info -l ({fi_info}) lists providers libfabric was built with "
                         f"({', '.join(reports.fi_providers.names)}), not what works: "
                         "no transport dropped for it")
    if reports.margo_info is not None:
        out.margo_usable = {r.addr for r in reports.margo_info.rows if r.usable}
        out.notes.append(f"margo-info ({margo_info}) initialised "
                         + (", ".join(sorted(out.margo_usable)) or "nothing"))
    return out


def _default_transports(node: Node, reported: ReportedTransports) -> list[dict[str, object]]:
    kinds = {n.kind for n in node.nics}
    out: list[dict[str, object]] = [dict(_DEFAULT_TRANSPORTS[k]) for k in _KIND_ORDER
                                    if k in kinds]
    tcp: dict[str, object] = {"name": "tcp", "protocol": "ofi+tcp://", "nic_kind": "tcp",
                              "provider": "tcp", "fabrics": ["tcp", "rxm"]}
    tcp_nics = [n.name for n in node.nics if n.kind == NicKind.tcp]
    if tcp_nics:
        # Hosts with several interfaces hang in libfabric tcp unless told which one
        # (ofiwg/libfabric#12480; mochi-stack.md rule 15).
        tcp["env"] = {"FI_TCP_IFACE": tcp_nics[0]}
    out.append(tcp)
    out.append({"name": "sm", "protocol": "na+sm://", "scope": "intra-node"})
    kept = []
    for t in out:
        why = reported.rejects(str(t["protocol"]))
        if why is not None:
            reported.notes.append(f"transport {t['name']} dropped: {why}")
            continue
        kept.append(t)
    return kept


def _profile_name(hostname: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", hostname.split(".")[0]).strip("-")
    return name or "probed-host"


def profile_document(
    result: ProbeResult,
    *,
    name: str | None = None,
    fi_info: str | Path | None = None,
    margo_info: str | Path | None = None,
    when: str | None = None,
) -> tuple[dict[str, object], str]:
    """The site profile (plain data) for a probed node, and the header comment for it.

    The data validates as a :class:`~bedrock_deploy.site_profile.SiteProfile` (callers check
    with :func:`bedrock_deploy.site_profile.check_site` before writing it anywhere).
    """
    reported = read_reports(fi_info, margo_info)
    node_data = result.node.model_dump(mode="json", exclude_none=True)
    if not node_data.get("gpus"):
        node_data.pop("gpus", None)
    transports = _default_transports(result.node, reported)
    if not transports:
        raise fail("no transport is left after applying the --fi-info/--margo-info reports",
                   hint="; ".join(reported.notes) or None)
    sources = [f"bedrock-deploy probe: {result.source}"]
    sources += [f"fi_info output: {fi_info}"] if fi_info else []
    sources += [f"margo-info output: {margo_info}"] if margo_info else []
    data: dict[str, object] = {
        "name": name or _profile_name(result.hostname),
        "description": f"host {result.hostname}, probed"
        + (f" ({result.cpu_model})" if result.cpu_model else ""),
        "node": node_data,
        "transports": transports,
        "scheduler": {"type": "none"},
        "launcher": {"type": "mpirun-openmpi"},
        "engine": "embedded",
        "sources": sources,
    }
    header = [
        f"Site profile of host {printable(repr(result.hostname))}, written by "
        "`bedrock-deploy probe`"
        + (f" on {when}" if when else "") + ".",
        f"Topology read from {printable(result.source)}.",
        "Review before use: reserved_cores (cores kept for the OS) cannot be probed; scheduler,",
        "launcher, engine and spack are single-host defaults; transports follow the NIC kinds",
        "found (the fastest fabric first, then ofi+tcp, then na+sm within one node).",
        # comment lines: what came from inputs (file and host names) cannot start a YAML line
        *[f"note: {printable(n)}" for n in result.notes + reported.notes],
    ]
    return data, "\n".join(header)


def render_profile_yaml(data: Mapping[str, object], header: str) -> str:
    """YAML text of a profile document: block style, CPU lists and small maps inline."""
    import io

    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    def flow_map(d: Mapping[str, object]) -> CommentedMap:
        m = CommentedMap(d)
        m.fa.set_flow_style()
        return m

    def flow_seq(items: Iterable[object]) -> CommentedSeq:
        s = CommentedSeq(items)
        s.fa.set_flow_style()
        return s

    doc = CommentedMap()
    for key, value in data.items():
        if key == "node" and isinstance(value, Mapping):
            node = CommentedMap()
            for k, v in value.items():
                if k in ("numa_domains", "nics", "gpus") and isinstance(v, list):
                    node[k] = CommentedSeq(flow_map(x) for x in v)
                elif isinstance(v, list):
                    node[k] = flow_seq(v)
                else:
                    node[k] = v
            doc[key] = node
        elif key == "transports" and isinstance(value, list):
            seq = CommentedSeq()
            for t in value:
                tm = CommentedMap()
                for k, v in t.items():
                    tm[k] = flow_seq(v) if isinstance(v, list) else \
                        flow_map(v) if isinstance(v, Mapping) else v
                seq.append(tm)
            doc[key] = seq
        elif isinstance(value, Mapping):
            doc[key] = CommentedMap(value)
        else:
            doc[key] = value
    if header:
        doc.yaml_set_start_comment(header)
    yaml = YAML()
    yaml.width = 100
    yaml.indent(mapping=2, sequence=4, offset=2)
    buf = io.StringIO()
    yaml.dump(doc, buf)
    return buf.getvalue()


__all__ = [
    "CoreInfo", "InputError", "NicInfo", "ProbeError", "ProbeResult", "ReportedTransports",
    "build_node", "parse_hwloc_bitmap", "probe", "probe_host", "profile_document",
    "read_hwloc_xml", "read_reports", "read_sysfs", "render_profile_yaml",
]
