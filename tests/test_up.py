"""``bedrock-deploy up`` for real: generate for this host, run the generated mpirun script with our
compiled engine, smoke-test the key/value provider, report the real pinning, stop.

Every run checks that nothing of it is left: no process whose command line names the deployment
directory (mpirun, rank-exec.sh, the engines) and no engine answering on the group's addresses.
The engine tests are skipped, with the reason, when the compiled engine (helper B: bedrock-engine,
its tools, bindings and MPI entry point ``bedrock-engine-mpi``) is not installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bedrock_deploy.up import group_addresses, planned_cpus, run_processes
from live_processes import processes_naming as processes_of

ROOT = Path(__file__).resolve().parent.parent


def _engine() -> Any:
    """The engine bindings, or skip when the engine is not installed."""
    from bedrock_deploy.engine import EngineNotFound, bindings, engine_dir
    from bedrock_deploy.launch.render import MPI_DAEMON

    try:
        mod = bindings()
    except EngineNotFound as exc:
        pytest.skip(str(exc))
    d = engine_dir()
    missing = [t for t in ("bedrock-engine", "bedrock-engine-query", "bedrock-engine-shutdown")
               if d is None or not (d / t).is_file()]
    if missing:
        pytest.skip(f"compiled engine not installed (missing {', '.join(missing)})")
    if not (d / MPI_DAEMON).exists() and shutil.which(MPI_DAEMON) is None:
        pytest.skip(f"{MPI_DAEMON} (the engine's MPI entry point) is not installed")
    if shutil.which("mpirun.openmpi") is None:
        pytest.skip("mpirun.openmpi (Open MPI) is not installed")
    return mod


def up_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "bedrock_deploy", "up", *args]


def run_up(*args: str, timeout: float = 300, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(up_argv(*args), capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=ROOT)


def answering(engine: Any, protocol: str, addresses: list[str]) -> list[str]:
    client = engine.Client(protocol.split(":")[0])
    client.set_timeout_ms(1000)
    alive = []
    for addr in addresses:
        try:
            client.ping(addr)
            alive.append(addr)
        except Exception:  # connection refused / timed out: it no longer answers
            pass
    return alive


def assert_nothing_left(engine: Any, directory: Path, protocol: str,
                        addresses: list[str]) -> None:
    assert addresses, "no address to check"
    assert processes_of(directory) == []
    assert answering(engine, protocol, addresses) == []


def kill_leftovers(directory: Path) -> None:
    """Test hygiene only: if a check failed, stop what that run left (by pid)."""
    for line in processes_of(directory):
        pid = int(line.split(":", 1)[0])
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def dep(tmp_path: Path) -> Any:
    directory = tmp_path / "dep"
    yield directory
    kill_leftovers(directory)


# ---- without the engine: bad input ------------------------------------------------------------
def test_site_with_a_scheduler_is_refused_nothing_written(tmp_path: Path) -> None:
    out = tmp_path / "dep"
    done = run_up("--site", "polaris", "-o", str(out))
    assert done.returncode == 2, done.stderr
    # located where the key is set: polaris.yaml extends base/slingshot-pals.yaml
    assert "slingshot-pals.yaml:" in done.stderr
    assert "error: engine: site 'polaris' runs engine 'spack'" in done.stderr
    assert "hint:" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


@pytest.mark.parametrize(("args", "what"), [
    (("--np", "0"), "--np must be at least 1"),
    (("--keys", "0"), "--keys must be at least 1"),
    (("--keep", "--serve"), "contradict"),
])
def test_bad_options_exit_2_nothing_written(tmp_path: Path, args: tuple[str, ...],
                                            what: str) -> None:
    out = tmp_path / "dep"
    done = run_up(*args, "-o", str(out))
    assert done.returncode == 2
    assert what in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


def test_existing_directory_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "dep"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    done = run_up("-o", str(out))
    assert done.returncode == 2
    assert "already exists" in done.stderr
    assert (out / "mine.txt").read_text() == "keep me"


def test_planned_cpus_reads_affinity_and_cpubind() -> None:
    config = {"margo": {"argobots": {"xstreams": [
        {"name": "a", "affinity": [3, 1]}, {"name": "b", "cpubind": 2},
        {"name": "c", "scheduler": {"type": "basic_wait", "pools": ["p"]}}]}}}
    assert planned_cpus(config) == {"a": (1, 3), "b": (2,), "c": ()}


def test_group_addresses_tolerates_a_file_being_written(tmp_path: Path) -> None:
    f = tmp_path / "group.json"
    assert group_addresses(f) == []
    f.write_text('{"members": [{"address": "na+sm://1-2", "provider_id": 1}')
    assert group_addresses(f) == []
    f.write_text(json.dumps({"members": [{"address": "na+sm://1-2", "provider_id": 1}]}))
    assert group_addresses(f) == ["na+sm://1-2"]


# ---- with the engine, under Open MPI's mpirun ---------------------------------------------------
@pytest.mark.engine
@pytest.mark.mpi
def test_up_json_report_checks_out_and_leaves_nothing(dep: Path) -> None:
    engine = _engine()
    done = run_up("-o", str(dep), "--json", "--keys", "50")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True and report["kept"] is False
    assert report["directory"] == str(dep)
    assert report["processes"] == 2
    # the group the engines wrote, and who answered
    group = json.loads((dep / "run" / "group.json").read_text())
    addresses = [m["address"] for m in group["members"]]
    assert sorted(m["address"] for m in report["members"]) == sorted(addresses)
    assert sorted(m["rank"] for m in report["members"]) == [0, 1]
    assert len({m["pid"] for m in report["members"]}) == 2
    # smoke workload: every key read back, listed and erased through every member
    assert len(report["smoke"]) == 2
    manifest = json.loads((dep / "manifest.json").read_text())
    layout = {r["local_rank"]: r for r in manifest["layout"]["ranks"]}
    for s in report["smoke"]:
        assert (s["puts"], s["gets_ok"], s["listed"], s["erased"]) == (50, 50, 50, 50)
        assert s["view_members"] == 2 and s["view_matches"] is True
        # served by an xstream the layout gave the RPC handlers (one node: local = MPI rank)
        rank = layout[s["rank"]]
        serving = {x["name"] for x in rank["xstreams"] if "rpc" in x["roles"]}
        assert s["handler_xstream"] in serving, (s, rank)
        assert {x["pools"][0] for x in rank["xstreams"]
                if x["name"] == s["handler_xstream"]} == {rank["pools"]["rpc"]}
    # xstreams: every one the config declares, pinned where planned, and the kernel agrees
    for rank in (0, 1):
        config = json.loads((dep / "configs" / f"rank-{rank}.json").read_text())
        planned = planned_cpus(config)
        rows = {x["name"]: x for x in report["xstreams"] if x["rank"] == rank}
        assert set(rows) == set(planned)
        assert any(planned.values()), "the layout pins nothing: nothing to check"
        for name, cpus in planned.items():
            row = rows[name]
            if cpus:
                assert tuple(row["engine_cpus"]) == cpus, (rank, name, row)
            assert row["kernel_cpus"] == row["engine_cpus"], (rank, name, row)
            assert row["os_thread_id"] > 0
    tids = [x["os_thread_id"] for x in report["xstreams"]]
    assert len(set(tids)) == len(tids)
    # stopped cleanly: the script's exit status, and really nothing left
    assert report["stop"]["script_status"] == 0 and report["stop"]["clean"] is True
    assert_nothing_left(engine, dep, report["protocol"], addresses)
    for m in report["members"]:
        assert not Path(f"/proc/{m['pid']}").exists()


@pytest.mark.engine
@pytest.mark.mpi
def test_up_prints_the_tables(dep: Path) -> None:
    engine = _engine()
    done = run_up("-o", str(dep), "--np", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert f"deployment: {dep}" in out
    assert "Group (run/group.json): 2 member(s)" in out
    assert "Key/value smoke workload" in out
    assert "Xstreams:" in out
    planned = {(str(rank), name) for rank in (0, 1) for name in planned_cpus(
        json.loads((dep / "configs" / f"rank-{rank}.json").read_text()))}
    # the pinning table: one row per xstream of each rank (rank, name, role, ...), all agreeing
    xstream_lines = [ln for ln in out.splitlines() if tuple(ln.split()[:2]) in planned]
    assert sorted(tuple(ln.split()[:2]) for ln in xstream_lines) == sorted(planned)
    assert all(ln.rstrip().endswith("yes") for ln in xstream_lines)
    assert "Stopped: launch script exit status 0, 2/2 engine(s) no longer answer, no process " \
           "left." in out
    assert "engines started" in done.stderr  # the progress display
    addresses = group_addresses(dep / "run" / "group.json")
    protocol = json.loads((dep / "scripts" / "launch.json").read_text())["protocol"]
    assert_nothing_left(engine, dep, protocol, addresses)


def _start(dep: Path, *args: str) -> subprocess.Popen[str]:
    # its own process group, as a terminal's Ctrl-C reaches the foreground job
    return subprocess.Popen(up_argv("-o", str(dep), *args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            start_new_session=True)


@pytest.mark.engine
@pytest.mark.mpi
@pytest.mark.parametrize(("signum", "said"), [(signal.SIGINT, "Stopped on Ctrl-C"),
                                              (signal.SIGTERM, "Stopped on SIGTERM")])
def test_ctrl_c_once_the_group_is_up_stops_everything(dep: Path, signum: int, said: str
                                                      ) -> None:
    engine = _engine()
    proc = _start(dep, "--serve")
    reader = subprocess.Popen(["true"])
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:  # the report is printed once the group answers
            lines.append(line)
            if "Serving" in line:
                break
        else:
            pytest.fail("up ended before serving:\n" + "".join(lines)
                        + (proc.stderr.read() if proc.stderr else ""))
        addresses = group_addresses(dep / "run" / "group.json")
        assert len(addresses) == 2
        protocol = json.loads((dep / "scripts" / "launch.json").read_text())["protocol"]
        assert sorted(answering(engine, protocol, addresses)) == sorted(addresses)
        assert processes_of(dep), "the service should be running"
        # someone reading the logs is not part of the run: up must leave it alone
        reader = subprocess.Popen(["tail", "-f", str(dep / "run" / "logs" / "up.log")],
                                  stdout=subprocess.DEVNULL, start_new_session=True)
        os.killpg(proc.pid, signum)
        out, err = proc.communicate(timeout=60)
        assert reader.poll() is None, "up killed a process that only reads its logs"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.kill()
        reader.wait()
    assert proc.returncode == 0, out + err
    assert f"{said}: launch script exit status 0, 2/2 engine(s) no longer answer, " \
           "no process left." in out
    assert "Traceback" not in err
    assert_nothing_left(engine, dep, protocol, addresses)


@pytest.mark.engine
@pytest.mark.mpi
def test_up_killed_outright_still_stops_the_service(dep: Path) -> None:
    """SIGKILL leaves up no chance to clean up: the script's parent-death signal stops it."""
    engine = _engine()
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    proc = _start(dep, "--serve")
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "Serving" in line:
                break
        addresses = group_addresses(dep / "run" / "group.json")
        protocol = json.loads((dep / "scripts" / "launch.json").read_text())["protocol"]
        assert len(addresses) == 2 and processes_of(dep)
        proc.kill()
        proc.wait()
        end = time.monotonic() + 60
        while processes_of(dep) and time.monotonic() < end:
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert_nothing_left(engine, dep, protocol, addresses)
    log = (dep / "run" / "logs" / "up.log").read_text()
    assert "received SIGTERM: stopping the service" in log and "exit status 0" in log


