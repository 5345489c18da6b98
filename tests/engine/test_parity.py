"""Behaviour of the real stack the engine reproduces beyond the recorded corpus, and the
engine's own limits (native/README.md): Argobots' default pinning and its switch, the
shutdown tool's -i, -v trace, rocksdb, abt_io's urings, Flock's MPI singleton and join checks,
and the test-only RPCs (off unless enabled; file I/O confined to one directory)."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import enable_test_rpcs, thread_affinity, xstream_tids

pytestmark = pytest.mark.engine

LIBS = ["libflock-bedrock-module.so", "libyokan-bedrock-module.so", "libabt-io-bedrock-module.so"]
HEADER = struct.Struct("<IIQHHIiIiI")  # native/src/wire.hpp FrameHeader (40 bytes)
MAGIC, REQUEST = 0x314B5242, 1
RPC_FLOCK_JOIN = 21
TWO_UNPINNED = {"margo": {"argobots": {
    "pools": [{"name": "a"}, {"name": "b"}],
    "xstreams": [{"name": "xa", "scheduler": {"pools": ["a"]}},
                 {"name": "xb", "scheduler": {"pools": ["b"]}}]}}}


def cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def test_unpinned_xstreams_get_argobots_default_placement(daemon: Any, bin_dir: Path) -> None:
    d = daemon("na+sm", TWO_UNPINNED)
    out = subprocess.run([bin_dir / "bedrock-engine-query", "na+sm", "-a", d.address],
                         capture_output=True, text=True, timeout=30, check=True)
    running = json.loads(out.stdout)[d.address]
    tids, threads = xstream_tids(running), thread_affinity(d.pid)
    n = len(cpus())
    expected = {"__primary__": cpus()[0], "xa": cpus()[1 % n], "xb": cpus()[2 % n]}
    for x in running["margo"]["argobots"]["xstreams"]:
        cpu = expected[x["name"]]
        assert (x["cpubind"], x["affinity"]) == (cpu, [cpu])  # as Margo reports it
        assert threads[tids[x["name"]]] == str(cpu)  # where the kernel runs it


def test_abt_set_affinity_false_turns_default_pinning_off(daemon: Any, bin_dir: Path) -> None:
    d = daemon("na+sm", TWO_UNPINNED, env={**os.environ, "ABT_SET_AFFINITY": "false"})
    out = subprocess.run([bin_dir / "bedrock-engine-query", "na+sm", "-a", d.address],
                         capture_output=True, text=True, timeout=30, check=True)
    running = json.loads(out.stdout)[d.address]
    for x in running["margo"]["argobots"]["xstreams"]:
        assert (x["cpubind"], x["affinity"]) == (cpus()[0], cpus())
    assert "default pinning off (ABT_SET_AFFINITY=false)" in d.output


def test_cpu_argobots_cannot_use_is_ignored_with_a_warning(eng: Any) -> None:
    s = eng.Server("na+sm", {"margo": {"argobots": {"pools": [{"name": "p"}], "xstreams": [
        {"name": "x", "cpubind": 4096, "scheduler": {"pools": ["p"]}}]}}})
    try:
        x = s.config["margo"]["argobots"]["xstreams"][0]
        cpu = cpus()[1 % len(cpus())]
        assert (x["cpubind"], x["affinity"]) == (cpu, [cpu])  # ES 1's default placement
        assert any("cpubind 4096 could not be applied" in w for w in s.warnings)
    finally:
        s.finalize()


def test_shutdown_with_a_bedrock_provider_id(daemon: Any, bin_dir: Path) -> None:
    d = daemon("na+sm", {"bedrock": {"provider_id": 5}})
    wrong = subprocess.run([bin_dir / "bedrock-engine-shutdown", "na+sm", "-a", d.address],
                           capture_output=True, text=True, timeout=30)
    assert wrong.returncode == 1 and "No provider with id 0" in wrong.stderr
    out = subprocess.run([bin_dir / "bedrock-engine-shutdown", "na+sm", "-a", d.address, "-i",
                          "5"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert d.wait() == 0
    bad = subprocess.run([bin_dir / "bedrock-engine-shutdown", "na+sm", "-a", d.address, "-i",
                          "70000"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "provider id (0..65535)" in bad.stderr


def test_bedrock_provider_id_wraps_like_an_unsigned_16_bit_value(eng: Any) -> None:
    cfg, _ = eng.load_config({"bedrock": {"provider_id": 70000}})
    assert cfg["bedrock"]["provider_id"] == 70000 - 65536


def test_provider_id_65535_means_assign_one(eng: Any) -> None:
    cfg, _ = eng.load_config({"libraries": LIBS, "providers": [
        {"name": "a", "type": "yokan", "provider_id": 65535},
        {"name": "b", "type": "yokan", "provider_id": 3}]})
    assert [p["provider_id"] for p in cfg["providers"]] == [1, 3]
    assert cfg["providers"][0]["config"] == {"buffer_cache": {"type": "lru"}}  # no database


def test_verbose_trace_logs_bedrock_steps(bin_dir: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"libraries": LIBS, "providers": [
        {"name": "kv", "type": "yokan", "dependencies": {"pool": "__primary__"}}]}))
    for level, expected in (("trace", True), ("info", False)):
        proc = subprocess.Popen([bin_dir / "bedrock-engine", "na+sm", "-c", str(cfg), "-v",
                                 level], stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stderr is not None
            lines = []
            for line in proc.stderr:
                lines.append(line)
                if "Bedrock daemon now running" in line:
                    break
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        text = "".join(lines)
        assert ("[trace] Parsing JSON configuration" in text) is expected
        assert ("[trace] Registered provider kv of type yokan with provider id 1" in text) is \
            expected


def test_rocksdb_database_persists(eng: Any, tmp_path: Path) -> None:
    cfg = {"libraries": LIBS, "providers": [{"name": "db", "type": "yokan", "provider_id": 1,
               "config": {"database": {"type": "rocksdb",
                                       "config": {"path": str(tmp_path / "rocks")}}}}]}
    s = eng.Server("na+sm", cfg)
    try:
        c = eng.Client("na+sm")
        c.put(s.address, 1, b"mofka", b"master")
        reported = s.config["providers"][0]["config"]["database"]
        assert reported["type"] == "rocksdb" and reported["config"]["create_if_missing"] is True
        assert reported["config"]["write_buffer_size"] == 64 << 20  # Yokan's default, reported
    finally:
        s.finalize()
    s = eng.Server("na+sm", cfg)
    try:
        assert eng.Client("na+sm").get(s.address, 1, b"mofka") == b"master"
    finally:
        s.finalize()
    (tmp_path / "file").write_text("x")
    cfg["providers"][0]["config"]["database"]["config"]["path"] = str(tmp_path / "file" / "db")
    with pytest.raises(eng.ConfigError, match="Invalid configuration"):
        eng.Server("na+sm", cfg)


def test_abt_io_urings_start_placed_threads(eng: Any) -> None:
    s = eng.Server("na+sm", {"libraries": LIBS, "providers": [
        {"name": "io", "type": "abt_io", "config": {"num_urings": 2},
         "dependencies": {"pool": "__primary__"}}]})
    try:
        threads = s.config["bedrock_engine"]["threads"]
        n = len(cpus())
        # after __primary__ (ES 0), the rings are ES 1 and 2 for Argobots' default placement
        assert [t["cpus"] for t in threads] == [[cpus()[1 % n]], [cpus()[2 % n]]]
        assert s.config["providers"][0]["config"]["num_urings"] == 2
    finally:
        s.finalize()


def test_flock_mpi_bootstrap_in_a_singleton_and_without_mpi(eng: Any, tmp_path: Path) -> None:
    group = tmp_path / "g.json"
    cfg = {"libraries": LIBS, "providers": [{"name": "g", "type": "flock", "provider_id": 1,
           "config": {"bootstrap": "mpi", "group": {"type": "static"}, "file": str(group),
                      "mpi_ranks": [0]}}]}
    s = eng.Server("na+sm", cfg)  # a world of one, like an MPI singleton
    try:
        assert json.loads(group.read_text())["members"] == [
            {"address": s.address, "provider_id": 1}]
        assert "mpi_ranks" not in s.config["providers"][0]["config"]
    finally:
        s.finalize()
    cfg["providers"][0]["config"]["mpi_ranks"] = [0, 1]
    with pytest.raises(eng.ConfigError, match='Invalid rank in "mpi_ranks" list'):
        eng.Server("na+sm", cfg)
    with pytest.raises(eng.ConfigError, match="start it with bedrock-engine-mpi"):
        eng.Server("na+sm", cfg, rank=0, size=2)


def _tcp_call(address: str, provider: int, rpc: int, payload: bytes) -> tuple[int, bytes]:
    host, port = address.split("://", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(HEADER.pack(MAGIC, len(payload), 9, REQUEST, provider, rpc, 0, 0, 0, 0)
                     + payload)
        data = b""
        while len(data) < 40:
            data += sock.recv(4096)
        length, status = HEADER.unpack(data[:40])[1], HEADER.unpack(data[:40])[6]
        while len(data) < 40 + length:
            data += sock.recv(65536)
        return status, data[40:40 + length]


def _join(address: str, member: str, provider_id: int = 1) -> tuple[int, bytes]:
    encoded = member.encode()
    payload = struct.pack("<I", len(encoded)) + encoded + struct.pack("<I", provider_id)
    return _tcp_call(address, 1, RPC_FLOCK_JOIN, payload)


def test_flock_join_validates_what_it_adds(eng: Any, tmp_path: Path) -> None:
    group = tmp_path / "g.json"
    s = eng.Server("ofi+tcp://127.0.0.1", {
        "libraries": LIBS, "bedrock_engine": {"flock_max_members": 3},
        "providers": [{"name": "g", "type": "flock", "provider_id": 1, "config": {
            "bootstrap": "self", "group": {"type": "centralized"}, "file": str(group)}}]})
    try:
        for bad in ("", "not an address", "na+sm://1234-0", "ofi+tcp://", "cxi://0:1",
                    "ofi+tcp://127.0.0.1:1" + "0" * 300):
            status, message = _join(s.address, bad)
            assert status == 5, (bad, message)  # bad request, nothing added
        assert _join(s.address, "ofi+tcp://127.0.0.1:7001")[0] == 0
        assert _join(s.address, "ofi+tcp://127.0.0.1:7002")[0] == 0
        status, message = _join(s.address, "ofi+tcp://127.0.0.1:7003")
        assert status == 1 and b"flock_max_members" in message
        members = [m["address"] for m in json.loads(group.read_text())["members"]]
        assert members == [s.address, "ofi+tcp://127.0.0.1:7001", "ofi+tcp://127.0.0.1:7002"]
    finally:
        s.finalize()


def test_test_rpcs_are_off_by_default(eng: Any, tmp_path: Path) -> None:
    s = eng.Server("na+sm", {"libraries": LIBS, "providers": [
        {"name": "io", "type": "abt_io", "provider_id": 1,
         "dependencies": {"pool": "__primary__"}}]})
    try:
        c = eng.Client("na+sm")
        with pytest.raises(eng.RpcError, match="forward_ping is a test RPC and is off"):
            c.forward_ping(s.address, s.address)
        with pytest.raises(eng.RpcError, match="abt_io file RPCs are test-only and off"):
            c.abtio_pwrite(s.address, 1, "x.bin", b"data")
        assert not (tmp_path / "x.bin").exists()
        assert s.config["bedrock_engine"]["settings"]["test_rpcs"] == []
    finally:
        s.finalize()


def test_abt_io_files_stay_beneath_their_directory(eng: Any, tmp_path: Path) -> None:
    root = tmp_path / "io"
    root.mkdir()
    (root / "sub").mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    (root / "link").symlink_to(secret)
    s = eng.Server("na+sm", {"libraries": LIBS, "bedrock_engine": enable_test_rpcs(root),
                             "providers": [{"name": "io", "type": "abt_io", "provider_id": 1,
                                            "dependencies": {"pool": "__primary__"}}]})
    try:
        c = eng.Client("na+sm")
        assert c.abtio_pwrite(s.address, 1, "sub/ok.bin", b"fine") == 4
        assert c.abtio_pread(s.address, 1, "sub/ok.bin", 4) == b"fine"
        for escape in (str(secret), "../secret.txt", "sub/../../secret.txt", "link",
                       "/proc/self/environ"):
            with pytest.raises(eng.RpcError):
                c.abtio_pread(s.address, 1, escape, 100)
            with pytest.raises(eng.RpcError):
                c.abtio_pwrite(s.address, 1, escape, b"overwritten")
        assert secret.read_text() == "do not read"
    finally:
        s.finalize()
