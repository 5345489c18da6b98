"""Two-rank services under real Open MPI and MPICH launchers (flock "mpi" bootstrap)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.mpi, pytest.mark.engine]

LAUNCHERS = {
    "openmpi": ["mpirun.openmpi", "--oversubscribe", "-np", "2"],
    "mpich": ["mpiexec.mpich", "-n", "2"],
}


def service_config(group: Path) -> dict[str, Any]:
    return {
        # abt_io's file RPCs are test-only in the engine: enabled beneath the group's directory
        "bedrock_engine": {"test_rpcs": ["abt_io"], "abt_io_directory": str(group.parent)},
        "margo": {
            "rpc_pool": "rpc_pool",
            "argobots": {
                "pools": [{"name": "rpc_pool"}, {"name": "io_pool"}],
                "xstreams": [
                    {"name": "rpc_xstream", "scheduler": {"pools": ["rpc_pool"]}},
                    {"name": "io_xstream", "scheduler": {"pools": ["io_pool"]}},
                ],
            },
        },
        "libraries": ["libflock-bedrock-module.so", "libyokan-bedrock-module.so",
                      "libabt-io-bedrock-module.so"],
        "providers": [
            {"name": "group", "type": "flock", "provider_id": 1,
             "config": {"bootstrap": "mpi", "file": str(group), "group": {"type": "static"}}},
            {"name": "kv", "type": "yokan", "provider_id": 2,
             "config": {"database": {"type": "map"}}, "dependencies": {"pool": "rpc_pool"}},
            {"name": "io", "type": "abt_io", "provider_id": 3,
             "dependencies": {"pool": "io_pool"}},
            {"name": "rank0_only", "type": "yokan", "provider_id": 4,
             "__if__": "$MPI_COMM_WORLD.rank == 0"},
        ],
    }


def mpi_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_btl_tcp_if_include="lo", OMPI_MCA_oob_tcp_if_include="lo")
    return env


def start(launcher: str, config: Path, extra_env: dict[str, str] | None = None
          ) -> subprocess.Popen[str]:
    if shutil.which(LAUNCHERS[launcher][0]) is None:
        pytest.skip(f"{LAUNCHERS[launcher][0]} not installed")
    env = mpi_env()
    env.update(extra_env or {})
    return subprocess.Popen(
        [*LAUNCHERS[launcher], sys.executable, "-m", "bedrock_deploy.engine_mpi", "na+sm",
         "-c", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def wait_for_file(path: Path, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    out = proc.communicate()[0]
    raise AssertionError(f"group file never appeared (rc={proc.returncode}):\n{out}")


@pytest.mark.parametrize("launcher", ["openmpi", "mpich"])
def test_two_rank_service_forms_its_group(eng: Any, launcher: str, tmp_path: Path) -> None:
    group = tmp_path / "group.json"
    config = tmp_path / "config.json"
    config.write_text(json.dumps(service_config(group)))
    proc = start(launcher, config)
    try:
        wait_for_file(group, proc)
        members = json.loads(group.read_text())["members"]
        assert len(members) == 2
        assert {m["provider_id"] for m in members} == {1}
        addresses = [m["address"] for m in members]
        c = eng.Client("na+sm")
        queries = [c.query(a) for a in addresses]
        assert [q["bedrock_engine"]["rank"] for q in queries] == [0, 1]
        assert all(q["bedrock_engine"]["size"] == 2 for q in queries)
        assert [[p["name"] for p in q["providers"]] for q in queries] == [
            ["group", "kv", "io", "rank0_only"], ["group", "kv", "io"]]
        assert c.flock_view(addresses[1], 1)["members"] == members
        for rank, address in enumerate(addresses):
            c.put(address, 2, f"key-from-{rank}".encode(), f"value-{rank}".encode())
        for rank, address in enumerate(addresses):
            assert c.get(address, 2, f"key-from-{rank}".encode()) == f"value-{rank}".encode()
            assert c.get(address, 2, f"key-from-{1 - rank}".encode()) is None
        for rank, (address, q) in enumerate(zip(addresses, queries, strict=True)):
            target = tmp_path / f"io-{rank}.bin"
            assert c.abtio_pwrite(address, 3, target.name, b"rank %d" % rank) == 6
            io_tid = {x["name"]: x["os_thread_id"]
                      for x in q["bedrock_engine"]["xstreams"]}["io_xstream"]
            assert c.last_handler["os_thread_id"] == io_tid
            assert target.read_bytes() == b"rank %d" % rank
        for address in addresses:
            c.shutdown(address)
        out = proc.communicate(timeout=60)[0]
        assert proc.returncode == 0, out
        assert out.count("Bedrock daemon now running at") == 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_wrong_mpi_pairing_is_detected(tmp_path: Path) -> None:
    group = tmp_path / "group.json"
    config = tmp_path / "config.json"
    config.write_text(json.dumps(service_config(group)))
    # Force the Open MPI ABI under MPICH's launcher: mpi4py would run two singletons.
    proc = start("mpich", config, {"MPI4PY_MPIABI": "openmpi"})
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode != 0
    assert "MPI reports a world of size 1 but the launcher started 2 processes" in out
    assert not group.exists()
