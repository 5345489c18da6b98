"""Picture of a node's core map: which CPUs each local rank and each xstream role uses.

Two renderings of the same :class:`CoreMap` (built from a :class:`~bedrock_deploy.topology.Topology`
and a :class:`~bedrock_deploy.plan.NodeLayout`, so it works before a full plan exists):

* :func:`terminal_picture` / :func:`render_terminal`: a rich renderable (``bedrock-deploy layout``);
* :func:`svg_picture` / :func:`render_svg`: an SVG document (``DIR/layout.svg``), built with
  :mod:`xml.etree.ElementTree`.

Cores are grouped by socket and NUMA domain; each core is a box holding its hardware threads
(SMT siblings side by side). A CPU is coloured by the local rank bound to it and marked with the
roles of the xstreams pinned to it: ``M`` ``__primary__``, ``P`` progress, ``R`` rpc, ``I`` io.
Reserved cores are hatched, CPUs outside the online set or the cpuset are greyed, NICs are shown on
their NUMA domain. In the SVG every CPU is one ``<rect id="cpu-N">`` whose classes say its state,
rank and roles (``cpu used rank-3 role-rpc``), so tests and tools can read the picture back.
"""

from __future__ import annotations

import colorsys
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.table import Table
from rich.text import Text

from bedrock_deploy.cpulist import format_cpulist
from bedrock_deploy.plan import NodeLayout, Role
from bedrock_deploy.topology import Core, Topology

if TYPE_CHECKING:
    from bedrock_deploy.plan import DeploymentPlan

ROLE_ORDER: tuple[Role, ...] = (Role.primary, Role.progress, Role.rpc, Role.io)
ROLE_MARK: dict[Role, str] = {Role.primary: "M", Role.progress: "P", Role.rpc: "R", Role.io: "I"}
ROLE_MEANING: dict[Role, str] = {
    Role.primary: "__primary__ xstream",
    Role.progress: "progress loop",
    Role.rpc: "RPC handlers",
    Role.io: "blocking I/O (abt_io)",
}

# Tableau-10 (colour-blind friendly); beyond ten ranks hues are spread by the golden angle.
_PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
            "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
_FREE_FILL = "#ffffff"
_UNAVAILABLE_FILL = "#d0d0d0"
_RESERVED_INK = "#8a8a8a"


class CpuState(StrEnum):
    used = "used"  # bound to at least one local rank
    free = "free"  # usable but no rank uses it
    reserved = "reserved"  # its core is kept for the OS (node.reserved_cores)
    unavailable = "unavailable"  # offline or outside the job's cpuset


@dataclass(frozen=True)
class CpuCell:
    cpu: int
    core: int
    state: CpuState
    ranks: tuple[int, ...]  # local ranks bound to this CPU (one, unless the layout overlaps)
    roles: tuple[Role, ...]  # roles of the xstreams pinned to this CPU, in ROLE_ORDER

    @property
    def mark(self) -> str:
        return "".join(ROLE_MARK[r] for r in self.roles)

    @property
    def rank(self) -> int | None:
        return self.ranks[0] if self.ranks else None

    def describe(self) -> str:
        text = f"CPU {self.cpu} (core {self.core}): "
        if self.ranks:
            text += "rank " + ",".join(str(r) for r in self.ranks)
            if self.roles:
                text += ": " + ", ".join(ROLE_MEANING[r] for r in self.roles)
            return text
        return text + self.state.value


@dataclass(frozen=True)
class CoreGroup:
    """The cores of one NUMA domain on one socket, in core order."""

    socket: int
    numa: int
    cores: tuple[Core, ...]
    nics: tuple[str, ...]  # "cxi0 (cxi)" for each NIC on this NUMA domain


@dataclass(frozen=True)
class RankSummary:
    local_rank: int
    cpus: str  # cpulist
    numa: str
    xstreams: str  # e.g. "M 0 | P 1 | R x2 2-3 | I 4"


@dataclass(frozen=True)
class CoreMap:
    """Everything both renderings draw, decided once."""

    topology: Topology
    layout: NodeLayout
    cells: dict[int, CpuCell]  # by CPU id
    groups: tuple[CoreGroup, ...]
    ranks: tuple[RankSummary, ...]
    unplaced_nics: tuple[str, ...]  # NICs whose NUMA domain is unknown
    warnings: tuple[str, ...]  # overlaps, ranks on reserved/unavailable CPUs

    def cpus_of_rank(self, rank: int) -> list[int]:
        return sorted(c.cpu for c in self.cells.values() if rank in c.ranks)


