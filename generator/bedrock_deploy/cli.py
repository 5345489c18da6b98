"""The ``bedrock-deploy`` command line.

Each subcommand lives in its own module under :mod:`bedrock_deploy.commands` and registers itself
(ReFrame-style registration): a module there defines ``register(subparsers)`` that adds its parser
and sets ``func`` to a callable taking the parsed arguments and returning an exit status.

Library code raises; only this module turns what it raises into an exit status and one message:

- bad input (:class:`~bedrock_deploy.diagnostics.InputError`): its located problems
  (``file:line:column: error: key.path: what`` and a ``hint:`` line), exit status 2;
- writing failed for a reason outside the input (:class:`~bedrock_deploy.diagnostics.OutputError`,
  any other ``OSError``: disk full, quota, permissions): one line, exit status 1; the writers
  leave nothing half-written;
- Ctrl-C (SIGINT) at any moment, imports included: one line, exit status 130;
- the reader of our output went away (``| head``): quietly, exit status 141.

Every message is :func:`~bedrock_deploy.diagnostics.printable` (control characters from inputs
are escaped) and written as plain text: no markup or emoji codes are interpreted.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import pkgutil
import sys
from collections.abc import Sequence

from bedrock_deploy import __version__, commands
from bedrock_deploy.diagnostics import InputError, OutputError, printable

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
PROG = "bedrock-deploy"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Generate and launch Mochi Bedrock deployments from a site profile "
        "and a service description.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


@functools.cache
def _parser() -> argparse.ArgumentParser:
    """The parser, built once per process (argparse looks up translations of every help text:
    10 ms for each command line parsed in-process otherwise)."""
    return build_parser()


def _say(text: str) -> None:
    """One message on stderr, whatever state stderr is in."""
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def report_input_error(err: InputError, *, as_json: bool = False) -> None:
    """Print bad input: located problems on stderr (and as JSON on stdout with --json)."""
    if as_json:
        json.dump({"errors": [p.to_dict() for p in err.problems]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        sys.stdout.flush()
    for p in err.problems:
        _say(p.format())


def _run(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InputError as err:
        report_input_error(err, as_json=bool(getattr(args, "json", False)))
        return EXIT_BAD_INPUT
    except OutputError as err:
        hint = f"; {err.hint}" if err.hint else ""
        _say(printable(f"{PROG}: error: {err}: nothing was left half-written{hint}"))
        return EXIT_FAILED
    except BrokenPipeError:
        # the reader went away (``| head``): stop quietly, as cat and grep do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as err:
        where = f": {err.filename}" if err.filename else ""
        _say(printable(f"{PROG}: error: {err.strerror or err}{where}"))
        return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _run(argv)
    except KeyboardInterrupt:
        _say(f"{PROG}: interrupted (SIGINT): stopped, nothing was left half-written")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
