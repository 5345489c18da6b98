"""Slurm sites: the test cluster's real Slurm, with the site's rules checked around it and what
Debian's Slurm lacks emulated.

``sbatch`` (emulated front): reads the ``#SBATCH`` directives (up to the first command, as
sbatch does: https://slurm.schedmd.com/sbatch.html) and its command line, checks them against
the site profile (queue table by partition and QOS, account rule, node count and time limits,
tasks x CPUs and threads per core of the site's node), then submits to the real Slurm a job of
the same script on the cluster's nodes, whose resource requests are scaled to them (the site's
partition, QOS and 56-CPU tasks do not exist here; their rules were checked).

``srun`` (inside the job): the real srun of the cluster, with the HPE Slingshot switch plugin's
``--network`` emulated (https://slurm.schedmd.com/srun.html#OPT_network): a step on two or more
nodes gets a VNI, a single-node step only with ``single_node_vni``; ``job_vni`` adds the job's
VNI after the step's (``SLINGSHOT_VNIS=<step>,<job>``); ``no_vni`` gives none; a step's
``--network`` replaces the job's. CPU binding (``--cpu-bind``) is checked against the site's
node and applied through the CPU map by :mod:`.rank`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bedrock_deploy.rehearse.common import (
    Context,
    ToolError,
    check_cpu_bind,
    fold,
    next_number,
    real_node,
    run_forwarding_signals,
)
from bedrock_deploy.rehearse.environment import job_prefix

# sbatch/srun long options with a value, by their short form (the ones jobs use).
_SHORT = {"N": "nodes", "n": "ntasks", "c": "cpus-per-task", "t": "time", "p": "partition",
          "q": "qos", "A": "account", "C": "constraint", "J": "job-name", "o": "output",
          "e": "error", "w": "nodelist", "m": "distribution", "W": "wait", "K": "kill-on-bad-exit",
          "D": "chdir"}
_VALUE = {"nodes", "ntasks", "ntasks-per-node", "cpus-per-task", "time", "partition", "qos",
          "account", "constraint", "job-name", "output", "error", "nodelist", "distribution",
          "wait", "cpu-bind", "mpi", "network", "threads-per-core", "signal", "chdir", "export",
          "mem", "gres", "gpus", "gpus-per-node", "hint", "exclude", "dependency", "mail-type",
          "mail-user", "reservation", "core-spec", "cores-per-socket", "sockets-per-node"}
_OPTIONAL_VALUE = {"kill-on-bad-exit", "exclusive", "cpu-bind"}
_NETWORK_OPTIONS = {"job_vni", "single_node_vni", "no_vni", "adjust_limits", "no_adjust_limits",
                    "disable_rdzv_get", "def_tle", "def_ptle", "def_les", "def_acs", "def_eqs",
                    "def_cts", "def_tgqs", "def_oxes", "depth", "tcs"}


def parse_options(words: list[str]) -> tuple[dict[str, str], list[str], list[str]]:
    """-> ({option: value}, operands, problems); flags get "" (the last value wins)."""
    opts: dict[str, str] = {}
    problems: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w == "--" or not w.startswith("-") or w == "-":
            return opts, words[i + 1:] if w == "--" else words[i:], problems
        if w.startswith("--"):
            name, eq, value = w[2:].partition("=")
            if not eq and name in _VALUE and name not in _OPTIONAL_VALUE:
                i += 1
                value = words[i] if i < len(words) else ""
        else:
            letter = w[1:2]
            name = _SHORT.get(letter, letter)
            value = w[2:]
            if not value and name in _VALUE | {"kill-on-bad-exit"} and letter not in "KO":
                i += 1
                value = words[i] if i < len(words) else ""
            if letter == "O":
                name = "overcommit"
        opts[name] = value
        i += 1
    return opts, [], problems


def script_directives(text: str, prefix: str = "#SBATCH") -> list[str]:
    """Words of the directives before the first command."""
    words: list[str] = []
    for line in text.splitlines()[1:]:
        s = line.strip()
        if not s:
            continue
        if s.startswith(prefix):
            try:
                words += shlex.split(s[len(prefix):])
            except ValueError:
                continue
        elif not s.startswith("#"):
            break
    return words


def _directive_lines(text: str, prefix: str = "#SBATCH") -> list[str]:
    """The directive lines of a script, before its first command (as sbatch reads them)."""
    out = []
    for line in text.splitlines()[1:]:
        s = line.strip()
        if s.startswith(prefix):
            out.append(s)
        elif s and not s.startswith("#"):
            break
    return out


def _seconds(text: str) -> int | None:
    """Slurm --time: minutes, MM:SS, HH:MM:SS, D-HH[:MM[:SS]]."""
    m = re.match(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$", text.strip())
    if not m:
        return None
    d, a, b, c = m.groups()
    if d is not None:
        return ((int(d) * 24 + int(a)) * 60 + int(b or 0)) * 60 + int(c or 0)
    if b is None:
        return int(a) * 60
    if c is None:
        return int(a) * 60 + int(b)
    return (int(a) * 60 + int(b)) * 60 + int(c)


def _limit(text: str | None) -> int | None:
    return _seconds(text) if text else None


def check_job(ctx: Context, opts: dict[str, str]) -> list[str]:
    """The site's rules on an sbatch request; records an event per rule, returns refusals."""
    site = ctx["site_scheduler"]
    problems: dict[str, list[str]] = {"slurm.partition": [], "slurm.account": [],
                                      "slurm.resources": []}
    nodes = int(opts.get("nodes", "1").split("-")[0] or 1)
    seconds = _seconds(opts["time"]) if "time" in opts else None
    table = site.get("queues") or []
    chosen = []
    for option, key in (("queue", "partition"), ("qos", "qos")):
        rows = [r for r in table if r.get("option", "queue") == option]
        name = opts.get(key)
        if not rows or not name:
            continue
        mine = [r for r in rows if r["name"] == name]
        if not mine:
            problems["slurm.partition"].append(
                f"invalid {key} {name!r}: {ctx['site']} has "
                + ", ".join(dict.fromkeys(r["name"] for r in rows)))
            continue
        fit = [r for r in mine if r.get("min_nodes", 1) <= nodes
               and (r.get("max_nodes") is None or nodes <= r["max_nodes"])]
        if not fit:
            problems["slurm.partition"].append(
                f"{nodes} node(s) do not fit {key} {name!r} ("
                + ", ".join(f"{r.get('min_nodes', 1)}-{r.get('max_nodes') or 'any'}"
                            for r in mine) + " nodes)")
            continue
        limits = [_limit(r.get("max_walltime")) for r in fit]
        if seconds is not None and all(lim is not None and seconds > lim for lim in limits):
            problems["slurm.partition"].append(
                f"--time {opts['time']} is above the limit of {key} {name!r} "
                f"({fit[0].get('max_walltime')}): Requested time limit is invalid")
            continue
        chosen.append(f"{key} {name}")
    if site.get("account_required") and not opts.get("account"):
        problems["slurm.account"].append(
            site.get("account_error") or "sbatch: error: the site requires --account")
    node = ctx["site_node"]
    ppn = int(opts.get("ntasks-per-node", "1") or 1)
    cpt = int(opts.get("cpus-per-task", "1") or 1)
    if ppn * cpt > node["cpus"]:
        problems["slurm.resources"].append(
            f"{ppn} task(s) x {cpt} CPU(s) on a node of {node['cpus']} CPUs")
    tpc = opts.get("threads-per-core")
    if tpc and tpc.isdigit() and int(tpc) > node["threads_per_core"]:
        problems["slurm.resources"].append(
            f"--threads-per-core={tpc}: the node has {node['threads_per_core']} per core")
    details = {"slurm.partition": ", ".join(chosen) or
               ("the site profile has no queue table" if not table else "no queue named"),
               "slurm.account": (f"--account {opts['account']}" if opts.get("account")
                                 else "the site requires none"),
               "slurm.resources": f"{ppn} task(s) x {cpt} CPU(s) per node"}
    for rule, msgs in problems.items():
        ctx.event(rule, not msgs, "; ".join(msgs) or details[rule], tool="sbatch")
    return [m for msgs in problems.values() for m in msgs]


