"""Live engines: provider rules, pinning, handler threads, query/shutdown, CLI, --info."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    enable_test_rpcs,
    generator_like_config,
    needs_cpus,
    thread_affinity,
    xstream_tids,
)

pytestmark = pytest.mark.engine

LIBS = ["libflock-bedrock-module.so", "libyokan-bedrock-module.so", "libabt-io-bedrock-module.so"]


def with_providers(*providers: dict[str, Any]) -> dict[str, Any]:
    return {"libraries": LIBS, "providers": list(providers)}


PROVIDER_ERRORS = [
    ("unknown-type", with_providers({"name": "x", "type": "nosuchtype"}),
     'Could not find registration function for module "nosuchtype"', "providers[0].type"),
    ("library-not-loaded", {"libraries": [], "providers": [{"name": "kv", "type": "yokan"}]},
     'Could not find registration function for module "yokan"', "providers[0].type"),
    ("dup-name", with_providers({"name": "kv", "type": "yokan"}, {"name": "kv", "type": "yokan"}),
     'Name "kv" already used by another provider', "providers[1].name"),
    ("dup-id", with_providers({"name": "a", "type": "yokan", "provider_id": 3},
                              {"name": "b", "type": "yokan", "provider_id": 3}),
     "Another provider already uses provider ID 3", "providers[1].provider_id"),
    ("bedrock-id", with_providers({"name": "a", "type": "yokan", "provider_id": 0}),
     "Bedrock already uses provider ID 0", "providers[0].provider_id"),
    ("abt-io-no-pool", with_providers({"name": "io", "type": "abt_io"}),
     'Missing dependency "pool" of type "pool" in provider configuration',
     "providers[0].dependencies"),
    ("dep-pool-name", with_providers({"name": "kv", "type": "yokan",
                                      "dependencies": {"pool": "no_such_pool"}}),
     'While resolving dependency "pool" (type "pool"): Could not find pool with name '
     '"no_such_pool"', "providers[0].dependencies.pool"),
    ("dep-pool-index", with_providers({"name": "kv", "type": "yokan",
                                       "dependencies": {"pool": 7}}),
     'While resolving dependency "pool" (type "pool"): Could not find pool at index 7',
     "providers[0].dependencies.pool"),
    ("dep-provider", with_providers({"name": "kv", "type": "yokan",
                                     "dependencies": {"remi_sender": "later"}}),
     'While resolving dependency "remi_sender" (type "remi_sender"): Could not find provider '
     'with spec "later"', "providers[0].dependencies.remi_sender"),
    ("dep-provider-local", with_providers({"name": "kv", "type": "yokan",
                                           "dependencies": {"remi_sender": "nope@local"}}),
     'Could not find provider with spec "nope"', "providers[0].dependencies.remi_sender"),
    ("dep-wrong-type", with_providers({"name": "kv", "type": "yokan", "provider_id": 1},
                                      {"name": "kv2", "type": "yokan",
                                       "dependencies": {"remi_sender": "kv@local"}}),
     "Invalid type remi_sender for provider handle to provider of type yokan",
     "providers[1].dependencies.remi_sender"),
    ("dep-type-id", with_providers({"name": "kv", "type": "yokan", "provider_id": 1},
                                   {"name": "kv2", "type": "yokan",
                                    "dependencies": {"remi_sender": "yokan:1@local"}}),
     'Invalid provider type in "yokan:1@local" (expected remi_sender)',
     "providers[1].dependencies.remi_sender"),
    ("dep-remote", with_providers({"name": "kv", "type": "yokan",
                                   "dependencies": {"remi_sender": "remi:1@na+sm://1-0"}}),
     "Invalid provider type", "providers[0].dependencies.remi_sender"),
    ("dep-remote-name", with_providers({"name": "kv", "type": "yokan",
                                        "dependencies": {"remi_sender": "x@na+sm://1-0"}}),
     "does not resolve provider dependencies on other processes",
     "providers[0].dependencies.remi_sender"),
    ("yokan-backend-unknown", with_providers({"name": "kv", "type": "yokan",
                                              "config": {"database": {"type": "nope"}}}),
     'While creating provider "kv" of type "yokan" (ModuleManager::createComponent): Invalid '
     "configuration", "providers[0].config"),
    ("yokan-backend-not-built-in", with_providers({"name": "kv", "type": "yokan",
                                                   "config": {"database": {"type": "lmdb"}}}),
     'yokan database type "lmdb" is not implemented by bedrock-engine', "providers[0].config"),
    ("yokan-rocksdb-no-path", with_providers({"name": "kv", "type": "yokan",
                                              "config": {"database": {"type": "rocksdb"}}}),
     "Invalid configuration", "providers[0].config"),
    ("flock-no-bootstrap", with_providers({"name": "g", "type": "flock", "config": {}}),
     '[flock] "bootstrap" field not found in provider configuration', "providers[0].config"),
    ("flock-no-group", with_providers({"name": "g", "type": "flock",
                                       "config": {"bootstrap": "self"}}),
     "[flock] Could not register provider (flock_provider_register returned 6)",
     "providers[0].config"),
    ("flock-swim", with_providers({"name": "g", "type": "flock", "config": {
        "bootstrap": "self", "group": {"type": "swim"}}}),
     'group backend "swim" is not implemented by bedrock-engine', "providers[0].config"),
    ("flock-join-static", with_providers({"name": "g", "type": "flock", "config": {
        "bootstrap": "join", "file": "/nonexistent/group.json", "group": {"type": "static"}}}),
     "[flock] Failed to initialized group with flock_group_view_init_from_file",
     "providers[0].config"),
    ("mofka-not-built-in", {"libraries": ["libyokan-bedrock-module.so",
                                          "libmofka-bedrock-module.so"],
                            "providers": [{"name": "db", "type": "yokan"},
                                          {"name": "m", "type": "mofka",
                                           "dependencies": {"master_database": "db"}}]},
     'bedrock-engine does not implement provider type "mofka"', "providers[1].type"),
    ("warabi-target-not-built-in", {"libraries": ["libwarabi-bedrock-module.so"],
                                    "providers": [{"name": "w", "type": "warabi", "config": {
                                        "target": {"type": "pmem"}}}]},
     'warabi target type "pmem" is not available in bedrock-engine', "providers[0].config"),
]


@pytest.mark.parametrize(("config", "message", "path"),
                         [pytest.param(c, m, p, id=i) for i, c, m, p in PROVIDER_ERRORS])
def test_server_rejects_with_bedrock_wording(eng: Any, config: dict[str, Any], message: str,
                                             path: str) -> None:
    with pytest.raises(eng.ConfigError) as err:
        eng.Server("na+sm", config)
    assert message in str(err.value)
    assert str(err.value).endswith(f'(in "{path}")')


def test_provider_ids_are_auto_assigned_lowest_free(eng: Any) -> None:
    s = eng.Server("na+sm", with_providers({"name": "a", "type": "yokan", "provider_id": 1},
                                           {"name": "b", "type": "yokan"},
                                           {"name": "c", "type": "yokan"}))
    try:
        assert [(p["name"], p["provider_id"]) for p in s.config["providers"]] == [
            ("a", 1), ("b", 2), ("c", 3)]
    finally:
        s.finalize()


@pytest.mark.parametrize("protocol", ["cxi", "ofi+cxi://", "ofi+verbs", "ucx+rc://", "psm2"])
def test_unimplemented_fabrics_point_to_spack_bedrock(eng: Any, protocol: str) -> None:
    with pytest.raises(eng.UnsupportedProtocol, match="use the Spack-built bedrock"):
        eng.Server(protocol, {})


def test_protocol_inferred_from_mercury_address(eng: Any) -> None:
    s = eng.Server("", {"margo": {"mercury": {"address": "na+sm://"}}})
    try:
        assert s.address.startswith("na+sm://")
    finally:
        s.finalize()
    with pytest.raises(eng.ConfigError, match="Could not infer protocol for engine 0"):
        eng.Server("", {})


def test_cli_pins_as_planned_and_answers_query_then_stops(daemon: Any, bin_dir: Path) -> None:
    needs_cpus(0, 1)
    d = daemon("na+sm", generator_like_config())
    out = subprocess.run([bin_dir / "bedrock-engine-query", "na+sm", "-a", d.address],
                         capture_output=True, text=True, timeout=30, check=True)
    running = json.loads(out.stdout)[d.address]
    tids = xstream_tids(running)
    affinity = thread_affinity(d.pid)
    assert affinity[tids["progress_xstream"]] == "0"
    assert affinity[tids["rpc_xstream_0"]] == "1"
    assert affinity[tids["io_xstream_0"]] == "0-1"
    assert tids["__primary__"] == d.pid  # __primary__ is the main thread
    reported = {x["name"]: x["cpus"] for x in running["bedrock_engine"]["xstreams"]}
    assert reported["progress_xstream"] == [0] and reported["rpc_xstream_0"] == [1]
    assert running["margo"]["mercury"]["address"] == d.address
    assert [p["name"] for p in running["providers"]] == ["kv", "io"]
    rc = subprocess.run([bin_dir / "bedrock-engine-shutdown", "na+sm", "-a", d.address],
                        timeout=30).returncode
    assert rc == 0
    assert d.wait() == 0


@pytest.mark.parametrize("protocol", ["na+sm", "ofi+tcp://127.0.0.1"])
def test_handlers_run_on_their_pools_threads(eng: Any, protocol: str, tmp_path: Path) -> None:
    needs_cpus(0, 1)
    s = eng.Server(protocol, generator_like_config(io_directory=tmp_path))
    try:
        c = eng.Client(protocol.split(":")[0])
        tids = xstream_tids(c.query(s.address))
        assert c.last_handler["os_thread_id"] == tids["rpc_xstream_0"]  # bedrock.pool
        assert c.ping(s.address)["os_thread_id"] == tids["rpc_xstream_0"]  # margo rpc_pool
        c.put(s.address, 1, b"key", b"value")
        assert c.last_handler["os_thread_id"] == tids["rpc_xstream_0"]
        assert c.last_handler["cpu"] == 1
        target = tmp_path / "abtio.bin"
        assert c.abtio_pwrite(s.address, 2, "abtio.bin", b"hello abt-io", 4) == 12
        assert c.last_handler["os_thread_id"] == tids["io_xstream_0"]
        assert target.read_bytes() == b"\0\0\0\0hello abt-io"
        assert c.abtio_pread(s.address, 2, "abtio.bin", 5, 4) == b"hello"
        assert c.last_handler["os_thread_id"] == tids["io_xstream_0"]
    finally:
        s.finalize()


@pytest.mark.parametrize("protocol", ["na+sm", "ofi+tcp"])
def test_yokan_map_put_get_erase_list(eng: Any, protocol: str) -> None:
    s = eng.Server(protocol, with_providers({"name": "kv", "type": "yokan", "provider_id": 4,
                                             "config": {"database": {"type": "map"}}}))
    try:
        c = eng.Client(protocol)
        for i in range(20):
            c.put(s.address, 4, f"k{i:02d}".encode(), f"v{i}".encode())
        c.put(s.address, 4, b"other", b"x" * 100000)
        assert c.get(s.address, 4, b"k07") == b"v7"
        assert c.get(s.address, 4, b"other") == b"x" * 100000
        assert c.get(s.address, 4, b"missing") is None
        assert c.list(s.address, 4, b"k1", 5) == [b"k10", b"k11", b"k12", b"k13", b"k14"]
        assert c.erase(s.address, 4, b"k07") is True
        assert c.erase(s.address, 4, b"k07") is False
        assert c.get(s.address, 4, b"k07") is None
        with pytest.raises(eng.RpcError, match="No provider with id 9"):
            c.get(s.address, 9, b"k01")
    finally:
        s.finalize()


@pytest.mark.parametrize("protocol", ["na+sm", "ofi+tcp"])
def test_query_and_shutdown_over_both_transports(daemon: Any, bin_dir: Path,
                                                 protocol: str) -> None:
    d = daemon(protocol, {"margo": {"rpc_thread_count": 1}})
    assert d.address.startswith("na+sm://" if protocol == "na+sm" else "ofi+tcp://")
    out = subprocess.run([bin_dir / "bedrock-engine-query", protocol, "-a", d.address, "-p"],
                         capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(out.stdout)[d.address]["margo"]["rpc_pool"] == "__pool_1__"
    subprocess.run([bin_dir / "bedrock-engine-shutdown", protocol, "-a", d.address],
                   timeout=30, check=True)
    assert d.wait() == 0
    assert "Bedrock daemon finalized" in d.output


def test_query_and_shutdown_through_a_group_file(daemon: Any, bin_dir: Path,
                                                 tmp_path: Path) -> None:
    group = tmp_path / "group.json"
    d = daemon("na+sm", with_providers({"name": "g", "type": "flock", "provider_id": 5,
                                        "config": {"bootstrap": "self", "file": str(group),
                                                   "group": {"type": "static"}}}))
    assert json.loads(group.read_text()) == {
        "members": [{"address": d.address, "provider_id": 5}],
        "metadata": {"__config__": "{}", "__type__": "static"}}
    out = subprocess.run([bin_dir / "bedrock-engine-query", "na+sm", "-f", str(group)],
                         capture_output=True, text=True, timeout=30, check=True)
    assert list(json.loads(out.stdout)) == [d.address]
    subprocess.run([bin_dir / "bedrock-engine-shutdown", "na+sm", "-f", str(group)],
                   timeout=30, check=True)
    assert d.wait() == 0


def test_flock_join_adds_the_joiner(eng: Any, tmp_path: Path) -> None:
    group = tmp_path / "group.json"
    central = {"type": "centralized"}
    first = eng.Server("na+sm", with_providers({"name": "g", "type": "flock", "provider_id": 1,
                                                "config": {"bootstrap": "self", "group": central,
                                                           "file": str(group)}}))
    # like ["join", "self"] in Flock's docs: the second process joins through the group file
    second = eng.Server("na+sm", with_providers({"name": "g", "type": "flock", "provider_id": 1,
                                                 "config": {"bootstrap": ["join", "self"],
                                                            "group": central,
                                                            "file": str(group)}}))
    try:
        members = [m["address"] for m in json.loads(group.read_text())["members"]]
        assert members == [first.address, second.address]  # rewritten by the primary
        view = eng.Client("na+sm").flock_view(first.address, 1)
        assert [m["address"] for m in view["members"]] == members
        reported = second.config["providers"][0]["config"]["group"]["config"]
        assert (reported["primary_address"], reported["primary_provider_id"]) == (
            first.address, 1)
    finally:
        second.finalize()
        first.finalize()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_finalize_cleanly(daemon: Any, sig: int) -> None:
    d = daemon("na+sm", {})
    os.kill(d.pid, sig)
    assert d.wait() == 0
    assert "finalizing" in d.output


def test_bad_config_exits_non_zero_with_the_message(bin_dir: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps({"margo": {"rpc_pool": "no_such_pool"}}))
    out = subprocess.run([bin_dir / "bedrock-engine", "na+sm", "-c", str(cfg)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert ('[critical] Could not find element named "no_such_pool" in "argobots.pools" array '
            '(in "margo.rpc_pool")') in out.stderr
    out = subprocess.run([bin_dir / "bedrock-engine", "ofi+cxi"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 1 and "use the Spack-built bedrock" in out.stderr
    out = subprocess.run([bin_dir / "bedrock-engine", "na+sm", "--stdin", "-c", str(cfg)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2


def test_stdin_config_and_output_file(bin_dir: Path, tmp_path: Path, daemon: Any) -> None:
    out_file = tmp_path / "out.json"
    d = daemon("ofi+tcp://127.0.0.1:0", None, "-o", str(out_file))
    written = json.loads(out_file.read_text())
    assert written["margo"]["mercury"]["address"] == d.address
    assert re.fullmatch(r"ofi\+tcp://127\.0\.0\.1:\d+", d.address)


ROW = re.compile(r"^\x1b\[(32|31)m([^\t]+)\t([^\t]+)\t([^\t]+)\t(YES|NO)\t(\S+)\x1b\[0m$")


def test_info_prints_margo_info_format(bin_dir: Path) -> None:
    out = subprocess.run([bin_dir / "bedrock-engine", "--info"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    lines = out.splitlines()
    assert lines[1] == "#" * 68
    assert lines[2].startswith("# Available Margo (Mercury) network transports on host ")
    assert "# <address> <transport> <protocol> <results> <example runtime address>" in lines
    rows = [ROW.match(line) for line in lines if line.startswith("\x1b[")]
    assert all(rows) and len(rows) == 21
    results = [(m.group(2), m.group(5), m.group(6), m.group(1)) for m in rows if m]
    yes = [r for r in results if r[1] == "YES"]
    assert [r[0] for r in yes] == ["ofi+tcp://", "na+sm://", "tcp://", "sm://"]
    assert results[:4] == yes  # YES rows first
    assert all(r[3] == "32" for r in yes) and all(r[3] == "31" for r in results[4:])
    assert re.fullmatch(r"na\+sm://\d+-\d+", dict((r[0], r[2]) for r in yes)["na+sm://"])
    assert re.fullmatch(r"ofi\+tcp://[\d.]+:\d+", dict((r[0], r[2]) for r in yes)["ofi+tcp://"])
    headers = [line for line in lines if line.startswith("### ")]
    assert "### libfabric PSM2 provider (OmniPath ###" in headers
    log_idx = lines.index("# - debug log output:")
    Path(re.sub(r"\x1b\[\d+m", "", lines[log_idx + 1])[1:].strip()).unlink()
    idx = lines.index("# - results in JSON format:")
    side = Path(re.sub(r"\x1b\[\d+m", "", lines[idx + 1])[1:].strip())
    data = json.loads(side.read_text())
    side.unlink()
    assert [e["addr"] for e in data][:2] == ["ofi+tcp://", "ofi+verbs://"]
    assert data[10] == {"index": 10, "addr": "na+sm://", "xport": "na", "proto": "sm",
                        "desc": "integrated sm plugin (shared memory)", "result": True,
                        "example_runtime_addr": data[10]["example_runtime_addr"]}
    assert data[7]["result"] is False and data[7]["example_runtime_addr"] == "N/A"


def test_info_single_protocol_exit_status(bin_dir: Path) -> None:
    ok = subprocess.run([bin_dir / "bedrock-engine", "--info", "na+sm://"],
                        capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0 and "\tYES\tna+sm://" in ok.stdout
    bad = subprocess.run([bin_dir / "bedrock-engine", "--info", "ofi+cxi://"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 255 and "\tNO\tN/A" in bad.stdout


@pytest.mark.parametrize("protocol", ["na+sm", "ofi+tcp"])
def test_nested_rpc_to_itself_on_a_single_xstream_does_not_deadlock(eng: Any,
                                                                    protocol: str) -> None:
    """Default layout: __primary__ runs the progress loop and every handler. A handler that
    calls its own engine keeps running that xstream's pools while it waits."""
    s = eng.Server(protocol, {"bedrock_engine": enable_test_rpcs()})
    try:
        c = eng.Client(protocol)
        c.set_timeout_ms(10000)
        inner, outer = c.forward_ping(s.address, s.address)
        primary = xstream_tids(c.query(s.address))["__primary__"]
        assert inner == outer == primary
    finally:
        s.finalize()


