"""Shipped site profiles, their JSON Schema, `extends`, `node: probe`, and located errors."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from bedrock_deploy.cli import main
from bedrock_deploy.commands.sites import site_schema
from bedrock_deploy.cpulist import format_cpulist
from bedrock_deploy.launch.launcher import LAUNCHERS
from bedrock_deploy.launch.scheduler import SCHEDULERS
from bedrock_deploy.probe import probe_host
from bedrock_deploy.resources import share_path, site_profiles_dir
from bedrock_deploy.site_profile import NicKind
from bedrock_deploy.sites import load_site, shipped_profiles
from bedrock_deploy.topology import Topology
from golden_files import UPDATE_COMMAND, Goldens

SHIPPED = sorted(shipped_profiles())  # every site-profiles/*.yaml: nothing else lists them
SCHEMA_FILE = share_path("schemas", "site-profile.schema.json")
README = Path(__file__).parent.parent / "README.md"
BEGIN, END = "<!-- BEGIN shipped-sites: generated, do not edit -->", "<!-- END shipped-sites -->"


def test_base_parts_are_not_sites_and_each_is_used() -> None:
    base = sorted((site_profiles_dir() / "base").glob("*.yaml"))
    assert base and not {p.stem for p in base} & set(SHIPPED)
    used = {Path(f).resolve() for name in SHIPPED for f in load_site(name).files}
    assert [p for p in base if p.resolve() not in used] == []


def sites_table() -> str:
    """The README's table of shipped profiles, from the profiles themselves."""
    rows = ["| profile | scheduler | launcher | node | description |", "|---|---|---|---|---|"]
    for name in SHIPPED:
        loaded = load_site(name)
        site = loaded.profile
        raw_nodes = [YAML(typ="safe").load(Path(f).read_text()).get("node") for f in loaded.files]
        node = ("probed from this host" if "probe" in raw_nodes else
                f"{site.node.sockets} x {site.node.cores_per_socket} cores")
        text = site.description.replace("|", "/")
        rows.append(f"| `{name}` | {site.scheduler.type} | {site.launcher.type} | {node} | "
                    f"{text} |")
    return "\n".join(rows) + "\n"


def test_readme_lists_every_shipped_site(goldens: Goldens) -> None:
    text = README.read_text(encoding="utf-8")
    assert BEGIN in text and END in text, "README.md lost its shipped-sites markers"
    head, rest = text.split(BEGIN + "\n", 1)
    block, tail = rest.split(END, 1)
    if goldens.update:
        README.write_text(head + BEGIN + "\n" + sites_table() + END + tail, encoding="utf-8")
    else:
        assert block == sites_table(), f"README's shipped-sites table is stale: {UPDATE_COMMAND}"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profile_validates(name: str) -> None:
    loaded = load_site(name)
    site = loaded.profile
    assert site.name == name
    assert site.sources, "every shipped profile says where its facts come from"
    topo = Topology.from_node(site.node)
    assert topo.usable_cores, "a profile must leave cores to run on"
    # every NIC's NUMA domain holds CPUs (the planner places xstreams next to NICs)
    for nic in site.node.nics:
        if nic.numa_domain is not None:
            assert nic.numa_domain in topo.numa_domains
    # clusters run the Spack-built bedrock; this host (local*) runs our embedded engine
    assert site.engine.value == ("embedded" if name.startswith("local") else "spack")
    if site.engine.value == "spack":
        assert site.spack.version == "1.1.0"
        assert "mochi" in site.spack.repos
        assert {"~boostsys", "~checksum"} <= set(site.spack.require["mercury"])


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profile_matches_the_json_schema(name: str) -> None:
    """The merged document (after ``extends``) validates with jsonschema too."""
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    errors = [f"{list(e.absolute_path)}: {e.message}"
              for e in validator.iter_errors(load_site(name).data)]
    assert errors == []


def test_raw_local_profile_with_node_probe_matches_the_json_schema() -> None:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    raw = YAML(typ="safe").load((site_profiles_dir() / "local.yaml").read_text())
    assert raw["node"] == "probe"
    assert list(validator.iter_errors(raw)) == []
    raw["node"] = "probed"  # only the literal 'probe' is accepted
    assert list(validator.iter_errors(raw))


