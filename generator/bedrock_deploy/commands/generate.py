"""``bedrock-deploy generate --site S --service SVC -o DIR [--force] ...``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bedrock_deploy import api
from bedrock_deploy.generate import changes_to_input, check_target, site_warnings
from bedrock_deploy.terminal import make_console, printable


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "generate", help="generate a deployment directory",
        description="Plan the layout, write the Bedrock configs, Spack environment, launch "
        "scripts and manifest of a service on a site, into DIR (atomically).")
    p.add_argument("--site", required=True, metavar="S",
                   help="shipped site profile name or a profile file")
    p.add_argument("--service", required=True, metavar="SVC",
                   help="service description (.yaml) or an existing Bedrock config (.json)")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="deployment directory to create")
    p.add_argument("--force", action="store_true",
                   help="replace DIR if it is a previous deployment (atomically)")
    p.add_argument("--margo-info", metavar="F",
                   help="saved margo-info output (stdout or its JSON file) from a compute node")
    p.add_argument("--fi-info", metavar="F", help="saved fi_info output from a compute node")
    p.add_argument("--transport", metavar="NAME",
                   help="use this transport of the site (still checked against the reports)")
    p.add_argument("--nodes", type=int, metavar="N", help="override the service's node count")
    p.add_argument("--ppn", type=int, metavar="N",
                   help="override the service's processes per node")
    p.add_argument("--account", metavar="PROJECT",
                   help="project/allocation the job is charged to (required by sites whose "
                   "scheduler rejects jobs without one, e.g. ALCF)")
    p.add_argument("--queue", metavar="NAME",
                   help="use this queue of the site's queue table instead of choosing one "
                   "by node count (still checked against its limits)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=_generate)


def _generate(args: argparse.Namespace) -> int:
    check_target(args.output, args.force)  # before any work, so a typo costs nothing
    plan = api.plan(args.site, args.service, nodes=args.nodes, ppn=args.ppn,
                    margo_info=args.margo_info, fi_info=args.fi_info, transport=args.transport,
                    account=args.account, queue=args.queue)
    deployment = api.generate(plan, args.output, force=args.force)
    out = str(Path(args.output))
    if args.json:
        json.dump({"output": out, "files": deployment.files,
                   "transport": plan.transport.protocol, "nodes": plan.nodes,
                   "processes_per_node": plan.processes_per_node,
                   "warnings": [{"local_rank": r, **w.to_dict()} for r, w in plan.warnings],
                   "input_changes": [c.to_dict() for c in changes_to_input(plan)],
                   "site_warnings": site_warnings(plan)},
                  sys.stdout, indent=2)
        print()
        return 0
    err = make_console(stderr=True, soft_wrap=True)
    for warning in site_warnings(plan):
        err.print(f"warning: {warning}", markup=False)
    for rank, w in plan.warnings:
        err.print(f"local rank {rank}: " + w.format(f"configs/rank-{rank}.json"), markup=False)
    print(f"wrote {printable(out)}/ ({len(deployment.files)} files): {plan.service.name} on "
          f"{plan.site.name}, {plan.nodes} node(s) x {plan.processes_per_node} processes, "
          f"{plan.transport.protocol}")
    for note in plan.layout.notes:
        print(f"  note: {printable(note)}")
    changes = changes_to_input(plan)
    if changes:
        print(f"  changed in your Bedrock config ({len(changes)} change(s), recorded in "
              "manifest.json input_changes):")
        for change in changes:
            print(f"    {printable(change.describe())}")
    return 0
