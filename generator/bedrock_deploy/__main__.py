"""``python -m bedrock_deploy``: the command line (see :mod:`bedrock_deploy.cli`)."""

from bedrock_deploy._entry import run

raise SystemExit(run())
