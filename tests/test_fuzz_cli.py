"""Fuzzing the command line with hypothesis: mutated shipped inputs through the real commands.

Seeds are what the project ships or records: site profiles, service descriptions, Bedrock JSON
configs (examples and golden files) and margo-info / fi_info / hg_info outputs. Each example
mutates one seed, either as bytes (flips, cuts, duplicated and deleted ranges, hostile tokens:
NUL, undecodable bytes, escape sequences, ``:100:``, aliases, deep nesting, huge numbers, path
escapes, shell syntax) or as data (a value replaced by a hostile one, then written back as YAML
or JSON, so the mutation reaches the semantic checks and the generator), and runs the command
that reads it in-process (:mod:`fuzzing`). Every outcome must be accepted (exit 0) or refused
with located, hinted problems (exit 2); no traceback, no time or memory limit hit, no control
character printed (:func:`fuzzing.verdict`).

Deterministic: hypothesis derandomized, a fixed number of examples per target. The budget is
``BEDROCK_DEPLOY_FUZZ_EXAMPLES`` (default 10,200 in total; CI runs the default), split over the
targets below. The figures of a run (inputs, outcomes, slowest input) are written to
``fuzz-summary.json`` in pytest's temporary directory and printed with ``-s``.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from fuzzing import ROOT, Outcome, run_cli, verdict

TOTAL = int(os.environ.get("BEDROCK_DEPLOY_FUZZ_EXAMPLES", "10200"))
SHARES = {"profile": 0.22, "service": 0.14, "generate": 0.10, "bedrock-json": 0.18,
          "margo-info": 0.14, "fi-info": 0.12, "hg-info": 0.10}

PROFILES = sorted((ROOT / "site-profiles").glob("*.yaml"))
SERVICES = sorted((ROOT / "share" / "examples").glob("*.yaml"))
BEDROCK_JSON = [ROOT / "share" / "examples" / "mofka-config.json",
                *sorted((ROOT / "tests" / "golden" / "configs").glob("*/rank-*.json"))[:4]]
REPORTS = ROOT / "tests" / "data" / "transports"
MARGO_INFO = sorted(p for p in REPORTS.iterdir() if "margo-info" in p.name
                    or p.name.endswith("bedrock-engine-info.txt"))
FI_INFO = sorted(p for p in REPORTS.iterdir() if "fi_info" in p.name)
HG_INFO = sorted(p for p in REPORTS.iterdir() if "hg_info" in p.name)

TOKENS = [b"\x00", b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"\x1b[31m", b"\x1b]0;x\x07",
          b"\x9b", b"\xe2\x80\xae", b"\xe2\x80\xa8", b":100:", b"\n", b"\r\n", b"\t", b" ",
          b"&a ", b"*a", b"<<: *a\n", b"!!binary ", b"!!python/object:os.system ", b"!x ",
          b"[" * 80, b"{" * 80, b"- " * 40, b"9" * 30, b"9" * 5000, b"-1", b"0", b"1e999",
          b"NaN", b".nan", b"../../victim.txt", b"/etc/passwd", b"'", b'"', b"\\", b"${x}",
          b"$(touch pwned)", b"`touch pwned`", b"; touch pwned", b"10000000", b"0x", b"true",
          b"null", b"~", b"---\n", b"%YAML 1.1\n", b"? ", b": ", b",", b"#", b"|\n", b"{}",
          b"[]", b"\"\\u0000\"", b"\"\\ud800\"", b"\"\\e[2J\"", b"0-4000000000", b"2001-13-45"]
HOSTILE_VALUES: list[Any] = [
    None, True, False, 0, -1, 1, 2, 65535, 65536, 10_000_000, 2**63, 2**64, 10**19, 10**25, 1.5,
    -0.0, 1e300, "", "x", "a" * 300, "../../victim.txt", "/etc/passwd", "~/x", "FOO\n",
    "x\ntouch pwned", "$(touch pwned)", "'; touch pwned; '", "\x1b[31mred", ":100:",
    "\u202ertl", "0-4000000000", "0-7", "ofi+tcp://", "na+sm://", "cxi://", "x://y",
    "__primary__", "mpi", "join", "static", "map", "rocksdb", [], [1, 2], ["a", "b"], {},
    {"a": 1}, {"file": "../../x"}, {"path": "/abs"}, [[[[[[[[1]]]]]]]],
]


@functools.cache
def _seed_text(path: Path) -> bytes:
    return path.read_bytes()


@st.composite
def byte_mutation(draw: st.DrawFn, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.integers(0, 6))
        n = len(out)
        at = draw(st.integers(0, n)) if n else 0
        if op == 0 and n:  # flip a byte
            out[min(at, n - 1)] = draw(st.integers(0, 255))
        elif op == 1:  # insert a hostile token
            out[at:at] = draw(st.sampled_from(TOKENS))
        elif op == 2 and n:  # delete a range
            end = min(n, at + draw(st.integers(1, 64)))
            del out[at:end]
        elif op == 3 and n:  # duplicate a range
            end = min(n, at + draw(st.integers(1, 200)))
            out[at:at] = out[at:end] * draw(st.integers(1, 8))
        elif op == 4:  # truncate
            del out[at:]
        elif op == 5:  # replace a range with a token
            end = min(n, at + draw(st.integers(0, 16)))
            out[at:end] = draw(st.sampled_from(TOKENS))
        else:  # random bytes
            out[at:at] = draw(st.binary(min_size=1, max_size=16))
    return bytes(out)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*path, i))


def _set(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = node
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    return node


@st.composite
def data_mutation(draw: st.DrawFn, data: Any, as_json: bool) -> bytes:
    """Replace, delete or add values of a parsed seed; written back as YAML or JSON."""
    doc = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        op = draw(st.integers(0, 3))
        if op == 0 or not path:
            doc = _set(doc, path, copy.deepcopy(draw(st.sampled_from(HOSTILE_VALUES))))
        elif op == 1:  # delete it
            parent = doc
            for part in path[:-1]:
                parent = parent[part]
            del parent[path[-1]]
        elif op == 2:  # a hostile value under a new or existing key of a mapping
            target = doc
            for part in path:
                target = target[part]
            if isinstance(target, dict):
                key = draw(st.sampled_from(["file", "path", "env", "nodes", "name", "x",
                                            "FOO\n", "cores_per_socket", "provider_id"]))
                target[key] = copy.deepcopy(draw(st.sampled_from(HOSTILE_VALUES)))
            else:
                doc = _set(doc, path, copy.deepcopy(draw(st.sampled_from(HOSTILE_VALUES))))
        else:  # a numeric value scaled up
            doc = _set(doc, path, draw(st.sampled_from([10**6, 10**9, 8192, 8193, 1025])))
    if as_json:
        return json.dumps(doc, indent=2).encode()
    import io

    buf = io.StringIO()
    YAML(typ="safe").dump(doc, buf)
    return buf.getvalue().encode()


@functools.cache
def _parsed(path: Path) -> Any:
    if path.suffix == ".json":
        return json.loads(path.read_text())
    return YAML(typ="safe").load(path.read_text())


def mutated(seeds: list[Path], structured: bool) -> st.SearchStrategy[tuple[Path, bytes]]:
    """(seed, mutated bytes) for one of ``seeds``."""
    def one(seed: Path) -> st.SearchStrategy[tuple[Path, bytes]]:
        strategies = [byte_mutation(_seed_text(seed))]
        if structured:
            strategies.append(data_mutation(_parsed(seed), seed.suffix == ".json"))
        return st.tuples(st.just(seed), st.one_of(*strategies))

    return st.sampled_from(seeds).flatmap(one)


# ---- running and recording ----------------------------------------------------------------
COLLECT: list[str] | None = [] if os.environ.get("BEDROCK_DEPLOY_FUZZ_COLLECT") else None
STATS: dict[str, Counter[str]] = {}
TIMES: dict[str, list[float]] = {}


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bedrock-deploy-fuzz-") as d:
        yield Path(d)


@pytest.fixture(scope="module", autouse=True)
def summary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield
    report = {name: {"inputs": sum(c.values()), "outcomes": dict(c),
                     "seconds": round(sum(TIMES[name]), 1),
                     "slowest_input_seconds": round(max(TIMES[name], default=0), 3)}
              for name, c in STATS.items()}
    report["total"] = {"inputs": sum(sum(c.values()) for c in STATS.values()),
                       "seconds": round(sum(sum(t) for t in TIMES.values()), 1)}
    out = tmp_path_factory.getbasetemp() / "fuzz-summary.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nfuzz summary ({out}):\n{json.dumps(report, indent=2)}")
    if COLLECT:
        (out.parent / "fuzz-failures.txt").write_text("\n\n".join(COLLECT))
        print(f"{len(COLLECT)} failure(s) in {out.parent / 'fuzz-failures.txt'}")


def check(target: str, scratch: Path, files: dict[str, bytes],
          argv: Callable[[Path], list[str]], extra: Callable[[Outcome, Path], str | None]
          | None = None) -> None:
    work = Path(tempfile.mkdtemp(dir=scratch))
    try:
        for name, data in files.items():
            (work / name).write_bytes(data)
        outcome = run_cli(argv(work), work)
        STATS.setdefault(target, Counter())[outcome.kind] += 1
        TIMES.setdefault(target, []).append(outcome.seconds)
        problem = verdict(outcome) or (extra(outcome, work) if extra else None)
        if problem and COLLECT is not None:  # exploring: gather every failure, stop at none
            COLLECT.append(f"{target}: {' '.join(outcome.argv)}\n{problem}")
        elif problem:
            keep = scratch.parent / f"fuzz-failure-{target}"
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(work, keep)
            raise AssertionError(f"{target}: {' '.join(outcome.argv)}\n{problem}\n"
                                 f"(input kept in {keep})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def budget(target: str) -> settings:
    return settings(max_examples=max(1, int(TOTAL * SHARES[target])), derandomize=True,
                    database=None, deadline=None, phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck), report_multiple_bugs=False)


# ---- the targets ---------------------------------------------------------------------------
@budget("profile")
@given(case=mutated(PROFILES, structured=True))
def test_fuzz_site_profiles(scratch: Path, case: tuple[Path, bytes]) -> None:
    seed, data = case
    check("profile", scratch, {seed.name: data},
          lambda w: ["sites", "validate", str(w / seed.name)])


@budget("service")
@given(case=mutated(SERVICES, structured=True))
def test_fuzz_service_descriptions(scratch: Path, case: tuple[Path, bytes]) -> None:
    seed, data = case
    files = {seed.name: data,
             "mofka-config.json": (ROOT / "share/examples/mofka-config.json").read_bytes()}
    check("service", scratch, files, lambda w: ["service", "validate", str(w / seed.name)])


def _scripts_parse(outcome: Outcome, work: Path) -> str | None:
    """A generated deployment's scripts must be valid bash and hold no injected command."""
    if outcome.status != 0:
        return None
    for script in (work / "out" / "scripts").glob("*"):
        if script.suffix == ".json":
            continue
        done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        if done.returncode != 0:
            return f"{script.name} is not valid bash: {done.stderr}"
        for line in script.read_text().splitlines():
            if line.strip().startswith(("touch pwned", "$(touch", "`touch")):
                return f"{script.name}: injected line {line!r}"
    return None


