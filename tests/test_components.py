"""The component catalogue (share/components.json) and every reader of it agree.

Each reader (service loader, validator, Spack environment, launch scripts, engine) is asked
what it knows about each provider type and compared with the catalogue: a test here fails when
any of them keeps its own copy of a fact that has drifted.
"""

from __future__ import annotations

import copy
import importlib
import json
from typing import Any

import jsonschema
import pytest

from bedrock_deploy.bedrock_validator import validate_config
from bedrock_deploy.components import catalogue, config_uses_mpi, schema
from bedrock_deploy.engine import EngineNotFound, bindings
from bedrock_deploy.launch.render import needs_mpi
from bedrock_deploy.plan import Role
from bedrock_deploy.resources import share_path
from bedrock_deploy.sites import load_site
from bedrock_deploy.spack_check import knowledge
from bedrock_deploy.spack_env import SpackEnvironment, collect_components

CAT = catalogue()
# the module (bedrock_deploy.service is also the name of an API function)
service_mod = importlib.import_module("bedrock_deploy.service")
TYPES = sorted(CAT.components)


def test_catalogue_matches_its_schema() -> None:
    raw = json.loads(share_path("components.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema())
    jsonschema.validate(raw, schema())


def test_catalogue_entries_are_coherent() -> None:
    kb = knowledge()
    for c in CAT.components.values():
        assert c.library.endswith("-bedrock-module.so"), c.name
        info = kb.packages[c.package]
        assert info.repo == c.repo and info.latest == c.latest
        variants = [r.variant for r in c.variant_rules] + [
            v.variant for ch in c.choices for v in ch.values.values() if v.variant]
        for token in variants:
            assert token[1:] in info.variants, (c.name, token)
        for ch in c.choices:
            for value in ch.values.values():
                if value.engine:
                    assert c.engine_implemented, (c.name, ch.path)
        names = [d.name for d in c.dependencies]
        assert len(names) == len(set(names)), c.name
    for c in CAT.components.values():  # a library registers one or more types
        assert c in CAT.by_library(c.library) and c in CAT.by_library("/opt/lib/" + c.library)


def test_service_loader_reads_the_catalogue() -> None:
    assert {n: c.library for n, c in CAT.components.items()} == service_mod.KNOWN_LIBRARIES
    assert {n: c.default_config for n, c in
                                           CAT.components.items()} == service_mod.DEFAULT_CONFIGS
    for name, c in CAT.components.items():
        comp = service_mod.Component(name=f"p_{name}", type=name)
        assert comp.module_library == c.library
        assert comp.pool_role is Role(c.pool_role)


def _provider_config(ctype: str, **provider: Any) -> dict[str, Any]:
    c = CAT[ctype]
    deps = {d.name: "__primary__" for d in c.dependencies if d.required and d.type == "pool"}
    config = copy.deepcopy(c.default_config)
    if ctype == "flock":
        config["file"] = "group.json"
    entry = {"name": "p", "type": ctype, "provider_id": 1, "config": config,
             "dependencies": deps, **provider}
    return {"libraries": [c.library], "providers": [entry]}


@pytest.mark.parametrize("ctype", TYPES)
def test_validator_reads_the_catalogue(ctype: str) -> None:
    c = CAT[ctype]
    cfg = _provider_config(ctype)
    errors = [i for i in validate_config(cfg, cli_address="na+sm") if i.severity == "error"]
    if any(d.required and d.type != "pool" for d in c.dependencies):
        assert all("Missing dependency" in e.message for e in errors)
    else:
        assert errors == [], [e.format() for e in errors]
    cfg["libraries"] = []
    (err,) = [i for i in validate_config(cfg, cli_address="na+sm") if i.pointer ==
              "/providers/0/type"]
    assert c.library in err.message
    cfg = _provider_config(ctype)
    cfg["providers"][0]["dependencies"]["no_such_key"] = "x"
    undeclared = [i for i in validate_config(cfg, cli_address="na+sm")
                  if i.pointer == "/providers/0/dependencies/no_such_key"]
    assert [i.severity for i in undeclared] == ([] if c.open_dependencies else ["warning"])
    for d in c.dependencies:
        if d.required:
            cfg = _provider_config(ctype)
            cfg["providers"][0]["dependencies"].pop(d.name, None)
            assert any(f'Missing dependency "{d.name}"' in i.message
                       for i in validate_config(cfg, cli_address="na+sm"))


@pytest.mark.parametrize("ctype", TYPES)
def test_spack_environment_reads_the_catalogue(ctype: str) -> None:
    c = CAT[ctype]

    class Plan:
        configs = [_provider_config(ctype)]

    env = SpackEnvironment()
    collect_components(Plan(), env, knowledge())  # type: ignore[arg-type]
    assert c.package in env.specs
    for rule in c.variant_rules:
        env = SpackEnvironment()
        cfg = _provider_config(ctype)
        node = cfg["providers"][0]["config"]
        for k in rule.key[:-1]:
            node = node.setdefault(k, {})
        node[rule.key[-1]] = rule.value if rule.test != "positive" else 1
        Plan.configs = [cfg]
        collect_components(Plan(), env, knowledge())  # type: ignore[arg-type]
        assert rule.variant in env.specs[c.package]


def test_packages_yaml_does_not_repeat_the_catalogue() -> None:
    from ruamel.yaml import YAML

    raw = YAML(typ="safe").load(share_path("spack", "packages.yaml").read_text())
    for c in CAT.components.values():
        assert c.package not in raw["packages"], c.package
    assert "bedrock_modules" not in raw and "yokan_backends" not in raw


MPI_CASES: list[tuple[dict[str, Any], bool]] = [
    (_provider_config("flock"), True),  # default flock config bootstraps with MPI
    (_provider_config("flock", config={"bootstrap": "self", "group": {"type": "static"}}),
     False),
    (_provider_config("yokan", __if__="$MPI_COMM_WORLD.rank == 0"), True),
    (_provider_config("yokan", dependencies={"remi_sender": "x@0"}), True),
    (_provider_config("yokan"), False),
]


@pytest.mark.parametrize(("config", "uses"), MPI_CASES)
def test_one_home_decides_whether_a_config_uses_mpi(config: dict[str, Any],
                                                    uses: bool) -> None:
    assert bool(config_uses_mpi(config)) is uses

    class Plan:
        configs = [config]
        site = load_site("local-slurm").profile  # srun: a launcher with an MPI world

    assert needs_mpi(Plan()) is uses  # type: ignore[arg-type]
    env = SpackEnvironment()
    collect_components(Plan(), env, knowledge())  # type: ignore[arg-type]
    assert ("+mpi" in env.specs["mochi-bedrock"]) is uses


@pytest.mark.engine
def test_engine_was_built_from_this_catalogue() -> None:
    try:
        eng = bindings()
    except EngineNotFound as exc:
        pytest.skip(str(exc))
    assert eng.catalogue() == json.loads(share_path("components.json").read_text())
    assert sorted(eng.implemented_components()) == sorted(
        n for n, c in CAT.components.items() if c.engine_implemented)
