"""``bedrock-deploy layout --site S --service SVC [--svg FILE]``: show the planned core map.

Prints the node's cores by socket and NUMA domain, coloured by local rank, with the xstream
roles pinned to each CPU (M __primary__, P progress, R rpc, I io), and optionally writes the
same picture as SVG. Nothing is generated or launched.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from bedrock_deploy.diagnostics import InputError, fail
from bedrock_deploy.layout import plan_layout
from bedrock_deploy.layout_picture import svg_picture, terminal_picture
from bedrock_deploy.service import load_service
from bedrock_deploy.site_profile import SiteProfile, Transport, TransportScope
from bedrock_deploy.sites import load_site
from bedrock_deploy.topology import Topology


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "layout", help="show the planned core map of one node (terminal picture, SVG)",
        description="Plan the Argobots layout of one node for a service on a site and show it: "
        "cores by socket and NUMA domain, coloured by local rank, marked by xstream role "
        "(M __primary__, P progress, R rpc, I io); reserved cores hatched, NICs on their "
        "NUMA domain.")
    p.add_argument("--site", required=True, metavar="S", help="site profile name or file")
    p.add_argument("--service", required=True, metavar="SVC",
                   help="service description (.yaml) or Bedrock config (.json)")
    p.add_argument("--svg", metavar="FILE", type=Path, help="also write the picture as SVG")
    p.add_argument("--ppn", type=int, metavar="N",
                   help="processes per node (overrides the service's processes_per_node)")
    p.add_argument("--transport", metavar="NAME",
                   help="site transport whose NIC the layout favours (default: the first "
                   "inter-node transport of the site)")
    p.set_defaults(func=_layout)


def pick_transport(site: SiteProfile, name: str | None) -> Transport:
    """The named transport, else the site's first inter-node one (else its first)."""
    if name is not None:
        for t in site.transports:
            if t.name == name:
                return t
        raise fail(f"site {site.name!r} has no transport {name!r}", path=("transports",),
                   hint="use one of: " + ", ".join(t.name for t in site.transports))
    inter = [t for t in site.transports if t.scope is TransportScope.inter_node]
    return (inter or site.transports)[0]


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file: never a half-written file."""
    path = path.resolve()
    if not path.parent.is_dir():
        raise fail(f"directory {path.parent} does not exist", file=str(path),
                   hint="create it first or choose another --svg path")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _layout(args: argparse.Namespace) -> int:
    if args.ppn is not None and args.ppn < 1:
        raise fail(f"--ppn must be at least 1 (got {args.ppn})", hint="e.g. --ppn 8")
    site = load_site(args.site).profile
    loaded = load_service(args.service)
    service = loaded.service.with_counts(ppn=args.ppn)
    transport = pick_transport(site, args.transport)
    topology = Topology.from_node(site.node)
    nic_kind = transport.nic_kind.value if transport.nic_kind is not None else None
    try:
        layout = plan_layout(topology, service, nic_kind,
                             uses_nic=transport.scope is TransportScope.inter_node)
    except InputError as err:  # the planner's paths point into the service: locate them
        raise InputError([
            p if p.location is not None else
            replace(p, file=f"--ppn {args.ppn}") if args.ppn is not None
            and p.path == ("processes_per_node",) else
            replace(p, location=loaded.locate(p.path))
            for p in err.problems]) from None
    title = (f"{service.name} on {site.name}: {service.processes_per_node} processes per node "
             f"({transport.name}, {transport.protocol})")
    if args.svg is not None:
        write_atomically(args.svg, svg_picture(topology, layout, title))
    Console().print(terminal_picture(topology, layout, title))
    if args.svg is not None:
        print(f"wrote {args.svg}")
    return 0
