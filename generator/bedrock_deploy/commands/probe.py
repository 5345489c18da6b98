"""``bedrock-deploy probe``: write a site profile for this host (or an hwloc XML topology)."""

from __future__ import annotations

import argparse
import datetime
import json
import sys

from bedrock_deploy.diagnostics import InputError, Problem, SourceLocation
from bedrock_deploy.files import write_text_atomic
from bedrock_deploy.probe import probe, profile_document, render_profile_yaml
from bedrock_deploy.site_profile import SiteProfile, check_site
from bedrock_deploy.terminal import printable
from bedrock_deploy.validation import validate_model


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "probe", help="write a site profile for this host from sysfs or an hwloc XML file",
        description="Probe the node topology (sockets, cores, SMT siblings, NUMA domains, "
        "cpuset, memory, NICs and their NUMA domain) and write a site profile for it. "
        "Run it on a compute node, or run 'lstopo --of xml > FILE' there and pass "
        "--hwloc-xml FILE. reserved_cores cannot be probed: fill them in.")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the profile here (default: standard output)")
    p.add_argument("--hwloc-xml", metavar="FILE",
                   help="read the topology from 'lstopo --of xml' output instead of sysfs")
    p.add_argument("--fi-info", metavar="FILE",
                   help="fi_info output from a compute node: keep only transports it lists")
    p.add_argument("--margo-info", metavar="FILE",
                   help="margo-info output (or its JSON file): keep only transports it "
                   "could initialise")
    p.add_argument("--name", help="profile name (default: the host name)")
    p.add_argument("--sysfs-root", metavar="DIR", default="/",
                   help="read sys/ and proc/ under DIR instead of / (a copied tree)")
    p.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    p.add_argument("--site", metavar="S",
                   help="instead of a node, collect what decays in site profile S (queues and "
                   "limits, compiler/MPI/libfabric modules, fi_info --version, the PE version, "
                   "margo-info through the site's launcher) into a profile fragment")
    p.add_argument("--diff", action="store_true",
                   help="with --site: print a diff against the shipped profile to review")
    p.add_argument("--from", dest="recorded", metavar="DIR",
                   help="with --site: read the commands' outputs from DIR (qstat-Qf.txt, "
                   "scontrol-show-partition.txt, module-avail.txt, fi_info-version.txt, "
                   "margo-info.txt, ...) instead of running them")
    p.set_defaults(func=_probe)


def _probe_site(args: argparse.Namespace) -> int:
    from bedrock_deploy import site_probe
    from bedrock_deploy.sites import load_site

    site = load_site(args.site).profile
    run = site_probe.from_directory(args.recorded) if args.recorded else site_probe.live_runner
    probe = site_probe.collect(site, run, host=args.name)
    if args.diff:
        text = site_probe.diff(probe, site, lambda d: render_profile_yaml(d, ""))
    else:
        data = site_probe.fragment(probe, site)
        header = (f"Facts of site {site.name!r} collected by `bedrock-deploy probe --site` on "
                  f"{probe.host} ({probe.when}). Review, then merge into the profile.")
        text = json.dumps(data, indent=2) + "\n" if args.json else \
            render_profile_yaml(data, header)
    if not args.output:
        sys.stdout.write(text)
        return 0
    out = write_text_atomic(args.output, text)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _probe(args: argparse.Namespace) -> int:
    if args.site:
        return _probe_site(args)
    result = probe(hwloc_xml=args.hwloc_xml, sysfs_root=args.sysfs_root)
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    data, header = profile_document(result, name=args.name, fi_info=args.fi_info,
                                    margo_info=args.margo_info, when=when)
    # What we write must load: validate it exactly as 'sites validate' would.
    origin = args.output or "<probe>"
    site = validate_model(SiteProfile, data, lambda _p: SourceLocation(origin, 1, 1))
    problems = check_site(site)
    if problems:
        raise InputError([Problem(f"probed profile is invalid: {p.message}", path=p.path,
                                  hint=p.hint, file=origin) for p in problems])
    text = json.dumps(data, indent=2) + "\n" if args.json else render_profile_yaml(data, header)
    if not args.output:
        sys.stdout.write(text)
        return 0
    out = write_text_atomic(args.output, text)
    print(f"wrote {printable(out)} ({printable(result.source)}: {result.node.sockets} socket(s) x "
          f"{result.node.cores_per_socket} cores x {result.node.threads_per_core} threads, "
          f"{len(result.node.numa_domains)} NUMA domain(s), {len(result.node.nics)} NIC(s))",
          file=sys.stderr)
    return 0