@budget("generate")
@given(case=mutated(SERVICES + PROFILES[:4], structured=True))
def test_fuzz_generate(scratch: Path, case: tuple[Path, bytes]) -> None:
    seed, data = case
    files = {seed.name: data,
             "mofka-config.json": (ROOT / "share/examples/mofka-config.json").read_bytes()}
    if seed.parent.name == "site-profiles":
        service, site = str(ROOT / "share/examples/kv-service.yaml"), seed.name
    else:
        service, site = seed.name, "generic-slurm-tcp"
    check("generate", scratch, files,
          lambda w: ["generate", "--site", site if site == "generic-slurm-tcp"
                     else str(w / site), "--service", str(w / service)
                     if service == seed.name else service, "-o", str(w / "out")],
          extra=_scripts_parse)


@budget("bedrock-json")
@given(case=mutated(BEDROCK_JSON, structured=True), command=st.sampled_from(
    [["validate"], ["validate", "--site", "aurora"], ["service", "validate"]]))
def test_fuzz_bedrock_json(scratch: Path, case: tuple[Path, bytes], command: list[str]) -> None:
    _seed, data = case
    check("bedrock-json", scratch, {"config.json": data},
          lambda w: [*command, str(w / "config.json")])


@budget("margo-info")
@given(case=mutated(MARGO_INFO, structured=False))
def test_fuzz_margo_info(scratch: Path, case: tuple[Path, bytes]) -> None:
    seed, data = case
    check("margo-info", scratch, {seed.name: data},
          lambda w: ["transports", "--site", "generic-slurm-tcp", "--margo-info",
                     str(w / seed.name)])


@budget("fi-info")
@given(case=mutated(FI_INFO, structured=False))
def test_fuzz_fi_info(scratch: Path, case: tuple[Path, bytes]) -> None:
    seed, data = case
    check("fi-info", scratch, {seed.name: data},
          lambda w: ["transports", "--site", "generic-slurm-ib", "--fi-info",
                     str(w / seed.name)])


@budget("hg-info")
@given(case=mutated(HG_INFO, structured=False))
def test_fuzz_hg_info(scratch: Path, case: tuple[Path, bytes]) -> None:
    seed, data = case
    check("hg-info", scratch, {seed.name: data},
          lambda w: ["transports", "--site", "generic-slurm-tcp", "--hg-info",
                     str(w / seed.name)])
