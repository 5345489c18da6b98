#!/usr/bin/env python3
"""Run every benchmark of bedrock-deploy and write ``results/<name>.json`` + ``<name>.png``.

    python3 benchmarks/run_all.py            # full run (about 10 minutes on 2 cores)
    python3 benchmarks/run_all.py --quick    # small sizes: checks the harness, not the figures
    python3 benchmarks/run_all.py --only raw_baselines engine_latency --out /tmp/results

A benchmark that cannot run here (engine not built, no compiler) is written with status
"skipped" and the reason; one that breaks is written with status "failed" and the error, and the
exit status is 1. ``results/summary.json`` lists every benchmark and every target.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import engine_bench
import generator_scale
import layout_value
import raw_baselines
from bench_util import RESULTS, Result, Skip, machine

BENCHMARKS = ("generator_scale", "raw_baselines", "engine_latency", "engine_throughput",
              "layout_value")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes (harness check)")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"results directory ({RESULTS})")
    p.add_argument("--only", nargs="+", choices=BENCHMARKS, metavar="NAME",
                   help="run only these: " + ", ".join(BENCHMARKS))
    args = p.parse_args(argv)
    out: Path = args.out
    selected = args.only or list(BENCHMARKS)
    info = machine()
    raw: dict[str, dict[str, object]] = {}

    def raw_figures() -> dict[str, dict[str, object]]:
        if not raw:
            prev = out / "raw_baselines.json"
            if prev.is_file():
                data = json.loads(prev.read_text())
                raw.update({r["mode"]: r for r in data.get("results", [])})
        return raw

    def do_raw() -> Result:
        r = raw_baselines.run(out, args.quick)
        raw.update({row["mode"]: row for row in r.results})
        return r

    runners: dict[str, Callable[[], Result]] = {
        "generator_scale": lambda: generator_scale.run(out, args.quick),
        "raw_baselines": do_raw,
        "engine_latency": lambda: engine_bench.run_latency(out, args.quick, raw_figures()),
        "engine_throughput": lambda: engine_bench.run_throughput(out, args.quick),
        "layout_value": lambda: layout_value.run(out, args.quick),
    }
    summary = []
    failed = False
    for name in BENCHMARKS:
        if name not in selected:
            continue
        print(f"[bench] {name} ...", flush=True)
        t0 = time.perf_counter()
        try:
            res = runners[name]()
        except Skip as why:
            res = Result(name, name, args.quick, status="skipped", reason=str(why))
        except Exception as err:  # a broken benchmark is reported, the others still run
            failed = True
            res = Result(name, name, args.quick, status="failed",
                         reason=f"{type(err).__name__}: {err}")
            res.notes.append(traceback.format_exc())
        res.duration_s = time.perf_counter() - t0
        path = res.write(out, info)
        line = f"[bench] {name}: {res.status}"
        line += f" ({res.reason})" if res.reason else f" in {res.duration_s:.1f} s -> {path}"
        print(line, flush=True)
        for t in res.targets:
            verdict = {True: "met", False: "NOT met", None: "n/a"}[t.met]
            value = "-" if t.value is None else f"{t.value:.3g}"
            print(f"         target {t.name}: {value} {t.unit} (<= {t.limit}) {verdict}")
    # every result file in OUT, so `--only` updates one benchmark and keeps the others
    for name in BENCHMARKS:
        path = out / f"{name}.json"
        if path.is_file():
            data = json.loads(path.read_text())
            summary.append({key: data[key] for key in
                            ("benchmark", "status", "reason", "quick", "started", "plot",
                             "targets")})
    (out / "summary.json").write_text(json.dumps(
        {"machine": info, "benchmarks": summary}, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
