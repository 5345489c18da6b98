"""``bedrock-deploy spack check DIR [--concretize]``: is the deployment's Spack environment sound?

Always runs the structural check (:mod:`bedrock_deploy.spack_check`, no Spack needed). When Spack
is available (``--spack``, ``$SPACK_ROOT`` or ``spack`` on PATH) it then asks Spack itself,
through its Python API (``share/spack/spack_api_check.py`` run by ``spack python``): schema,
every spec's package/variant names and values, and with ``--concretize`` a full solve that writes
``DIR/spack.lock``. Without Spack it says so and exits 0 if the structural check passes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from rich.console import Console

from bedrock_deploy.diagnostics import InputError, Problem, fail
from bedrock_deploy.files import is_file
from bedrock_deploy.plan import NodeLayout, TransportChoice
from bedrock_deploy.resources import share_path
from bedrock_deploy.sites import load_site
from bedrock_deploy.spack_check import check_against_plan, check_manifest
from bedrock_deploy.spack_env import next_steps
from bedrock_deploy.terminal import make_console
from bedrock_deploy.yaml_source import load_yaml

RESULT_MARK = "BEDROCK_DEPLOY_RESULT "
EXIT_SPACK_FAILED = 1


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("spack", help="check a deployment's Spack environment",
                       description="Check a deployment's Spack environment (spack.yaml).")
    s = p.add_subparsers(dest="spack_command", metavar="ACTION", required=True)
    chk = s.add_parser(
        "check", help="check DIR/spack.yaml (structure; with Spack: schema, specs, concretize)",
        description="Check DIR/spack.yaml: structurally without Spack, then with Spack's own "
        "Python API when Spack is found ($SPACK_ROOT, --spack, or spack on PATH).")
    chk.add_argument("dir", metavar="DIR", help="deployment directory (or a spack.yaml file)")
    chk.add_argument("--concretize", action="store_true",
                     help="also concretize with Spack and write DIR/spack.lock")
    chk.add_argument("--spack", metavar="PATH", help="Spack root or spack executable")
    chk.add_argument("--json", action="store_true", help="machine-readable output")
    chk.set_defaults(func=_check)


def find_spack(explicit: str | None = None) -> Path | None:
    """The ``spack`` executable: ``explicit`` (root or executable), ``$SPACK_ROOT``, PATH."""
    for candidate in (explicit, os.environ.get("SPACK_ROOT")):
        if candidate:
            path = Path(candidate)
            exe = path / "bin" / "spack" if path.is_dir() else path
            if exe.is_file():
                return exe
    found = shutil.which("spack")
    return Path(found) if found else None


def _manifest_path(arg: str) -> Path:
    path = Path(arg)
    manifest = path if is_file(path) else path / "spack.yaml"
    if not is_file(manifest):
        raise fail(f"no Spack environment at {manifest}", file=str(manifest),
                   hint="pass a deployment directory written by 'bedrock-deploy generate'")
    return manifest


def plan_from_manifest(env_dir: Path) -> Any | None:
    """The parts of the plan the Spack checks need, from ``DIR/manifest.json`` if it is there:
    the transport, whether the layout pins threads, and the site profile (if still readable)."""
    path = env_dir / "manifest.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        t = data["transport"]
        transport = TransportChoice(
            name=t["name"], protocol=t["protocol"], provider=t.get("provider"),
            fabrics=tuple(t.get("fabrics", ())), env=dict(t.get("env", {})),
            launcher_flags=tuple(t.get("launcher_flags", ())), mercury=dict(t.get("mercury", {})),
            reason=t.get("reason", ""))
        layout = NodeLayout(ranks=(), pins_threads=bool(data["layout"]["pins_threads"]),
                            use_smt=bool(data["layout"].get("use_smt", False)))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    site = None
    for entry in data.get("inputs", []):
        if entry.get("role") == "site":
            try:
                site = load_site(entry["file"]).profile
            except (InputError, OSError, KeyError):
                site = None
            break
    return SimpleNamespace(transport=transport, layout=layout, site=site)


def _check(args: argparse.Namespace) -> int:
    manifest = _manifest_path(args.dir)
    env_dir = manifest.parent
    doc = load_yaml(manifest)
    problems = check_manifest(doc)
    plan = plan_from_manifest(env_dir)
    if plan is not None:
        problems += check_against_plan(doc, plan)
    if problems:
        raise InputError(problems)
    specs = doc.data["spack"].get("specs", [])
    result: dict[str, Any] = {"manifest": str(manifest), "structural": "passed",
                              "checked_against_plan": plan is not None,
                              "specs": specs, "spack": None, "next": next_steps(env_dir)}
    out = make_console(soft_wrap=True)
    spack = find_spack(args.spack)
    if spack is None:
        result["spack"] = "not found"
        if args.json:
            json.dump(result, sys.stdout, indent=2)
            print()
            return 0
        out.print(f"{manifest}: structural check passed ({len(specs)} specs"
                  + (", matches manifest.json's transport and layout" if plan else "") + ")",
                  markup=False)
        out.print("Spack not found (set SPACK_ROOT, pass --spack, or put spack on PATH): only "
                  "the structural check ran" + ("; --concretize needs Spack" if args.concretize
                                                else ""), markup=False)
        _print_next(out, env_dir)
        return 0
    api = run_spack_api(spack, env_dir, args.concretize, quiet=args.json)
    result["spack"] = {"executable": str(spack), **api}
    if api["errors"]:
        raise InputError([Problem(f"Spack ({e['stage']}): {e['message']}",
                                  path=("spack", "specs") if e["stage"] == "spec" else ("spack",),
                                  file=str(manifest),
                                  hint="fix the spack.yaml (or the site profile it came from)")
                          for e in api["errors"]])
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0
    out.print(f"{manifest}: structural check passed ({len(specs)} specs)", markup=False)
    out.print(f"Spack {api.get('spack_version') or ''} ({spack}): schema and "
              f"{len(api['specs'])} specs valid", markup=False)
    if args.concretize:
        out.print(f"concretized {len(api['concretized'])} roots; wrote {api['lock']}",
                  markup=False)
    _print_next(out, env_dir)
    return 0


def _print_next(out: Console, env_dir: Path) -> None:
    out.print("Next:", markup=False)
    for line in next_steps(env_dir):
        out.print(f"  {line}", markup=False)


def run_spack_api(spack: Path, env_dir: Path, concretize: bool, *,
                  quiet: bool = False) -> dict[str, Any]:
    """Run ``share/spack/spack_api_check.py`` under ``spack python``; its parsed result."""
    script = share_path("spack", "spack_api_check.py")
    cmd = [str(spack), "python", str(script), str(env_dir)]
    if concretize:
        cmd.append("--concretize")
    what = ("Concretizing with Spack (the solver takes about a minute)" if concretize
            else "Validating with Spack")
    err_console = make_console(stderr=True)
    if quiet:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    else:
        with err_console.status(what + " ..."):
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            data: dict[str, Any] = json.loads(line[len(RESULT_MARK):])
            return data
    raise fail(f"Spack did not run ({' '.join(cmd)} exited {proc.returncode}): "
               + (proc.stderr.strip().splitlines() or ["no output"])[-1],
               file=str(spack), hint="check that this Spack works: spack python -c 'print(1)'")
