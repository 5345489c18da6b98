"""The ``bedrock-deploy`` executable's entry point: as little as possible runs before Ctrl-C is
handled. Importing the command line (rich, pydantic, jinja2) takes a noticeable fraction of a
second; a Ctrl-C meanwhile ends with the same one-line message as later (exit status 130), never
a traceback. Everything else is :func:`bedrock_deploy.cli.main`.
"""

import contextlib
import os
import sys

EXIT_INTERRUPTED = 130


def _interrupted_exit() -> None:
    """Exit 130 at once. CPython re-kills itself with SIGINT at exit when a KeyboardInterrupt
    went through one of its own frames unhandled (an import it aborted, say), even after we
    handled it: the status would then be -SIGINT instead of 130."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(EXIT_INTERRUPTED)


def run() -> int:
    try:
        from bedrock_deploy.cli import main
    except KeyboardInterrupt:
        sys.stderr.write("bedrock-deploy: interrupted (SIGINT): stopped, nothing was written\n")
        _interrupted_exit()
    try:
        status = main()
    except KeyboardInterrupt:  # main() handles it; a second one while it reports lands here
        status = EXIT_INTERRUPTED
    if status == EXIT_INTERRUPTED:
        _interrupted_exit()
    return status
