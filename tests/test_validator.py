"""The Bedrock config validator: one test per rule of mochi-stack.md, locations, the CLI."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bedrock_deploy.bedrock_validator import ConfigIssue, validate_config, validate_file
from bedrock_deploy.cli import main
from bedrock_deploy.resources import share_path
from bedrock_deploy.site_profile import SiteProfile

EXAMPLES = share_path("examples")


def site(**over: Any) -> SiteProfile:
    data: dict[str, Any] = {
        "name": "t",
        "node": {"sockets": 1, "cores_per_socket": 8, "threads_per_core": 1,
                 "numa_domains": [{"id": 0, "cpus": "0-7"}], "reserved_cores": [0],
                 "allowed_cpus": "0-6",
                 "nics": [{"name": "eth0", "kind": "tcp"}, {"name": "eth1", "kind": "tcp"}]},
        "transports": [{"name": "tcp", "protocol": "ofi+tcp://"}],
        "launcher": {"type": "mpirun-openmpi"},
    }
    for k, v in over.items():
        data[k] = v
    return SiteProfile.model_validate(data)


GOOD: dict[str, Any] = {
    "libraries": ["libflock-bedrock-module.so", "libyokan-bedrock-module.so",
                  "libabt-io-bedrock-module.so"],
    "margo": {
        "mercury": {"address": "ofi+tcp://"},
        "argobots": {
            "pools": [{"name": "progress_pool", "kind": "fifo_wait", "access": "mpmc"},
                      {"name": "__primary__", "kind": "fifo_wait", "access": "mpmc"},
                      {"name": "rpc_pool", "kind": "fifo_wait", "access": "mpmc"},
                      {"name": "io_pool", "kind": "fifo_wait", "access": "mpmc"}],
            "xstreams": [
                {"name": "progress_xstream", "affinity": [1],
                 "scheduler": {"type": "basic_wait", "pools": ["progress_pool"]}},
                {"name": "__primary__", "affinity": [2],
                 "scheduler": {"type": "basic_wait", "pools": ["__primary__"]}},
                {"name": "rpc_xstream_0", "affinity": [3],
                 "scheduler": {"type": "basic_wait", "pools": ["rpc_pool"]}},
                {"name": "io_xstream_0", "affinity": [4],
                 "scheduler": {"type": "basic_wait", "pools": ["io_pool"]}},
                {"name": "io_xstream_1", "affinity": [5],
                 "scheduler": {"type": "basic_wait", "pools": ["io_pool"]}}]},
        "progress_pool": "progress_pool",
        "rpc_pool": "rpc_pool",
    },
    "bedrock": {"pool": "rpc_pool", "provider_id": 0},
    "providers": [
        {"name": "group", "type": "flock", "provider_id": 1,
         "config": {"bootstrap": "mpi", "file": "group.json", "group": {"type": "static"}},
         "dependencies": {"pool": "rpc_pool"}},
        {"__if__": "$MPI_COMM_WORLD.rank == 0", "name": "master", "type": "yokan",
         "provider_id": 2, "config": {"database": {"type": "map"}},
         "dependencies": {"pool": "rpc_pool"}},
        {"name": "io", "type": "abt_io", "provider_id": 3, "config": {"num_urings": 1},
         "dependencies": {"pool": "io_pool"}},
    ],
}
SITE = site(env={"FI_TCP_IFACE": "eth0"})


def errors(cfg: dict[str, Any], **kw: Any) -> list[ConfigIssue]:
    kw.setdefault("site", SITE)
    kw.setdefault("total_processes", 4)
    return [i for i in validate_config(cfg, **kw) if i.severity == "error"]


def one_error(cfg: dict[str, Any], rule: int, pointer: str, text: str, **kw: Any) -> ConfigIssue:
    errs = errors(cfg, **kw)
    assert [(e.rule, e.pointer) for e in errs] == [(rule, pointer)], [e.format() for e in errs]
    assert text in errs[0].message, errs[0].message
    assert errs[0].hint
    return errs[0]


def mutated() -> dict[str, Any]:
    return copy.deepcopy(GOOD)


def test_good_config_has_no_issue() -> None:
    assert validate_config(GOOD, site=SITE, total_processes=4, rank_cpus=(1, 2, 3, 4, 5)) == []


def test_rule1_protocol() -> None:
    c = mutated()
    c["margo"]["mercury"]["address"] = "ofi+tcp;ofi_rxm://"
    one_error(c, 1, "/margo/mercury/address", "hard-codes ';ofi_rxm'", site=None)
    c["margo"]["mercury"]["address"] = "ofi+tcp"
    one_error(c, 1, "/margo/mercury/address", "Could not infer protocol for engine 0", site=None,
              cli_address="")
    # a command-line address makes it work: a warning that says so
    issues = validate_config(c, total_processes=4, cli_address="ofi+tcp")
    assert [(i.rule, i.severity) for i in issues if i.rule == 1] == [(1, "warning")]
    assert "works only because the command line gives" in issues[-1].message or any(
        "works only because the command line gives" in i.message for i in issues)


def test_rule2_protocol_not_on_site() -> None:
    c = mutated()
    c["margo"]["mercury"]["address"] = "cxi://"
    one_error(c, 2, "/margo/mercury/address", "'cxi' is not a transport of site 't'")


def test_rule3_missing_pool() -> None:
    c = mutated()
    c["margo"]["argobots"]["xstreams"][2]["scheduler"]["pools"] = ["no_such_pool"]
    c["margo"]["argobots"]["xstreams"].append(
        {"name": "rpc_xstream_1", "scheduler": {"pools": ["rpc_pool"]}})
    one_error(c, 3, "/margo/argobots/xstreams/2/scheduler/pools/0",
              'Invalid reference to pool "no_such_pool" in scheduler configuration')
    c = mutated()
    c["providers"][2]["dependencies"]["pool"] = "nope"
    one_error(c, 13, "/providers/2/dependencies/pool",
              'While resolving dependency "pool" (type "pool"): Could not find pool with name '
              '"nope"')
    c = mutated()
    c["margo"]["argobots"]["pools"].append({"name": "rpc_pool"})
    one_error(c, 3, "/margo/argobots/pools/4/name",
              'Found two elements with the same name ("rpc_pool")')


def test_rule4_primary_pool_first() -> None:
    c = mutated()
    c["margo"]["argobots"]["xstreams"][1]["scheduler"]["pools"] = ["rpc_pool", "__primary__"]
    one_error(c, 4, "/margo/argobots/xstreams/1/scheduler/pools/0",
              'Pool with name "__primary__" should be the first pool of the primary xstream')


def test_rule5_pool_without_xstream() -> None:
    c = mutated()
    c["margo"]["argobots"]["pools"].append({"name": "orphan"})
    one_error(c, 5, "/margo/argobots/pools/4", 'Margo warns: Pool "orphan" at index 4 is not '
              "currently associated with any ES. ULT pushed into that pool will not get executed.")
    c = mutated()
    c["margo"]["argobots"]["xstreams"][4]["scheduler"]["pools"] = ["rpc_pool", "io_pool"]
    c["margo"]["argobots"]["xstreams"][3]["scheduler"]["pools"] = ["rpc_pool", "io_pool"]
    one_error(c, 5, "/margo/argobots/pools/3", 'Pool "io_pool" at index 3 is not the first pool '
              "of any ES. This could cause starvation for ULTs pushed in that pool.")
    c = mutated()
    c["providers"][2]["config"]["num_urings"] = 2  # abt-io.c's advice: a warning only
    assert errors(c) == []
    (w,) = [i for i in validate_config(c, site=SITE, total_processes=4) if i.rule == 5]
    assert w.severity == "warning" and "num_urings+1" in w.message


def test_rule6_progress_pool_alone() -> None:
    c = mutated()
    c["margo"]["argobots"]["xstreams"][0]["scheduler"]["pools"] = ["progress_pool", "rpc_pool"]
    errs = errors(c)
    assert {(e.rule, e.pointer) for e in errs} == {(6, "/margo/argobots/pools/2")}
    assert any('Pool "rpc_pool" at index 2 is used by an ES that is also associated with the '
               "progress pool." in e.message for e in errs)
    c = mutated()
    c["margo"]["use_progress_thread"] = True
    one_error(c, 6, "/margo/use_progress_thread", '"use_progress_thread" will be ignored because '
              '"progress_pool" field was specified')


def test_rule7_pinning_needs_affinity_build() -> None:
    s = site(env={"FI_TCP_IFACE": "eth0"}, spack={"require": {"argobots": ["~affinity"]}})
    one_error(mutated(), 7, "/margo/argobots/xstreams/0/affinity/0",
              "site requires argobots~affinity", site=s)


def test_rule8_cpu_ids() -> None:
    c = mutated()
    c["margo"]["argobots"]["xstreams"][2]["affinity"] = [0]  # core 0 is reserved
    one_error(c, 8, "/margo/argobots/xstreams/2/affinity/0", "reserved for the OS")
    # CPUs Argobots cannot pin to are ignored silently by the real stack: warnings
    for cpu, text in ((64, "CPU 64 does not exist"), (7, "outside the allowed cpuset")):
        c["margo"]["argobots"]["xstreams"][2]["affinity"] = [cpu]
        assert errors(c) == []
        (w,) = [i for i in validate_config(c, site=SITE) if i.rule == 8]
        assert w.severity == "warning" and text in w.message
        assert w.pointer == "/margo/argobots/xstreams/2/affinity/0"
    c["margo"]["argobots"]["xstreams"][2]["affinity"] = ["3"]
    one_error(c, 8, "/margo/argobots/xstreams/2/affinity/0", "Invalid type found in affinity array")
    c["margo"]["argobots"]["xstreams"][2]["affinity"] = [3]
    c["margo"]["argobots"]["xstreams"][2]["cpubind"] = "3"
    one_error(c, 8, "/margo/argobots/xstreams/2/cpubind",
              'Invalid type for "cpubind in xstream configuration (expected int, got string)')
    del c["margo"]["argobots"]["xstreams"][2]["cpubind"]
    c["margo"]["argobots"]["xstreams"][2]["affinity"] = [3, 4]
    c["margo"]["argobots"]["xstreams"][2]["cpubind"] = 5
    one_error(c, 8, "/margo/argobots/xstreams/2/cpubind", "cpubind 5 is not in affinity")


def test_rule9_outside_launcher_binding() -> None:
    one_error(mutated(), 9, "/margo/argobots/xstreams/4/affinity/0",
              "outside the cpuset the launcher binds", rank_cpus=(1, 2, 3, 4))


def test_rule10_no_auth_key_on_cxi() -> None:
    c = mutated()
    c["margo"]["mercury"] = {"address": "cxi://", "auth_key": ""}
    one_error(c, 10, "/margo/mercury/auth_key", "disables margo's automatic job VNI", site=None)


def test_rule11_plumber_needs_hwloc() -> None:
    c = mutated()
    c["margo"]["plumber"] = {"bucket_policy": "numa", "nic_policy": "roundrobin"}
    s = site(env={"FI_TCP_IFACE": "eth0"}, spack={"require": {"mochi-margo": ["~hwloc"]}})
    one_error(c, 11, "/margo/plumber", "mochi-plumber support is disabled", site=s)
    assert errors(c) == []  # default mochi-margo has +hwloc


def test_rule12_libraries() -> None:
    c = mutated()
    c["libraries"] = {"yokan": "libyokan-bedrock-module.so"}
    one_error(c, 12, "/libraries", '"libraries" field needs to be an array')
    c = mutated()
    c["libraries"].remove("libyokan-bedrock-module.so")
    one_error(c, 12, "/providers/1/type", "needs libyokan-bedrock-module.so")


def test_rule13_providers() -> None:
    c = mutated()
    c["providers"][1]["provider_id"] = 0
    one_error(c, 13, "/providers/1/provider_id", "Bedrock already uses provider ID 0")
    c["providers"][1]["provider_id"] = 1
    one_error(c, 13, "/providers/1/provider_id", "Another provider already uses provider ID 1")
    c = mutated()
    del c["providers"][2]["dependencies"]
    one_error(c, 13, "/providers/2/dependencies", 'Missing dependency "pool"')
    c = mutated()
    c["providers"][1]["dependencies"]["remi_sender"] = "io"  # io is created later
    one_error(c, 13, "/providers/1/dependencies/remi_sender",
              'While resolving dependency "remi_sender" (type "remi_sender"): Could not find '
              'provider with spec "io"')
    c = mutated()
    c["providers"][2]["dependencies"]["remi_sender"] = "group@local"  # wrong provider type
    c["providers"][2]["type"] = "yokan"
    c["providers"][2]["config"] = {}
    one_error(c, 13, "/providers/2/dependencies/remi_sender",
              "Invalid type remi_sender for provider handle to provider of type flock")
    c = mutated()
    c["providers"][0]["dependencies"]["db"] = "io"  # flock declares only "pool": dropped
    assert errors(c) == []
    (w,) = [i for i in validate_config(c, site=SITE, total_processes=4) if i.rule == 13]
    assert w.severity == "warning" and "Bedrock 0.16 drops it silently" in w.message
    c = mutated()
    c["providers"][2]["name"] = "group"
    one_error(c, 13, "/providers/2/name", 'Name "group" already used by another provider')


def test_rule14_multi_process() -> None:
    c = mutated()
    c["providers"][0]["config"]["bootstrap"] = ["join"]
    one_error(c, 14, "/providers/0/config/group/type", "Cannot join a static group")
    c["providers"][0]["config"]["bootstrap"] = ["join", "mpi"]  # mpi when the file is missing
    assert errors(c) == []
    c = mutated()
    c["providers"][0]["config"]["bootstrap"] = "self"
    one_error(c, 14, "/providers/0/config/bootstrap",
              'bootstrap "self" with 4 processes makes each process its own')
    c = mutated()
    c["providers"][2]["dependencies"]["db"] = "master"
    one_error(c, 14, "/providers/2/dependencies/db", "exists only where its __if__ holds")


def test_rule15_readiness() -> None:
    c = mutated()
    del c["providers"][0]["config"]["file"]
    one_error(c, 15, "/providers/0/config", "writes no group file")
    # ofi+tcp on a two-interface node without FI_TCP_IFACE: warned
    issues = validate_config(GOOD, site=site(), total_processes=4)
    assert [(i.rule, i.severity) for i in issues] == [(15, "warning")]
    assert "libfabric tcp may hang" in issues[0].message


def test_errors_are_located(tmp_path: Path) -> None:
    c = mutated()
    c["margo"]["argobots"]["pools"][3]["kind"] = "randws"
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(c, indent=2))
    (issue,) = [i for i in validate_file(f) if i.severity == "error"]
    assert issue.pointer == "/margo/argobots/pools/3/kind"
    assert issue.location is not None
    line = f.read_text().splitlines()[issue.location.line - 1]
    assert '"kind": "randws"' in line
    assert issue.location.column == line.index('"kind"') + 1


def test_cli_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(GOOD))
    assert main(["validate", str(good)]) == 0
    bad = tmp_path / "bad.json"
    c = mutated()
    c["providers"][1]["provider_id"] = 0
    bad.write_text(json.dumps(c, indent=1))
    capsys.readouterr()
    assert main(["validate", str(bad), "--json"]) == 2
    out = json.loads(capsys.readouterr().out)
    (err,) = [i for i in out[0]["issues"] if i["severity"] == "error"]
    assert err["pointer"] == "/providers/1/provider_id" and err["rule"] == 13
    assert err["line"] is not None and err["file"] == str(bad)
    assert main(["validate", str(bad)]) == 2
    assert f"{bad}:" in capsys.readouterr().err
    notjson = tmp_path / "x.json"
    notjson.write_text('{"a": 1,,}')
    assert main(["validate", str(notjson)]) == 2
    assert f"{notjson}:1:" in capsys.readouterr().err


def test_shipped_mofka_config_is_valid() -> None:
    issues = validate_file(EXAMPLES / "mofka-config.json")
    assert [i for i in issues if i.severity == "error"] == []


def test_array_of_configs_is_rejected_like_bedrock_0_16_1() -> None:
    (issue,) = errors([GOOD, GOOD], total_processes=2)
    assert issue.rule == 14 and "cannot use key() for non-object iterators" in issue.message


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70000) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["name", "pool", "pools", "type", "config", "affinity", "cpubind",
                         "scheduler", "dependencies", "provider_id", "__if__", "bootstrap",
                         "group", "file", "address", "kind", "access", "x"]), inner,
        max_size=4),
    max_leaves=12)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_validator_never_crashes(data: st.DataObject) -> None:
    c = mutated()
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(c)[1:]))
        parent = c
        for part in path[:-1]:
            parent = parent[part]
        parent[path[-1]] = data.draw(json_values)
    for issue in validate_config(c, site=SITE, total_processes=3, rank_cpus=(1, 2)):
        assert issue.message and issue.pointer.startswith("/") and 1 <= issue.rule <= 15
    validate_config(data.draw(json_values))


def test_cli_address_and_ppn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"margo": {"mercury": {"address": "na+sm"}}}))
    assert main(["validate", str(cfg), "--address", ""]) == 2
    assert "Could not infer protocol for engine 0" in capsys.readouterr().err
    assert main(["validate", str(cfg), "--address", "na+sm", "--ppn", "2"]) == 0
    err = capsys.readouterr().err
    assert "works only because the command line gives 'na+sm'" in err
    assert "2 ranks per node with unpinned xstreams (__primary__)" in err


def test_config_using_mpi_needs_an_mpi_bedrock() -> None:
    s = site(env={"FI_TCP_IFACE": "eth0"}, spack={"require": {"mochi-bedrock": ["~mpi"]}})
    one_error(GOOD, 14, "/", "flock bootstraps its group with MPI", site=s)
    c = mutated()
    c["providers"][0]["config"]["bootstrap"] = "self"
    del c["providers"][1]["__if__"]
    assert errors(c, site=s, total_processes=1) == []
