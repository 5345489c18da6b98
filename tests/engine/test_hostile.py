"""Hostile clients against a live bedrock-engine process, over na+sm and TCP.

The attacks of issue 17: a na+sm client that shrinks the shared segment it passed (the engine
used to die of SIGBUS), a peer of another uid, a client that sends requests and never reads the
responses (47 KB of requests used to make an engine hold 1 GiB), more connections than the
limit, the engine running out of file descriptors (it used to spin at 100% CPU), then 1,000
connect/disconnect cycles. Afterwards a query and a key round trip must still succeed, the
engine's RSS must be back near where it started and no descriptor may be left open.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import Daemon
from .test_fuzz import HEADER, MAGIC, REQUEST

pytestmark = pytest.mark.engine

KV = {"libraries": ["libyokan-bedrock-module.so"],
      "providers": [{"name": "kv", "type": "yokan", "provider_id": 1,
                     "config": {"database": {"type": "map"}}}]}
PROTOCOLS = ["na+sm", "ofi+tcp://127.0.0.1"]
RPC_QUERY, RPC_GET = 2, 31
BIG = 1 << 20  # the largest value a response carries (kMaxPayload)

# native/src/transport_sm_segment.hpp: header, two ring control blocks, two 4 MiB rings.
SEGMENT_MAGIC, SEGMENT_VERSION = 0x4D534542, 2
RING = 4 << 20
DATA_OFFSET = 4096
SEGMENT_SIZE = DATA_OFFSET + 2 * RING
TO_SERVER_HEAD = 64


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def request(rpc: int, payload: bytes = b"", provider: int = 1, rid: int = 7) -> bytes:
    return HEADER.pack(MAGIC, len(payload), rid, REQUEST, provider, rpc, 0, 0, 0, 0) + payload


def get_request(key: bytes) -> bytes:
    return request(RPC_GET, struct.pack("<I", len(key)) + key)


class RawSm:
    """A na+sm client written from the wire format, free to misbehave."""

    def __init__(self, address: str, *, seal: bool = True) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect("\0bedrock-engine/na+sm/" + address.split("://", 1)[1])
        flags = os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING
        self.memfd = os.memfd_create("hostile", flags)
        os.ftruncate(self.memfd, SEGMENT_SIZE)
        if seal:
            fcntl.fcntl(self.memfd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW)
        self.mm = mmap.mmap(self.memfd, SEGMENT_SIZE)
        struct.pack_into("<IIQ", self.mm, 0, SEGMENT_MAGIC, SEGMENT_VERSION, RING)
        self.efd_server = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.efd_client = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.sock.settimeout(10)
        try:  # b"K", or b"" when the engine refused us (closed before or after our handshake)
            socket.send_fds(self.sock, [b"S"], [self.memfd, self.efd_server, self.efd_client])
            self.ack = self.sock.recv(1)
        except (BrokenPipeError, ConnectionResetError):
            self.ack = b""
        self.head = 0

    def write(self, data: bytes) -> None:
        """Appends to the to-server ring (no wrap needed for what the tests send)."""
        assert self.head + len(data) <= RING
        start = DATA_OFFSET + self.head
        self.mm[start:start + len(data)] = data
        self.head += len(data)
        struct.pack_into("<Q", self.mm, TO_SERVER_HEAD, self.head)
        os.eventfd_write(self.efd_server, 1)

    def close(self) -> None:
        self.mm.close()
        for fd in (self.memfd, self.efd_server, self.efd_client):
            os.close(fd)
        self.sock.close()


@pytest.fixture
def engine(bin_dir: Path, tmp_path: Path) -> Any:
    started: list[Daemon] = []

    def start(protocol: str, env: dict[str, str] | None = None,
              prefix: list[str] | None = None) -> Daemon:
        cfg = tmp_path / f"kv-{len(started)}.json"
        cfg.write_text(__import__("json").dumps(KV))
        full_env = {**os.environ, **(env or {})}
        exe = bin_dir / "bedrock-engine"
        args = [protocol, "-c", str(cfg)]
        if prefix:
            exe, args = Path(prefix[0]), [*prefix[1:], str(bin_dir / "bedrock-engine"), *args]
        d = Daemon(exe, args, env=full_env)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


def stop(d: Daemon) -> str:
    """SIGTERM, clean exit; everything the engine logged."""
    d.proc.terminate()
    assert d.wait(timeout=30) == 0, d.output
    return d.output


def round_trip(eng: Any, protocol: str, address: str, tag: str) -> None:
    c = eng.Client(protocol.split(":")[0])
    c.set_timeout_ms(20000)
    assert c.query(address)["bedrock_engine"]["pid"] > 0
    c.put(address, 1, tag.encode(), b"value-" + tag.encode())
    assert c.get(address, 1, tag.encode()) == b"value-" + tag.encode()


def never_reading_client(protocol: str, address: str, requests: bytes) -> Any:
    """Sends requests for 1 MiB values and never reads a response; returns what to close."""
    if protocol == "na+sm":
        raw = RawSm(address)
        assert raw.ack == b"K"
        raw.write(requests)
        return raw
    host, port = address.split("://", 1)[1].rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.settimeout(10)
    with contextlib.suppress(TimeoutError):  # the engine may stop reading: back-pressure
        sock.sendall(requests)
    return sock


def connect_cycles(protocol: str, address: str, n: int) -> None:
    if protocol == "na+sm":
        for i in range(n):
            if i % 2:
                raw = RawSm(address)
                assert raw.ack == b"K"
                raw.close()
            else:  # connect, never hand over a segment
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect("\0bedrock-engine/na+sm/" + address.split("://", 1)[1])
                s.close()
        return
    host, port = address.split("://", 1)[1].rsplit(":", 1)
    for i in range(n):
        with socket.create_connection((host, int(port)), timeout=10) as s:
            if i % 2:
                s.sendall(request(1, provider=0))  # ping, answered
                assert len(s.recv(4096)) >= HEADER.size


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_hostile_clients_leave_the_engine_serving_with_its_memory(
        engine: Any, eng: Any, protocol: str) -> None:
    d = engine(protocol)
    c = eng.Client(protocol.split(":")[0])
    c.set_timeout_ms(20000)
    c.put(d.address, 1, b"big", b"x" * (BIG - 64))
    for _ in range(20):
        assert len(c.get(d.address, 1, b"big")) == BIG - 64
    round_trip(eng, protocol, d.address, "warm")
    rss0, fds0 = rss_kib(d.pid), open_fds(d.pid)

    # 1. Never reading: 2,000 requests for a 1 MiB value (~100 KB sent) would be 2 GiB of
    # responses; the engine stops reading that client instead.
    attackers = [never_reading_client(protocol, d.address, get_request(b"big") * 2000)
                 for _ in range(2)]
    time.sleep(2.0)
    rss_attacked = rss_kib(d.pid)
    round_trip(eng, protocol, d.address, "during")  # others are still served meanwhile
    for a in attackers:
        a.close()
    # Bound per connection: 4 MiB queued + 16 in flight x 1 MiB (+ the na+sm ring it fills).
    assert rss_attacked - rss0 < 2 * 40 * 1024, (rss0, rss_attacked)

    # 2. 1,000 connect/disconnect cycles.
    connect_cycles(protocol, d.address, 1000)

    # 3. Still serving, memory back near the start, no descriptor left behind.
    round_trip(eng, protocol, d.address, "after")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (open_fds(d.pid) > fds0 or
                                           rss_kib(d.pid) - rss0 > 16 * 1024):
        time.sleep(0.2)
    rss1 = rss_kib(d.pid)
    print(f"{protocol}: RSS start {rss0} KiB, under attack {rss_attacked} KiB, after {rss1} KiB; "
          f"fds {fds0} -> {open_fds(d.pid)}")
    assert open_fds(d.pid) <= fds0, (fds0, open_fds(d.pid))
    assert rss1 - rss0 < 16 * 1024, (rss0, rss_attacked, rss1)
    assert d.proc.poll() is None


def test_sm_segment_cannot_be_shrunk_under_the_engine(engine: Any, eng: Any) -> None:
    d = engine("na+sm")
    # The original attack: an unsealed segment, shrunk after the handshake, then a request.
    raw = RawSm(d.address, seal=False)
    assert raw.ack == b"", "the engine accepted a segment its client can shrink"
    raw.close()
    # Sealed as the engine requires: the client itself can no longer shrink or grow it.
    raw = RawSm(d.address)
    assert raw.ack == b"K"
    with pytest.raises(PermissionError):
        os.ftruncate(raw.memfd, 4096)
    with pytest.raises(PermissionError):
        os.ftruncate(raw.memfd, 2 * SEGMENT_SIZE)
    raw.write(request(1, provider=0))  # a ping through the ring still works
    raw.close()
    for _ in range(5):  # 5 of 5 used to crash the engine
        raw = RawSm(d.address, seal=False)
        if raw.ack:
            os.ftruncate(raw.memfd, 4096)
            struct.pack_into("<Q", raw.mm, TO_SERVER_HEAD, 40)
            os.eventfd_write(raw.efd_server, 1)
        raw.close()
    round_trip(eng, "na+sm", d.address, "shrink")
    assert d.proc.poll() is None
    assert "segment is not sealed against resizing" in stop(d)


PEER = f"""
import fcntl, mmap, os, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect("\\0bedrock-engine/na+sm/" + sys.argv[1])
fd = os.memfd_create("peer", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
os.ftruncate(fd, {SEGMENT_SIZE})
fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW)
m = mmap.mmap(fd, {SEGMENT_SIZE})
struct.pack_into("<IIQ", m, 0, {SEGMENT_MAGIC}, {SEGMENT_VERSION}, {RING})
e1, e2 = os.eventfd(0), os.eventfd(0)
s.settimeout(10)
try:
    socket.send_fds(s, [b"S"], [fd, e1, e2])
    print(repr(s.recv(1)))
