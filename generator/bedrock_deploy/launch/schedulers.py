"""Schedulers: the batch script header and how to submit and follow a job.

One small class per :class:`~bedrock_deploy.site_profile.SchedulerKind`, registered in
:data:`SCHEDULERS`. A scheduler knows its script name and template, the directives of the batch
script (every profile value shell-quoted, control characters refused: a newline in a directive
would start a shell line), the submit command, and how to read a job's state back.
Scheduler ``none`` runs the launcher directly (``scripts/run.sh``).
"""

from __future__ import annotations

import re
import shlex
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from bedrock_deploy.diagnostics import KeyPath, fail
from bedrock_deploy.launch.launchers import cpus_per_task, smt_threads
from bedrock_deploy.plan import DeploymentPlan
from bedrock_deploy.site_profile import SchedulerKind

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TIME = re.compile(r"^(?:(\d+)-)?(\d{1,3}):(\d{2})(?::(\d{2}))?$")


def walltime_seconds(text: str) -> int:
    """``[D-]HH:MM[:SS]`` (the profile's format) -> seconds."""
    m = _TIME.match(text)
    if not m:
        raise ValueError(f"not a [D-]HH:MM[:SS] wall time: {text!r}")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def hms(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def directive_text(plan: DeploymentPlan, value: str, path: KeyPath) -> str:
    """A profile value for a directive line: refuse control characters (a newline would end
    the comment and run the rest as shell)."""
    if _CONTROL.search(value):
        raise fail(f"{value!r} contains a control character (newline, tab, ...)",
                   path=path, file=plan.site_files[0] if plan.site_files else None,
                   hint="scheduler values are written into '#' directive lines; "
                   "use one line of printable text")
    return value


def quoted(plan: DeploymentPlan, value: str, path: KeyPath) -> str:
    return shlex.quote(directive_text(plan, value, path))


def _directive_key(directive: str) -> str:
    """What a directive sets: '--time=1:00' -> '--time', '-q debug' -> '-q',
    '-l place=scatter' -> '-l place' (PBS resources are told apart by name)."""
    words = directive.split("=", 1)[0].split()
    if not words:
        return ""
    if words[0] == "-l" and len(words) > 1:
        return f"-l {words[1]}"
    return words[0]


def job_name(plan: DeploymentPlan) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(plan.service.name))
    return name[:64] or "bedrock"


@dataclass(frozen=True)
class JobStatus:
    """A job's state as its scheduler reports it (or a local script's: RUNNING, COMPLETED,
    FAILED).

    Example::

        status = running.wait()
        print(status.state, status.succeeded, status.exit_code)   # COMPLETED True 0:0
    """

    state: str  # scheduler's own word, e.g. RUNNING, COMPLETED, F
    finished: bool
    succeeded: bool
    exit_code: str | None = None
    detail: str = ""


class Scheduler(ABC):
    kind: ClassVar[SchedulerKind]
    script: ClassVar[str]  # path of the job script, relative to the deployment directory
    template: ClassVar[str]
    prefix: ClassVar[str]  # directive prefix, "" when there are no directives

    def __init__(self, plan: DeploymentPlan) -> None:
        self.plan = plan
        self.site = plan.site

    submit_tool: ClassVar[str]  # how a user submits the script by hand, e.g. "sbatch"

    def start_command(self) -> str:
        return f"{self.submit_tool} {self.script}"

    @abstractmethod
    def directives(self) -> list[str]:
        """Directive lines without the prefix, values already quoted."""

    def extra_directives(self) -> list[str]:
        return [directive_text(self.plan, d, ("scheduler", "directives", i))
                for i, d in enumerate(self.site.scheduler.directives)]

    def with_extras(self, defaults: list[str]) -> list[str]:
        """Our directives, minus those the site's own directives replace, then the site's."""
        extras = self.extra_directives()
        keys = {_directive_key(d) for d in extras}
        return [d for d in defaults if _directive_key(d) not in keys] + extras

    # -- submitting and following a job (bedrock-deploy submit); no plan needed ------------
    @classmethod
    def submit_argv(cls, directory: Path, log_dir: Path, name: str,
                    env: dict[str, str]) -> list[str]:
        """The submit command; ``env`` holds the variables the job must see."""
        raise NotImplementedError

    @classmethod
    def parse_job_id(cls, stdout: str) -> str:
        lines = stdout.strip().splitlines()
        return lines[-1].split(";")[0].strip() if lines else ""

    @classmethod
    def status_argv(cls, job_id: str) -> list[str]:
        raise NotImplementedError

    @classmethod
    def parse_status(cls, stdout: str) -> JobStatus | None:
        raise NotImplementedError

    @classmethod
    def cancel_argv(cls, job_id: str) -> list[str]:
        """The command that cancels a job (its batch shell gets SIGTERM, then SIGKILL)."""
        raise NotImplementedError

    @classmethod
    def output_file(cls, log_dir: Path, name: str, job_id: str) -> Path:
        return log_dir / f"{name}-{job_id}.out"


