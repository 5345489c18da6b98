"""Checked stand-ins for what a site's login environment provides: ``module``, ``spack`` and the
Spack-built ``bedrock``, ``bedrock-query``, ``bedrock-shutdown``.

``module load X`` succeeds only for a module the site profile declares (``spack.modules`` and
the modules of its compilers and externals; Lmod refuses unknown modules the same way).
``spack env activate [--sh] DIR`` succeeds only for a directory whose ``spack.yaml`` passes
``bedrock-deploy spack check``; it puts on ``PATH`` the environment's view, where ``bedrock``,
``bedrock-query`` and ``bedrock-shutdown`` are the embedded engine (its emulated fabrics on).
Each of them records how it was started (by a launcher or not, with a VNI or not).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from bedrock_deploy.rehearse.common import Context, ToolError


def module(ctx: Context, argv: list[str]) -> int:
    """Prints shell code for ``eval`` (as Lmod's ``module`` function does)."""
    declared = ctx["modules"]
    sub = argv[0] if argv else "list"
    names: list[str] = []
    if sub in {"load", "add", "try-load"}:
        names = argv[1:]
    elif sub in {"swap", "switch"} and len(argv) >= 2:
        names = argv[-1:]
    elif sub in {"list", "purge", "unload", "rm", "avail", "use", "reset", "restore", "-t"}:
        print(":")
        return 0
    else:
        print(f"echo 'module {shlex.quote(sub)}: not emulated by this rehearsal' >&2; false")
        return 0
    # Lmod: "name" loads the default version of a module "name/version"
    known = set(declared) | {d.split("/", 1)[0] for d in declared}
    unknown = [n for n in names if n not in known]
    for n in names:
        ctx.event("module.declared", n not in unknown,
                  n if n not in unknown else f"{n} (the site declares: "
                  f"{', '.join(declared) or 'none'})", tool="module")
    if unknown:
        msg = ("Lmod has detected the following error: The following module(s) are unknown: "
               + " ".join(unknown))
        print(f"echo {shlex.quote(msg)} >&2; false")
        return 0
    loaded = [m for m in os.environ.get("LOADEDMODULES", "").split(":") if m] + names
    print(f"export LOADEDMODULES={shlex.quote(':'.join(loaded))}")
    return 0


def spack(ctx: Context, argv: list[str]) -> int:
    """``spack env activate [--sh] DIR`` -> shell code; anything else is refused."""
    if argv[:2] != ["env", "activate"]:
        raise ToolError(f"spack (rehearsal stand-in): only 'spack env activate' is emulated, "
                        f"not 'spack {' '.join(argv)}'")
    args = [a for a in argv[2:] if a not in {"--sh", "--bash", "-p", "--prompt"}]
    if len(args) != 1:
        raise ToolError("spack env activate: give one environment directory")
    directory = Path(args[0])
    problem = ""
    if not (directory / "spack.yaml").is_file():
        problem = f"{directory} has no spack.yaml (==> Error: no such environment)"
    else:
        problem = spack_check_problem(directory)
    ctx.event("spack.env", not problem, problem or f"spack env activate {directory}",
              tool="spack")
    if problem:
        raise ToolError(f"==> Error: {problem}")
    view = ctx.dir / "spack-view" / "bin"
    print(f"export SPACK_ENV={shlex.quote(str(directory))}")
    print(f'export PATH={shlex.quote(str(view))}:"$PATH"')
    for key, value in ctx["fabric_env"].items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def spack_check_problem(directory: Path) -> str:
    """What ``bedrock-deploy spack check DIR`` (structural) finds wrong, or ""."""
    # only here: these are heavy to import
    from bedrock_deploy.commands.spack import plan_from_manifest
    from bedrock_deploy.diagnostics import InputError
    from bedrock_deploy.spack_check import check_against_plan, check_manifest
    from bedrock_deploy.yaml_source import load_yaml

    try:
        doc = load_yaml(directory / "spack.yaml")
        problems = check_manifest(doc)
        plan = plan_from_manifest(directory)
        if plan is not None:
            problems += check_against_plan(doc, plan)
    except InputError as err:
        problems = list(err.problems)
    return "; ".join(p.format().splitlines()[0] for p in problems)


def tool_ran(ctx: Context, argv: list[str]) -> int:
    """Called by the view's bedrock tools: record how this process was started."""
    name = argv[0] if argv else "?"
    launched = os.environ.get("BEDROCK_REHEARSAL_LAUNCHED", "")
    vnis = os.environ.get("SLINGSHOT_VNIS", "")
    # the binding this process starts with, in the site's numbering (after whatever the
    # launcher and rank-exec.sh did: the CPU map's library keeps it up to date)
    ctx.event("tool", True, "", tool=name, launched=launched, vnis=vnis,
              site_cpus=os.environ.get("BEDROCK_REHEARSAL_SITE_CPUS", ""),
              tool_pid=os.getppid(),  # the stand-in's shell, which becomes the tool (exec)
              ppid_cmd=_parent_command())
    return 0


def _parent_command() -> str:
    try:
        ppid = os.getppid()
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            parent = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        # the shim itself is a shell; its parent is who started the tool
        with open(f"/proc/{ppid}/stat") as f:
            grand = int(f.read().rsplit(")", 1)[1].split()[1])
        with open(f"/proc/{grand}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:200] or parent
    except (OSError, ValueError, IndexError):
        return ""


def main(ctx: Context, name: str, argv: list[str]) -> int:
    if name == "module":
        return module(ctx, argv)
    if name == "spack":
        return spack(ctx, argv)
    if name == "tool-ran":
        return tool_ran(ctx, argv)
    print(f"unknown stand-in {name}", file=sys.stderr)
    return 2
