"""Slurm: ``sbatch`` job script, ``scontrol show job`` to follow it.

Slurm: https://slurm.schedmd.com/sbatch.html (--signal=B:, --exclusive, --threads-per-core),
https://slurm.schedmd.com/scontrol.html (JobState values).
"""

from __future__ import annotations

from pathlib import Path

from bedrock_deploy.launch.binding import cpus_per_task, smt_threads
from bedrock_deploy.launch.scheduler import (
    JobStatus,
    Scheduler,
    hms,
    job_name,
    quoted,
    register_scheduler,
    walltime_seconds,
)


@register_scheduler
class Slurm(Scheduler):
    name = "slurm"
    description = "Slurm (sbatch)"
    script = "scripts/job.sbatch"
    template = "slurm.sbatch.j2"
    prefix = "#SBATCH"
    submit_tool = "sbatch"
    job_output = ("<job-name>-<job id>.out     the batch script's own output "
                  "(sbatch --output)")

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
    def cancel_argv(cls, job_id: str) -> list[str]:
        return ["scancel", job_id]

    @classmethod
    def status_argv(cls, job_id: str) -> list[str]:
        return ["scontrol", "show", "job", "--oneliner", job_id]

    @classmethod
    def parse_status(cls, stdout: str) -> JobStatus | None:
        fields = dict(f.split("=", 1) for f in stdout.split() if "=" in f)
        state = fields.get("JobState")
        if not state:
            return None
        finished = state in cls._FINAL
        return JobStatus(state=state, finished=finished, succeeded=state == "COMPLETED",
                         exit_code=fields.get("ExitCode"), detail=fields.get("Reason", ""))
