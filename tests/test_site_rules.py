"""Issue 14: what generate does with a site's rules: accounts, queue tables, freshness, NUMA
placement, compiler paths in spack.yaml. Each test failed before the rule existed."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from bedrock_deploy.cli import main
from bedrock_deploy.diagnostics import InputError
from bedrock_deploy.freshness import freshness_warning
from bedrock_deploy.generate import generate
from bedrock_deploy.layout import plan_layout
from bedrock_deploy.queues import choose_queue
from bedrock_deploy.resources import share_path
from bedrock_deploy.service import ServiceDescription
from bedrock_deploy.sites import load_site
from bedrock_deploy.spack_check import check_manifest
from bedrock_deploy.topology import Topology
from bedrock_deploy.yaml_source import parse_yaml

KV = str(share_path("examples", "kv-service.yaml"))
MOFKA = str(share_path("examples", "mofka-like.yaml"))


def _gen(tmp_path: Path, site: str, *args: str) -> tuple[int, Path]:
    out = tmp_path / f"{site}-dep"
    return main(["generate", "--site", site, "--service", KV, "-o", str(out), *args]), out


@pytest.mark.parametrize("site", ["aurora", "polaris", "sunspot", "improv"])
def test_generate_refuses_a_job_without_the_account_the_site_requires(
        tmp_path: Path, site: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = _gen(tmp_path, site, "--nodes", "2")
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists()
    assert f"site {site!r} requires an account (project) to charge" in err
    assert "hint: pass --account PROJECT" in err and "Traceback" not in err


def test_account_reaches_the_pbs_directives(tmp_path: Path) -> None:
    rc, out = _gen(tmp_path, "aurora", "--nodes", "4", "--account", "MyProj")
    assert rc == 0
    job = (out / "scripts" / "job.pbs").read_text()
    assert "#PBS -A MyProj" in job
    assert "#PBS -q debug-scaling" in job and "#PBS -q debug\n" not in job  # 4 nodes
    manifest = json.loads((out / "manifest.json").read_text())
    whats = {c["what"]: c for c in manifest["choices"]}
    assert whats["queue"]["value"] == "debug-scaling"
    assert whats["account"]["why"] == "--account"


@pytest.mark.parametrize(("site", "nodes", "queue"), [
    ("aurora", 1, "debug"), ("aurora", 2, "debug"), ("aurora", 3, "debug-scaling"),
    ("aurora", 256, "debug-scaling"), ("aurora", 300, "prod"), ("aurora", 2500, "prod"),
    ("polaris", 2, "debug"), ("polaris", 4, "debug-scaling"), ("polaris", 10, "debug-scaling"),
    ("polaris", 11, "prod"), ("polaris", 200, "prod"),
    ("frontier", 4, "batch"), ("frontier", 100, "batch"),
    ("improv", 4, "debug"), ("improv", 20, "compute"),
])
def test_queue_from_node_count(site: str, nodes: int, queue: str) -> None:
    chosen = choose_queue(load_site(site).profile, nodes, "00:30:00")
    assert chosen is not None and chosen.queue.name == queue


def test_queue_respects_the_wall_time_limit() -> None:
    aurora = load_site("aurora").profile
    chosen = choose_queue(aurora, 2, "06:00:00")  # debug allows 1 h: capacity takes it
    assert chosen is not None and chosen.queue.name == "capacity"
    frontier = load_site("frontier").profile
    chosen = choose_queue(frontier, 100, "05:00:00")  # bin 92-183 nodes: 6 h
    assert chosen is not None and chosen.queue.max_walltime == "06:00:00"
    with pytest.raises(InputError) as err:
        choose_queue(frontier, 50, "10:00:00")  # 1-91 nodes: 2 h at most
    assert "batch allows at most 02:00:00" in err.value.problems[0].message


def test_too_many_nodes_for_every_queue_and_a_named_queue_that_refuses(tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InputError) as err:
        choose_queue(load_site("polaris").profile, 600, "00:30:00")
    assert "no queue of site 'polaris' takes a 600-node job" in err.value.problems[0].message
    rc, out = _gen(tmp_path, "aurora", "--nodes", "4", "--account", "P", "--queue", "debug")
    err_text = capsys.readouterr().err
    assert rc == 2 and not out.exists()
    assert "queue 'debug' of site 'aurora' does not take a 4-node job" in err_text
    assert "debug takes at most 2 nodes" in err_text


def test_perlmutter_qos_without_recorded_limits_says_so(tmp_path: Path) -> None:
    rc, out = _gen(tmp_path, "perlmutter", "--nodes", "2")
    assert rc == 0
    job = (out / "scripts" / "job.sbatch").read_text()
    assert "#SBATCH --qos=debug" in job and "--partition" not in job
    choice = next(c for c in json.loads((out / "manifest.json").read_text())["choices"]
                  if c["what"] == "qos")
    assert "records no node limit for debug" in choice["why"]


def test_freshness_warning() -> None:
    aurora = load_site("aurora").profile
    assert aurora.verified is not None
    day = aurora.verified.day
    assert freshness_warning(aurora, today=day + datetime.timedelta(days=100)) is None
    old = freshness_warning(aurora, today=day + datetime.timedelta(days=200))
    assert old is not None and "200 days ago" in old and "probe --site aurora" in old
    generic = load_site("generic-slurm-tcp").profile  # a template: nothing recorded
    assert "does not record when its facts" in str(freshness_warning(generic))
    assert freshness_warning(load_site("local").profile) is None


def test_generate_prints_the_freshness_warning(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    profile = tmp_path / "old.yaml"
    profile.write_text("name: old\nextends: frontier\nverified:\n  date: '2025-01-10'\n"
                       "  against: [olcf docs]\n")
    out = tmp_path / "dep"
    assert main(["generate", "--site", str(profile), "--service", KV, "-o", str(out),
                 "--nodes", "2", "--account", "ABC123"]) == 0
    err = capsys.readouterr().err
    assert "warning: site profile 'old' was last verified on 2025-01-10" in err


def _service(ppn: int, rpc: int = 2) -> ServiceDescription:
    return ServiceDescription.model_validate({
        "name": "s", "nodes": 1, "processes_per_node": ppn, "threads": {"rpc": rpc},
        "components": [{"name": "group", "type": "flock"}]})


def test_perlmutter_ranks_alternate_sockets() -> None:
    topo = Topology.from_node(load_site("perlmutter").profile.node)
    layout = plan_layout(topo, _service(4), "cxi")
    sockets = [{topo.cores[c].socket for c in range(len(topo.cores))
                if set(topo.cores[c].cpus) & set(r.cpus)} for r in layout.ranks]
    assert sockets == [{0}, {1}, {0}, {1}]  # before: all four on socket 0


def test_frontier_never_lets_a_rank_span_numa_domains(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    site = load_site("frontier").profile
    topo = Topology.from_node(site.node)
    # 14 usable cores per domain; 4 cores per rank: 3 ranks per domain, 12 per node
    layout = plan_layout(topo, _service(12), "cxi", numa_confined=True)
    assert all(len(r.numa) == 1 for r in layout.ranks)
    with pytest.raises(InputError) as err:
        plan_layout(topo, _service(13), "cxi", numa_confined=True)
    assert "at most 12 ranks of 4 cores fit" in err.value.problems[0].message
    unconfined = plan_layout(topo, _service(13), "cxi")
    assert any(len(r.numa) > 1 for r in unconfined.ranks)  # what cray-mpich would reject
    rc = main(["generate", "--site", "frontier", "--service", MOFKA, "-o",
               str(tmp_path / "f"), "--nodes", "2", "--ppn", "9", "--account", "ABC123"])
    assert rc == 2 and "stay in one NUMA domain" in capsys.readouterr().err


def test_spanning_env_lets_ranks_span_with_the_matching_nic_policy(tmp_path: Path) -> None:
    profile = tmp_path / "f.yaml"
    profile.write_text("name: f\nextends: frontier\nplacement:\n  spanning_env: "
                       "{MPICH_OFI_NIC_POLICY: ROUND-ROBIN}\n")
    res = generate(profile, MOFKA, tmp_path / "d", nodes=2, ppn=9, account="A")
    assert any(len(r.numa) > 1 for r in res.plan.layout.ranks)
    assert "export MPICH_OFI_NIC_POLICY=ROUND-ROBIN" in \
        (tmp_path / "d" / "scripts" / "job.sbatch").read_text()


def test_spack_yaml_compilers_carry_their_paths(tmp_path: Path) -> None:
    res = generate("perlmutter", KV, tmp_path / "p", nodes=2)
    data = parse_yaml((res.out / "spack.yaml").read_text(), "spack.yaml").data
    gcc = data["spack"]["packages"]["gcc"]["externals"][0]
    assert gcc["extra_attributes"]["compilers"]["c"] == "/opt/cray/pe/gcc-native/13/bin/gcc"
    res = generate("aurora", KV, tmp_path / "a", nodes=2, account="P")
    data = parse_yaml((res.out / "spack.yaml").read_text(), "spack.yaml").data
    oneapi = data["spack"]["packages"]["intel-oneapi-compilers"]["externals"][0]
    assert oneapi["spec"] == "intel-oneapi-compilers@2025.3.1"  # no gcc-only languages=
    assert oneapi["extra_attributes"]["compilers"]["cxx"].endswith("/bin/icpx")


def test_spack_check_rejects_a_compiler_external_without_paths(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = tmp_path / "spack.yaml"
    env.write_text("spack:\n  specs: [mochi-margo]\n  packages:\n    gcc:\n      externals:\n"
                   "      - spec: gcc@13.2.1 languages='c,c++,fortran'\n"
                   "        modules: [PrgEnv-gnu, gcc-native/13.2]\n")
    doc = parse_yaml(env.read_text(), str(env))
    problems = check_manifest(doc)
    assert [p.message for p in problems] == [
        "compiler external \"gcc@13.2.1 languages='c,c++,fortran'\" has no compiler paths "
        "(extra_attributes.compilers)"]
    assert main(["spack", "check", str(env)]) == 2
    assert f"{env}:6:9: error: spack.packages.gcc.externals[0]" in capsys.readouterr().err


# ---- the job scripts ------------------------------------------------------------------------

VNI_SITES = {"aurora": "--single-node-vni", "polaris": "--single-node-vni",
             "sunspot": "--single-node-vni", "frontier": "--network=job_vni,single_node_vni",
             "perlmutter": "--network=job_vni,single_node_vni"}


def _job(tmp_path: Path, site: str, **kw: object) -> str:
    res = generate(site, KV, tmp_path / site, nodes=2, account="P", **kw)  # type: ignore[arg-type]
    return next((res.out / "scripts").glob("job.*")).read_text()


def helper_violations(script: str) -> list[str]:
    """Lines that run the query or shutdown tool or the client outside the launcher helper."""
    bad = []
    for line in script.splitlines():
        words = line.strip()
        if words.startswith(("#", "bd_log", "for bd_tool", "bd_die")) or "command -v" in words:
            continue
        for tool in ("bedrock-query", "bedrock-shutdown", 'bash -c "$BEDROCK_DEPLOY_CLIENT"'):
            if tool in words and '"${bd_helper[@]}" ' + tool not in words:
                bad.append(words)
    return bad


@pytest.mark.parametrize("site", sorted(VNI_SITES))
def test_query_shutdown_and_client_go_through_the_launcher_with_the_vni_flags(
        tmp_path: Path, site: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPACK_ROOT", raising=False)
    script = _job(tmp_path, site)
    helper = script.split("bd_helper=(\n", 1)[1].split("\n)", 1)[0].split()
    assert helper[0] in ("mpiexec", "srun") and helper[-1] == VNI_SITES[site]
    if helper[0] == "srun":
        assert "--overlap" in helper  # beside the service's step, which holds every CPU
    assert helper_violations(script) == []
    for use in ('"${bd_helper[@]}" bedrock-query', '"${bd_helper[@]}" bedrock-shutdown',
                '"${bd_helper[@]}" bash -c "$BEDROCK_DEPLOY_CLIENT"'):
        assert use in script, use


def test_the_check_catches_a_query_in_the_batch_shell() -> None:
    defective = ('  timeout 60 bedrock-query "$PROTOCOL" "${targets[@]}" >"$RUN/query.json"\n'
                 '  bash -c "$BEDROCK_DEPLOY_CLIENT" </dev/null &\n')
    assert len(helper_violations(defective)) == 2


def test_helpers_run_directly_on_transports_without_launcher_flags(tmp_path: Path) -> None:
    script = _job(tmp_path, "generic-slurm-tcp")
    assert "bd_helper=()  # transport tcp needs no launcher credentials" in script


def test_login_shell_where_the_site_recommends_it(tmp_path: Path) -> None:
    assert _job(tmp_path, "aurora").startswith("#!/bin/bash -l\n#PBS ")
    assert _job(tmp_path, "improv").startswith("#!/bin/bash -l\n#PBS ")
    assert _job(tmp_path, "frontier").startswith("#!/usr/bin/env bash\n#SBATCH ")


def test_the_job_sets_up_spack_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPACK_ROOT", "/home/me/spack")
    script = _job(tmp_path, "polaris")
    assert "SPACK_ROOT=${SPACK_ROOT:-/home/me/spack}" in script
    assert '. "$SPACK_ROOT/share/spack/setup-env.sh"' in script
    profile = tmp_path / "p.yaml"
    profile.write_text("name: p\nextends: polaris\nspack:\n  root: /soft/spack-1.1\n")
    res = generate(profile, KV, tmp_path / "p", nodes=2, account="P")
    assert "SPACK_ROOT=${SPACK_ROOT:-/soft/spack-1.1}" in (res.out / "scripts" / "job.pbs") \
        .read_text()


def test_module_is_set_up_before_the_hooks_that_use_it(tmp_path: Path) -> None:
    script = _job(tmp_path, "frontier")
    init = script.index("/usr/share/lmod/lmod/init/bash")
    assert init < script.index("module swap PrgEnv-cray PrgEnv-gnu")


def test_layout_needs_no_account_it_writes_no_job(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["layout", "--site", "aurora", "--service", KV, "--ppn", "2"]) == 0
    assert "requires an account" not in capsys.readouterr().err
