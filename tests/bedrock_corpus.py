"""The recorded behaviour of the real Bedrock 0.16.1 (``tests/data/bedrock-corpus``), and how
to run the same configurations through our engine and our validator and compare.

Used by ``tests/test_corpus_validator.py`` and ``tests/engine/test_corpus.py``. Run as a script
(``python tests/bedrock_corpus.py [--engine] [--validator]``) it prints the agreement figures
and every disagreement, which is how the figures in ``native/README.md`` were measured.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent / "data" / "bedrock-corpus"
RUNNING = re.compile(r"Bedrock daemon now running at (\S+)")
LOG_LINE = re.compile(
    r"^\[[0-9-]+ [0-9:.]+\] (\[(?:trace|debug|info|warning|error|critical)\] .*)$")
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_btl_tcp_if_include": "lo", "OMPI_MCA_oob_tcp_if_include": "lo"}


@dataclass(frozen=True)
class Case:
    id: str
    description: str
    mode: str  # "single" or "mpi2"
    cli_address: str | None  # the address given on the command line ("na+sm"), or None
    text: str  # the configuration, "<RUN>" standing for the run directory
    real: dict[str, Any]

    @property
    def accepted(self) -> bool:
        return bool(self.real["accepted"])

    def config_text(self, run_dir: Path | str) -> str:
        return self.text.replace("<RUN>", str(run_dir))

    @property
    def real_error(self) -> str | None:
        """The substance of the real daemon's first error (None if it started)."""
        line = self.real.get("first_error_line_norm")
        return substance(line) if line and not self.accepted else None

    @property
    def real_critical(self) -> str | None:
        line = self.real.get("first_critical_line_norm")
        return substance(line) if line and not self.accepted else None

    @property
    def real_warnings(self) -> list[str]:
        return [substance(w) for w in self.real.get("warnings", [])
                if w.startswith("[warning]")]


def load_cases() -> list[Case]:
    out = []
    with (CORPUS / "cases.tsv").open() as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            cid = row["id"]
            cli = row["cli_address"]
            out.append(Case(
                id=cid, description=row["description"], mode=row["mode"],
                cli_address=cli.split(":", 1)[1] if cli.startswith("cli:") else None,
                text=(CORPUS / "cases" / f"{cid}.json").read_text(),
                real=json.loads((CORPUS / "real" / f"{cid}.json").read_text())))
    return out


_THALLIUM_PREFIX = re.compile(r"^\[[^\]]*\.hpp:\d+\]\[[A-Za-z_]+\] ")
_THALLIUM_SUFFIX = re.compile(r": \[[^\]]*\.hpp:\d+\]\[[A-Za-z_]+\] .*$")
_OUR_PATH = re.compile(r' \(in "[^"]*"\)$')


def substance(line: str) -> str:
    """A log line without its level, Thallium's source locations and our JSON-path suffix."""
    text = line.strip()
    text = re.sub(r"^\[(?:trace|debug|info|warning|error|critical)\] ", "", text)
    text = _THALLIUM_PREFIX.sub("", text)
    text = _THALLIUM_SUFFIX.sub("", text)
    return _OUR_PATH.sub("", text).strip()


def replace_strings(obj: Any, mapping: dict[str, str]) -> Any:
    if isinstance(obj, str):
        for old, new in mapping.items():
            if old:
                obj = obj.replace(old, new)
        return obj
    if isinstance(obj, list):
        return [replace_strings(x, mapping) for x in obj]
    if isinstance(obj, dict):
        return {k: replace_strings(v, mapping) for k, v in obj.items()}
    return obj


def diff(real: Any, ours: Any, path: str = "") -> list[str]:
    """Where two JSON values differ (paths), compared exactly (key order ignored)."""
    if isinstance(real, dict) and isinstance(ours, dict):
        out: list[str] = []
        for k in sorted(set(real) | set(ours)):
            p = f"{path}.{k}" if path else k
            if k not in ours:
                out.append(f"{p}: missing (real: {json.dumps(real[k])[:120]})")
            elif k not in real:
                out.append(f"{p}: extra (ours: {json.dumps(ours[k])[:120]})")
            else:
                out += diff(real[k], ours[k], p)
        return out
    if isinstance(real, list) and isinstance(ours, list) and len(real) == len(ours):
        return [d for i, (a, b) in enumerate(zip(real, ours, strict=True))
                for d in diff(a, b, f"{path}[{i}]")]
    if real != ours or type(real) is not type(ours):
        return [f"{path}: real {json.dumps(real)[:120]} != ours {json.dumps(ours)[:120]}"]
    return []


