"""The layout picture: SVG and terminal renderings of a node's core map.

Nodes are hand-built (Aurora-like, Frontier-like, a small one with offline CPUs) and so are the
layouts, so these tests do not depend on the planner; a last test uses the planner when present.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from rich.console import Console

from bedrock_deploy.cpulist import format_cpulist
from bedrock_deploy.layout_picture import (
    CpuState,
    core_map,
    ink_for,
    rank_colour,
    svg_picture,
    terminal_picture,
)
from bedrock_deploy.plan import Choice, NodeLayout, RankLayout, Role, XstreamPlan
from bedrock_deploy.site_profile import Node
from bedrock_deploy.topology import Topology

SVG = "{http://www.w3.org/2000/svg}"


def aurora_node() -> Node:
    """2 x 52-core Sapphire Rapids, 2 threads, stride siblings, cores 0 and 52 for the OS."""
    return Node.model_validate({
        "sockets": 2, "cores_per_socket": 52, "threads_per_core": 2,
        "numa_domains": [{"id": 0, "socket": 0, "cpus": "0-51,104-155"},
                         {"id": 1, "socket": 1, "cpus": "52-103,156-207"}],
        "reserved_cores": [0, 52],
        "nics": [{"name": f"cxi{i}", "kind": "cxi", "numa_domain": i // 4} for i in range(8)],
    })


def frontier_node() -> Node:
    """1 x 64-core EPYC in NPS4 (4 NUMA domains), the first core of each L3 reserved."""
    return Node.model_validate({
        "sockets": 1, "cores_per_socket": 64, "threads_per_core": 2,
        "numa_domains": [{"id": d, "socket": 0, "cpus": f"{16 * d}-{16 * d + 15},"
                                                          f"{64 + 16 * d}-{64 + 16 * d + 15}"}
                         for d in range(4)],
        "reserved_cores": list(range(0, 64, 8)),
        "nics": [{"name": f"hsn{i}", "kind": "cxi", "numa_domain": i} for i in range(4)],
    })


def small_node() -> Node:
    """1 socket, 4 cores, no SMT; CPU 3 offline; a NIC with no NUMA domain."""
    return Node.model_validate({
        "sockets": 1, "cores_per_socket": 4, "threads_per_core": 1,
        "numa_domains": [{"id": 0, "cpus": "0-3"}],
        "online_cpus": "0-2",
        "nics": [{"name": "eth0", "kind": "tcp"}],
    })


def simple_layout(topo: Topology, ranks: int) -> NodeLayout:
    """Split the usable cores evenly; per rank: M, P, 2 x R, I on its first 5 cores."""
    usable = topo.usable_cores
    per = len(usable) // ranks
    out = []
    for r in range(ranks):
        cores = usable[r * per:(r + 1) * per]
        cpus = tuple(sorted(c for core in cores for c in topo.usable_cpus(core)))
        # with fewer than 5 cores per rank, the hardware threads take the roles in turn
        slots = [cpu for k in range(topo.threads_per_core) for cpu in
                 (core.cpus[k] for core in cores)]
        first = [slots[i % len(slots)] for i in range(5)]
        xs = (XstreamPlan("__primary__", Role.primary, ("__primary__",), (first[0],)),
              XstreamPlan("progress", Role.progress, ("progress",), (first[1],)),
              XstreamPlan("rpc_0", Role.rpc, ("rpc",), (first[2],)),
              XstreamPlan("rpc_1", Role.rpc, ("rpc",), (first[3],)),
              XstreamPlan("io", Role.io, ("io",), (first[4],)))
        out.append(RankLayout(local_rank=r, cpus=cpus,
                              numa=tuple(sorted({c.numa for c in cores})), xstreams=xs))
    return NodeLayout(ranks=tuple(out), pins_threads=True, use_smt=True)


def _cpu_rects(svg_text: str) -> dict[int, ET.Element]:
    root = ET.fromstring(svg_text)
    rects = [el for el in root.iter(f"{SVG}rect") if el.get("id", "").startswith("cpu-")]
    by_cpu = {int(el.get("data-cpu", "-1")): el for el in rects}
    assert len(by_cpu) == len(rects), "a CPU is drawn twice"
    return by_cpu


@pytest.mark.parametrize("make_node, ranks", [(aurora_node, 8), (frontier_node, 8),
                                              (aurora_node, 1), (frontier_node, 56)])
def test_svg_has_one_rect_per_cpu_with_rank_and_role_classes(make_node, ranks):
    topo = Topology.from_node(make_node())
    layout = simple_layout(topo, ranks)
    rects = _cpu_rects(svg_picture(topo, layout, "title"))
    assert set(rects) == set(topo.all_cpus)  # 208 on Aurora, 128 on Frontier

    expected_roles: dict[int, set[str]] = {}
    for rank in layout.ranks:
        for xs in rank.xstreams:
            for cpu in xs.cpus:
                expected_roles.setdefault(cpu, set()).add(xs.role.value)
    for rank in layout.ranks:
        for cpu in rank.cpus:
            classes = rects[cpu].get("class", "").split()
            assert "used" in classes and f"rank-{rank.local_rank}" in classes, (cpu, classes)
            roles = {c.removeprefix("role-") for c in classes if c.startswith("role-")}
            assert roles == expected_roles.get(cpu, set()), (cpu, classes)
    for core in topo.cores:
        for cpu in core.cpus:
            classes = rects[cpu].get("class", "").split()
            if core.index in topo.reserved:
                assert "reserved" in classes and not any(c.startswith("rank-") for c in classes)


def test_svg_colours_each_rank_in_its_own_css_class():
    topo = Topology.from_node(aurora_node())
    root = ET.fromstring(svg_picture(topo, simple_layout(topo, 8)))
    style = root.find(f"{SVG}style")
    assert style is not None and style.text
    fills = {}
    for r in range(8):
        rule = next(line for line in style.text.splitlines() if line.startswith(f".rank-{r} "))
        fills[r] = rule.split("fill:")[1].split(";")[0].strip()
        assert fills[r] == rank_colour(r)
    assert len(set(fills.values())) == 8  # eight distinct colours
    assert ".reserved { fill: url(#hatch)" in style.text
    assert root.find(f".//{SVG}pattern[@id='hatch']") is not None


def test_svg_marks_roles_and_shows_nics_on_their_numa_domain():
    topo = Topology.from_node(frontier_node())
    layout = simple_layout(topo, 4)
    root = ET.fromstring(svg_picture(topo, layout))
    marks = [t.text for t in root.iter(f"{SVG}text") if "mark" in t.get("class", "").split()]
    # per rank M, P, R, R, I; the legend adds one of each
    assert sorted(marks).count("R") == 4 * 2 + 1
    assert marks.count("M") == marks.count("P") == marks.count("I") == 4 + 1
    for numa in range(4):
        group = root.find(f".//{SVG}g[@data-numa='{numa}']")
        assert group is not None
        texts = [t.text for t in group.iter(f"{SVG}text")]
        assert f"NIC hsn{numa} (cxi)" in texts
        assert f"NUMA {numa}" in texts


def test_offline_cpus_overlaps_and_unplaced_nics():
    topo = Topology.from_node(small_node())
    xs = (XstreamPlan("__primary__", Role.primary, ("__primary__",), (0,)),
          XstreamPlan("progress", Role.progress, ("p",), (0,)),
          XstreamPlan("rpc", Role.rpc, ("rpc",), ()))
    layout = NodeLayout(ranks=(RankLayout(0, (0, 1), (0,), xs),
                               RankLayout(1, (1, 2), (0,), ())),
                        pins_threads=True, use_smt=False,
                        decisions=(Choice("a decision", 1, "recorded only"),
                                   Choice("a note", 2, "shown", note=True)))
    cmap = core_map(topo, layout)
    assert cmap.cells[3].state is CpuState.unavailable
    assert cmap.cells[0].mark == "MP"
    assert cmap.cells[1].ranks == (0, 1)
    assert any("CPU 1 is bound to ranks 0, 1" in w for w in cmap.warnings)
    assert cmap.unplaced_nics == ("eth0 (tcp)",)
    assert cmap.ranks[0].xstreams == "M 0 | P 0 | R unpinned"

    svg = svg_picture(topo, layout)
    rects = _cpu_rects(svg)
    assert "unavailable" in rects[3].get("class", "").split()
    assert "overlap" in rects[1].get("class", "").split()
    assert "warning: CPU 1 is bound to ranks 0, 1" in svg
    assert "note: a note: 2 (shown)" in svg and "a decision" not in svg


def _render_text(renderable, width: int) -> str:
    console = Console(record=True, width=width, force_terminal=True, color_system="truecolor")
    console.print(renderable)
    return console.export_text()


@pytest.mark.parametrize("width", [80, 160])
def test_terminal_lists_every_rank_with_its_cpus(width):
    topo = Topology.from_node(aurora_node())
    layout = simple_layout(topo, 8)
    text = _render_text(terminal_picture(topo, layout, "aurora-like"), width)
    assert "aurora-like" in text
    assert all(len(line) <= width for line in text.splitlines())
    rows = [re.match(r"^\s+(\d+)\s+([\d,-]+)\s+([\d,]+)\s+(.*)$", line)
            for line in text.splitlines()]
    legend = {int(m[1]): m for m in rows if m}
    assert sorted(legend) == list(range(8))
    for rank in layout.ranks:
        line = legend[rank.local_rank][4]
        assert legend[rank.local_rank][2] == format_cpulist(rank.cpus)
        assert "M " in line and "P " in line and "R x2 " in line and "I " in line
    # every core appears in exactly one row label range
    covered = []
    for line in text.splitlines():
        words = line.split()
        if len(words) > 1 and words[0] in ("cores", "core"):
            lo, _, hi = words[1].partition("-")
            covered += range(int(lo), int(hi or lo) + 1)
    assert sorted(covered) == list(range(104))
    assert "NIC cxi0 (cxi)" in text and "NIC cxi7 (cxi)" in text


def test_terminal_colours_cells_by_rank():
    topo = Topology.from_node(small_node())
    xs = (XstreamPlan("__primary__", Role.primary, ("__primary__",), (0,)),)
    layout = NodeLayout(ranks=(RankLayout(0, (0,), (0,), xs), RankLayout(1, (1,), (0,), ())),
                        pins_threads=True, use_smt=False)
    console = Console(record=True, width=80, force_terminal=True, color_system="truecolor")
    console.print(terminal_picture(topo, layout))
    text = console.export_text(clear=False)
    html = console.export_html(inline_styles=True)
    for r in (0, 1):
        assert rank_colour(r) in html
    cells = next(line for line in text.splitlines() if line.startswith("    cores 0-3"))
    # the primary mark on CPU 0, rank 1's number on CPU 1, CPU 2 free, CPU 3 offline
    assert cells.split()[2:] == ["M", "1", ".", "x"]


def test_colours_are_distinct_and_readable():
    colours = [rank_colour(r) for r in range(64)]
    assert len(set(colours)) == 64
    assert {ink_for(c) for c in colours} <= {"#000000", "#ffffff"}
    assert ink_for("#ffffff") == "#000000" and ink_for("#000000") == "#ffffff"


KV_SERVICE = """\
name: kv
processes_per_node: 4
threads: {progress: dedicated, rpc: 2, io: 1, primary: dedicated}
components:
  - {name: group, type: flock}
  - {name: kv, type: yokan}
  - {name: io, type: abt_io, pool: io}
