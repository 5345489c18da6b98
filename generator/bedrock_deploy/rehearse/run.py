"""``rehearse(directory, nodes=2)``: run a deployment's real job script on the test cluster,
with what cannot exist here emulated, and check every rule (``share/rehearse/rules.yaml``).

1. The emulated site is written under ``DIR/run/rehearsal/`` (:mod:`.environment`).
2. The job is submitted exactly as ``bedrock-deploy submit`` does (the same command line, from
   :meth:`Deployment.submit_command`), from the site's emulated login environment, with a
   client (:mod:`.client`) and a short ``SERVICE_DURATION``.
3. The job is followed with the scheduler's own status command until it ends; a job that can
   no longer become ready (a process refused by the emulated fabric, the job script waiting
   out its readiness timeout on the real machine) is cancelled at once.
4. The emulated tools' checks (``events.jsonl``), the job's output, the engines' logs and
   reports and the kernel's view of every rank make the checklist; nothing of the run may be
   left on any node.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bedrock_deploy.rehearse import environment
from bedrock_deploy.rehearse.common import EMULATION_MARK, format_cpus, parse_cpus, read_events

REHEARSAL_DIR = "run/rehearsal"
READY_TIMEOUT = 60  # the job's own readiness limit during a rehearsal (seconds)
DURATION = 1  # seconds the service stays up after the client


@dataclass(frozen=True)
class Rule:
    id: str
    area: str
    title: str
    source: str
    real: str
    fix: str


@dataclass
class Check:
    """One line of the checklist: a rule, whether it held, and (failed) what the real machine
    would do and how to fix it."""

    rule: Rule
    status: str  # "pass", "FAIL", "-" (not exercised by this job)
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"

    def to_dict(self) -> dict[str, Any]:
        d = {"rule": self.rule.id, "area": self.rule.area, "title": self.rule.title,
             "status": self.status, "detail": self.detail, "source": self.rule.source}
        if self.failed:
            d["on_the_real_machine"] = self.real
            d["fix"] = self.rule.fix
        return d

    @property
    def real(self) -> str:
        return self.rule.real.replace("{detail}", self.detail)


@dataclass
class RehearsalReport:
    """What a rehearsal found: the checklist, the job and where its logs are.

    Example::

        report = bd.rehearse("aurora-kv")
        for check in report.failures:
            print(check.rule.id, check.detail, check.real, check.rule.fix)
        print(report.check("pbs.queue").status)   # "pass", "FAIL" or "-"
    """

    directory: Path
    site: str
    scheduler: str
    launcher: str
    nodes: int
    site_nodes: int = 0
    checks: list[Check] = field(default_factory=list)
    job_id: str = ""
    job_state: str = ""
    output: Path | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the job would be accepted, start, become ready, serve the client and stop
        cleanly, and no rule failed."""
        life = {c.rule.id: c.status for c in self.checks if c.rule.area == "job"}
        lived = all(life.get(r) == "pass" for r in
                    ("job.accepted", "job.started", "job.ready", "job.client", "job.stopped"))
        return lived and not any(c.failed for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.failed]

    def check(self, rule: str) -> Check:
        for c in self.checks:
            if c.rule.id == rule:
                return c
        raise KeyError(rule)

    def to_dict(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "site": self.site,
                "scheduler": self.scheduler, "launcher": self.launcher, "nodes": self.nodes,
                "site_nodes": self.site_nodes,
                "job": self.job_id, "job_state": self.job_state,
                "output": str(self.output) if self.output else None,
                "seconds": round(self.seconds, 1), "ok": self.ok,
                "checks": [c.to_dict() for c in self.checks]}

    def format(self) -> str:
        """The checklist as text (what ``bedrock-deploy rehearse`` prints)."""
        folded = (f" ({self.site_nodes} of the site's folded onto them)"
                  if self.site_nodes > self.nodes else "")
        lines = [f"Rehearsal of {self.directory} (site {self.site}: {self.scheduler} + "
                 f"{self.launcher}) on {self.nodes} node(s) of the test cluster{folded}"]
        width = max((len(c.rule.id) for c in self.checks), default=10)
        for c in self.checks:
            mark = {"pass": "ok  ", "FAIL": "FAIL", "-": " -  "}[c.status]
            text = f"  [{mark}] {c.rule.id:<{width}}  {c.rule.title}"
            lines.append(text)
            if c.detail and c.status != "-":
                lines.append(f"         {'':<{width}}  {c.detail}")
            if c.failed and c.real != c.detail:
                lines.append(f"         {'':<{width}}  on the real machine: {c.real}")
                lines.append(f"         {'':<{width}}  fix: {c.rule.fix}")
                lines.append(f"         {'':<{width}}  rule: {c.rule.source}")
        verdict = ("the job would be accepted, start, become ready, serve its client and stop "
                   "cleanly" if self.ok else
                   f"{len(self.failures)} rule(s) failed: the job would not run as it should")
        lines.append(f"{'PASS' if self.ok else 'FAIL'}: {verdict} "
                     f"({self.seconds:.0f} s; job {self.job_id or '-'}"
                     + (f", output {self.output}" if self.output else "") + ")")
        return "\n".join(lines)


