"""What a scheduler is: the interface every module of :mod:`bedrock_deploy.launch.schedulers`
implements, and the registry the site profile's ``scheduler.type`` is looked up in.

A scheduler knows its job script (path and template), the directives of the batch script (every
profile value shell-quoted, control characters refused: a newline in a directive would start a
shell line), the submit command, and how to read a job's state back. Scheduler ``none`` runs
the script directly on a host (``scripts/run.sh``). Like ReFrame's ``JobScheduler``
(``emit_preamble``, ``submit``, ``poll``:
https://github.com/reframe-hpc/reframe/blob/v4.6.0/reframe/core/schedulers/__init__.py).

To add one, write ``bedrock_deploy/launch/schedulers/<name>.py`` with a ``@register_scheduler``
subclass of :class:`Scheduler` (class attributes below; :meth:`Scheduler.directives`; and, for a
batch system, :meth:`~Scheduler.submit_argv`, :meth:`~Scheduler.status_argv`,
:meth:`~Scheduler.parse_status`), plus its job-script template in ``share/templates/launch/``
(directives, then ``{% include "_service.sh.j2" %}``). Which launchers go with it: each
launcher's ``schedulers``, plus the scheduler's own ``launchers``.
"""

from __future__ import annotations

import re
import shlex
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from bedrock_deploy.diagnostics import KeyPath, fail
from bedrock_deploy.launch.launcher import LAUNCHERS
from bedrock_deploy.launch.registry import Registry

if TYPE_CHECKING:
    from bedrock_deploy.plan import DeploymentPlan

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
    """One scheduler. Subclasses set the class attributes and implement :meth:`directives`
    (and the submit/status methods when ``batch``)."""

    name: ClassVar[str]  # the site profile's scheduler.type
    description: ClassVar[str]  # one line: the JSON Schema and error hints show it
    script: ClassVar[str]  # path of the job script, relative to the deployment directory
    template: ClassVar[str]  # its template in share/templates/launch/
    prefix: ClassVar[str]  # directive prefix, "" when there are no directives
    submit_tool: ClassVar[str]  # how a user submits the script by hand, e.g. "sbatch"
    # The line of run/logs/README that says where the job script's own output goes.
    job_output: ClassVar[str]
    batch: ClassVar[bool] = True  # False: the script runs directly (bedrock-deploy submit: bash)
    launchers: ClassVar[frozenset[str]] = frozenset()  # launchers it takes besides those that
    # name it in their own ``schedulers``

    def __init__(self, plan: DeploymentPlan) -> None:
        self.plan = plan
        self.site = plan.site

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
        """The submit command; ``env`` holds the variables the job must see. Not a batch
        system: the script itself, run by bash."""
        return ["bash", str(directory / cls.script)]

    @classmethod
    def parse_job_id(cls, stdout: str) -> str:
        lines = stdout.strip().splitlines()
        return lines[-1].split(";")[0].strip() if lines else ""

    @classmethod
    def status_argv(cls, job_id: str) -> list[str]:
        raise NotImplementedError(f"scheduler {cls.name!r} has no job status")

    @classmethod
    def parse_status(cls, stdout: str) -> JobStatus | None:
        raise NotImplementedError(f"scheduler {cls.name!r} has no job status")

    @classmethod
    def cancel_argv(cls, job_id: str) -> list[str]:
        """The command that cancels a job (its batch shell gets SIGTERM, then SIGKILL)."""
        raise NotImplementedError(f"scheduler {cls.name!r} has no jobs to cancel")

    @classmethod
    def output_file(cls, log_dir: Path, name: str, job_id: str) -> Path:
        return log_dir / f"{name}-{job_id}.out"


SCHEDULERS: Registry[Scheduler] = Registry("scheduler", "bedrock_deploy.launch.schedulers")
register_scheduler = SCHEDULERS.register


def scheduler_class(name: str) -> type[Scheduler]:
    """The scheduler registered as ``name``; :class:`~.registry.UnknownName` if none."""
    return SCHEDULERS.get(name)


def scheduler_for(plan: DeploymentPlan) -> Scheduler:
    return scheduler_class(plan.site.scheduler.type)(plan)


def launchers_for(scheduler: str) -> list[str]:
    """The launchers that may run under ``scheduler``: those naming it in their
    ``schedulers``, and those the scheduler names in its ``launchers``."""
    own = scheduler_class(scheduler).launchers if scheduler in SCHEDULERS else frozenset()
    return [cls.name for cls in LAUNCHERS if scheduler in cls.schedulers or cls.name in own]
