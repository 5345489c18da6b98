"""``bedrock-deploy up``: generate, launch, exercise and stop a service on this host.

Steps (each one reuses what the other commands do, nothing is re-implemented):

1. ``generate`` a deployment for the probed local host (site ``local``: ``node: probe``,
   ``engine: embedded``, scheduler ``none``) into a fresh directory, 1 node x N processes; or,
   for a site with scheduler ``slurm`` and the embedded engine (``local-cluster``, the test
   cluster of namespaces on this host), ``--nodes`` nodes (default: the service's).
2. Run the generated launch script (``scripts/run.sh``, the one ``submit`` runs) in its own
   session, its output in ``DIR/run/logs/up.log``; under Slurm submit ``scripts/job.sbatch``
   with sbatch (a :class:`~bedrock_deploy.running.BatchJob`, its output in
   ``DIR/run/logs/<job>-<id>.out``). Follow it with a progress display: engines started (their
   "now running at" log line), members in the flock group file, every rank answers a query
   (the script writes ``DIR/run/ready``).
3. Smoke workload through the key/value (yokan) provider: every member's flock view must list
   the whole group; N keys are put through one member and read back through it, then every
   member of the group stores and returns N keys of its own (the ``map`` databases are one per
   process, not replicated), and the keys are erased again.
4. Ask every engine for its own report (the ``query`` RPC: per xstream the OS thread id and the
   CPUs it is really pinned to), compare with the plan (``configs/rank-<L>.json``) and with the
   kernel (``sched_getaffinity`` of that thread), and show one table row per xstream.
5. Unless ``keep``: stop the service the way the script stops it (SIGTERM to the script: its
   trap runs ``bedrock-engine-shutdown -f group.json`` and waits for the launcher; a batch job:
   every member's shutdown RPC, after which the job script ends by itself), check that the
   engines no longer answer and that no process of the run is left.

Ctrl-C (SIGINT) or SIGTERM at any point stops the service the same way before returning
(:class:`Interrupted`); a second signal while stopping kills what is left at once.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from bedrock_deploy.cpulist import format_cpulist
from bedrock_deploy.diagnostics import fail
from bedrock_deploy.errors import ServiceError
from bedrock_deploy.launch.scheduler import scheduler_class
from bedrock_deploy.plan import CONFIG_DIR, GROUP_FILE, RUN_DIR, config_name
from bedrock_deploy.resources import share_path
from bedrock_deploy.running import BatchJob, LocalScript, StopResult, run_processes
from bedrock_deploy.site_profile import EngineKind
from bedrock_deploy.sites import LoadedSite

if TYPE_CHECKING:
    from bedrock_deploy.plan import DeploymentPlan

# The launch script run on this host (moved to bedrock_deploy.running; names kept for callers).
LaunchedService = LocalScript

DEFAULT_SITE = "local"
UP_BATCH_SCHEDULER = "slurm"  # the batch system up submits to (the test cluster's)
DEFAULT_PROCESSES = 2
DEFAULT_KEYS = 100
DEFAULT_TIMEOUT = 120
DEFAULT_STOP_TIMEOUT = 10
LOG_NAME = "up.log"  # the launch script's output, in DIR/run/logs
KEY_PREFIX = "bedrock-deploy-up/"
RPC_TIMEOUT_MS = 5000
_RUNNING = re.compile(r"Bedrock daemon now running at (\S+)")


UpError = ServiceError  # the service did not come up or misbehaved (not bad input)


class Interrupted(Exception):  # what happened, not an error of ours
    """SIGINT or SIGTERM arrived; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.result: UpResult | None = None  # what was done, and how the service was stopped


def default_service() -> Path:
    return share_path("examples", "kv-service.yaml")


