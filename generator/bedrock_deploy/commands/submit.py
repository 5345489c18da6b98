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
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from bedrock_deploy.diagnostics import fail
from bedrock_deploy.launch.scheduler import SCHEDULERS, JobStatus, Scheduler, scheduler_class

_DROPPED_PREFIXES = ("SBATCH_", "SALLOC_", "SRUN_", "SLURM_")
_KEPT = {"SLURM_CONF"}


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


def load_launch_info(directory: Path) -> dict[str, object]:
    info_file = directory / "scripts" / "launch.json"
    if not directory.is_dir():
        raise fail(f"{directory} is not a directory", file=str(directory),
                   hint="give the directory 'bedrock-deploy generate -o DIR' wrote")
    try:
        info = json.loads(info_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise fail(f"no {info_file.relative_to(directory)}: not a deployment directory",
                   file=str(directory),
                   hint="generate one with 'bedrock-deploy generate --site S --service F -o DIR'"
                   ) from None
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


def job_environment(base: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    """The submitting environment without inherited Slurm settings, plus ``extra``."""
    env = {k: v for k, v in base.items()
           if k in _KEPT or not k.startswith(_DROPPED_PREFIXES)}
    env.update(extra)
    return env


def _submit(args: argparse.Namespace) -> int:
    directory = Path(args.directory).resolve()
    info = load_launch_info(directory)
    sched = scheduler_class(str(info["scheduler"]))
    log_dir = directory / str(info.get("log_dir", "run/logs"))
    name = str(info.get("job_name", "bedrock"))
    extra = {"BEDROCK_DEPLOY_DIR": str(directory)}
    if args.duration is not None:
        if args.duration < 0:
            raise fail("--duration must be 0 or more seconds", hint="e.g. --duration 60")
        extra["SERVICE_DURATION"] = str(args.duration)
    if args.client:
        extra["BEDROCK_DEPLOY_CLIENT"] = args.client
    env = job_environment(dict(os.environ), extra)
    console = Console(stderr=True, highlight=False)

    argv = sched.submit_argv(directory, log_dir, name, extra)
    if not sched.batch:
        if args.dry_run:
            _print_dry_run(argv, extra, directory, None)
            return 0
        return _run_directly(argv, env, directory, log_dir, args.wait, console)

    if args.dry_run:
        dropped = sorted(k for k in os.environ if k not in env)
        _print_dry_run(argv, extra, directory, dropped)
        return 0
    if shutil.which(argv[0]) is None:
        console.print(f"error: {argv[0]} not found: is this a {sched.name} login node?")
        return 1
    log_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(argv, env=env, cwd=directory, capture_output=True, text=True)
    if done.returncode != 0:
        console.print(f"error: {shlex.join(argv)} failed (status {done.returncode}):")
        console.print(done.stderr.strip() or done.stdout.strip(), markup=False)
        return 1
    job_id = sched.parse_job_id(done.stdout)
    console.print(f"submitted job {job_id} ({sched.name}): {info.get('service')} on "
                  f"{info.get('nodes')} node(s) x {info.get('processes_per_node')}", markup=False)
    output = sched.output_file(log_dir, name, job_id)
    if not args.wait:
        console.print(f"logs: {output} and {log_dir}/engine-*.log", markup=False)
        return 0
    status = _follow(sched, job_id, args.poll, console)
    if status is None:
        console.print(f"job {job_id}: state unknown (the scheduler forgot it); logs: {output}",
                      markup=False)
        return 1
    verdict = "[green]" if status.succeeded else "[red]"
    console.print(f"job {job_id} {verdict}{status.state}[/] (exit code {status.exit_code})")
    console.print(f"logs: {output} and {log_dir}/engine-*.log", markup=False)
    return 0 if status.succeeded else 1


def _print_dry_run(argv: list[str], extra: dict[str, str], directory: Path,
                   dropped: list[str] | None) -> None:
    print(f"cd {shlex.quote(str(directory))}")
    if dropped:
        print("unset " + " ".join(dropped))
    settings = " ".join(f"{k}={shlex.quote(v)}" for k, v in extra.items())
    print(f"{settings} {shlex.join(argv)}")


def _follow(sched: type[Scheduler], job_id: str, poll: float,
            console: Console) -> JobStatus | None:
    last: JobStatus | None = None
    start = time.monotonic()
    misses = 0
    try:
        with console.status(f"job {job_id}: submitted") as spinner:
            while True:
                done = subprocess.run(sched.status_argv(job_id), capture_output=True, text=True)
                status = sched.parse_status(done.stdout) if done.returncode == 0 else None
                if status is None:
                    misses += 1
                    if misses >= 10:
                        return last if last and last.finished else None
                else:
                    misses = 0
                    if last is None or status.state != last.state:
                        console.print(f"job {job_id}: {status.state}"
                                      + (f" ({status.detail})" if status.detail
                                         and status.detail != "None" else ""), markup=False)
                    last = status
                    if status.finished:
                        return status
                elapsed = int(time.monotonic() - start)
                state = last.state if last else "submitted"
                spinner.update(f"job {job_id}: {state} ({elapsed}s)")
                time.sleep(poll)
    except KeyboardInterrupt:
        console.print(f"stopped waiting; job {job_id} keeps running", markup=False)
        raise


def _run_directly(argv: list[str], env: dict[str, str], directory: Path, log_dir: Path,
                  wait: bool, console: Console) -> int:
    log_dir.mkdir(parents=True, exist_ok=True)
    output = log_dir / "run.out"
    if not wait:
        with open(output, "wb") as out:
            proc = subprocess.Popen(argv, env=env, cwd=directory, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        console.print(f"started {shlex.join(argv)} as pid {proc.pid}; logs: {output} and "
                      f"{log_dir}/engine-*.log", markup=False)
        return 0
    console.print(f"running {shlex.join(argv)}", markup=False)
    with open(output, "wb") as out:
        proc = subprocess.Popen(argv, env=env, cwd=directory, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                out.write(line)
                out.flush()
                sys.stderr.buffer.write(line)
                sys.stderr.flush()
        except KeyboardInterrupt:
            proc.terminate()  # the script's trap shuts the service down
            proc.wait()
            raise
        rc = proc.wait()
    verdict = "[green]service came up and stopped cleanly[/]" if rc == 0 else "[red]failed[/]"
    console.print(f"{verdict} (exit status {rc}); logs: {output} and {log_dir}/engine-*.log")
    return 0 if rc == 0 else 1
