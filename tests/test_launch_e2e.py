"""End to end: generate a deployment for this host, start it for real, check what ran.

- Slurm: ``generate --site local-slurm`` then ``submit`` reaches COMPLETED on the local Slurm.
- mpirun: the generated ``scripts/run.sh`` runs the same service under Open MPI (``local``) and
  under MPICH's Hydra (a profile extending ``local`` with ``mpiexec-hydra``).
- Quoting: profile values holding ``$(touch ...)`` / ``; touch ...`` reach the engines literally
  and create nothing.
Each run checks: exit status 0, the group file lists every rank, every xstream is pinned where
the layout said (the engines' own report, ``run/query.json``), nothing is left running.
Needs the compiled engine (helper B: bedrock-engine, its query/shutdown tools and the MPI entry
point ``bedrock-engine-mpi``); skipped with the reason when it is not installed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from bedrock_deploy.launch.render import MPI_DAEMON, embedded_engine_dir
from live_processes import processes_naming as processes_in

ROOT = Path(__file__).resolve().parent.parent
KV = ROOT / "share" / "examples" / "kv-service.yaml"
PPN = 2

pytestmark = [pytest.mark.engine]


def _engine_dir(mpi: bool = True) -> Path:
    d = Path(embedded_engine_dir())
    missing = [t for t in ("bedrock-engine", "bedrock-engine-query", "bedrock-engine-shutdown")
               if not (d / t).is_file()]
    if missing:
        pytest.skip(f"compiled engine not installed in {d} (missing {', '.join(missing)})")
    if mpi and subprocess.run([sys.executable, "-c", "import bedrock_deploy.engine_mpi, mpi4py"],
                              capture_output=True).returncode != 0:
        pytest.skip(f"{MPI_DAEMON} (bedrock_deploy.engine_mpi + mpi4py) is not installed")
    return d


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bedrock_deploy", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


# The same service without flock: no MPI bootstrap; readiness from the engines' log lines.
KV_NO_GROUP = """name: kvn
nodes: 1
processes_per_node: 2
threads: {progress: dedicated, rpc: 1, primary: shared}
placement: {smt: avoid, too_few_cores: share}
components:
  - {name: kv, type: yokan, config: {database: {type: map}}}
"""


def no_group_service(tmp_path: Path) -> Path:
    path = tmp_path / "kv-no-group.yaml"
    path.write_text(KV_NO_GROUP)
    return path


def generate(site: str, out: Path, *extra: str, service: Path = KV) -> Path:
    done = cli("generate", "--site", site, "--service", str(service), "-o", str(out),
               "--nodes", "1", "--ppn", str(PPN), *extra)
    assert done.returncode == 0, done.stderr
    return out


def wait_gone(directory: Path, timeout: float = 20) -> list[str]:
    end = time.monotonic() + timeout
    left = processes_in(directory)
    while left and time.monotonic() < end:
        time.sleep(0.2)
        left = processes_in(directory)
    return left


def check_service_ran(directory: Path, group: bool = True) -> None:
    """Group file lists every rank; each engine's xstreams are pinned as its config says."""
    report = json.loads((directory / "run" / "query.json").read_text())
    assert len(report) == PPN
    if group:
        members = json.loads((directory / "run" / "group.json").read_text())["members"]
        addresses = [m["address"] for m in members]
        assert len(addresses) == PPN and len(set(addresses)) == PPN
        assert sorted(report) == sorted(addresses)
    assert sorted(e["bedrock_engine"]["rank"] for e in report.values()) == list(range(PPN))
    for engine in report.values():
        rank = engine["bedrock_engine"]["rank"]
        if group:  # an MPI world of every rank
            assert engine["bedrock_engine"]["size"] == PPN
        config = json.loads((directory / "configs" / f"rank-{rank % PPN}.json").read_text())
        planned = {x["name"]: sorted(x.get("affinity") or [x["cpubind"]])
                   for x in config["margo"]["argobots"]["xstreams"]
                   if x.get("affinity") or "cpubind" in x}
        actual = {x["name"]: sorted(x["cpus"]) for x in engine["bedrock_engine"]["xstreams"]}
        assert planned, "the layout pins nothing: nothing to check"
        for name, cpus in planned.items():
            assert actual.get(name) == cpus, (name, actual.get(name), cpus)
    logs = sorted((directory / "run" / "logs").glob("engine-*.log"))
    assert len(logs) == PPN
    for log in logs:
        head = log.read_text().splitlines()[0]
        local = int(log.stem.rsplit("-", 1)[1])
        assert f"local_rank={local} " in head and f"configs/rank-{local}.json" in head


