"""The Bedrock config emitter: shapes the real Bedrock 0.16 / Margo 0.24 need."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bedrock_deploy.bedrock_config import bedrock_config
from bedrock_deploy.bedrock_validator import validate_config, validate_file
from bedrock_deploy.layout import plan_layout
from bedrock_deploy.plan import TransportChoice
from bedrock_deploy.resources import share_path
from bedrock_deploy.service import ServiceDescription, load_service, service_from_dict
from bedrock_deploy.site_profile import Node
from bedrock_deploy.topology import Topology

NODE = Node.model_validate({"sockets": 2, "cores_per_socket": 8, "threads_per_core": 2,
                            "numa_domains": [{"id": 0, "cpus": "0-7,16-23"},
                                             {"id": 1, "cpus": "8-15,24-31"}],
                            "reserved_cores": [0],
                            "nics": [{"name": "cxi0", "kind": "cxi", "numa_domain": 1}]})
TOPO = Topology.from_node(NODE)
CXI = TransportChoice(name="cxi", protocol="cxi://", provider="cxi", fabrics=(), env={},
                      launcher_flags=("--network=job_vni,single_node_vni",),
                      mercury={"input_eager_size": 8192}, reason="test")


def configs(svc: ServiceDescription, transport: TransportChoice = CXI,
            tmp: Path | None = None) -> list[dict[str, Any]]:
    layout = plan_layout(TOPO, svc, "cxi")
    out = [bedrock_config(svc, r, transport) for r in layout.ranks]
    for r, cfg in zip(layout.ranks, out, strict=True):
        assert json.loads(json.dumps(cfg)) == cfg  # plain JSON
        errs = [i.format() for i in validate_config(cfg, topology=TOPO, rank_cpus=r.cpus,
                                                    total_processes=2 * len(out))
                if i.severity == "error"]
        assert errs == []
        if tmp is not None:  # through a file: what `bedrock-deploy validate` reads
            f = tmp / f"rank-{r.local_rank}.json"
            f.write_text(json.dumps(cfg, indent=2))
            assert [i for i in validate_file(f, total_processes=2 * len(out))
                    if i.severity == "error"] == []
    return out


def test_mofka_like_shapes(tmp_path: Path) -> None:
    svc = load_service(share_path("examples", "mofka-like.yaml")).service.with_counts(ppn=2)
    cfg = configs(svc, tmp=tmp_path)[0]
    assert cfg["libraries"] == ["libflock-bedrock-module.so", "libyokan-bedrock-module.so",
                                "libwarabi-bedrock-module.so", "libabt-io-bedrock-module.so"]
    margo = cfg["margo"]
    assert margo["mercury"] == {"address": "cxi://", "input_eager_size": 8192}  # no auth_key
    # what the layout decided for the rank, written as it was decided
    rank = plan_layout(TOPO, svc, "cxi").ranks[0]
    assert (margo["progress_pool"], margo["rpc_pool"]) == (rank.progress_pool, rank.rpc_pool)
    assert "use_progress_thread" not in margo and "rpc_thread_count" not in margo
    xs = {x["name"]: x for x in margo["argobots"]["xstreams"]}
    assert list(xs) == [x.name for x in rank.xstreams]
    for x in rank.xstreams:
        assert xs[x.name]["scheduler"]["pools"] == list(x.pools)
        assert xs[x.name]["affinity"] == list(x.cpus)  # an affinity list, never cpubind
    assert all("cpubind" not in x for x in xs.values())
    assert xs["__primary__"]["scheduler"]["pools"][0] == "__primary__"
    # the progress loop is on NUMA 1, next to cxi0
    (progress,) = [x for x in rank.xstreams if "progress" in x.roles]
    assert set(progress.cpus) <= set(range(8, 16)) | set(range(24, 32))
    assert cfg["bedrock"] == {"pool": rank.rpc_pool, "provider_id": 0}
    provs = {p["name"]: p for p in cfg["providers"]}
    assert provs["master"]["__if__"] == "$MPI_COMM_WORLD.rank == 0"
    assert "__if__" not in provs["data"]
    assert provs["group_manager"]["config"] == {"bootstrap": "mpi", "group": {"type": "static"},
                                                "file": "group.json"}
    assert provs["io_controller"]["dependencies"] == {"pool": rank.io_pool}
    assert provs["data"]["dependencies"] == {"pool": rank.rpc_pool}
    assert sorted(p["provider_id"] for p in cfg["providers"]) == [1, 2, 3, 4]


def test_shared_progress_and_no_rpc_threads() -> None:
    svc = service_from_dict({"name": "s", "threads": {"progress": "shared", "rpc": 0},
                             "components": [{"name": "g", "type": "flock"}]})
    (cfg,) = configs(svc)
    (rank,) = plan_layout(TOPO, svc, "cxi").ranks
    m = cfg["margo"]
    assert m["progress_pool"] == m["rpc_pool"] == rank.progress_pool == rank.rpc_pool
    assert [x["name"] for x in m["argobots"]["xstreams"]] == [x.name for x in rank.xstreams]
    assert cfg["bedrock"]["pool"] == rank.rpc_pool
    warns = [i for i in validate_config(cfg) if i.rule == "progress-pool-alone"]
    assert warns and warns[0].severity == "warning"


def test_unpinned_and_margo_options() -> None:
    svc = service_from_dict({"name": "s", "placement": {"pin": False},
                             "margo": {"progress_timeout_ub_msec": 0},
                             "components": [{"name": "g", "type": "flock", "config": {
                                 "bootstrap": ["join", "mpi"],
                                 "group": {"type": "centralized"}}}]})
    (cfg,) = configs(svc)
    assert all("affinity" not in x for x in cfg["margo"]["argobots"]["xstreams"])
    assert cfg["margo"]["progress_timeout_ub_msec"] == 0
    flock = cfg["providers"][0]["config"]
    assert flock == {"bootstrap": ["join", "mpi"], "group": {"type": "centralized"},
                     "file": "group.json"}


def test_existing_bedrock_config_is_replanned() -> None:
    svc = load_service(share_path("examples", "mofka-config.json")).service
    svc = svc.model_copy(update={"threads": svc.threads.model_copy(update={"rpc": 2})})
    (cfg,) = configs(svc)
    provs = {p["name"]: p for p in cfg["providers"]}
    assert provs["group_manager"]["config"]["file"] == "mofka.json"
    assert provs["io_controller"]["dependencies"] == {"pool": "io_pool"}
    assert provs["master"]["tags"] == ["mofka:master"]
    assert "libmofka-bedrock-module.so" in cfg["libraries"]
    names = [x["name"] for x in cfg["margo"]["argobots"]["xstreams"]]
    assert names == [x.name for x in plan_layout(TOPO, svc, "cxi").ranks[0].xstreams]
    assert sum(n.startswith("rpc_xstream") for n in names) == 2  # threads.rpc as replanned


def test_user_configs_are_kept_as_written() -> None:
    svc = service_from_dict({"name": "s", "components": [
        {"name": "g", "type": "flock", "config": {"bootstrap": "mpi", "file": "mine.json"}},
        {"name": "w", "type": "warabi", "config": {"targets": [{"type": "dummy"}]}},
        {"name": "y", "type": "yokan"}]})
    (cfg,) = configs(svc)
    provs = {p["name"]: p["config"] for p in cfg["providers"]}
    assert provs["g"] == {"bootstrap": "mpi", "file": "mine.json", "group": {"type": "static"}}
    assert provs["w"] == {"targets": [{"type": "dummy"}]}  # no default "target" mixed in
    assert provs["y"] == {"database": {"type": "map"}}     # the default when none is given
