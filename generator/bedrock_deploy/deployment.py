"""A deployment directory: what ``generate`` wrote, and how to start what it describes.

:class:`Deployment` is returned by :func:`bedrock_deploy.generate` and by
:meth:`Deployment.open` for an existing directory. It reads the directory's contract
(:mod:`bedrock_deploy.plan`): ``manifest.json`` (every input and choice), ``configs/``,
``scripts/launch.json`` (scheduler, launcher, job script, group file), ``run/``.

Starting it:

* :meth:`Deployment.launch`: run the job script on this host (scheduler ``none``, e.g. the
  ``local`` site), in its own session;
* :meth:`Deployment.submit`: hand the job script to the site's scheduler (``sbatch``,
  ``qsub``, ``flux batch``; scheduler ``none`` runs it here as ``launch`` does);
* :meth:`Deployment.attach`: a service started some other way (by a Python launcher such as
  Dragon, or an earlier session).

Each returns a :class:`~bedrock_deploy.running.RunningService`.

Example::

    import bedrock_deploy as bd

    deployment = bd.Deployment.open("deploy")
    print(deployment.site, deployment.service, deployment.total_processes)
    with deployment.launch(timeout=60) as running:
        print(running.query(rank=0)["providers"])
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import shutil
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bedrock_deploy.client import Client
from bedrock_deploy.diagnostics import fail
from bedrock_deploy.errors import ServiceError
from bedrock_deploy.files import is_dir
from bedrock_deploy.launch.scheduler import SCHEDULERS, scheduler_class
from bedrock_deploy.plan import CONFIG_DIR, RUN_DIR, Choice, DeploymentPlan, config_name
from bedrock_deploy.running import (
    DEFAULT_READY_TIMEOUT,
    READY_MARKER,
    BatchJob,
    LocalScript,
    RunningService,
    ServiceProcess,
    run_processes,
)

__all__ = ["Deployment", "SubmitCommand", "job_environment", "load_launch_info"]

MANIFEST = "manifest.json"
LAUNCH_INFO = "scripts/launch.json"
_DROPPED_PREFIXES = ("SBATCH_", "SALLOC_", "SRUN_", "SLURM_")
_KEPT = {"SLURM_CONF"}
_SERVICE_ENV = ("SERVICE_DURATION", "BEDROCK_DEPLOY_CLIENT", "BEDROCK_DEPLOY_DIR")


def load_launch_info(directory: Path) -> dict[str, Any]:
    """``DIR/scripts/launch.json``, checked; InputError when DIR is not a deployment."""
    info_file = directory / LAUNCH_INFO
    if not is_dir(directory):
        raise fail(f"{directory} is not a directory", file=str(directory),
                   hint="give the directory 'bedrock-deploy generate -o DIR' wrote")
    try:
        info = json.loads(info_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise fail(f"no {info_file.relative_to(directory)}: not a deployment directory",
                   file=str(directory),
                   hint="generate one with 'bedrock-deploy generate --site S --service F -o DIR'"
                   ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise fail(f"cannot read {info_file.name}: {err}", file=str(info_file)) from None
    except json.JSONDecodeError as err:
        raise fail(f"cannot read {info_file.name}: {err.msg}", file=str(info_file),
                   hint="regenerate the deployment (bedrock-deploy generate --force)") from None
    if not isinstance(info, dict) or info.get("scheduler") not in SCHEDULERS:
        raise fail("no valid 'scheduler' in launch.json", file=str(info_file),
                   hint="regenerate the deployment (bedrock-deploy generate --force)")
    script = directory / str(info.get("script"))
    if not script.is_file():
        raise fail(f"the job script {info.get('script')} is missing", file=str(info_file),
                   hint="regenerate the deployment (bedrock-deploy generate --force)")
    return info


def job_environment(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """The submitting environment without inherited Slurm settings, plus ``extra``.

    Inherited ``SBATCH_*``/``SALLOC_*``/``SRUN_*``/``SLURM_*`` variables (``SLURM_CONF`` kept)
    would silently override the job script's directives."""
    env = {k: v for k, v in base.items()
           if k in _KEPT or not k.startswith(_DROPPED_PREFIXES)}
    env.update(extra)
    return env


@dataclass(frozen=True)
class SubmitCommand:
    """What :meth:`Deployment.submit` runs: the command, the variables it adds for the job,
    and the inherited ones it removes.

    Example::

        cmd = deployment.submit_command(duration=60)
        print(cmd.shell())   # cd /abs/deploy && SERVICE_DURATION=60 ... sbatch --parsable ...
    """

    argv: list[str]
    directory: Path
    extra: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)

    def shell(self) -> str:
        """The command as one shell line (for ``--dry-run``)."""
        parts = [f"cd {shlex.quote(str(self.directory))}"]
        if self.dropped:
            parts.append("unset " + " ".join(self.dropped))
        settings = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.extra.items())
        parts.append(f"{settings} {shlex.join(self.argv)}".strip())
        return "\n".join(parts)


