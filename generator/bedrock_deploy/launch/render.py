"""Render the launch scripts of a deployment: ``render_scripts(plan) -> {path: text}``.

Files (paths relative to the deployment directory):

``scripts/<job script>``  the scheduler's batch script (``job.sbatch``, ``job.pbs``, ``job.flux``)
                          or ``run.sh`` for scheduler ``none``; it sets up the environment,
                          launches every rank, waits for the service and stops it cleanly.
``scripts/rank-exec.sh``  run on every rank by the launcher: picks ``configs/rank-<L>.json`` from
                          the launcher's local-rank variable and execs the engine.
``scripts/launch.json``   what ``bedrock-deploy submit`` needs: scheduler, launcher, job script.
``run/logs/README``       what the log files are (also makes ``run/logs`` exist before a job
                          writes its output file there).
driver files              whatever the launcher writes itself (:meth:`Launcher.driver_files`).

The scheduler (``site.scheduler.type``) and the launcher (``site.launcher.type``) are looked up
in their registries (:mod:`.scheduler`, :mod:`.launcher`); this module only assembles the
context their templates share.

Every value that comes from a profile or a service is shell-quoted by the ``sh`` filter
(:func:`shlex.quote`), escaped by the ``in_comment`` and ``comment`` filters on ``#`` lines,
or, on directive lines, checked for control characters; the only raw shell the scripts contain
besides the templates is the site's ``hooks`` (shell lines by definition, written by the site's
administrators). Templates live in ``share/templates/launch/``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import textwrap
from pathlib import Path
from typing import Any

import jinja2

from bedrock_deploy import __version__
from bedrock_deploy.components import config_uses_mpi
from bedrock_deploy.cpulist import format_cpulist
from bedrock_deploy.diagnostics import fail, printable
from bedrock_deploy.launch.binding import is_pinned, rank_cpus
from bedrock_deploy.launch.launcher import launcher_class, launcher_for
from bedrock_deploy.launch.scheduler import job_name, scheduler_for
from bedrock_deploy.plan import (
    CONFIG_DIR,
    GROUP_FILE,
    RANK_EXEC,
    RUN_DIR,
    SCRIPTS_DIR,
    DeploymentPlan,
)
from bedrock_deploy.rank_env import local_rank_vars, rank_vars
from bedrock_deploy.resources import share_path
from bedrock_deploy.site_profile import EngineKind

LAUNCH_INFO = f"{SCRIPTS_DIR}/launch.json"
LOG_DIR = f"{RUN_DIR}/logs"
ENGINE_DIR_ENV = "BEDROCK_DEPLOY_ENGINE_DIR"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Executables of each engine kind: (daemon, query tool, shutdown tool).
ENGINE_TOOLS: dict[EngineKind, tuple[str, str, str]] = {
    EngineKind.spack: ("bedrock", "bedrock-query", "bedrock-shutdown"),
    EngineKind.embedded: ("bedrock-engine", "bedrock-engine-query", "bedrock-engine-shutdown"),
}


# The embedded engine's MPI entry point (mpi4py): joins MPI_COMM_WORLD, then runs the engine with
# rank, size and an allgather for flock's "mpi" bootstrap (helper B's native/README.md).
MPI_DAEMON = "bedrock-engine-mpi"


def sh(value: object) -> str:
    """Jinja2 filter: one shell word, whatever the value holds."""
    return shlex.quote(str(value))


def comment(text: str, width: int = 96) -> str:
    """Jinja2 filter: ``text`` as ``# `` comment lines of at most ``width`` characters
    (newlines in ``text`` cannot escape the comment; other control characters are escaped)."""
    return textwrap.fill(printable(" ".join(str(text).split())), width=width,
                         initial_indent="# ", subsequent_indent="# ", break_long_words=False,
                         break_on_hyphens=False)


def in_comment(value: object) -> str:
    """Jinja2 filter: a value inside a ``#`` comment line, whatever it holds: newlines and
    other control characters are written as escapes, so it cannot end the comment (a profile
    file named "x\\ntouch y.yaml" must not add a command to the script)."""
    return printable(value)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(share_path("templates", "launch"))),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
        trim_blocks=True, lstrip_blocks=True, autoescape=False,
        # bash has "${#array[@]}": Jinja2's default "{#" comment marker would swallow it.
        comment_start_string="{##", comment_end_string="##}")
    env.filters["sh"] = sh
    env.filters["comment"] = comment
    env.filters["in_comment"] = in_comment
    return env


def embedded_engine_dir() -> str:
    """Where the embedded engine's executables are, decided at generate time (the scripts let
    ``BEDROCK_DEPLOY_ENGINE_DIR`` override it at run time): ``bedrock_deploy.engine``'s search
    ($BEDROCK_DEPLOY_ENGINE_DIR, the environment's ``bin/``, PATH), else where pip installs it."""
    import sysconfig

    from bedrock_deploy.engine import engine_dir

    found = engine_dir()
    return str(found.resolve() if found else Path(sysconfig.get_path("scripts")))


def _env_items(plan: DeploymentPlan, values: dict[str, str], path: tuple[str, ...]
               ) -> list[tuple[str, str]]:
    for key in values:
        if not _ENV_NAME.fullmatch(key):
            raise fail(f"{key!r} is not an environment variable name", path=(*path, key),
                       file=plan.site_files[0] if plan.site_files else None,
                       hint="use letters, digits and '_' and do not start with a digit")
    return list(values.items())


def needs_mpi(plan: DeploymentPlan) -> bool:
    """Does any rank's config use MPI (:func:`bedrock_deploy.components.config_uses_mpi`)? Never
    under a launcher without an MPI world: the plan refused flock "mpi" there, and the embedded
    engine evaluates ``$MPI_COMM_WORLD`` from the launcher's rank variables."""
    if not launcher_for(plan).mpi_world:
        return False
    return any(config_uses_mpi(config) for config in plan.configs)


def _group_file(plan: DeploymentPlan) -> str | None:
    """The flock group file (relative to DIR/run) the service writes, if it has a flock."""
    for config in plan.configs[:1]:
        for provider in config.get("providers", []):
            if provider.get("type") == "flock":
                return str(provider.get("config", {}).get("file", GROUP_FILE))
    return None


def helper_argv(plan: DeploymentPlan) -> list[str]:
    """How the job starts the processes that talk to the running service (readiness query,
    shutdown, client): through the launcher, with the transport's launcher flags, when the
    transport has such flags (a Slingshot VNI is only handed to processes the launcher starts:
    mochi-doc docs/source/misc/06_cxi.rst); directly otherwise."""
    flags = list(plan.transport.launcher_flags)
    if not flags:
        return []
    return [*launcher_class(plan.site.launcher.type).helper_argv(plan.site), *flags]


def script_context(plan: DeploymentPlan) -> dict[str, Any]:
    site = plan.site
    scheduler = scheduler_for(plan)
    launch = launcher_for(plan).run_command()
    daemon, query, shutdown = ENGINE_TOOLS[site.engine]
    helper = helper_argv(plan)
    env: dict[str, str] = {}  # later sources win: site, then transport, then launcher
    env.update(_env_items(plan, site.env, ("env",)))
    env.update(_env_items(plan, plan.transport.env, ("transports", plan.transport.name, "env")))
    env.update(_env_items(plan, launch.env, ("launcher", "env")))
    return {
        "version": __version__,
        "service": plan.service.name,
        "site": site.name,
        "site_files": [Path(f).name for f in plan.site_files],
        "start_command": scheduler.start_command(),
        "scheduler": scheduler.name,
        "job_output": scheduler.job_output,
        "launcher": site.launcher.type,
        "script": scheduler.script,
        "prefix": scheduler.prefix,
        "directives": scheduler.directives(),
        "nodes": plan.nodes,
        "ppn": plan.processes_per_node,
        "total": plan.total_processes,
        "protocol": plan.transport.protocol,
        "transport": plan.transport.name,
        "engine": site.engine.value,
        "engine_dir": embedded_engine_dir() if site.engine == EngineKind.embedded else "",
        "daemon": daemon,
        "needs_mpi": needs_mpi(plan),
        "mpi_daemon": MPI_DAEMON,
        "python": sys.executable,
        "query": query,
        "shutdown": shutdown,
        "helper_argv": helper,
        "helper_why": plan.transport.name if helper else "",
        "shebang": "#!/bin/bash -l" if site.scheduler.login_shell else "#!/usr/bin/env bash",
        "login_shell": site.scheduler.login_shell,
        "spack_root": site.spack.root or os.environ.get("SPACK_ROOT", ""),
        "modules": site.spack.modules,
        "needs_module": bool(site.spack.modules or site.hooks.before_modules),
        "env": list(env.items()),
        "root_env": list(launch.as_root_env.items()),
        "hooks": site.hooks,
        "launch_argv": launch.argv,
        "launch_program": launch.program,
        "launch_program_args": launch.program_args,
        "launch_notes": launch.notes,
        "local_rank_var": launch.local_rank_var,
        "local_rank_vars": local_rank_vars(),
        "rank_vars": rank_vars(),
        "self_bind": launch.self_bind,
        "pinned": is_pinned(plan),
        "rank_cpus": [format_cpulist(c) for c in rank_cpus(plan)],
        "group_file": _group_file(plan),
        "config_dir": CONFIG_DIR,
        "run_dir": RUN_DIR,
        "log_dir": LOG_DIR,
        "rank_exec": RANK_EXEC,
    }


def render_scripts(plan: DeploymentPlan) -> dict[str, str]:
    """Every launch file of the deployment: relative path -> text."""
    ctx = script_context(plan)
    env = _environment()
    scheduler = scheduler_for(plan)
    info = {
        "scheduler": ctx["scheduler"],
        "launcher": ctx["launcher"],
        "script": scheduler.script,
        "rank_exec": RANK_EXEC,
        "log_dir": LOG_DIR,
        "group_file": f"{RUN_DIR}/{ctx['group_file']}" if ctx["group_file"] else None,
        "protocol": ctx["protocol"],
        "engine": ctx["engine"],
        "service": ctx["service"],
        "job_name": job_name(plan),
        "nodes": ctx["nodes"],
        "processes_per_node": ctx["ppn"],
    }
    files = {
        scheduler.script: env.get_template(scheduler.template).render(ctx),
        RANK_EXEC: env.get_template("rank-exec.sh.j2").render(ctx),
        LAUNCH_INFO: json.dumps(info, indent=2) + "\n",
        f"{LOG_DIR}/README": env.get_template("logs-readme.j2").render(ctx),
    }

    def render(template: str, /, **extra: Any) -> str:
        return env.get_template(template).render({**ctx, **extra})

    launcher = launcher_for(plan)
    for rel, text in launcher.driver_files(render).items():
        if rel in files or Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise ValueError(f"launcher {launcher.name!r} writes {rel!r}: a driver "
                             "file needs its own path inside the deployment directory")
        files[rel] = text
    if ctx["launch_program"] not in files:
        raise ValueError(f"launcher {launcher.name!r} runs {ctx['launch_program']!r}, which "
                         "is not a file of the deployment: write it with driver_files()")
    return files
