"""Launch scripts for Slurm, PBS, Flux and plain MPI launchers (see :mod:`.render`)."""

from bedrock_deploy.launch.render import render_scripts

__all__ = ["render_scripts"]
