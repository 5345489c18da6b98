"""`bedrock-deploy service`: the exported JSON Schema stays in sync; examples validate."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from bedrock_deploy.cli import main
from bedrock_deploy.commands.service import service_schema
from bedrock_deploy.resources import share_path

EXAMPLES = sorted(share_path("examples").glob("*.yaml"))


def test_schema_file_in_sync() -> None:
    shipped = json.loads(share_path("schemas", "service.schema.json").read_text())
    assert shipped == service_schema(), (
        "share/schemas/service.schema.json is stale: run "
        "`bedrock-deploy service schema -o share/schemas/service.schema.json`")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_yaml_examples_validate_with_model_and_schema(example: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["service", "validate", str(example)]) == 0
    assert "valid" in capsys.readouterr().out
    data = YAML(typ="safe").load(example.read_text())
    jsonschema.validate(data, service_schema())


def test_bad_service_is_located(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "svc.yaml"
    bad.write_text("name: s\nprocesses_per_node: 2\ncomponents:\n  - name: kv\n"
                   "    type: yokan\n    confg: {}\n")
    assert main(["service", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:6:5" in err
    assert "confg" in err and "did you mean 'config'" in err
