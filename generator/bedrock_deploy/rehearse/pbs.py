"""PBS Pro emulated: ``qsub``, ``qstat``, ``qdel`` and the job's start on its first node.

``qsub`` reads the job script's ``#PBS`` directives and its own command line (which wins) with
the syntax of qsub(1B) (OpenPBS,
https://github.com/openpbs/openpbs/blob/032b52999725d6b34f7550e906a1586987e4bd25/doc/man1/qsub.1B):
``-l select=[N:]chunk[+...]``, ``-l place=``, ``-l walltime=``, other ``-l`` resources such as
``filesystems=``, ``-A``, ``-q``, ``-N``, ``-j``, ``-o``, ``-v``, ``-V``. It checks them against the
site profile (queue table, account rule, the node's CPUs) and refuses the job as PBS would;
an accepted job runs as a job of the test cluster's real Slurm (its nodes, its scheduling), whose
batch step starts the script the way PBS MOM does (:func:`run_job`): in the user's home, from a
copy of the script, with PBS's variables and those of ``-v``/``-V`` only, under the shell the
script's first line names (``#!/bin/bash -l``: a login shell, which gets the site's login
environment; anything else does not).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bedrock_deploy.rehearse.common import Context, ToolError, fold, next_number
from bedrock_deploy.rehearse.environment import job_prefix, rehearsal_env

SERVER = "rehearsal"  # PBS job ids are <sequence number>.<server>
# qdel: "The MoM deletes a PBS job by sending a SIGTERM signal, then, if there are remaining
# processes, a SIGKILL signal" (OpenPBS qdel(1B), doc/man1/qdel.1B at 11e5dbb); the delay between
# them is the queue's kill_delay, 10 seconds by default (pbs_queue_attributes(7B),
# doc/man1/pbs_queue_attributes.7B at 10d2e2d).
KILL_DELAY = 10
# qsub(1B) options: which take a value.
_WITH_VALUE = set("aAcCeJjklmMNopPqrRSuvW")
_FLAGS = set("fhIVzXG")
_NAME = re.compile(r"^[A-Za-z0-9][!-~]{0,235}$")
_PLACE_ARRANGEMENT = {"free", "pack", "scatter", "vscatter"}
_PLACE_SHARING = {"excl", "shared", "exclhost"}
_WALLTIME = re.compile(r"^(?:(?:(\d+):)?(\d+):)?(\d+)(?:\.\d+)?$")
_RESOURCE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass
class Submission:
    """A job as qsub sees it: its attributes, where each came from."""

    options: list[tuple[str, str, str]] = field(default_factory=list)  # (option, value, where)
    flags: set[str] = field(default_factory=set)
    resources: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (value, where)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (rule, message)
    shebang: str = ""

    def value(self, option: str) -> tuple[str, str] | None:
        """The last value of an option (the command line is read last, so it wins)."""
        found = [(v, w) for o, v, w in self.options if o == option]
        return found[-1] if found else None


def split_options(words: list[str], where: str, sub: Submission) -> list[str]:
    """qsub options (getopt style) into ``sub``; returns the operands left over."""
    i = 0
    while i < len(words):
        w = words[i]
        if w == "--":
            return words[i + 1:]
        if not w.startswith("-") or w == "-":
            return words[i:]
        letters = w[1:]
        j = 0
        while j < len(letters):
            opt = letters[j]
            if opt in _FLAGS:
                sub.flags.add(opt)
                j += 1
                continue
            if opt not in _WITH_VALUE:
                sub.problems.append(("pbs.directives", f"{where}: qsub: invalid option -- '{opt}'"))
                j += 1
                continue
            value = letters[j + 1:]
            if not value:
                i += 1
                if i >= len(words):
                    sub.problems.append(("pbs.directives",
                                         f"{where}: qsub: option requires an argument -- '{opt}'"))
                    return []
                value = words[i]
            _add_option(sub, opt, value, where)
            break
        i += 1
    return []


def _add_option(sub: Submission, opt: str, value: str, where: str) -> None:
    sub.options.append((f"-{opt}", value, where))
    if opt != "l":
        return
    for item in value.split(","):
        name, sep, val = item.partition("=")
        name = name.strip()
        if not sep or not _RESOURCE.match(name) or not val:
            sub.problems.append(("pbs.directives",
                                 f"{where}: qsub: illegal -l value {item!r} (resource=value)"))
            continue
        sub.resources[name] = (val.strip(), where)


def read_script(text: str, sub: Submission) -> None:
    """The script's directives: ``#PBS`` lines before the first command (qsub stops there)."""
    lines = text.splitlines()
    if lines and lines[0].startswith("#!"):
        sub.shebang = lines[0][2:].strip()
    seen_command = None
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith("#PBS"):
            if seen_command is not None:
                sub.problems.append((
                    "pbs.directives",
                    f"line {number}: '{stripped}' comes after the first command (line "
                    f"{seen_command}): qsub ignores it"))
                continue
            rest = stripped[4:]
            if rest and not rest[0].isspace():
                sub.problems.append(("pbs.directives",
                                     f"line {number}: '{stripped}': '#PBS' must be followed by "
                                     "a space and qsub options"))
                continue
            try:
                words = shlex.split(rest, comments=False)
            except ValueError as err:
                sub.problems.append(("pbs.directives", f"line {number}: {err}"))
                continue
            left = split_options(words, f"line {number}", sub)
            if left:
                sub.problems.append(("pbs.directives",
                                     f"line {number}: unexpected {' '.join(left)!r} after the "
                                     "options"))
        elif stripped and not stripped.startswith("#") and seen_command is None:
            seen_command = number