def sbatch(ctx: Context, argv: list[str]) -> int:
    opts_cmd, operands, _ = parse_options(argv)
    if not operands:
        raise ToolError("sbatch: this rehearsal submits job scripts only")
    script = Path(operands[0])
    base = Path(opts_cmd["chdir"]) if "chdir" in opts_cmd else Path.cwd()
    script = script if script.is_absolute() else Path.cwd() / script
    text = script.read_text()
    opts_script, _, _ = parse_options(script_directives(text))
    opts = {**opts_script, **opts_cmd}
    refusals = check_job(ctx, opts)
    if refusals:
        ctx.event("job.accepted", False, "sbatch refused the job: " + "; ".join(refusals))
        print(f"sbatch: error: Batch job submission failed: {refusals[0]}", file=sys.stderr)
        return 1
    jobs = ctx.dir / "jobs"
    jobs.mkdir(exist_ok=True)
    number = next_number(ctx.dir / "job-counter", 1)
    jobdir = jobs / f"s{number}"
    jobdir.mkdir()
    network = opts.get("network", "")
    (jobdir / "job.json").write_text(json.dumps({"script": str(script), "network": network,
                                                 "nodes": opts.get("nodes", "1")}))
    spool = jobdir / "job_script"  # slurmd runs a copy of the script
    spool.write_bytes(text.encode())
    spool.chmod(0o700)
    first = text.splitlines()[0] if text else ""
    words = first[2:].split() if first.startswith("#!") else ["/bin/bash"]
    login = any(w in {"-l", "--login"} for w in words[1:])
    inner = [*job_prefix(ctx.dir, login=login, script_text=text, scratch=jobdir / "overlay"),
             *words, str(spool)]
    wrapper = jobdir / "batch.sh"
    directives = "".join(f"{line}\n" for line in _directive_lines(text))
    wrapper.write_text(
        "#!/bin/bash\n" + directives
        + "# an emulated job of " + ctx["site"] + " (bedrock-deploy rehearse): the directives\n"
        + "# above are the job script's; its copy below runs in the job's own namespace\n"
        f"export BEDROCK_REHEARSAL_SLURM_JOB={shlex.quote(str(jobdir))}\n"
        f"exec {shlex.join(inner)}\n")
    wrapper.chmod(0o755)
    # The request, scaled to the test cluster: its partition, its nodes (whole), one task per
    # node for the allocation (the steps ask for their own tasks, --overcommit).
    cluster = ctx["cluster"]
    real = [ctx["real"]["sbatch"], *[a for a in argv if a != operands[0]],
            f"--partition={cluster['partition']}", f"--nodes={ctx['run_nodes']}",
            "--ntasks-per-node=1", "--cpus-per-task=1", "--threads-per-core=1", "--exclusive",
            "--constraint=", f"--chdir={base}"]
    if "output" not in opts:
        real.append(f"--output={base}/slurm-%j.out")
    else:
        out = opts["output"]
        real.append(f"--output={out if out.startswith('/') else base / out}")
    env = {**os.environ, "SLURM_CONF": cluster["slurm_conf"]}
    done = subprocess.run([*real, str(wrapper)], capture_output=True, text=True, env=env,
                          cwd=base)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        ctx.event("job.accepted", False, f"the test cluster refused the job: {done.stderr}")
        return done.returncode
    job_id = done.stdout.strip().split(";")[0]
    (jobdir / "slurm-id").write_text(job_id)
    ctx.event("job.accepted", True, f"sbatch accepted job {job_id}", tool="sbatch")
    sys.stdout.write(done.stdout)
    return 0


