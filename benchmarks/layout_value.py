"""Benchmark 5, ``layout_value``: the layout ``generate`` plans against the single-pool default.

The service (``services/kv-io.yaml`` unless ``--service``: a yokan map provider on the rpc pool
and an abt_io provider on the io pool, one process) is planned by ``build_plan`` for a site
(``local`` unless ``--site``: this host, its topology probed from sysfs), and local rank 0 is
run in each of these variants, in the same run:

* ``generated``: the Bedrock config the plan wrote (the layout policies of
  ``generator/bedrock_deploy/layout_policies.py``);
* ``single_pool_default``: the same providers with everything on ``__primary__``, unpinned
  (Margo's default shape);
* with ``--candidates``, the other layouts the fewer-cores policy was chosen against (planned
  through the same planner with another policy, see :data:`CANDIDATES` and docs/layout.md):
  ``packed`` (every role its own xstream, packed on the rank's cores: the layout before),
  ``single_xstream`` (everything on ``__primary__``, pinned to the rank's CPUs) and
  ``progress_apart`` (progress alone on the first core, ``__primary__`` serving RPCs and I/O).

One client does 8-byte ``get``s for ``--seconds``, with 0 and then ``--writers`` concurrent
clients doing 256 KiB ``abtio_pwrite``s; ``--rounds`` rounds, the variants interleaved in each
round (order rotated), samples pooled per variant. The server process is bound to the rank's
CPUs (what the launcher does); the clients to the host's other CPUs when there are any, else
they float (a 2-CPU host has none to spare: that is recorded).

On a bigger host, run it there: ``python3 benchmarks/run_all.py --only layout_value`` plans
for that host (site ``local`` probes it), or ``python3 benchmarks/layout_value.py --site NAME
--ppn N --out DIR`` plans with a shipped profile whose node is that host (its CPUs must exist
here). The load average before and after each round is in the results.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import engine_bench
from bedrock_deploy.bedrock_config import bedrock_config
from bedrock_deploy.generate import Inputs, build_plan
from bedrock_deploy.layout import plan_layout
from bedrock_deploy.layout_policies import (
    IO_POOL,
    PROGRESS_POOL,
    RankCores,
    RankShape,
    RankXstreams,
    XstreamPolicy,
)
from bedrock_deploy.plan import PRIMARY, DeploymentPlan, Role, XstreamPlan
from bedrock_deploy.service import load_service
from bedrock_deploy.site_profile import TransportScope
from bedrock_deploy.sites import load_site
from bedrock_deploy.topology import Topology
from bench_util import HERE, RESULTS, Result, Skip, Target, machine, pyplot, save_plot, summarize

SERVICE = HERE / "services" / "kv-io.yaml"
BASELINE = "single_pool_default"


# ---- the candidate layouts for a rank with fewer cores than roles (not shipped) -------------

def _pin(rank: RankCores, cpus: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(sorted(cpus)) if rank.pin else ()


def packed(rank: RankCores, shape: RankShape) -> RankXstreams:
    """The layout before issue 18: every role its own xstream; progress alone on the first
    core when there are two, the others round-robin on the remaining cores."""
    cores = list(rank.cores)
    xs: list[XstreamPlan] = []
    rest = cores
    if shape.progress_dedicated:
        alone = len(cores) >= 2
        xs.append(XstreamPlan("progress_xstream", Role.progress, (PROGRESS_POOL,),
                              _pin(rank, cores[0])))
        rest = cores[1:] if alone else cores
    slots = [r for r in shape.slots if r is not Role.progress]
    counters = {Role.rpc: 0, Role.io: 0}
    rpc_cpus: set[int] = set()
    primary_cpus: tuple[int, ...] = ()
    for i, role in enumerate(slots):
        cpus = rest[i % len(rest)]
        if role is Role.primary:
            primary_cpus = cpus
            continue
        pool = "rpc_pool" if role is Role.rpc else IO_POOL
        xs.append(XstreamPlan(f"{role.value}_xstream_{counters[role]}", role, (pool,),
                              _pin(rank, cpus)))
        counters[role] += 1
        if role is Role.rpc:
            rpc_cpus.update(cpus)
    if not shape.primary_dedicated:
        primary_cpus = tuple(sorted(rpc_cpus))
    xs.insert(1 if shape.progress_dedicated else 0,
              XstreamPlan(PRIMARY, Role.primary, (PRIMARY,), _pin(rank, primary_cpus)))
    return RankXstreams(tuple(xs), PROGRESS_POOL if shape.progress_dedicated else PRIMARY,
                        "rpc_pool" if shape.rpc else PRIMARY, IO_POOL if shape.io else None)


def single_xstream(rank: RankCores, shape: RankShape) -> RankXstreams:
    """Everything on ``__primary__``, pinned to every CPU of the rank (io_uring's extra io
    xstreams kept)."""
    also = (Role.progress, Role.rpc) + ((Role.io,) if shape.io == 1 else ())
    xs = [XstreamPlan(PRIMARY, Role.primary, (PRIMARY,), _pin(rank, rank.cpus), also=also)]
    if shape.io > 1:
        xs += [XstreamPlan(f"io_xstream_{i}", Role.io, (IO_POOL,), _pin(rank, rank.cpus))
               for i in range(shape.io)]
    return RankXstreams(tuple(xs), PRIMARY, PRIMARY,
                        IO_POOL if shape.io > 1 else (PRIMARY if shape.io else None))


def progress_apart(rank: RankCores, shape: RankShape) -> RankXstreams:
    """The progress loop alone on the first core; ``__primary__`` serves the RPC handlers and
    the I/O on the other cores."""
    first, *others = rank.cores
    rest = tuple(c for core in (others or [first]) for c in core)
    also = (Role.rpc,) + ((Role.io,) if shape.io else ())
    xs = (XstreamPlan("progress_xstream", Role.progress, (PROGRESS_POOL,), _pin(rank, first)),
          XstreamPlan(PRIMARY, Role.primary, (PRIMARY,), _pin(rank, rest), also=also))
    return RankXstreams(xs, PROGRESS_POOL, PRIMARY, PRIMARY if shape.io else None)


CANDIDATES: dict[str, XstreamPolicy] = {"packed": packed, "single_xstream": single_xstream,
                                        "progress_apart": progress_apart}


# ---- configs ---------------------------------------------------------------------------------

def make_plan(site: str, service: Path, ppn: int | None) -> DeploymentPlan:
    plan, _ = build_plan(Inputs(site=load_site(site), service=load_service(service),
                                overrides={"ppn": ppn} if ppn else {}, for_job=False))
    return plan


def candidate_config(plan: DeploymentPlan, policy: XstreamPolicy) -> dict[str, Any]:
    """Local rank 0 of ``plan`` with ``policy`` for every rank whose cores are short, planned by
    the same planner (same cores, same transport)."""
    site = plan.site
    site_t = next((t for t in site.transports if t.name == plan.transport.name), None)
    nic_kind = site_t.nic_kind.value if site_t and site_t.nic_kind else None
    uses_nic = site_t is None or site_t.scope is TransportScope.inter_node

    def chooser(rank: RankCores, shape: RankShape, smt: bool) -> tuple[XstreamPolicy, str]:
        from bedrock_deploy.layout_policies import MERGING_POLICIES, choose
        chosen, why = choose(rank, shape, smt)
        return (policy, "benchmark candidate") if chosen.__name__ in MERGING_POLICIES \
            else (chosen, why)

    layout = plan_layout(Topology.from_node(site.node), plan.service, nic_kind,
                         uses_nic=uses_nic, choose_policy=chooser)
    return bedrock_config(plan.service, layout.ranks[0], plan.transport)


def variants(plan: DeploymentPlan, candidates: bool) -> dict[str, dict[str, Any]]:
    out = {"generated": plan.configs[0], BASELINE: engine_bench.primary_only(plan.configs[0])}
    if candidates:
        out.update({name: candidate_config(plan, fn) for name, fn in CANDIDATES.items()})
    return out


# ---- the run ---------------------------------------------------------------------------------

def run(out: Path, quick: bool, *, site: str = "local", service: Path = SERVICE,
        ppn: int | None = None, candidates: bool | None = None, rounds: int | None = None,
        seconds: float | None = None, writers: int = 2) -> Result:
    res = Result("layout_value", "Layout value: kv gets during abt_io writes, generated layout "
                 "vs the single-pool default (everything on __primary__), same run", quick)
    engine_bench.engine()
    seconds = seconds or (1.0 if quick else 8.0)
    rounds = rounds or (1 if quick else 3)
    candidates = (not quick) if candidates is None else candidates
    plan = make_plan(site, service, ppn)
    rank = plan.layout.ranks[0]
    if not set(rank.cpus) <= set(os.sched_getaffinity(0)):
        raise Skip(f"site {site!r} puts local rank 0 on CPUs {list(rank.cpus)}, which this "
                   f"host does not have (allowed: {sorted(os.sched_getaffinity(0))}); run it "
                   "on that site's node")
    protocol = plan.transport.protocol.removesuffix("://")
    configs = variants(plan, candidates)
    spare = sorted(set(os.sched_getaffinity(0)) - set(rank.cpus))
    decided = [c.line() for c in plan.layout.decisions if c.what.startswith("local rank 0 ")]
    res.parameters = {
        "seconds": seconds, "rounds": rounds, "kv_clients": 1, "io_writers": [0, writers],
        "write_bytes": 256 * 1024, "protocol": protocol, "site": site,
        "service": str(Path(service).resolve().relative_to(HERE.parent))
        if Path(service).resolve().is_relative_to(HERE.parent) else str(service),
        "processes_per_node": plan.processes_per_node, "server_cpus": list(rank.cpus),
        "client_cpus": spare or "unbound (no CPU outside the rank)",
        "generated_layout": decided, "variants": list(configs),
        "configs": {name: cfg["margo"]["argobots"] for name, cfg in configs.items()}}
    samples: dict[tuple[str, int], dict[str, Any]] = {}
    names = list(configs)
    with tempfile.TemporaryDirectory(prefix="layout_value-") as tmp:
        # abt_io's file RPCs are test-only in our engine: enabled here, beneath tmp
        engine_section = {"test_rpcs": ["abt_io"], "abt_io_directory": tmp}
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            load = os.getloadavg()[0]
            for name in order:
                for nw in (0, writers):
                    got = _measure(protocol, {**configs[name], "bedrock_engine": engine_section},
                                   list(rank.cpus), spare, seconds, nw, f"{name}-{r}")
                    acc = samples.setdefault((name, nw), {"kv": [], "count": 0, "secs": 0.0,
                                                           "bytes": 0, "io_secs": 0.0,
                                                           "writes": 0, "rounds": []})
                    acc["kv"] += got["samples"]
                    acc["count"] += got["count"]
                    acc["secs"] += got["secs"]
                    acc["bytes"] += got.get("bytes", 0)
                    acc["io_secs"] += got.get("io_secs", 0.0)
                    acc["writes"] += got.get("writes", 0)
                    acc["rounds"].append({"round": r, "loadavg_1min_before": load,
                                          **{k: v for k, v in summarize(got["samples"]).items()
                                             if k in ("median_us", "p99_us")},
                                          "kv_gets_per_second": got["count"] / got["secs"]})
    for (name, nw), acc in samples.items():
        row: dict[str, Any] = {"variant": name, "io_writers": nw, **summarize(acc["kv"]),
                               "kv_gets_per_second": acc["count"] / acc["secs"],
                               "per_round": acc["rounds"]}
        if nw:
            row["io_mib_per_second"] = acc["bytes"] / 2**20 / acc["io_secs"]
            row["io_writes"] = acc["writes"]
        res.results.append(row)
    by = {(r["variant"], r["io_writers"]): r for r in res.results}
    for nw in (0, writers):
        gen, base = by[("generated", nw)], by[(BASELINE, nw)]
        res.targets.append(Target(
            f"kv get p99, generated / single-pool default, {nw} writers",
            gen["p99_us"] / base["p99_us"], 1.0, "x",
            f"issue 18; {gen['p99_us']:.0f} vs {base['p99_us']:.0f} us"))
        res.targets.append(Target(
            f"kv gets/s, single-pool default / generated, {nw} writers",
            base["kv_gets_per_second"] / gen["kv_gets_per_second"], 1.0, "x",
            f"issue 18; {gen['kv_gets_per_second']:.0f} vs {base['kv_gets_per_second']:.0f}/s"))
    res.notes.append("generated layout of local rank 0: " + "; ".join(decided))
    if not spare:
        res.notes.append("the host has no CPU outside the rank: clients and server share the "
                         "rank's CPUs, so every layout also competes with the clients")
    _plot(res, out, writers)
    return res


def _measure(protocol: str, config: dict[str, Any], server_cpus: list[int], client_cpus:
             list[int], seconds: float, writers: int, prefix: str) -> dict[str, Any]:
    """One server with ``config``, one get client and ``writers`` pwrite clients (files named
    ``prefix-<i>.dat`` beneath the engine's abt_io directory)."""
    cpu = client_cpus[0] if client_cpus else None
    with engine_bench.server(protocol, config, server_cpus) as addr:
        specs: list[dict[str, Any]] = [{"kind": "get", "seconds": seconds, "cpu": cpu}]
        specs += [{"kind": "pwrite", "seconds": seconds, "path": f"{prefix}-{i}.dat",
                   "cpu": client_cpus[(i + 1) % len(client_cpus)] if client_cpus else None}
                  for i in range(writers)]
        got = engine_bench.clients(protocol, addr, specs)
    kv, io = got[0], got[1:]
    out: dict[str, Any] = {"samples": kv["samples_us"], "count": kv["count"],
                           "secs": kv["end"] - kv["start"]}
    if io:
        out["io_secs"] = max(g["end"] for g in io) - min(g["start"] for g in io)
        out["bytes"] = sum(g["bytes"] for g in io)
        out["writes"] = sum(g["count"] for g in io)
    return out


def _plot(res: Result, out: Path, writers: int) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    colour: Callable[[str], str] = lambda v: ("tab:blue" if v == "generated" else  # noqa: E731
                                              "tab:grey" if v == BASELINE else "tab:olive")
    for ax, key, label in ((axes[0], "p99_us", "kv get p99 (µs, log)"),
                           (axes[1], "kv_gets_per_second", "kv gets / s"),
                           (axes[2], "io_mib_per_second", f"abt_io writes, {writers} writers "
                            "(MiB/s)")):
        rows = [r for r in res.results if key in r]
        ax.bar([f"{r['variant']}\n{r['io_writers']} wr" for r in rows], [r[key] for r in rows],
               color=[colour(r["variant"]) for r in rows])
        ax.set_title(label, fontsize=10)
        ax.tick_params(axis="x", labelsize=6, rotation=60)
    axes[0].set_yscale("log")
    fig.suptitle("generated (blue) vs single-pool default (grey); other candidates (olive)",
                 fontsize=9)
    res.plot = save_plot(fig, out, res.name)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--site", default="local", help="site profile to plan for (local)")
    p.add_argument("--service", type=Path, default=SERVICE, help="service to plan (kv-io.yaml)")
    p.add_argument("--ppn", type=int, help="processes per node to plan for (the service's)")
    p.add_argument("--rounds", type=int, help="rounds, variants interleaved (3)")
    p.add_argument("--seconds", type=float, help="seconds per measurement (8)")
    p.add_argument("--writers", type=int, default=2, help="abt_io writer clients (2)")
    p.add_argument("--no-candidates", action="store_true",
                   help="only generated vs the single-pool default")
    p.add_argument("--quick", action="store_true", help="small sizes (harness check)")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"results directory ({RESULTS})")
    args = p.parse_args(argv)
    info = machine()
    t0 = time.perf_counter()
    res = run(args.out, args.quick, site=args.site, service=args.service, ppn=args.ppn,
              candidates=False if args.no_candidates else None, rounds=args.rounds,
              seconds=args.seconds, writers=args.writers)
    res.duration_s = time.perf_counter() - t0
    path = res.write(args.out, info)
    print(f"[bench] layout_value -> {path}")
    for t in res.targets:
        print(f"  {t.name}: {t.value:.3g} {t.unit} (<= {t.limit}) "
              f"{'met' if t.met else 'NOT met'} ({t.reference})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