"""


def test_layout_command_prints_the_plan_and_writes_the_svg(tmp_path, capsys):
    from bedrock_deploy.cli import main
    from bedrock_deploy.layout import plan_layout
    from bedrock_deploy.service import load_service
    from bedrock_deploy.sites import load_site

    service = tmp_path / "kv.yaml"
    service.write_text(KV_SERVICE)
    svg = tmp_path / "layout.svg"
    assert main(["layout", "--site", "generic-slurm-tcp", "--service", str(service),
                 "--svg", str(svg)]) == 0
    out = capsys.readouterr().out
    assert "kv on generic-slurm-tcp: 4 processes per node" in out
    assert "NIC eth0 (tcp)" in out

    # the same plan the planner makes, rank by rank, in the text and in the SVG
    site = load_site("generic-slurm-tcp").profile
    topo = Topology.from_node(site.node)
    layout = plan_layout(topo, load_service(service).service, "tcp")
    rects = _cpu_rects(svg.read_text())
    assert set(rects) == set(range(64))
    for rank in layout.ranks:
        assert re.search(rf"^\s+{rank.local_rank}\s+{format_cpulist(rank.cpus)}\s", out, re.M)
        for cpu in rank.cpus:
            assert f"rank-{rank.local_rank}" in rects[cpu].get("class", "").split()


def test_layout_command_rejects_bad_input_without_writing(tmp_path, capsys):
    from bedrock_deploy.cli import main

    service = tmp_path / "kv.yaml"
    service.write_text(KV_SERVICE)
    svg = tmp_path / "layout.svg"
    assert main(["layout", "--site", "generic-slurm-tcp", "--service", str(service),
                 "--ppn", "40", "--svg", str(svg)]) == 2
    err = capsys.readouterr().err
    assert "--ppn 40: error: processes_per_node: 40 processes per node" in err
    assert "hint:" in err
    assert not svg.exists() and list(tmp_path.iterdir()) == [service]

    assert main(["layout", "--site", "generic-slurm-tcp", "--service", str(service),
                 "--transport", "nope"]) == 2
    assert "has no transport named 'nope'" in capsys.readouterr().err
