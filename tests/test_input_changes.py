"""generate says what it changed in a user's own Bedrock JSON (manifest + output)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bedrock_deploy.cli import main
from bedrock_deploy.generate import generate
from bedrock_deploy.input_changes import input_changes

USER = {
    "bedrock": {"provider_id": 7},
    "ssg": [{"name": "old"}],
    "libraries": ["libyokan-bedrock-module.so", "libflock-bedrock-module.so"],
    "margo": {"progress_timeout_ub_msec": 5},
    "providers": [
        {"name": "g", "type": "flock", "provider_id": 3,
         "config": {"bootstrap": "mpi", "group": {"type": "static"}, "file": "g.json"}},
        {"name": "db", "type": "yokan", "pool": "x", "config": {"database": {"type": "map"}}},
    ],
}


def test_changes_are_listed_one_by_one() -> None:
    generated = {
        "libraries": ["libflock-bedrock-module.so", "libyokan-bedrock-module.so"],
        "bedrock": {"pool": "rpc_pool", "provider_id": 0},
        "margo": {"argobots": {}, "progress_pool": "p", "rpc_pool": "rpc_pool"},
        "providers": [
            {"name": "g", "type": "flock", "provider_id": 3,
             "config": USER["providers"][0]["config"], "dependencies": {"pool": "rpc_pool"}},
            {"name": "db", "type": "yokan", "provider_id": 1,
             "config": {"database": {"type": "map"}}, "dependencies": {"pool": "rpc_pool"}},
        ],
    }
    changes = {c.path: c for c in input_changes(USER, generated)}
    assert changes["bedrock.provider_id"].was == 7 and changes["bedrock.provider_id"].now == 0
    assert changes["ssg"].now is None and "ignores" in changes["ssg"].why
    assert changes["margo.progress_timeout_ub_msec"].now is None
    assert changes["providers[1].pool"].now is None
    assert changes["providers[1].provider_id"].now == 1
    assert changes["providers[0].dependencies.pool"].now == "rpc_pool"
    assert "libraries" not in changes  # the same modules, in another order
    assert "providers[0].config" not in changes  # kept as written


def test_generate_records_and_prints_them(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "user.json").write_text(json.dumps(USER))
    svc = tmp_path / "svc.yaml"
    svc.write_text("name: u\nbedrock_config: user.json\nthreads: {rpc: 1}\n"
                   "placement: {too_few_cores: share}\n")
    out = tmp_path / "d"
    res = generate("local", svc, out, ppn=1)
    paths = {c.path for c in res.input_changes}
    assert {"bedrock.provider_id", "ssg", "providers[1].pool"} <= paths
    manifest = json.loads((out / "manifest.json").read_text())
    recorded = manifest["input_changes"]
    assert recorded["file"] == str(tmp_path / "user.json")
    (bid,) = [c for c in recorded["changes"] if c["path"] == "bedrock.provider_id"]
    assert (bid["was"], bid["now"]) == (7, 0)
    assert main(["generate", "--site", "local", "--service", str(svc), "-o",
                 str(tmp_path / "d2"), "--ppn", "1"]) == 0
    printed = capsys.readouterr().out
    assert "changed in your Bedrock config" in printed
    assert "bedrock.provider_id: 7 -> 0" in printed


def test_yaml_service_changes_nothing_of_its_own(tmp_path: Path) -> None:
    from bedrock_deploy.resources import share_path

    res = generate("local", share_path("examples", "kv-service.yaml"), tmp_path / "d")
    assert res.input_changes == []
    assert json.loads((tmp_path / "d" / "manifest.json").read_text())["input_changes"] == {
        "file": None, "changes": []}