def load_rules() -> list[Rule]:
    from ruamel.yaml import YAML

    from bedrock_deploy.resources import share_path

    data = YAML(typ="safe").load(share_path("rehearse", "rules.yaml").read_text())
    return [Rule(id=r["id"], area=r["area"], title=r["title"], source=r["source"],
                 real=r["real"], fix=r["fix"]) for r in data["rules"]]


def _applies(rule: Rule, ctx: dict[str, Any]) -> bool:
    prefix = rule.id.split(".", 1)[0]
    if prefix == "pbs":
        return ctx["scheduler"] == "pbs"
    if prefix == "slurm":
        return ctx["scheduler"] == "slurm"
    if prefix == "pals":
        return ctx["launcher"] == "mpiexec-pals"
    if prefix == "ompi":
        return ctx["launcher"] == "mpirun-openmpi" and ctx["scheduler"] == "pbs"
    if prefix == "cxi":
        return ctx["fabric"] == "cxi"
    if prefix == "launcher":
        return ctx["launcher"] in {"mpiexec-pals", "srun"}  # the launchers that bind and
        # hand out VNIs themselves
    return True


# ---- the cluster -----------------------------------------------------------------------------
def find_cluster() -> environment.ClusterInfo:
    """The running test cluster, or ServiceError saying how to start one."""
    from bedrock_deploy.errors import ServiceError

    run = Path(os.environ.get("BEDROCK_CLUSTER_RUN", "/tmp/bedrock-deploy-cluster"))
    conf = run / "etc" / "slurm.conf"
    nodes_file = run / "nodes"
    hint = ("start it: bash tests/cluster/cluster.sh start --nodes 2 (root; "
            "docs/test-cluster.md)")
    if not conf.is_file() or not nodes_file.is_file():
        raise ServiceError(f"no test cluster is running (nothing at {run})", hint=hint)
    count = int(nodes_file.read_text().strip() or 0)
    done = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %T"], capture_output=True, text=True,
                          env={**os.environ, "SLURM_CONF": str(conf)}, timeout=30)
    up = [line.split()[0] for line in done.stdout.splitlines()
          if len(line.split()) == 2 and line.split()[1] in {"idle", "mixed", "allocated"}]
    if done.returncode != 0 or not up:
        raise ServiceError(f"the test cluster at {run} does not answer (sinfo: "
                           f"{done.stderr.strip() or 'no node up'})", hint=hint)
    names = [f"node{i}" for i in range(1, count + 1) if f"node{i}" in up]
    return environment.ClusterInfo(run=run, slurm_conf=conf, nodes=names)


def _ancestors() -> set[int]:
    out, pid = set(), os.getpid()
    while pid > 1 and pid not in out:
        out.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return out


def _processes_naming(directory: Path) -> list[str]:
    """Live processes whose command line names the deployment (every node: the namespaces
    share one PID namespace), this process and its callers aside."""
    found = []
    mine = _ancestors()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in mine:
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(directory) in cmd and state not in {"Z", "X"}:
            found.append(f"{proc.name}: {cmd.strip()[:160]}")
    return found


