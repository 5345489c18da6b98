"""Service descriptions: the shipped examples, located errors, Bedrock JSON as a service."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bedrock_deploy.diagnostics import InputError
from bedrock_deploy.plan import Role
from bedrock_deploy.resources import share_path
from bedrock_deploy.service import RANK0_CONDITION, load_service, service_from_dict

EXAMPLES = share_path("examples")


def write(tmp_path: Path, text: str, name: str = "svc.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_kv_example() -> None:
    svc = load_service(EXAMPLES / "kv-service.yaml").service
    assert (svc.name, svc.nodes, svc.processes_per_node) == ("kv", 2, 2)
    assert [(c.name, c.type) for c in svc.components] == [("group", "flock"), ("kv", "yokan")]
    assert svc.provider_ids() == {"group": 1, "kv": 2}
    assert not svc.uses_io_pool and svc.io_xstreams == 0
    assert svc.libraries() == ["libflock-bedrock-module.so", "libyokan-bedrock-module.so"]


def test_mofka_like_example() -> None:
    svc = load_service(EXAMPLES / "mofka-like.yaml").service
    by = {c.name: c for c in svc.components}
    assert by["master"].rank0_only and by["master"].tags == ["mofka:master"]
    assert by["io_controller"].pool_role is Role.io
    assert by["data"].pool_role is Role.rpc
    assert svc.io_xstreams == 2
    assert {c.type for c in svc.components} == {"flock", "yokan", "warabi", "abt_io"}


def test_bedrock_json_as_service() -> None:
    loaded = load_service(EXAMPLES / "mofka-config.json")
    svc = loaded.service
    assert loaded.kind == "bedrock-json"
    assert [c.name for c in svc.components] == ["group_manager", "master", "data",
                                                "io_controller"]
    by = {c.name: c for c in svc.components}
    assert by["master"].rank0_only  # "__if__": "$MPI_COMM_WORLD.rank == 0" kept
    assert by["group_manager"].config["file"] == "mofka.json"  # provider config kept
    assert svc.provider_ids() == {"group_manager": 1, "master": 2, "data": 3,
                                  "io_controller": 4}
    # margo re-planned from use_progress_thread / rpc_thread_count / the io xstreams
    assert svc.threads.rpc == 4 and svc.threads.progress.value == "dedicated"
    assert svc.io_xstreams == 2
    assert svc.extra_libraries == ["libmofka-bedrock-module.so"]
    assert "libmofka-bedrock-module.so" in svc.libraries()


def test_unknown_key_is_located_with_a_suggestion(tmp_path: Path) -> None:
    f = write(tmp_path, "name: s\nprocesses_per_node: 2\nthreads:\n  rcp: 2\n"
              "components:\n  - {name: g, type: flock}\n")
    with pytest.raises(InputError) as exc:
        load_service(f)
    (p,) = exc.value.problems
    assert p.location is not None and (p.location.line, p.location.column) == (4, 3)
    assert "unknown key 'rcp'" in p.message and "did you mean 'rpc'" in (p.hint or "")


def test_cross_field_errors(tmp_path: Path) -> None:
    f = write(tmp_path, """name: s
components:
  - {name: db, type: yokan, rank0_only: true}
  - {name: a, type: yokan, provider_id: 7}
  - {name: a, type: warabi, provider_id: 7, dependencies: {db: db}}
