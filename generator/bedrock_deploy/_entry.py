"""The ``bedrock-deploy`` executable's entry point: as little as possible runs before Ctrl-C is
handled. Importing the command line (rich, pydantic, jinja2) takes a noticeable fraction of a
second; a Ctrl-C meanwhile ends with the same one-line message as later (exit status 130), never
a traceback. Everything else is :func:`bedrock_deploy.cli.main`.
"""

import sys


def run() -> int:
    try:
        from bedrock_deploy.cli import EXIT_INTERRUPTED, main
    except KeyboardInterrupt:
        sys.stderr.write("bedrock-deploy: interrupted (SIGINT): stopped, nothing was written\n")
        return 130
    try:
        return main()
    except KeyboardInterrupt:  # main() handles it; a second one while it reports lands here
        return EXIT_INTERRUPTED
