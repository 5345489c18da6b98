"""``bedrock-deploy layout --site S --service SVC [--svg FILE]``: show the planned core map.

Prints the node's cores by socket and NUMA domain, coloured by local rank, with the xstream
roles pinned to each CPU (M __primary__, P progress, R rpc, I io), and optionally writes the
same picture as SVG. Nothing is generated or launched.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bedrock_deploy import api
from bedrock_deploy.diagnostics import fail
from bedrock_deploy.files import write_text_atomic
from bedrock_deploy.layout_picture import render_svg, render_terminal
from bedrock_deploy.terminal import make_console, printable


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
    p.add_argument("--nodes", type=int, metavar="N", help="nodes (overrides the service)")
    p.add_argument("--ppn", type=int, metavar="N",
                   help="processes per node (overrides the service's processes_per_node)")
    p.add_argument("--transport", metavar="NAME",
                   help="use this site transport (default: chosen as `generate` does)")
    p.set_defaults(func=_layout)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file: never a half-written file."""
    path = path.resolve()
    if not path.parent.is_dir():
        raise fail(f"directory {path.parent} does not exist", file=str(path),
                   hint="create it first or choose another --svg path")
    write_text_atomic(path, text)


def _layout(args: argparse.Namespace) -> int:
    # the same plan `generate` makes (transport selection, layout, validated configs)
    plan = api.plan(args.site, args.service, nodes=args.nodes, ppn=args.ppn,
                    transport=args.transport, for_job=False)
    if args.svg is not None:
        write_atomically(args.svg, render_svg(plan))
    make_console().print(render_terminal(plan))
    if args.svg is not None:
        print(f"wrote {printable(args.svg)}")
    return 0
