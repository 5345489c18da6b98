"""Hostile input: random, truncated, oversized frames at a live engine; it keeps serving."""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import time
from typing import Any

import pytest

HEADER = struct.Struct("<IIQHHIiIiI")  # native/src/wire.hpp FrameHeader (40 bytes)
MAGIC = 0x314B5242
REQUEST = 1
KV = {"libraries": ["libyokan-bedrock-module.so"],
      "providers": [{"name": "kv", "type": "yokan", "provider_id": 1,
                     "config": {"database": {"type": "map"}}}]}

pytestmark = pytest.mark.engine


def frame(length: int, payload: bytes = b"", *, magic: int = MAGIC, kind: int = REQUEST,
          provider: int = 1, rpc: int = 30) -> bytes:
    return HEADER.pack(magic, length, 7, kind, provider, rpc, 0, 0, 0, 0) + payload


def hostile_inputs(rng: random.Random) -> list[bytes]:
    inputs = [
        b"",
        b"\x00",
        frame(0)[:20],                                   # truncated header
        frame(1000, b"abc"),                             # truncated payload, then close
        frame(0xFFFFFFFF),                               # oversized length
        frame((1 << 20) + 1, b"x" * 100),                # just above the payload limit
        frame(0, magic=0xDEADBEEF),                      # bad magic
        frame(0, kind=2),                                # a response sent to the server
        frame(0, kind=77),                               # unknown kind
        frame(4, b"\xff\xff\xff\xff"),                   # yokan put: field length overflow
        frame(3, b"\x01\x00\x00"),                       # truncated u32
        frame(0, provider=999),                          # unknown provider (answered)
        frame(0, rpc=12345),                             # unknown rpc of a provider
    ]
    for _ in range(40):
        inputs.append(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200))))
    for _ in range(20):
        n = rng.randint(0, 64)
        inputs.append(frame(n, bytes(rng.getrandbits(8) for _ in range(rng.randint(0, n)))))
    return inputs


def tcp_host_port(address: str) -> tuple[str, int]:
    host, port = address.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)


@pytest.fixture
def kv_client_check(eng: Any) -> Any:
    def check(protocol: str, address: str, i: int) -> None:
        c = eng.Client(protocol)
        c.set_timeout_ms(10000)
        c.put(address, 1, f"key{i}".encode(), b"v")
        assert c.get(address, 1, f"key{i}".encode()) == b"v"
    return check


def test_tcp_engine_survives_hostile_frames(eng: Any, kv_client_check: Any) -> None:
    s = eng.Server("ofi+tcp://127.0.0.1", KV)
    try:
        rng = random.Random(1234)
        host, port = tcp_host_port(s.address)
        for i, data in enumerate(hostile_inputs(rng)):
            with socket.create_connection((host, port), timeout=5) as sock:
                sock.sendall(data)
                if i % 3 == 0:
                    sock.settimeout(0.2)
                    with contextlib.suppress(TimeoutError):
                        sock.recv(4096)  # an answer or a close; either way no crash
            if i % 10 == 0:
                kv_client_check("ofi+tcp", s.address, i)
        # A valid request still works on a connection after an answered bad one.
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(frame(0, provider=999))
            reply = sock.recv(4096)
            assert HEADER.unpack(reply[:40])[6] == 2  # status_no_provider
            sock.sendall(frame(4, b"\xff\xff\xff\xff"))
            reply = sock.recv(4096)
            assert HEADER.unpack(reply[:40])[6] == 5  # status_bad_request
        kv_client_check("ofi+tcp", s.address, 999)
    finally:
        s.finalize()


def test_tcp_engine_survives_many_half_open_connections(eng: Any, kv_client_check: Any) -> None:
    s = eng.Server("ofi+tcp://127.0.0.1", KV)
    socks = []
    try:
        host, port = tcp_host_port(s.address)
        for _ in range(50):
            sock = socket.create_connection((host, port), timeout=5)
            sock.sendall(frame(100, b"partial"))
            socks.append(sock)
        kv_client_check("ofi+tcp", s.address, 0)
    finally:
        for sock in socks:
            sock.close()
        s.finalize()


def test_sm_engine_survives_hostile_ring_contents(eng: Any, kv_client_check: Any) -> None:
    s = eng.Server("na+sm", KV)
    try:
        rng = random.Random(99)
        for i, data in enumerate(hostile_inputs(rng)):
            if not data:
                continue
            c = eng.Client("na+sm")
            c.send_raw(s.address, data)
            if i % 10 == 0:
                time.sleep(0.01)
                kv_client_check("na+sm", s.address, i)
        kv_client_check("na+sm", s.address, 1000)
    finally:
        s.finalize()
