"""One process started by an emulated launcher, on its node, just before it becomes the program.

The step of the backing Slurm job starts ``python -m bedrock_deploy.rehearse.tool CTX rank
SPEC -- program args`` on every task; this sets what the emulated launcher gives the process
(its rank variables, its Slingshot VNI or none, its CPU binding applied for real through the CPU
map, the node's emulated fabric), records it, and execs the program (same pid).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bedrock_deploy.rehearse.common import Context, ToolError, format_cpus

_VNI_VARS = ("SLINGSHOT_VNIS", "SLINGSHOT_DEVICES", "SLINGSHOT_SVC_IDS", "SLINGSHOT_TCS")


def rank(ctx: Context, argv: list[str]) -> int:
    if not argv:
        raise ToolError("rank: no spec")
    spec = json.loads(Path(argv[0]).read_text())
    program = argv[1:]
    if program[:1] == ["--"]:
        program = program[1:]
    if not program:
        raise ToolError("rank: no program")
    env = dict(os.environ)
    if spec.get("rank_vars") == "openmpi":  # started by Open MPI's daemons
        rank_id = int(env.get("OMPI_COMM_WORLD_RANK", "0"))
        local = int(env.get("OMPI_COMM_WORLD_LOCAL_RANK", "0"))
        node = int(env.get("OMPI_COMM_WORLD_NODE_RANK", "0"))
        size = int(env.get("OMPI_COMM_WORLD_SIZE", "1"))
    else:  # a step of the backing Slurm job
        rank_id = int(env.get("SLURM_PROCID", "0"))
        local = int(env.get("SLURM_LOCALID", "0"))
        node = int(env.get("SLURM_NODEID", "0"))
        size = int(spec.get("size", env.get("SLURM_NTASKS", "1")))
    ppn = int(spec.get("ppn", 1))
    hosts = spec.get("hosts") or []
    host_name = hosts[rank_id] if rank_id < len(hosts) else ""
    if hosts:  # placed by the emulated launcher: the site's node and local rank
        node, local = rank_id // ppn, rank_id % ppn
        if spec.get("rank_vars") == "slurm":  # what the site's srun would have set
            env.update({"SLURM_LOCALID": str(local), "SLURM_NODEID": str(node),
                        "SLURMD_NODENAME": host_name})
    if spec.get("rank_vars") == "pals":
        local_size = min(ppn, size - node * ppn)
        env.update({"PALS_RANKID": str(rank_id), "PALS_LOCAL_RANKID": str(local),
                    "PALS_NODEID": str(node), "PALS_DEPTH": str(spec.get("depth", 1)),
                    "PALS_LOCAL_SIZE": str(local_size),
                    "PMI_RANK": str(rank_id), "PMI_SIZE": str(size),
                    "PMI_LOCAL_RANK": str(local), "PMI_LOCAL_SIZE": str(local_size)})
    env.update(spec.get("env") or {})
    # Slingshot: the VNI the launcher handed out, or none.
    for var in _VNI_VARS:
        env.pop(var, None)
    if spec.get("vnis"):
        devices = ctx["cxi_devices"] or ["cxi0"]
        env["SLINGSHOT_VNIS"] = spec["vnis"]
        env["SLINGSHOT_DEVICES"] = ",".join(devices)
        env["SLINGSHOT_SVC_IDS"] = ",".join(str(ctx["svc_id"]) for _ in devices)
    # The node's fabric and the cluster's MPI settings (what the site's NIC and MPI give).
    env.update(ctx["node_env"])
    # The binding, applied for real on this host's CPUs through the map.
    sets = spec.get("site_cpus") or []
    site_cpus = sets[local % len(sets)] if sets else list(range(ctx.site_cpus))
    host = ctx.host_cpus(site_cpus)
    os.sched_setaffinity(0, host)
    env["BEDROCK_REHEARSAL_CPU_MAP"] = ",".join(str(c) for c in ctx["cpu_map"])
    env["BEDROCK_REHEARSAL_SITE_CPUS"] = format_cpus(site_cpus)
    preload = ctx["preload"]
    if preload:
        env["LD_PRELOAD"] = " ".join(p for p in (preload, env.get("LD_PRELOAD", "")) if p)
    env["BEDROCK_REHEARSAL_LAUNCHED"] = spec.get("launcher", "?")
    ctx.event("rank", True, "", launcher=spec.get("launcher"), rank=rank_id, local=local,
              node=node, site_cpus=format_cpus(site_cpus), host_cpus=format_cpus(host),
              vnis=spec.get("vnis", ""), program=program[:2], helper=bool(spec.get("helper")))
    if host_name and host_name != os.uname().nodename:
        # a node of the site folded onto this one: its own host name (UTS namespace)
        program = ["unshare", "--uts", "--", "sh", "-c", 'hostname "$0" && exec "$@"',
                   host_name, *program]
    try:
        os.execvpe(program[0], program, env)
    except OSError as err:
        raise ToolError(f"rank {rank_id}: cannot run {program[0]}: {err.strerror}",
                        status=127) from None


def main(ctx: Context, argv: list[str]) -> int:
    return rank(ctx, argv)
