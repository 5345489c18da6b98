"""Transport selection over recorded host reports (tests/data/transports/README.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bedrock_deploy.cli import main
from bedrock_deploy.diagnostics import InputError
from bedrock_deploy.plan import TransportChoice
from bedrock_deploy.sites import load_site, shipped_profiles
from bedrock_deploy.transports import (
    HostReports,
    TransportSelection,
    Usable,
    parse_fi_info,
    parse_fi_info_list,
    parse_protocol,
    select_transport,
)
from bedrock_deploy.transports.host_reports import ENGINE_DIR_ENV, find_engine

DATA = Path(__file__).parent / "data" / "transports"

CXI = {"name": "cxi", "protocol": "cxi://", "provider": "cxi"}
VERBS = {"name": "verbs", "protocol": "verbs://", "fabrics": ["rxm", "verbs"]}
TCP = {"name": "tcp", "protocol": "ofi+tcp://", "fabrics": ["tcp", "rxm"]}
SM = {"name": "sm", "protocol": "na+sm://", "scope": "intra-node"}


def make_site(tmp_path: Path, transports: list[dict], *, launcher: str = "srun",
              scheduler: str = "slurm", name: str = "testsite") -> tuple[object, str]:
    """A small valid profile with these transports (JSON is YAML)."""
    profile = {
        "name": name,
        "node": {"sockets": 1, "cores_per_socket": 4,
                 "numa_domains": [{"id": 0, "cpus": "0-3"}]},
        "transports": transports,
        "scheduler": {"type": scheduler},
        "launcher": {"type": launcher},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(profile))
    return load_site(path).profile, str(path)


def reports(**files: str) -> HostReports:
    return HostReports.from_files(**{k: DATA / v for k, v in files.items()})


def verdict(selection: TransportSelection, name: str):
    return next(v for v in selection.verdicts if v.candidate == name)


def test_doc_sample_multi_node_picks_tcp_and_never_passes_ofi_rxm(tmp_path: Path) -> None:
    site, _ = make_site(tmp_path, [CXI, VERBS, TCP, SM])
    sel = select_transport(site, nodes=2,
                           reports=reports(margo_info="mochi-doc-hello-mochi.margo-info.txt"))
    assert isinstance(sel.choice, TransportChoice)
    assert (sel.choice.name, sel.choice.protocol) == ("tcp", "ofi+tcp://")
    assert ";ofi_rxm" not in sel.choice.protocol
    assert sel.chosen.runtime_address == "ofi+tcp;ofi_rxm://192.168.122.1:37557"
    assert "adds 'ofi_rxm' itself" in sel.chosen.reason
    assert [(v.candidate, v.reported_usable, v.chosen) for v in sel.verdicts] == [
        ("cxi", Usable.no, False), ("verbs", Usable.no, False), ("tcp", Usable.yes, True),
        ("sm", Usable.yes, False)]
    assert "could not initialise ofi+cxi://" in verdict(sel, "cxi").reason
    assert "spans 2 nodes" in verdict(sel, "sm").reason


def test_slingshot_node_picks_cxi_with_vni_flags(tmp_path: Path) -> None:
    site, _ = make_site(tmp_path, [TCP, CXI, SM])  # tcp listed first: speed still wins
    sel = select_transport(site, nodes=8, reports=reports(
        margo_info="slingshot-node.margo-info.txt", fi_info="slingshot-node.fi_info.txt",
        hg_info="slingshot-node.hg_info.csv"))
    c = sel.choice
    assert (c.name, c.protocol, c.provider, c.fabrics) == ("cxi", "cxi://", "cxi", ("cxi",))
    assert c.launcher_flags == ("--network=job_vni,single_node_vni",)
    assert "mercury" not in c.mercury and "auth_key" not in c.mercury
    assert sel.chosen.runtime_address == "ofi+cxi://0x09470400"
    assert "cxi is a faster fabric" in verdict(sel, "tcp").reason
    assert any("VNI launcher flags" in n for n in sel.notes)


def test_slingshot_with_pals_gets_single_node_vni_and_env(tmp_path: Path) -> None:
    site, _ = make_site(tmp_path, [CXI, TCP], launcher="mpiexec-pals", scheduler="pbs")
    sel = select_transport(site, nodes=2, reports=reports(
        margo_info="slingshot-node.margo-info.txt"))
    assert sel.choice.launcher_flags == ("--single-node-vni",)
    assert sel.choice.env == {"PALS_LOCAL_LAUNCH": "0"}


def test_site_launcher_flags_for_cxi_are_kept(tmp_path: Path) -> None:
    own = dict(CXI, launcher_flags=["--network=no_vni"], mercury={"auth_key": "0:0"})
    site, _ = make_site(tmp_path, [own, TCP])
    sel = select_transport(site, nodes=2, reports=reports(
        margo_info="slingshot-node.margo-info.txt"))
    assert sel.choice.launcher_flags == ("--network=no_vni",)
    assert sel.choice.mercury == {"auth_key": "0:0"}
    assert any("auth_key" in n for n in sel.notes)


def test_slingshot_without_vni_falls_back_to_tcp_and_says_why(tmp_path: Path) -> None:
    site, _ = make_site(tmp_path, [CXI, TCP, SM])
    sel = select_transport(site, nodes=2, reports=reports(
        margo_info="slingshot-node-no-vni.margo-info.txt", fi_info="slingshot-node.fi_info.txt"))
    assert sel.choice.name == "tcp"
    cxi = verdict(sel, "cxi")
    assert cxi.reported_usable == Usable.no
    assert "needs a VNI" in cxi.reason and "cxi0, cxi1, cxi2, cxi3" in cxi.reason
    assert "the only usable candidate" in sel.chosen.reason


def test_infiniband_node_picks_verbs(tmp_path: Path) -> None:
    site, _ = make_site(tmp_path, [VERBS, TCP, SM])
    sel = select_transport(site, nodes=4, reports=reports(
        margo_info="infiniband-node.margo-info.txt", fi_info="infiniband-node.fi_info.txt"))
    assert (sel.choice.name, sel.choice.protocol, sel.choice.provider) == (
        "verbs", "verbs://", "verbs")
    assert sel.choice.fabrics == ("rxm", "verbs")
    assert sel.chosen.runtime_address.startswith("ofi+verbs;ofi_rxm://")


def test_infiniband_without_ipoib_rejects_verbs_with_that_reason(tmp_path: Path) -> None:
    site, _ = make_site(tmp_path, [VERBS, TCP, SM])
    sel = select_transport(site, nodes=2, reports=reports(
        margo_info="infiniband-no-ipoib.margo-info.txt",
        fi_info="infiniband-node.fi_info.txt"))
    v = verdict(sel, "verbs")
    assert v.reported_usable == Usable.no
    assert "fi_info lists the verbs provider on mlx5_0" in v.reason
    assert "IPoIB" in v.reason and "mochi-margo#235" in v.reason
    assert sel.choice.name == "tcp"
    # tcp on ib0 and eno1 and no FI_TCP_IFACE / ip_subnet in the profile: say so
    assert any("FI_TCP_IFACE" in n and "ib0, eno1" in n for n in sel.notes)


def test_fi_info_alone_lists_verbs_but_warns_about_ipoib(tmp_path: Path) -> None:
    site, _ = make_site(tmp_path, [VERBS, TCP])
    sel = select_transport(site, nodes=2, reports=reports(fi_info="infiniband-node.fi_info.txt"))
    assert sel.choice.name == "verbs"
    assert verdict(sel, "verbs").reported_usable == Usable.yes
    assert "not confirmed by margo-info" in sel.chosen.reason and "IPoIB" in sel.chosen.reason


def test_tcp_only_machine_real_outputs(tmp_path: Path) -> None:
    site, _ = make_site(tmp_path, [CXI, VERBS, TCP, SM])
    rep = reports(margo_info="debian12-vm.margo-info.txt", fi_info="debian12-vm.fi_info.txt")
    for nodes in (1, 3):
        sel = select_transport(site, nodes=nodes, reports=rep)
        assert (sel.choice.name, sel.choice.protocol) == ("tcp", "ofi+tcp://")
        assert sel.sources == (str(DATA / "debian12-vm.margo-info.txt"),
                               str(DATA / "debian12-vm.fi_info.txt"))
    one = select_transport(site, nodes=1, reports=rep)
    sm = verdict(one, "sm")
    assert sm.reported_usable == Usable.yes and not sm.chosen
    assert "reaches one node only" in sm.reason and "--transport sm" in sm.reason


def test_fi_info_only_on_this_machine(tmp_path: Path) -> None:
    site, _ = make_site(tmp_path, [CXI, TCP])
    sel = select_transport(site, nodes=2, reports=reports(fi_info="debian12-vm.fi_info.txt"))
    assert sel.choice.name == "tcp"
    assert "fi_info lists no cxi provider" in verdict(sel, "cxi").reason
    assert "tcp;ofi_rxm" in verdict(sel, "cxi").reason  # what it does list


def test_fi_info_list_only(tmp_path: Path) -> None:
    psm2 = {"name": "psm2", "protocol": "ofi+psm2://"}
    site, _ = make_site(tmp_path, [CXI, psm2, TCP])
    sel = select_transport(site, nodes=2, reports=reports(fi_info="debian12-vm.fi_info-l.txt"))
    assert verdict(sel, "cxi").reported_usable == Usable.no
    assert "built without the cxi provider" in verdict(sel, "cxi").reason
    assert verdict(sel, "psm2").reported_usable == Usable.unknown  # compiled, no hardware check
    assert verdict(sel, "tcp").reported_usable == Usable.unknown
    assert sel.choice.name == "psm2"  # faster tier among equally unconfirmed ones


def test_hg_info_only(tmp_path: Path) -> None:
    site, _ = make_site(tmp_path, [VERBS, CXI, TCP])
    sel = select_transport(site, nodes=2, reports=reports(hg_info="slingshot-node.hg_info.json"))
    assert sel.choice.name == "cxi"
    assert verdict(sel, "verbs").reported_usable == Usable.no
    assert "hg_info lists ofi+cxi:// on cxi0" in sel.chosen.reason


def test_confirmed_beats_unconfirmed_faster(tmp_path: Path) -> None:
    ucx = {"name": "ucx", "protocol": "ucx+rc://"}
    site, _ = make_site(tmp_path, [ucx, TCP])
    sel = select_transport(site, nodes=2, reports=reports(fi_info="debian12-vm.fi_info.txt"))
    assert verdict(sel, "ucx").reported_usable == Usable.unknown
    assert sel.choice.name == "tcp"
    assert "tcp is confirmed by the host reports" in verdict(sel, "ucx").reason


def test_site_order_breaks_ties(tmp_path: Path) -> None:
    first = {"name": "tcp-any", "protocol": "tcp://"}
    site, _ = make_site(tmp_path, [first, TCP])
    sel = select_transport(site, nodes=2, reports=reports(
        margo_info="debian12-vm.margo-info.txt"))
    assert sel.choice.name == "tcp-any"
    assert "listed earlier in the site profile" in verdict(sel, "tcp").reason
    assert "listed before it" in sel.chosen.reason


def test_runtime_prefix_in_profile_is_normalised(tmp_path: Path) -> None:
    rxm = {"name": "tcp", "protocol": "ofi+tcp;ofi_rxm://"}
    site, _ = make_site(tmp_path, [rxm])
    sel = select_transport(site, nodes=2, reports=reports(
        margo_info="debian12-vm.margo-info.txt"))
    assert sel.choice.protocol == "ofi+tcp://"
    assert sel.choice.fabrics == ("tcp", "rxm")  # derived: the profile gave none
    assert any("normalised" in n for n in sel.notes)
    assert parse_protocol("verbs://mlx5_0").normalized == "verbs://mlx5_0"
    assert parse_protocol("cxi://cxi0").margo_info_addresses()[:2] == ("cxi://", "na+cxi://")


def test_na_sm_declared_inter_node_is_still_intra_node(tmp_path: Path) -> None:
    wrong = {"name": "sm", "protocol": "na+sm://"}  # scope left at its inter-node default
    site, _ = make_site(tmp_path, [wrong, TCP])
    sel = select_transport(site, nodes=2)
    assert sel.choice.name == "tcp"
    assert "spans 2 nodes" in verdict(sel, "sm").reason


def test_prefer_picks_a_usable_transport_and_refuses_a_rejected_one(tmp_path: Path) -> None:
    site, file = make_site(tmp_path, [TCP, SM])
    rep = reports(margo_info="debian12-vm.margo-info.txt")
    sel = select_transport(site, nodes=1, reports=rep, prefer="sm")
    assert sel.choice.name == "sm" and "chosen by request" in sel.chosen.reason
    with pytest.raises(InputError) as err:
        select_transport(site, nodes=2, reports=rep, prefer="sm", site_file=file)
    assert "transport 'sm' is not usable for a 2-node service" in err.value.problems[0].message
    with pytest.raises(InputError) as err:
        select_transport(site, nodes=1, reports=rep, prefer="nope")
    assert "use one of: tcp, sm" in err.value.problems[0].hint


def test_no_reports_trusts_the_profile_and_says_so(tmp_path: Path) -> None:
    site, _ = make_site(tmp_path, [CXI, TCP, SM])
    sel = select_transport(site, nodes=2)
    assert sel.trusted_profile and sel.sources == ()
    assert {v.reported_usable for v in sel.verdicts} == {Usable.unknown}
    assert sel.choice.name == "cxi"
    assert "trusting the site profile" in sel.chosen.reason
    assert any("margo-info" in n and "srun" in n for n in sel.notes)


def test_nothing_usable_lists_every_candidate_and_the_commands(tmp_path: Path) -> None:
    site, file = make_site(tmp_path, [CXI, VERBS, TCP, SM])
    with pytest.raises(InputError) as err:
        select_transport(site, nodes=2, site_file=file, reports=reports(
            fi_info="debian12-vm.fi_info-p-verbs.txt"))
    (p,) = err.value.problems
    assert p.file == file and p.path == ("transports",)
    assert "no usable transport for a 2-node service" in p.message
    for name in ("cxi (cxi://)", "verbs (verbs://)", "tcp (ofi+tcp://)", "sm (na+sm://)"):
        assert f"  - {name}: " in p.message
    assert "fi_getinfo: -61" in p.message
    assert "srun -N 1 -n 1 --network=job_vni,single_node_vni margo-info" in p.hint
    assert "fi_info -t FI_EP_RDM" in p.hint and "cxi_stat" in p.hint and "ibstat" in p.hint
    assert f"bedrock-deploy transports --site {site.name}" in p.hint


def test_nodes_must_be_positive(tmp_path: Path) -> None:
    site, _ = make_site(tmp_path, [TCP])
    with pytest.raises(InputError):
        select_transport(site, nodes=0)


def test_reports_can_be_built_in_memory(tmp_path: Path) -> None:
    site, _ = make_site(tmp_path, [CXI, TCP])
    rep = HostReports(fi_info=parse_fi_info((DATA / "slingshot-node.fi_info.txt").read_text(),
                                            "mem"),
                      fi_providers=parse_fi_info_list(
                          (DATA / "debian12-vm.fi_info-l.txt").read_text(), "l"))
    assert select_transport(site, nodes=2, reports=rep).choice.name == "cxi"


# --- shipped profiles (written by another helper; used when present) -----------------------

@pytest.mark.parametrize(("profile", "files", "nodes", "name", "protocol"), [
    ("frontier", {"margo_info": "slingshot-node.margo-info.txt",
                  "fi_info": "slingshot-node.fi_info.txt"}, 4, "cxi", "cxi://"),
    ("perlmutter", {"margo_info": "slingshot-node-no-vni.margo-info.txt"}, 2, "tcp",
     "ofi+tcp://"),
    ("improv", {"margo_info": "infiniband-node.margo-info.txt"}, 2, "verbs", "verbs://"),
    ("improv", {"margo_info": "infiniband-no-ipoib.margo-info.txt",
                "fi_info": "infiniband-node.fi_info.txt"}, 2, "tcp", "ofi+tcp://"),
    ("generic-slurm-tcp", {"margo_info": "debian12-vm.margo-info.txt",
                           "fi_info": "debian12-vm.fi_info.txt"}, 2, "tcp", "ofi+tcp://"),
])
def test_shipped_profiles(profile: str, files: dict[str, str], nodes: int, name: str,
                          protocol: str) -> None:
    if profile not in shipped_profiles():
        pytest.skip(f"shipped profile {profile} not present")
    site = load_site(profile).profile
    sel = select_transport(site, nodes=nodes, reports=reports(**files))
    assert (sel.choice.name, sel.choice.protocol) == (name, protocol)
    if name == "cxi":
        assert any("vni" in f for f in sel.choice.launcher_flags)


# --- embedded engine ------------------------------------------------------------------------

def test_missing_engine_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENGINE_DIR_ENV, str(tmp_path / "no-such-dir"))
    with pytest.raises(InputError) as err:
        HostReports.from_engine()
    (p,) = err.value.problems
    assert "'bedrock-engine' was not found" in p.message and "--margo-info" in p.hint
    with pytest.raises(InputError) as err:
        HostReports.from_engine(tmp_path / "nope")
    assert "not an executable file" in err.value.problems[0].message


def test_engine_output_goes_through_the_margo_info_parser(tmp_path: Path) -> None:
    # Stand-in executable replaying the recorded margo-info of this machine and failing like
    # margo-info can: the exit status must be ignored and the rows parsed.
    engine = tmp_path / "bedrock-engine"
    engine.write_text(f"#!/bin/sh\n[ \"$1\" = --info ] || exit 3\n"
                      f"cat '{DATA / 'debian12-vm.margo-info.ansi.txt'}'\nexit 1\n")
    engine.chmod(0o755)
    rep = HostReports.from_engine(engine)
    assert rep.margo_info is not None and rep.margo_info.host == "vm"
    assert rep.margo_info.file == f"{engine} --info"
    site, _ = make_site(tmp_path, [CXI, TCP, SM])
    sel = select_transport(site, nodes=1, reports=rep)
    assert sel.choice.name == "tcp" and verdict(sel, "cxi").reported_usable == Usable.no


@pytest.mark.engine
def test_real_engine_info() -> None:
    try:
        exe = find_engine()
    except InputError:
        pytest.skip("the embedded engine is not built")
    rep = HostReports.from_engine(exe)
    assert rep.margo_info is not None and rep.margo_info.rows
    assert any(r.addr == "ofi+tcp://" or r.proto == "tcp" for r in rep.margo_info.rows)


# --- CLI ------------------------------------------------------------------------------------

def test_cli_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, file = make_site(tmp_path, [CXI, TCP, SM])
    rc = main(["transports", "--site", file, "--nodes", "2",
               "--margo-info", str(DATA / "debian12-vm.margo-info.ansi.txt"),
               "--fi-info", str(DATA / "debian12-vm.fi_info.txt")])
    out = capsys.readouterr().out
    assert rc == 0
    for word in ("candidate", "reported usable?", "chosen?", "reason",
                 "chosen: tcp -> ofi+tcp://"):
        assert word in out
    # the shell's "time" lines after margo-info's table are reported, not fatal
    assert "2 unrecognised line(s) ignored (line 88: 'user\\t0m0.040s'" in out.replace("\n", "")


def test_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, file = make_site(tmp_path, [CXI, TCP, SM])
    rc = main(["transports", "--site", file, "--nodes", "2", "--json",
               "--margo-info", str(DATA / "slingshot-node.margo-info.txt")])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert data["chosen"]["protocol"] == "cxi://"
    assert data["chosen"]["launcher_flags"] == ["--network=job_vni,single_node_vni"]
    assert [c["candidate"] for c in data["candidates"]] == ["cxi", "tcp", "sm"]
    assert [c["reported_usable"] for c in data["candidates"]] == ["yes", "yes", "yes"]
    assert data["site"]["name"] == "testsite"


def test_cli_nothing_usable_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, file = make_site(tmp_path, [CXI, SM])
    rc = main(["transports", "--site", file, "--nodes", "2", "--json",
               "--fi-info", str(DATA / "debian12-vm.fi_info.txt")])
    captured = capsys.readouterr()
    assert rc == 2
    errors = json.loads(captured.out)["errors"]
    assert errors[0]["file"] == file and "no usable transport" in errors[0]["message"]
    assert errors[0]["line"] == 1  # the profile is one JSON line; "transports" is on it
    assert f"{file}:1:" in captured.err and "hint:" in captured.err


def test_cli_truncated_file_no_traceback(tmp_path: Path) -> None:
    _, file = make_site(tmp_path, [TCP])
    cut = tmp_path / "margo-info.txt"
    full = (DATA / "debian12-vm.margo-info.txt").read_text()
    cut.write_text(full[: full.index("ofi+sockets://\tofi") + len("ofi+sockets://\tofi")])
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = subprocess.run([sys.executable, "-m", "bedrock_deploy", "transports", "--site", file,
                           "--margo-info", str(cut)], capture_output=True, text=True, env=env,
                          check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{cut}:" in proc.stderr and "error:" in proc.stderr


def test_cli_engine_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    engine = tmp_path / "bedrock-engine"
    engine.write_text(f"#!/bin/sh\ncat '{DATA / 'slingshot-node.margo-info.txt'}'\n")
    engine.chmod(0o755)
    monkeypatch.setenv(ENGINE_DIR_ENV, str(tmp_path))
    _, file = make_site(tmp_path, [CXI, TCP])
    assert main(["transports", "--site", file, "--engine", "--json", "--nodes", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["chosen"]["name"] == "cxi"
    assert data["sources"] == [f"{engine} --info"]
    assert any("embedded engine" in n for n in data["notes"])
    assert main(["transports", "--site", file, "--engine",
                 "--margo-info", str(DATA / "slingshot-node.margo-info.txt")]) == 2
