"""No scheduler: ``scripts/run.sh`` runs the launcher directly on this host (``up``, or a
shell inside an allocation made by hand)."""

from __future__ import annotations

from pathlib import Path

from bedrock_deploy.launch.scheduler import Scheduler, register_scheduler


@register_scheduler
class NoScheduler(Scheduler):
    name = "none"
    description = "no scheduler: scripts/run.sh starts the launcher on this host"
    script = "scripts/run.sh"
    template = "none.sh.j2"
    prefix = ""
    submit_tool = "bash"
    job_output = ("run.out                     the output of scripts/run.sh under "
                  "bedrock-deploy submit")
    batch = False

    def directives(self) -> list[str]:
        return []

    @classmethod
    def output_file(cls, log_dir: Path, name: str, job_id: str) -> Path:
        return log_dir / "run.out"