def _job_network(ctx: Context) -> str:
    jobdir = os.environ.get("BEDROCK_REHEARSAL_SLURM_JOB")
    if jobdir and (Path(jobdir) / "job.json").is_file():
        return str(json.loads((Path(jobdir) / "job.json").read_text()).get("network") or "")
    return os.environ.get("SLURM_NETWORK", "")


def site_cpu_sets(ctx: Context, spec: str, ppn: int, problems: list[str]) -> list[list[int]]:
    """--cpu-bind value (``[quiet|verbose,]type``) -> site CPUs of each local rank."""
    total = ctx.site_cpus
    kind = spec
    while kind.split(",", 1)[0] in {"verbose", "quiet", "v", "q"}:
        kind = kind.split(",", 1)[1] if "," in kind else ""
    if kind in {"", "none", "no"}:
        return [list(range(total)) for _ in range(ppn)]
    name, _, values = kind.partition(":")
    if name not in {"mask_cpu", "map_cpu"} or not values:
        problems.append(f"--cpu-bind={spec}: this rehearsal emulates none, mask_cpu and map_cpu")
        return []
    sets = []
    for v in values.split(","):
        try:
            if name == "mask_cpu":
                mask = int(v, 16)
                cpus = [c for c in range(mask.bit_length()) if mask >> c & 1]
            else:
                cpus = [int(v)]
        except ValueError:
            problems.append(f"--cpu-bind {name}: {v!r} is not a {name} value")
            return []
        if not cpus:
            problems.append(f"--cpu-bind {name}: an empty mask {v!r}")
            return []
        sets.append(cpus)
    return [sets[i % len(sets)] for i in range(ppn)]