# ---- the run ---------------------------------------------------------------------------------
def rehearse(directory: str | Path, nodes: int = 2, *, timeout: float = 240.0,
             progress: Callable[[str], None] | None = None) -> RehearsalReport:
    """Rehearse the deployment in ``directory`` on ``nodes`` nodes of the running test cluster.

    Returns the :class:`RehearsalReport` (``.ok``, ``.checks``, ``.format()``). Raises
    :class:`~bedrock_deploy.errors.ServiceError` when no test cluster runs or it has too few
    nodes, :class:`~bedrock_deploy.diagnostics.InputError` for a directory that is not a
    deployment.

    Example::

        report = bd.rehearse("aurora-deploy")
        print(report.format())
        assert report.ok, [c.rule.id for c in report.failures]
    """
    from bedrock_deploy.deployment import Deployment
    from bedrock_deploy.engine import engine_dir
    from bedrock_deploy.errors import ServiceError
    from bedrock_deploy.launch.scheduler import scheduler_class
    from bedrock_deploy.sites import load_site

    say = progress or (lambda _msg: None)
    started = time.monotonic()
    dep = Deployment.open(Path(directory).resolve())
    site = _site_of(dep, load_site)
    cluster = find_cluster()
    if nodes < 1 or nodes > len(cluster.nodes):
        raise ServiceError(
            f"this rehearsal may use {nodes} node(s); the test cluster has "
            f"{len(cluster.nodes)}",
            hint=f"give --nodes 1 to {len(cluster.nodes)}, or restart the cluster with more "
            "(bash tests/cluster/cluster.sh start --nodes N, at most 8)")
    # A job on more nodes than the rehearsal: the site's nodes are folded onto ours (each
    # rehearsal node runs several of the site's, each under its own host name).
    run_nodes = min(dep.nodes, nodes)
    if run_nodes < dep.nodes and dep.launcher not in {"mpiexec-pals", "srun"}:
        raise ServiceError(
            f"{dep.directory} runs on {dep.nodes} node(s): rehearsing it on {run_nodes} folds "
            f"several of its nodes onto one, which only the emulated PALS mpiexec and srun "
            f"do (not {dep.launcher})",
            hint=f"rehearse with --nodes {dep.nodes} (at most {len(cluster.nodes)} here), or "
            "generate the deployment for fewer nodes")
    rdir = dep.directory / REHEARSAL_DIR
    context = environment.write(rdir, deployment=dep, site=site, cluster=cluster,
                                run_nodes=run_nodes, engine_dir=Path(engine_dir()),
                                preload=_preload())
    report = RehearsalReport(directory=dep.directory, site=site.name, scheduler=dep.scheduler,
                             launcher=dep.launcher, nodes=run_nodes, site_nodes=dep.nodes)
    env = environment.submit_environment(rdir, context)
    client = f"{context['python']} -m bedrock_deploy.rehearse.client {rdir / 'client.json'}"
    sched = scheduler_class(dep.scheduler)
    extra = {"BEDROCK_DEPLOY_READY_TIMEOUT": str(READY_TIMEOUT),
             "BEDROCK_DEPLOY_HEALTH_INTERVAL": "2", "BEDROCK_DEPLOY_STOP_TIMEOUT": "20"}
    for marker in (dep.run_dir / "ready", dep.run_dir / "query.json"):
        marker.unlink(missing_ok=True)
    if dep.group_file is not None:
        dep.group_file.unlink(missing_ok=True)
    outcome: dict[str, Any] = {}
    if not sched.batch:
        outcome = _run_unbatched(dep, context, env, client, extra, timeout, say)
    else:
        cmd = dep.submit_command(duration=DURATION, client=client, env=extra)
        say(f"submitting: {' '.join(cmd.argv)}")
        env = {**env, **cmd.extra}  # what submit adds (sbatch exports it; qsub passes -v)
        done = subprocess.run(cmd.argv, env=env, cwd=dep.directory, capture_output=True,
                              text=True, timeout=120)
        outcome["submit"] = done
        if done.returncode == 0:
            job_id = sched.parse_job_id(done.stdout)
            report.job_id = job_id
            report.output = sched.output_file(dep.log_dir, str(dep.launch_info.get(
                "job_name", "bedrock")), job_id)
            outcome.update(_follow(dep, sched, job_id, env, rdir, timeout, say))
    report.job_state = outcome.get("state", "")
    if "output" in outcome:
        report.output = outcome["output"]
    end = time.monotonic() + 20
    while _processes_naming(dep.directory) and time.monotonic() < end:
        time.sleep(0.3)
    outcome["leftovers"] = _processes_naming(dep.directory)
    report.checks = _checklist(dep, context, rdir, report, outcome)
    report.seconds = time.monotonic() - started
    (rdir / "report.json").write_text(json.dumps(report.to_dict(), indent=1))
    return report


