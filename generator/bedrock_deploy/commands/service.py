"""``bedrock-deploy service validate FILE... | schema``: service descriptions on their own."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bedrock_deploy.api import load_service
from bedrock_deploy.diagnostics import InputError
from bedrock_deploy.files import write_text_atomic
from bedrock_deploy.service import ServiceDescription
from bedrock_deploy.terminal import make_console, printable


def service_schema() -> dict[str, Any]:
    """JSON Schema of service *documents* (share/schemas/service.schema.json)."""
    schema = ServiceDescription.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://bedrock-deploy/schemas/service.schema.json"
    # A document gives its providers either inline or through an existing Bedrock config
    # (the loader fills 'components' from it before validating the model).
    schema["required"] = [r for r in schema.get("required", []) if r != "components"]
    schema["anyOf"] = [{"required": ["components"]}, {"required": ["bedrock_config"]}]
    return schema


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("service", help="validate service descriptions, print their schema",
                       description="Validate service descriptions (YAML, or an existing "
                       "Bedrock JSON config) and print their JSON Schema.")
    s = p.add_subparsers(dest="service_command", metavar="ACTION", required=True)
    val = s.add_parser("validate", help="validate service files (exit 2 if any is bad)")
    val.add_argument("files", nargs="+", metavar="FILE")
    val.add_argument("--json", action="store_true", help="machine-readable output")
    val.set_defaults(func=_validate)
    sch = s.add_parser("schema", help="print the JSON Schema of service descriptions")
    sch.add_argument("-o", "--output", help="write to this file instead of stdout")
    sch.set_defaults(func=_schema)


def _validate(args: argparse.Namespace) -> int:
    results: list[dict[str, Any]] = []
    failed: list[InputError] = []
    for f in args.files:
        try:
            loaded = load_service(f)
            svc = loaded.service
            results.append({"file": f, "valid": True, "errors": [], "name": svc.name,
                            "components": [c.name for c in svc.components]})
        except InputError as err:
            failed.append(err)
            results.append({"file": f, "valid": False,
                            "errors": [p.to_dict() for p in err.problems]})
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return 2 if failed else 0
    for r in results:
        if r["valid"]:
            print(f"{printable(r['file'])}: valid ({r['name']}: {', '.join(r['components'])})")
    console = make_console(stderr=True, soft_wrap=True)
    for error in failed:
        for p in error.problems:
            console.print(p.format(), markup=False)
    return 2 if failed else 0


def _schema(args: argparse.Namespace) -> int:
    text = json.dumps(service_schema(), indent=2) + "\n"
    if args.output:
        write_text_atomic(args.output, text)
    else:
        sys.stdout.write(text)
    return 0
