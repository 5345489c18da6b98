"""PBS Pro: ``qsub`` job script, ``qstat -x -f`` to follow it.

OpenPBS manual pages (qsub -v, -l select/place/walltime; qstat -x -f, job_state):
https://github.com/openpbs/openpbs/blob/1dd4c360cba2608f3de4f93e065b68b1070d1810/doc/man1/qsub.1B
and doc/man1/qstat.1B of the same repository.
"""

from __future__ import annotations

from pathlib import Path

from bedrock_deploy.diagnostics import fail
from bedrock_deploy.launch.launcher import launcher_class
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
class Pbs(Scheduler):
    name = "pbs"
    description = "PBS Pro (qsub)"
    script = "scripts/job.pbs"
    template = "pbs.pbs.j2"
    prefix = "#PBS"
    submit_tool = "qsub"
    job_output = ("<job-name>.out              the batch script's own output "
                  "(qsub -o, by bedrock-deploy submit)")

    def directives(self) -> list[str]:
        plan, sched = self.plan, self.site.scheduler
        select = f"-l select={plan.nodes}"
        if launcher_class(self.site.launcher.type).slots_from_nodefile:
            # PBS_NODEFILE lists each chunk's host mpiprocs times (default 1): a launcher that
            # takes its slots from it needs one per rank (OpenPBS pbs_resources(7B), mpiprocs:
            # https://github.com/openpbs/openpbs/blob/1859ef9adf86a68400b78e5ee50753710b651b65/doc/man1/pbs_resources.7B)
            select += f":mpiprocs={plan.processes_per_node}"
        lines = [f"-N {job_name(plan)}",
                 select,
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
        if any("," in v for v in env.values()):
            raise fail("a value passed to qsub -v contains ','", hint="PBS splits -v on commas")
        passed = ",".join(f"{k}={v}" for k, v in env.items())
        return ["qsub", "-o", str(log_dir / f"{name}.out"),
                *(["-v", passed] if passed else []), str(directory / cls.script)]

    @classmethod
    def cancel_argv(cls, job_id: str) -> list[str]:
        return ["qdel", job_id]

    @classmethod
    def status_argv(cls, job_id: str) -> list[str]:
        return ["qstat", "-x", "-f", job_id]

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