def _site_of(dep: Any, load_site: Callable[[str], Any]) -> Any:
    for entry in dep.manifest.get("inputs", []):
        if entry.get("role") == "site" and Path(entry.get("file", "")).is_file():
            return load_site(entry["file"]).profile
    return load_site(dep.site).profile


def _preload() -> str:
    import bedrock_deploy

    for base in bedrock_deploy.__path__:
        lib = Path(base) / "libbedrock-rehearsal-cpus.so"
        if lib.is_file():
            return str(lib)
    import importlib.util

    spec = importlib.util.find_spec("bedrock_deploy._engine")
    if spec and spec.origin:
        lib = Path(spec.origin).parent / "libbedrock-rehearsal-cpus.so"
        if lib.is_file():
            return str(lib)
    return ""


def _hopeless(dep: Any, rdir: Path) -> str:
    """Why the job can no longer become ready (a process refused by the emulated fabric)."""
    files = [dep.log_dir / "query.err", *sorted(dep.log_dir.glob("engine-*.log"))]
    for f in files:
        try:
            text = f.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if EMULATION_MARK in line:
                text = line.split("] ", 2)[-1].replace(EMULATION_MARK, "").strip()
                return f"{f.name}: {text.split('. ')[0]}"
    return ""


def _follow(dep: Any, sched: Any, job_id: str, env: dict[str, str], rdir: Path,
            timeout: float, say: Callable[[str], None]) -> dict[str, Any]:
    end = time.monotonic() + timeout
    last = ""
    outcome: dict[str, Any] = {}
    while True:
        done = subprocess.run(sched.status_argv(job_id), env=env, capture_output=True,
                              text=True, timeout=60)
        status = sched.parse_status(done.stdout)
        state = status.state if status else "?"
        if state != last:
            say(f"job {job_id}: {state}")
            last = state
        if status is not None and status.finished:
            outcome["status"] = status
            outcome["state"] = state
            return outcome
        why = "" if (dep.run_dir / "ready").exists() else _hopeless(dep, rdir)
        if why and "hopeless" not in outcome:
            outcome["hopeless"] = why
            say(f"the job can no longer become ready ({why}): cancelling it")
            subprocess.run(sched.cancel_argv(job_id), env=env, capture_output=True, timeout=60)
            end = min(end, time.monotonic() + 40)
        if time.monotonic() > end:
            outcome["timeout"] = True
            say(f"job {job_id} still {state} after the rehearsal's limit: cancelling it")
            subprocess.run(sched.cancel_argv(job_id), env=env, capture_output=True, timeout=60)
            time.sleep(3)
            done = subprocess.run(sched.status_argv(job_id), env=env, capture_output=True,
                                  text=True, timeout=60)
            outcome["status"] = sched.parse_status(done.stdout)
            outcome["state"] = outcome["status"].state if outcome["status"] else state
            return outcome
        time.sleep(0.5)


