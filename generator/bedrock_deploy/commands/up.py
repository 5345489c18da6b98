"""``bedrock-deploy up``: generate for this host, launch, smoke-test, show the pinning, stop.

Exit status: 0 everything checked out (and the service was stopped cleanly, unless ``--keep``),
1 the service did not come up or a check failed, 2 bad input (nothing written), 130/143
interrupted by SIGINT/SIGTERM (the service was stopped first). With ``--serve``, once the report
is shown, Ctrl-C or SIGTERM is the normal end: 0 if the service then stopped cleanly.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as RichProgressBar
from rich.table import Table

from bedrock_deploy.plan import GROUP_FILE, RUN_DIR
from bedrock_deploy.terminal import make_console
from bedrock_deploy.up import (
    DEFAULT_KEYS,
    DEFAULT_PROCESSES,
    DEFAULT_SITE,
    DEFAULT_STOP_TIMEOUT,
    DEFAULT_TIMEOUT,
    LOG_NAME,
    Interrupted,
    StopResult,
    UpError,
    UpOptions,
    UpResult,
    default_service,
    describe_cpus,
    up,
)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "up", help="generate, launch and smoke-test a service on this host, then stop it",
        description="Generate a deployment for this host (site 'local': probed topology, "
        "mpirun, embedded engine), run its launch script, wait for the flock group, put and "
        "read back keys through the key/value provider of every member, show every rank's "
        "xstreams with the CPUs they are really pinned to, then shut the service down "
        "(unless --keep). Ctrl-C stops the service cleanly at any point. With a Slurm site "
        "(--site local-cluster: the test cluster of tests/cluster/cluster.sh, SLURM_CONF set) "
        "the job script is submitted with sbatch and the service spans --nodes nodes.")
    p.add_argument("--site", default=DEFAULT_SITE, metavar="S",
                   help=f"site profile with scheduler none and engine embedded "
                   f"(default {DEFAULT_SITE})")
    p.add_argument("--service", metavar="SVC",
                   help=f"service description (default {default_service().name} shipped in "
                   "share/examples)")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="deployment directory to create (default: a new "
                   "./deployments/up-<site>-<UTC time>)")
    p.add_argument("--force", action="store_true",
                   help="replace DIR if it is a previous deployment")
    p.add_argument("--np", "--ppn", dest="processes", type=int, default=DEFAULT_PROCESSES,
                   metavar="N", help=f"processes per node (default {DEFAULT_PROCESSES})")
    p.add_argument("--nodes", type=int, metavar="N",
                   help="nodes, for a Slurm site (default: the service's); a site without a "
                   "scheduler runs on this host only")
    p.add_argument("--transport", metavar="NAME",
                   help="use this transport of the site (default: what generate selects; "
                   "site local has sm and tcp)")
    p.add_argument("--keys", type=int, default=DEFAULT_KEYS, metavar="N",
                   help=f"keys put and read back through each member (default {DEFAULT_KEYS})")
    p.add_argument("--keep", action="store_true",
                   help="leave the service running and return (prints how to stop it)")
    p.add_argument("--serve", action="store_true",
                   help="keep the service up in the foreground until Ctrl-C, then stop it")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=f"how long to wait for every rank to answer (default {DEFAULT_TIMEOUT})")
    p.add_argument("--stop-timeout", type=int, default=DEFAULT_STOP_TIMEOUT, metavar="SECONDS",
                   help=f"how long a clean shutdown may take (default {DEFAULT_STOP_TIMEOUT})")
    p.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    p.set_defaults(func=_up)


class RichProgress:
    """``up``'s progress as rich bars on stderr: one per stage, N of N ranks."""

    def __init__(self, console: Console) -> None:
        self.bar = RichProgressBar(SpinnerColumn(), TextColumn("{task.description:<28}"),
                                   BarColumn(bar_width=20), MofNCompleteColumn(),
                                   TimeElapsedColumn(), console=console)
        self.tasks: dict[str, TaskID] = {}
        self.started = False

    def stage(self, name: str, total: int) -> None:
        if not self.started:
            self.bar.start()
            self.started = True
        self.tasks[name] = self.bar.add_task(name, total=total)

    def advance(self, name: str, completed: int) -> None:
        self.bar.update(self.tasks[name], completed=completed)

    def close(self) -> None:
        if self.started:
            self.bar.stop()
            self.started = False


def _cpus(row_cpus: tuple[int, ...] | None) -> str:
    return describe_cpus(row_cpus)