def walltime_seconds(text: str) -> int | None:
    m = _WALLTIME.match(text)
    if not m:
        return None
    h, mnt, s = (int(g) if g else 0 for g in m.groups())
    return (h * 60 + mnt) * 60 + s


def _queue_seconds(text: str | None) -> int | None:
    """A queue table limit, ``[D-]HH:MM[:SS]``."""
    if not text:
        return None
    days = 0
    if "-" in text:
        d, text = text.split("-", 1)
        days = int(d)
    parts = [int(p) for p in text.split(":")]
    while len(parts) < 3:
        parts.append(0)
    return ((days * 24 + parts[0]) * 60 + parts[1]) * 60 + parts[2]


def select_chunks(text: str) -> list[tuple[int, dict[str, str]]] | str:
    """``-l select`` -> [(count, resources)] or an error message."""
    out = []
    for spec in text.split("+"):
        parts = spec.split(":")
        count = 1
        if parts and parts[0].isdigit():
            count = int(parts.pop(0))
        res: dict[str, str] = {}
        for p in parts:
            name, sep, val = p.partition("=")
            if not sep or not _RESOURCE.match(name) or not val:
                return f"illegal chunk {spec!r} (expected [N:]resource=value[:resource=value])"
            res[name] = val
        if count < 1:
            return f"chunk count {count} in {spec!r}"
        out.append((count, res))
    return out