def _run_unbatched(dep: Any, context: dict[str, Any], env: dict[str, str], client: str,
                   extra: dict[str, str], timeout: float,
                   say: Callable[[str], None]) -> dict[str, Any]:
    """Scheduler 'none': the script runs on the first node of the cluster, inside a one-node
    allocation of its Slurm (as a user would run it on a node they hold)."""
    script = dep.directory / str(dep.launch_info["script"])
    out = dep.log_dir / "run.out"
    dep.log_dir.mkdir(parents=True, exist_ok=True)
    job_env = {**env, **extra, "SERVICE_DURATION": str(DURATION),
               "BEDROCK_DEPLOY_CLIENT": client, "BEDROCK_DEPLOY_DIR": str(dep.directory)}
    argv = ["srun", f"--partition={context['cluster']['partition']}", "--nodes=1",
            "--exclusive", f"--nodelist={context['cluster']['nodes'][0]}", "--export=ALL",
            f"--output={out}", "bash", str(script)]
    say(f"running {script} on {context['cluster']['nodes'][0]}")
    try:
        # srun from beside slurmctld: where the test cluster's nodes can reach it back
        done = subprocess.run(["nsenter", "-t", _slurmctld_pid(context), "-u", "-m",
                               f"--wd={dep.directory}", "--", *argv],
                              env=job_env, capture_output=True, text=True, timeout=timeout)
        rc = done.returncode
        state = "COMPLETED" if rc == 0 else f"FAILED ({rc})"
    except subprocess.TimeoutExpired:
        rc, state = -1, "TIMEOUT"
    from bedrock_deploy.launch.scheduler import JobStatus

    return {"submit": subprocess.CompletedProcess(argv, 0, "", ""), "state": state,
            "status": JobStatus(state=state, finished=True, succeeded=rc == 0,
                                exit_code=str(rc)), "output": out}


def _slurmctld_pid(context: dict[str, Any]) -> str:
    pids = Path(context["cluster"]["run"]) / "pids"
    for line in pids.read_text().splitlines():
        name, _, pid = line.partition(" ")
        if name == "slurmctld":
            return pid.strip()
    raise RuntimeError("the test cluster's slurmctld is not recorded")


# ---- the checklist ---------------------------------------------------------------------------
def _checklist(dep: Any, ctx: dict[str, Any], rdir: Path, report: RehearsalReport,
               outcome: dict[str, Any]) -> list[Check]:
    rules = [r for r in load_rules() if _applies(r, ctx)]
    events = read_events(rdir)
    output = ""
    if report.output and Path(report.output).is_file():
        output = Path(report.output).read_text(errors="replace")
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_rule.setdefault(e["rule"], []).append(e)
    derived = _derived(dep, ctx, rdir, events, output, outcome, report)
    checks = []
    for rule in rules:
        if rule.id in derived:
            status, detail = derived[rule.id]
        else:
            evs = by_rule.get(rule.id, [])
            bad = [e for e in evs if not e["ok"]]
            if bad:
                status = "FAIL"
                detail = "; ".join(dict.fromkeys(e["detail"] for e in bad))
            elif evs:
                status = "pass"
                detail = "; ".join(dict.fromkeys(e["detail"] for e in evs if e["detail"]))
            else:
                status, detail = "-", ""
        checks.append(Check(rule, status, _short(detail)))
    return checks


