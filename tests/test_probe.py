"""Host probing: this machine's real sysfs, hwloc XML fixtures, fabricated sysfs trees."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from bedrock_deploy.cli import main
from bedrock_deploy.cpulist import format_cpulist, parse_cpulist
from bedrock_deploy.diagnostics import InputError
from bedrock_deploy.probe import (
    CoreInfo,
    ProbeError,
    build_node,
    parse_hwloc_bitmap,
    probe,
    read_hwloc_xml,
    read_sysfs,
)
from bedrock_deploy.site_profile import NicKind
from bedrock_deploy.sites import load_site
from bedrock_deploy.topology import Topology, core_cpus

HWLOC = Path(__file__).parent / "data" / "hwloc"


# ---------------------------------------------------------------- this machine, for real


def _lscpu() -> list[dict[str, int | None]]:
    out = subprocess.run(["lscpu", "-p=CPU,CORE,SOCKET,NODE"], capture_output=True, text=True,
                         check=True).stdout
    rows = []
    for line in out.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        cpu, core, sock, node = (line.split(",") + [""] * 4)[:4]
        rows.append({"cpu": int(cpu), "core": int(core), "socket": int(sock),
                     "node": int(node) if node else None})
    return rows


@pytest.mark.skipif(shutil.which("lscpu") is None, reason="needs util-linux lscpu")
def test_probe_of_this_host_matches_lscpu_and_sys() -> None:
    result = read_sysfs("/")
    node = result.node
    rows = _lscpu()  # lscpu -p lists the online CPUs
    online = parse_cpulist(Path("/sys/devices/system/cpu/online").read_text())
    assert sorted(r["cpu"] for r in rows) == online

    per_core, problems = core_cpus(node)
    assert problems == []
    described = sorted(c for cpus in per_core for c in cpus)
    assert described == online
    # cores: lscpu's (socket, core) groups are exactly the probed cores
    groups: dict[tuple[int, int], list[int]] = {}
    for r in rows:
        groups.setdefault((int(r["socket"]), int(r["core"])), []).append(int(r["cpu"]))
    assert sorted(tuple(sorted(g)) for g in groups.values()) == sorted(per_core)
    assert node.sockets == len({r["socket"] for r in rows})
    assert node.sockets * node.cores_per_socket == len(groups)
    # NUMA domains: same CPU sets as lscpu's NODE column and /sys/devices/system/node
    lscpu_numa: dict[int, set[int]] = {}
    for r in rows:
        lscpu_numa.setdefault(int(r["node"] or 0), set()).add(int(r["cpu"]))
    probed = {d.id: set(d.cpus) for d in node.numa_domains if d.cpus}
    assert probed == lscpu_numa
    for d in node.numa_domains:
        sys_list = Path(f"/sys/devices/system/node/node{d.id}/cpulist")
        if sys_list.exists():
            assert set(d.cpus) == set(parse_cpulist(sys_list.read_text())) & set(online)
    # cpuset and memory come from this process and /proc/meminfo (not NUMA meminfo)
    allowed = sorted(os.sched_getaffinity(0))
    assert node.allowed_cpus == (None if set(described) <= set(allowed) else allowed)
    kib = int(re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text()).group(1))
    assert node.memory_gib == round(kib / 1024**2, 1)
    # the NICs are real, non-virtual interfaces of this host
    for nic in node.nics:
        assert (Path("/sys/class/net") / nic.name).exists() \
            or (Path("/sys/class/infiniband") / nic.name).exists() \
            or (Path("/sys/class/cxi") / nic.name).exists()
        assert "virtual" not in os.path.realpath(f"/sys/class/net/{nic.name}")
    assert "lo" not in {n.name for n in node.nics}


def test_probe_command_writes_a_profile_that_loads(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "me.yaml"
    assert main(["probe", "-o", str(out), "--name", "me"]) == 0
    text = out.read_text()
    assert text.startswith("# Site profile of host ")
    assert "written by `bedrock-deploy probe`" in text
    site = load_site(out).profile
    assert site.name == "me"
    assert site.node == read_sysfs("/").node
    assert [t.protocol for t in site.transports][-2:] == ["ofi+tcp://", "na+sm://"]
    assert "wrote" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind


def test_probe_command_json_and_bad_output_dir(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "--hwloc-xml", str(HWLOC / "aurora-like.xml"), "--json"]) == 0
    assert '"sibling_map": "stride"' in capsys.readouterr().out
    missing = tmp_path / "no" / "such" / "dir" / "p.yaml"
    assert main(["probe", "-o", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"{missing}: error: (top level): cannot write here" in err
    assert not missing.parent.exists()


# ---------------------------------------------------------------- hwloc XML fixtures


def test_hwloc_two_socket_adjacent_siblings() -> None:
    node = read_hwloc_xml(HWLOC / "two-socket-smt.xml").node
    assert (node.sockets, node.cores_per_socket, node.threads_per_core) == (2, 4, 2)
    assert node.sibling_map == "adjacent"
    assert [(d.id, format_cpulist(d.cpus), d.socket) for d in node.numa_domains] == \
        [(0, "0-7", 0), (1, "8-15", 1)]
    assert Topology.from_node(node).cores[5].cpus == (10, 11)


def test_hwloc_aurora_like_stride_siblings() -> None:
    node = read_hwloc_xml(HWLOC / "aurora-like.xml").node
    assert (node.sockets, node.cores_per_socket, node.threads_per_core) == (2, 52, 2)
    assert node.sibling_map == "stride"
    assert [format_cpulist(d.cpus) for d in node.numa_domains] == \
        ["0-51,104-155", "52-103,156-207"]
    topo = Topology.from_node(node)
    assert topo.cores[0].cpus == (0, 104)
    assert topo.cores[52].cpus == (52, 156) and topo.cores[52].socket == 1
    assert node.online_cpus is None and node.allowed_cpus is None


def test_hwloc_holes_give_explicit_sibling_map_and_cpuset() -> None:
    node = read_hwloc_xml(HWLOC / "holes-restricted.xml").node
    assert (node.sockets, node.cores_per_socket, node.threads_per_core) == (2, 3, 2)
    assert node.sibling_map == [[0, 8], [2, 10], [3, 11], [4, 12], [6, 14], [7, 15]]
    assert node.allowed_cpus == [2, 3, 4, 10, 11, 12]
    assert [format_cpulist(d.cpus) for d in node.numa_domains] == \
        ["0,2-3,8,10-11", "4,6-7,12,14-15"]
    topo = Topology.from_node(node)
    assert [c.index for c in topo.usable_cores] == [1, 2, 3]  # primaries 2, 3, 4 are allowed


def test_hwloc_nic_locality_and_no_duplicate_ethernet() -> None:
    node = read_hwloc_xml(HWLOC / "polaris-like-nics.xml").node
    assert [(n.name, n.kind, n.numa_domain) for n in node.nics] == \
        [("cxi0", NicKind.cxi, 0), ("cxi1", NicKind.cxi, 2)]
    assert [format_cpulist(d.cpus) for d in node.numa_domains] == \
        ["0-7,32-39", "8-15,40-47", "16-23,48-55", "24-31,56-63"]
    assert node.sibling_map == "stride"


def test_hwloc_real_file_of_this_vm() -> None:
    result = read_hwloc_xml(HWLOC / "debian12-vm.xml")
    node = result.node
    assert (node.sockets, node.cores_per_socket, node.threads_per_core) == (1, 2, 1)
    assert [(n.name, n.kind, n.numa_domain) for n in node.nics] == [("eth0", NicKind.tcp, 0)]
    assert result.hostname == "vm" and result.cpu_model == "AMD EPYC"


def test_hwloc_bad_files_are_located(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<topology><object type='Machine'")
    assert main(["probe", "--hwloc-xml", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{bad}:1:")  # located: the line and column expat stopped at
    assert ": error: (top level): not an hwloc XML file:" in err
    assert "lstopo --of xml" in err
    with pytest.raises(InputError, match="file not found"):
        read_hwloc_xml(tmp_path / "missing.xml")


def test_hwloc_bitmaps() -> None:
    assert parse_hwloc_bitmap("0x00000003") == {0, 1}
    assert parse_hwloc_bitmap("0x00000001,0x00000000") == {32}
    assert parse_hwloc_bitmap("0x1,,0x1") == {0, 64}  # an empty word is a zero word
    assert parse_hwloc_bitmap("0xf...f,0x00000005") == {0, 2}
    with pytest.raises(ProbeError):
        parse_hwloc_bitmap("0xzz")


# ---------------------------------------------------------------- fabricated sysfs trees


def make_sysfs(
    root: Path,
    cores: Sequence[tuple[int, Sequence[int]]],  # (package, sibling CPUs) of each online core
    *,
    possible: str | None = None,
    online: str | None = None,
    numa: Mapping[int, str] | None = None,
    allowed: str | None = None,
    mem_kib: int = 64 * 1024**2,
    nics: Sequence[tuple[str, str, int]] = (),  # (class, name, numa_node)
) -> Path:
    """A minimal Linux sysfs/procfs tree under ``root``, laid out as the kernel does it."""
    cpu_dir = root / "sys/devices/system/cpu"
    cpu_dir.mkdir(parents=True)
    every = sorted(c for _, sib in cores for c in sib)
    (cpu_dir / "possible").write_text((possible or format_cpulist(every)) + "\n")
    (cpu_dir / "online").write_text((online or format_cpulist(every)) + "\n")
    for package, siblings in cores:
        for c in siblings:
            topo = cpu_dir / f"cpu{c}" / "topology"
            topo.mkdir(parents=True)
            (topo / "physical_package_id").write_text(f"{package}\n")
            (topo / "thread_siblings_list").write_text(format_cpulist(siblings) + "\n")
    for c in parse_cpulist(possible or "") if possible else []:
        (cpu_dir / f"cpu{c}").mkdir(exist_ok=True)  # offline CPUs keep their directory
    if numa is not None:
        for nid, cpus in numa.items():
            d = root / f"sys/devices/system/node/node{nid}"
            d.mkdir(parents=True)
            (d / "cpulist").write_text(cpus + "\n")
            # NUMA meminfo is *not* the node's memory on every host (docs/platform-notes.md)
            (d / "meminfo").write_text(f"Node {nid} MemTotal:       1234 kB\n")
    proc = root / "proc/self"
    proc.mkdir(parents=True)
    status = "Name:\tpython3\n" + (f"Cpus_allowed_list:\t{allowed}\n" if allowed else "")
    (proc / "status").write_text(status)
    (root / "proc/meminfo").write_text(f"MemTotal:       {mem_kib} kB\nMemFree: 1 kB\n")
    (root / "proc/sys/kernel").mkdir(parents=True)
    (root / "proc/sys/kernel/hostname").write_text("fab\n")
    for i, (cls, name, numa_node) in enumerate(nics):
        pci = root / f"sys/devices/pci0000:00/0000:00:{i + 2:02x}.0"
        pci.mkdir(parents=True, exist_ok=True)
        (pci / "numa_node").write_text(f"{numa_node}\n")
        cls_dir = root / "sys/class" / cls
        cls_dir.mkdir(parents=True, exist_ok=True)
        if cls == "net":
            # virtio-style: the interface's device is a child of the PCI function, which is
            # the one holding numa_node (as for eth0 on this VM)
            virtio = pci / "virtio0"
            dev = virtio / "net" / name
            dev.mkdir(parents=True)
            (dev / "device").symlink_to(os.path.relpath(virtio, dev))
        else:
            dev = pci / cls / name
            dev.mkdir(parents=True)
            (dev / "device").symlink_to(os.path.relpath(pci, dev))
            (pci / cls).mkdir(exist_ok=True)
        (cls_dir / name).symlink_to(os.path.relpath(dev, cls_dir))
    virtual = root / "sys/devices/virtual/net/lo"
    virtual.mkdir(parents=True)
    (root / "sys/class/net").mkdir(parents=True, exist_ok=True)
    (root / "sys/class/net/lo").symlink_to(os.path.relpath(virtual, root / "sys/class/net"))
    return root


def _stride_cores(sockets: int, per_socket: int, threads: int) -> list[tuple[int, list[int]]]:
    total = sockets * per_socket
    return [(c // per_socket, [c + k * total for k in range(threads)]) for c in range(total)]


def test_sysfs_aurora_like_with_nics(tmp_path: Path) -> None:
    root = make_sysfs(
        tmp_path, _stride_cores(2, 4, 2), numa={0: "0-3,8-11", 1: "4-7,12-15"},
        mem_kib=32 * 1024**2,
        nics=[("cxi", "cxi0", 0), ("cxi", "cxi1", 1), ("infiniband", "mlx5_0", 1),
              ("infiniband", "hfi1_0", 0), ("net", "eth0", 1)])
    result = read_sysfs(root)
    node = result.node
    assert result.hostname == "fab"
    assert (node.sockets, node.cores_per_socket, node.threads_per_core) == (2, 4, 2)
    assert node.sibling_map == "stride"
    assert node.memory_gib == 32.0  # /proc/meminfo, not the NUMA meminfo (1234 kB)
    assert [(n.name, n.kind, n.numa_domain) for n in node.nics] == [
        ("cxi0", NicKind.cxi, 0), ("cxi1", NicKind.cxi, 1), ("hfi1_0", NicKind.psm2, 0),
        ("mlx5_0", NicKind.verbs, 1), ("eth0", NicKind.tcp, 1)]
    assert node.online_cpus is None and node.allowed_cpus is None


def test_sysfs_offline_cpus_without_topology_are_left_out(tmp_path: Path) -> None:
    # 1 socket x 4 cores, adjacent siblings; core 3 (CPUs 6, 7) hot-unplugged: Linux removes
    # cpuN/topology of offline CPUs, so nothing tells where they belong.
    cores = [(0, [0, 1]), (0, [2, 3]), (0, [4, 5])]
    root = make_sysfs(tmp_path, cores, possible="0-7", online="0-5", numa={0: "0-5"})
    result = read_sysfs(root)
    assert result.node.cores_per_socket == 3
    assert result.node.sibling_map == "adjacent"
    assert result.notes[0] == ("CPUs 6-7 are offline and the kernel shows no topology for "
                               "them: they are left out of the node")


def test_sysfs_partly_offline_smt_is_refused_with_a_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cores = [(0, [0, 1]), (0, [2, 3]), (0, [4])]  # CPU 5, sibling of 4, is offline
    root = make_sysfs(tmp_path, cores, possible="0-5", online="0-4", numa={0: "0-4"})
    with pytest.raises(ProbeError, match="different numbers of hardware threads"):
        read_sysfs(root)
    assert main(["probe", "--sysfs-root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0] == (
        f"{root}: error: (top level): cannot probe this host: cores have different numbers "
        "of hardware threads (1, 2); hybrid CPUs or partially offline SMT siblings cannot be "
        "described as threads_per_core")
    assert "--hwloc-xml FILE" in err


def test_sysfs_cpu_ids_with_holes(tmp_path: Path) -> None:
    cores = [(0, [c]) for c in range(4)] + [(1, [c]) for c in range(8, 12)]
    root = make_sysfs(tmp_path, cores, numa={0: "0-3", 1: "8-11"})
    node = read_sysfs(root).node
    assert (node.sockets, node.cores_per_socket, node.threads_per_core) == (2, 4, 1)
    assert node.sibling_map == [[0], [1], [2], [3], [8], [9], [10], [11]]
    assert Topology.from_node(node).cores[4].socket == 1


def test_sysfs_irregular_siblings_and_restricted_cpuset(tmp_path: Path) -> None:
    cores = [(0, [0, 3]), (0, [1, 2]), (1, [4, 7]), (1, [5, 6])]
    root = make_sysfs(tmp_path, cores, numa={0: "0-3", 1: "4-7"}, allowed="1-2,5")
    node = read_sysfs(root).node
    assert node.sibling_map == [[0, 3], [1, 2], [4, 7], [5, 6]]
    assert node.allowed_cpus == [1, 2, 5]
    topo = Topology.from_node(node)
    assert [c.index for c in topo.usable_cores] == [1, 3]
    assert topo.usable_cpus(topo.cores[1]) == (1, 2)


def test_sysfs_package_ids_renumbered_and_numa_less_kernel(tmp_path: Path) -> None:
    cores = [(2, [0]), (2, [1]), (5, [2]), (5, [3])]
    root = make_sysfs(tmp_path, cores)  # no sys/devices/system/node at all
    result = read_sysfs(root)
    assert result.node.sockets == 2
    assert [format_cpulist(d.cpus) for d in result.node.numa_domains] == ["0-3"]
    assert "package ids 2,5 renumbered as sockets 0..1" in result.notes
    assert "no NUMA information: one domain 0 holds every CPU" in result.notes


def test_sysfs_not_linux(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no 'possible' CPU list"):
        probe(sysfs_root=tmp_path)


def test_build_node_rejects_uneven_sockets() -> None:
    with pytest.raises(ProbeError, match=r"package 0: 2, package 1: 1"):
        build_node([CoreInfo(0, (0,)), CoreInfo(0, (1,)), CoreInfo(1, (2,))], {0: [0, 1, 2]})


def test_probe_subprocess_has_no_traceback_on_bad_input(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "bedrock_deploy", "probe", "--hwloc-xml",
                           str(tmp_path / "nope.xml")], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{tmp_path / 'nope.xml'}: error: (top level): file not found" in proc.stderr


# ---------------------------------------------------------------- --fi-info / --margo-info

TRANSPORTS = Path(__file__).parent / "data" / "transports"


def _protocols(profile: Path) -> list[str]:
    return [t.protocol for t in load_site(profile).profile.transports]


def test_probe_keeps_transports_the_reports_accept(tmp_path: Path) -> None:
    out = tmp_path / "slingshot.yaml"
    assert main(["probe", "--hwloc-xml", str(HWLOC / "polaris-like-nics.xml"),
                 "--fi-info", str(TRANSPORTS / "slingshot-node.fi_info.txt"),
                 "--margo-info", str(TRANSPORTS / "slingshot-node.margo-info.txt"),
                 "-o", str(out)]) == 0
    assert _protocols(out) == ["cxi://", "ofi+tcp://", "na+sm://"]
    site = load_site(out).profile
    assert site.sources[1:] == [f"fi_info output: {TRANSPORTS / 'slingshot-node.fi_info.txt'}",
                                "margo-info output: "
                                f"{TRANSPORTS / 'slingshot-node.margo-info.txt'}"]
    assert "# note: fi_info (" in out.read_text()


def test_probe_drops_what_margo_info_cannot_initialise(tmp_path: Path) -> None:
    out = tmp_path / "novni.yaml"
    assert main(["probe", "--hwloc-xml", str(HWLOC / "polaris-like-nics.xml"),
                 "--margo-info", str(TRANSPORTS / "slingshot-node-no-vni.margo-info.txt"),
                 "-o", str(out)]) == 0
    assert _protocols(out) == ["ofi+tcp://", "na+sm://"]
    assert "# note: transport cxi dropped: margo-info could not initialise cxi://" \
        in out.read_text()


def test_probe_drops_providers_fi_info_does_not_list(tmp_path: Path) -> None:
    # this VM's fi_info has tcp/shm/sockets but no cxi: a CXI NIC alone does not make cxi://
    out = tmp_path / "nocxi.yaml"
    assert main(["probe", "--hwloc-xml", str(HWLOC / "polaris-like-nics.xml"),
                 "--fi-info", str(TRANSPORTS / "debian12-vm.fi_info.txt"),
                 "-o", str(out)]) == 0
    assert _protocols(out) == ["ofi+tcp://", "na+sm://"]
    assert "transport cxi dropped: fi_info does not list provider cxi" in out.read_text()


def test_probe_fi_info_l_drops_nothing(tmp_path: Path) -> None:
    out = tmp_path / "l.yaml"
    assert main(["probe", "--hwloc-xml", str(HWLOC / "polaris-like-nics.xml"),
                 "--fi-info", str(TRANSPORTS / "debian12-vm.fi_info-l.txt"),
                 "-o", str(out)]) == 0
    assert _protocols(out) == ["cxi://", "ofi+tcp://", "na+sm://"]
    assert "not what works: no transport dropped for it" in out.read_text()


def test_probe_unreadable_report_is_bad_input(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.txt"
    out = tmp_path / "never.yaml"
    assert main(["probe", "--fi-info", str(missing), "-o", str(out)]) == 2
    assert f"{missing}: error: (top level): cannot read the fi_info file" \
        in capsys.readouterr().err
    assert not out.exists()


def test_sysfs_cpuless_numa_domains_and_offline_cpu_with_topology(tmp_path: Path) -> None:
    # Aurora-like flat memory mode: NUMA nodes 2 and 3 are HBM without CPUs. CPU 3 is offline
    # but its topology is still readable (older kernels): it is described, and marked offline.
    root = make_sysfs(tmp_path, [(0, [0, 1]), (1, [2, 3])], online="0-2",
                      numa={0: "0-1", 1: "2-3", 2: "", 3: ""})
    node = read_sysfs(root).node
    assert [(d.id, format_cpulist(d.cpus), d.socket) for d in node.numa_domains] == \
        [(0, "0-1", 0), (1, "2-3", 1), (2, "", None), (3, "", None)]
    assert node.online_cpus == [0, 1, 2]
    topo = Topology.from_node(node)
    assert topo.numa_domains == (0, 1)
    assert topo.usable_cpus(topo.cores[1]) == (2,)


def test_hwloc_nic_next_to_a_cpuless_numa_node(tmp_path: Path) -> None:
    """A group holding DDR NUMA 0 and a CPU-less HBM NUMA 4 (flat mode): the NIC under it is
    local to domain 0, the one with CPUs."""
    import xml.etree.ElementTree as ET

    tree = ET.parse(HWLOC / "polaris-like-nics.xml")
    group = next(o for o in tree.getroot().iter("object")
                 if o.get("type") == "Group" and o.get("nodeset") == "0x00000001")
    group.set("nodeset", "0x00000011")
    group.insert(0, ET.Element("object", {"type": "NUMANode", "os_index": "4", "cpuset": "0x0",
                                          "nodeset": "0x00000010", "local_memory": "1024"}))
    f = tmp_path / "hbm.xml"
    tree.write(f)
    node = read_hwloc_xml(f).node
    assert [(d.id, format_cpulist(d.cpus)) for d in node.numa_domains][-1] == (4, "")
    assert [(n.name, n.numa_domain) for n in node.nics] == [("cxi0", 0), ("cxi1", 2)]


@pytest.mark.skipif(shutil.which("lstopo-no-graphics") is None, reason="needs hwloc")
def test_live_lstopo_and_sysfs_agree_on_this_host(tmp_path: Path) -> None:
    xml = tmp_path / "here.xml"
    xml.write_text(subprocess.run(["lstopo-no-graphics", "--of", "xml"], capture_output=True,
                                  text=True, check=True).stdout)
    from_hwloc = read_hwloc_xml(xml).node
    from_sysfs = read_sysfs("/").node
    # memory differs by design (NUMA local_memory vs /proc/meminfo, docs/platform-notes.md)
    assert from_hwloc.model_copy(update={"memory_gib": None}) == \
        from_sysfs.model_copy(update={"memory_gib": None})