def rank_colour(rank: int) -> str:
    """Fill colour of a local rank (hex)."""
    if rank < len(_PALETTE):
        return _PALETTE[rank]
    hue = (rank * 0.618033988749895) % 1.0
    r, g, b = colorsys.hls_to_rgb(hue, 0.62, 0.55)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def ink_for(fill: str) -> str:
    """Black or white, whichever reads better on ``fill``."""
    r, g, b = (int(fill[i:i + 2], 16) / 255 for i in (1, 3, 5))
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "#000000" if luminance > 0.45 else "#ffffff"


def _xstream_summary(rank_xstreams: Iterator[tuple[Role, tuple[int, ...]]]) -> str:
    by_role: dict[Role, list[tuple[int, ...]]] = {}
    for role, cpus in rank_xstreams:
        by_role.setdefault(role, []).append(cpus)
    parts = []
    for role in ROLE_ORDER:
        pinned = by_role.get(role)
        if not pinned:
            continue
        count = f" x{len(pinned)}" if len(pinned) > 1 else ""
        cpus = sorted({c for p in pinned for c in p})
        where = format_cpulist(cpus) if cpus else "unpinned"
        if cpus and any(not p for p in pinned):
            where += " +unpinned"
        parts.append(f"{ROLE_MARK[role]}{count} {where}")
    return " | ".join(parts)


def core_map(topology: Topology, layout: NodeLayout) -> CoreMap:
    """Assign every CPU of the node its state, ranks and roles."""
    ranks_of: dict[int, list[int]] = {}
    roles_of: dict[int, set[Role]] = {}
    for rank in layout.ranks:
        for cpu in rank.cpus:
            ranks_of.setdefault(cpu, []).append(rank.local_rank)
        for xs in rank.xstreams:
            for cpu in xs.cpus:
                roles_of.setdefault(cpu, set()).update(xs.roles)
                owners = ranks_of.setdefault(cpu, [])
                if rank.local_rank not in owners:
                    owners.append(rank.local_rank)

    warnings: list[str] = []
    cells: dict[int, CpuCell] = {}
    for core in topology.cores:
        reserved = core.index in topology.reserved
        for cpu in core.cpus:
            ranks = tuple(ranks_of.get(cpu, ()))
            if ranks:
                state = CpuState.used
                if len(ranks) > 1:
                    warnings.append(f"CPU {cpu} is bound to ranks {', '.join(map(str, ranks))}")
                if reserved:
                    warnings.append(f"CPU {cpu} is on reserved core {core.index} but rank "
                                    f"{ranks[0]} uses it")
                elif cpu not in topology.allowed_cpus:
                    warnings.append(f"CPU {cpu} is offline or outside the cpuset but rank "
                                    f"{ranks[0]} uses it")
            elif reserved:
                state = CpuState.reserved
            elif cpu not in topology.allowed_cpus:
                state = CpuState.unavailable
            else:
                state = CpuState.free
            roles = tuple(r for r in ROLE_ORDER if r in roles_of.get(cpu, ()))
            cells[cpu] = CpuCell(cpu=cpu, core=core.index, state=state, ranks=ranks, roles=roles)
    missing = sorted(set(ranks_of) - set(cells))
    if missing:
        warnings.append(f"the layout uses CPU {format_cpulist(missing)}, which the node lacks")

    nic_names: dict[int, list[str]] = {}
    unplaced: list[str] = []
    for nic in topology.nics:
        label = f"{nic.name} ({nic.kind.value})"
        if nic.numa_domain is None:
            unplaced.append(label)
        else:
            nic_names.setdefault(nic.numa_domain, []).append(label)

    order: list[tuple[int, int]] = []
    members: dict[tuple[int, int], list[Core]] = {}
    for core in topology.cores:
        key = (core.socket, core.numa)
        if key not in members:
            order.append(key)
            members[key] = []
        members[key].append(core)
    shown: set[int] = set()
    groups = []
    for key in sorted(order):
        socket, numa = key
        nics = tuple(nic_names.get(numa, ())) if numa not in shown else ()
        shown.add(numa)
        groups.append(CoreGroup(socket=socket, numa=numa, cores=tuple(members[key]), nics=nics))
    unplaced += [n for numa, names in nic_names.items() if numa not in shown for n in names]

    numa_of = {cpu: core.numa for core in topology.cores for cpu in core.cpus}
    summaries = tuple(
        RankSummary(
            local_rank=r.local_rank,
            cpus=format_cpulist(r.cpus) or "(none)",
            numa=",".join(str(d) for d in (r.numa or sorted({numa_of[c] for c in r.cpus
                                                             if c in numa_of}))),
            xstreams=_xstream_summary((role, xs.cpus) for xs in r.xstreams for role in xs.roles),
        )
        for r in layout.ranks
    )
    return CoreMap(topology=topology, layout=layout, cells=cells, groups=tuple(groups),
                   ranks=summaries, unplaced_nics=tuple(unplaced), warnings=tuple(warnings))


