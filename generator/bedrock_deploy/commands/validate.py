"""``bedrock-deploy validate FILE.json... [--site S] [--processes N] [--json]``."""

from __future__ import annotations

import argparse
import json
import sys

from bedrock_deploy.bedrock_validator import validate_file
from bedrock_deploy.sites import load_site
from bedrock_deploy.terminal import make_console, printable

EXIT_INVALID = 2


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "validate", help="check Bedrock JSON configs against what real Bedrock/Margo accept",
        description="Check Bedrock configs (generated or hand-written) against the rules the "
        "real Bedrock 0.16 / Margo 0.24 enforce or silently get wrong; with --site, also "
        "against the node's real cores. Exit 2 if any error is found.")
    p.add_argument("files", nargs="+", metavar="FILE.json")
    p.add_argument("--site", metavar="S", help="site profile: check CPU ids, protocol, Spack")
    p.add_argument("--processes", type=int, metavar="N",
                   help="total processes the config runs on (checks flock bootstrap)")
    p.add_argument("--address", metavar="ADDR",
                   help="the address or protocol given on the bedrock command line (it "
                   "overrides margo.mercury.address); '' if none is given")
    p.add_argument("--ppn", type=int, metavar="N",
                   help="ranks per node (checks xstreams left to Argobots' default pinning)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_validate)


def _validate(args: argparse.Namespace) -> int:
    site = load_site(args.site).profile if args.site else None
    results = []
    failed = False
    for f in args.files:
        issues = validate_file(f, site=site, total_processes=args.processes,
                               cli_address=args.address, ranks_per_node=args.ppn)
        errors = [i for i in issues if i.severity == "error"]
        failed |= bool(errors)
        results.append((f, issues, errors))
    if args.json:
        json.dump([{"file": f, "valid": not errors, "issues": [i.to_dict() for i in issues]}
                   for f, issues, errors in results], sys.stdout, indent=2)
        print()
        return EXIT_INVALID if failed else 0
    err = make_console(stderr=True, soft_wrap=True)
    for f, issues, errors in results:
        for i in issues:
            err.print(i.format(f), markup=False)
        warnings = len(issues) - len(errors)
        status = "valid" if not errors else f"{len(errors)} error(s)"
        print(f"{printable(f)}: {status}" + (f", {warnings} warning(s)" if warnings else ""))
    return EXIT_INVALID if failed else 0