def check(sub: Submission, ctx: Context) -> dict[str, Any]:
    """Every qsub rule on the merged attributes; records one event per rule. Returns the
    job's attributes; ``problems`` non-empty means qsub refuses the job."""
    site = ctx["site_scheduler"]
    fails = {rule: [] for rule in ("pbs.directives", "pbs.name", "pbs.select", "pbs.place",
                                   "pbs.walltime", "pbs.account", "pbs.queue", "pbs.join")}
    for rule, msg in sub.problems:
        fails[rule].append(msg)
    attrs: dict[str, Any] = {"nodes": 1}
    # -N
    name = sub.value("-N")
    if name and not _NAME.match(name[0]):
        fails["pbs.name"].append(f"{name[1]}: {name[0]!r}")
    attrs["name"] = name[0] if name else "STDIN"
    # -j
    join = sub.value("-j")
    if join and join[0] not in {"oe", "eo", "n"}:
        fails["pbs.join"].append(f"{join[1]}: {join[0]!r}")
    attrs["join"] = join[0] if join else "n"
    # -l select
    nodes = 1
    sel = sub.resources.get("select")
    if sel:
        chunks = select_chunks(sel[0])
        if isinstance(chunks, str):
            fails["pbs.select"].append(f"{sel[1]}: {chunks}")
        else:
            nodes = sum(n for n, _ in chunks)
            attrs["mpiprocs"] = [_mpiprocs(res) for n, res in chunks for _ in range(n)]
            for _, res in chunks:
                for key in ("ncpus", "mpiprocs"):
                    if key in res and (not res[key].isdigit()
                                       or int(res[key]) > ctx.site_cpus):
                        fails["pbs.select"].append(
                            f"{sel[1]}: {key}={res[key]}: a node of {ctx['site']} has "
                            f"{ctx.site_cpus} CPUs")
    elif "nodes" in sub.resources:
        fails["pbs.select"].append(f"{sub.resources['nodes'][1]}: old-style -l nodes= "
                                   "(use -l select=)")
    attrs["nodes"] = nodes
    # -l place
    place = sub.resources.get("place")
    if place:
        items = place[0].split(":")
        bad = place[0].startswith(":") or len([i for i in items
                                               if i in _PLACE_ARRANGEMENT]) > 1
        for item in items:
            if item in _PLACE_ARRANGEMENT or item in _PLACE_SHARING:
                continue
            if item.startswith("group=") and len(item) > 6:
                continue
            bad = True
        if bad:
            fails["pbs.place"].append(f"{place[1]}: {place[0]!r}")
    # -l walltime
    wall = sub.resources.get("walltime")
    seconds = None
    if wall:
        seconds = walltime_seconds(wall[0])
        if seconds is None:
            fails["pbs.walltime"].append(f"{wall[1]}: walltime={wall[0]!r} is not "
                                         "[[HH:]MM:]SS")
    attrs["walltime"] = seconds
    # -A
    account = sub.value("-A")
    attrs["account"] = account[0] if account else None
    if site.get("account_required") and not account:
        fails["pbs.account"].append(site.get("account_error")
                                    or "qsub: the site requires an account (-A)")
    # -q and the queue table
    queue = sub.value("-q")
    attrs["queue"] = queue[0].split("@")[0] if queue else None
    table = [r for r in site.get("queues") or [] if r.get("option", "queue") == "queue"]
    if table:
        if not queue:
            fails["pbs.queue"].append("no -q: this rehearsal knows no default queue of the site")
        else:
            rows = [r for r in table if r["name"] == attrs["queue"]]
            if not rows:
                names = ", ".join(dict.fromkeys(r["name"] for r in table))
                fails["pbs.queue"].append(f"{queue[1]}: queue {attrs['queue']!r} is not a queue "
                                          f"of {ctx['site']} ({names})")
            else:
                fit = [r for r in rows if r.get("min_nodes", 1) <= nodes
                       and (r.get("max_nodes") is None or nodes <= r["max_nodes"])]
                if not fit:
                    ranges = ", ".join(f"{r.get('min_nodes', 1)}-{r.get('max_nodes') or 'any'}"
                                       for r in rows)
                    fails["pbs.queue"].append(
                        f"{nodes} node(s) in queue {attrs['queue']!r}, which takes {ranges} "
                        "node(s) (qsub: Job violates queue and/or server resource limits)")
                elif seconds is not None:
                    limits = [_queue_seconds(r.get("max_walltime")) for r in fit]
                    if all(lim is not None and seconds > lim for lim in limits):
                        fails["pbs.walltime"].append(
                            f"walltime {wall[0] if wall else ''} is above the limit of queue "
                            f"{attrs['queue']!r} ({fit[0].get('max_walltime')})")
    attrs["queue"] = attrs["queue"] or site.get("partition") or "workq"
    for rule, msgs in fails.items():
        ok = not msgs
        detail = "; ".join(msgs) if msgs else _passed_detail(rule, attrs, sub, bool(table))
        ctx.event(rule, ok, detail, tool="qsub")
    attrs["problems"] = [m for msgs in fails.values() for m in msgs]
    return attrs


def _mpiprocs(res: dict[str, str]) -> int:
    """Lines of PBS_NODEFILE for one chunk (pbs_resources(7B), mpiprocs: the host is written
    mpiprocs times; default 1, or 0 when the chunk asks for ncpus=0)."""
    if res.get("mpiprocs", "").isdigit():
        return int(res["mpiprocs"])
    return 0 if res.get("ncpus") == "0" else 1


