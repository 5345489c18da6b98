"""``bedrock-deploy submit DIR [--dry-run] [--wait/--no-wait]``: start a generated deployment.

Reads ``DIR/scripts/launch.json`` (written with the launch scripts), submits the job script with
the site's scheduler (``sbatch``, ``qsub``, ``flux batch``) or, for scheduler ``none``, runs
``scripts/run.sh`` directly. Inherited ``SBATCH_*``/``SALLOC_*``/``SRUN_*``/``SLURM_*`` variables
are removed first (``SLURM_CONF`` is kept): they would silently override the script's
directives. While waiting it shows the job's state (``scontrol show job`` / ``qstat -x -f`` /
``flux jobs``), then reports the final state and where the logs are.
Exit status: 0 the job completed (the service came up and stopped cleanly), 1 otherwise,
2 bad input (not a deployment directory), 130 interrupted while waiting (the job keeps running).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from rich.console import Console

from bedrock_deploy.deployment import Deployment, job_environment, load_launch_info
from bedrock_deploy.errors import ServiceError
from bedrock_deploy.launch.scheduler import JobStatus
from bedrock_deploy.running import BatchJob, LocalScript, RunningService
from bedrock_deploy.terminal import make_console

__all__ = ["job_environment", "load_launch_info", "register"]  # the last two: kept for callers


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "submit", help="submit a generated deployment to the site's scheduler",
        description="Submit DIR/scripts/<job script> with the site's scheduler (or run it "
        "directly for scheduler 'none'), follow the job and report its final state.")
    p.add_argument("directory", metavar="DIR", help="a directory written by 'generate'")
    p.add_argument("--dry-run", action="store_true", help="print what would run, run nothing")
    p.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True,
                   help="wait for the job to end (default) or return once it is submitted")
    p.add_argument("--duration", type=int, metavar="SECONDS",
                   help="stop the service this long after it is ready (SERVICE_DURATION)")
    p.add_argument("--client", metavar="COMMAND",
                   help="shell command to run once the service is ready (BEDROCK_DEPLOY_CLIENT)")
    p.add_argument("--poll", type=float, default=1.0, metavar="SECONDS",
                   help="how often to ask the scheduler for the job's state (default 1)")
    p.set_defaults(func=_submit)


def _submit(args: argparse.Namespace) -> int:
    deployment = Deployment.open(Path(args.directory).resolve())
    command = deployment.submit_command(duration=args.duration, client=args.client)
    if args.dry_run:
        print(command.shell())
        return 0
    console = make_console(stderr=True)
    try:
        # a script run here in the foreground ends with this command (pdeathsig)
        running = deployment.submit(wait=False, duration=args.duration, client=args.client,
                                    tied=args.wait)
    except ServiceError as err:
        console.print(err.format(), markup=False)
        return 1
    process = running.process
    logs = f"logs: {process.log if process else '?'} and {deployment.log_dir}/engine-*.log"
    if isinstance(process, BatchJob):
        console.print(f"submitted job {process.job_id} ({deployment.scheduler}): "
                      f"{deployment.service} on {deployment.nodes} node(s) x "
                      f"{deployment.processes_per_node}", markup=False)
    if not args.wait:
        running.detach()
        if isinstance(process, LocalScript):
            console.print(f"started {shlex.join(command.argv)} as pid {process.pid}; {logs}",
                          markup=False)
        else:
            console.print(logs, markup=False)
        return 0
    if isinstance(process, BatchJob):
        return _follow_job(running, process, args.poll, console, logs)
    return _follow_local(running, console, command.argv)


def _follow_local(running: RunningService, console: Console, argv: list[str]) -> int:
    """Run the script in the foreground: its output on stderr (and in run/logs/run.out)."""
    process = running.process
    assert process is not None and process.log is not None
    console.print(f"running {shlex.join(argv)}", markup=False)
    offset = 0

    def show(_status: JobStatus) -> None:
        nonlocal offset
        try:
            with open(process.log, "rb") as fh:  # type: ignore[arg-type]
                fh.seek(offset)
                chunk = fh.read()
        except OSError:
            return
        offset += len(chunk)
        sys.stderr.buffer.write(chunk)
        sys.stderr.flush()

    try:
        status = running.wait(poll=0.2, on_poll=show)
    except KeyboardInterrupt:
        running.shutdown()  # the engines finalize, the script ends
        raise
    show(status)
    running.detach()
    rc = status.exit_code
    verdict = "[green]service came up and stopped cleanly[/]" if status.succeeded \
        else "[red]failed[/]"
    console.print(f"{verdict} (exit status {rc}); logs: {process.log} and "
                  f"{running.deployment.log_dir}/engine-*.log")
    return 0 if status.succeeded else 1


def _follow_job(running: RunningService, process: BatchJob, poll: float,
                console: Console, logs: str) -> int:
    """Follow a batch job until it ends: its state changes, then the final state."""
    job = f"job {process.job_id}"
    last: JobStatus | None = None
    start = time.monotonic()
    try:
        with console.status(f"{job}: submitted") as spinner:
            def changed(status: JobStatus) -> None:
                nonlocal last
                if last is None or status.state != last.state:
                    detail = f" ({status.detail})" if status.detail and \
                        status.detail != "None" else ""
                    console.print(f"{job}: {status.state}{detail}", markup=False)
                last = status
                spinner.update(f"{job}: {status.state} ({int(time.monotonic() - start)}s)")

            status = running.wait(poll=poll, on_poll=changed)
    except KeyboardInterrupt:
        running.detach()
        console.print(f"stopped waiting; {job} keeps running", markup=False)
        raise
    running.detach()
    if not status.succeeded and status.detail == "the scheduler no longer knows the job":
        console.print(f"{job}: state unknown (the scheduler forgot it); {logs}", markup=False)
        return 1
    verdict = "[green]" if status.succeeded else "[red]"
    console.print(f"{job} {verdict}{status.state}[/] (exit code {status.exit_code})")
    console.print(logs, markup=False)
    return 0 if status.succeeded else 1
