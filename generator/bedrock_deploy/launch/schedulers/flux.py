"""Flux: ``flux batch`` job script, ``flux jobs`` to follow it.

Flux: https://flux-framework.readthedocs.io/projects/flux-core/en/latest/man1/flux-batch.html
"""

from __future__ import annotations

from pathlib import Path

from bedrock_deploy.launch.scheduler import (
    JobStatus,
    Scheduler,
    job_name,
    quoted,
    register_scheduler,
    walltime_seconds,
)


@register_scheduler
class Flux(Scheduler):
    name = "flux"
    description = "Flux (flux batch)"
    script = "scripts/job.flux"
    template = "flux.flux.j2"
    prefix = "#flux:"
    submit_tool = "flux batch"
    job_output = "<job-name>-<job id>.out     the batch script's own output"

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
    def cancel_argv(cls, job_id: str) -> list[str]:
        return ["flux", "cancel", job_id]

    @classmethod
    def status_argv(cls, job_id: str) -> list[str]:
        return ["flux", "jobs", "-n", "-o", "{state} {result} {returncode}", job_id]

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
