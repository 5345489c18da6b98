"""Cray PALS ``mpiexec`` emulated inside an emulated PBS job (:mod:`.pbs`).

Options as ALCF documents them (https://docs.alcf.anl.gov/aurora/running-jobs-aurora/):
``-n/-np``, ``--ppn/-ppn``, ``-d/--depth``, ``--cpu-bind list:<cpus>:<cpus>...|depth|core|none``,
``--single-node-vni``, ``--no-vni``, ``--env NAME=VALUE``, ``--envall``, ``--hosts``,
``--hostfile``, ``--label``, ``--line-buffer``. Ranks fill the job's nodes (``$PBS_NODEFILE``) in
order, ``--ppn`` per node. Each rank gets PALS's variables (``PALS_RANKID``,
``PALS_LOCAL_RANKID``, ``PALS_NODEID``, ``PALS_DEPTH``, and PMI's ``PMI_RANK``, ``PMI_SIZE``,
``PMI_LOCAL_RANK``, ``PMI_LOCAL_SIZE``) and its binding, applied for real through the CPU map.

Slingshot VNIs as PALS hands them out: an application on two or more nodes gets one, a
single-node application only with ``--single-node-vni``, and an application that PALS starts on
the node ``mpiexec`` runs on only with ``PALS_LOCAL_LAUNCH=0`` as well (a PALS bug:
https://github.com/mochi-hpc-experiments/platform-configurations/blob/main/ANL/Polaris/README.md).
``SLINGSHOT_VNIS`` lists the application's VNI, then the job's (mochi-doc
docs/source/misc/06_cxi.rst: processes of one job reach each other on the job VNI).

The ranks run as a step of the backing Slurm job (``srun --overlap``), started through
:mod:`.rank`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from bedrock_deploy.rehearse.common import (
    Context,
    ToolError,
    check_cpu_bind,
    next_number,
    parse_cpus,
    real_node,
    run_forwarding_signals,
)

_VALUE_OPTIONS = {"-n": "n", "-np": "n", "--np": "n", "-ppn": "ppn", "--ppn": "ppn",
                  "-d": "depth", "--depth": "depth", "--cpu-bind": "cpu_bind",
                  "--env": "env", "--hosts": "hosts", "-hosts": "hosts",
                  "--hostfile": "hostfile", "-hostfile": "hostfile", "-f": "hostfile"}
_FLAG_OPTIONS = {"--single-node-vni": "single_node_vni", "--no-vni": "no_vni",
                 "--envall": "envall", "--envnone": "envnone", "--label": "label",
                 "-l": "label", "--line-buffer": "line_buffer", "--noenv": "envnone"}


def parse(argv: list[str]) -> tuple[dict[str, Any], list[str], list[str]]:
    """-> (options, program argv, problems)."""
    opts: dict[str, Any] = {"env": []}
    problems: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            return opts, argv[i + 1:], problems
        if not a.startswith("-"):
            return opts, argv[i:], problems
        name, eq, inline = a.partition("=")
        if len(name) > 2 and not name.startswith("--"):
            name = "-" + name  # PALS takes long options with one dash too (-ppn, -envall)
            a = "-" + a
        if name in _VALUE_OPTIONS:
            if eq:
                value = inline
            else:
                i += 1
                if i >= len(argv):
                    problems.append(f"{a} needs a value")
                    break
                value = argv[i]
            key = _VALUE_OPTIONS[name]
            if key == "env":
                opts["env"].append(value)
            else:
                opts[key] = value
        elif a in _FLAG_OPTIONS:
            opts[_FLAG_OPTIONS[a]] = True
        else:
            problems.append(f"unknown option {a!r}")
        i += 1
    return opts, [], problems


def _int(opts: dict[str, Any], key: str, problems: list[str], default: int | None) -> int | None:
    if key not in opts:
        return default
    text = str(opts[key])
    if not text.isdigit() or int(text) < 1:
        problems.append(f"{key} {text!r} is not a positive number")
        return default
    return int(text)


def binding(ctx: Context, spec: str | None, ppn: int, depth: int,
            problems: list[str]) -> list[list[int]]:
    """Site CPUs of each local rank for a --cpu-bind value (site numbering)."""
    node = ctx["site_node"]
    total = ctx.site_cpus
    if spec is None:
        # PALS binds each rank to one hardware thread unless told (ALCF job scripts; the
        # reason the generated scripts always say --cpu-bind).
        return [[local % total] for local in range(ppn)]
    if spec == "none":
        return [list(range(total)) for _ in range(ppn)]
    if spec == "depth":
        return [[c % total for c in range(local * depth, (local + 1) * depth)]
                for local in range(ppn)]
    if spec == "core":
        cores = node["core_cpus"]
        return [list(cores[local % len(cores)]) for local in range(ppn)]
    if spec.startswith("list:"):
        sets = []
        for entry in spec[5:].split(":"):
            try:
                cpus = parse_cpus(entry)
            except ValueError:
                problems.append(f"--cpu-bind {spec}: {entry!r} is not a CPU list")
                return []
            if not cpus:
                problems.append(f"--cpu-bind {spec}: an empty CPU set")
                return []
            sets.append(cpus)
        if len(sets) < ppn:
            problems.append(f"--cpu-bind {spec}: {len(sets)} CPU set(s) for {ppn} rank(s) per "
                            "node (one set per local rank)")
        return [sets[local % len(sets)] for local in range(ppn)] if sets else []
    problems.append(f"--cpu-bind {spec!r}: not one of list:..., depth, core, none")
    return []


def vni_rule(opts: dict[str, Any], nodes: int, only_local_node: bool,
             pals_local_launch: str | None) -> tuple[bool, str]:
    """Does an application get a VNI from PALS, and why (module docstring)."""
    if opts.get("no_vni"):
        return False, "--no-vni: no VNI"
    if nodes >= 2:
        return True, "an application on several nodes gets a VNI"
    if not opts.get("single_node_vni"):
        return False, "a single-node application gets no VNI without --single-node-vni"
    if only_local_node and pals_local_launch != "0":
        return False, ("--single-node-vni on the node mpiexec runs on needs PALS_LOCAL_LAUNCH=0 "
                       "(PALS starts it locally, without the VNI, otherwise)")
    return True, "--single-node-vni: the single-node application gets a VNI"


def mpiexec(ctx: Context, argv: list[str]) -> int:
    opts, program, problems = parse(argv)
    if not program:
        problems.append("no program to run")
    jobid = os.environ.get("PBS_JOBID", "")
    jobdir = ctx.dir / "jobs" / jobid.split(".")[0]
    if not jobid or not (jobdir / "slurm-env.json").is_file():
        raise ToolError("mpiexec: no PBS job here (PBS_JOBID): PALS mpiexec runs inside a job")
    hosts = list(dict.fromkeys(Path(os.environ.get("PBS_NODEFILE", jobdir / "nodefile"))
                               .read_text().split()))
    if opts.get("hosts"):
        hosts = [h for h in str(opts["hosts"]).split(",") if h]
    n = _int(opts, "n", problems, None)
    ppn = _int(opts, "ppn", problems, None)
    depth = _int(opts, "depth", problems, 1) or 1
    if n is None:
        n = len(hosts) * (ppn or 1)
    if ppn is None:
        ppn = -(-n // len(hosts))
    ctx.event("pals.options", not problems,
              "; ".join(problems) or f"mpiexec {' '.join(argv[:len(argv) - len(program)])}",
              tool="mpiexec")
    if problems:
        raise ToolError("mpiexec: " + "; ".join(problems))
    used_nodes = -(-n // ppn)
    if used_nodes > len(hosts):
        msg = (f"{n} ranks at {ppn} per node need {used_nodes} nodes; the job has "
               f"{len(hosts)} ({', '.join(hosts)})")
        ctx.event("pals.placement", False, msg, tool="mpiexec")
        raise ToolError(f"mpiexec: {msg}")
    ctx.event("pals.placement", True, f"{n} rank(s), {ppn} per node, on {used_nodes} node(s)",
              tool="mpiexec")
    bind_problems: list[str] = []
    sets = binding(ctx, opts.get("cpu_bind"), min(ppn, n), depth, bind_problems)
    check_cpu_bind(ctx, sets, bind_problems, f"--cpu-bind {opts.get('cpu_bind', '(default)')}",
                   "mpiexec", "mpiexec: ")
    # VNIs (PALS: per application, plus the job's)
    local_node = os.uname().nodename
    on_hosts = hosts[:used_nodes]
    gets, why = vni_rule(opts, used_nodes, on_hosts == [local_node],
                         os.environ.get("PALS_LOCAL_LAUNCH"))
    vnis = ""
    if gets:
        job_vni = ctx["vni_base"] + int(jobdir.name) % 1000  # the job's, per PBS job
        app_vni = next_number(jobdir / "vni-counter", ctx["vni_base"] + 1000)
        vnis = f"{app_vni},{job_vni}"
    ctx.event("launcher.vni", True, f"mpiexec {' '.join(program[:1])}: {why}",
              tool="mpiexec", vnis=vnis, program=program[:1])
    # each rank on its node (of the site; folded nodes run on the rehearsal's node of the name)
    rank_hosts = [on_hosts[r // ppn] for r in range(n)]
    spec = {"launcher": "mpiexec", "size": n, "ppn": ppn, "depth": depth,
            "hosts": rank_hosts, "site_cpus": sets, "vnis": vnis,
            "env": dict(e.split("=", 1) for e in opts["env"] if "=" in e),
            "rank_vars": "pals"}
    spec_file = jobdir / f"app-{os.getpid()}.json"
    spec_file.write_text(json.dumps(spec))
    hostfile = jobdir / f"app-{os.getpid()}.hosts"
    hostfile.write_text("".join(f"{real_node(h)}\n" for h in rank_hosts))
    real_hosts = list(dict.fromkeys(real_node(h) for h in rank_hosts))
    slurm_env = json.loads((jobdir / "slurm-env.json").read_text())
    env = {**os.environ, **slurm_env, "SLURM_CONF": ctx["cluster"]["slurm_conf"],
           "SLURM_HOSTFILE": str(hostfile)}
    for k in ("SLURM_CPU_BIND", "SLURM_CPU_BIND_TYPE", "SLURM_CPU_BIND_LIST",
              "SLURM_NTASKS", "SLURM_NPROCS", "SLURM_TASKS_PER_NODE", "SLURM_NTASKS_PER_NODE"):
        env.pop(k, None)
    srun = [ctx["real"]["srun"], "--overlap", "--overcommit",
            f"--jobid={slurm_env.get('SLURM_JOB_ID', '')}",
            f"--nodes={len(real_hosts)}", f"--ntasks={n}",
            "--distribution=arbitrary", "--cpu-bind=none",  # SLURM_HOSTFILE: a node per rank
            "--mpi=pmix", "--kill-on-bad-exit=0", "--export=ALL",
            *ctx.tool_argv("rank", str(spec_file)), *program]
    return run_forwarding_signals(srun, env)


def main(ctx: Context, argv: list[str]) -> int:
    return mpiexec(ctx, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(Context.load(sys.argv[1]), sys.argv[2:]))