def _short(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _derived(dep: Any, ctx: dict[str, Any], rdir: Path, events: list[dict[str, Any]],
             output: str, outcome: dict[str, Any], report: RehearsalReport
             ) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    submit = outcome.get("submit")
    accepted = submit is not None and submit.returncode == 0
    if not accepted:
        msg = (submit.stderr.strip() if submit is not None else "") or "not submitted"
        out["job.accepted"] = ("FAIL", msg)
    elif not any(e["rule"] == "job.accepted" for e in events):
        out["job.accepted"] = ("pass", f"scheduler {ctx['scheduler']}: the script runs on a "
                               "node directly")
    status = outcome.get("status")
    ready = (dep.run_dir / "ready").exists()
    # CPU map
    host = ctx["host_cpus"]
    out["cpu.map"] = ("pass", f"site CPUs 0-{ctx['site_node']['cpus'] - 1} run on host CPUs "
                      f"{format_cpus(host)} (site CPU c on host CPU "
                      f"{'c mod ' + str(len(host)) if len(host) > 1 else str(host[0])})")
    ranks = [e for e in events if e["rule"] == "rank"]
    engines = [e for e in ranks if any("rank-exec" in str(p) for p in e.get("program", []))]
    layout = {r["local_rank"]: parse_cpus(r["cpus"])
              for r in dep.manifest.get("layout", {}).get("ranks", []) if r.get("cpus")}
    pinned = bool(dep.manifest.get("layout", {}).get("pins_threads"))
    # the binding each engine started with: what its launcher gave it, or what rank-exec.sh
    # set for launchers that cannot bind each rank (taskset), as the engine itself received it
    started_with = {e.get("tool_pid"): e.get("site_cpus") for e in events
                    if e["rule"] == "tool" and e.get("tool") == "bedrock" and e.get("site_cpus")}
    if engines and pinned and layout:
        wrong = []
        for e in engines:
            want = layout.get(e["local"] % ctx["ppn"])
            got = parse_cpus(started_with.get(e["pid"]) or e["site_cpus"])
            if want is not None and got != want:
                wrong.append(f"rank {e['rank']} (local {e['local']}, {e['host']}) is bound to "
                             f"{format_cpus(got)}, its layout says {format_cpus(want)}")
        out["cpu.binding"] = (("FAIL", "; ".join(wrong)) if wrong else
                              ("pass", f"{len(engines)} rank(s) bound to their layout's CPUs"))
    elif engines and not pinned:
        out["cpu.binding"] = ("pass", "the layout does not pin: no binding to compare")
    out.update(_engine_pinning(dep, ctx, engines))
    # the fabric
    if ctx["fabric"] == "cxi":
        tools = [e for e in events if e["rule"] == "tool"]
        nov = [e for e in tools if not e.get("vnis")]
        texts = _emulation_messages(dep, output)
        refused = [t for t in texts if "cannot open an endpoint" in t]
        if nov or refused:
            who = [f"{e['tool']} on {e['host']} "
                   + ("(not started by the launcher)" if not e.get("launched")
                      else f"(started by {e['launched']} without a VNI)") for e in nov]
            out["cxi.endpoint"] = ("FAIL", "; ".join(dict.fromkeys(who)) or refused[0])
        elif tools:
            out["cxi.endpoint"] = ("pass", f"{len(tools)} process(es) opened CXI endpoints, "
                                   "each with a VNI from the launcher")
        other = [t for t in texts if "cannot reach the endpoint" in t]
        if other:
            out["cxi.same-vni"] = ("FAIL", other[0])
        elif ready:
            out["cxi.same-vni"] = ("pass", "every process reached the service on one VNI")
    # software
    if "the 'module' command is not available" in output:
        out["module.command"] = ("FAIL", _line(output, "the 'module' command is not available"))
    elif any(e["rule"] == "module.declared" for e in events):
        out["module.command"] = ("pass", "the job has the module command")
    if "spack not found" in output:
        out["spack.setup"] = ("FAIL", _line(output, "spack not found"))
    elif any(e["rule"] == "spack.env" for e in events):
        out["spack.setup"] = ("pass", "the job set up Spack by itself")
    if "not found in the Spack environment" in output:
        out["engine.tools"] = ("FAIL", _line(output, "not found in the Spack environment"))
    elif any(e["rule"] == "tool" and e.get("tool") == "bedrock" for e in events):
        out["engine.tools"] = ("pass", "bedrock, bedrock-query and bedrock-shutdown came from "
                               "the environment")
    # the job's life
    if accepted or outcome.get("state"):
        launching = re.search(r"launching (\d+) rank", output)
        # an emulated launcher records each rank it starts; a real one (scheduler none) is
        # seen starting them when the service becomes ready
        started = bool(launching) and (any(e["rule"] == "rank" for e in events) or ready)
        out["job.started"] = (("pass", f"{launching.group(1)} rank(s) launched")
                              if started and launching else
                              ("FAIL", _why_not_started(output, status)))
        if ready:
            out["job.ready"] = ("pass", "every rank answered the readiness query")
        else:
            why = outcome.get("hopeless") or _line(output, "error:") or "not ready"
            if outcome.get("hopeless"):
                why = f"the readiness query cannot succeed ({why}): the rehearsal cancelled the job"
            out["job.ready"] = ("FAIL", why) if started else ("-", "")
        client = rdir / "client.json"
        if client.is_file():
            rep = json.loads(client.read_text())
            out["job.client"] = (("pass", f"{len(rep['members'])} member(s) answered"
                                  + (", key/value round trip on each yokan provider"
                                     if any("kv" in m for m in rep["members"].values()) else ""))
                                 if rep.get("ok") else ("FAIL", "; ".join(rep["errors"])))
        elif ready:
            out["job.client"] = ("FAIL", _line(output, "client") or "the client did not run")
        if status is not None:
            ok = bool(status.succeeded)
            out["job.stopped"] = (("pass", f"the job ended {status.state}, exit status "
                                   f"{status.exit_code}") if ok else
                                  ("FAIL", f"the job ended {status.state} (exit status "
                                   f"{status.exit_code}): {_line(output, 'exit status')}"))
        elif outcome.get("timeout"):
            out["job.stopped"] = ("FAIL", "the job did not end within the rehearsal's limit")
    left = outcome.get("leftovers") or []
    out["job.leftovers"] = (("FAIL", f"{len(left)} process(es): " + "; ".join(left[:3]))
                            if left else ("pass", "no process of the run on any node"))
    return out


def _engine_pinning(dep: Any, ctx: dict[str, Any], engines: list[dict[str, Any]]
                    ) -> dict[str, tuple[str, str]]:
    query = dep.run_dir / "query.json"
    if not query.is_file():
        return {}
    try:
        reports = json.loads(query.read_text())
    except ValueError:
        return {"cpu.engine": ("FAIL", "run/query.json is not JSON")}
    local_of = {e["pid"]: e["local"] for e in engines}
    wrong, checked = [], 0
    for address, rep in reports.items():
        eng = rep.get("bedrock_engine", {})
        local = local_of.get(eng.get("pid"))
        if local is None:
            local = int(eng.get("rank", 0)) % ctx["ppn"]
        config = dep.config(local)
        planned = {}
        for x in config["margo"]["argobots"]["xstreams"]:
            cpus = x.get("affinity") or ([x["cpubind"]] if "cpubind" in x else None)
            if cpus:
                planned[x["name"]] = sorted(cpus)
        actual = {x["name"]: sorted(x.get("cpus", [])) for x in eng.get("xstreams", [])}
        for name, cpus in planned.items():
            checked += 1
            if actual.get(name) != cpus:
                wrong.append(f"rank {eng.get('rank')} ({address}) {name}: the engine reports "
                             f"{format_cpus(actual.get(name, []))}, its config says "
                             f"{format_cpus(cpus)}")
    if not checked:
        return {"cpu.engine": ("pass", "the layout pins no execution stream")}
    return {"cpu.engine": (("FAIL", "; ".join(wrong)) if wrong else
                           ("pass", f"{checked} execution stream(s) of {len(reports)} engine(s) "
                            "pinned where their configs say"))}


def _emulation_messages(dep: Any, output: str) -> list[str]:
    texts = []
    for f in [dep.log_dir / "query.err", dep.log_dir / "health.err",
              *sorted(dep.log_dir.glob("engine-*.log"))]:
        try:
            texts += [line for line in f.read_text(errors="replace").splitlines()
                      if EMULATION_MARK in line]
        except OSError:
            continue
    texts += [line for line in output.splitlines() if EMULATION_MARK in line]
    return texts


def _line(text: str, needle: str) -> str:
    for line in text.splitlines():
        if needle in line:
            return line.strip()[:300]
    return ""


def _why_not_started(output: str, status: Any) -> str:
    for needle in ("error:", "not found", "Error"):
        line = _line(output, needle)
        if line:
            return line
    if status is not None:
        return f"the job ended {status.state} before launching the ranks"
    return "the job did not start"
