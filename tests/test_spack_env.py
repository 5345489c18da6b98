"""spack.yaml generation (issue 8): golden files per shipped site, and what each setting adds.

Plans are built by hand here (site profiles are real; configs mirror what the Bedrock config
emitter writes for share/examples/kv-service.yaml and mofka-like.yaml), so these tests pin the
Spack renderer alone. Goldens: tests/golden/spack/<site>--<example>.yaml, reviewed by eye (see
tests/golden/spack/README.md). To rewrite them after a reviewed change, the one golden command
(tests/golden/README.md).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bedrock_deploy.diagnostics import InputError
from bedrock_deploy.plan import DeploymentPlan, NodeLayout, TransportChoice
from bedrock_deploy.site_profile import SiteProfile, TransportScope
from bedrock_deploy.sites import load_site, shipped_profiles
from bedrock_deploy.spack_check import check_manifest, parse_spec
from bedrock_deploy.spack_env import build_spack_environment, render_spack_env
from bedrock_deploy.yaml_source import parse_yaml
from golden_files import Goldens

GOLDEN = Path(__file__).parent / "golden" / "spack"
RANK0 = "$MPI_COMM_WORLD.rank == 0"


def flock(**config: Any) -> dict[str, Any]:
    return {"name": "group", "type": "flock", "provider_id": 1,
            "config": {"bootstrap": "mpi", "group": {"type": "static"}, "file": "group.json",
                       **config}, "dependencies": {"pool": "rpc"}}


def yokan(db: str = "map", **extra: Any) -> dict[str, Any]:
    return {"name": "kv", "type": "yokan", "provider_id": 2,
            "config": {"database": {"type": db}}, "dependencies": {"pool": "rpc"}, **extra}


def kv_config() -> dict[str, Any]:
    """share/examples/kv-service.yaml: flock (mpi bootstrap) + yokan map."""
    return {"libraries": ["libflock-bedrock-module.so", "libyokan-bedrock-module.so"],
            "margo": {"mercury": {}}, "providers": [flock(), yokan()]}


def mofka_config() -> dict[str, Any]:
    """share/examples/mofka-like.yaml: flock + rank-0 yokan master + warabi + abt_io (io pool)."""
    return {
        "libraries": ["libflock-bedrock-module.so", "libyokan-bedrock-module.so",
                      "libwarabi-bedrock-module.so", "libabt-io-bedrock-module.so"],
        "margo": {"mercury": {}},
        "providers": [
            flock(),
            yokan(**{"__if__": RANK0, "tags": ["mofka:master"]}),
            {"name": "data", "type": "warabi", "provider_id": 3,
             "config": {"target": {"type": "memory"}}, "dependencies": {"pool": "rpc"}},
            {"name": "io_controller", "type": "abt_io", "provider_id": 4, "config": {},
             "dependencies": {"pool": "io"}},
        ]}


EXAMPLES = {"kv-service": kv_config, "mofka-like": mofka_config}


def inter_node_transport(site: SiteProfile, name: str | None = None) -> TransportChoice:
    for t in site.transports:
        if (name is None and t.scope is TransportScope.inter_node) or t.name == name:
            return TransportChoice(name=t.name, protocol=t.protocol, provider=t.provider,
                                   fabrics=tuple(t.fabrics), env=dict(t.env),
                                   launcher_flags=tuple(t.launcher_flags),
                                   mercury=dict(t.mercury), reason="test")
    raise AssertionError(f"site {site.name} has no transport {name}")


def make_plan(site: str | SiteProfile = "generic-slurm-tcp", configs: list[dict[str, Any]] | None
              = None, *, pins: bool = True, transport: TransportChoice | None = None,
              files: list[str] | None = None) -> DeploymentPlan:
    if isinstance(site, str):
        loaded = load_site(site)
        profile, site_files = loaded.profile, loaded.files
    else:
        profile, site_files = site, files or [f"{site.name}.yaml"]
    return DeploymentPlan(
        site=profile, site_files=site_files,
        service=SimpleNamespace(nodes=2, processes_per_node=2),  # type: ignore[arg-type]
        transport=transport or inter_node_transport(profile),
        layout=NodeLayout(ranks=(), pins_threads=pins, use_smt=False),
        configs=configs if configs is not None else [kv_config()])


def specs_of(text: str) -> dict[str, str]:
    data = parse_yaml(text, "spack.yaml").data
    return {parse_spec(s).root.name or "": s for s in data["spack"]["specs"]}


CASES = [(site, ex) for site in sorted(shipped_profiles()) for ex in EXAMPLES]


@pytest.mark.parametrize(("site", "example"), CASES)
def test_golden_spack_yaml(site: str, example: str, goldens: Goldens) -> None:
    text = render_spack_env(make_plan(site, [EXAMPLES[example]()]))
    golden = GOLDEN / f"{site}--{example}.yaml"
    goldens.check_file(golden, text)
    doc = parse_yaml(text, golden.name)
    assert check_manifest(doc) == []
    spack = doc.data["spack"]
    assert spack["concretizer"] == {"unify": True}
    assert spack["view"] is True
    assert spack["modules"]["prefix_inspections"] == {"lib": ["LD_LIBRARY_PATH"],
                                                      "lib64": ["LD_LIBRARY_PATH"]}
    repos = list(spack["repos"])
    assert repos[0] == "mochi" and repos[-1] == "builtin"


def test_no_spack_golden_without_a_shipped_site(goldens: Goldens) -> None:
    goldens.check_no_others(sorted(GOLDEN.glob("*.yaml")),
                            {GOLDEN / f"{site}--{example}.yaml" for site, example in CASES})


def test_components_follow_the_configs() -> None:
    specs = specs_of(render_spack_env(make_plan(configs=[kv_config()])))
    assert specs["mochi-bedrock"] == "mochi-bedrock+mpi"  # flock bootstrap mpi
    assert specs["mochi-flock"] == "mochi-flock+mpi"
    assert specs["mochi-yokan"] == "mochi-yokan"  # map backend: no variant
    assert "mochi-warabi" not in specs and "mochi-abt-io" not in specs and "mofka" not in specs


def test_rocksdb_and_io_uring_add_their_variants() -> None:
    cfg = mofka_config()
    cfg["providers"][1]["config"]["database"]["type"] = "rocksdb"
    cfg["providers"][3]["config"]["num_urings"] = 2
    specs = specs_of(render_spack_env(make_plan(configs=[cfg])))
    assert specs["mochi-yokan"] == "mochi-yokan+rocksdb"
    assert specs["mochi-abt-io"] == "mochi-abt-io+liburing"
    assert specs["mochi-warabi"] == "mochi-warabi"


def test_no_mpi_anywhere_builds_bedrock_without_mpi() -> None:
    cfg = {"libraries": ["libyokan-bedrock-module.so"], "providers": [yokan()]}
    specs = specs_of(render_spack_env(make_plan(configs=[cfg])))
    assert specs["mochi-bedrock"] == "mochi-bedrock~mpi"
    assert "mochi-flock" not in specs


def test_rank0_condition_alone_needs_bedrock_mpi() -> None:
    cfg = {"providers": [yokan(**{"__if__": RANK0})]}
    assert specs_of(render_spack_env(make_plan(configs=[cfg])))["mochi-bedrock"] == \
        "mochi-bedrock+mpi"


def test_affinity_only_when_the_layout_pins() -> None:
    assert specs_of(render_spack_env(make_plan(pins=True)))["argobots"] == "argobots+affinity"
    assert specs_of(render_spack_env(make_plan(pins=False)))["argobots"] == "argobots"


def test_plumber_needs_margo_hwloc() -> None:
    cfg = kv_config()
    cfg["margo"]["plumber"] = {"bucket_policy": "numa", "nic_policy": "roundrobin"}
    assert specs_of(render_spack_env(make_plan(configs=[cfg])))["mochi-margo"] == \
        "mochi-margo+hwloc"


def test_tcp_builds_libfabric_with_the_site_fabrics() -> None:
    specs = specs_of(render_spack_env(make_plan("generic-slurm-tcp")))
    assert specs["mercury"] == "mercury~boostsys~checksum+ofi"
    assert specs["libfabric"] == "libfabric fabrics=tcp,rxm"


def _site(**spack: Any) -> SiteProfile:
    base = load_site("generic-slurm-tcp").profile.model_dump(mode="json", exclude_none=True)
    base["spack"] = {**base.get("spack", {}), **spack}
    return SiteProfile.model_validate(base)


def test_vendor_libfabric_is_an_external_without_fabrics() -> None:
    site = _site(externals=[{"spec": "libfabric@1.22.0", "modules": ["libfabric/1.22.0"],
                             "buildable": False}], require={})
    text = render_spack_env(make_plan(site))
    assert "libfabric" not in specs_of(text)
    lf = parse_yaml(text, "x").data["spack"]["packages"]["libfabric"]
    assert lf == {"externals": [{"spec": "libfabric@1.22.0", "modules": ["libfabric/1.22.0"]}],
                  "buildable": False}


def test_site_requirements_pins_and_mirrors() -> None:
    site = _site(require={"mercury": ["+hwloc"], "mochi-margo": ["@0.24.0:"]},  # replaces A's
                 repos={"mochi": {"commit": "128261a49590"},
                        "builtin": {"branch": "releases/v2025.11"}},
                 mirrors={"mochi-buildcache": "oci://ghcr.io/mochi-hpc/mochi-spack-buildcache"})
    text = render_spack_env(make_plan(site))
    spack = parse_yaml(text, "x").data["spack"]
    assert spack["packages"]["mercury"]["require"] == ["+hwloc"]
    assert spack["packages"]["mochi-margo"]["require"] == ["@0.24.0:"]
    assert spack["repos"]["mochi"] == {
        "git": "https://github.com/mochi-hpc/mochi-spack-packages.git", "commit": "128261a49590"}
    assert spack["repos"]["builtin"]["branch"] == "releases/v2025.11"
    assert spack["mirrors"] == {"mochi-buildcache":
                                "oci://ghcr.io/mochi-hpc/mochi-spack-buildcache"}
    assert "# Repo mochi: https://github.com/mochi-hpc/mochi-spack-packages.git commit " \
        "128261a49590." in text
    assert "# Spack: 1.1.0." in text


def test_compilers_use_the_spack_1_form() -> None:
    site = _site(compilers=[{"spec": "gcc@13.3.0", "prefix": "/opt/gcc-13"}])
    gcc = parse_yaml(render_spack_env(make_plan(site)), "x").data["spack"]["packages"]["gcc"]
    assert gcc["externals"] == [{
        "spec": "gcc@13.3.0 languages='c,c++,fortran'", "prefix": "/opt/gcc-13",
        "extra_attributes": {"compilers": {"c": "/opt/gcc-13/bin/gcc",
                                           "cxx": "/opt/gcc-13/bin/g++",
                                           "fortran": "/opt/gcc-13/bin/gfortran"}}}]


def test_mofka_brings_the_diaspora_repo() -> None:
    cfg = mofka_config()
    cfg["libraries"].append("libmofka-bedrock-module.so")
    text = render_spack_env(make_plan(configs=[cfg]))
    assert "mofka" in specs_of(text)
    assert list(parse_yaml(text, "x").data["spack"]["repos"]) == ["mochi", "diaspora", "builtin"]


def test_generator_source_adds_our_package_repo_and_develop() -> None:
    source = Path(__file__).resolve().parent.parent
    if not (source / "pyproject.toml").is_file():
        pytest.skip("needs the bedrock-deploy source tree")
    text = render_spack_env(make_plan(), generator_source=source)
    spack = parse_yaml(text, "x").data["spack"]
    assert "py-bedrock-deploy" in specs_of(text)
    assert spack["develop"]["py-bedrock-deploy"] == {"spec": "py-bedrock-deploy@=0.1.0",
                                                     "path": str(source)}
    assert spack["repos"]["bedrock_deploy"] == str(
        source / "spack-repo" / "spack_repo" / "bedrock_deploy")
    assert list(spack["repos"])[-1] == "builtin"
    assert "py-bedrock-deploy" not in specs_of(render_spack_env(make_plan()))


def test_unknown_provider_type_is_a_located_error() -> None:
    cfg = {"providers": [{"name": "x", "type": "poesie", "provider_id": 5, "config": {}}]}
    with pytest.raises(InputError) as err:
        render_spack_env(make_plan(configs=[cfg]))
    p = err.value.problems[0]
    assert "poesie" in p.message and p.file == "configs/rank-0.json"
    assert p.path == ("providers", 0, "type")


def test_unknown_yokan_backend_is_an_error() -> None:
    with pytest.raises(InputError, match=r"unknown yokan database\.type 'redis'"):
        render_spack_env(make_plan(configs=[{"providers": [yokan("redis")]}]))


def test_build_environment_records_why() -> None:
    env = build_spack_environment(make_plan())
    assert any(r.startswith("argobots+affinity:") for r in env.reasons)
    assert any(r.startswith("libfabric fabrics=tcp,rxm:") for r in env.reasons)


def test_transport_without_fabrics_names_the_site_key() -> None:
    loaded = load_site("generic-slurm-ib")
    t = inter_node_transport(loaded.profile)
    bare = t.__class__(**{**t.__dict__, "fabrics": ()})
    with pytest.raises(InputError) as err:
        render_spack_env(make_plan("generic-slurm-ib", transport=bare))
    p = err.value.problems[0]
    assert p.path == ("transports", 0, "fabrics") and p.file == loaded.files[0]
    assert p.hint is not None and "fabrics: [verbs, rxm]" in p.hint