SCHEDULERS: dict[SchedulerKind, type[Scheduler]] = {}


def register_scheduler(cls: type[Scheduler]) -> type[Scheduler]:
    SCHEDULERS[cls.kind] = cls
    return cls


def scheduler_for(plan: DeploymentPlan) -> Scheduler:
    return SCHEDULERS[plan.site.scheduler.type](plan)


def scheduler_class(kind: SchedulerKind | str) -> type[Scheduler]:
    return SCHEDULERS[SchedulerKind(kind)]


@register_scheduler
class Slurm(Scheduler):
    kind = SchedulerKind.slurm
    script = "scripts/job.sbatch"
    template = "slurm.sbatch.j2"
    prefix = "#SBATCH"
    submit_tool = "sbatch"

    _FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
              "PREEMPTED", "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT", "REVOKED"}

    def directives(self) -> list[str]:
        plan, sched = self.plan, self.site.scheduler
        seconds = walltime_seconds(sched.time)
        days, rest = divmod(seconds, 86400)
        limit = f"{days}-{hms(rest)}" if days else hms(rest)
        # Warn the batch shell (B:) before the time limit so it shuts the service down cleanly.
        warn = 60 if seconds >= 600 else max(5, seconds // 10)
        lines = [f"--job-name={job_name(plan)}",
                 f"--nodes={plan.nodes}",
                 f"--ntasks-per-node={plan.processes_per_node}",
                 f"--cpus-per-task={cpus_per_task(plan)}",
                 "--exclusive",
                 *([f"--threads-per-core={t}"] if (t := smt_threads(plan)) else []),
                 f"--time={limit}",
                 f"--signal=B:TERM@{warn}",
                 "--output=run/logs/%x-%j.out"]
        if sched.partition:
            lines.append("--partition=" + quoted(plan, sched.partition, ("scheduler", "partition")))
        if sched.account:
            lines.append("--account=" + quoted(plan, sched.account, ("scheduler", "account")))
        return self.with_extras(lines)

    @classmethod
    def submit_argv(cls, directory: Path, log_dir: Path, name: str,
                    env: dict[str, str]) -> list[str]:
        # sbatch exports the submitting environment (--export=ALL), env included.
        return ["sbatch", "--parsable", f"--chdir={directory}",
                f"--output={log_dir}/%x-%j.out", str(directory / cls.script)]

    @classmethod
    def status_argv(cls, job_id: str) -> list[str]:
        return ["scontrol", "show", "job", "--oneliner", job_id]

    @classmethod
    def cancel_argv(cls, job_id: str) -> list[str]:
        return ["scancel", job_id]

    @classmethod
    def parse_status(cls, stdout: str) -> JobStatus | None:
        fields = dict(f.split("=", 1) for f in stdout.split() if "=" in f)
        state = fields.get("JobState")
        if not state:
            return None
        finished = state in cls._FINAL
        return JobStatus(state=state, finished=finished, succeeded=state == "COMPLETED",
                         exit_code=fields.get("ExitCode"), detail=fields.get("Reason", ""))


@register_scheduler
class Pbs(Scheduler):
    kind = SchedulerKind.pbs
    script = "scripts/job.pbs"
    template = "pbs.pbs.j2"
    prefix = "#PBS"
    submit_tool = "qsub"

    def directives(self) -> list[str]:
        plan, sched = self.plan, self.site.scheduler
        lines = [f"-N {job_name(plan)}",
                 f"-l select={plan.nodes}",
                 "-l place=scatter",
                 f"-l walltime={hms(walltime_seconds(sched.time))}",
                 "-j oe"]
        if sched.partition:
            lines.append("-q " + quoted(plan, sched.partition, ("scheduler", "partition")))
        if sched.account:
            lines.append("-A " + quoted(plan, sched.account, ("scheduler", "account")))
        return self.with_extras(lines)

    @classmethod
    def submit_argv(cls, directory: Path, log_dir: Path, name: str,
                    env: dict[str, str]) -> list[str]:
        # qsub passes no environment unless told (-v NAME=value,...; values must not hold ',').
        passed = ",".join(f"{k}={v}" for k, v in env.items())
        return ["qsub", "-o", str(log_dir / f"{name}.out"),
                *(["-v", passed] if passed else []), str(directory / cls.script)]

    @classmethod
    def status_argv(cls, job_id: str) -> list[str]:
        return ["qstat", "-x", "-f", job_id]

    @classmethod
    def cancel_argv(cls, job_id: str) -> list[str]:
        return ["qdel", job_id]

    @classmethod
    def output_file(cls, log_dir: Path, name: str, job_id: str) -> Path:
        return log_dir / f"{name}.out"

    @classmethod
    def parse_status(cls, stdout: str) -> JobStatus | None:
        fields = {}
        for line in stdout.splitlines():
            key, sep, value = line.strip().partition(" = ")
            if sep:
                fields[key] = value.strip()
        state = fields.get("job_state")
        if not state:
            return None
        code = fields.get("Exit_status")
        finished = state in {"F", "X"}
        return JobStatus(state=state, finished=finished,
                         succeeded=finished and code == "0", exit_code=code,
                         detail=fields.get("comment", ""))


@register_scheduler
class Flux(Scheduler):
    kind = SchedulerKind.flux
    script = "scripts/job.flux"
    template = "flux.flux.j2"
    prefix = "#flux:"
    submit_tool = "flux batch"

    def directives(self) -> list[str]:
        plan, sched = self.plan, self.site.scheduler
        lines = [f"--job-name={job_name(plan)}", f"-N {plan.nodes}", "--exclusive",
                 f"-t {walltime_seconds(sched.time)}s",
                 "--output=run/logs/{{name}}-{{id}}.out"]
        if sched.partition:
            lines.append("-q " + quoted(plan, sched.partition, ("scheduler", "partition")))
        if sched.account:
            lines.append("--setattr=system.bank="
                         + quoted(plan, sched.account, ("scheduler", "account")))
        return self.with_extras(lines)

    @classmethod
    def submit_argv(cls, directory: Path, log_dir: Path, name: str,
                    env: dict[str, str]) -> list[str]:
        return ["flux", "batch", f"--setattr=system.cwd={directory}",
                f"--output={log_dir}/{{{{name}}}}-{{{{id}}}}.out", str(directory / cls.script)]

    @classmethod
    def status_argv(cls, job_id: str) -> list[str]:
        return ["flux", "jobs", "-n", "-o", "{state} {result} {returncode}", job_id]

    @classmethod
    def cancel_argv(cls, job_id: str) -> list[str]:
        return ["flux", "cancel", job_id]

    @classmethod
    def parse_status(cls, stdout: str) -> JobStatus | None:
        parts = stdout.split()
        if not parts:
            return None
        state = parts[0]
        result = parts[1] if len(parts) > 1 else ""
        finished = state == "INACTIVE"
        return JobStatus(state=result if finished else state, finished=finished,
                         succeeded=finished and result == "COMPLETED",
                         exit_code=parts[2] if len(parts) > 2 else None)


@register_scheduler
class NoScheduler(Scheduler):
    kind = SchedulerKind.none
    script = "scripts/run.sh"
    template = "none.sh.j2"
    prefix = ""
    submit_tool = "bash"

    def directives(self) -> list[str]:
        return []

    @classmethod
    def output_file(cls, log_dir: Path, name: str, job_id: str) -> Path:
        return log_dir / "run.out"
