"""``bedrock-deploy rehearse DIR [--nodes N] [--json]``: run a deployment generated for any site
on the test cluster, with its scheduler, launcher, fabric and software emulated, and print the
checklist of every rule checked (:mod:`bedrock_deploy.rehearse`).

Exit status: 0 the job would be accepted, start, become ready, serve its client and stop
cleanly; 1 a rule failed (the checklist says what the real machine would do and how to fix
it) or no test cluster runs; 2 bad input (not a deployment directory).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bedrock_deploy.errors import ServiceError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "rehearse", help="run a deployment for any site here, on the test cluster, and check it",
        description="Run DIR's real job script on N nodes of the namespace test cluster "
        "(tests/cluster/cluster.sh), with what cannot exist here (PBS, PALS, Slingshot, the "
        "site's CPUs, modules, Spack) replaced by emulations that enforce their documented "
        "rules; print the checklist. Exit 0 only when the job would be accepted, start, "
        "become ready, serve its client and stop cleanly.")
    p.add_argument("directory", metavar="DIR", help="a directory written by 'generate'")
    p.add_argument("--nodes", type=int, default=2, metavar="N",
                   help="nodes of the test cluster the rehearsal may use (default 2)")
    p.add_argument("--timeout", type=float, default=240.0, metavar="SECONDS",
                   help="longest the rehearsal may take before the job is cancelled "
                   "(default 240)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_rehearse)


def _rehearse(args: argparse.Namespace) -> int:
    from bedrock_deploy.rehearse.run import rehearse

    def progress(msg: str) -> None:
        if not args.json:
            print(f"[rehearse] {msg}", file=sys.stderr, flush=True)

    try:
        report = rehearse(Path(args.directory), args.nodes, timeout=args.timeout,
                          progress=progress)
    except ServiceError as err:
        print(err.format(), file=sys.stderr)
        return 1
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        print()
    else:
        print(report.format())
    return 0 if report.ok else 1