def _print_report(out: Console, r: UpResult) -> None:
    group = Table(title=f"Group ({RUN_DIR}/{GROUP_FILE}): {len(r.members)} member(s)",
                  title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("rank", "host", "address", "pid"):
        group.add_column(col)
    for m in r.members:
        group.add_row(str(m.rank), m.host or "?", m.address, str(m.pid))
    out.print(group)
    if r.smoke:
        smoke = Table(title=f"Key/value smoke workload: {r.smoke_note}", title_justify="left",
                      box=box.SIMPLE_HEAD)
        for col in ("rank", "flock view", "put", "read back", "listed", "erased",
                    "served by", "ms", "ok"):
            smoke.add_column(col, no_wrap=True)
        for s in r.smoke:
            smoke.add_row(str(s.rank),
                          f"{s.view_members} members" + ("" if s.view_matches else " (!)"),
                          str(s.puts), str(s.gets_ok), str(s.listed), str(s.erased),
                          s.handler_xstream, f"{s.seconds * 1000:.0f}",
                          "[green]yes[/]" if s.ok else "[red]NO[/]")
        out.print(smoke)
    elif r.smoke_note:
        out.print(f"Key/value smoke workload: {r.smoke_note}")
    xs = Table(title="Xstreams: CPUs planned (configs/rank-<L>.json), pinned (the engine's own "
               "report: query), and the kernel's affinity of that OS thread",
               title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("rank", "xstream", "role", "OS thread", "planned", "pinned", "kernel", "ok"):
        xs.add_column(col, no_wrap=True)
    for x in r.xstreams:
        xs.add_row(str(x.rank), x.name, x.role, str(x.os_thread_id),
                   _cpus(x.planned), _cpus(x.engine_cpus), _cpus(x.kernel_cpus),
                   "[green]yes[/]" if x.ok else "[red]NO[/]")
    out.print(xs)


def _stop_line(stop: StopResult | None, members: int) -> str:
    if stop is None:
        return "the service was not started"
    parts = [f"launch script exit status {stop.script_status}"
             + (" (killed: it did not stop in time)" if stop.forced else "")]
    if members:
        answering = len(stop.still_answering)
        parts.append(f"{members - answering}/{members} engine(s) no longer answer")
    parts.append("no process left" if not stop.leftover
                 else f"{len(stop.leftover)} process(es) were left and killed")
    return ", ".join(parts)


def _up(args: argparse.Namespace) -> int:
    opts = UpOptions(site=args.site, service=args.service, output=args.output,
                     processes=args.processes, nodes=args.nodes, keys=args.keys,
                     keep=args.keep,
                     serve=args.serve, force=args.force, transport=args.transport,
                     timeout=args.timeout,
                     stop_timeout=args.stop_timeout)
    err = make_console(stderr=True, soft_wrap=True)
    out = err if args.json else make_console(soft_wrap=True)
    if not out.is_terminal:
        out.width = max(out.width, 120)  # logs and pipes: keep table rows on one line
    progress = RichProgress(err)

    def generated(r: UpResult) -> None:
        out.print(f"[bold]bedrock-deploy up[/]: {r.service} on {r.site}, {r.processes} "
                  f"process(es), {r.protocol}\n  deployment: {r.directory}\n"
                  f"  launch script output: {r.directory}/{RUN_DIR}/logs/"
                  + (LOG_NAME if r.script == "scripts/run.sh" else "<job>-<id>.out"))
        for note in r.notes:
            out.print(f"  note: {note}", markup=False)

    def ready(r: UpResult) -> None:
        progress.close()
        _print_report(out, r)
        if opts.serve:
            out.print("[bold]Serving[/]: press Ctrl-C to stop the service.")

    result: UpResult | None = None
    try:
        result = up(opts, progress=progress, on_generated=generated, on_up=ready)
    except Interrupted as intr:
        progress.close()
        result = intr.result
        members = len(result.members) if result else 0
        stop = result.stop if result else None
        if opts.serve and result and result.xstreams:  # the report was shown: a normal end
            how = "Ctrl-C" if intr.signum == signal.SIGINT else str(intr)
            out.print(f"Stopped on {how}: {_stop_line(stop, members)}.")
            return _finish(args, result, 0 if result.ok else 1)
        if result is None or (result.script_pid is None and result.job_id is None):
            err.print(f"interrupted ({intr}) before the service was launched: nothing runs"
                      + (f"; the deployment is in {result.directory}" if result else "."))
        else:
            err.print(f"interrupted ({intr}): the service was stopped: "
                      f"{_stop_line(stop, members)}.")
        return _finish(args, result, 128 + intr.signum, interrupted=str(intr))
    except UpError as exc:
        progress.close()
        err.print(f"error: {exc}", markup=False)
        if exc.hint:
            err.print(f"    hint: {exc.hint}", markup=False)
        if exc.details:
            err.print(exc.details, markup=False)
        if args.json:
            json.dump({"error": str(exc), "hint": exc.hint}, sys.stdout, indent=2)
            print()
        return 1
    finally:
        progress.close()
    if result.kept:
        started = (f"Slurm job {result.job_id}" if result.job_id is not None
                   else f"launch script pid {result.script_pid}")
        out.print(f"[bold]Kept running[/] ({started}). Stop it "
                  f"with: {result.stop_command}   (or: bedrock-engine-shutdown "
                  f"'{result.protocol}' -f {result.directory}/{RUN_DIR}/{GROUP_FILE})")
    else:
        out.print(f"Stopped: {_stop_line(result.stop, len(result.members))}.")
    return _finish(args, result, 0 if result.ok else 1)


def _finish(args: argparse.Namespace, result: UpResult | None, status: int,
            interrupted: str | None = None) -> int:
    if args.json:
        report: dict[str, Any] = result.to_dict() if result else {}
        if interrupted:
            report["interrupted"] = interrupted
        json.dump(report, sys.stdout, indent=2)
        print()
    if status == 1 and result is not None and not args.json:
        make_console(stderr=True).print(
            "[red]some checks failed[/] (see the tables above: ok = NO)")
    return status