def test_json_schema_file_is_in_sync_with_the_model(tmp_path: Path, goldens: Goldens) -> None:
    """The shipped schema is generated (its launcher and scheduler names come from the
    registries): the golden command rewrites it with `bedrock-deploy sites schema -o`."""
    out = tmp_path / "schema.json"
    assert main(["sites", "schema", "-o", str(out)]) == 0
    assert json.loads(out.read_text()) == site_schema()
    goldens.check_file(SCHEMA_FILE, out.read_text())
    jsonschema.Draft202012Validator.check_schema(site_schema())


def test_json_schema_lists_the_registered_launchers_and_schedulers() -> None:
    defs = site_schema()["$defs"]
    assert defs["Launcher"]["properties"]["type"]["enum"] == LAUNCHERS.names()
    assert defs["Scheduler"]["properties"]["type"]["enum"] == SCHEDULERS.names()
    assert "srun: Slurm's srun" in defs["Launcher"]["properties"]["type"]["description"]


def test_aurora_topology_facts() -> None:
    site = load_site("aurora").profile
    topo = Topology.from_node(site.node)
    assert len(topo.cores) == 104 and len(topo.usable_cores) == 102
    assert topo.cores[0].cpus == (0, 104) and topo.cores[52].cpus == (52, 156)
    assert {c.index for c in topo.cores} - {c.index for c in topo.usable_cores} == {0, 52}
    assert topo.nic_numa("cxi") == (0, 1)
    assert [n.name for n in site.node.nics] == [f"cxi{i}" for i in range(8)]
    assert sum(g.count for g in site.node.gpus) == 6
    cxi = site.transports[0]
    assert (cxi.protocol, cxi.launcher_flags, cxi.env) == \
        ("cxi://", ["--single-node-vni"], {"PALS_LOCAL_LAUNCH": "0"})
    # the FI_CXI_* tuning stays a comment, as upstream keeps it
    assert not any(k.startswith("FI_CXI") for t in site.transports for k in t.env)
    assert "# FI_CXI_RX_MATCH_MODE: hybrid" in (site_profiles_dir() / "aurora.yaml").read_text()
    libfabric = next(e for e in site.spack.externals if e.spec.startswith("libfabric"))
    assert (libfabric.spec, libfabric.buildable, libfabric.prefix) == \
        ("libfabric@1.22.0", False, "/opt/cray/libfabric/1.22.0")


def test_frontier_polaris_perlmutter_facts() -> None:
    frontier = load_site("frontier").profile
    topo = Topology.from_node(frontier.node)
    assert len(topo.usable_cores) == 56
    assert sorted(frontier.node.reserved_cores) == list(range(0, 64, 8))
    assert topo.nic_numa("cxi") == (0, 1, 2, 3)
    assert frontier.transports[0].launcher_flags == ["--network=job_vni,single_node_vni"]
    assert frontier.launcher.type == "srun"
    polaris = load_site("polaris").profile
    ptopo = Topology.from_node(polaris.node)
    assert ptopo.cores[8].numa == 1 and ptopo.cores[8].cpus == (8, 40)
    assert ptopo.nic_numa("cxi") == (0, 2)
    assert polaris.launcher.type == "mpiexec-pals"
    perl = load_site("perlmutter").profile
    assert [format_cpulist(d.cpus) for d in perl.node.numa_domains][4] == "64-79,192-207"
    assert Topology.from_node(perl.node).cores[64].socket == 1


