"""The local Slurm fixture itself: a real sbatch reaches COMPLETED; the fixture is idempotent."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from bedrock_deploy.launch.scheduler import JobStatus
from bedrock_deploy.launch.schedulers.slurm import Slurm

LOCAL_SLURM = Path(__file__).parent / "slurm" / "local-slurm.sh"

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("local_slurm")]


def wait_for_job(job_id: str, timeout: float = 120) -> JobStatus:
    end = time.monotonic() + timeout
    status = None
    while time.monotonic() < end:
        done = subprocess.run(Slurm.status_argv(job_id), capture_output=True, text=True)
        status = Slurm.parse_status(done.stdout)
        if status and status.finished:
            return status
        time.sleep(0.25)
    raise AssertionError(f"job {job_id} not finished after {timeout}s (last: {status})")


def test_trivial_sbatch_completes(tmp_path: Path, local_slurm: str) -> None:
    out = tmp_path / "out.txt"
    done = subprocess.run(
        ["sbatch", "--parsable", f"--partition={local_slurm}", f"--output={out}",
         "--ntasks=1", "--wrap", "srun hostname"],
        capture_output=True, text=True, check=True)
    status = wait_for_job(Slurm.parse_job_id(done.stdout))
    assert status.state == "COMPLETED" and status.exit_code == "0:0"
    assert out.read_text().strip() == subprocess.run(
        ["hostname"], capture_output=True, text=True).stdout.strip()


def test_start_is_idempotent_and_status_reports_alive(local_slurm: str) -> None:
    def pids() -> str:
        return subprocess.run(["bash", str(LOCAL_SLURM), "status"], capture_output=True,
                              text=True, check=True).stdout

    before = pids()
    assert "slurmctld" in before and "alive" in before
    # under this session's lease (as the fixture): a plain start would hold a "manual" lease
    # and leave the daemons running after the tests
    subprocess.run(["bash", str(LOCAL_SLURM), "start", "--lease", str(os.getpid())],
                   capture_output=True, text=True, check=True)
    after = pids()
    # Same daemons (same PIDs) after a second start.
    assert [line for line in before.splitlines() if line.startswith("slurm")] == \
        [line for line in after.splitlines() if line.startswith("slurm")]


def test_impossible_request_fails_at_once(local_slurm: str) -> None:
    # EnforcePartLimits=ALL: rejected at submit time instead of pending forever.
    done = subprocess.run(["sbatch", f"--partition={local_slurm}", "--ntasks=999",
                           "--wrap", "true"], capture_output=True, text=True)
    assert done.returncode != 0
    assert "processors" in done.stderr.lower() or "node" in done.stderr.lower()


def test_ports_are_checked_before_anything_is_written(local_slurm: str, tmp_path: Path) -> None:
    """A second instance (own run directory) finds 6817/6818 taken by the running one: it
    refuses before writing anything, and never touches a machine-wide slurm.conf."""
    etc_conf = Path("/etc/slurm/slurm.conf")
    etc_before = etc_conf.read_bytes() if etc_conf.exists() else None
    run = tmp_path / "other"
    done = subprocess.run(["bash", str(LOCAL_SLURM), "start"], capture_output=True, text=True,
                          env={**os.environ, "LOCAL_SLURM_RUN": str(run)})
    assert done.returncode == 1
    assert "port(s) 6817 6818 taken" in done.stderr and "nothing was changed" in done.stderr
    assert not (run / "etc" / "slurm.conf").exists() and not (run / "pids").exists()
    assert (etc_conf.read_bytes() if etc_conf.exists() else None) == etc_before
    # the running instance is the session's, configured under its own run directory
    assert not os.environ["SLURM_CONF"].startswith("/etc/")
    assert Path(os.environ["SLURM_CONF"]).read_text().startswith(
        "# managed by bedrock-deploy tests/slurm/local-slurm.sh")
