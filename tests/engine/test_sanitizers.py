"""A debug build of native/ with AddressSanitizer + UBSan runs a live engine session clean.

Builds native/ with -DBEDROCK_ENGINE_SANITIZE=ON into build/engine-sanitize (cached between
runs, like the main CMake build), then drives the sanitized bedrock-engine over na+sm and TCP:
query/shutdown with the sanitized tools, key-value and abt_io traffic, hostile frames, SIGTERM.
Any sanitizer report fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import Daemon, generator_like_config
from .test_fuzz import frame
from .test_hostile import RawSm, get_request, never_reading_client

pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parents[2]
NATIVE = REPO / "native"
SAN_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=86",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    "LSAN_OPTIONS": "exitcode=86",
}
REPORTS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")


@pytest.fixture(scope="module")
def san_bin() -> Path:
    if not (NATIVE / "CMakeLists.txt").is_file():
        pytest.skip("native/ sources not available")
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake not installed")
    build = REPO / "build" / "engine-sanitize"
    build.mkdir(parents=True, exist_ok=True)
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    subprocess.run([cmake, "-S", str(NATIVE), "-B", str(build), *gen,
                    "-DCMAKE_BUILD_TYPE=Debug", "-DBEDROCK_ENGINE_SANITIZE=ON",
                    "-DBEDROCK_ENGINE_PYTHON=OFF"], check=True, capture_output=True, text=True)
    subprocess.run([cmake, "--build", str(build), "-j", "2"], check=True, capture_output=True,
                   text=True)
    return build


def san_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(SAN_ENV)
    return env


def run_tool(tool: Path, *args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([str(tool), *args], capture_output=True, text=True, timeout=120,
                         env=san_env())
    assert not any(r in out.stderr for r in REPORTS), out.stderr
    return out


@pytest.mark.parametrize("protocol", ["na+sm", "ofi+tcp://127.0.0.1"])
def test_sanitized_engine_session_is_clean(san_bin: Path, eng: Any, tmp_path: Path,
                                           protocol: str) -> None:
    cfg = generator_like_config(io_directory=tmp_path)
    cfg["libraries"] = ["libflock-bedrock-module.so", "libyokan-bedrock-module.so",
                        "libabt-io-bedrock-module.so"]
    group = tmp_path / "group.json"
    cfg["providers"].append({"name": "grp", "type": "flock", "provider_id": 3,
                             "config": {"bootstrap": "self", "file": str(group),
                                        "group": {"type": "static"}}})
    for x in cfg["margo"]["argobots"]["xstreams"]:  # keep pinning legal on any CPU set
        x.pop("cpubind", None)
        x.pop("affinity", None)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    d = Daemon(san_bin / "bedrock-engine", [protocol, "-c", str(path), "-v", "debug"],
               env=san_env(), timeout=60)
    try:
        short = protocol.split(":")[0]
        out = run_tool(san_bin / "bedrock-engine-query", short, "-f", str(group))
        assert out.returncode == 0
        assert json.loads(out.stdout)[d.address]["bedrock_engine"]["pid"] == d.pid
        c = eng.Client(short)
        for i in range(200):
            c.put(d.address, 1, b"k%d" % i, b"v" * (i * 37))
        assert c.get(d.address, 1, b"k199") == b"v" * (199 * 37)
        assert len(c.list(d.address, 1, b"k", 1000)) == 200
        assert c.abtio_pwrite(d.address, 2, "io.bin", b"sanitized") == 9
        assert c.abtio_pread(d.address, 2, "io.bin", 9) == b"sanitized"
        assert (tmp_path / "io.bin").read_bytes() == b"sanitized"
        hostile = [frame(0xFFFFFFFF), frame(1000, b"abc"), frame(4, b"\xff\xff\xff\xff"),
                   frame(0, kind=2), b"\x01\x02\x03", frame(0, provider=999)]
        for data in hostile:
            if short == "na+sm":
                eng.Client("na+sm").send_raw(d.address, data)
            else:
                host, port = d.address.split("://")[1].rsplit(":", 1)
                with socket.create_connection((host, int(port)), timeout=5) as sock:
                    sock.sendall(data)
        # The attacks of test_hostile.py: an unsealed segment, clients that never read.
        c.put(d.address, 1, b"big", b"x" * 200_000)
        if short == "na+sm":
            assert RawSm(d.address, seal=False).ack == b""
        stalled = [never_reading_client(short, d.address, get_request(b"big") * 300)
                   for _ in range(2)]
        assert c.get(d.address, 1, b"k1") == b"v" * 37
        for s in stalled:
            s.close()
        assert c.get(d.address, 1, b"k1") == b"v" * 37
        out = run_tool(san_bin / "bedrock-engine-shutdown", short, "-a", d.address)
        assert out.returncode == 0
        assert d.wait(timeout=60) == 0, d.output
    finally:
        d.stop()
    assert not any(r in d.output for r in REPORTS), d.output


def test_sanitized_engine_sigterm_and_bad_config(san_bin: Path, tmp_path: Path) -> None:
    d = Daemon(san_bin / "bedrock-engine", ["na+sm"], env=san_env(), timeout=60)
    os.kill(d.pid, signal.SIGTERM)
    assert d.wait(timeout=60) == 0, d.output
    assert not any(r in d.output for r in REPORTS), d.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"margo": {"argobots": {"pools": [{"name": "p", "kind": "nope"}]}}}')
    out = subprocess.run([str(san_bin / "bedrock-engine"), "na+sm", "-c", str(bad)],
                         capture_output=True, text=True, timeout=60, env=san_env())
    assert out.returncode == 1
    assert 'Invalid enum value for pool kind ("nope")' in out.stderr
    assert not any(r in out.stderr for r in REPORTS), out.stderr