def test_bebop_improv_generic_facts() -> None:
    bebop = load_site("bebop").profile
    assert bebop.transports[0].protocol == "ofi+psm2://"
    assert bebop.transports[0].env["PSM2_MULTI_EP"] == "1"
    assert bebop.node.nics[0].kind is NicKind.psm2
    knl = load_site("bebop-knl").profile
    assert Topology.from_node(knl.node).cores[1].cpus == (1, 65, 129, 193)
    assert knl.scheduler.queues[0].name == "knlall" and knl.transports == bebop.transports
    improv = load_site("improv").profile
    assert (improv.scheduler.type, improv.launcher.type) == \
        ("pbs", "mpirun-openmpi")
    assert improv.spack.require["libfabric"] == ["fabrics=rxm,verbs"]
    ib = load_site("generic-slurm-ib").profile
    tcp = load_site("generic-slurm-tcp").profile
    assert ib.node.sockets == tcp.node.sockets and ib.node.nics[0].kind is NicKind.verbs
    assert [t.name for t in ib.transports] == ["verbs", "tcp", "sm"]


def test_local_profiles_probe_this_host() -> None:
    local = load_site("local")
    assert local.profile.node == probe_host().node
    assert local.profile.engine.value == "embedded"
    assert [t.protocol for t in local.profile.transports] == ["na+sm://", "ofi+tcp://"]
    assert local.profile.transports[1].env == {"FI_TCP_IFACE": "lo"}
    slurm = load_site("local-slurm").profile
    assert slurm.node == local.profile.node
    assert (slurm.scheduler.type, slurm.scheduler.partition) == ("slurm", "debug")
    assert (slurm.launcher.type, slurm.launcher.mpi, slurm.launcher.command) == \
        ("srun", "pmix", None)
    assert slurm.launcher.flags == []  # --oversubscribe is mpirun's, not srun's


