"""Each layout policy on its own: a rank's cores and roles in, xstreams and pools out.

One test (or a few) per policy of ``bedrock_deploy.layout_policies``; changing a policy is that
function and its test here. Properties that every policy keeps, over random nodes and
services, are in ``test_layout.py``.
"""

from __future__ import annotations

from bedrock_deploy.layout_policies import (
    FEWER_CORES_DOC,
    IO_POOL,
    PROGRESS_POOL,
    RPC_POOL,
    RankCores,
    RankShape,
    choose,
    fewer_xstreams,
    hardware_threads,
    one_core_per_xstream,
    one_xstream_per_core,
)
from bedrock_deploy.plan import PRIMARY, Role

KV = RankShape(progress_dedicated=True, primary_dedicated=False, rpc=1, io=0)
KV_IO = RankShape(progress_dedicated=True, primary_dedicated=False, rpc=1, io=1, io_min=1)


def placed(rank: RankCores, shape: RankShape, policy=None) -> dict[str, tuple]:
    got = (policy or choose(rank, shape, False)[0])(rank, shape)
    return {x.name: (tuple(r.value for r in x.roles), x.cpus) for x in got.xstreams}


def test_choose_by_cores_and_smt() -> None:
    two = RankCores(((0,), (1,)))
    assert choose(two, KV, False)[0] is one_core_per_xstream
    assert choose(RankCores(((0, 4), (1, 5))), KV, True)[0] is hardware_threads
    policy, why = choose(RankCores(((0,),)), KV, False)
    assert policy is one_xstream_per_core
    assert why.startswith("1 core for 2 xstreams") and FEWER_CORES_DOC in why


def test_one_core_per_xstream_progress_first_then_primary_rpc_io() -> None:
    rank = RankCores(((8, 24), (1, 17), (2, 18), (3, 19)))  # first = the core nearest the NIC
    shape = RankShape(progress_dedicated=True, primary_dedicated=True, rpc=1, io=1, io_min=1)
    got = one_core_per_xstream(rank, shape)
    assert {x.name: x.cpus for x in got.xstreams} == {
        "progress_xstream": (8, 24), "__primary__": (1, 17), "rpc_xstream_0": (2, 18),
        "io_xstream_0": (3, 19)}
    assert (got.progress_pool, got.rpc_pool, got.io_pool) == (PROGRESS_POOL, RPC_POOL, IO_POOL)
    assert [x.name for x in got.xstreams][:2] == ["progress_xstream", PRIMARY]


def test_one_core_per_xstream_shared_primary_floats_over_rpc_cores() -> None:
    rank = RankCores(((0,), (1,), (2,)))
    shape = RankShape(progress_dedicated=True, primary_dedicated=False, rpc=2, io=0)
    by = placed(rank, shape, one_core_per_xstream)
    assert by[PRIMARY] == (("primary",), (1, 2))
    assert by["rpc_xstream_0"][1] + by["rpc_xstream_1"][1] == (1, 2)


def test_one_core_per_xstream_shared_progress_and_no_rpc_run_on_primary() -> None:
    shape = RankShape(progress_dedicated=False, primary_dedicated=True, rpc=0, io=0)
    got = one_core_per_xstream(RankCores(((5,),)), shape)
    (x,) = got.xstreams
    assert (x.name, x.roles, x.cpus) == (PRIMARY, (Role.primary, Role.progress, Role.rpc),
                                         (5,))
    assert (got.progress_pool, got.rpc_pool, got.io_pool) == (PRIMARY, PRIMARY, None)


def test_hardware_threads_progress_keeps_a_whole_core() -> None:
    rank = RankCores(((0, 4), (1, 5), (2, 6)))
    shape = RankShape(progress_dedicated=True, primary_dedicated=True, rpc=3, io=0)
    by = {x.name: x.cpus for x in hardware_threads(rank, shape).xstreams}
    assert by == {"progress_xstream": (0, 4), "__primary__": (1,), "rpc_xstream_0": (5,),
                  "rpc_xstream_1": (2,), "rpc_xstream_2": (6,)}


def test_one_core_everything_on_primary() -> None:
    got = one_xstream_per_core(RankCores(((1,),)), KV_IO)
    (x,) = got.xstreams
    assert x.name == PRIMARY and x.cpus == (1,)
    assert set(x.roles) == {Role.primary, Role.progress, Role.rpc, Role.io}
    assert (got.progress_pool, got.rpc_pool, got.io_pool) == (PRIMARY, PRIMARY, PRIMARY)


def test_two_cores_io_apart_from_progress_and_rpcs() -> None:
    # the case measured by benchmarks/layout_value.py (docs/layout.md)
    got = one_xstream_per_core(RankCores(((0,), (1,))), KV_IO)
    assert {x.name: (x.roles, x.cpus) for x in got.xstreams} == {
        PRIMARY: ((Role.primary, Role.progress, Role.rpc), (0,)),
        "io_xstream_0": ((Role.io,), (1,))}
    assert (got.progress_pool, got.rpc_pool, got.io_pool) == (PRIMARY, PRIMARY, IO_POOL)


def test_merging_stops_as_soon_as_it_fits() -> None:
    # 2 rpc xstreams and a dedicated __primary__ on 2 cores: __primary__ floats, one rpc
    # xstream; the progress loop keeps its core
    shape = RankShape(progress_dedicated=True, primary_dedicated=True, rpc=2, io=0)
    merged, io_on_primary = fewer_xstreams(shape, 2)
    assert (merged.progress_dedicated, merged.primary_dedicated, merged.rpc) == (True, False, 1)
    assert not io_on_primary
    by = placed(RankCores(((0,), (1,))), shape, one_xstream_per_core)
    assert by == {"progress_xstream": (("progress",), (0,)), PRIMARY: (("primary",), (1,)),
                  "rpc_xstream_0": (("rpc",), (1,))}


def test_uring_io_xstreams_are_kept_and_stay_off_primary_core() -> None:
    shape = RankShape(progress_dedicated=True, primary_dedicated=False, rpc=1, io=3, io_min=3)
    got = one_xstream_per_core(RankCores(((0,), (1,))), shape)
    io = [x for x in got.xstreams if x.role is Role.io]
    assert len(io) == 3 and all(x.cpus == (1,) for x in io)
    assert got.io_pool == IO_POOL


def test_unpinned_rank_has_no_cpus() -> None:
    for policy in (one_core_per_xstream, one_xstream_per_core):
        got = policy(RankCores(((0,), (1,)), pin=False), KV_IO)
        assert all(x.cpus == () for x in got.xstreams)
