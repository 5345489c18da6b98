"""Where a TCP engine listens: only the address or interface its transport names.

FI_TCP_IFACE is honoured as libfabric's tcp provider does (the site profiles set it; `local`
sets `lo`, so `bedrock-deploy up` engines listen on and advertise 127.0.0.1), an explicit host
in the address wins, and without either the engine listens on the one address it advertises,
never on every interface.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.engine


def listening_ips(port: int) -> list[str]:
    """Local IPv4 addresses with a listening socket on this port (/proc/net/tcp)."""
    out = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        ip_hex, port_hex = fields[1].split(":")
        if int(port_hex, 16) == port and fields[3] == "0A":
            out.append(socket.inet_ntoa(bytes.fromhex(ip_hex)[::-1]))
    return out


def host_port(address: str) -> tuple[str, int]:
    host, port = address.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)


def ipv4_interfaces() -> dict[str, str]:
    """name -> first IPv4 address, from `ip -4 -o addr`."""
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    found: dict[str, str] = {}
    for line in out.splitlines():
        parts = line.split()
        found.setdefault(parts[1], parts[3].split("/")[0])
    return found


def start(daemon: Any, address: str, iface: str | None) -> Any:
    env = {k: v for k, v in os.environ.items() if k != "FI_TCP_IFACE"}
    if iface is not None:
        env["FI_TCP_IFACE"] = iface
    return daemon(address, None, env=env)


def test_fi_tcp_iface_lo_listens_and_advertises_loopback_only(daemon: Any, eng: Any) -> None:
    d = start(daemon, "ofi+tcp", "lo")
    host, port = host_port(d.address)
    assert host == "127.0.0.1"
    assert listening_ips(port) == ["127.0.0.1"]
    assert eng.Client("ofi+tcp").query(d.address)["bedrock_engine"]["pid"] == d.pid


def test_without_a_host_the_engine_listens_only_where_it_advertises(daemon: Any) -> None:
    d = start(daemon, "ofi+tcp://", None)
    host, port = host_port(d.address)
    assert listening_ips(port) == [host]
    assert host != "0.0.0.0"


def test_an_explicit_host_wins_over_fi_tcp_iface(daemon: Any) -> None:
    others = {n: ip for n, ip in ipv4_interfaces().items() if n != "lo"}
    iface = next(iter(others), "lo")
    d = start(daemon, "ofi+tcp://127.0.0.1", iface)
    host, port = host_port(d.address)
    assert (host, listening_ips(port)) == ("127.0.0.1", ["127.0.0.1"])


def test_interface_name_in_the_address(daemon: Any) -> None:
    d = start(daemon, "ofi+tcp://lo:0", None)
    host, port = host_port(d.address)
    assert (host, listening_ips(port)) == ("127.0.0.1", ["127.0.0.1"])


def test_unknown_fi_tcp_iface_is_an_error(bin_dir: Path) -> None:
    env = {**os.environ, "FI_TCP_IFACE": "nosuchif0"}
    out = subprocess.run([str(bin_dir / "bedrock-engine"), "ofi+tcp"], capture_output=True,
                         text=True, timeout=60, env=env)
    assert out.returncode == 1
    assert 'FI_TCP_IFACE="nosuchif0" names no interface with an IPv4 address' in out.stderr


@pytest.mark.parametrize(("name", "value"), [("BEDROCK_ENGINE_MAX_CONNECTIONS", "0"),
                                             ("BEDROCK_ENGINE_MAX_INFLIGHT", "many"),
                                             ("BEDROCK_ENGINE_SM_ALLOWED_UIDS", "root")])
def test_malformed_limits_are_errors(bin_dir: Path, name: str, value: str) -> None:
    out = subprocess.run([str(bin_dir / "bedrock-engine"), "na+sm"], capture_output=True,
                         text=True, timeout=60, env={**os.environ, name: value})
    assert out.returncode == 1
    assert f'{name}="{value}"' in out.stderr