COMPARED_SECTIONS = ("margo", "providers", "libraries", "bedrock")


def effective_diff(real: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    return diff({k: real.get(k) for k in COMPARED_SECTIONS},
                {k: ours.get(k) for k in COMPARED_SECTIONS})


# ---- the engine ------------------------------------------------------------------------------
@dataclass
class RankRun:
    address: str
    pid: int
    config: dict[str, Any] | None = None
    threads: dict[str, list[str]] = field(default_factory=dict)  # role -> [cpus]


@dataclass
class EngineRun:
    accepted: bool
    output: str
    ranks: list[RankRun] = field(default_factory=list)
    returncode: int | None = None

    def log_lines(self) -> list[str]:
        out = []
        # two MPI ranks may write into one line: split before each rank's own line
        text = re.sub(r"(?<!^)(?=\[critical\] rank \d+: )", "\n", self.output, flags=re.M)
        for raw in text.splitlines():
            m = LOG_LINE.match(raw.strip())
            if m:
                out.append(m.group(1))
            elif raw.startswith("[critical] "):  # bedrock-engine-mpi's own line
                out.append(raw)
        return out

    @property
    def first_error(self) -> str | None:
        for line in self.log_lines():
            if line.startswith(("[error]", "[critical]")):
                return substance(re.sub(r"^\[critical\] rank \d+: ", "[critical] ", line))
        return None

    @property
    def first_critical(self) -> str | None:
        for line in self.log_lines():
            if line.startswith("[critical]"):
                return substance(re.sub(r"^\[critical\] rank \d+: ", "[critical] ", line))
        return None


def _status_cpus(pid: int) -> dict[int, tuple[str, str]]:
    """tid -> (comm, Cpus_allowed_list) of every thread of pid."""
    out: dict[int, tuple[str, str]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            comm = (task / "comm").read_text().strip()
            for line in (task / "status").read_text().splitlines():
                if line.startswith("Cpus_allowed_list:"):
                    out[int(task.name)] = (comm, line.split(":", 1)[1].strip())
    return out


def _threads(pid: int, query: dict[str, Any], embedded: bool) -> dict[str, list[str]]:
    """Role -> CPU lists, with the corpus's roles: xstream names, '__primary__(main)',
    'other(non-margo)' (threads a component started). The engine's own helper threads (named
    'be-*') are left out as the corpus leaves out Open MPI's; under bedrock-engine-mpi
    (``embedded``: the engine inside Python) only xstreams and component threads count."""
    status = _status_cpus(pid)
    eng = query.get("bedrock_engine", {})
    named = {int(x["os_thread_id"]): str(x["name"]) for x in eng.get("xstreams", [])}
    component = {int(t["os_thread_id"]) for t in eng.get("threads", [])}
    out: dict[str, list[str]] = {}
    for tid, (comm, cpus) in sorted(status.items()):
        name = named.get(tid)
        if name is not None:
            role = "__primary__(main)" if name == "__primary__" else name
        elif tid in component or not (embedded or comm.startswith("be-")):
            role = "other(non-margo)"
        else:
            continue
        out.setdefault(role, []).append(cpus)
    return out


def real_threads(rank: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for t in rank.get("threads", []):
        if t["role"] == "openmpi":
            continue
        out.setdefault(t["role"], []).append(t["cpus"])
    return out


def thread_diff(real: dict[str, list[str]], ours: dict[str, list[str]],
                xstreams_only: bool = False) -> list[str]:
    out = []
    for role in sorted(set(real) | set(ours)):
        if xstreams_only and role == "other(non-margo)":
            continue
        a, b = sorted(real.get(role, [])), sorted(ours.get(role, []))
        if a != b:
            out.append(f"thread {role}: real CPUs {a} != ours {b}")
    return out


def _wait_running(proc: subprocess.Popen[str], count: int, timeout: float) -> tuple[list[str],
                                                                                   str]:
    """Read the process's output (raw, so no line is held in a buffer) until `count` daemons
    said they are running, the process ended, or the timeout."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        addresses = RUNNING.findall(data.decode(errors="replace"))
        if len(addresses) >= count:
            break
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
        elif proc.poll() is not None:
            break
    text = data.decode(errors="replace")
    return RUNNING.findall(text), text


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_engine(case: Case, bin_dir: Path, run_dir: Path, *, timeout: float = 20.0,
               extra_env: dict[str, str] | None = None) -> EngineRun:
    """Start the case as the real run did, query every rank, read its threads, shut it down."""
    cfg = run_dir / "config.json"
    cfg.write_text(case.config_text(run_dir))
    env = {**os.environ, **(extra_env or {})}
    addr = [case.cli_address] if case.cli_address else []
    if case.mode == "mpi2":
        if shutil.which("mpirun.openmpi") is None:
            raise RuntimeError("mpirun.openmpi is not installed")
        env.update(MPI_ENV)
        cmd = ["mpirun.openmpi", "-np", "2", sys.executable, "-m", "bedrock_deploy.engine_mpi",
               *addr, "-c", str(cfg), "-v", "info"]
        count = 2
    else:
        # the recordings were made on CPUs 0-1: Argobots' default pinning starts from them
        pin = ["taskset", "-c", "0,1"] if shutil.which("taskset") else []
        cmd = [*pin, str(bin_dir / "bedrock-engine"), *addr, "-c", str(cfg), "-v", "info"]
        count = 1
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=run_dir, start_new_session=True)
    try:
        addresses, output = _wait_running(proc, count, timeout)
        run = EngineRun(accepted=len(addresses) == count and proc.poll() is None, output=output)
        if not run.accepted:
            _stop(proc)
            assert proc.stdout is not None
            rest = proc.stdout.buffer.read() if proc.stdout.buffer else b""
            run.output = (run.output + rest.decode(errors="replace")).replace(str(run_dir),
                                                                              "<RUN>")
            run.returncode = proc.returncode
            return run
        time.sleep(0.3)  # let component threads (rocksdb, urings) appear
        real_ranks = case.real.get("ranks") or []
        provider_id = 0
        if real_ranks and real_ranks[0].get("config"):
            provider_id = int(real_ranks[0]["config"]["bedrock"]["provider_id"])
        queries: list[tuple[str, dict[str, Any] | None]] = []
        for address in addresses:
            q = subprocess.run([str(bin_dir / "bedrock-engine-query"), address.split(":")[0],
                                "-a", address,
                                "-i", str(provider_id)], capture_output=True, text=True,
                               timeout=30)
            queries.append((address, json.loads(q.stdout)[address] if q.returncode == 0
                            else None))
        # the corpus names addresses <ADDR> (one process) or <ADDR0>, <ADDR1> (by MPI rank)
        queries.sort(key=lambda aq: int((aq[1] or {}).get("bedrock_engine", {}).get("rank", 0)))
        names = {a: "<ADDR>" if count == 1 else f"<ADDR{i}>" for i, (a, _q) in
                 enumerate(queries)}
        for address, query in queries:
            rank = RankRun(address=address, pid=0)
            if query is not None:
                pid = int(query.get("bedrock_engine", {}).get("pid", 0))
                rank.pid = pid
                rank.config = replace_strings(
                    {k: v for k, v in query.items() if k != "bedrock_engine"},
                    {**names, str(run_dir): "<RUN>"})
                if pid:
                    rank.threads = _threads(pid, query, embedded=case.mode == "mpi2")
            run.ranks.append(rank)
        for rank in run.ranks:
            address = rank.address
            pid_arg = ["-i", str(rank.config["bedrock"]["provider_id"])] if rank.config else []
            subprocess.run([str(bin_dir / "bedrock-engine-shutdown"), address.split(":")[0],
                            "-a", address,
                            *pid_arg], capture_output=True, text=True, timeout=30)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        return run
    finally:
        _stop(proc)
        if proc.stdout is not None:
            with contextlib.suppress(ValueError, OSError):
                proc.stdout.close()


@dataclass
class Verdict:
    case: Case
    accepted: bool
    detail: list[str] = field(default_factory=list)  # what disagrees
    stricter_quoted: bool = False  # rejected where real warned, quoting the warning

    @property
    def agrees(self) -> bool:
        return self.accepted == self.case.accepted and not self.detail


def engine_verdict(case: Case, run: EngineRun) -> Verdict:
    v = Verdict(case, run.accepted)
    if run.accepted != case.accepted:
        v.detail.append(f"real {'accepted' if case.accepted else 'rejected'}, engine "
                        f"{'accepted' if run.accepted else 'rejected'}: "
                        f"{run.first_error or ''}")
        return v
    if not case.accepted:
        if run.first_error != case.real_error:
            v.detail.append(f"first error: real {case.real_error!r} != ours {run.first_error!r}")
        return v
    for i, (real_rank, ours) in enumerate(zip(case.real["ranks"], run.ranks, strict=False)):
        if ours.config is None:
            v.detail.append(f"rank {i}: query failed")
            continue
        v.detail += [f"rank {i}: {d}" for d in effective_diff(real_rank["config"], ours.config)]
        v.detail += [f"rank {i}: {d}" for d in thread_diff(real_threads(real_rank), ours.threads)]
    return v


# ---- the validator ---------------------------------------------------------------------------
def validator_verdict(case: Case, run_dir: Path | None = None) -> Verdict:
    from bedrock_deploy.bedrock_validator import load_json_located, validate_config
    from bedrock_deploy.diagnostics import InputError

    run_dir = run_dir or Path(tempfile.gettempdir()) / "bedrock-corpus-run"
    try:
        doc = load_json_located(case.config_text(run_dir), f"{case.id}.json")
    except InputError as err:
        return _validator_result(case, [p.message for p in err.problems])
    kwargs: dict[str, Any] = {"cli_address": case.cli_address or "",
                              "total_processes": 2 if case.mode == "mpi2" else 1}
    try:
        issues = validate_config(doc.data, locate=doc.locate, **kwargs)
    except TypeError:  # a validator without these parameters
        issues = validate_config(doc.data, locate=doc.locate)
    return _validator_result(case, [i.message for i in issues if i.severity == "error"])


def _validator_result(case: Case, errors: list[str]) -> Verdict:
    v = Verdict(case, not errors)
    if v.accepted == case.accepted:
        if not v.accepted and not any(
                (case.real_error and case.real_error in e)
                or (case.real_critical and case.real_critical in e) for e in errors):
            v.detail.append(f"no error quotes the real one ({case.real_error!r}): "
                            + " | ".join(errors))
        return v
    if not v.accepted and case.accepted and case.real_warnings and all(
            any(w in e for w in case.real_warnings) for e in errors):
        v.stricter_quoted = True
        v.detail.append("stricter, quoting the real warning: " + " | ".join(errors))
        return v
    v.detail.append(f"real {'accepted' if case.accepted else 'rejected'}, validator "
                    f"{'accepted' if v.accepted else 'rejected'}: " + " | ".join(errors))
    return v


# ---- figures ---------------------------------------------------------------------------------
def _report(name: str, verdicts: list[Verdict]) -> None:
    n = len(verdicts)
    same = sum(v.accepted == v.case.accepted for v in verdicts)
    full = sum(v.agrees for v in verdicts)
    quoted = sum(v.stricter_quoted for v in verdicts)
    print(f"{name}: accept/reject agrees on {same}/{n} ({100 * same / n:.0f}%); "
          f"also same first error / effective config on {full}/{n} ({100 * full / n:.0f}%)"
          + (f"; {quoted} stricter with the real warning quoted" if quoted else ""))
    for v in verdicts:
        if not v.agrees:
            print(f"  {v.case.id}:")
            for d in v.detail[:12]:
                print(f"      {d}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--engine", action="store_true")
    p.add_argument("--validator", action="store_true")
    p.add_argument("--only", nargs="*", help="case ids")
    args = p.parse_args(argv)
    cases = [c for c in load_cases() if not args.only or c.id in args.only]
    if args.validator or not args.engine:
        _report("validator", [validator_verdict(c) for c in cases])
    if args.engine:
        from bedrock_deploy.engine import engine_dir

        bin_dir = engine_dir()
        assert bin_dir is not None
        verdicts = []
        for c in cases:
            with tempfile.TemporaryDirectory(prefix=f"corpus-{c.id}-") as d:
                verdicts.append(engine_verdict(c, run_engine(c, bin_dir, Path(d))))
        _report("engine", verdicts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