def default_output(site: str, base: Path | None = None) -> Path:
    """A new directory ``./deployments/up-<site>-<UTC time>`` (or under the temp dir if the
    current directory is not writable)."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    name = f"up-{Path(site).stem}-{stamp}"
    root = base if base is not None else Path.cwd() / "deployments"
    if base is None and not os.access(Path.cwd(), os.W_OK):
        root = Path(tempfile.gettempdir()) / "bedrock-deploy"
    out = root / name
    n = 2
    while out.exists():
        out = root / f"{name}-{n}"
        n += 1
    return out


# ---- results ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Member:
    rank: int
    address: str
    pid: int
    host: str = ""  # the engine's host name, from its own report (query)


@dataclass(frozen=True)
class SmokeResult:
    """The key/value round trips through one member."""

    rank: int
    address: str
    view_members: int  # members in this member's flock view
    view_matches: bool  # same members as the group file
    puts: int
    gets_ok: int  # values read back equal to what was put
    listed: int  # keys with our prefix the provider lists
    erased: int
    handler_xstream: str  # the xstream that ran the last RPC (from its OS thread id)
    seconds: float

    @property
    def ok(self) -> bool:
        return (self.view_matches and self.gets_ok == self.puts and self.listed == self.puts
                and self.erased == self.puts)


@dataclass(frozen=True)
class XstreamRow:
    rank: int
    pid: int
    name: str
    role: str
    os_thread_id: int
    planned: tuple[int, ...]  # CPUs of the config (affinity/cpubind); empty = unpinned
    engine_cpus: tuple[int, ...]  # what the engine reports it is pinned to
    kernel_cpus: tuple[int, ...] | None  # sched_getaffinity of that thread (None: not visible)

    @property
    def ok(self) -> bool:
        as_planned = not self.planned or self.engine_cpus == self.planned
        return as_planned and (self.kernel_cpus is None or self.kernel_cpus == self.engine_cpus)


@dataclass
class UpResult:
    directory: Path
    site: str
    service: str
    protocol: str
    processes: int
    members: list[Member] = field(default_factory=list)
    smoke: list[SmokeResult] = field(default_factory=list)
    smoke_note: str = ""
    xstreams: list[XstreamRow] = field(default_factory=list)
    stop: StopResult | None = None
    kept: bool = False
    script: str = "scripts/run.sh"  # the launch script, relative to the directory
    notes: list[str] = field(default_factory=list)  # the layout planner's notes
    script_pid: int | None = None
    job_id: str | None = None  # the batch job, when the site has a scheduler

    @property
    def stop_command(self) -> str:
        """How to stop a kept service by hand."""
        if self.job_id is not None:  # the batch shell's trap stops the service cleanly
            return f"scancel --batch --signal=TERM {self.job_id}"
        return f"kill -TERM {self.script_pid}"

    @property
    def ok(self) -> bool:
        return (all(s.ok for s in self.smoke) and all(x.ok for x in self.xstreams)
                and (self.kept or (self.stop is not None and self.stop.clean)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory), "site": self.site, "service": self.service,
            "protocol": self.protocol, "processes": self.processes, "ok": self.ok,
            "members": [asdict(m) for m in self.members],
            "smoke": [{**asdict(s), "ok": s.ok} for s in self.smoke],
            "smoke_note": self.smoke_note,
            "xstreams": [{"rank": x.rank, "pid": x.pid, "name": x.name, "role": x.role,
                          "os_thread_id": x.os_thread_id, "planned": list(x.planned),
                          "engine_cpus": list(x.engine_cpus),
                          "kernel_cpus": None if x.kernel_cpus is None else list(x.kernel_cpus),
                          "ok": x.ok} for x in self.xstreams],
            "stop": None if self.stop is None else {**asdict(self.stop),
                                                    "clean": self.stop.clean},
            "kept": self.kept, "script_pid": self.script_pid, "job_id": self.job_id,
            "notes": self.notes,
        }


class Progress(Protocol):
    """What ``up`` reports while it waits (the CLI draws it with rich)."""

    def stage(self, name: str, total: int) -> None: ...
    def advance(self, name: str, completed: int) -> None: ...
    def close(self) -> None: ...


class _NoProgress:
    def stage(self, name: str, total: int) -> None:
        pass

    def advance(self, name: str, completed: int) -> None:
        pass

    def close(self) -> None:
        pass


# ---- signals ---------------------------------------------------------------------------------
class SignalGuard:
    """While inside: the first SIGINT/SIGTERM raises :class:`Interrupted` if ``armed``; every
    signal is counted (``count``), so a cleanup that disarmed the guard can notice another one
    and hurry up instead of being cut short. Handlers are restored on exit."""

    def __init__(self) -> None:
        self.count = 0
        self.armed = True
        self.last: int | None = None
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        self.last = signum
        if self.armed:
            self.armed = False
            raise Interrupted(signum)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Inside: signals are only counted; one that came meanwhile is raised on leaving."""
        was, seen = self.armed, self.count
        self.armed = False
        try:
            yield
        finally:
            self.armed = was
        if was and self.count > seen and self.last is not None:
            self.armed = False
            raise Interrupted(self.last)

    def __enter__(self) -> SignalGuard:
        self._old = {s: signal.signal(s, self._handler) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


# ---- reading the deployment ------------------------------------------------------------------
def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def group_addresses(group_file: Path) -> list[str]:
    """Member addresses of a flock group file ([] while it is absent or being written)."""
    data = _load_json(group_file)
    if not isinstance(data, dict) or not isinstance(data.get("members"), list):
        return []
    return [str(m["address"]) for m in data["members"] if isinstance(m, dict) and "address" in m]


def started_engines(log_dir: Path) -> int:
    """Engines that logged "Bedrock daemon now running at" (one log per rank)."""
    count = 0
    for log in log_dir.glob("engine-*.log"):
        with contextlib.suppress(OSError):
            count += len(_RUNNING.findall(log.read_text(errors="replace")))
    return count


def provider_id(config: dict[str, Any], kind: str) -> int | None:
    for p in config.get("providers", []):
        if p.get("type") == kind:
            return int(p.get("provider_id", 0))
    return None


def planned_cpus(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """xstream name -> the CPUs its config pins it to (empty: unpinned)."""
    out: dict[str, tuple[int, ...]] = {}
    for x in config.get("margo", {}).get("argobots", {}).get("xstreams", []):
        sched = x.get("scheduler", {}) if isinstance(x.get("scheduler"), dict) else {}
        cpus: list[int] = []
        if "cpubind" in x:
            cpus = [int(x["cpubind"])]
        elif "affinity" in x:
            cpus = [int(c) for c in x["affinity"]]
        elif "cpubind" in sched:
            cpus = [int(sched["cpubind"])]
        out[str(x.get("name"))] = tuple(sorted(cpus))
    return out


def roles(manifest: dict[str, Any], local_rank: int) -> dict[str, str]:
    for r in manifest.get("layout", {}).get("ranks", []):
        if r.get("local_rank") == local_rank:
            return {str(x["name"]): str(x["role"]) for x in r.get("xstreams", [])}
    return {}


def kernel_affinity(pid: int, tid: int) -> tuple[int, ...] | None:
    """CPUs the kernel lets thread ``tid`` of ``pid`` run on (None if it is not ours to see)."""
    if not Path(f"/proc/{pid}/task/{tid}").exists():
        return None
    try:
        return tuple(sorted(os.sched_getaffinity(tid)))
    except OSError:
        return None


# ---- the steps -------------------------------------------------------------------------------
def check_engine() -> None:
    """The embedded engine must be installed (executables and bindings)."""
    from bedrock_deploy.engine import EngineNotFound, bindings, executable

    try:
        for name in ("bedrock-engine", "bedrock-engine-query", "bedrock-engine-shutdown"):
            executable(name)
        bindings()
    except EngineNotFound as exc:
        raise UpError(str(exc), hint="run `bash .ci/install` (it compiles native/)") from None


def check_site(site: str | Path | LoadedSite) -> LoadedSite:
    """``up`` runs the embedded engine: the launch script on this host (a scheduler that is not
    a batch system, e.g. ``none``), or a Slurm job of a cluster this host reaches (the test
    cluster of site ``local-cluster``). Returns the loaded site."""
    from bedrock_deploy.sites import load_site

    loaded = site if isinstance(site, LoadedSite) else load_site(site)
    prof = loaded.profile
    if prof.engine != EngineKind.embedded:
        raise fail(f"site {prof.name!r} runs engine {prof.engine.value!r}; `up` drives the "
                   "embedded engine (bedrock-engine) on this host", path=("engine",),
                   location=loaded.locate(("engine",)),
                   hint="use a profile with `engine: embedded` (e.g. --site local), or "
                   "`generate` + `submit` for a Spack-built bedrock")
    sched = scheduler_class(prof.scheduler.type)
    if sched.batch and sched.name != UP_BATCH_SCHEDULER:
        raise fail(f"site {prof.name!r} uses scheduler {prof.scheduler.type!r}; `up` "
                   "starts the service directly on this host or through Slurm",
                   path=("scheduler", "type"), location=loaded.locate(("scheduler", "type")),
                   hint="use a profile with `scheduler: {type: none}` (e.g. --site local) or "
                   "a Slurm one (--site local-cluster), or `generate` + `submit`")
    return loaded


def check_mpi(plan: DeploymentPlan, directory: Path) -> None:
    """A service that bootstraps through MPI needs mpi4py or ``bedrock-engine-mpi``."""
    from bedrock_deploy.launch.render import MPI_DAEMON, needs_mpi

    if needs_mpi(plan) and importlib.util.find_spec("mpi4py") is None \
            and shutil.which(MPI_DAEMON) is None:
        raise UpError("this service bootstraps through MPI (flock 'mpi') and neither mpi4py "
                      f"(for bedrock_deploy.engine_mpi) nor {MPI_DAEMON} is installed; "
                      f"{directory} was generated", hint="run `bash .ci/install`")


def ended(service: LaunchedService | BatchJob) -> str:
    """How the launch ended, for messages."""
    status = service.status()
    if isinstance(service, BatchJob):
        return f"{service.description} ended ({status.state}, exit code {status.exit_code})"
    return f"the launch script ended (exit status {status.exit_code})"


def wait_ready(service: LaunchedService | BatchJob, expected: int, timeout: float,
               progress: Progress) -> list[str]:
    """Follow the launch until every rank answers; returns the group's addresses."""
    run = service.directory / RUN_DIR
    group_file, ready, logs = run / GROUP_FILE, run / "ready", run / "logs"
    progress.stage("engines started", expected)
    progress.stage(f"members in {RUN_DIR}/{GROUP_FILE}", expected)
    progress.stage("ranks answering a query", expected)
    deadline = time.monotonic() + timeout
    while True:
        progress.advance("engines started", min(started_engines(logs), expected))
        members = group_addresses(group_file)
        progress.advance(f"members in {RUN_DIR}/{GROUP_FILE}", len(members))
        if ready.exists() and members:
            progress.advance("ranks answering a query", expected)
            return members
        if not service.running():
            raise UpError(f"{ended(service)} before the service was ready",
                          hint=f"see {service.log} and the engine logs next to it",
                          details=service.log_tail())
        if time.monotonic() > deadline:
            raise UpError(f"the service was not ready after {timeout:g}s ({len(members)} of "
                          f"{expected} member(s) in the group file)",
                          hint=f"see {service.log}; --timeout sets the limit",
                          details=service.log_tail())
        time.sleep(0.1)


def query_members(client: Any, addresses: list[str]) -> dict[str, dict[str, Any]]:
    """Each engine's own report (``query``), by address."""
    out: dict[str, dict[str, Any]] = {}
    for addr in addresses:
        out[addr] = client.query(addr)
    return out


def _thread_names(report: dict[str, Any]) -> dict[int, str]:
    return {int(x["os_thread_id"]): str(x["name"])
            for x in report.get("bedrock_engine", {}).get("xstreams", [])}


def smoke_member(client: Any, member: Member, report: dict[str, Any], group: list[str],
                 kv_id: int, flock_id: int | None, keys: int, token: str) -> SmokeResult:
    t0 = time.perf_counter()
    view_members, view_matches = len(group), True
    if flock_id is not None:
        view = client.flock_view(member.address, flock_id)
        seen = [str(m["address"]) for m in view.get("members", [])]
        view_members, view_matches = len(seen), sorted(seen) == sorted(group)
    prefix = f"{KEY_PREFIX}{token}/{member.rank}/"
    items = [(f"{prefix}{i:06d}".encode(), f"{token}:{member.rank}:{i}".encode())
             for i in range(keys)]
    for k, v in items:
        client.put(member.address, kv_id, k, v)
    gets_ok = sum(1 for k, v in items if client.get(member.address, kv_id, k) == v)
    handler = int(client.last_handler["os_thread_id"])
    listed = len(client.list(member.address, kv_id, prefix.encode(), keys + 1))
    erased = sum(1 for k, _ in items if client.erase(member.address, kv_id, k))
    return SmokeResult(rank=member.rank, address=member.address, view_members=view_members,
                       view_matches=view_matches, puts=keys, gets_ok=gets_ok, listed=listed,
                       erased=erased,
                       handler_xstream=_thread_names(report).get(handler, f"tid {handler}"),
                       seconds=time.perf_counter() - t0)


def xstream_rows(member: Member, report: dict[str, Any], config: dict[str, Any],
                 role_of: dict[str, str]) -> list[XstreamRow]:
    planned = planned_cpus(config)
    rows = []
    for x in report.get("bedrock_engine", {}).get("xstreams", []):
        name, tid = str(x["name"]), int(x["os_thread_id"])
        rows.append(XstreamRow(
            rank=member.rank, pid=member.pid, name=name,
            role=role_of.get(name, "primary" if name == "__primary__" else "-"),
            os_thread_id=tid, planned=planned.get(name, ()),
            engine_cpus=tuple(sorted(int(c) for c in x.get("cpus", []))),
            kernel_cpus=kernel_affinity(member.pid, tid)))
    return rows


def stop_service(service: LaunchedService | BatchJob, client: Any, addresses: list[str],
                 stop_timeout: float, guard: SignalGuard, *, ready: bool = True) -> StopResult:
    """Stop the script (SIGTERM, its trap shuts the engines down; a batch job: every member's
    shutdown RPC, then the job ends by itself, or is cancelled before the service is ready),
    then check nothing is left. A signal arriving meanwhile does not cut this short: it kills
    what is left at once."""
    guard.armed = False
    seen = guard.count
    timeout = stop_timeout + 15
    if isinstance(service, BatchJob):
        if ready and client is not None:
            for addr in addresses:
                with contextlib.suppress(Exception):  # gone already: checked below
                    client.shutdown(addr)
        else:
            timeout = 0
    status, forced = service.stop(timeout, force=lambda: guard.count > seen, ready=ready)
    session = service.pid if isinstance(service, LocalScript) else None
    leftover = run_processes(session, service.directory)
    end = time.monotonic() + 5
    while leftover and time.monotonic() < end:
        time.sleep(0.1)
        leftover = run_processes(session, service.directory)
    if leftover:  # never leave a process behind: kill what is left, by pid, and report it
        service.kill()
        for pid in leftover:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    still = []
    if client is not None:
        client.set_timeout_ms(1000)
        for addr in addresses:
            try:
                client.ping(addr)
                still.append(addr)
            except Exception:  # any failure means it no longer answers
                pass
    return StopResult(script_status=status, forced=forced, still_answering=still,
                      leftover=[f"{p}: {c}" for p, c in sorted(leftover.items())])


@dataclass
class UpOptions:
    site: str = DEFAULT_SITE
    service: str | None = None
    output: str | None = None
    processes: int = DEFAULT_PROCESSES
    nodes: int | None = None  # None: 1 without a batch scheduler, else the service's own
    keys: int = DEFAULT_KEYS
    keep: bool = False
    serve: bool = False
    force: bool = False
    transport: str | None = None  # a transport of the site; None: generate's selection
    timeout: float = DEFAULT_TIMEOUT
    stop_timeout: int = DEFAULT_STOP_TIMEOUT


def _check_options(opts: UpOptions) -> None:
    for name, value, least in (("--np", opts.processes, 1), ("--keys", opts.keys, 1),
                               ("--nodes", 1 if opts.nodes is None else opts.nodes, 1),
                               ("--timeout", opts.timeout, 1),
                               ("--stop-timeout", opts.stop_timeout, 1)):
        if value < least:
            raise fail(f"{name} must be at least {least} (got {value:g})", file=name)
    if opts.keep and opts.serve:
        raise fail("--keep and --serve contradict each other", file="--serve",
                   hint="--keep leaves the service running and returns; --serve keeps it up "
                   "in the foreground until Ctrl-C, then stops it")


def up(opts: UpOptions, *, progress: Progress | None = None,
       on_generated: Callable[[UpResult], None] | None = None,
       on_up: Callable[[UpResult], None] | None = None) -> UpResult:
    """Generate, launch, exercise, report and (unless ``opts.keep``) stop; see the module doc.

    Raises InputError (bad options/site/service; nothing written), UpError (the service did
    not come up), Interrupted (SIGINT/SIGTERM; the service was stopped first; ``.result`` is
    None if it came before the deployment was written). ``on_generated`` is called once the
    directory is written, ``on_up`` once the report is complete (before stopping: with
    ``serve`` the caller then waits for Ctrl-C).
    """
    progress = progress or _NoProgress()
    _check_options(opts)
    with SignalGuard() as guard:
        result: UpResult | None = None
        try:
            result = _generate(opts)
            if on_generated:
                on_generated(result)
            return _run(opts, result, guard, progress, on_up)
        except Interrupted as exc:
            exc.result = result
            raise


def _generate(opts: UpOptions) -> UpResult:
    from bedrock_deploy.generate import generate
    from bedrock_deploy.launch.render import LAUNCH_INFO

    loaded = check_site(opts.site)
    check_engine()
    direct = not scheduler_class(loaded.profile.scheduler.type).batch
    if direct and (opts.nodes or 1) != 1:
        raise fail(f"--nodes {opts.nodes}: site {opts.site!r} has no batch scheduler, `up` "
                   "runs its processes on this host only", file="--nodes",
                   hint="use a Slurm site, e.g. --site local-cluster (tests/cluster/cluster.sh)")
    service_file = opts.service or str(default_service())
    out = Path(opts.output) if opts.output else default_output(opts.site)
    gen = generate(opts.site, service_file, out, force=opts.force,
                   nodes=1 if direct else opts.nodes, ppn=opts.processes,
                   transport=opts.transport)
    directory = gen.out.absolute()
    info = json.loads((directory / LAUNCH_INFO).read_text())
    result = UpResult(directory=directory, site=gen.plan.site.name, service=gen.plan.service.name,
                      protocol=str(info["protocol"]), processes=gen.plan.total_processes,
                      script=str(info["script"]), notes=list(gen.plan.layout.notes))
    check_mpi(gen.plan, directory)
    return result


def submit_job(directory: Path, info: dict[str, Any], env: dict[str, str]) -> BatchJob:
    """Submit the job script with the batch scheduler (sbatch), as ``submit`` does."""
    from bedrock_deploy.deployment import job_environment

    sched = scheduler_class(UP_BATCH_SCHEDULER)
    logs = directory / RUN_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    name = str(info.get("job_name", "bedrock"))
    env = job_environment(env, {})
    argv = sched.submit_argv(directory, logs, name, env)
    done = subprocess.run(argv, env=env, cwd=directory, capture_output=True, text=True)
    if done.returncode != 0:
        raise UpError(f"{argv[0]} failed (status {done.returncode}): "
                      f"{(done.stderr or done.stdout).strip()}",
                      hint="is the cluster up and SLURM_CONF set? The test cluster of site "
                      "local-cluster: bash tests/cluster/cluster.sh start --nodes 2 && "
                      'eval "$(bash tests/cluster/cluster.sh env)"')
    job_id = sched.parse_job_id(done.stdout)
    return BatchJob(sched, job_id, directory, sched.output_file(logs, name, job_id), env=env)


def _run(opts: UpOptions, result: UpResult, guard: SignalGuard, progress: Progress,
         on_up: Callable[[UpResult], None] | None) -> UpResult:
    from bedrock_deploy.engine import bindings

    directory = result.directory
    env = dict(os.environ)
    env["BEDROCK_DEPLOY_READY_TIMEOUT"] = str(int(opts.timeout))
    env["BEDROCK_DEPLOY_STOP_TIMEOUT"] = str(opts.stop_timeout)
    for k in ("SERVICE_DURATION", "BEDROCK_DEPLOY_CLIENT", "BEDROCK_DEPLOY_DIR"):
        env.pop(k, None)  # the script serves until up stops it
    (directory / RUN_DIR / "ready").unlink(missing_ok=True)
    client = bindings().Client(result.protocol.split(":")[0])
    client.set_timeout_ms(RPC_TIMEOUT_MS)
    service: LaunchedService | BatchJob | None = None
    addresses: list[str] = []
    info = _load_json(directory / "scripts" / "launch.json") or {}
    try:
        with guard.deferred():  # a signal now must not lose track of a started script
            if info.get("scheduler") == UP_BATCH_SCHEDULER:
                service = submit_job(directory, info, env)
                result.job_id = service.job_id
            else:
                service = LaunchedService(directory, result.script, env, tied=not opts.keep,
                                          log_name=LOG_NAME)
                result.script_pid = service.pid
        addresses = wait_ready(service, result.processes, opts.timeout + 5, progress)
        progress.close()
        _exercise(result, client, addresses, directory, opts.keys)
        if on_up:
            on_up(result)
        if opts.serve:
            while service.running():
                time.sleep(0.2)
            raise UpError(f"the service ended by itself ({ended(service)})",
                          hint=f"see {service.log}",
                          details=service.log_tail())
    except BaseException:
        progress.close()
        if service is not None:
            result.stop = stop_service(service, client, addresses, opts.stop_timeout, guard,
                                       ready=bool(addresses))
        raise
    if opts.keep:
        result.kept = True
        return result
    result.stop = stop_service(service, client, addresses, opts.stop_timeout, guard)
    return result


def _exercise(result: UpResult, client: Any, addresses: list[str], directory: Path,
              keys: int) -> None:
    reports = query_members(client, addresses)
    manifest = _load_json(directory / "manifest.json") or {}
    ppn = int(manifest.get("processes_per_node", result.processes))
    members: list[Member] = []
    for addr in addresses:
        eng = reports[addr].get("bedrock_engine", {})
        members.append(Member(rank=int(eng.get("rank", len(members))), address=addr,
                              pid=int(eng.get("pid", 0)), host=str(eng.get("host", ""))))
    members.sort(key=lambda m: m.rank)
    result.members = members
    configs = {L: _load_json(directory / CONFIG_DIR / config_name(L)) or {} for L in range(ppn)}
    kv_id = provider_id(configs[0], "yokan")
    flock_id = provider_id(configs[0], "flock")
    if kv_id is None:
        result.smoke_note = "the service has no yokan provider: no key/value workload"
    else:
        token = secrets.token_hex(4)
        result.smoke = [smoke_member(client, m, reports[m.address], addresses, kv_id, flock_id,
                                     keys, token) for m in members]
        result.smoke_note = (f"{keys} keys put, read back, listed and erased through each "
                             f"member (provider {kv_id}); one map database per process")
    for m in members:
        local = m.rank % ppn
        result.xstreams += xstream_rows(m, reports[m.address], configs[local],
                                        roles(manifest, local))


def describe_cpus(cpus: tuple[int, ...] | None) -> str:
    if cpus is None:
        return "?"
    return format_cpulist(cpus) if cpus else "-"
