"""Entry point of every emulated command of a rehearsal:
``python -m bedrock_deploy.rehearse.tool CONTEXT NAME ARGS...`` (the scripts in
``run/rehearsal/bin`` and ``site-bin`` call it). A refusal prints the tool's message and exits
with its status, as the real command would.
"""

from __future__ import annotations

import sys

from bedrock_deploy.rehearse.common import Context, ToolError


def run(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m bedrock_deploy.rehearse.tool CONTEXT NAME [ARGS...]",
              file=sys.stderr)
        return 2
    ctx = Context.load(argv[0])
    name, args = argv[1], argv[2:]
    try:
        if name in {"qsub", "qstat", "qdel", "pbs-job"}:
            from bedrock_deploy.rehearse import pbs

            return pbs.main(ctx, name, args)
        if name == "mpiexec":
            from bedrock_deploy.rehearse import pals

            return pals.main(ctx, args)
        if name == "ompi-mpirun":
            from bedrock_deploy.rehearse import openmpi

            return openmpi.main(ctx, args)
        if name in {"sbatch", "srun"}:
            from bedrock_deploy.rehearse import slurm

            return slurm.main(ctx, name, args)
        if name == "rank":
            from bedrock_deploy.rehearse import rank

            return rank.main(ctx, args)
        if name in {"module", "spack", "tool-ran"}:
            from bedrock_deploy.rehearse import standins

            return standins.main(ctx, name, args)
    except ToolError as err:
        print(err, file=sys.stderr)
        return err.status
    print(f"bedrock-deploy rehearse: no emulated tool {name!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
