"""The rules of `bedrock-deploy rehearse`, without the test cluster: the emulated qsub, sbatch,
srun and PALS mpiexec parse and check what a job asks for exactly as documented; the rules file
names every check the code makes; the CPU map and its preloaded library; the engine's emulated
CXI fabric refuses a process without a VNI, naming the cause and the fix.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bedrock_deploy.rehearse import environment, pals, pbs, slurm
from bedrock_deploy.rehearse.common import Context, format_cpus, parse_cpus, read_events
from bedrock_deploy.rehearse.run import load_rules

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "generator" / "bedrock_deploy"


def make_context(tmp_path: Path, **overrides: Any) -> Context:
    """A rehearsal context for a 208-CPU node (Aurora-like) with the given scheduler facts."""
    data: dict[str, Any] = {
        "site": "aurora", "site_node": {"cpus": 208, "threads_per_core": 2, "sockets": 2,
                                        "core_cpus": [[c, c + 104] for c in range(104)]},
        "site_scheduler": {"type": "pbs", "partition": None, "account": None,
                           "account_required": True,
                           "account_error": "qsub: Account_Name is required to be set.",
                           "login_shell": True,
                           "queues": [{"name": "debug", "option": "queue", "min_nodes": 1,
                                       "max_nodes": 2, "max_walltime": "01:00:00"},
                                      {"name": "prod", "option": "queue", "min_nodes": 256,
                                       "max_nodes": 1024, "max_walltime": "12:00:00"},
                                      {"name": "debug", "option": "qos", "min_nodes": 1,
                                       "max_nodes": None, "max_walltime": "02:00:00"}]},
        "cpu_map": environment.cpu_map(208, [0, 1]), "modules": ["PrgEnv-gnu/8.6.0"],
        "ppn": 2,
    }
    data.update(overrides)
    path = tmp_path / "context.json"
    path.write_text(json.dumps(data))
    return Context.load(path)


def failed(ctx: Context) -> dict[str, str]:
    return {e["rule"]: e["detail"] for e in read_events(ctx.dir) if not e["ok"]}


def qsub_check(ctx: Context, script: str, *cmdline: str) -> dict[str, Any]:
    sub = pbs.Submission()
    pbs.read_script(script, sub)
    merged = pbs.Submission(shebang=sub.shebang, problems=list(sub.problems))
    cmd = pbs.Submission()
    pbs.split_options(list(cmdline), "command line", cmd)
    for opt, value, where in sub.options + cmd.options:
        pbs._add_option(merged, opt[1:], value, where)
    merged.problems += cmd.problems
    return pbs.check(merged, ctx)


GOOD = """#!/bin/bash -l
#PBS -N kv
#PBS -l select=2
#PBS -l place=scatter
#PBS -l walltime=00:30:00
#PBS -j oe
#PBS -q debug
#PBS -A PROJECT
#PBS -l filesystems=flare
set -euo pipefail
"""


# ---- PBS -------------------------------------------------------------------------------------
def test_qsub_accepts_a_well_formed_job(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    attrs = qsub_check(ctx, GOOD)
    assert attrs["problems"] == [] and failed(ctx) == {}
    assert attrs["nodes"] == 2 and attrs["walltime"] == 1800 and attrs["queue"] == "debug"


def test_qsub_refuses_a_job_without_the_account_the_site_requires(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    qsub_check(ctx, GOOD.replace("#PBS -A PROJECT\n", ""))
    assert failed(ctx) == {"pbs.account": "qsub: Account_Name is required to be set."}
    (tmp_path / "b").mkdir()
    ctx2 = make_context(tmp_path / "b")  # the command line gives it
    assert qsub_check(ctx2, GOOD.replace("#PBS -A PROJECT\n", ""), "-A", "P2")["account"] == "P2"


def test_qsub_refuses_more_nodes_than_the_queue_takes(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    attrs = qsub_check(ctx, GOOD.replace("select=2", "select=4"))
    assert "pbs.queue" in failed(ctx) and "takes 1-2 node(s)" in failed(ctx)["pbs.queue"]
    assert attrs["problems"]


def test_qsub_walltime_above_the_queue_limit_and_bad_syntax(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    qsub_check(ctx, GOOD.replace("walltime=00:30:00", "walltime=02:00:00"))
    assert "above the limit of queue 'debug'" in failed(ctx)["pbs.walltime"]
    (tmp_path / "b").mkdir()
    ctx = make_context(tmp_path / "b")
    qsub_check(ctx, GOOD.replace("walltime=00:30:00", "walltime=1h"))
    assert "is not [[HH:]MM:]SS" in failed(ctx)["pbs.walltime"]


@pytest.mark.parametrize(("old", "new", "rule"), [
    ("place=scatter", "place=spread", "pbs.place"),
    ("place=scatter", "place=:scatter", "pbs.place"),
    ("select=2", "select=2:ncpus=300", "pbs.select"),
    ("select=2", "select=2:ncpus", "pbs.select"),
    ("select=2", "select=2,ncpus", "pbs.directives"),
    ("-N kv", "-N -kv", "pbs.name"),
    ("-j oe", "-j eo2", "pbs.join"),
    ("-q debug", "-q nosuch", "pbs.queue"),
    ("#PBS -j oe", "#PBS -Z oe", "pbs.directives"),
])
def test_qsub_syntax_rules(tmp_path: Path, old: str, new: str, rule: str) -> None:
    ctx = make_context(tmp_path)
    assert old in GOOD
    qsub_check(ctx, GOOD.replace(old, new))
    assert rule in failed(ctx), failed(ctx)


def test_qsub_ignores_directives_after_the_first_command(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    qsub_check(ctx, GOOD + "#PBS -l walltime=05:00:00\n")
    assert "comes after the first command" in failed(ctx)["pbs.directives"]


def test_qsub_v_list_with_quoted_commas() -> None:
    assert pbs.parse_v("a=1,\"b='x,y'\",c=") == {"a": "1", "b": "x,y", "c": ""}
    assert isinstance(pbs.parse_v("1a=2"), str)


def test_pbs_nodefile_repeats_hosts_mpiprocs_times() -> None:
    chunks = pbs.select_chunks("2:ncpus=128:mpiprocs=4+1:ncpus=0")
    assert not isinstance(chunks, str)
    assert [pbs._mpiprocs(res) for _, res in chunks] == [4, 0]
    assert pbs._mpiprocs({}) == 1


# ---- Slurm -----------------------------------------------------------------------------------
def test_sbatch_checks_partition_qos_account_and_the_node(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    opts, _, _ = slurm.parse_options(slurm.script_directives(
        "#!/bin/bash\n#SBATCH --nodes=4\n#SBATCH --partition=debug\n#SBATCH --qos=debug\n"
        "#SBATCH --time=03:00:00\n#SBATCH --ntasks-per-node=4\n#SBATCH --cpus-per-task=64\n"
        "#SBATCH --threads-per-core=4\nsrun hostname\n#SBATCH --nodes=1\n"))
    assert opts["nodes"] == "4"  # the directive after the command is not read
    refusals = slurm.check_job(ctx, opts)
    fails = failed(ctx)
    assert "4 node(s) do not fit partition 'debug'" in fails["slurm.partition"]
    assert "above the limit of qos 'debug'" in fails["slurm.partition"]
    assert fails["slurm.account"] == "qsub: Account_Name is required to be set."
    assert "4 task(s) x 64 CPU(s)" in fails["slurm.resources"]
    assert "--threads-per-core=4" in fails["slurm.resources"]
    assert len(refusals) == 5


def test_srun_cpu_bind_masks_per_local_rank(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    problems: list[str] = []
    masks = "verbose,mask_cpu:0x3,0x" + format(3 << 104, "x")
    assert slurm.site_cpu_sets(ctx, masks, 2, problems) == [[0, 1], [104, 105]]
    assert slurm.site_cpu_sets(ctx, "map_cpu:5,7", 3, problems) == [[5], [7], [5]]
    assert slurm.site_cpu_sets(ctx, "none", 1, problems) == [list(range(208))]
    assert problems == []
    slurm.site_cpu_sets(ctx, "rank_ldom", 1, problems)
    assert problems and "emulates none, mask_cpu and map_cpu" in problems[0]


# ---- PALS ------------------------------------------------------------------------------------
def test_pals_options_and_bindings(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    opts, program, problems = pals.parse(
        ["-n", "4", "-ppn", "2", "--cpu-bind", "list:1,2,105:53-54", "-envall",
         "--single-node-vni", "./a.out", "-x"])
    assert problems == [] and program == ["./a.out", "-x"]
    assert opts["ppn"] == "2" and opts["single_node_vni"] and opts["envall"]
    probs: list[str] = []
    assert pals.binding(ctx, opts["cpu_bind"], 2, 1, probs) == [[1, 2, 105], [53, 54]]
    assert pals.binding(ctx, "depth", 2, 3, probs) == [[0, 1, 2], [3, 4, 5]]
    assert pals.binding(ctx, None, 2, 1, probs) == [[0], [1]]  # one hardware thread each
    assert probs == []
    pals.binding(ctx, "list:1,2", 2, 1, probs)
    assert "1 CPU set(s) for 2 rank(s) per node" in probs[0]
    assert pals.parse(["--frobnicate", "x"])[2] == ["unknown option '--frobnicate'"]


def test_pals_vni_rules() -> None:
    rule = pals.vni_rule
    assert rule({}, 2, False, None) == (True, "an application on several nodes gets a VNI")
    assert rule({}, 1, True, "0")[0] is False  # a bare single-node mpiexec: none
    assert rule({"single_node_vni": True}, 1, True, "0")[0] is True
    gets, why = rule({"single_node_vni": True}, 1, True, None)
    assert not gets and "PALS_LOCAL_LAUNCH=0" in why  # the local-launch bug
    assert rule({"single_node_vni": True}, 1, False, None)[0] is True  # another node
    assert rule({"no_vni": True, "single_node_vni": True}, 2, False, "0")[0] is False


# ---- the CPU map, the rules file -------------------------------------------------------------
def test_cpu_map_is_deterministic_and_uses_every_host_cpu() -> None:
    m = environment.cpu_map(208, [0, 1])
    assert m == environment.cpu_map(208, [0, 1]) and len(m) == 208
    assert set(m) == {0, 1} and m[105] == 1 and m[104] == 0
    assert environment.cpu_map(4, [3, 5, 7]) == [3, 5, 7, 3]


def test_cpu_lists_round_trip() -> None:
    assert parse_cpus("1-2,105-106") == [1, 2, 105, 106]
    assert format_cpus([106, 1, 2, 105]) == "1-2,105-106"
    with pytest.raises(ValueError):
        parse_cpus("3-1")


def test_every_rule_the_code_checks_is_in_the_rules_file_with_a_source() -> None:
    rules = {r.id: r for r in load_rules()}
    recorded: set[str] = set()
    for py in (PACKAGE / "rehearse").glob("*.py"):
        text = py.read_text()
        recorded |= set(re.findall(r'event\(\s*"([a-z]+\.[a-z.-]+)"', text))
        recorded |= set(re.findall(r'\(\s*"([a-z]+\.[a-z-]+)",\s*(?:f?"|msg)', text))
        recorded |= set(re.findall(r'out\["([a-z]+\.[a-z.-]+)"\]', text))
    recorded = {r for r in recorded if r.split(".")[0] in
                {"pbs", "slurm", "pals", "launcher", "ompi", "cxi", "module", "spack", "engine",
                 "cpu", "job"}}
    assert recorded - set(rules) == set(), "rules checked by the code but not in rules.yaml"
    for rule in rules.values():
        assert rule.title and rule.real and rule.fix and rule.source, rule.id
    # every bracketed source is defined, with a public URL, in the file's header
    text = (ROOT / "share" / "rehearse" / "rules.yaml").read_text()
    defined = dict(re.findall(r"^#  \[([a-z-]+)\]\s+(.*)$", text, re.M))
    for rule in rules.values():
        for ref in re.findall(r"\[([a-z-]+)\]", rule.source):
            assert ref in defined and "https://" in defined[ref], (rule.id, ref)


def test_recorded_spack_root_is_read_from_the_job_script() -> None:
    script = "x\nSPACK_ROOT=${SPACK_ROOT:-/opt/s\\ p}\n"
    assert environment.recorded_spack_root(script) == "/opt/s p"
    assert environment.recorded_spack_root("SPACK_ROOT=${SPACK_ROOT:-''}\n") == ""
    assert environment.recorded_spack_root("no spack here") == ""


# ---- native: the CPU map library and the emulated CXI fabric ----------------------------------
def _preload() -> str:
    from bedrock_deploy.rehearse.run import _preload as find

    lib = find()
    if not lib:
        pytest.skip("libbedrock-rehearsal-cpus.so is not installed (bash .ci/install)")
    return lib


@pytest.mark.engine
def test_cpu_map_library_speaks_site_numbering_to_site_sized_callers() -> None:
    lib = _preload()
    env = {**os.environ, "LD_PRELOAD": lib, "BEDROCK_REHEARSAL_SITE_CPUS": "0-207",
           "BEDROCK_REHEARSAL_CPU_MAP": ",".join(str(c % 2) for c in range(208))}
    code = ("import ctypes, os\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "buf = ctypes.create_string_buffer(128)\n"  # a plain cpu_set_t: site numbering
            "assert libc.sched_getaffinity(0, 128, buf) == 0\n"
            "mask = int.from_bytes(buf.raw, 'little')\n"
            "print(sorted(c for c in range(1024) if mask >> c & 1))\n"
            "small = ctypes.create_string_buffer(8)\n"  # sized for this host: host numbering
            "assert libc.sched_getaffinity(0, 8, small) == 0\n"
            "print(sorted(c for c in range(64) if int.from_bytes(small.raw, 'little') >> c & 1))\n"
            "print(open('/proc/self/status').read().split('Cpus_allowed_list:')[1].split()[0])\n")
    out = subprocess.run(["taskset", "-c", "105-106", sys.executable, "-c", code], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    site, host, kernel = out.stdout.splitlines()
    assert json.loads(site) == [105, 106]  # taskset bound the site's CPUs 105-106...
    assert kernel == "0-1" and json.loads(host) == [0, 1]  # ...applied on host CPUs 1 and 0
    bad = subprocess.run(["taskset", "-c", "300", "true"], env=env, capture_output=True,
                         text=True, timeout=30)
    assert bad.returncode != 0 and "Invalid argument" in bad.stderr  # no such CPU on the node


def _engine_dir() -> Path:
    from bedrock_deploy.engine import engine_dir

    d = engine_dir()
    if d is None or not (Path(d) / "bedrock-engine").is_file():
        pytest.skip("compiled engine not installed")
    return Path(d)


@pytest.mark.engine
def test_emulated_cxi_needs_a_vni_from_the_launcher(tmp_path: Path) -> None:
    engine = _engine_dir()
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"libraries": ["libyokan-bedrock-module.so"], "providers": [
        {"name": "kv", "type": "yokan", "config": {"database": {"type": "map"}}}]}))
    base = {**os.environ, "BEDROCK_ENGINE_EMULATED_FABRICS": "cxi",
            "BEDROCK_ENGINE_EMULATED_IFACE": "lo"}
    for k in ("SLINGSHOT_VNIS", "SLINGSHOT_DEVICES", "SLINGSHOT_SVC_IDS"):
        base.pop(k, None)
    vni = {"SLINGSHOT_DEVICES": "cxi0", "SLINGSHOT_SVC_IDS": "6"}
    # no VNI: the endpoint is refused, the message names the variable and the fix
    done = subprocess.run([str(engine / "bedrock-engine"), "cxi://", "-c", str(config)],
                          env=base, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "SLINGSHOT_VNIS is not set" in done.stderr and "--single-node-vni" in done.stderr
    # without the emulation, cxi is simply not implemented by this engine
    plain = {k: v for k, v in base.items() if not k.startswith("BEDROCK_ENGINE_EMULATED")}
    done = subprocess.run([str(engine / "bedrock-engine"), "cxi://", "-c", str(config)],
                          env=plain, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "not implemented by bedrock-engine" in done.stderr
    # with the step VNI and the job VNI: the job's is used (margo >= 0.21)
    log = tmp_path / "engine.log"
    with open(log, "w") as out:
        server = subprocess.Popen([str(engine / "bedrock-engine"), "cxi://", "-c", str(config)],
                                  env={**base, **vni, "SLINGSHOT_VNIS": "5000,4001"},
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        address = ""
        for _ in range(100):
            m = re.search(r"now running at (\S+)", log.read_text())
            if m:
                address = m.group(1)
                break
            time.sleep(0.05)
        assert address.startswith("cxi://127.0.0.1:") and address.endswith("?vni=4001")
        query = [str(engine / "bedrock-engine-query"), "cxi://", "-a", address]
        same = subprocess.run(query, env={**base, **vni, "SLINGSHOT_VNIS": "5001,4001"},
                              capture_output=True, text=True, timeout=30)
        assert same.returncode == 0 and "bedrock_engine" in same.stdout
        other = subprocess.run(query, env={**base, **vni, "SLINGSHOT_VNIS": "5002,4002"},
                               capture_output=True, text=True, timeout=30)
        assert other.returncode != 0 and "on VNI 4001 from VNI 4002" in other.stderr
        none = subprocess.run(query, env=base, capture_output=True, text=True, timeout=30)
        assert none.returncode != 0 and "SLINGSHOT_VNIS is not set" in none.stderr
    finally:
        server.terminate()
        assert server.wait(timeout=30) == 0


def test_pbs_asks_for_the_slots_a_nodefile_launcher_needs() -> None:
    """Open MPI under PBS takes its slots from PBS_NODEFILE (each host mpiprocs times, default
    1): the job asks for one per rank. PALS takes --ppn and keeps plain select=N (ALCF)."""
    golden = ROOT / "tests" / "golden" / "launch"
    assert "#PBS -l select=2:mpiprocs=2\n" in (golden / "improv" / "job.pbs").read_text()
    assert "#PBS -l select=2\n" in (golden / "aurora" / "job.pbs").read_text()
