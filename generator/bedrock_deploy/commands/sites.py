"""``bedrock-deploy sites list | show NAME | validate FILE... | schema``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.table import Table
from rich.text import Text
from ruamel.yaml import YAML

from bedrock_deploy.diagnostics import InputError
from bedrock_deploy.files import write_text_atomic
from bedrock_deploy.site_profile import SiteProfile
from bedrock_deploy.sites import NODE_PROBE, load_site, shipped_profiles
from bedrock_deploy.terminal import make_console, printable


def site_schema() -> dict[str, Any]:
    """JSON Schema of site-profile *documents* (share/schemas/site-profile.schema.json).

    The model's schema, plus what the loader accepts before validation: ``node: probe``
    (replaced by this host's probed topology, see :data:`bedrock_deploy.sites.NODE_PROBE`).
    """
    schema = SiteProfile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://bedrock-deploy/schemas/site-profile.schema.json"
    node = schema["properties"]["node"]
    schema["properties"]["node"] = {
        "anyOf": [node, {"const": NODE_PROBE, "description": "probe this host's topology "
                         "(sysfs) when the profile is loaded"}],
        "description": "compute-node topology, or 'probe' for the host loading the profile",
    }
    return schema


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("sites", help="list, show and validate site profiles",
                       description="List, show and validate site profiles.")
    s = p.add_subparsers(dest="sites_command", metavar="ACTION", required=True)

    ls = s.add_parser("list", help="list shipped profiles")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=_list)

    show = s.add_parser("show", help="print a profile merged with what it extends")
    show.add_argument("name", help="shipped profile name or a file path")
    show.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    show.set_defaults(func=_show)

    val = s.add_parser("validate", help="validate profile files (exit 2 on the first bad one)")
    val.add_argument("files", nargs="+", metavar="FILE")
    val.add_argument("--json", action="store_true", help="machine-readable output")
    val.set_defaults(func=_validate)

    sch = s.add_parser("schema", help="print the JSON Schema of site profiles")
    sch.add_argument("-o", "--output", help="write to this file instead of stdout")
    sch.set_defaults(func=_schema)


def _list(args: argparse.Namespace) -> int:
    rows = []
    for name, path in shipped_profiles().items():
        site = load_site(path).profile
        rows.append({"name": name, "scheduler": site.scheduler.type,
                     "launcher": site.launcher.type,
                     "transport": site.transports[0].protocol,
                     "description": site.description, "path": str(path)})
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    table = Table("name", "scheduler", "launcher", "first transport", "description")
    for r in rows:
        table.add_row(*(Text(printable(r[k])) for k in ("name", "scheduler", "launcher",
                                                       "transport", "description")))
    make_console().print(table)
    return 0


def _show(args: argparse.Namespace) -> int:
    loaded = load_site(args.name)
    data = loaded.profile.model_dump(mode="json", exclude_none=True)
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        print()
        return 0
    print(f"# {loaded.profile.name}: merged from "
          + " <- ".join(printable(f) for f in loaded.files))
    yaml = YAML()
    yaml.default_flow_style = None
    yaml.width = 100
    yaml.dump(data, sys.stdout)
    return 0


def _validate(args: argparse.Namespace) -> int:
    results = []
    failed: list[InputError] = []
    for f in args.files:
        try:
            load_site(f)
            results.append({"file": f, "valid": True, "errors": []})
        except InputError as err:
            failed.append(err)
            results.append({"file": f, "valid": False,
                            "errors": [p.to_dict() for p in err.problems]})
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return 2 if failed else 0
    console = make_console(stderr=True, soft_wrap=True)
    for r in results:
        if r["valid"]:
            print(f"{printable(r['file'])}: valid")
    for err in failed:
        for p in err.problems:
            console.print(p.format(), markup=False)
    return 2 if failed else 0


def _schema(args: argparse.Namespace) -> int:
    text = json.dumps(site_schema(), indent=2, sort_keys=False) + "\n"
    if not args.output:
        sys.stdout.write(text)
        return 0
    write_text_atomic(args.output, text)
    return 0