@pytest.mark.engine
@pytest.mark.mpi
def test_ctrl_c_while_waiting_for_the_group_stops_everything(dep: Path) -> None:
    engine = _engine()
    proc = _start(dep)
    try:
        logs = dep / "run" / "logs"
        end = time.monotonic() + 120
        while not (logs.is_dir() and any(logs.glob("engine-*.log"))):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < end, "no engine was started"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, out + err
    assert "interrupted (SIGINT): the service was stopped" in err
    assert "no process left" in err and "Traceback" not in err
    assert processes_of(dep) == []
    # whatever engines got to write their address must not answer any more
    text = "".join(p.read_text() for p in (dep / "run" / "logs").glob("engine-*.log"))
    started = [w for ln in text.splitlines() if "now running at" in ln
               for w in ln.split() if "://" in w]
    protocol = json.loads((dep / "scripts" / "launch.json").read_text())["protocol"]
    assert answering(engine, protocol, started) == []


@pytest.mark.engine
@pytest.mark.mpi
def test_keep_leaves_the_service_up_until_told(dep: Path) -> None:
    engine = _engine()
    done = run_up("-o", str(dep), "--keep", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["kept"] is True and report["stop"] is None
    pid = report["script_pid"]
    addresses = [m["address"] for m in report["members"]]
    try:
        assert sorted(answering(engine, report["protocol"], addresses)) == sorted(addresses)
        assert run_processes(pid, dep), "the service should still be running"
        assert f"kill -TERM {pid}" in done.stderr  # how to stop it, as printed
        os.kill(pid, signal.SIGTERM)
        end = time.monotonic() + 60
        while processes_of(dep) and time.monotonic() < end:
            time.sleep(0.2)
    finally:
        kill_leftovers(dep)
    assert_nothing_left(engine, dep, report["protocol"], addresses)
    assert "exit status 0" in (dep / "run" / "logs" / "up.log").read_text()


@pytest.mark.engine
@pytest.mark.mpi
def test_launch_failing_before_ready_is_a_clear_error(dep: Path) -> None:
    """A Python without mpi4py for the engines' MPI entry point: the launch script stops
    before anything runs; up says so, shows why, exits 1 and leaves nothing."""
    _engine()
    python = Path("/usr/bin/python3")
    probe = subprocess.run([str(python), "-c", "import mpi4py"], capture_output=True)
    if not python.exists() or probe.returncode == 0:
        pytest.skip("needs a python3 without mpi4py at /usr/bin/python3")
    env = {**os.environ, "BEDROCK_DEPLOY_PYTHON": str(python)}
    done = run_up("-o", str(dep), "--timeout", "60", env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "error: the launch script ended (exit status" in done.stderr
    assert "before the service was ready" in done.stderr
    # the cause, from the script's log: its own check ("cannot import bedrock_deploy.engine_mpi
    # and mpi4py") or the engines' logs it shows (their Python errors, after "last lines of")
    assert "cannot import bedrock_deploy.engine_mpi" in done.stderr \
        or "ModuleNotFoundError" in done.stderr.split("last lines of", 1)[1]
    assert "hint:" in done.stderr and "Traceback" not in done.stderr.split("last lines of")[0]
    assert processes_of(dep) == []