def test_nested_rpc_between_engines(eng: Any) -> None:
    a = eng.Server("na+sm", {"margo": {"rpc_thread_count": 1},
                             "bedrock_engine": enable_test_rpcs()})
    b = eng.Server("na+sm", {})
    try:
        c = eng.Client("na+sm")
        inner, outer = c.forward_ping(a.address, b.address)
        assert outer == xstream_tids(c.query(a.address))["__xstream_1__"]
        assert inner == xstream_tids(c.query(b.address))["__primary__"]
    finally:
        b.finalize()
        a.finalize()


def test_dependencies_keep_declared_keys_resolved_and_drop_the_others(eng: Any) -> None:
    s = eng.Server("na+sm", {
        "margo": {"argobots": {"pools": [{"name": "a"}, {"name": "b"}], "xstreams": [
            {"name": "x", "scheduler": {"pools": ["a", "b"]}}]}},
        **with_providers(
            {"name": "kv", "type": "yokan", "provider_id": 1, "dependencies": {"pool": ["b"]}},
            {"name": "g", "type": "flock", "provider_id": 2,
             "config": {"bootstrap": "self", "group": {"type": "static"}},
             "dependencies": {"pool": 0, "remote": "yokan:3@na+sm://1-0", "abt_io": "x"}})})
    try:
        deps = [p["dependencies"] for p in s.config["providers"]]
        # a one-element array for a single pool is that pool; an index is its name; keys the
        # module does not declare are dropped (Bedrock 0.16)
        assert deps == [{"pool": "b"}, {"pool": "a"}]
    finally:
        s.finalize()
