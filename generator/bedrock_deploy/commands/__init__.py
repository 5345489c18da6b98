"""Subcommands of ``bedrock-deploy``: one module each, discovered by :mod:`bedrock_deploy.cli`."""