def _passed_detail(rule: str, attrs: dict[str, Any], sub: Submission, table: bool) -> str:
    if rule == "pbs.select":
        return f"{attrs['nodes']} node(s)"
    if rule == "pbs.walltime":
        return (f"{attrs['walltime']} s" if attrs["walltime"] is not None
                else "no walltime: the queue's default applies")
    if rule == "pbs.account":
        return f"-A {attrs['account']}" if attrs["account"] else "the site requires none"
    if rule == "pbs.queue":
        return (f"queue {attrs['queue']} takes {attrs['nodes']} node(s)" if table
                else f"queue {attrs['queue']} (the site profile has no queue table)")
    if rule == "pbs.name":
        return attrs["name"]
    return ""


def parse_v(text: str) -> dict[str, str] | str:
    """qsub -v list: ``a=1,b,"c='x,y'"`` -> {name: value} (``b`` from the environment)."""
    out: dict[str, str] = {}
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace = ","
    lexer.whitespace_split = True
    try:
        items = list(lexer)
    except ValueError as err:
        return f"-v {text!r}: {err}"
    for item in items:
        name, sep, value = item.strip().partition("=")
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            return f"-v: {item!r} is not NAME or NAME=value"
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]  # qsub -v "var='A,B'": the quotes protect the commas
        out[name] = value if sep else os.environ.get(name, "")
    return out


