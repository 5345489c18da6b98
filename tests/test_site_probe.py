"""``bedrock-deploy probe --site``: what decays in a site profile, collected from the
commands' outputs (tests/data/site-probe/, see its README for where each file comes from)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from bedrock_deploy import site_probe
from bedrock_deploy.cli import main
from bedrock_deploy.sites import load_site

DATA = Path(__file__).parent / "data" / "site-probe"


def test_qstat_qf_queues_routing_and_closed_queues() -> None:
    queues = {q["name"]: q for q in site_probe.parse_qstat_qf(
        (DATA / "aurora" / "qstat-Qf.txt").read_text())}
    assert (queues["debug"]["min_nodes"], queues["debug"]["max_nodes"],
            queues["debug"]["max_walltime"]) == (1, 2, "01:00:00")
    assert queues["prod"]["type"] == "route"
    assert queues["prod"]["routes_to"] == ["small", "medium", "large", "backfill-small",
                                           "backfill-medium", "backfill-large"]  # continued
    assert queues["small"]["from_route_only"] and not queues["next-eval"]["enabled"]
    assert queues["capacity"]["max_walltime"] == "7-00:00:00"  # 168:00:00
    assert queues["visualization"]["acl"]


def test_slurm_partitions_qos_modules_and_fi_info() -> None:
    parts = site_probe.parse_scontrol_partitions(
        (DATA / "frontier" / "scontrol-show-partition.txt").read_text())
    assert [(p["name"], p["max_nodes"], p["max_walltime"], p["default"]) for p in parts] == \
        [("batch", 9472, "12:00:00", True), ("extended", 64, "1-00:00:00", False)]
    qos = site_probe.parse_sacctmgr_qos("debug|00:30:00|node=8\nregular|2-00:00:00|\n")
    assert qos == [{"name": "debug", "max_walltime": "00:30:00", "max_nodes": 8},
                   {"name": "regular", "max_walltime": "2-00:00:00", "max_nodes": None}]
    families, pe = site_probe.parse_module_avail(
        (DATA / "frontier" / "module-avail.txt").read_text())
    assert families["mpi"] == ["cray-mpich/8.1.31", "cray-mpich/9.0.1"]
    assert families["libfabric"] == ["libfabric/1.20.1", "libfabric/2.3.1"]
    assert "gcc-native/14.2" in families["compilers"]
    assert pe == ["cpe/24.11", "cpe/25.09", "cpe/26.03"]
    _, aurora_pe = site_probe.parse_module_avail(
        (DATA / "aurora" / "module-avail.txt").read_text())
    assert aurora_pe == ["aurora-pe/26.26.0"]
    assert site_probe.parse_fi_info_version("fi_info: 2.3.1\nlibfabric: 2.3.1\n") == "2.3.1"


def test_margo_info_goes_through_the_launcher_with_the_vni_flags() -> None:
    aurora = load_site("aurora").profile
    assert site_probe.launcher_prefix(aurora) == ["mpiexec", "-n", "1", "--ppn", "1",
                                                  "--single-node-vni"]
    frontier = load_site("frontier").profile
    assert site_probe.launcher_prefix(frontier) == ["srun", "-N", "1", "-n", "1",
                                                    "--network=job_vni,single_node_vni"]
    seen: list[list[str]] = []

    def run(name: str, argv: list[str]) -> str | None:
        seen.append(argv)
        return None

    probe = site_probe.collect(aurora, run, host="uan")
    assert ["mpiexec", "-n", "1", "--ppn", "1", "--single-node-vni", "margo-info"] in seen
    assert "no VNI otherwise" in probe.notes[0]


def test_fragment_from_recorded_outputs_is_a_valid_profile(tmp_path: Path) -> None:
    out = tmp_path / "aurora-probed.yaml"
    assert main(["probe", "--site", "aurora", "--from", str(DATA / "aurora"), "--name", "uan7",
                 "-o", str(out)]) == 0
    data = YAML(typ="safe").load(out.read_text())
    assert data["extends"] == "aurora"
    names = [q["name"] for q in data["scheduler"]["queues"]]
    assert names == ["debug", "debug-scaling", "prod", "capacity", "visualization"]
    vis = data["scheduler"]["queues"][-1]
    assert vis["auto"] is False  # access list: by request
    against = data["verified"]["against"]
    assert against[0] == "bedrock-deploy probe --site aurora on uan7"
    assert "fi_info --version: libfabric 2.3.1" in against
    assert "programming environment: aurora-pe/26.26.0" in against
    # the profile's modules that module avail does not list are flagged for review
    assert "module mpich of mpich@5.0.0 is not in module avail" not in \
        data["verified"].get("not_verified", [])  # 'mpich' is a family that is there
    # the fragment loads as a profile next to the shipped one
    profile = tmp_path / "p.yaml"
    profile.write_text(out.read_text().replace("extends: aurora", "extends: aurora"))
    assert main(["sites", "validate", str(profile)]) == 0


def test_diff_against_the_shipped_profile(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "--site", "frontier", "--from", str(DATA / "frontier"), "--diff",
                 "--name", "login1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("--- frontier (shipped)\n+++ frontier (probed on login1)\n")
    assert "-      max_walltime: 02:00:00\n" in out  # the 1-91 node bin is policy, not sinfo
    assert "     - name: extended\n       min_nodes: 1\n       max_nodes: 64\n" \
        "       max_walltime: 1-00:00:00\n-      auto: false\n" in out  # same limits
    assert "# no output from: srun -N 1 -n 1 --network=job_vni,single_node_vni margo-info" \
        in out
    assert "# seen: fi_info --version: libfabric 2.3.1" in out


def test_missing_recordings_are_reported_not_invented(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "--site", "polaris", "--from", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "no output from: qstat -Qf" in out and "scheduler:" not in out
    assert main(["probe", "--site", "polaris", "--from", str(tmp_path / "none")]) == 2
