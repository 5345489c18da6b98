"""``launcher: dragon`` (site ``local-dragon``): what it generates, what it refuses, and real runs
under the Dragon runtime (dragonhpc, installed by ``.ci/install``).

The real runs check what the issue asks: every rank pinned as planned (the engine's report =
the kernel's affinity), the group formed, keys round-trip, a clean stop, and nothing left: no
process of the deployment, no Dragon process started meanwhile, no new Dragon pool in /dev/shm.
They need the ``dragon`` command and an engine that accepts flock bootstrap lists (the embedded
engine gains them with the engine-parity work; until then they are skipped with that reason).
"""

from __future__ import annotations

import json
import os
import py_compile
import re
import runpy
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bedrock_deploy as bd
from bedrock_deploy.rank_env import rank_env

ROOT = Path(__file__).resolve().parent.parent
KV = ROOT / "share" / "examples" / "kv-service.yaml"
WORKFLOW = ROOT / "share" / "examples" / "dragon-workflow.py"


def generate(tmp: Path, service: Path | dict[str, Any] = KV, site: str = "local-dragon",
             ppn: int = 2) -> bd.Deployment:
    return bd.generate(bd.plan(bd.load_site(site), bd.load_service(service), nodes=1, ppn=ppn),
                       tmp / "deploy")


