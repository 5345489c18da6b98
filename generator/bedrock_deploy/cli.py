"""The ``bedrock-deploy`` command line.

Each subcommand lives in its own module under :mod:`bedrock_deploy.commands` and registers itself
(ReFrame-style registration): a module there defines ``register(subparsers)`` that adds its parser
and sets ``func`` to a callable taking the parsed arguments and returning an exit status.
Bad input (:class:`InputError`) prints its located problems and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import sys
from collections.abc import Sequence

from rich.console import Console

from bedrock_deploy import __version__, commands
from bedrock_deploy.diagnostics import InputError

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bedrock-deploy",
        description="Generate and launch Mochi Bedrock deployments from a site profile "
        "and a service description.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InputError as err:
        if getattr(args, "json", False):
            json.dump({"errors": [p.to_dict() for p in err.problems]}, sys.stdout, indent=2)
            sys.stdout.write("\n")
        err_console = Console(stderr=True, highlight=False, soft_wrap=True)
        for p in err.problems:
            err_console.print(p.format(), markup=False)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (``| head``): stop quietly, as cat and grep do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    raise SystemExit(main())
