"""Launch-script rendering: registries, binding flags per launcher, quoting, goldens.

Goldens (tests/golden/launch/<profile>/) are rendered from each shipped site profile (those with
a written node, golden_files.golden_sites) with a hand-built plan (2 ranks per node, each pinned
to two cores of its own NUMA domain when the node has several), so they change only when a
profile or a template changes. Rewrite them with the one golden command (tests/golden/README.md)
and review the diff by eye.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from bedrock_deploy.diagnostics import InputError
from bedrock_deploy.launch import render_scripts
from bedrock_deploy.launch.launcher import launcher_for
from bedrock_deploy.launch.scheduler import hms, walltime_seconds
from bedrock_deploy.launch.schedulers.slurm import Slurm
from bedrock_deploy.plan import (
    DeploymentPlan,
    NodeLayout,
    RankLayout,
    Role,
    TransportChoice,
    XstreamPlan,
)
from bedrock_deploy.queues import resolve_scheduler
from bedrock_deploy.service import Component, ServiceDescription
from bedrock_deploy.site_profile import SiteProfile
from bedrock_deploy.sites import load_site, shipped_profiles
from bedrock_deploy.topology import Topology
from golden_files import Goldens, golden_sites

GOLDEN = Path(__file__).parent / "golden" / "launch"
ENGINE_DIR = "/opt/bedrock-deploy/_bin"  # fixed, so goldens do not depend on this machine


def hand_layout(site: SiteProfile, ppn: int, *, pin: bool = True) -> NodeLayout:
    """Rank L gets two (one on small nodes) usable cores, with all their usable threads, of
    NUMA domain L mod #domains."""
    topo = Topology.from_node(site.node)
    by_numa: dict[int, list] = {}
    for core in topo.usable_cores:
        by_numa.setdefault(core.numa, []).append(core)
    domains = sorted(by_numa)
    width = max(1, min(2, len(topo.usable_cores) // ppn))  # cores per rank
    ranks = []
    for local in range(ppn):
        numa = domains[local % len(domains)]
        turn = local // len(domains)
        cores = by_numa[numa][width * turn: width * turn + width]
        cpus = tuple(sorted(c for core in cores for c in topo.usable_cpus(core)))
        first = tuple(topo.usable_cpus(cores[0])[:1]) if pin else ()
        second = tuple(topo.usable_cpus(cores[-1])[:1]) if pin else ()
        ranks.append(RankLayout(
            local_rank=local, cpus=cpus if pin else (), numa=(numa,),
            xstreams=(XstreamPlan("progress", Role.progress, ("progress",), first),
                      XstreamPlan("rpc_0", Role.rpc, ("rpc",), second))))
    return NodeLayout(ranks=tuple(ranks), pins_threads=pin, use_smt=True)


def make_plan(site: SiteProfile, files: list[str], *, nodes: int = 2, ppn: int = 2,
              pin: bool = True, flock: bool = True) -> DeploymentPlan:
    transport = next(
        (t for t in site.transports if nodes == 1 or t.scope.value == "inter-node"),
        site.transports[0])
    choice = TransportChoice(
        name=transport.name, protocol=transport.protocol, provider=transport.provider,
        fabrics=tuple(transport.fabrics), env=dict(transport.env),
        launcher_flags=tuple(transport.launcher_flags), mercury=dict(transport.mercury),
        reason="first suitable transport of the profile (test)")
    components = [Component(name="group", type="flock")] if flock else [
        Component(name="db", type="yokan")]
    service = ServiceDescription(name="kv", nodes=nodes, processes_per_node=ppn,
                                 components=components)
    provider = ({"name": "group", "type": "flock", "provider_id": 1,
                 "config": {"bootstrap": "mpi", "file": "group.json"}} if flock else
                {"name": "db", "type": "yokan", "provider_id": 1, "config": {}})
    configs = [{"providers": [provider]} for _ in range(ppn)]
    return DeploymentPlan(site=site, site_files=files, service=service, transport=choice,
                          layout=hand_layout(site, ppn, pin=pin), configs=configs)


def shipped_plan(name: str, **kw: object) -> DeploymentPlan:
    """A plan for a shipped profile, its scheduler resolved as generate does (queue from the
    table, an account where the site requires one)."""
    loaded = load_site(name)
    profile = loaded.profile
    nodes = int(kw.get("nodes", 2))  # type: ignore[call-overload]
    account = "PROJECT" if profile.scheduler.account_required else None
    sched = resolve_scheduler(profile, nodes, account=account).scheduler
    profile = profile.model_copy(update={"scheduler": sched})
    return make_plan(profile, loaded.files, **kw)  # type: ignore[arg-type]


def site_with(name: str, **changes: object) -> tuple[SiteProfile, list[str]]:
    """A shipped profile with some top-level fields replaced (validated again)."""
    loaded = load_site(name)
    data = loaded.profile.model_dump(mode="json", exclude_none=True)
    for key, value in changes.items():
        data[key] = value
    return SiteProfile.model_validate(data), loaded.files


@pytest.fixture(autouse=True)
def _fixed_engine_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEDROCK_DEPLOY_ENGINE_DIR", ENGINE_DIR)
    monkeypatch.delenv("SPACK_ROOT", raising=False)  # recorded in job scripts as a default


# Profiles whose node is probed from this host are covered by the end-to-end tests instead.
GOLDEN_PROFILES = golden_sites()


def test_golden_covers_every_scheduler_the_profiles_use() -> None:
    used = {load_site(n).profile.scheduler.type for n in GOLDEN_PROFILES}
    assert {"slurm", "pbs"} <= used


@pytest.mark.parametrize("name", GOLDEN_PROFILES)
def test_golden_scripts(name: str, goldens: Goldens) -> None:
    files = render_scripts(shipped_plan(name))
    goldens.check_dir(GOLDEN / name, {Path(rel).name: text for rel, text in files.items()
                                      if rel.startswith("scripts/")})


def test_no_launch_golden_without_a_shipped_site(goldens: Goldens) -> None:
    goldens.check_no_others(sorted(GOLDEN.iterdir()), {GOLDEN / n for n in GOLDEN_PROFILES})


@pytest.mark.parametrize("name", sorted(shipped_profiles()))
def test_scripts_are_valid_bash(name: str, tmp_path: Path) -> None:
    for rel, text in render_scripts(shipped_plan(name)).items():
        if rel.endswith((".sh", ".sbatch", ".pbs", ".flux")):
            script = tmp_path / Path(rel).name
            script.write_text(text, encoding="utf-8")
            done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
            assert done.returncode == 0, f"{name} {rel}: {done.stderr}"
            login = shipped_plan(name).site.scheduler.login_shell and rel != "scripts/rank-exec.sh"
            assert text.startswith("#!/bin/bash -l\n" if login else "#!/usr/bin/env bash\n")
            assert "set -euo pipefail" in text


def _launch_array(text: str) -> list[str]:
    """The launcher command of a job script, as bash would split it."""
    block = re.search(r"^bd_launch=\(\n(.*?)\n\)$", text, re.M | re.S)
    assert block, "no bd_launch array"
    return shlex.split(block.group(1))


def _job_script(files: dict[str, str]) -> str:
    return next(v for k, v in files.items() if re.match(r"scripts/(job\.|run\.sh)", k))


def test_srun_binds_each_rank_to_its_layout_cpus() -> None:
    plan = shipped_plan("frontier")
    argv = _launch_array(_job_script(render_scripts(plan)))
    assert argv[0] == "srun"
    binds = [a for a in argv if a.startswith("--cpu-bind=")]
    assert len(binds) == 1
    masks = binds[0].removeprefix("--cpu-bind=verbose,mask_cpu:").split(",")
    assert len(masks) == plan.processes_per_node
    for mask, rank in zip(masks, plan.layout.ranks, strict=True):
        bits = int(mask, 16)
        assert {c for c in range(bits.bit_length()) if bits >> c & 1} == set(rank.cpus)
    assert "--network=job_vni,single_node_vni" in argv  # Slingshot, from the transport
    assert f"--ntasks-per-node={plan.processes_per_node}" in argv
    assert "--whole" in argv


def test_unpinned_layout_disables_binding_everywhere() -> None:
    expected = {"frontier": ["--cpu-bind=none"], "aurora": ["--cpu-bind", "none"],
                "improv": ["--bind-to", "none"]}
    for name, flags in expected.items():
        argv = _launch_array(_job_script(render_scripts(shipped_plan(name, pin=False))))
        joined = " ".join(argv)
        assert " ".join(flags) in joined, (name, argv)
        assert "mask_cpu" not in joined and "list:" not in joined


def test_pals_cpu_bind_list_and_vni() -> None:
    plan = shipped_plan("aurora")
    files = render_scripts(plan)
    argv = _launch_array(files["scripts/job.pbs"])
    assert argv[:5] == ["mpiexec", "-n", str(plan.total_processes), "--ppn",
                        str(plan.processes_per_node)]
    value = argv[argv.index("--cpu-bind") + 1]
    sets = value.removeprefix("list:").split(":")
    assert [tuple(int(c) for c in s.split(",")) for s in sets] == [
        tuple(sorted(r.cpus)) for r in plan.layout.ranks]
    assert "--single-node-vni" in argv
    assert "export PALS_LOCAL_LAUNCH=0" in files["scripts/job.pbs"]
    assert "#PBS -l select=2" in files["scripts/job.pbs"]


def test_hydra_user_binding(tmp_path: Path) -> None:
    site, files = site_with("generic-slurm-tcp",
                            launcher={"type": "mpiexec-hydra", "command": "mpiexec.mpich"})
    plan = make_plan(site, files)
    argv = launcher_for(plan).run_command().argv
    spec = argv[argv.index("-bind-to") + 1]
    assert spec == "user:" + ",".join("+".join(map(str, sorted(r.cpus)))
                                      for r in plan.layout.ranks)
    assert launcher_for(plan).run_command().local_rank_var == "MPI_LOCALRANKID"


def test_openmpi_binds_in_rank_exec_and_forwards_env() -> None:
    plan = shipped_plan("improv")
    cmd = launcher_for(plan).run_command()
    assert cmd.self_bind and "--bind-to" in cmd.argv
    assert cmd.argv[cmd.argv.index("--bind-to") + 1] == "none"
    assert cmd.as_root_env == {"OMPI_ALLOW_RUN_AS_ROOT": "1",
                               "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    rank_exec = render_scripts(plan)["scripts/rank-exec.sh"]
    assert 'exec taskset -c "$CPUS"' in rank_exec
    for rank in plan.layout.ranks:
        assert f"  {rank.local_rank}) CPUS=" in rank_exec


def test_srun_mpi_plugin_follows_the_mpi() -> None:
    site, files = site_with("generic-slurm-tcp", launcher={"type": "srun"})
    argv = launcher_for(make_plan(site, files)).run_command().argv
    assert "--mpi=pmix" in argv  # the profile's MPI external is openmpi
    site, files = site_with("generic-slurm-tcp", launcher={"type": "srun", "mpi": "pmi2"})
    assert "--mpi=pmi2" in launcher_for(make_plan(site, files)).run_command().argv


def test_slurm_directives() -> None:
    site, files = site_with("generic-slurm-tcp", scheduler={
        "type": "slurm", "partition": "batch", "account": "proj1", "time": "1-02:03",
        "directives": ["--constraint=cpu"]})
    plan = make_plan(site, files)
    lines = [line for line in _job_script(render_scripts(plan)).splitlines()
             if line.startswith("#SBATCH")]
    assert "#SBATCH --time=1-02:03:00" in lines
    assert "#SBATCH --nodes=2" in lines and "#SBATCH --ntasks-per-node=2" in lines
    assert "#SBATCH --partition=batch" in lines and "#SBATCH --account=proj1" in lines
    assert lines[-1] == "#SBATCH --constraint=cpu"
    assert "#SBATCH --exclusive" in lines
    assert walltime_seconds("00:30") == 1800 and hms(3725) == "01:02:05"


EVIL = "$(touch /tmp/pwned-x); rm -rf /tmp/nothing-here"


def test_profile_values_are_quoted() -> None:
    site, files = site_with(
        "generic-slurm-tcp",
        scheduler={"type": "slurm", "partition": EVIL, "account": "`id`"},
        env={"BD_EVIL": EVIL},
        launcher={"type": "srun", "flags": [EVIL]},
        spack={"modules": [EVIL]})
    text = _job_script(render_scripts(make_plan(site, files)))
    quoted = shlex.quote(EVIL)
    assert f"#SBATCH --partition={quoted}" in text
    assert "#SBATCH --account='`id`'" in text
    assert f"export BD_EVIL={quoted}" in text
    assert f"module load {quoted}" in text
    assert _launch_array(text)[-2] == EVIL  # one argument, never shell code
    for line in text.splitlines():
        if "touch /tmp/pwned-x" in line:
            assert quoted in line, line


@pytest.mark.parametrize("field,value", [
    ("partition", "debug\nrm -rf /tmp/x"),
    ("account", "a\rb"),
])
def test_control_characters_in_directives_are_refused(field: str, value: str) -> None:
    site, files = site_with("generic-slurm-tcp",
                            scheduler={"type": "slurm", field: value})
    with pytest.raises(InputError) as err:
        render_scripts(make_plan(site, files))
    problem = err.value.problems[0]
    assert problem.path == ("scheduler", field)
    assert "control character" in problem.message
    assert problem.file and problem.file.endswith("generic-slurm-tcp.yaml")


@pytest.mark.parametrize("name", ["A=B; touch x", "FOO\n", "1A", ""])
def test_bad_environment_name_is_refused(name: str) -> None:
    # when the profile loads (located there: tests/test_hardening.py) ...
    with pytest.raises(ValidationError, match="not an environment variable name"):
        site_with("generic-slurm-tcp", env={name: "1"})
    # ... and again when scripts are rendered from a profile that skipped validation
    site, files = site_with("generic-slurm-tcp")
    site = site.model_copy(update={"env": {name: "1"}})
    with pytest.raises(InputError) as err:
        render_scripts(make_plan(site, files))
    assert err.value.problems[0].path == ("env", name)


def test_launch_info_and_group_file() -> None:
    import json

    files = render_scripts(shipped_plan("frontier"))
    info = json.loads(files["scripts/launch.json"])
    assert info["scheduler"] == "slurm" and info["script"] == "scripts/job.sbatch"
    assert info["group_file"] == "run/group.json" and info["job_name"] == "kv"
    assert "GROUP_FILE=$RUN/group.json" in files["scripts/job.sbatch"]
    no_flock = render_scripts(shipped_plan("frontier", flock=False))
    assert 'GROUP_FILE=""' in no_flock["scripts/job.sbatch"]
    assert json.loads(no_flock["scripts/launch.json"])["group_file"] is None


def test_engine_tools_follow_the_engine_kind() -> None:
    spack = _job_script(render_scripts(shipped_plan("frontier")))
    assert "for bd_tool in bedrock bedrock-query bedrock-shutdown" in spack
    assert 'spack env activate --sh "$DIR"' in spack
    site, files = site_with("frontier", engine="embedded")
    embedded = render_scripts(make_plan(site, files))
    text = _job_script(embedded)
    assert "for bd_tool in bedrock-engine bedrock-engine-query bedrock-engine-shutdown" in text
    assert f"ENGINE_DIR={ENGINE_DIR}\nENGINE_DIR=${{BEDROCK_DEPLOY_ENGINE_DIR:-$ENGINE_DIR}}" \
        in text
    # flock bootstraps through MPI: the engine starts through its mpi4py entry point
    assert '("$PYTHON" -m bedrock_deploy.engine_mpi "$PROTOCOL" -c "$CONFIG")' in \
        embedded["scripts/rank-exec.sh"]
    plain = render_scripts(make_plan(site, files, flock=False))["scripts/rank-exec.sh"]
    assert 'bd_engine=("$ENGINE_DIR/bedrock-engine" "$PROTOCOL" -c "$CONFIG")' in plain
    assert "bedrock-engine-mpi" not in plain


def test_scheduler_status_parsing() -> None:
    line = ("JobId=7 JobName=kv UserId=root(0) JobState=COMPLETED Reason=None "
            "Dependency=(null) ExitCode=0:0")
    status = Slurm.parse_status(line)
    assert status and status.finished and status.succeeded and status.exit_code == "0:0"
    running = Slurm.parse_status("JobId=7 JobState=RUNNING Reason=None ExitCode=0:0")
    assert running and not running.finished
    failed = Slurm.parse_status("JobId=8 JobState=FAILED Reason=NonZeroExitCode ExitCode=3:0")
    assert failed and failed.finished and not failed.succeeded
    assert Slurm.parse_status("slurm_load_jobs error: Invalid job id specified") is None
    assert Slurm.parse_job_id("12\n") == "12" and Slurm.parse_job_id("13;cluster\n") == "13"


def test_flux_batch_script() -> None:
    site, files = site_with("generic-slurm-tcp", scheduler={"type": "flux", "time": "01:00"},
                            launcher={"type": "flux-run"})
    plan = make_plan(site, files)
    rendered = render_scripts(plan)
    text = rendered["scripts/job.flux"]
    assert "#flux: -N 2" in text and "#flux: -t 3600s" in text
    assert "#flux: --output=run/logs/{{name}}-{{id}}.out" in text
    argv = _launch_array(text)
    assert argv[:2] == ["flux", "run"] and "cpu-affinity=off" in argv
    assert 'exec taskset -c "$CPUS"' in rendered["scripts/rank-exec.sh"]  # binds itself


def test_pbs_submit_passes_the_environment_with_v(tmp_path: Path) -> None:
    from bedrock_deploy.launch.schedulers.pbs import Pbs

    argv = Pbs.submit_argv(tmp_path, tmp_path / "run" / "logs", "kv",
                           {"BEDROCK_DEPLOY_DIR": str(tmp_path), "SERVICE_DURATION": "5"})
    assert argv[0] == "qsub" and argv[-1] == str(tmp_path / "scripts" / "job.pbs")
    assert argv[argv.index("-v") + 1] == f"BEDROCK_DEPLOY_DIR={tmp_path},SERVICE_DURATION=5"
