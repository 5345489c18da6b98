"""``bedrock-deploy transports``: which transport a deployment would use, and why.

    bedrock-deploy transports --site S [--margo-info FILE] [--fi-info FILE] [--hg-info FILE]
                              [--engine] [--nodes N] [--transport NAME] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.table import Table
from rich.text import Text

from bedrock_deploy.sites import load_site
from bedrock_deploy.terminal import make_console, printable
from bedrock_deploy.transports import HostReports, TransportSelection, Usable, select_transport

_STYLE = {Usable.yes: "green", Usable.no: "red", Usable.unknown: "yellow"}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "transports", help="choose the transport from margo-info / fi_info / hg_info output",
        description="Rank the site profile's transports with what a compute node reports "
        "(saved margo-info, fi_info and hg_info output; any subset, or none) and show which "
        "one a deployment would use, and why each other one was not chosen.")
    p.add_argument("--site", required=True, help="shipped profile name or profile file")
    p.add_argument("--margo-info", type=Path, metavar="FILE",
                   help="margo-info output (stdout, or the JSON file it names)")
    p.add_argument("--fi-info", type=Path, metavar="FILE",
                   help="fi_info output (full, -v, or -l)")
    p.add_argument("--hg-info", type=Path, metavar="FILE", help="hg_info output (table, -c, -j)")
    p.add_argument("--engine", action="store_true",
                   help="probe this host with the embedded engine (bedrock-engine --info) "
                   "instead of a margo-info file")
    p.add_argument("--nodes", type=int, default=1, metavar="N",
                   help="nodes the service spans (default 1); more than 1 rules out na+sm")
    p.add_argument("--transport", metavar="NAME",
                   help="use this site transport if it is usable, instead of the ranked first")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    loaded = load_site(args.site)
    if args.engine and args.margo_info:
        print("bedrock-deploy transports: give --engine or --margo-info, not both",
              file=sys.stderr)
        return 2
    reports = HostReports.from_files(margo_info=args.margo_info, fi_info=args.fi_info,
                                     hg_info=args.hg_info)
    if args.engine:
        probed = HostReports.from_engine()
        reports = HostReports(margo_info=probed.margo_info, fi_info=reports.fi_info,
                              fi_providers=reports.fi_providers, hg_info=reports.hg_info,
                              notes=reports.notes + probed.notes)
    selection = select_transport(loaded.profile, nodes=args.nodes, reports=reports,
                                 prefer=args.transport, site_file=loaded.file,
                                 locate=loaded.locate)
    ignored = reports.unknown_line_notes()
    if args.json:
        data = selection.to_dict()
        data["site"] = {"name": loaded.profile.name, "files": loaded.files}
        data["ignored_lines"] = ignored
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    _print(selection, loaded.profile.name, ignored)
    return 0


def _print(selection: TransportSelection, site: str, ignored: list[str]) -> None:
    console = make_console()
    c = selection.choice
    console.print(Text(f"site {printable(site)}, {selection.nodes} node(s)", style="bold"))
    for source in selection.sources or ("none: the site profile is trusted",):
        console.print(Text(f"  report: {printable(source)}"), soft_wrap=True)
    table = Table(show_lines=True)
    table.add_column("candidate", overflow="fold")
    table.add_column("protocol", overflow="fold")
    table.add_column("reported usable?")
    table.add_column("chosen?")
    table.add_column("reason", overflow="fold", ratio=1)
    for v in selection.verdicts:
        table.add_row(Text(printable(v.candidate)), Text(printable(v.protocol)),
                      Text(v.reported_usable.value, style=_STYLE[v.reported_usable]),
                      Text("yes", style="bold green") if v.chosen else "no",
                      Text(printable(v.reason)))
    console.print(table)
    console.print(Text(f"chosen: {printable(c.name)} -> {printable(c.protocol)}", style="bold"))
    details = [("provider", c.provider or "-"), ("fabrics", ",".join(c.fabrics) or "-"),
               ("env", " ".join(f"{k}={v}" for k, v in c.env.items()) or "-"),
               ("launcher flags", " ".join(c.launcher_flags) or "-"),
               ("mercury", json.dumps(c.mercury) if c.mercury else "-")]
    for key, value in details:
        console.print(Text(f"  {key}: {printable(value)}"), soft_wrap=True)
    for note in [*selection.notes, *ignored]:
        console.print(Text(f"note: {printable(note)}", style="yellow"), soft_wrap=True)
