"""Config semantics of the engine vs Margo 0.24 / Bedrock 0.16 (load_config, no server).

Messages are Bedrock's/Margo's own wording where they mirror a real error; each names the JSON
path of the offending element.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

import pytest

PINNED: dict[str, Any] = {
    "margo": {
        "argobots": {
            "pools": [
                {"name": "rpc_pool", "kind": "fifo_wait", "access": "mpmc"},
                {"name": "io_pool", "kind": "fifo_wait", "access": "mpmc"},
            ],
            "xstreams": [
                {"name": "rpc_xstream", "cpubind": 0, "affinity": [0, 1],
                 "scheduler": {"type": "basic_wait", "pools": ["rpc_pool"]}},
                {"name": "io_xstream", "cpubind": 1,
                 "scheduler": {"type": "basic_wait", "pools": ["io_pool"]}},
            ],
        },
        "rpc_pool": "rpc_pool",
        "progress_pool": "__primary__",
    }
}

pytestmark = pytest.mark.engine


def mutate(path: str, value: Any, base: dict[str, Any] = PINNED) -> dict[str, Any]:
    cfg = copy.deepcopy(base)
    node: Any = cfg
    keys = path.split("/")
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return cfg


INVALID = [
    # (id, config, message, path)
    ("sched-missing-pool", mutate("margo/argobots/xstreams/1/scheduler/pools", ["no_such_pool"]),
     'Invalid reference to pool "no_such_pool" in scheduler configuration',
     "margo.argobots.xstreams[1]"),
    ("rpc-pool-missing", mutate("margo/rpc_pool", "no_such_pool"),
     'Could not find element named "no_such_pool" in "argobots.pools" array', "margo.rpc_pool"),
    ("progress-pool-missing", mutate("margo/progress_pool", "no_such_pool"),
     'Could not find element named "no_such_pool" in "argobots.pools" array',
     "margo.progress_pool"),
    ("cpubind-string", mutate("margo/argobots/xstreams/1/cpubind", "1"),
     'Invalid type for "cpubind in xstream configuration (expected int, got string)',
     "margo.argobots.xstreams[1]"),
    ("pool-kind", mutate("margo/argobots/pools/1/kind", "no_such_kind"),
     'Invalid enum value for pool kind ("no_such_kind")', "margo.argobots.pools[1]"),
    ("pool-kind-external", mutate("margo/argobots/pools/1/kind", "external"),
     'Invalid enum value for pool kind ("external")', "margo.argobots.pools[1]"),
    ("pool-kind-randws", mutate("margo/argobots/pools/1/kind", "randws"),
     'Invalid enum value for pool kind ("randws")', "margo.argobots.pools[1]"),
    ("pool-access", mutate("margo/argobots/pools/1/access", "bogus"),
     'Invalid enum value for pool access ("bogus")', "margo.argobots.pools[1]"),
    ("sched-type", mutate("margo/argobots/xstreams/1/scheduler/type", "bogus"),
     'Invalid enum value for scheduler.type ("bogus")', "margo.argobots.xstreams[1]"),
    ("dup-pools", mutate("margo/argobots/pools/1/name", "rpc_pool"),
     'Found two elements with the same name ("rpc_pool") in "argobots.pools"',
     "margo.argobots.pools[1]"),
    ("dup-xstreams", mutate("margo/argobots/xstreams/1/name", "rpc_xstream"),
     'Found two elements with the same name ("rpc_xstream") in "argobots.xstreams"',
     "margo.argobots.xstreams[1]"),
    ("sched-pool-index", mutate("margo/argobots/xstreams/0/scheduler/pools", [5]),
     "Invalid pool index (5) in scheduler configuration", "margo.argobots.xstreams[0]"),
    ("sched-no-pools", mutate("margo/argobots/xstreams/0/scheduler/pools", []),
     "Scheduler must have at least one pool", "margo.argobots.xstreams[0]"),
    ("progress-index", mutate("margo/progress_pool", 9), 'Invalid "progress_pool" index (9)',
     "margo.progress_pool"),
    ("rpc-index", mutate("margo/rpc_pool", -1), 'Invalid "rpc_pool" index (-1)', "margo.rpc_pool"),
    ("affinity-type", mutate("margo/argobots/xstreams/0/affinity", [0, "1"]),
     "Invalid type found in affinity array", "margo.argobots.xstreams[0]"),
    ("pool-name-digit", mutate("margo/argobots/pools/1/name", "1pool"),
     'Invalid name "1pool" for pool', "margo.argobots.pools[1]"),
    ("pool-name-chars", mutate("margo/argobots/pools/1/name", "io-pool"),
     'Invalid name "io-pool" for pool', "margo.argobots.pools[1]"),
    ("timeout-type", mutate("margo/progress_timeout_ub_msec", "100"),
     'Invalid type for "progress_timeout_ub_msec in margo configuration (expected int, got '
     'string)', "margo.progress_timeout_ub_msec"),
    ("spindown-negative", mutate("margo/progress_spindown_msec", -1),
     '"progress_spindown_msec" must not be negative', "margo.progress_spindown_msec"),
    ("progress-thread-type", mutate("margo/use_progress_thread", 1),
     'Invalid type for "use_progress_thread in margo configuration (expected boolean, got int)',
     "margo.use_progress_thread"),
    ("mercury-type", mutate("margo/mercury", {"auto_sm": "yes"}),
     'Invalid type for "auto_sm in mercury configuration (expected boolean, got string)',
     "margo.mercury"),
    ("primary-xstream-no-pool",
     {"margo": {"argobots": {"pools": [{"name": "p"}], "xstreams": [
         {"name": "__primary__", "scheduler": {"pools": ["p"]}}]}}},
     "Could not find __primary__ pool after initialization from configuration",
     "margo.argobots.pools"),
    ("primary-pool-not-first",
     {"margo": {"argobots": {"pools": [{"name": "p"}, {"name": "__primary__"}], "xstreams": [
         {"name": "__primary__", "scheduler": {"pools": ["p", "__primary__"]}}]}}},
     'Pool with name "__primary__" should be the first pool of the primary xstream',
     "margo.argobots.xstreams[0]"),
    ("libraries-object", {"libraries": {"yokan": "libyokan-bedrock-module.so"}},
     '"libraries" field needs to be an array', "libraries"),
    ("library-not-string", {"libraries": [3]}, "Module library should be a string",
     "libraries[0]"),
    ("library-unknown", {"libraries": ["libdoesnotexist.so"]},
     "Could not dlopen library libdoesnotexist.so", "libraries[0]"),
    ("provider-no-name", {"providers": [{"type": "yokan"}]},
     "Error validating JSON (ProviderManager): At  of {\"type\":\"yokan\"} - required property "
     "'name' not found in object", "providers[0]"),
    ("provider-bad-name", {"providers": [{"name": "my-kv", "type": "yokan"}]},
     'At /name of "my-kv" - instance does not match regex pattern: ^[a-zA-Z_][a-zA-Z0-9_]*$',
     "providers[0]"),
    ("provider-id-range", {"providers": [{"name": "kv", "type": "yokan", "provider_id": 70000}]},
     "At /provider_id of 70000 - instance exceeds maximum of 65535", "providers[0]"),
    ("provider-engine", {"providers": [{"name": "kv", "type": "yokan", "engine": 1}]},
     "Invalid engine index", "providers[0].engine"),
    ("provider-deps-type", {"providers": [{"name": "kv", "type": "yokan",
                                           "dependencies": {"pool": {"x": 1}}}]},
     "At /dependencies of {\"pool\":{\"x\":1}} - validation failed for additional property "
     "'pool': no subschema has succeeded", "providers[0]"),
    ("provider-type-not-loaded", {"providers": [{"name": "kv", "type": "yokan"}]},
     'Could not find registration function for module "yokan"', "providers[0].type"),
    ("if-type", {"providers": [{"name": "kv", "type": "yokan", "__if__": 1}]},
     "__if__ condition should be a string or a boolean", "providers[0].__if__"),
    ("bedrock-pool-index", {"bedrock": {"pool": 0}}, "Invalid type in Bedrock's \"pool\" entry",
     "bedrock.pool"),
    ("top-level-array", [{}, {}], "cannot use key() for non-object iterators", ""),
    ("providers-object", {"providers": {"name": "x"}}, "Invalid JSON configuration passed to "
     "ProviderManager::addProviderListFromJSON (should be an array)", "providers"),
    ("engine-section", {"bedrock_engine": {"test_rpcs": ["nope"]}}, "unknown test RPC",
     "bedrock_engine.test_rpcs[0]"),
    ("if-jx9", {"providers": [{"name": "kv", "type": "yokan",
                               "__if__": "$MPI_COMM_WORLD.addresses[0] == 1"}]},
     'Cannot evaluate "__if__" expression', "providers[0].__if__"),
    ("bedrock-pool", {"bedrock": {"pool": "nope"}}, 'Could not find pool with name "nope"',
     "bedrock.pool"),
    ("margo-array", {"margo": [{}, {}]}, "bedrock-engine runs a single Margo engine", "margo"),
]


@pytest.mark.parametrize(("config", "message", "path"),
                         [pytest.param(c, m, p, id=i) for i, c, m, p in INVALID])
def test_invalid_config_is_rejected_with_bedrock_wording_and_path(
        eng: Any, config: dict[str, Any], message: str, path: str) -> None:
    with pytest.raises(eng.ConfigError) as err:
        eng.load_config(config)
    text = str(err.value)
    assert message in text
    assert text.endswith(f'(in "{path}")') if path else "(in " not in text


def test_syntax_error_is_reported_with_the_parsers_message(eng: Any) -> None:
    with pytest.raises(eng.ConfigError, match=r"\[json\.exception\.parse_error\.101\] parse "
                       "error at line 1, column 11"):
        eng.load_config('{"margo": ')


def test_default_config_matches_real_bedrock(eng: Any) -> None:
    cfg, warnings = eng.load_config("")
    assert warnings == []
    margo = cfg["margo"]
    assert margo["argobots"]["pools"] == [
        {"access": "mpmc", "kind": "fifo_wait", "name": "__primary__"}]
    # Argobots (+affinity) puts ES 0 on the first CPU of the process
    first = min(os.sched_getaffinity(0))
    assert margo["argobots"]["xstreams"] == [
        {"name": "__primary__", "scheduler": {"pools": ["__primary__"], "type": "basic_wait"},
         "affinity": [first], "cpubind": first}]
    assert margo["argobots"]["lazy_stack_alloc"] is False
    assert (margo["progress_pool"], margo["rpc_pool"]) == ("__primary__", "__primary__")
    assert (margo["progress_timeout_ub_msec"], margo["progress_spindown_msec"]) == (100, 10)
    assert margo["handle_cache_size"] == 256
    assert margo["mercury"]["input_eager_size"] == 4076
    assert margo["mercury"]["max_contexts"] == 0
    assert cfg["bedrock"] == {"pool": "__primary__", "provider_id": 0}
    assert cfg["libraries"] == [] and cfg["providers"] == []


def test_pinned_config_appends_primary_last_and_bedrock_pool_follows_rpc_pool(eng: Any) -> None:
    cfg, _ = eng.load_config(PINNED)
    abt = cfg["margo"]["argobots"]
    assert [p["name"] for p in abt["pools"]] == ["rpc_pool", "io_pool", "__primary__"]
    assert [x["name"] for x in abt["xstreams"]] == ["rpc_xstream", "io_xstream", "__primary__"]
    # cpubind wins over affinity, as Margo applies affinity then cpubind
    assert abt["xstreams"][0]["cpubind"] == 0 and abt["xstreams"][0]["affinity"] == [0]
    assert abt["xstreams"][1]["affinity"] == [1]
    assert cfg["bedrock"]["pool"] == "rpc_pool"


def test_progress_thread_and_rpc_thread_count_expand_like_margo(eng: Any) -> None:
    cfg, _ = eng.load_config({"margo": {"use_progress_thread": True, "rpc_thread_count": 2}})
    abt = cfg["margo"]["argobots"]
    assert [p["name"] for p in abt["pools"]] == ["__primary__", "__pool_1__", "__pool_2__"]
    assert [(x["name"], x["scheduler"]["pools"]) for x in abt["xstreams"]] == [
        ("__primary__", ["__primary__"]), ("__xstream_1__", ["__pool_1__"]),
        ("__xstream_2__", ["__pool_2__"]), ("__xstream_3__", ["__pool_2__"])]
    assert cfg["margo"]["progress_pool"] == "__pool_1__"
    assert cfg["margo"]["rpc_pool"] == "__pool_2__"
    assert cfg["bedrock"]["pool"] == "__pool_2__"
    assert "use_progress_thread" not in cfg["margo"]
    assert "rpc_thread_count" not in cfg["margo"]


def test_negative_rpc_thread_count_uses_progress_pool(eng: Any) -> None:
    cfg, _ = eng.load_config({"margo": {"use_progress_thread": True, "rpc_thread_count": -1}})
    assert cfg["margo"]["rpc_pool"] == cfg["margo"]["progress_pool"] == "__pool_1__"


def test_explicit_pools_win_over_thread_counts_with_warnings(eng: Any) -> None:
    cfg, warnings = eng.load_config(
        mutate("margo/use_progress_thread", True,
               mutate("margo/rpc_thread_count", 4)))
    assert cfg["margo"]["rpc_pool"] == "rpc_pool"
    assert len(cfg["margo"]["argobots"]["xstreams"]) == 3
    assert any("use_progress_thread" in w for w in warnings)
    assert any("rpc_thread_count" in w for w in warnings)


def test_unused_pool_warns_with_margo_wording(eng: Any) -> None:
    cfg = copy.deepcopy(PINNED)
    cfg["margo"]["argobots"]["pools"].append({"name": "unused_pool"})
    _, warnings = eng.load_config(cfg)
    assert ('Pool "unused_pool" at index 2 is not currently associated with any ES. ULT pushed '
            "into that pool will not get executed.") in warnings


def test_pool_references_by_index_resolve_to_names(eng: Any) -> None:
    cfg = mutate("margo/argobots/xstreams/1/scheduler/pools", [1], mutate("margo/rpc_pool", 0))
    out, _ = eng.load_config(cfg)
    assert out["margo"]["argobots"]["xstreams"][1]["scheduler"]["pools"] == ["io_pool"]
    assert out["margo"]["rpc_pool"] == "rpc_pool"


def test_generated_names_for_unnamed_pools_and_xstreams(eng: Any) -> None:
    out, _ = eng.load_config({"margo": {"argobots": {
        "pools": [{}], "xstreams": [{"scheduler": {"pools": [0]}}]}}})
    assert out["margo"]["argobots"]["pools"][0]["name"] == "__pool_0__"
    assert out["margo"]["argobots"]["xstreams"][0]["name"] == "__xstream_0__"


def test_dotted_keys_expand(eng: Any) -> None:
    out, _ = eng.load_config({"margo.progress_timeout_ub_msec": 0,
                              "margo.argobots.pools": [{"name": "p"}],
                              "margo.rpc_pool": "p"})
    assert out["margo"]["progress_timeout_ub_msec"] == 0
    assert out["margo"]["rpc_pool"] == "p"


def test_unknown_keys_are_accepted_and_dropped(eng: Any) -> None:
    out, _ = eng.load_config({"unknown_top_key": 1, "margo": {"unknown_margo_key": 2}})
    assert "unknown_top_key" not in out and "unknown_margo_key" not in out["margo"]


IF_CONFIG = {
    "libraries": ["libyokan-bedrock-module.so"],
    "providers": [
        {"name": "everywhere", "type": "yokan"},
        {"name": "rank0", "type": "yokan", "__if__": "$MPI_COMM_WORLD.rank == 0"},
        {"name": "not_rank0", "type": "yokan",
         "__if__": "($MPI_COMM_WORLD.rank != 0) && $MPI_COMM_WORLD.size >= 2"},
        {"name": "never", "type": "yokan", "__if__": False},
        {"name": "last", "type": "yokan",
         "__if__": "$MPI_COMM_WORLD.rank == $MPI_COMM_WORLD.size - 1"},
    ],
}


@pytest.mark.parametrize(("rank", "size", "expected"), [
    (0, 1, ["everywhere", "rank0"]),
    (0, 2, ["everywhere", "rank0"]),
    (1, 2, ["everywhere", "not_rank0"]),
])
def test_if_filters_on_mpi_rank_and_size(eng: Any, rank: int, size: int,
                                         expected: list[str]) -> None:
    cfg = copy.deepcopy(IF_CONFIG)
    cfg["providers"] = [p for p in cfg["providers"] if p["name"] != "last"]
    out, _ = eng.load_config(cfg, rank=rank, size=size)
    assert [p["name"] for p in out["providers"]] == expected


def test_if_rejects_arithmetic_it_does_not_evaluate(eng: Any) -> None:
    with pytest.raises(eng.ConfigError, match=r"providers\[4\]\.__if__"):
        eng.load_config(IF_CONFIG, rank=1, size=2)


def test_if_removes_pools_too(eng: Any) -> None:
    cfg = copy.deepcopy(PINNED)
    cfg["margo"]["argobots"]["pools"].append({"name": "extra", "__if__": "false"})
    out, _ = eng.load_config(cfg)
    assert "extra" not in [p["name"] for p in out["margo"]["argobots"]["pools"]]


def test_config_text_and_dict_are_equivalent(eng: Any) -> None:
    assert eng.load_config(json.dumps(PINNED))[0] == eng.load_config(PINNED)[0]