def _balanced_rows(count: int, max_per_row: int) -> int:
    """Cores per row so that ``count`` cores fill rows of (nearly) equal length."""
    max_per_row = max(1, max_per_row)
    rows = math.ceil(count / max_per_row)
    return math.ceil(count / rows) if rows else 1


def _plan_title(plan: DeploymentPlan) -> str:
    service = getattr(plan.service, "name", None)
    head = f"{service} on {plan.site.name}" if service else plan.site.name
    return (f"{head}: {plan.processes_per_node} processes per node, "
            f"{plan.nodes} node{'s' if plan.nodes != 1 else ''}, "
            f"{plan.transport.name} ({plan.transport.protocol})")


# --------------------------------------------------------------------------- terminal

_TERM_CELL = 3  # characters per hardware thread
_ROLE_SHORT = {Role.primary: "__primary__", Role.progress: "progress", Role.rpc: "rpc",
               Role.io: "io (abt_io)"}


def _row_label(cores: tuple[Core, ...]) -> str:
    first, last = cores[0].index, cores[-1].index
    return f"    cores {first}-{last} " if first != last else f"    core {first} "


class TerminalPicture:
    """Rich renderable; cores per row adapt to the console width."""

    def __init__(self, cmap: CoreMap, title: str | None = None):
        self.cmap = cmap
        self.title = title

    def _cell(self, cell: CpuCell | None) -> Text:
        width = _TERM_CELL
        if cell is None:
            return Text(" ? ".center(width), style="bold red")
        if cell.state is CpuState.reserved:
            return Text("/" * width, style="grey50 on grey23")
        if cell.state is CpuState.unavailable:
            return Text(" x ".center(width), style="grey42 on grey11")
        if cell.state is CpuState.free:
            return Text(" . ".center(width), style="grey62 on grey19")
        fill = rank_colour(cell.ranks[0])
        # the rank number where no role is pinned, so the picture reads without colour too
        mark = cell.mark or str(cell.ranks[0])
        if len(cell.ranks) > 1:
            mark = "!"
        return Text(mark[:width].center(width), style=f"bold {ink_for(fill)} on {fill}")

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        cmap = self.cmap
        t = cmap.topology.threads_per_core
        core_width = t * _TERM_CELL + 1
        last_core = max((c.index for c in cmap.topology.cores), default=0)
        prefix = len(f"    cores {last_core}-{last_core} ")
        max_cores = max(1, (options.max_width - prefix) // core_width)
        if self.title:
            yield Text(self.title, style="bold")
        for socket in sorted({g.socket for g in cmap.groups}):
            yield Text(f"Socket {socket}", style="bold underline")
            for group in (g for g in cmap.groups if g.socket == socket):
                header = Text(f"  NUMA {group.numa}", style="bold")
                for nic in group.nics:
                    header.append("  ")
                    header.append(f" NIC {nic} ", style="bold black on bright_cyan")
                yield header
                per_row = _balanced_rows(len(group.cores), max_cores)
                for start in range(0, len(group.cores), per_row):
                    row = group.cores[start:start + per_row]
                    line = Text(_row_label(row).ljust(prefix))
                    for core in row:
                        for cpu in core.cpus:
                            line.append_text(self._cell(cmap.cells.get(cpu)))
                        line.append(" ")
                    yield line
        if cmap.unplaced_nics:
            yield Text("NICs on an unknown NUMA domain: " + ", ".join(cmap.unplaced_nics))
        yield _terminal_legend(cmap)
        for note in (*cmap.layout.notes, *cmap.warnings):
            yield Text(f"note: {note}", style="yellow")


def _terminal_legend(cmap: CoreMap) -> Group:
    table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
    table.add_column("")
    table.add_column("rank", justify="right")
    table.add_column("CPUs")
    table.add_column("NUMA")
    table.add_column("xstreams (role CPUs)")
    for r in cmap.ranks:
        fill = rank_colour(r.local_rank)
        table.add_row(Text("   ", style=f"on {fill}"), str(r.local_rank), r.cpus, r.numa,
                      r.xstreams)
    key = Text("  ")
    for role in ROLE_ORDER:
        key.append(ROLE_MARK[role], style="bold")
        key.append(f" {_ROLE_SHORT[role]}   ")
    states = Text("  ")
    states.append(" 0 ", style="bold black on " + rank_colour(0))
    states.append(" rank, no role   ")
    states.append("///", style="grey50 on grey23")
    states.append(" reserved   ")
    states.append(" . ", style="grey62 on grey19")
    states.append(" free   ")
    states.append(" x ", style="grey42 on grey11")
    states.append(" offline/outside cpuset")
    return Group(Text(""), table, key, states)


def terminal_picture(topology: Topology, layout: NodeLayout,
                     title: str | None = None) -> TerminalPicture:
    return TerminalPicture(core_map(topology, layout), title)


def render_terminal(plan: DeploymentPlan) -> TerminalPicture:
    """The layout of ``plan`` as a rich renderable (``Console().print(render_terminal(plan))``)."""
    return terminal_picture(Topology.from_node(plan.site.node), plan.layout, _plan_title(plan))


# --------------------------------------------------------------------------- SVG

_CELL_W, _CELL_H = 30, 34  # one hardware thread
_CORE_PAD = 3  # inside a core box
_CORE_GAP = 6  # between core boxes
_MAX_CORES_PER_ROW = 16
_LABEL_W = 120  # NUMA label column (at least)
_MARGIN = 16
_FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
_MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace"


def _style(cmap: CoreMap) -> str:
    rules = [
        f"text {{ font-family: {_FONT}; fill: #222222; }}",
        f".mono {{ font-family: {_MONO}; }}",
        ".title { font-size: 16px; font-weight: bold; }",
        ".socket-box { fill: #f4f4f4; stroke: #555555; stroke-width: 1.5; }",
        ".numa-box { fill: #ffffff; stroke: #999999; stroke-width: 1; stroke-dasharray: 4 2; }",
        ".core-box { fill: #ffffff; stroke: #444444; stroke-width: 1; }",
        ".label { font-size: 13px; font-weight: bold; }",
        ".small { font-size: 11px; }",
        ".nic { fill: #17becf; stroke: #0d6e78; }",
        ".nic-label { font-size: 11px; font-weight: bold; fill: #000000; }",
        ".cpu { stroke: #ffffff; stroke-width: 1; }",
        f".free {{ fill: {_FREE_FILL}; stroke: #bbbbbb; }}",
        f".unavailable {{ fill: {_UNAVAILABLE_FILL}; }}",
        ".reserved { fill: url(#hatch); stroke: #bbbbbb; }",
        ".overlap { stroke: #ff0000; stroke-width: 2; }",
        ".cpu-id { font-size: 8px; text-anchor: middle; }",
        ".mark { font-size: 13px; font-weight: bold; text-anchor: middle; }",
        ".warning { font-size: 12px; fill: #b00000; }",
        ".note { font-size: 12px; fill: #555555; }",
    ]
    ranks = sorted({r for c in cmap.cells.values() for r in c.ranks}
                   | {r.local_rank for r in cmap.ranks})
    for r in ranks:
        fill = rank_colour(r)
        rules.append(f".rank-{r} {{ fill: {fill}; }}")
        rules.append(f".ink-{r} {{ fill: {ink_for(fill)}; }}")
    return "\n".join(rules)


def _text(parent: ET.Element, x: float, y: float, text: str, cls: str,
          **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, "text", {"x": f"{x:g}", "y": f"{y:g}", "class": cls, **attrs})
    el.text = text
    return el


def _rect(parent: ET.Element, x: float, y: float, w: float, h: float, cls: str,
          **attrs: str) -> ET.Element:
    return ET.SubElement(parent, "rect", {"x": f"{x:g}", "y": f"{y:g}", "width": f"{w:g}",
                                          "height": f"{h:g}", "class": cls, **attrs})


def _cpu_class(cell: CpuCell) -> str:
    classes = ["cpu", cell.state.value]
    classes += [f"rank-{r}" for r in cell.ranks[:1]]
    classes += [f"role-{r.value}" for r in cell.roles]
    if len(cell.ranks) > 1:
        classes.append("overlap")
    return " ".join(classes)


def _draw_cpu(parent: ET.Element, x: float, y: float, cell: CpuCell) -> None:
    g = ET.SubElement(parent, "g")
    ET.SubElement(g, "title").text = cell.describe()
    attrs = {"id": f"cpu-{cell.cpu}", "data-cpu": str(cell.cpu), "data-core": str(cell.core),
             "data-state": cell.state.value}
    if cell.ranks:
        attrs["data-rank"] = ",".join(map(str, cell.ranks))
    if cell.roles:
        attrs["data-roles"] = ",".join(r.value for r in cell.roles)
    _rect(g, x, y, _CELL_W, _CELL_H, _cpu_class(cell), **attrs)
    ink = f" ink-{cell.ranks[0]}" if cell.ranks else ""
    _text(g, x + _CELL_W / 2, y + 10, str(cell.cpu), "cpu-id mono" + ink)
    if cell.mark:
        _text(g, x + _CELL_W / 2, y + _CELL_H - 7, cell.mark, "mark" + ink)


def svg_picture(topology: Topology, layout: NodeLayout, title: str | None = None) -> str:
    """The core map as an SVG document (text)."""
    cmap = core_map(topology, layout)
    t = topology.threads_per_core
    core_w = t * _CELL_W + 2 * _CORE_PAD
    core_h = _CELL_H + 2 * _CORE_PAD
    largest = max((len(g.cores) for g in cmap.groups), default=1)
    per_row = _balanced_rows(largest, _MAX_CORES_PER_ROW)
    grid_w = per_row * core_w + (per_row - 1) * _CORE_GAP
    nic_chars = max((len(f"NIC {n}") for g in cmap.groups for n in g.nics), default=0)
    label_w = max(_LABEL_W, 7 * nic_chars + 30)
    inner_w = label_w + grid_w + 2 * 10
    legend_w = _MARGIN + 380 + 7 * max((len(r.xstreams) for r in cmap.ranks), default=0)
    width = max(inner_w + 2 * _MARGIN + 20, 760, legend_w + _MARGIN)

    svg = ET.Element("svg", {"xmlns": "http://www.w3.org/2000/svg", "version": "1.1",
                             "class": "layout-picture"})
    defs = ET.SubElement(svg, "defs")
    pattern = ET.SubElement(defs, "pattern", {"id": "hatch", "width": "6", "height": "6",
                                              "patternUnits": "userSpaceOnUse",
                                              "patternTransform": "rotate(45)"})
    _rect(pattern, 0, 0, 6, 6, "", fill="#eeeeee")
    ET.SubElement(pattern, "line", {"x1": "0", "y1": "0", "x2": "0", "y2": "6",
                                    "stroke": _RESERVED_INK, "stroke-width": "3"})
    ET.SubElement(svg, "style").text = _style(cmap)
    _rect(svg, 0, 0, width, 1, "", fill="#ffffff", id="background")  # resized below

    y = float(_MARGIN)
    if title:
        _text(svg, _MARGIN, y + 14, title, "title")
        y += 28
    if cmap.unplaced_nics:
        _text(svg, _MARGIN, y + 12,
              "NICs on an unknown NUMA domain: " + ", ".join(cmap.unplaced_nics), "small")
        y += 20

    for socket in sorted({g.socket for g in cmap.groups}):
        groups = [g for g in cmap.groups if g.socket == socket]
        sock = ET.SubElement(svg, "g", {"class": "socket", "data-socket": str(socket)})
        sock_box = _rect(sock, _MARGIN, y, width - 2 * _MARGIN, 0, "socket-box")
        sock_top = y
        _text(sock, _MARGIN + 10, y + 18, f"Socket {socket}", "label")
        y += 28
        for group in groups:
            rows = math.ceil(len(group.cores) / per_row)
            numa_h = max(rows * (core_h + _CORE_GAP) - _CORE_GAP + 20, 40 + 18 * len(group.nics))
            ng = ET.SubElement(sock, "g", {"class": "numa", "data-numa": str(group.numa)})
            x0 = _MARGIN + 10
            _rect(ng, x0, y, width - 2 * _MARGIN - 20, numa_h, "numa-box")
            _text(ng, x0 + 8, y + 18, f"NUMA {group.numa}", "label")
            first, last = group.cores[0].index, group.cores[-1].index
            _text(ng, x0 + 8, y + 33, f"cores {first}-{last}", "small")
            for i, nic in enumerate(group.nics):
                ny = y + 42 + 18 * i
                _rect(ng, x0 + 6, ny, label_w - 14, 15, "nic", rx="3")
                _text(ng, x0 + 10, ny + 11, f"NIC {nic}", "nic-label")
            gx = x0 + label_w
            for k, core in enumerate(group.cores):
                cx = gx + (k % per_row) * (core_w + _CORE_GAP)
                cy = y + 10 + (k // per_row) * (core_h + _CORE_GAP)
                cg = ET.SubElement(ng, "g", {"class": "core", "data-core": str(core.index)})
                _rect(cg, cx, cy, core_w, core_h, "core-box", rx="3")
                for j, cpu in enumerate(core.cpus):
                    _draw_cpu(cg, cx + _CORE_PAD + j * _CELL_W, cy + _CORE_PAD, cmap.cells[cpu])
            y += numa_h + 8
        sock_box.set("height", f"{y - sock_top + 2:g}")
        y += 14

    y = _svg_legend(svg, cmap, y)
    svg.set("width", f"{width:g}")
    svg.set("height", f"{y + _MARGIN:g}")
    svg.set("viewBox", f"0 0 {width:g} {y + _MARGIN:g}")
    background = svg.find("rect[@id='background']")
    if background is not None:
        background.set("height", f"{y + _MARGIN:g}")
    ET.indent(svg, space=" ")
    return ET.tostring(svg, encoding="unicode", xml_declaration=True) + "\n"


def _svg_legend(svg: ET.Element, cmap: CoreMap, y: float) -> float:
    legend = ET.SubElement(svg, "g", {"class": "legend"})
    x = float(_MARGIN)
    _text(legend, x, y + 14, "Local ranks", "label")
    y += 24
    _text(legend, x + 30, y + 10, "rank", "small")
    _text(legend, x + 75, y + 10, "CPUs", "small")
    _text(legend, x + 330, y + 10, "NUMA", "small")
    _text(legend, x + 380, y + 10, "xstreams (role CPUs)", "small")
    y += 16
    for r in cmap.ranks:
        _rect(legend, x, y, 22, 14, f"rank-{r.local_rank}")
        _text(legend, x + 30, y + 11, str(r.local_rank), "small mono")
        _text(legend, x + 75, y + 11, r.cpus, "small mono")
        _text(legend, x + 330, y + 11, r.numa, "small mono")
        _text(legend, x + 380, y + 11, r.xstreams, "small mono")
        y += 18
    y += 8
    kx = x
    for role in ROLE_ORDER:
        _text(legend, kx, y + 12, ROLE_MARK[role], "mark", style="text-anchor: start")
        _text(legend, kx + 18, y + 11, ROLE_MEANING[role], "small")
        kx += 18 + 7 * len(ROLE_MEANING[role]) + 18
    y += 20
    kx = x
    for cls, label in (("reserved", "reserved core (OS)"), ("free", "free"),
                       ("unavailable", "offline / outside cpuset")):
        _rect(legend, kx, y, 22, 14, f"cpu {cls}")
        _text(legend, kx + 28, y + 11, label, "small")
        kx += 28 + 7 * len(label) + 24
    _rect(legend, kx, y, 22, 14, "nic", rx="3")
    _text(legend, kx + 28, y + 11, "NIC on its NUMA domain", "small")
    y += 22
    for note in cmap.layout.notes:
        _text(legend, x, y + 12, f"note: {note}", "note")
        y += 18
    for warning in cmap.warnings:
        _text(legend, x, y + 12, f"warning: {warning}", "warning")
        y += 18
    return y


def render_svg(plan: DeploymentPlan) -> str:
    """The layout of ``plan`` as an SVG document (what ``generate`` writes to layout.svg)."""
    return svg_picture(Topology.from_node(plan.site.node), plan.layout, _plan_title(plan))