""")
    with pytest.raises(InputError) as exc:
        load_service(f)
    msgs = {(p.location.line if p.location else 0, p.message) for p in exc.value.problems}
    assert (5, "component name 'a' is already used by components[1]") in msgs
    assert (5, "provider_id 7 is already used by components[1]") in msgs
    assert any(line == 5 and "runs on rank 0 only" in m for line, m in msgs)


def test_type_without_library_and_pool_in_dependencies() -> None:
    with pytest.raises(InputError, match="no Bedrock module library is known for type 'foo'"):
        service_from_dict({"name": "s", "components": [{"name": "x", "type": "foo"}]})
    svc = service_from_dict({"name": "s", "components": [
        {"name": "x", "type": "foo", "library": "libfoo-bedrock-module.so"}]})
    assert svc.libraries() == ["libfoo-bedrock-module.so"]
    with pytest.raises(InputError, match="set the pool with 'pool: rpc'"):
        service_from_dict({"name": "s", "components": [
            {"name": "x", "type": "yokan", "dependencies": {"pool": "p"}}]})


def test_provider_ids_skip_the_explicit_ones() -> None:
    svc = service_from_dict({"name": "s", "components": [
        {"name": "a", "type": "yokan"}, {"name": "b", "type": "yokan", "provider_id": 1},
        {"name": "c", "type": "yokan"}]})
    assert svc.provider_ids() == {"a": 2, "b": 1, "c": 3}


def test_urings_raise_the_io_xstreams() -> None:
    svc = service_from_dict({"name": "s", "threads": {"io": 1}, "components": [
        {"name": "io", "type": "abt_io", "config": {"num_urings": 3}}]})
    assert svc.io_xstreams == 4


def test_bad_bedrock_json(tmp_path: Path) -> None:
    f = write(tmp_path, json.dumps({"libraries": {"yokan": "libyokan-bedrock-module.so"},
                                    "providers": []}, indent=2), "c.json")
    with pytest.raises(InputError) as exc:
        load_service(f)
    (p,) = exc.value.problems
    assert "needs to be an array" in p.message and p.location and p.location.line == 2
    f = write(tmp_path, '{"providers": [ {"name": "x", "type": "yokan", "provider_id": 0}]}',
              "d.json")
    with pytest.raises(InputError) as exc:
        load_service(f)
    assert "providers" in str(exc.value) and "provider_id" in str(exc.value)


def test_rank0_condition_text() -> None:
    assert RANK0_CONDITION == "$MPI_COMM_WORLD.rank == 0"


scalars = st.none() | st.booleans() | st.integers(-3, 70000) | st.text(max_size=6) | \
    st.lists(st.integers(0, 3), max_size=2) | st.dictionaries(
        st.sampled_from(["type", "pool", "x"]), st.text(max_size=3), max_size=2)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_bad_services_fail_cleanly(data: st.DataObject, tmp_path_factory: Any) -> None:
    """Any mutation of a valid service either loads or gives located InputErrors."""
    from ruamel.yaml import YAML

    doc = YAML(typ="safe").load((EXAMPLES / "mofka-like.yaml").read_text())
    keys = [("nodes",), ("processes_per_node",), ("threads", "rpc"), ("threads", "progress"),
            ("placement", "smt"), ("components", 1, "rank0_only"), ("components", 3, "pool"),
            ("components", 2, "provider_id"), ("components", 0, "name"),
            ("components", 1, "dependencies"), ("margo",), ("components", 1, "type")]
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(keys))
        node = doc
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = data.draw(scalars)
    f = tmp_path_factory.mktemp("svc") / "svc.yaml"
    buf = io.StringIO()
    YAML().dump(doc, buf)
    f.write_text(buf.getvalue())
    try:
        load_service(f)
    except InputError as err:
        for p in err.problems:
            assert p.message and p.location is not None and p.location.file == str(f)


def test_yaml_with_bedrock_config() -> None:
    loaded = load_service(EXAMPLES / "mofka-from-config.yaml")
    svc = loaded.service
    assert loaded.extra_files == [str(EXAMPLES / "mofka-config.json")]
    assert [c.name for c in svc.components] == ["group_manager", "master", "data",
                                                "io_controller"]
    assert svc.threads.rpc == 2                      # the YAML wins
    assert svc.threads.progress.value == "dedicated"  # from use_progress_thread
    assert svc.io_xstreams == 2                      # the config's io xstreams
    assert svc.placement.too_few_cores.value == "share"


def test_bedrock_config_and_components_conflict(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text((EXAMPLES / "mofka-config.json").read_text())
    f = write(tmp_path, "name: s\nbedrock_config: c.json\ncomponents:\n"
              "  - {name: g, type: flock}\n")
    with pytest.raises(InputError) as exc:
        load_service(f)
    (p,) = exc.value.problems
    assert "either 'components' or 'bedrock_config'" in p.message
    assert p.location is not None and p.location.line == 3
    f = write(tmp_path, "name: s\nbedrock_config: nope.json\n")
    with pytest.raises(InputError, match="not found"):
        load_service(f)
