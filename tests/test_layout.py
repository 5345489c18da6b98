"""The layout planner: properties over random topologies and services, and policy cases."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bedrock_deploy.bedrock_config import bedrock_config
from bedrock_deploy.bedrock_validator import validate_config
from bedrock_deploy.cpulist import format_cpulist
from bedrock_deploy.diagnostics import InputError
from bedrock_deploy.layout import plan_layout
from bedrock_deploy.layout_policies import MERGING_POLICIES, RankShape
from bedrock_deploy.plan import PRIMARY, RankLayout, Role, TransportChoice
from bedrock_deploy.service import ServiceDescription, service_from_dict
from bedrock_deploy.site_profile import Node
from bedrock_deploy.topology import Topology

TCP = TransportChoice(name="tcp", protocol="ofi+tcp://", provider="tcp", fabrics=("tcp",),
                      env={}, launcher_flags=(), mercury={}, reason="test")


def make_node(sockets: int, cores: int, tpc: int, numa_per_socket: int, sibling: str,
              reserved: list[int], allowed_drop: list[int], nic_domain: int | None) -> Node:
    total = sockets * cores
    per_core = [[c + k * total for k in range(tpc)] if sibling == "stride"
                else [c * tpc + k for k in range(tpc)] for c in range(total)]
    domains: list[dict[str, Any]] = []
    chunk = cores // numa_per_socket
    for s in range(sockets):
        for d in range(numa_per_socket):
            lo = s * cores + d * chunk
            hi = s * cores + (cores if d == numa_per_socket - 1 else (d + 1) * chunk)
            cpus = sorted(cpu for c in range(lo, hi) for cpu in per_core[c])
            domains.append({"id": len(domains), "socket": s, "cpus": cpus})
    every = sorted(cpu for cpus in per_core for cpu in cpus)
    data: dict[str, Any] = {
        "sockets": sockets, "cores_per_socket": cores, "threads_per_core": tpc,
        "sibling_map": sibling, "numa_domains": domains,
        "reserved_cores": sorted({r % total for r in reserved}),
    }
    if allowed_drop:
        drop = {every[i % len(every)] for i in allowed_drop}
        data["allowed_cpus"] = [c for c in every if c not in drop]
    if nic_domain is not None:
        data["nics"] = [{"name": "hsn0", "kind": "cxi",
                         "numa_domain": nic_domain % len(domains)}]
    return Node.model_validate(data)


@st.composite
def nodes(draw: st.DrawFn) -> Node:
    sockets = draw(st.integers(1, 4))
    cores = draw(st.integers(1, 24))
    nps = draw(st.integers(1, min(4, cores)))
    return make_node(sockets, cores, draw(st.integers(1, 4)), nps,
                     draw(st.sampled_from(["stride", "adjacent"])),
                     draw(st.lists(st.integers(0, 200), max_size=4)),
                     draw(st.lists(st.integers(0, 400), max_size=6)),
                     draw(st.none() | st.integers(0, 15)))


@st.composite
def services(draw: st.DrawFn) -> ServiceDescription:
    comps: list[dict[str, Any]] = [{"name": "group", "type": "flock"}]
    if draw(st.booleans()):
        comps.append({"name": "kv", "type": "yokan", "rank0_only": draw(st.booleans())})
    if draw(st.booleans()):
        comps.append({"name": "io", "type": "abt_io",
                      "config": {"num_urings": draw(st.integers(0, 3))}})
    if draw(st.booleans()):
        comps.append({"name": "data", "type": "warabi", "pool": draw(st.sampled_from(
            ["rpc", "io"]))})
    return service_from_dict({
        "name": "svc",
        "processes_per_node": draw(st.integers(1, 12)),
        "threads": {"progress": draw(st.sampled_from(["dedicated", "shared"])),
                    "rpc": draw(st.integers(0, 4)), "io": draw(st.integers(1, 3)),
                    "primary": draw(st.sampled_from(["dedicated", "shared"]))},
        "placement": {"smt": draw(st.sampled_from(["avoid", "use"])),
                      "too_few_cores": draw(st.sampled_from(["error", "share"])),
                      "pin": draw(st.booleans())},
        "components": comps,
    })


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(node=nodes(), service=services())
def test_layout_properties(node: Node, service: ServiceDescription) -> None:
    topo = Topology.from_node(node)
    usable = len(topo.usable_cores)
    try:
        layout = plan_layout(topo, service, "cxi")
    except InputError as err:
        # impossible requests fail with the numbers, never silently
        msg = err.problems[0].message
        assert f"the node has {usable} usable" in msg
        assert err.problems[0].path == ("processes_per_node",)
        assert err.problems[0].hint
        return
    ppn = service.processes_per_node
    assert len(layout.ranks) == ppn
    reserved_cpus = {cpu for c in topo.cores if c.index in topo.reserved for cpu in c.cpus}
    core_of = {cpu: c.index for c in topo.cores for cpu in c.cpus}
    owner: dict[int, int] = {}
    for r in layout.ranks:
        assert r.cpus, "every rank gets CPUs"
        for cpu in r.cpus:
            assert cpu in topo.allowed_cpus
            assert cpu not in reserved_cpus
            core = core_of[cpu]
            # no core is used by two local ranks
            assert owner.setdefault(core, r.local_rank) == r.local_rank
        check_rank(r, service, topo)
        # the decision is recorded as made, with the policy that made it
        decided = {d.what: d for d in layout.decisions}
        assert decided[f"local rank {r.local_rank} xstreams"].value.startswith(f"{r.policy}: ")
        assert decided[f"local rank {r.local_rank} cores"].value == format_cpulist(r.cpus)
    # the emitted configs pass our validator against the node
    for r in layout.ranks:
        cfg = bedrock_config(service, r, TCP)
        errors = [i for i in validate_config(cfg, topology=topo, rank_cpus=r.cpus,
                                             total_processes=ppn)
                  if i.severity == "error"]
        assert errors == []
        ids = [p["provider_id"] for p in cfg["providers"]]
        assert len(set(ids)) == len(ids) and 0 not in ids


def check_rank(r: RankLayout, service: ServiceDescription, topo: Topology) -> None:
    """What every layout policy keeps, whatever it decided for this rank."""
    shape = RankShape.of(service)
    core_of = {cpu: c.index for c in topo.cores for cpu in c.cpus}
    names = [x.name for x in r.xstreams]
    assert names.count(PRIMARY) == 1 and len(set(names)) == len(names)
    served = {role: x.pools[0] for x in r.xstreams for role in x.roles}
    # every role runs somewhere, and the pools the rank records are the ones serving them
    assert {Role.primary, Role.progress, Role.rpc} <= set(served)
    assert r.progress_pool == served[Role.progress] and r.rpc_pool == served[Role.rpc]
    assert (Role.io in served) == service.uses_io_pool
    assert r.io_pool is None or r.io_pool == served[Role.io]
    for x in r.xstreams:
        assert set(x.cpus) <= set(r.cpus), "xstreams stay inside the rank's cpuset"
        assert bool(x.cpus) == service.placement.pin
        assert x.pools[0] == (PRIMARY if x.name == PRIMARY else f"{x.role.value}_pool")
    io = [x for x in r.xstreams if x.role is Role.io]
    if r.policy in MERGING_POLICIES:
        assert len(io) >= shape.io_min or (not io and served[Role.io] == PRIMARY)
    else:
        assert [x.role for x in r.xstreams].count(Role.rpc) == shape.rpc
        assert len(io) == shape.io
        assert Role.progress in r.xstreams[0].roles  # the progress loop first, nearest the NIC
    # no core (SMT: no hardware thread) runs two xstreams, apart from a __primary__ that floats
    # over the rpc xstreams' cores, and io_uring's io xstreams when they outnumber the cores
    if not service.placement.pin or (r.policy in MERGING_POLICIES and shape.io_min > 1):
        return
    unit = (lambda cpu: cpu) if r.policy == "hardware_threads" else core_of.__getitem__
    rpc_cpus = {c for x in r.xstreams if x.role is Role.rpc for c in x.cpus}
    owner: dict[int, str] = {}
    for x in r.xstreams:
        if x.name == PRIMARY and rpc_cpus and set(x.cpus) == rpc_cpus:
            continue  # a shared __primary__
        for u in {unit(c) for c in x.cpus}:
            assert owner.setdefault(u, x.name) == x.name, (u, owner[u], x.name, r)


def _service(**kw: Any) -> ServiceDescription:
    data: dict[str, Any] = {"name": "s", "components": [{"name": "g", "type": "flock"}]}
    data.update(kw)
    return service_from_dict(data)


def test_too_few_cores_error_has_the_numbers() -> None:
    node = make_node(1, 8, 1, 1, "stride", [0], [], None)
    with pytest.raises(InputError) as exc:
        plan_layout(Topology.from_node(node), _service(processes_per_node=3), None)
    p = exc.value.problems[0]
    assert "3 processes per node x 3 cores each = 9 cores needed" in p.message
    assert "the node has 7 usable (8 cores, 1 reserved for the OS (0))" in p.message
    assert "at most 2 processes per node" in (p.hint or "")


def test_share_policy_merges_roles_and_says_so() -> None:
    node = make_node(1, 2, 1, 1, "stride", [], [], None)
    svc = _service(processes_per_node=2, placement={"too_few_cores": "share"},
                   threads={"rpc": 2})
    layout = plan_layout(Topology.from_node(node), svc, None)
    assert [r.cpus for r in layout.ranks] == [(0,), (1,)]
    assert all(r.policy in MERGING_POLICIES for r in layout.ranks)
    # recorded as decided: the shortage, then each rank's merge, each with its reason
    notes = layout.notes
    assert any(n.startswith("cores per process: 1 (too_few_cores: share") for n in notes)
    assert any(n.startswith("local rank 1 xstreams: ") and "docs/layout.md" in n for n in notes)
    # still, ranks never share a core
    with pytest.raises(InputError, match="3 processes per node need at least 3 cores"):
        plan_layout(Topology.from_node(node), _service(
            processes_per_node=3, placement={"too_few_cores": "share"}), None)


def test_progress_goes_near_the_nic_and_ranks_alternate_domains() -> None:
    # 2 sockets x 8 cores, NIC on NUMA 1: rank 0 lands there, its progress loop on that domain
    node = make_node(2, 8, 2, 1, "stride", [], [], 1)
    topo = Topology.from_node(node)
    layout = plan_layout(topo, _service(processes_per_node=2), "cxi")
    r0, r1 = layout.ranks
    assert r0.numa == (1,) and r1.numa == (0,)
    nic_cpus = {cpu for c in topo.cores if c.numa == 1 for cpu in c.cpus}
    (progress,) = [x for x in r0.xstreams if Role.progress in x.roles]
    assert progress.cpus and set(progress.cpus) <= nic_cpus
    assert min(progress.cpus) == min(r0.cpus)  # the first core of the rank in that domain


def test_reserved_and_cpuset_respected() -> None:
    node = make_node(1, 6, 1, 1, "stride", [0, 1], [2], None)  # CPU 2 outside the cpuset
    (r,) = plan_layout(Topology.from_node(node), _service(), None).ranks
    assert r.cpus == (3, 4, 5)
