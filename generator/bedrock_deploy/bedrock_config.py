"""Bedrock JSON configs, one per local rank, for the real Bedrock 0.16 / Margo 0.24.

Shape and field names follow Bedrock's JSON and ``mochi.bedrock.spec.ProcSpec`` (so the output
loads there), with the choices the reference research (``mochi-stack.md`` §2-3, §6 and its 15
rules; ``mochi-observed.md`` §2-4g) showed the real stack needs:

* ``libraries`` is an array of module ``.so`` names (the dict form is rejected by Bedrock 0.16);
* every pool is defined in ``margo.argobots.pools`` (kind ``fifo_wait``, access ``mpmc``) and is
  the first (only) pool of at least one xstream (scheduler ``basic_wait``); the progress pool is
  alone on its xstream; ``__primary__`` is defined as pool *and* xstream, pool first;
* ``progress_pool`` and ``rpc_pool`` are explicit names; ``use_progress_thread`` and
  ``rpc_thread_count`` are never emitted;
* CPU pinning is an ``affinity`` list of absolute OS CPU ids (no ``cpubind``, which would win
  over the list);
* ``mercury.address`` is the chosen protocol (e.g. ``cxi://``) plus the site transport's mercury
  settings; never ``auth_key`` on CXI (margo then picks the job VNI itself);
* ``bedrock``: ``{"pool": <rpc pool>, "provider_id": 0}``; providers get ids from 1;
* rank-0-only providers carry ``"__if__": "$MPI_COMM_WORLD.rank == 0"`` (needs bedrock +mpi);
* flock providers default to ``bootstrap: "mpi"``, a ``static`` group, and write the group file
  ``plan.GROUP_FILE`` relative to the engines' working directory ``DIR/run``; under a launcher
  without an MPI world (``Launcher.mpi_world``) the launcher's ``flock_bootstrap`` replaces
  those defaults (Dragon: ``["join", "self"]``, ``centralized``);
* every provider gets ``dependencies.pool``: the rpc pool, or the io pool for ``pool: io``
  (abt_io's required dependency).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from bedrock_deploy.layout import PRIMARY, io_pool_of, progress_pool_of, rpc_pool_of
from bedrock_deploy.plan import GROUP_FILE, RankLayout, Role, TransportChoice
from bedrock_deploy.service import DEFAULT_CONFIGS, RANK0_CONDITION, Component, ServiceDescription

POOL_KIND = "fifo_wait"
POOL_ACCESS = "mpmc"
SCHEDULER = "basic_wait"
BEDROCK_PROVIDER_ID = 0


def argobots_section(rank: RankLayout) -> dict[str, Any]:
    pools: list[str] = []
    xstreams: list[dict[str, Any]] = []
    for x in rank.xstreams:
        for p in x.pools:
            if p not in pools:
                pools.append(p)
        xs: dict[str, Any] = {"name": x.name,
                              "scheduler": {"type": SCHEDULER, "pools": list(x.pools)}}
        if x.cpus:
            xs["affinity"] = list(x.cpus)
        xstreams.append(xs)
    return {"pools": [{"name": p, "kind": POOL_KIND, "access": POOL_ACCESS} for p in pools],
            "xstreams": xstreams}


def margo_section(service: ServiceDescription, rank: RankLayout,
                  transport: TransportChoice) -> dict[str, Any]:
    mercury: dict[str, Any] = {"address": transport.protocol}
    mercury.update(copy.deepcopy(transport.mercury))
    margo: dict[str, Any] = {
        "mercury": mercury,
        "argobots": argobots_section(rank),
        "progress_pool": progress_pool_of(rank),
        "rpc_pool": rpc_pool_of(rank),
    }
    margo.update(service.margo.model_dump(exclude_none=True))
    return margo


def component_config(c: Component, flock_defaults: Mapping[str, Any] | None = None
                     ) -> dict[str, Any]:
    """The provider's config: the user's as given (the type's default if none); flock
    always gets a bootstrap, a group type and the group file when they are missing (the
    launcher's ``flock_defaults`` first, when it has no MPI world)."""
    if c.type == "flock":
        config = copy.deepcopy(c.config)
        for key, value in {**DEFAULT_CONFIGS["flock"], **(flock_defaults or {})}.items():
            config.setdefault(key, copy.deepcopy(value))
        config.setdefault("file", GROUP_FILE)
        return config
    return copy.deepcopy(c.config or DEFAULT_CONFIGS.get(c.type, {}))


def provider_entry(c: Component, provider_id: int, rank: RankLayout,
                   flock_defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if c.rank0_only:
        entry["__if__"] = RANK0_CONDITION
    elif c.condition is not None:
        entry["__if__"] = c.condition
    pool = io_pool_of(rank) if c.pool_role is Role.io else rpc_pool_of(rank)
    deps: dict[str, Any] = {"pool": pool or PRIMARY}
    deps.update(copy.deepcopy(c.dependencies))
    entry.update({
        "name": c.name,
        "type": c.type,
        "provider_id": provider_id,
        "tags": list(c.tags),
        "config": component_config(c, flock_defaults),
        "dependencies": deps,
    })
    return entry


def bedrock_config(service: ServiceDescription, rank: RankLayout,
                   transport: TransportChoice,
                   flock_defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The Bedrock config of one local rank (identical on every node)."""
    ids = service.provider_ids()
    return {
        "libraries": service.libraries(),
        "margo": margo_section(service, rank, transport),
        "bedrock": {"pool": rpc_pool_of(rank), "provider_id": BEDROCK_PROVIDER_ID},
        "providers": [provider_entry(c, ids[c.name], rank, flock_defaults)
                      for c in service.components],
    }