except (BrokenPipeError, ConnectionResetError):
    print(repr(b""))
"""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to run a peer as another user")
def test_sm_peers_of_another_user_are_refused_unless_allowed(engine: Any) -> None:
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
              sys.executable, "-I", "-c", PEER]
    d = engine("na+sm")
    out = subprocess.run([*nobody, d.address.split("://")[1]], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "b''"
    allowed = engine("na+sm", env={"BEDROCK_ENGINE_SM_ALLOWED_UIDS": "65534"})
    out = subprocess.run([*nobody, allowed.address.split("://")[1]], capture_output=True,
                         text=True, timeout=60, check=True)
    assert out.stdout.strip() == "b'K'"
    assert "peer uid 65534" in stop(d)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_connection_limit_refuses_extra_connections(engine: Any, eng: Any,
                                                    protocol: str) -> None:
    d = engine(protocol, env={"BEDROCK_ENGINE_MAX_CONNECTIONS": "4"})
    held = []
    for _ in range(4):
        if protocol == "na+sm":
            raw = RawSm(d.address)
            assert raw.ack == b"K"
            held.append(raw)
        else:
            host, port = d.address.split("://", 1)[1].rsplit(":", 1)
            held.append(socket.create_connection((host, int(port)), timeout=10))
    time.sleep(0.3)  # accepted
    if protocol == "na+sm":
        assert RawSm(d.address).ack == b""
    else:
        host, port = d.address.split("://", 1)[1].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as extra:
            extra.settimeout(10)
            assert extra.recv(1) == b""  # closed by the engine
    for h in held:
        h.close()
    time.sleep(0.3)
    round_trip(eng, protocol, d.address, "limit")


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_out_of_descriptors_does_not_spin(engine: Any, eng: Any, protocol: str) -> None:
    d = engine(protocol, prefix=[shutil.which("prlimit") or "prlimit", "--nofile=40:40"])
    host_port = d.address.split("://", 1)[1]
    held = []
    for _ in range(60):  # more than the engine can accept; the rest waits in the backlog
        if protocol == "na+sm":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect("\0bedrock-engine/na+sm/" + host_port)
        else:
            host, port = host_port.rsplit(":", 1)
            s = socket.create_connection((host, int(port)), timeout=10)
        held.append(s)
    time.sleep(0.5)
    cpu0 = cpu_seconds(d.pid)
    time.sleep(2.0)
    busy = cpu_seconds(d.pid) - cpu0
    assert busy < 0.3, f"engine used {busy:.2f} s of CPU in 2 s while out of descriptors"
    for s in held:
        s.close()
    time.sleep(0.5)
    round_trip(eng, protocol, d.address, "emfile")
    assert "cannot accept connections: Too many open files" in stop(d)


SKIP_KIND = 0x5350  # transport_sm_segment.hpp: a ring-internal record, never on the wire


def test_sm_rings_wrap_and_refuse_forged_skip_records(engine: Any, eng: Any) -> None:
    d = engine("na+sm")
    c = eng.Client("na+sm")
    c.set_timeout_ms(20000)
    rng = random.Random(5)
    for i in range(60):  # ~25 MB each way: several laps of both 4 MiB rings, odd offsets
        value = bytes([i]) * rng.choice([0, 1, 39, 4096, 65_536, 300_000, BIG - 64])
        c.put(d.address, 1, b"k%d" % i, value)
        assert c.get(d.address, 1, b"k%d" % i) == value
    forged = [
        HEADER.pack(MAGIC, RING - 40, 1, SKIP_KIND, 0, 0, 0, 0, 0, 0),  # at a lap start
        request(1, provider=0) + HEADER.pack(MAGIC, 100, 1, SKIP_KIND, 0, 0, 0, 0, 0, 0),
    ]
    for data in forged:
        raw = RawSm(d.address)
        assert raw.ack == b"K"
        raw.write(data)
        assert raw.sock.recv(1) == b""  # the engine closed this connection only
        raw.close()
    round_trip(eng, "na+sm", d.address, "laps")