def test_sites_show_prints_the_merged_profile(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sites", "show", "sunspot", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "sunspot"
    assert data["node"]["cores_per_socket"] == 52  # from aurora.yaml
    assert data["node"]["reserved_cores"] == [0, 52]
    sched = data["scheduler"]
    assert (sched["type"], sched["directives"], sched["account_required"]) == \
        ("pbs", ["-l filesystems=gila:home"], True)  # account rule from slingshot-pals.yaml
    assert [q["name"] for q in sched["queues"]] == ["workq"]
    assert data["launcher"]["type"] == "mpiexec-pals"  # from base/slingshot-pals.yaml
    assert data["launcher"]["flags"] == ["-envall"]
    assert [e["spec"] for e in data["spack"]["externals"]] == \
        ["libfabric@1.20.1.0", "mpich@20240717"]
    assert data["verified"]["date"] == "2026-11-29"
    assert main(["sites", "show", "sunspot"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    root = site_profiles_dir().resolve()
    assert first == (f"# sunspot: merged from {root / 'sunspot.yaml'} <- {root / 'aurora.yaml'}"
                     f" <- {root / 'base' / 'slingshot-pals.yaml'}")


def test_sites_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sites", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert sorted(rows) == SHIPPED
    assert rows["frontier"]["transport"] == "cxi://"
    assert rows["local"]["launcher"] == "mpirun-openmpi"


# ---------------------------------------------------------------- bad profiles


def _validate(path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert main(["sites", "validate", str(path)]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.err.splitlines()


def test_typo_gets_did_you_mean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "typo.yaml"
    bad.write_text("name: typo\nextends: generic-slurm-tcp\nnode:\n  socket: 2\n")
    assert _validate(bad, capsys) == [
        f"{bad}:4:3: error: node.socket: unknown key 'socket'",
        "    hint: did you mean 'sockets'?",
    ]


def test_wrong_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "wrongtype.yaml"
    bad.write_text("name: wrongtype\nextends: generic-slurm-tcp\nnode:\n"
                   "  cores_per_socket: many\n")
    assert _validate(bad, capsys) == [
        f"{bad}:4:3: error: node.cores_per_socket: Input should be a valid integer, unable to "
        "parse string as an integer (got 'many')",
        "    hint: write a whole number; expected: physical cores per socket",
    ]


def test_inheritance_cycle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text("name: a\nextends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("name: b\n# b goes back to a\nextends: a.yaml\n")
    assert _validate(tmp_path / "a.yaml", capsys) == [
        f"{tmp_path / 'b.yaml'}:3:1: error: extends: inheritance cycle: a.yaml -> b.yaml -> "
        "a.yaml",
        "    hint: remove 'extends' from one profile in the cycle",
    ]


def test_numa_domain_with_a_cpu_that_does_not_exist(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "numa.yaml"
    bad.write_text("name: numa\nextends: generic-slurm-tcp\nnode:\n  numa_domains:\n"
                   "    - {id: 0, socket: 0, cpus: \"0-15,32-47\"}\n"
                   "    - {id: 1, socket: 1, cpus: \"16-31,48-64\"}\n")
    assert _validate(bad, capsys) == [
        f"{bad}:6:26: error: node.numa_domains[1].cpus: CPU 64 does not exist on this node",
        "    hint: the node has CPUs 0-63 (2 sockets x 16 cores x 2 threads); fix the list or "
        "the core counts",
    ]


def test_error_in_a_parent_points_into_the_parent(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "parent.yaml").write_text(
        (site_profiles_dir() / "generic-slurm-tcp.yaml").read_text()
        .replace("  time: \"00:30:00\"", "  time: half an hour"))
    child = tmp_path / "child.yaml"
    child.write_text("name: child\nextends: parent.yaml\n")
    lines = _validate(child, capsys)
    parent_text = (tmp_path / "parent.yaml").read_text().splitlines()
    line_no = next(i for i, t in enumerate(parent_text, 1) if "half an hour" in t)
    assert lines[0].startswith(f"{tmp_path / 'parent.yaml'}:{line_no}:3: error: "
                               "scheduler.time: String should match pattern")
    assert lines[1] == "    hint: follow the required pattern; expected: wall time as " \
                       "[D-]HH:MM[:SS]"


def test_unknown_parent_lists_shipped_profiles(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "orphan.yaml"
    bad.write_text("name: orphan\nextends: auroraa\n")
    lines = _validate(bad, capsys)
    assert lines[0] == f"{bad}:2:1: error: extends: no site profile 'auroraa'"
    assert lines[1].startswith("    hint: give a file path, or one of: aurora, bebop-knl,")


def test_external_without_prefix_or_modules(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "ext.yaml"
    bad.write_text("name: ext\nextends: generic-slurm-tcp\nspack:\n  externals:\n"
                   "    - {spec: cray-mpich@8.1.31, buildable: false}\n")
    assert _validate(bad, capsys) == [
        f"{bad}:5:7: error: spack.externals[0]: external 'cray-mpich@8.1.31' has neither a "
        "prefix nor modules",
        "    hint: Spack finds it by its install prefix or by the modules that load it: add "
        "'prefix: /path' or 'modules: [name/version]'",
    ]


def test_a_profile_extending_local_can_override_parts_of_the_probed_node(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text(f"name: mine\nextends: {site_profiles_dir() / 'local.yaml'}\n"
                    "node:\n  reserved_cores: [0]\n")
    node = load_site(mine).profile.node
    probed = probe_host().node
    assert node.reserved_cores == [0]
    assert node.model_copy(update={"reserved_cores": []}) == probed
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"name: bad\nextends: {site_profiles_dir() / 'local.yaml'}\n"
                   "node:\n  reserved_cores: [4096]\n")
    lines = _validate(bad, capsys)
    assert lines[0] == (f"{bad}:4:20: error: node.reserved_cores[0]: reserved core 4096 does "
                        f"not exist (cores are 0-{probed.total_cores - 1})")


# ---- issue 14: the site facts that decay, each checked against the profile -----------------

CLUSTERS = sorted(n for n in shipped_profiles() if not n.startswith("local"))
GENERIC = {"generic-slurm-ib", "generic-slurm-tcp"}


@pytest.mark.parametrize("name", sorted(set(CLUSTERS) - GENERIC))
def test_every_real_site_records_when_and_against_what_it_was_verified(name: str) -> None:
    site = load_site(name).profile
    assert site.verified is not None, f"{name}: no 'verified' record"
    assert site.verified.against and site.verified.day.year >= 2026
    text = "\n".join(Path(f).read_text() for f in load_site(name).files)
    # facts come from public sources, never from notes kept outside the repository
    assert "shared/reference" not in text and "mochi-stack.md" not in text


def test_alcf_and_improv_require_an_account_and_a_login_shell() -> None:
    for name in ("aurora", "polaris", "sunspot", "improv"):
        sched = load_site(name).profile.scheduler
        assert sched.account_required and sched.login_shell, name
    assert load_site("aurora").profile.scheduler.account_error == \
        "qsub: Account_Name is required to be set."
    assert not load_site("perlmutter").profile.scheduler.account_required  # default project


def test_queue_tables_follow_the_sites_documentation() -> None:
    aurora = {q.name: q for q in load_site("aurora").profile.scheduler.queues}
    assert (aurora["debug"].max_nodes, aurora["debug"].max_walltime) == (2, "01:00:00")
    assert (aurora["debug-scaling"].min_nodes, aurora["debug-scaling"].max_nodes) == (2, 256)
    polaris = [(q.name, q.min_nodes, q.max_nodes) for q in
               load_site("polaris").profile.scheduler.queues if q.auto][:3]
    assert polaris == [("debug", 1, 2), ("debug-scaling", 1, 10), ("prod", 10, 24)]
    frontier = load_site("frontier").profile.scheduler.queues
    assert [(q.name, q.max_nodes, q.max_walltime) for q in frontier if q.auto] == \
        [("batch", 91, "02:00:00"), ("batch", 183, "06:00:00"), ("batch", 9472, "12:00:00")]
    assert "-q debug" not in load_site("frontier").profile.scheduler.directives


def test_current_software_externals() -> None:
    aurora = load_site("aurora").profile.spack
    text = yaml_text("aurora")
    assert "24.347.0" not in text.split("# Software")[0] + "".join(
        str(c.prefix) for c in aurora.compilers)  # the PE ALCF dropped in 2026
    assert aurora.compilers[0].modules == ["oneapi/release/2025.3.1"]
    assert all("24.347.0" not in (e.prefix or "") + " ".join(e.modules)
               for e in aurora.externals)
    frontier = {e.spec.split("@")[0]: e for e in load_site("frontier").profile.spack.externals}
    assert frontier["libfabric"].spec == "libfabric@2.3.1"
    assert frontier["libfabric"].modules == ["libfabric"]  # OLCF: no specific version
    bebop = [e.spec for e in load_site("bebop").profile.spack.externals]
    assert bebop == ["intel-oneapi-mpi@2021.10.0"]  # intel-mpi left Spack's builtin repo
    perl = load_site("perlmutter").profile.spack.compilers[0]
    assert (perl.spec, perl.prefix) == ("gcc@13.2.1", "/opt/cray/pe/gcc-native/13")
    sunspot = load_site("sunspot").profile
    assert sunspot.scheduler.directives == ["-l filesystems=gila:home"]
    assert sunspot.spack.externals[0].modules[0] == "libfabric/1.20.1"


def test_generic_infiniband_keeps_the_registration_cache() -> None:
    verbs = load_site("generic-slurm-ib").profile.transports[0]
    assert "FI_MR_CACHE_MAX_COUNT" not in verbs.env
    assert verbs.env == {"FI_OFI_RXM_USE_SRX": "1"}


def test_compiler_without_prefix_or_paths_is_refused(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("name: p\nextends: perlmutter\nspack:\n  compilers:\n"
                   "    - {spec: gcc@13.2.1, modules: [PrgEnv-gnu, gcc-native/13.2]}\n")
    assert main(["sites", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:5:7: error: spack.compilers[0]: compiler 'gcc@13.2.1' has neither a " \
        "prefix nor paths" in err


def test_queue_table_rows_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "q.yaml"
    bad.write_text("name: q\nextends: polaris\nscheduler:\n  queues:\n"
                   "    - {name: x, min_nodes: 4, max_nodes: 2}\n"
                   "    - {name: y, option: qos}\n")
    assert main(["sites", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "max_nodes is below min_nodes" in err and "is a QOS, which only Slurm has" in err


def yaml_text(name: str) -> str:
    return (site_profiles_dir() / f"{name}.yaml").read_text()