# ---- the commands -----------------------------------------------------------------------
def qsub(ctx: Context, argv: list[str]) -> int:
    sub = Submission()
    operands = split_options(argv, "command line", sub)
    # the command line wins: read the script first, then re-apply the command line
    cmdline = list(sub.options)
    if not operands:
        raise ToolError("qsub: this rehearsal submits job scripts only (qsub [options] script)")
    script = Path(operands[0])
    if not script.is_absolute():
        script = Path.cwd() / script
    try:
        text = script.read_text()
    except OSError as err:
        raise ToolError(f"qsub: script file cannot be loaded - {err.strerror}") from None
    script_sub = Submission()
    read_script(text, script_sub)
    merged = Submission(shebang=script_sub.shebang, flags=script_sub.flags | sub.flags,
                        problems=script_sub.problems + sub.problems)
    for opt, value, where in script_sub.options + cmdline:
        _add_option(merged, opt[1:], value, where)
    attrs = check(merged, ctx)
    env_vars: dict[str, str] = {}
    for opt, value, _ in merged.options:
        if opt == "-v":
            parsed = parse_v(value)
            if isinstance(parsed, str):
                attrs["problems"].append(parsed)
            else:
                env_vars.update(parsed)
    if "V" in merged.flags:
        env_vars = {**os.environ, **env_vars}
    if attrs["problems"]:
        ctx.event("job.accepted", False, "qsub refused the job: " + "; ".join(attrs["problems"]))
        raise ToolError("qsub: " + attrs["problems"][0])
    out = merged.value("-o")
    out_path = Path(out[0]) if out else Path.cwd() / f"{attrs['name']}.o"
    if not out_path.is_absolute():
        out_path = Path.cwd() / out_path
    if not out_path.parent.is_dir():
        raise ToolError(f"qsub: -o {out_path}: no such directory")
    home = os.environ.get("HOME", "/")
    pbs_o = {"PBS_O_WORKDIR": str(Path.cwd()), "PBS_O_HOME": home,
             "PBS_O_HOST": os.uname().nodename, "PBS_O_PATH": os.environ.get("PATH", ""),
             "PBS_O_SHELL": os.environ.get("SHELL", "/bin/bash"),
             "PBS_O_LOGNAME": os.environ.get("LOGNAME", os.environ.get("USER", "root")),
             "PBS_O_QUEUE": attrs["queue"], "PBS_O_SYSTEM": os.uname().sysname}
    job = {"attrs": {k: v for k, v in attrs.items() if k != "problems"},
           "script": str(script), "shebang": merged.shebang, "output": str(out_path),
           "env": env_vars, "pbs_o": pbs_o, "submitted": time.time()}
    jobs = ctx.dir / "jobs"
    jobs.mkdir(exist_ok=True)
    seq = next_number(ctx.dir / "job-counter", 1)
    jobdir = jobs / str(seq)
    jobdir.mkdir()
    (jobdir / "job.json").write_text(json.dumps(job, indent=1))
    batch = jobdir / "batch.sh"
    batch.write_text("#!/bin/sh\n# the start of an emulated PBS job (bedrock-deploy rehearse)\n"
                     f"exec {shlex.join(ctx.tool_argv('pbs-job', str(jobdir)))}\n")
    batch.chmod(0o755)
    cluster = ctx["cluster"]
    minutes = max(1, -(-(attrs["walltime"] or 1800) // 60))
    sbatch = [ctx["real"]["sbatch"], "--parsable", f"--nodes={ctx['run_nodes']}",
              "--ntasks-per-node=1", "--exclusive", f"--partition={cluster['partition']}",
              f"--job-name={attrs['name']}", f"--time={minutes}",
              f"--output={jobdir}/slurm.out", "--chdir=/", "--export=NONE", str(batch)]
    done = subprocess.run(sbatch, capture_output=True, text=True,
                          env={**os.environ, "SLURM_CONF": cluster["slurm_conf"]})
    if done.returncode != 0:
        raise ToolError(f"qsub: the test cluster refused the job: {done.stderr.strip()}")
    (jobdir / "slurm-id").write_text(done.stdout.strip().split(";")[0])
    ctx.event("job.accepted", True, f"qsub accepted job {seq}.{SERVER}: "
              f"{attrs['nodes']} node(s), queue {attrs['queue']}", tool="qsub")
    print(f"{seq}.{SERVER}")
    return 0


def _jobdir(ctx: Context, job_id: str) -> Path:
    return ctx.dir / "jobs" / job_id.split(".")[0]


def _slurm_id(ctx: Context, job_id: str) -> str:
    try:
        return (_jobdir(ctx, job_id) / "slurm-id").read_text().strip()
    except OSError:
        return ""


def _slurm_fields(ctx: Context, slurm_id: str) -> dict[str, str]:
    done = subprocess.run([ctx["real"]["scontrol"], "show", "job", "--oneliner", slurm_id],
                          capture_output=True, text=True,
                          env={**os.environ, "SLURM_CONF": ctx["cluster"]["slurm_conf"]})
    return dict(f.split("=", 1) for f in done.stdout.split() if "=" in f)


def qstat(ctx: Context, argv: list[str]) -> int:
    ids = [a for a in argv if not a.startswith("-")]
    if not ids:
        raise ToolError("qstat: this rehearsal answers 'qstat -x -f JOBID' only")
    for job_id in ids:
        jobdir = _jobdir(ctx, job_id)
        if not (jobdir / "slurm-id").is_file():
            raise ToolError(f"qstat: Unknown Job Id {job_id}", status=153)
        fields = _slurm_fields(ctx, _slurm_id(ctx, job_id))
        status_file = jobdir / "status.json"
        state, comment, code = "Q", "", None
        if status_file.is_file():
            status = json.loads(status_file.read_text())
            state, code = "F", status.get("exit_status")
            comment = status.get("comment", "")
        elif fields.get("JobState") == "RUNNING" or (jobdir / "started").exists():
            state = "R"
        elif fields.get("JobState") in {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT",
                                        "NODE_FAIL"} or not fields:
            state, code = "F", 271
            comment = f"the emulated job ended without a status ({fields.get('JobState')})"
        print(f"Job Id: {job_id}\n    job_state = {state}")
        if code is not None:
            print(f"    Exit_status = {code}")
        if comment:
            print(f"    comment = {comment}")
    return 0


def qdel(ctx: Context, argv: list[str]) -> int:
    for job_id in [a for a in argv if not a.startswith("-")]:
        slurm_id = _slurm_id(ctx, job_id)
        if not slurm_id:
            raise ToolError(f"qdel: Unknown Job Id {job_id}", status=153)
        subprocess.run([ctx["real"]["scancel"], "--signal=TERM", "--full", slurm_id],
                       capture_output=True,
                       env={**os.environ, "SLURM_CONF": ctx["cluster"]["slurm_conf"]})
    return 0


# ---- the job on its first node (the batch step of the backing Slurm job) -----------------
def _interpreter(shebang: str) -> tuple[list[str], bool]:
    """The script's first line -> (argv before the script, login shell?)."""
    if not shebang:
        return ["/bin/bash"], False  # the user's login shell, run as a plain shell
    words = shebang.split()
    login = any(w in {"-l", "--login"} for w in words[1:])
    return words, login


def run_job(ctx: Context, jobdir: Path) -> int:
    job = json.loads((jobdir / "job.json").read_text())
    seq = jobdir.name
    (jobdir / "slurm-env.json").write_text(json.dumps(
        {k: v for k, v in os.environ.items() if k.startswith(("SLURM_", "SLURMD_"))}))
    nodes = subprocess.run([ctx["real"]["scontrol"], "show", "hostnames",
                            os.environ.get("SLURM_JOB_NODELIST", "")],
                           capture_output=True, text=True).stdout.split()
    # PBS_NODEFILE: each chunk's host mpiprocs times (pbs_resources(7B)); one chunk per node
    # (place=scatter): the backing job's nodes in order, one per chunk
    # When the site's job has more nodes than the rehearsal, its nodes are folded onto ours.
    per_chunk = job["attrs"].get("mpiprocs") or [1] * len(nodes)
    hosts = fold(nodes, len(per_chunk))
    nodefile = jobdir / "nodefile"
    nodefile.write_text("".join(f"{host}\n" * count for host, count in zip(hosts, per_chunk,
                                                                         strict=False)))
    spool = jobdir / "spool"
    spool.mkdir(exist_ok=True)
    script = spool / f"{seq}.{SERVER}.SC"  # PBS runs a copy of the script
    script.write_bytes(Path(job["script"]).read_bytes())
    script.chmod(0o700)
    home = ctx.dir / "home"
    home.mkdir(exist_ok=True)
    tmp = jobdir / "tmp"
    tmp.mkdir(exist_ok=True)
    env = {"HOME": str(home), "USER": job["pbs_o"]["PBS_O_LOGNAME"],
           "LOGNAME": job["pbs_o"]["PBS_O_LOGNAME"], "SHELL": "/bin/bash",
           "PATH": "/usr/local/bin:/usr/bin:/bin", "TMPDIR": str(tmp),
           "PBS_ENVIRONMENT": "PBS_BATCH", "PBS_JOBID": f"{seq}.{SERVER}",
           "PBS_JOBNAME": job["attrs"]["name"], "PBS_NODEFILE": str(nodefile),
           "PBS_QUEUE": job["attrs"]["queue"], "PBS_JOBDIR": str(home),
           **rehearsal_env(ctx.dir), **job["pbs_o"], **job["env"]}
    interp, login = _interpreter(job["shebang"])
    argv = [*job_prefix(ctx.dir, login=login, script_text=script.read_text(),
                        scratch=jobdir / "overlay"),
            "env", "-i", *[f"{k}={v}" for k, v in env.items()], *interp, str(script)]
    passed = sorted(job["env"])
    ctx.event("pbs.environment", True,
              f"the job got PBS's variables and {', '.join(passed) or 'nothing else'} (-v/-V); "
              f"{'login shell' if login else 'not a login shell'} ({job['shebang'] or 'no #!'})",
              tool="pbs_mom")
    (jobdir / "started").write_text(str(time.time()))
    # -j oe: one stream (the generated scripts ask for it)
    with open(job["output"], "wb") as out:
        proc = subprocess.Popen(argv, cwd=home, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        killed: dict[str, Any] = {"by": "", "at": 0.0}

        def on_term(signum: int, _frame: Any) -> None:  # qdel: SIGTERM, then SIGKILL
            killed.update(by="qdel", at=time.monotonic())
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)

        signal.signal(signal.SIGTERM, on_term)
        limit = job["attrs"].get("walltime") or None
        start = time.monotonic()
        while True:
            try:
                rc = proc.wait(timeout=1)
                break
            except subprocess.TimeoutExpired:
                now = time.monotonic()
                if killed["at"] and now - killed["at"] > KILL_DELAY:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                if limit and now - start > limit and not killed["by"]:
                    killed.update(by="walltime", at=now)
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGTERM)
        comment = {"qdel": "Job deleted (qdel)", "walltime": "job killed: walltime exceeded"}.get(
            killed["by"], "")
        status = rc if rc >= 0 else 256 + (-rc)
        (jobdir / "status.json").write_text(json.dumps({"exit_status": status, "comment": comment}))
    return 0


def main(ctx: Context, name: str, argv: list[str]) -> int:
    if name == "qsub":
        return qsub(ctx, argv)
    if name == "qstat":
        return qstat(ctx, argv)
    if name == "qdel":
        return qdel(ctx, argv)
    if name == "pbs-job":
        return run_job(ctx, Path(argv[0]))
    raise ToolError(f"no PBS tool {name}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(Context.load(sys.argv[1]), sys.argv[2], sys.argv[3:]))