@pytest.mark.slurm
@pytest.mark.parametrize("group", [True, False], ids=["flock-mpi", "no-group"])
def test_slurm_submit_reaches_completed(tmp_path: Path, local_slurm: str, group: bool) -> None:
    _engine_dir(mpi=group)
    service = KV if group else no_group_service(tmp_path)
    dep = generate("local-slurm", tmp_path / "dep", service=service)
    assert (dep / "scripts" / "job.sbatch").is_file()
    env = {**os.environ, "SBATCH_PARTITION": "no-such-partition"}  # must be ignored
    done = cli("submit", str(dep), "--duration", "2", env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "COMPLETED" in done.stderr
    out = next((dep / "run" / "logs").glob("kv*.out")).read_text()
    assert "ready: 2 rank(s) answer" in out and "exit status 0" in out
    # srun bound each local rank to exactly its layout CPUs (cpu-bind=verbose lines)
    assert out.count("cpu-bind=MASK") == PPN
    check_service_ran(dep, group=group)
    assert not wait_gone(dep)
    # This job (not any other session's on the shared Slurm) is no longer queued or running.
    job_id = re.search(r"submitted job (\d+)", done.stderr + done.stdout)
    assert job_id, done.stderr
    squeue = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout
    assert job_id.group(1) not in squeue.split()


def test_submit_dry_run_prints_the_command(tmp_path: Path) -> None:
    dep = generate("local-slurm", tmp_path / "dep")
    env = {**os.environ, "SBATCH_TIMELIMIT": "1"}
    done = cli("submit", str(dep), "--dry-run", env=env)
    assert done.returncode == 0, done.stderr
    assert f"sbatch --parsable --chdir={dep}" in done.stdout
    assert "unset" in done.stdout and "SBATCH_TIMELIMIT" in done.stdout
    assert not (dep / "run" / "group.json").exists()


def test_submit_rejects_a_directory_that_is_not_a_deployment(tmp_path: Path) -> None:
    done = cli("submit", str(tmp_path))
    assert done.returncode == 2
    assert "not a deployment directory" in done.stderr


def _hydra_site(tmp_path: Path) -> Path:
    site = tmp_path / "local-hydra.yaml"
    site.write_text(
        "name: local-hydra\nextends: local\n"
        "launcher:\n  type: mpiexec-hydra\n  command: mpiexec.mpich\n  flags: []\n")
    return site


@pytest.mark.mpi
@pytest.mark.parametrize("group", [True, False], ids=["flock-mpi", "no-group"])
@pytest.mark.parametrize("flavour", ["openmpi", "mpich"])
def test_mpirun_script_runs_the_service(tmp_path: Path, flavour: str, group: bool) -> None:
    _engine_dir(mpi=group)
    site = "local" if flavour == "openmpi" else str(_hydra_site(tmp_path))
    service = KV if group else no_group_service(tmp_path)
    dep = generate(site, tmp_path / "dep", service=service)
    text = (dep / "scripts" / "run.sh").read_text()
    assert ("mpirun.openmpi" if flavour == "openmpi" else "mpiexec.mpich") in text
    env = {**os.environ, "SERVICE_DURATION": "1"}
    done = subprocess.run(["bash", str(dep / "scripts" / "run.sh")], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    check_service_ran(dep, group=group)
    assert not wait_gone(dep)


@pytest.mark.mpi
def test_profile_values_cannot_inject_commands(tmp_path: Path) -> None:
    _engine_dir(mpi=False)
    marker = Path(f"/tmp/pwned-{uuid.uuid4().hex}")
    evil = {"BD_SUBST": f"$(touch {marker})", "BD_SEMI": f"x; touch {marker}-2; rm -rf {marker}",
            "BD_TICK": f"`touch {marker}-3`"}
    site = tmp_path / "local-evil.yaml"
    site.write_text("name: local-evil\nextends: local\nenv:\n" + "".join(
        f"  {k}: {json.dumps(v)}\n" for k, v in evil.items()))
    dep = generate(str(site), tmp_path / "dep", service=no_group_service(tmp_path))
    seen = tmp_path / "seen.txt"
    env = {**os.environ, "SERVICE_DURATION": "0",
           "BEDROCK_DEPLOY_CLIENT": f"printenv BD_SUBST BD_SEMI BD_TICK > {seen}"}
    done = subprocess.run(["bash", str(dep / "scripts" / "run.sh")], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    for suffix in ("", "-2", "-3"):
        assert not Path(f"{marker}{suffix}").exists()
    assert seen.read_text().splitlines() == list(evil.values())
    assert not wait_gone(dep)


def test_run_script_fails_clearly_without_the_engine(tmp_path: Path) -> None:
    dep = generate("local", tmp_path / "dep")
    env = {**os.environ, "BEDROCK_DEPLOY_ENGINE_DIR": str(tmp_path / "nowhere")}
    done = subprocess.run(["bash", str(dep / "scripts" / "run.sh")], capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode == 1
    assert f"no {tmp_path / 'nowhere'}/bedrock-engine" in done.stderr
    assert not (dep / "run" / "group.json").exists()


def test_rank_exec_without_a_launcher_says_so(tmp_path: Path) -> None:
    dep = generate("local", tmp_path / "dep")
    env = {k: v for k, v in os.environ.items()
           if k not in {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "PALS_LOCAL_RANKID",
                        "FLUX_TASK_LOCAL_ID", "SLURM_LOCALID"}}
    done = subprocess.run(["bash", str(dep / "scripts" / "rank-exec.sh")], capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode == 64
    assert "no local rank" in done.stderr and "scripts/run.sh" in done.stderr
    env["OMPI_COMM_WORLD_LOCAL_RANK"] = str(PPN)
    done = subprocess.run(["bash", str(dep / "scripts" / "rank-exec.sh")], capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode == 64 and f"runs {PPN} process(es) per node" in done.stderr


@pytest.mark.mpi
def test_submit_runs_the_script_directly_without_a_scheduler(tmp_path: Path) -> None:
    _engine_dir(mpi=False)
    dep = generate("local", tmp_path / "dep", service=no_group_service(tmp_path))
    done = cli("submit", str(dep), "--duration", "1",
               "--client", f"test -s {dep}/run/query.json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "service came up and stopped cleanly" in done.stderr
    log = (dep / "run" / "logs" / "run.out").read_text()
    assert "running the client" in log and "exit status 0" in log
    check_service_ran(dep, group=False)
    assert not wait_gone(dep)


@pytest.mark.mpi
def test_failing_client_gives_exit_status_6(tmp_path: Path) -> None:
    _engine_dir(mpi=False)
    dep = generate("local", tmp_path / "dep", service=no_group_service(tmp_path))
    env = {**os.environ, "BEDROCK_DEPLOY_CLIENT": "exit 9"}
    done = subprocess.run(["bash", str(dep / "scripts" / "run.sh")], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 6, done.stderr
    assert "the client exited with status 9" in done.stderr
    assert not wait_gone(dep)


@pytest.mark.mpi
def test_sigterm_shuts_the_service_down_cleanly(tmp_path: Path) -> None:
    _engine_dir(mpi=False)
    dep = generate("local", tmp_path / "dep", service=no_group_service(tmp_path))
    proc = subprocess.Popen(["bash", str(dep / "scripts" / "run.sh")], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        end = time.monotonic() + 120
        while not (dep / "run" / "ready").exists() and proc.poll() is None:
            assert time.monotonic() < end, "service not ready"
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[0]
        proc.terminate()
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "received SIGTERM: stopping the service" in out
    # Stopped through the shutdown tool, not killed: every engine logged the remote shutdown.
    for log in (dep / "run" / "logs").glob("engine-*.log"):
        assert "Shutdown requested remotely" in log.read_text(), log.read_text()
    assert not wait_gone(dep)


@pytest.mark.mpi
def test_engine_failing_at_start_gives_exit_status_4(tmp_path: Path) -> None:
    _engine_dir(mpi=False)
    dep = generate("local", tmp_path / "dep", service=no_group_service(tmp_path))
    config_file = dep / "configs" / "rank-1.json"
    config = json.loads(config_file.read_text())
    config["margo"]["rpc_pool"] = "no_such_pool"  # Margo refuses it, like the real one
    config_file.write_text(json.dumps(config))
    env = {**os.environ, "BEDROCK_DEPLOY_READY_TIMEOUT": "60"}
    done = subprocess.run(["bash", str(dep / "scripts" / "run.sh")], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 4, done.stderr
    assert "before the service was ready" in done.stderr
    assert "engine-" in done.stderr  # the failing engine's log is shown
    assert not wait_gone(dep)


@pytest.mark.slurm
def test_slurm_submit_no_wait_returns_the_job(tmp_path: Path, local_slurm: str) -> None:
    _engine_dir(mpi=False)
    dep = generate("local-slurm", tmp_path / "dep", service=no_group_service(tmp_path))
    done = cli("submit", str(dep), "--no-wait", "--duration", "1")
    assert done.returncode == 0, done.stderr
    job_id = done.stderr.split("submitted job ", 1)[1].split()[0]
    from bedrock_deploy.launch.schedulers.slurm import Slurm

    end = time.monotonic() + 120
    status = None
    while time.monotonic() < end:
        query = subprocess.run(Slurm.status_argv(job_id), capture_output=True, text=True)
        status = Slurm.parse_status(query.stdout)
        if status and status.finished:
            break
        time.sleep(0.5)
    assert status and status.state == "COMPLETED", status
    check_service_ran(dep, group=False)
    assert not wait_gone(dep)


@pytest.mark.mpi
def test_site_hooks_run_in_order(tmp_path: Path) -> None:
    _engine_dir(mpi=False)
    trace = tmp_path / "trace.txt"
    site = tmp_path / "local-hooks.yaml"
    site.write_text(
        "name: local-hooks\nextends: local\nhooks:\n"
        f"  before_modules: ['echo before_modules >> {trace}']\n"
        f"  before_launch: ['echo before_launch \"$PROTOCOL\" >> {trace}']\n"
        f"  after: ['echo after >> {trace}']\n")
    dep = generate(str(site), tmp_path / "dep", service=no_group_service(tmp_path))
    env = {**os.environ, "SERVICE_DURATION": "0",
           "BEDROCK_DEPLOY_CLIENT": f"echo client >> {trace}"}
    done = subprocess.run(["bash", str(dep / "scripts" / "run.sh")], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    protocol = json.loads((dep / "scripts" / "launch.json").read_text())["protocol"]
    assert trace.read_text().splitlines() == [
        "before_modules", f"before_launch {protocol}", "client", "after"]
    assert not wait_gone(dep)


@pytest.mark.slurm
def test_slurm_helpers_run_through_srun_beside_the_service(tmp_path: Path,
                                                           local_slurm: str) -> None:
    """A transport with launcher flags (as Slingshot's VNI flags) makes the job start the
    readiness query, the shutdown and the client through ``srun --overlap`` with those flags,
    beside the service's step that holds every CPU; real Slurm runs it to COMPLETED."""
    _engine_dir(mpi=False)
    profile = tmp_path / "slurm-flags.yaml"
    profile.write_text(
        "name: slurm-flags\nextends: local-slurm\ntransports:\n"
        "  - {name: tcp, protocol: 'ofi+tcp://', nic_kind: tcp, provider: tcp,\n"
        "     fabrics: [tcp, rxm], env: {FI_TCP_IFACE: lo}, launcher_flags: ['--export=ALL']}\n")
    dep = tmp_path / "dep"
    done = cli("generate", "--site", str(profile), "--service", str(no_group_service(tmp_path)),
               "-o", str(dep), "--nodes", "1", "--ppn", str(PPN))
    assert done.returncode == 0, done.stderr
    script = (dep / "scripts" / "job.sbatch").read_text()
    assert "bd_helper=(\n  srun\n  --overlap\n" in script and "  --export=ALL\n)" in script
    client = "test -n \"$SLURM_STEP_ID\" && echo client-step=$SLURM_STEP_ID"
    env = {**os.environ, "BEDROCK_DEPLOY_CLIENT": client}
    done = cli("submit", str(dep), "--duration", "1", env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    out = next((dep / "run" / "logs").glob("kv*.out")).read_text()
    assert "ready: 2 rank(s) answer" in out and "exit status 0" in out
    assert "client-step=" in out  # the client ran as a step of its own, started by srun
    check_service_ran(dep, group=False)
    assert not wait_gone(dep)
