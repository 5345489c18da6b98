"""Open MPI's ``mpirun``/``mpiexec`` inside an emulated PBS job (:mod:`.pbs`).

The launcher is the real Open MPI of this machine; what PBS gives it on a real cluster is
emulated: its TM interface tells Open MPI the job's nodes and their slots (one slot per line of
``$PBS_NODEFILE``: "When running under a resource manager ... Open MPI will obtain both the
hostnames and the number of slots directly from the resource manager",
https://docs.open-mpi.org/en/v5.0.x/launching-apps/scheduling.html) and starts its daemons on
them (here: a hostfile of ``$PBS_NODEFILE`` and an rsh agent that starts each daemon as a step
of the backing Slurm job). Every option of the job script reaches the real ``mpirun``, which
maps, checks slots and refuses exactly as it would on the cluster. Each rank goes through
:mod:`.rank` (its node's fabric, the CPU map) before the program.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from collections import Counter
from pathlib import Path

from bedrock_deploy.rehearse.common import Context, ToolError, run_forwarding_signals

_ONE_VALUE = {"-np", "--np", "-n", "-c", "-N", "--npernode", "-npernode", "--map-by",
              "-map-by", "--bind-to", "-bind-to", "--rank-by", "-rank-by", "-x", "--host",
              "-H", "-host", "--hostfile", "-hostfile", "--machinefile", "-machinefile",
              "-wdir", "--wdir", "-wd", "--prefix", "--output-filename", "-am", "--am",
              "--tune", "--app", "--path", "--preload-files", "--cpus-per-proc",
              "--cpus-per-rank", "--use-hwthread-cpus-per-rank"}
_TWO_VALUES = {"--mca", "-mca", "--gmca", "-gmca"}


def split(argv: list[str]) -> tuple[list[str], list[str]]:
    """mpirun argv -> (options, program argv)."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            return argv[:i], argv[i + 1:]
        if not a.startswith("-"):
            return argv[:i], argv[i:]
        name = a.split("=", 1)[0]
        if name in _TWO_VALUES and "=" not in a:
            i += 3
        elif name in _ONE_VALUE and "=" not in a:
            i += 2
        else:
            i += 1
    return argv, []


def _value(options: list[str], *names: str) -> str | None:
    for i, o in enumerate(options):
        name, eq, value = o.partition("=")
        if name in names:
            return value if eq else (options[i + 1] if i + 1 < len(options) else None)
    return None


def _check_slots(ctx: Context, options: list[str], slots: Counter[str]) -> None:
    """Open MPI maps ranks onto the slots the resource manager gives (PBS: the lines of
    $PBS_NODEFILE, mpiprocs per chunk) and refuses more unless told --oversubscribe."""
    n = _value(options, "-np", "--np", "-n", "-c")
    per_node = None
    mapping = _value(options, "--map-by", "-map-by") or ""
    if mapping.startswith("ppr:"):
        per_node = mapping.split(":")[1]
    per_node = _value(options, "-N", "--npernode", "-npernode") or per_node
    if "--oversubscribe" in options or not per_node or not per_node.isdigit():
        return
    short = {h: c for h, c in slots.items() if c < int(per_node)}
    detail = (f"{per_node} rank(s) per node ({n or '?'} in all) on "
              + ", ".join(f"{h}: {c} slot(s)" for h, c in sorted(slots.items()))
              + " (PBS_NODEFILE lists each node mpiprocs times: -l select=N gives 1)")
    ctx.event("ompi.slots", not short, detail, tool="mpirun")


def mpirun(ctx: Context, argv: list[str]) -> int:
    options, program = split(argv)
    if not program:
        raise ToolError("mpirun: no executable was specified")
    jobid = os.environ.get("PBS_JOBID", "")
    jobdir = ctx.dir / "jobs" / jobid.split(".")[0]
    if not jobid or not (jobdir / "slurm-env.json").is_file():
        raise ToolError("mpirun: no PBS job here (PBS_JOBID)")
    nodefile = Path(os.environ.get("PBS_NODEFILE", jobdir / "nodefile"))
    slots = Counter(nodefile.read_text().split())
    _check_slots(ctx, options, slots)
    hostfile = jobdir / f"ompi-hosts-{os.getpid()}"
    hostfile.write_text("".join(f"{h} slots={n}\n" for h, n in slots.items()))
    slurm_env = json.loads((jobdir / "slurm-env.json").read_text())
    agent = jobdir / "ompi-rsh-agent"
    if not agent.exists():
        srun = shlex.join([ctx["real"]["srun"], "--overlap", "--overcommit",
                           f"--jobid={slurm_env.get('SLURM_JOB_ID', '')}", "--nodes=1",
                           "--ntasks=1", "--cpu-bind=none", "--export=ALL"])
        agent.write_text(
            "#!/bin/bash\n# PBS TM's task start, emulated: an Open MPI daemon on the named node "
            "(a step of the backing Slurm job)\n"
            + "".join(f"export {k}={shlex.quote(v)}\n" for k, v in slurm_env.items())
            + f"export SLURM_CONF={shlex.quote(ctx['cluster']['slurm_conf'])}\n"
            + 'while [ "${1#-}" != "$1" ]; do shift; done  # rsh-style options\n'
            + "# as ssh does: the rest is one command line for the node's shell\n"
            + f'host=$1; shift\nexec {srun} --nodelist="$host" /bin/sh -c "$*"\n')
        agent.chmod(0o755)
    spec = {"launcher": "mpirun", "rank_vars": "openmpi", "vnis": "", "site_cpus": []}
    spec_file = jobdir / f"ompi-app-{os.getpid()}.json"
    spec_file.write_text(json.dumps(spec))
    real = shutil.which("orterun") or shutil.which("mpirun.openmpi") or "/usr/bin/orterun"
    # The TM interface's part: the nodes and slots, the daemons' start. The rank shim gives
    # each rank what the emulation adds (it needs no forwarded environment).
    cmd = [real, "--hostfile", str(hostfile), "--mca", "plm", "rsh", "--mca",
           "plm_rsh_agent", str(agent), "--mca", "plm_rsh_no_tree_spawn", "1",
           "--mca", "ras", "^slurm,tm", "--mca", "ess", "^slurm",
           *options, *ctx.tool_argv("rank", str(spec_file)), "--", *program]
    return run_forwarding_signals(cmd)


def main(ctx: Context, argv: list[str]) -> int:
    return mpirun(ctx, argv)
