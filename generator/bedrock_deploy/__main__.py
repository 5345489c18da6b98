"""``python -m bedrock_deploy``: the command line (see :mod:`bedrock_deploy.cli`)."""

try:
    from bedrock_deploy._entry import run
except KeyboardInterrupt:  # Ctrl-C before the entry point could install its handling
    import os
    import sys

    sys.stderr.write("bedrock-deploy: interrupted (SIGINT): stopped, nothing was written\n")
    sys.stderr.flush()
    os._exit(130)

raise SystemExit(run())
