"""A running service: its members, readiness, queries, and a stop that leaves nothing behind.

:class:`RunningService` is what :meth:`Deployment.launch() <bedrock_deploy.Deployment.launch>`,
:meth:`Deployment.submit() <bedrock_deploy.Deployment.submit>` and :func:`bedrock_deploy.up`
return. It knows the service through the deployment directory (the flock group file
``run/group.json``, the engines' logs) and the engines' own RPCs, whatever started the ranks;
what started them is a :class:`ServiceProcess`:

* :class:`LocalScript`: the deployment's job script (``scripts/run.sh``) run on this host in
  its own session (scheduler ``none``; the launcher inside it may be mpirun, srun, ...);
* :class:`BatchJob`: the job script submitted to the site's scheduler (sbatch, qsub, flux);
* any other object with the same methods (a launcher driven from Python, such as a Dragon
  ``ProcessGroup``), passed to :meth:`Deployment.attach() <bedrock_deploy.Deployment.attach>`;
* nothing (``process=None``): the service was started elsewhere; stopping it then means
  shutting its engines down through their RPCs.

Stopping (:meth:`RunningService.shutdown`, also on leaving a ``with`` block and at interpreter
exit) asks every member to finalize (the ``shutdown`` RPC, as ``bedrock-shutdown -f group.json``
does), lets the launch end by itself, signals it if it does not, kills by PID whatever of the
run is left, and checks that no engine answers any more.

Example::

    import bedrock_deploy as bd

    with bd.Deployment.open("deploy").launch(timeout=60) as running:
        for member in running.members:
            print(member.rank, member.address)
        print(running.query(rank=0)["bedrock_engine"]["xstreams"])
        running.database(rank=1).put("key", b"value")
    # here every engine has finalized and no process of the run is left
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, overload, runtime_checkable

from bedrock_deploy.client import (
    Client,
    Database,
    Member,
    ServiceGroupHandle,
    ServiceHandle,
    read_group_file,
)
from bedrock_deploy.engine import EngineNotFound
from bedrock_deploy.errors import RpcError, ServiceError
from bedrock_deploy.launch.scheduler import JobStatus, Scheduler

if TYPE_CHECKING:
    from bedrock_deploy.deployment import Deployment

__all__ = ["BatchJob", "LocalScript", "RunningService", "ServiceProcess", "StopResult",
           "children", "run_processes"]

DEFAULT_READY_TIMEOUT = 120.0
DEFAULT_STOP_TIMEOUT = 30.0
READY_MARKER = "run/ready"  # written by the job script once every rank answered its query
_RUNNING = re.compile(r"Bedrock daemon now running at (\S+)")
_ENGINE_LOG = re.compile(r"engine-(.*)-(\d+)\.log$")


# ---- processes of a run ----------------------------------------------------------------------
def _proc_cmdline(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None
    if state in {"Z", "X"}:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def run_processes(session: int | None, directory: Path) -> dict[int, str]:
    """Live processes of one run: in the launch script's session, or (had one left it) running
    its ``scripts/`` or an engine on its ``configs/`` (not, say, a ``less`` of its logs).

    Example::

        for pid, cmdline in bd.running.run_processes(None, Path("deploy").absolute()).items():
            print(pid, cmdline)
    """
    found: dict[int, str] = {}
    me = os.getpid()
    marks = (f"{directory}/scripts/", f"-c {directory}/configs/")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        cmd = _proc_cmdline(pid)
        if cmd is None:
            continue
        try:
            in_session = session is not None and os.getsid(pid) == session
        except OSError:
            continue
        if in_session or any(m in cmd for m in marks):
            found[pid] = cmd
    return found


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc/*/stat)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 1 and fields[1] == str(pid) and fields[0] not in {"Z", "X"}:
            out.append(int(entry.name))
    return out


def _tail(path: Path | None, lines: int) -> str:
    if path is None:
        return ""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


# ---- what started the ranks ------------------------------------------------------------------
@runtime_checkable
class ServiceProcess(Protocol):
    """What started the ranks of a service, as :class:`RunningService` drives it.

    A new way of starting ranks (a Dragon ``ProcessGroup``, ...) plugs in by providing these
    methods and handing the object to :meth:`Deployment.attach()
    <bedrock_deploy.Deployment.attach>`; :class:`LocalScript` and :class:`BatchJob` are the two
    shipped ones.

    Example::

        class MyGroup:                         # e.g. wraps a Dragon ProcessGroup
            description = "dragon process group"
            log = None
            def running(self) -> bool: ...
            def status(self) -> JobStatus: ...
            def stop(self, timeout, force, *, ready=True): ...   # -> (exit status, forced)
            def leftovers(self) -> list[str]: ...
            def kill(self) -> None: ...
            def log_tail(self, lines=25) -> str: ...

        running = deployment.attach(MyGroup())
    """

    @property
    def description(self) -> str:
        """What it is, for messages: ``"pid 1234 (scripts/run.sh)"``, ``"slurm job 42"``."""
        ...

    @property
    def log(self) -> Path | None:
        """Its output file, if it has one."""
        ...

    def running(self) -> bool:
        """Has it not ended yet (a queued batch job counts as running)?"""
        ...

    def is_ready(self) -> bool:
        """Does the launch itself consider the service ready (the job script writes
        ``run/ready`` once every rank answered its query)? True if it has no such notion."""
        ...

    def status(self) -> JobStatus:
        """Its state now (``finished``, ``succeeded``, ``exit_code``)."""
        ...

    def stop(self, timeout: float, force: Callable[[], bool], *, ready: bool = True
             ) -> tuple[int | None, bool]:
        """End it: politely (a signal its cleanup handles), then by force after ``timeout``
        seconds or as soon as ``force()`` is true. ``ready``: the service was complete (the
        members were asked to finalize before). Returns (exit status, whether it was forced)."""
        ...

    def leftovers(self) -> list[str]:
        """What of the run is still alive (``"pid: command line"``); [] when nothing is."""
        ...

    def kill(self) -> None:
        """Kill, by PID or job id, everything of the run that is left."""
        ...

    def log_tail(self, lines: int = 25) -> str:
        """The last lines of its output."""
        ...


class LocalScript:
    """The deployment's job script run on this host, in its own session (so a Ctrl-C meant for
    the caller does not reach the launcher unannounced: the caller decides how it stops).

    ``tied``: should this Python process die without stopping it (SIGKILL, a crash), the kernel
    sends the script SIGTERM (``setpriv --pdeathsig``, util-linux) and its trap stops the service
    cleanly. The kernel sends it when the *thread* that started the script ends, so tie only
    from a thread that lives as long as the service (the main thread).

    Example::

        script = LocalScript(Path("deploy").absolute(), "scripts/run.sh", dict(os.environ))
        running = bd.RunningService(bd.Deployment.open("deploy"), script)
    """

    def __init__(self, directory: Path, script: str, env: Mapping[str, str], *,
                 tied: bool = True, log_name: str = "run.out") -> None:
        self.directory = directory
        self.script = script
        self.log: Path = directory / "run" / "logs" / log_name
        self.log.parent.mkdir(parents=True, exist_ok=True)
        argv = ["bash", str(directory / script)]
        setpriv = shutil.which("setpriv")
        self.tied = bool(tied and setpriv)
        if self.tied and setpriv:
            argv = [setpriv, "--pdeathsig", "TERM", *argv]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(  # our own generated script
                argv, cwd=directory, env=dict(env),
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.pid = self.proc.pid

    @property
    def description(self) -> str:
        return f"pid {self.pid} ({self.script})"

    def running(self) -> bool:
        return self.proc.poll() is None

    def is_ready(self) -> bool:
        return (self.directory / READY_MARKER).exists()

    def status(self) -> JobStatus:
        rc = self.proc.poll()
        if rc is None:
            return JobStatus(state="RUNNING", finished=False, succeeded=False)
        return JobStatus(state="COMPLETED" if rc == 0 else "FAILED", finished=True,
                         succeeded=rc == 0, exit_code=str(rc))

    def log_tail(self, lines: int = 25) -> str:
        return _tail(self.log, lines)

    def stop(self, timeout: float, force: Callable[[], bool], *, ready: bool = True
             ) -> tuple[int | None, bool]:
        """SIGTERM to the script (its trap shuts the engines down through the group file and
        waits for the launcher); after ``timeout`` s, or at once when ``force()`` turns true,
        SIGKILL its whole session. Before the service is ready there is no complete group file
        to shut down through, and the script would wait its stop timeout before signalling the
        launcher: the script's children (the launcher, a sleep, a query) get SIGTERM at once
        instead, as the script itself does last (mpirun forwards it to the engines, which
        finalize). Returns (exit status, whether it had to be killed)."""
        forced = False
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            if not ready:
                time.sleep(0.3)  # let the trap run first
                for pid in children(self.pid):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGTERM)
            end = time.monotonic() + timeout
            while self.running() and time.monotonic() < end and not force():
                time.sleep(0.05)
            if self.running():
                forced = True
                self.kill_session()
        try:
            status = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            status = None
        return status, forced

    def leftovers(self) -> list[str]:
        return [f"{p}: {c}" for p, c in sorted(run_processes(self.pid, self.directory).items())]

    def kill_session(self) -> None:
        """SIGKILL every process of this run (by pid: the script's session, or naming DIR)."""
        for pid in run_processes(self.pid, self.directory):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    kill = kill_session


def _exit_code(code: str | None) -> int | None:
    """``"0:0"`` (Slurm), ``"0"`` (PBS, Flux) -> 0; None when there is none."""
    if not code:
        return None
    head = code.split(":")[0].strip()
    return int(head) if head.lstrip("-").isdigit() else None


class BatchJob:
    """The job script submitted to the site's scheduler; followed with the scheduler's status
    command, cancelled with its cancel command (``scancel``, ``qdel``, ``flux cancel``).

    Example::

        job = BatchJob(scheduler_class("slurm"), "42", Path("deploy").absolute(), output)
        print(job.status().state)
    """

    def __init__(self, scheduler: type[Scheduler], job_id: str, directory: Path,
                 output: Path | None, *, env: Mapping[str, str] | None = None) -> None:
        self.scheduler = scheduler
        self.job_id = job_id
        self.directory = directory
        self.log: Path | None = output
        self.env = dict(env) if env is not None else None
        self._last = JobStatus(state="SUBMITTED", finished=False, succeeded=False)
        self._misses = 0
        self._checked = 0.0

    @property
    def description(self) -> str:
        return f"{self.scheduler.name} job {self.job_id}"

    def status(self) -> JobStatus:
        """Ask the scheduler (at most every 0.5 s); a job it no longer knows ten times in a row
        counts as finished in its last known state."""
        if self._last.finished or time.monotonic() - self._checked < 0.5:
            return self._last
        self._checked = time.monotonic()
        try:
            done = subprocess.run(self.scheduler.status_argv(self.job_id), capture_output=True,
                                  text=True, env=self.env, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            done = None
        status = self.scheduler.parse_status(done.stdout) if done and done.returncode == 0 \
            else None
        if status is None:
            self._misses += 1
            if self._misses >= 10:
                self._last = JobStatus(state=self._last.state, finished=True,
                                       succeeded=False, exit_code=self._last.exit_code,
                                       detail="the scheduler no longer knows the job")
        else:
            self._misses = 0
            self._last = status
        return self._last

    def running(self) -> bool:
        return not self.status().finished

    def is_ready(self) -> bool:
        return (self.directory / READY_MARKER).exists()

    def log_tail(self, lines: int = 25) -> str:
        return _tail(self.log, lines)

    def _cancel(self) -> None:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(self.scheduler.cancel_argv(self.job_id), capture_output=True,
                           env=self.env, timeout=60)

    def stop(self, timeout: float, force: Callable[[], bool], *, ready: bool = True
             ) -> tuple[int | None, bool]:
        """Give the job ``timeout`` s to end by itself (its engines were asked to finalize),
        then cancel it and wait for the scheduler to say it ended."""
        forced = False
        end = time.monotonic() + timeout
        while self.running() and time.monotonic() < end and not force():
            time.sleep(0.25)
        if self.running():
            forced = True
            self._cancel()
            end = time.monotonic() + 60
            while self.running() and time.monotonic() < end:
                time.sleep(0.5)
        status = self.status()
        return _exit_code(status.exit_code) if status.finished else None, forced

    def leftovers(self) -> list[str]:
        status = self.status()
        return [] if status.finished else [f"{self.description}: {status.state}"]

    def kill(self) -> None:
        self._cancel()


# ---- the running service ---------------------------------------------------------------------
@dataclass
class StopResult:
    """How a service stopped: the launch's exit status, whether it had to be killed, engines
    that still answer and processes that were left (and then killed).

    Example::

        result = running.shutdown()
        assert result.clean, result
    """

    script_status: int | None  # exit status of the launch script (None: unknown or no script)
    forced: bool  # the script did not end in time: its session was killed
    still_answering: list[str] = field(default_factory=list)  # addresses that still answer
    leftover: list[str] = field(default_factory=list)  # "pid: cmdline" of processes left
    launched: bool = True  # False: nothing was started by us (attached service)

    @property
    def clean(self) -> bool:
        """The launch ended by itself with status 0, no engine answers, nothing was left."""
        return ((self.script_status == 0 or not self.launched) and not self.forced
                and not self.still_answering and not self.leftover)


# Services this interpreter started and still owns: held (not weakly) so that one whose handle
# was dropped is still stopped at exit.
_LIVE: set[RunningService] = set()


@atexit.register
def _stop_at_exit() -> None:
    """Stop every service this interpreter started and still owns (normal exit only; a
    killed interpreter relies on the script's ``--pdeathsig``)."""
    for svc in list(_LIVE):
        with contextlib.suppress(Exception):
            svc.shutdown(timeout=10)


class RunningService:
    """A started (or attached) service: members, readiness, queries, clients, shutdown.

    Use it as a context manager: leaving the block stops what was started, whatever happened
    inside it. :meth:`detach` leaves the service running instead.

    Example::

        with deployment.launch() as running:          # returns once every rank answers
            print([m.address for m in running.members])
            reports = running.query()                 # every member's running config
            db = running.database(rank=0)
            db.put("k", b"v")
        print(running.stop_result)                    # StopResult(script_status=0, ...)
    """

    def __init__(self, deployment: Deployment, process: ServiceProcess | None = None, *,
                 owned: bool = True, ready_marker: bool = True,
                 client_timeout: float = 5.0) -> None:
        self.deployment = deployment
        self.process = process
        self._ready_marker = ready_marker
        self.stop_result: StopResult | None = None
        self._client: Client | None = None
        self._client_timeout = client_timeout
        self._detached = False
        if owned:  # stopped at interpreter exit unless stopped or detached before
            _LIVE.add(self)

    # -- what it is ------------------------------------------------------------------------
    @property
    def protocol(self) -> str:
        """The Mercury protocol of its addresses (``na+sm``, ``ofi+tcp``, ...)."""
        return self.deployment.protocol

    @property
    def expected(self) -> int:
        """How many members the complete service has (nodes x processes per node)."""
        return self.deployment.total_processes

    @property
    def members(self) -> list[Member]:
        """The members now: from the flock group file, or (a service without flock) from the
        engines' "now running at" log lines. Read afresh on every access."""
        group = self.deployment.group_file
        if group is not None:
            return read_group_file(group)
        out: list[Member] = []
        logs = sorted(self.deployment.log_dir.glob("engine-*.log"),
                      key=lambda p: (int(m.group(2)), m.group(1))
                      if (m := _ENGINE_LOG.search(p.name)) else (1 << 30, p.name))
        for log in logs:
            for address in _RUNNING.findall(_tail(log, 10_000)):
                out.append(Member(rank=len(out), address=address))
        return out

    @property
    def addresses(self) -> list[str]:
        """The members' addresses, in rank order."""
        return [m.address for m in self.members]

    @property
    def client(self) -> Client:
        """A :class:`~bedrock_deploy.client.Client` for this service's protocol (made once)."""
        if self._client is None:
            self._client = Client(self.protocol, timeout=self._client_timeout)
        return self._client

    def member(self, rank: int) -> ServiceHandle:
        """A handle on the member of rank ``rank``.

        Example::

            print(running.member(1).ping())
        """
        members = self.members
        if not 0 <= rank < len(members):
            raise ServiceError(f"no member of rank {rank} ({len(members)} member(s) in the "
                               "group)", hint="wait_ready() first, or use a rank below "
                               f"{len(members)}")
        return self.client.service(members[rank].address)

    def group(self) -> ServiceGroupHandle:
        """A :class:`~bedrock_deploy.client.ServiceGroupHandle` on the current members.

        Example::

            for handle in running.group():
                print(handle.address)
        """
        return self.client.group(self.members)

    def database(self, rank: int = 0, provider: str | int | None = None) -> Database:
        """The key/value (yokan) provider of member ``rank`` (by name or id; None: its only
        one). Each member has its own database.

        Example::

            running.database(rank=1, provider="kv").put("k", b"v")
        """
        return self.member(rank).database(provider)

    @overload
    def query(self, rank: int) -> dict[str, Any]: ...
    @overload
    def query(self, rank: None = None) -> list[dict[str, Any]]: ...

    def query(self, rank: int | None = None) -> dict[str, Any] | list[dict[str, Any]]:
        """A member's running configuration (the ``query`` RPC), or every member's in rank
        order when ``rank`` is None.

        Example::

            for report in running.query():
                print(report["bedrock_engine"]["rank"], report["bedrock_engine"]["pid"])
        """
        if rank is not None:
            return self.member(rank).config
        return [self.client.service(m.address).config for m in self.members]

    # -- state -----------------------------------------------------------------------------
    def _answering(self, members: list[Member]) -> bool:
        for m in members:
            try:
                self.client.call(m.address, "ping", 0)
            except RpcError:
                return False
        return True

    @property
    def ready(self) -> bool:
        """Every expected member is in the group and answers a ping (and the launch says so)."""
        members = self.members
        return len(members) >= self.expected and self._launch_ready() \
            and self._answering(members)

    def _launch_ready(self) -> bool:
        """What started the ranks agrees the service is ready (without a process: the job
        script's ``run/ready``, unless there is no such script)."""
        if self.process is not None:
            return self.process.is_ready()
        return not self._ready_marker or (self.deployment.directory / READY_MARKER).exists()

    @property
    def running(self) -> bool:
        """The launch has not ended (or, attached without one: some member answers)."""
        if self.process is not None:
            return self.process.running()
        return any(self._answering([m]) for m in self.members)

    def engine_logs_tail(self, lines: int = 15) -> str:
        """The last lines of every engine's log (what to read when a rank fails)."""
        parts = []
        for log in sorted(self.deployment.log_dir.glob("engine-*.log")):
            parts.append(f"--- {log}\n{_tail(log, lines)}")
        return "\n".join(parts)

    def _failure_details(self) -> str:
        head = self.process.log_tail() if self.process is not None else ""
        return "\n".join(x for x in (head, self.engine_logs_tail()) if x)

    def wait_ready(self, timeout: float | None = DEFAULT_READY_TIMEOUT) -> list[Member]:
        """Wait until every member is in the group and answers; returns the members.

        Raises :class:`~bedrock_deploy.errors.ServiceError` (with the end of the logs) if the
        launch ends first or ``timeout`` seconds pass (None: no limit while the launch runs).

        Example::

            running = deployment.launch(wait=False)
            members = running.wait_ready(timeout=60)
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.05
        while True:
            members = self.members
            if len(members) >= self.expected and self._launch_ready() \
                    and self._answering(members):
                return members
            if self.process is not None and not self.process.running():
                status = self.process.status()
                raise ServiceError(
                    f"{self.process.description} ended ({status.state}, exit status "
                    f"{status.exit_code}) before the service was ready ({len(members)} of "
                    f"{self.expected} member(s))",
                    hint=f"see {self.process.log or self.deployment.log_dir} and the engine "
                    f"logs in {self.deployment.log_dir}", details=self._failure_details())
            if deadline is not None and time.monotonic() > deadline:
                raise ServiceError(
                    f"the service was not ready after {timeout:g}s ({len(members)} of "
                    f"{self.expected} member(s) in the group, all must answer)",
                    hint=f"see the logs in {self.deployment.log_dir}; a larger timeout gives "
                    "it longer", details=self._failure_details())
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def wait(self, timeout: float | None = None, *, poll: float = 1.0,
             on_poll: Callable[[JobStatus], None] | None = None) -> JobStatus:
        """Wait for the launch to end by itself (a batch job's time limit, ``duration``, a
        client command); ``on_poll`` sees its status every ``poll`` s. Nothing is stopped:
        on timeout the current status is returned.

        Example::

            status = running.wait(on_poll=lambda s: print(s.state))
        """
        if self.process is None:
            raise ServiceError("this service was not started by this handle: there is no "
                               "launch to wait for", hint="use wait_ready() or shutdown()")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.process.status()
            if on_poll is not None:
                on_poll(status)
            if status.finished or (deadline is not None and time.monotonic() > deadline):
                if status.finished:
                    _LIVE.discard(self)
                return status
            time.sleep(poll)

    # -- stopping --------------------------------------------------------------------------
    def shutdown(self, timeout: float = DEFAULT_STOP_TIMEOUT, *,
                 force: Callable[[], bool] | None = None) -> StopResult:
        """Stop the service and check nothing is left; returns (and keeps in
        :attr:`stop_result`) how it went. Calling it again returns the same result.

        Every member is asked to finalize (when the group is complete), the launch is given
        ``timeout`` s to end by itself, then signalled, then killed; whatever of the run is
        still alive is killed by PID; the members must no longer answer. ``force()`` turning
        true skips the waiting (a second Ctrl-C).

        Example::

            result = running.shutdown(timeout=20)
            print(result.clean, result.script_status, result.leftover)
        """
        if self.stop_result is not None:
            return self.stop_result
        hurry = force or (lambda: False)
        members = self.members
        complete = len(members) >= self.expected and bool(members)
        client = self._client_or_none()
        if client is None and self.process is None:
            raise ServiceError("cannot stop an attached service without the engine's client",
                               hint="install bedrock-deploy with its compiled engine")
        if client is not None:
            client.timeout = min(self._client_timeout, 5.0)
            if complete or self.process is None:
                client.group(members).shutdown()  # failures: already gone, or checked below
        else:
            complete = False  # nobody asked the engines to finalize: signal the launch
        status: int | None = None
        forced = False
        leftover: list[str] = []
        if self.process is not None:
            grace = timeout
            if complete:  # the engines finalize, then the launcher and the script end
                end = time.monotonic() + timeout
                while self.process.running() and time.monotonic() < end and not hurry():
                    time.sleep(0.05)
                grace = 10.0
            status, forced = self.process.stop(0.0 if hurry() else grace, hurry,
                                               ready=complete)
            leftover = self.process.leftovers()
            end = time.monotonic() + 5
            while leftover and time.monotonic() < end:
                time.sleep(0.1)
                leftover = self.process.leftovers()
            if leftover:  # never leave a process behind: kill what is left, by pid
                self.process.kill()
        else:
            end = time.monotonic() + timeout
            while members and self._any_answering(members) and time.monotonic() < end:
                time.sleep(0.1)
        still: list[str] = []
        if client is not None:
            client.timeout = 1.0
            still = [m.address for m in members if self._any_answering([m])]
            client.timeout = self._client_timeout
        self.stop_result = StopResult(script_status=status, forced=forced,
                                      still_answering=still, leftover=leftover,
                                      launched=self.process is not None)
        _LIVE.discard(self)
        return self.stop_result

    def _client_or_none(self) -> Client | None:
        try:
            return self.client
        except (ServiceError, EngineNotFound):
            return None

    def _any_answering(self, members: list[Member]) -> bool:
        for m in members:
            with contextlib.suppress(RpcError):
                self.client.call(m.address, "ping", 0)
                return True
        return False

    def detach(self) -> ServiceProcess | None:
        """Leave the service running: neither the ``with`` block nor interpreter exit will stop
        it. Returns what runs it (e.g. the script's pid, the job id).

        Example::

            process = deployment.launch(tied=False).detach()
            print("left running:", process.description)
        """
        self._detached = True
        _LIVE.discard(self)
        return self.process

    def __enter__(self) -> RunningService:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        if self._detached:
            return
        result = self.shutdown()
        if exc_type is None and (result.still_answering or result.leftover):
            raise ServiceError(
                "the service did not stop cleanly: "
                + "; ".join([f"still answering: {', '.join(result.still_answering)}"]
                            * bool(result.still_answering)
                            + [f"left and killed: {len(result.leftover)} process(es)"]
                            * bool(result.leftover)),
                hint=f"see the logs in {self.deployment.log_dir}")

    def __repr__(self) -> str:
        what = self.process.description if self.process is not None else "attached"
        return f"<RunningService {self.deployment.directory} ({what})>"