def srun(ctx: Context, argv: list[str]) -> int:
    opts, program, _problems = parse_options(argv)
    if not program:
        raise ToolError("srun: fatal: No command given to execute.")
    net_step = opts.get("network")
    network = net_step if net_step is not None else _job_network(ctx)
    net_items = [n for n in network.split(",") if n]
    bad = [n for n in net_items if n.split("=")[0] not in _NETWORK_OPTIONS]
    if net_items or net_step is not None:
        ctx.event("slurm.network", not bad,
                  f"invalid --network option(s) {', '.join(bad)}" if bad
                  else f"--network={network}", tool="srun")
    if bad:
        raise ToolError(f"srun: error: invalid --network value {network!r}")
    nodes = int((opts.get("nodes") or "1").split("-")[0])
    ntasks = int(opts.get("ntasks") or nodes)
    ppn = int(opts.get("ntasks-per-node") or -(-ntasks // nodes))
    node = ctx["site_node"]
    cpt = int(opts.get("cpus-per-task") or 1)
    res_problems = []
    if ppn * cpt > node["cpus"]:
        res_problems.append(f"{ppn} task(s) x {cpt} CPU(s) on a node of {node['cpus']} CPUs")
    tpc = opts.get("threads-per-core")
    if tpc and tpc.isdigit() and int(tpc) > node["threads_per_core"]:
        res_problems.append(f"--threads-per-core={tpc}: the node has "
                            f"{node['threads_per_core']} per core")
    if res_problems:
        ctx.event("slurm.resources", False, "srun: " + "; ".join(res_problems), tool="srun")
        raise ToolError("srun: error: " + "; ".join(res_problems))
    bind_problems: list[str] = []
    sets = site_cpu_sets(ctx, opts.get("cpu-bind", "none") or "none", min(ppn, ntasks),
                         bind_problems)
    check_cpu_bind(ctx, sets, bind_problems, f"--cpu-bind={opts.get('cpu-bind', 'none')}",
                   "srun", "srun: error: ")
    spec_dir = ctx.dir / "steps"
    # VNIs, as the HPE Slingshot switch plugin hands them out
    job_id = os.environ.get("SLURM_JOB_ID", "0")
    vnis = ""
    if "no_vni" in net_items:
        why = "no_vni: the step gets no VNI"
    elif nodes >= 2 or "single_node_vni" in net_items:
        step = next_number(ctx.dir / f"vni-counter-{job_id}", ctx["vni_base"] + 1000)
        vnis = str(step)
        why = ("a step on several nodes gets a VNI" if nodes >= 2
               else "single_node_vni: the single-node step gets a VNI")
        if "job_vni" in net_items:
            vnis += f",{ctx['vni_base'] + int(job_id) % 1000}"
            why += ", job_vni adds the job's"
    else:
        why = "a single-node step gets no VNI without single_node_vni"
    ctx.event("launcher.vni", True, f"srun {' '.join(program[:1])}: {why}", tool="srun",
              vnis=vnis, program=program[:1])
    spec: dict[str, Any] = {"launcher": "srun", "size": ntasks, "ppn": ppn, "site_cpus": sets,
                            "vnis": vnis, "rank_vars": "slurm"}
    # A step on more nodes than the rehearsal has: the site's nodes are folded onto ours,
    # each rank on its site node's rehearsal node (arbitrary distribution).
    allocated = subprocess.run([ctx["real"]["scontrol"], "show", "hostnames",
                                os.environ.get("SLURM_JOB_NODELIST", "")],
                               capture_output=True, text=True).stdout.split()
    folded_env: dict[str, str] = {}
    if allocated and nodes > len(allocated):
        hosts = fold(allocated, nodes)
        spec["hosts"] = [hosts[r // ppn] for r in range(ntasks)]
        hostfile = spec_dir / f"step-{os.getpid()}-{time.time_ns()}.hosts"
        spec_dir.mkdir(exist_ok=True)
        hostfile.write_text("".join(f"{real_node(h)}\n" for h in spec["hosts"]))
        folded_env["SLURM_HOSTFILE"] = str(hostfile)
        for name in ("nodes", "ntasks-per-node", "distribution", "nodelist"):
            opts.pop(name, None)
        opts["nodes"] = str(len(allocated))
        opts["distribution"] = "arbitrary"
    spec_dir.mkdir(exist_ok=True)
    spec_file = spec_dir / f"step-{os.uname().nodename}-{os.getpid()}-{time.time_ns()}.json"
    spec_file.write_text(json.dumps(spec))
    real = [ctx["real"]["srun"]]
    dropped = {"network", "threads-per-core", "cpu-bind", "cpus-per-task", "mpi", "whole"}
    for name, value in opts.items():
        if name in dropped:
            continue
        real.append(f"--{name}" + (f"={value}" if value != "" else ""))
    real += ["--overlap", "--overcommit", "--cpu-bind=none", f"--mpi={ctx['cluster']['mpi']}",
             *ctx.tool_argv("rank", str(spec_file)), *program]
    env = {**os.environ, "SLURM_CONF": ctx["cluster"]["slurm_conf"], **folded_env}
    for k in ("SLURM_CPUS_PER_TASK", "SLURM_TRES_PER_TASK", "SLURM_THREADS_PER_CORE"):
        env.pop(k, None)
    return run_forwarding_signals(real, env)


def main(ctx: Context, name: str, argv: list[str]) -> int:
    if name == "sbatch":
        return sbatch(ctx, argv)
    if name == "srun":
        return srun(ctx, argv)
    raise ToolError(f"no Slurm tool {name}")