# ---- what it generates ----------------------------------------------------------------------
def test_the_deployment_runs_a_driver_under_dragon(tmp_path: Path) -> None:
    dep = generate(tmp_path)
    scripts = dep.directory / "scripts"
    assert dep.launcher == "dragon"
    run = (scripts / "run.sh").read_text()
    launch = re.search(r"bd_launch=\(\n(.*?)\n\)", run, re.S)
    assert launch is not None
    assert launch.group(1).split() == ['"$DIR/scripts/dragon-run.sh"', "dragon",
                                       "--single-node-override"]
    wrapper = scripts / "dragon-run.sh"
    assert os.access(wrapper, os.X_OK)
    done = subprocess.run(["bash", "-n", str(wrapper)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    py_compile.compile(str(scripts / "dragon-driver.py"), doraise=True,
                       cfile=str(tmp_path / "driver.pyc"))
    # The driver's plan: one CPU set per local rank from the layout, the rank variables of
    # rank-variables.json, rank-exec.sh, and the group file the joiners wait for.
    driver = runpy.run_path(str(scripts / "dragon-driver.py"))  # main() runs only as __main__
    plan = driver["PLAN"]
    layout = dep.manifest["layout"]["ranks"]
    assert [",".join(map(str, c)) for c in plan["rank_cpus"]] == [r["cpus"] for r in layout]
    env = rank_env("dragon")
    assert plan["variables"] == {"local_rank": env.local_rank, "rank": env.rank,
                                 "size": env.size}
    assert (plan["nodes"], plan["processes_per_node"]) == (1, 2)
    assert plan["program"] == "scripts/rank-exec.sh" and plan["join_file"] == "group.json"
    assert f"for bd_name in \"${{BEDROCK_DEPLOY_LOCAL_RANK_VAR:-}}\" {env.local_rank} " in (
        scripts / "rank-exec.sh").read_text()


def test_inside_an_allocation_dragon_runs_without_the_single_node_override(
        tmp_path: Path) -> None:
    site = tmp_path / "slurm-dragon.yaml"
    site.write_text(f"extends: {ROOT / 'site-profiles' / 'local-slurm.yaml'}\n"
                    "name: slurm-dragon\nlauncher: {type: dragon, mpi: null}\n")
    dep = generate(tmp_path, site=str(site))
    job = (dep.directory / "scripts" / "job.sbatch").read_text()
    launch = re.search(r"bd_launch=\(\n(.*?)\n\)", job, re.S)
    assert launch is not None
    assert launch.group(1).split() == ['"$DIR/scripts/dragon-run.sh"', "dragon"]
    assert "#SBATCH --nodes=1" in job


def test_flock_bootstraps_by_join_then_self_and_says_why(tmp_path: Path) -> None:
    dep = generate(tmp_path)
    for config in dep.configs:
        flock = next(p for p in config["providers"] if p["type"] == "flock")
        assert flock["config"]["bootstrap"] == ["join", "self"]
        assert flock["config"]["group"] == {"type": "centralized"}
        assert flock["config"]["file"] == "group.json"
    choice = next(c for c in dep.choices if c.what == "flock bootstrap")
    assert "PMIx" in choice.why and "centralized" in choice.why
    # Under mpirun the same service keeps flock's own "mpi" bootstrap.
    local = generate(tmp_path / "local", site="local")
    flock = next(p for p in local.config(0)["providers"] if p["type"] == "flock")
    assert flock["config"]["bootstrap"] == "mpi"
    assert not any(c.what == "flock bootstrap" for c in local.choices)


def test_an_mpi_bootstrap_is_refused_with_its_location(tmp_path: Path) -> None:
    service = tmp_path / "svc.yaml"
    service.write_text("name: kv\nprocesses_per_node: 2\ncomponents:\n"
                       "  - name: group\n    type: flock\n    config:\n"
                       "      bootstrap: mpi\n"
                       "  - {name: kv, type: yokan}\n")
    with pytest.raises(bd.InputError) as err:
        generate(tmp_path, service)
    (problem,) = err.value.problems
    assert problem.location is not None and problem.location.line == 7
    assert "needs an MPI world" in problem.message and "dragon" in problem.message
    assert problem.hint is not None and '["join", "self"]' in problem.hint
    assert not (tmp_path / "deploy").exists()


def test_a_rank0_component_is_refused_for_a_spack_bedrock(tmp_path: Path) -> None:
    site = tmp_path / "dragon-spack.yaml"
    site.write_text(f"extends: {ROOT / 'site-profiles' / 'local-dragon.yaml'}\n"
                    "name: dragon-spack\nengine: spack\n")
    service = {"name": "kv", "processes_per_node": 2,
               "components": [{"name": "group", "type": "flock"},
                              {"name": "master", "type": "yokan", "rank0_only": True}]}
    with pytest.raises(bd.InputError) as err:
        bd.plan(bd.load_site(site), bd.load_service(service), nodes=1, ppn=2)
    (problem,) = err.value.problems
    assert "no MPI world" in problem.message and problem.path == ("components", 1)


# ---- real runs --------------------------------------------------------------------------------
def dragon_command() -> str:
    found = shutil.which("dragon") or str(Path(sysconfig.get_path("scripts")) / "dragon")
    if not Path(found).is_file():
        pytest.skip("Dragon is not installed (pip install 'bedrock-deploy[dragon]')")
    return found


@pytest.fixture(scope="module")
def dragon_ready(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The dragon command, once the engine is known to accept a flock bootstrap list."""
    from bedrock_deploy.engine import engine_dir

    command = dragon_command()
    engine = engine_dir()
    if engine is None or not (engine / "bedrock-engine").is_file():
        pytest.skip("the compiled engine is not installed")
    dep = generate(tmp_path_factory.mktemp("probe"), ppn=1)
    done = subprocess.Popen([str(engine / "bedrock-engine"), dep.protocol, "-c",
                             str(dep.directory / "configs" / "rank-0.json")],
                            cwd=dep.run_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    out = ""
    try:
        assert done.stdout is not None
        for line in done.stdout:
            out += line
            if "now running at" in line:
                break
    finally:
        done.terminate()
        done.wait(timeout=30)
    if "now running at" not in out:
        pytest.skip("the installed bedrock-engine does not accept flock bootstrap lists "
                    f"(['join', 'self']): {out.strip()[-200:]}")
    return command


def dragon_pids() -> set[int]:
    """Live processes of a Dragon runtime (launcher, services, head, managed processes)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "bin/dragon" in cmd or "dragon.native" in cmd or "dragon-driver" in cmd:
            out.add(int(entry.name))
    return out


def shm_pools() -> set[str]:
    return {p.name for p in Path("/dev/shm").glob("DD*")}


@pytest.fixture
def nothing_left(tmp_path: Path) -> Iterator[None]:
    """After the test: no process of the deployment, no new Dragon process, no new pool."""
    pids, pools = dragon_pids(), shm_pools()
    yield
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        new_pids = {p for p in dragon_pids() - pids if Path(f"/proc/{p}").exists()}
        if not new_pids and not (shm_pools() - pools):
            break
        time.sleep(0.2)
    assert not (dragon_pids() - pids), "Dragon processes left"
    assert not (shm_pools() - pools), f"Dragon pools left in /dev/shm: {shm_pools() - pools}"
    assert not bd.running.run_processes(None, tmp_path), "processes of the deployment left"


@pytest.mark.engine
def test_up_local_dragon(dragon_ready: str, tmp_path: Path, nothing_left: None) -> None:
    done = subprocess.run([sys.executable, "-m", "bedrock_deploy", "up", "--site", "local-dragon",
                           "--json", "-o", str(tmp_path / "up"), "--keys", "50"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert len(report["members"]) == 2
    assert report["smoke"] and all(s["ok"] for s in report["smoke"]), report["smoke"]
    rows = report["xstreams"]
    assert rows and all(r["ok"] for r in rows), rows
    assert all(r["planned"] == r["engine_cpus"] == r["kernel_cpus"] for r in rows), rows
    assert report["ok"]
    assert report["stop"]["clean"], report["stop"]
    log = (tmp_path / "up" / "run" / "logs" / "up.log").read_text()
    assert "dragon-driver" in log and "started 2 rank(s) as one ProcessGroup" in log
    assert "removing" not in log and "killing" not in log  # Dragon ended by itself


@pytest.mark.engine
def test_api_launch_and_a_stop_before_ready_leave_nothing(dragon_ready: str, tmp_path: Path,
                                                         nothing_left: None) -> None:
    dep = generate(tmp_path)
    with dep.launch(timeout=180) as running:
        assert [m.rank for m in running.members] == [0, 1]
        reports = running.query()
        assert sorted(r["bedrock_engine"]["rank"] for r in reports) == [0, 1]
        db = running.database(rank=1)
        db.put("dragon", b"pinned")
        assert db.get("dragon") == b"pinned" and running.database(rank=0).get("dragon") is None
    assert running.stop_result is not None and running.stop_result.clean, running.stop_result
    # Stopped while the Dragon runtime is still starting: its sweep leaves nothing either.
    early = dep.launch(wait=False, timeout=180)
    time.sleep(3)
    result = early.shutdown(timeout=20)
    assert not result.leftover and not result.still_answering, result


@pytest.mark.engine
def test_the_dragon_workflow_example(dragon_ready: str, tmp_path: Path,
                                     nothing_left: None) -> None:
    done = subprocess.run([dragon_ready, "--single-node-override", str(WORKFLOW),
                           str(tmp_path / "wf")], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path,
                          env={**os.environ, "PATH": f"{Path(dragon_ready).parent}:"
                               f"{os.environ.get('PATH', '')}"})
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "results read back 60 of 60" in out and "workflow ok" in out, out[-4000:]
    assert "still_answering=[], leftover=[]" in out