class Deployment:
    """A deployment directory written by :func:`bedrock_deploy.generate`.

    Example::

        deployment = bd.generate(plan, "deploy")        # or bd.Deployment.open("deploy")
        print(deployment.directory, deployment.protocol, deployment.scheduler)
        print(deployment.configs[0]["providers"])
        with deployment.launch() as running:
            ...
    """

    def __init__(self, directory: str | Path, *, plan: DeploymentPlan | None = None) -> None:
        self.directory = Path(directory).absolute()
        self.plan = plan  # the plan it was generated from, when made in this process
        self._manifest: dict[str, Any] | None = None
        self.launch_info = load_launch_info(self.directory)

    @classmethod
    def open(cls, directory: str | Path) -> Deployment:
        """Open an existing deployment directory (InputError if it is not one).

        Example::

            deployment = bd.Deployment.open("deployments/up-local-20260101-120000")
        """
        out = cls(directory)
        _ = out.manifest  # fail now, not at first use
        return out

    # -- what it holds ---------------------------------------------------------------------
    @property
    def manifest(self) -> dict[str, Any]:
        """``manifest.json``: inputs with sha256, tool version, every choice and why."""
        if self._manifest is None:
            path = self.directory / MANIFEST
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise fail(f"no {MANIFEST}: not a deployment directory", file=str(self.directory),
                           hint="generate one with bedrock_deploy.generate()") from None
            except (OSError, ValueError) as err:
                raise fail(f"cannot read {MANIFEST}: {err}", file=str(path),
                           hint="regenerate the deployment") from None
            if not isinstance(data, dict):
                raise fail(f"{MANIFEST} is not a JSON object", file=str(path),
                           hint="regenerate the deployment")
            self._manifest = data
        return self._manifest

    @property
    def files(self) -> list[str]:
        """The files ``generate`` wrote, relative to the directory (the manifest included)."""
        return sorted({*self.manifest.get("files", {}), MANIFEST})

    @property
    def site(self) -> str:
        """The site profile's name."""
        return str(self.manifest.get("site", ""))

    @property
    def service(self) -> str:
        """The service's name."""
        return str(self.manifest.get("service", self.launch_info.get("service", "")))

    @property
    def nodes(self) -> int:
        """Compute nodes."""
        return int(self.launch_info.get("nodes") or self.manifest.get("nodes", 1))

    @property
    def processes_per_node(self) -> int:
        """Engines per node."""
        return int(self.launch_info.get("processes_per_node")
                   or self.manifest.get("processes_per_node", 1))

    @property
    def total_processes(self) -> int:
        """Engines in all."""
        return self.nodes * self.processes_per_node

    @property
    def protocol(self) -> str:
        """The Mercury protocol the engines listen on (``na+sm``, ``ofi+tcp``, ``cxi``...)."""
        return str(self.launch_info.get("protocol", ""))

    @property
    def scheduler(self) -> str:
        """The site's scheduler (``none``, ``slurm``, ``pbs``, ``flux``)."""
        return str(self.launch_info["scheduler"])

    @property
    def launcher(self) -> str:
        """The launcher that starts the ranks inside the job (``mpirun-openmpi``, ``srun``...)."""
        return str(self.launch_info.get("launcher", ""))

    @property
    def script(self) -> Path:
        """The job script (``scripts/run.sh``, ``scripts/job.sbatch``, ...)."""
        return self.directory / str(self.launch_info["script"])

    @property
    def run_dir(self) -> Path:
        """The engines' working directory (``DIR/run``)."""
        return self.directory / RUN_DIR

    @property
    def log_dir(self) -> Path:
        """Where the job's and the engines' logs go (``DIR/run/logs``)."""
        return self.directory / str(self.launch_info.get("log_dir", f"{RUN_DIR}/logs"))

    @property
    def group_file(self) -> Path | None:
        """The flock group file the service writes (None: the service has no flock)."""
        rel = self.launch_info.get("group_file")
        return self.directory / str(rel) if rel else None

    @property
    def configs(self) -> list[dict[str, Any]]:
        """The Bedrock config of each local rank (``configs/rank-<L>.json``)."""
        return [self.config(rank) for rank in range(self.processes_per_node)]

    def config(self, local_rank: int) -> dict[str, Any]:
        """The Bedrock config of local rank ``local_rank``.

        Example::

            print(deployment.config(0)["margo"]["argobots"]["xstreams"])
        """
        path = self.directory / CONFIG_DIR / config_name(local_rank)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise fail(f"no config for local rank {local_rank}", file=str(path),
                       hint=f"local ranks go from 0 to {self.processes_per_node - 1}") from None
        except (OSError, ValueError) as err:
            raise fail(f"cannot read the config: {err}", file=str(path)) from None
        if not isinstance(data, dict):
            raise fail("a Bedrock config is a JSON object", file=str(path))
        return data

    @property
    def choices(self) -> list[Choice]:
        """Every decision recorded in the manifest, with its reason."""
        return [Choice(str(c.get("what")), c.get("value"), str(c.get("why")))
                for c in self.manifest.get("choices", []) if isinstance(c, dict)]

    def client(self, *, timeout: float = 5.0) -> Client:
        """A :class:`~bedrock_deploy.client.Client` for this deployment's protocol.

        Example::

            group = deployment.client().group(deployment.group_file)
        """
        return Client(self.protocol, timeout=timeout)

    # -- starting it -----------------------------------------------------------------------
    def _script_env(self, env: Mapping[str, str] | None, extra: Mapping[str, str]
                    ) -> dict[str, str]:
        out = {k: v for k, v in os.environ.items() if k not in _SERVICE_ENV}
        out.update(extra)
        out.update(env or {})
        return out

    def _check_not_running(self) -> None:
        """Refuse to start a second run of this deployment while a first one is alive."""
        alive = run_processes(None, self.directory)
        if alive:
            pids = ", ".join(str(p) for p in sorted(alive)[:5])
            raise ServiceError(f"a run of {self.directory} is still alive (pid {pids})",
                               hint="stop it first (RunningService.shutdown(), or "
                               "Deployment.attach().shutdown() for one started elsewhere)")

    def _forget_last_run(self) -> None:
        """Remove the readiness marker and group file of an earlier run (the job script does
        too, but a queued job has not started yet)."""
        (self.directory / READY_MARKER).unlink(missing_ok=True)
        if self.group_file is not None:
            self.group_file.unlink(missing_ok=True)

    def _start(self, process: ServiceProcess, wait: bool,
               timeout: float | None) -> RunningService:
        running = RunningService(self, process)
        if wait:
            try:
                running.wait_ready(timeout)
            except BaseException:
                running.shutdown()
                raise
        return running

    def launch(self, *, wait: bool = True, timeout: float | None = DEFAULT_READY_TIMEOUT,
               env: Mapping[str, str] | None = None, tied: bool | None = None,
               stop_timeout: int | None = None, log_name: str = "run.out") -> RunningService:
        """Run the job script on this host (scheduler ``none``) and return the running service,
        once every member answers (``wait``) or at once.

        ``timeout``: seconds to wait for readiness (the script's own limit is set to it too);
        ``env``: more environment for the script; ``tied``: the script gets SIGTERM should this
        Python process die (default: when called from the main thread); ``stop_timeout``: how
        long the script's own cleanup may take; ``log_name``: its output file in
        ``run/logs/``. If the service does not come up, everything started is stopped and
        :class:`~bedrock_deploy.errors.ServiceError` is raised with the end of the logs.

        Example::

            with bd.Deployment.open("deploy").launch(timeout=60) as running:
                print(running.members)
        """
        if scheduler_class(self.scheduler).batch:
            raise fail(f"this deployment's site uses scheduler {self.scheduler!r}: its job "
                       "script runs inside an allocation", file=str(self.directory / LAUNCH_INFO),
                       hint="use submit() (it also waits for the service), or generate for a "
                       "site with 'scheduler: {type: none}' such as 'local'")
        extra: dict[str, str] = {}
        if timeout is not None:
            extra["BEDROCK_DEPLOY_READY_TIMEOUT"] = str(max(1, math.ceil(timeout)))
        if stop_timeout is not None:
            extra["BEDROCK_DEPLOY_STOP_TIMEOUT"] = str(stop_timeout)
        if tied is None:
            tied = threading.current_thread() is threading.main_thread()
        self._check_not_running()
        self._forget_last_run()
        process = LocalScript(self.directory, str(self.launch_info["script"]),
                              self._script_env(env, extra), tied=tied, log_name=log_name)
        return self._start(process, wait, None if timeout is None else timeout + 5)

    def submit_command(self, *, duration: int | None = None, client: str | None = None,
                       env: Mapping[str, str] | None = None) -> SubmitCommand:
        """The command :meth:`submit` runs (nothing is run).

        Example::

            print(deployment.submit_command(duration=60).shell())
        """
        sched = scheduler_class(self.scheduler)
        extra = {"BEDROCK_DEPLOY_DIR": str(self.directory)}
        if duration is not None:
            if isinstance(duration, bool) or not isinstance(duration, int) or duration < 0:
                raise fail("--duration must be 0 or more seconds", file="--duration",
                           hint="e.g. --duration 60")
            extra["SERVICE_DURATION"] = str(duration)
        if client:
            extra["BEDROCK_DEPLOY_CLIENT"] = client
        extra.update(env or {})
        argv = sched.submit_argv(self.directory, self.log_dir, self._job_name, extra)
        if not sched.batch:
            return SubmitCommand(argv=argv, directory=self.directory, extra=extra)
        dropped = sorted(k for k in os.environ if k not in job_environment(os.environ, {}))
        return SubmitCommand(argv=argv, directory=self.directory, extra=extra, dropped=dropped)

    @property
    def _job_name(self) -> str:
        return str(self.launch_info.get("job_name", "bedrock"))

    def submit(self, *, wait: bool = True, timeout: float | None = None,
               duration: int | None = None, client: str | None = None,
               env: Mapping[str, str] | None = None, tied: bool = False) -> RunningService:
        """Submit the job script with the site's scheduler (scheduler ``none``: run it here,
        outliving this process unless ``tied``) and return the running service, once every
        member answers (``wait``; ``timeout`` None: as long as the job is queued or running)
        or at once.

        ``duration``: the job stops the service that many seconds after it is ready
        (``SERVICE_DURATION``); ``client``: a shell command the job runs once the service is
        ready (``BEDROCK_DEPLOY_CLIENT``); ``env``: more variables for the job. If the service
        does not come up, the job is cancelled and ServiceError raised.

        Example::

            with bd.Deployment.open("deploy").submit(timeout=600) as running:
                print(running.process.description, running.members)   # slurm job 42 ...
        """
        cmd = self.submit_command(duration=duration, client=client, env=env)
        sched = scheduler_class(self.scheduler)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if not sched.batch:
            self._check_not_running()
        self._forget_last_run()
        if not sched.batch:
            extra = dict(cmd.extra)
            if timeout is not None:
                extra.setdefault("BEDROCK_DEPLOY_READY_TIMEOUT", str(max(1, math.ceil(timeout))))
            process: ServiceProcess = LocalScript(
                self.directory, str(self.launch_info["script"]),
                self._script_env(None, extra), tied=tied)
            return self._start(process, wait, None if timeout is None else timeout + 5)
        job_env = job_environment(os.environ, cmd.extra)
        if shutil.which(cmd.argv[0], path=job_env.get("PATH")) is None:
            raise ServiceError(f"{cmd.argv[0]} not found: is this a {sched.name} login node?",
                               hint=f"run it where {cmd.argv[0]} is on PATH")
        try:
            done = subprocess.run(cmd.argv, env=job_env, cwd=self.directory,
                                  capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            raise ServiceError(f"{shlex.join(cmd.argv)} did not answer in 120 s",
                               hint=f"is the {sched.name} controller up?") from None
        if done.returncode != 0:
            raise ServiceError(f"{shlex.join(cmd.argv)} failed (status {done.returncode})",
                               details=done.stderr.strip() or done.stdout.strip(),
                               hint="see the scheduler's message above")
        job_id = sched.parse_job_id(done.stdout)
        output = sched.output_file(self.log_dir, self._job_name, job_id)
        return self._start(BatchJob(sched, job_id, self.directory, output, env=job_env),
                           wait, timeout)

    def attach(self, process: ServiceProcess | None = None, *, owned: bool | None = None,
               ready_marker: bool = True) -> RunningService:
        """A handle on this deployment's service started some other way: by ``process``
        (anything with :class:`~bedrock_deploy.running.ServiceProcess`'s methods, e.g. a
        Dragon process group), or by someone else (None). ``owned`` (default: a process was
        given) also stops it at interpreter exit; a ``with`` block always stops it. Without a
        process, readiness includes the job script's ``run/ready`` marker (the script was
        started by hand) unless ``ready_marker`` is False (engines started without it).

        Example::

            running = bd.Deployment.open("deploy").attach()
            running.wait_ready(30)
            print(running.query(rank=0)["bedrock_engine"]["pid"])
        """
        return RunningService(self, process,
                              owned=process is not None if owned is None else owned,
                              ready_marker=ready_marker)

    def __repr__(self) -> str:
        with contextlib.suppress(Exception):
            return (f"<Deployment {self.directory}: {self.service} on {self.site}, "
                    f"{self.nodes}x{self.processes_per_node}, {self.scheduler}>")
        return f"<Deployment {self.directory}>"
