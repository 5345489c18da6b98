"""A local (embedded-engine) deployment chooses its transport from the engine's own
margo-info-format report, through the same selection path as a cluster (issue 3, item 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bedrock_deploy.cli import main
from bedrock_deploy.engine import EngineNotFound, executable
from bedrock_deploy.resources import share_path

try:
    executable("bedrock-engine")
    HAVE_ENGINE = True
except EngineNotFound:
    HAVE_ENGINE = False

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(not HAVE_ENGINE, reason="the compiled engine is not installed "
                       "(pip install .); the selection logic itself is covered with recorded "
                       "margo-info files in test_transports_selection.py"),
]


def test_local_generate_uses_engine_report(tmp_path: Path) -> None:
    out = tmp_path / "dep"
    rc = main(["generate", "--site", "local", "--service",
               str(share_path("examples", "kv-service.yaml")), "--nodes", "1", "-o", str(out)])
    assert rc == 0
    manifest = json.loads((out / "manifest.json").read_text())
    chosen = next(c for c in manifest["choices"] if c["what"] == "transport")
    # the reason cites the engine's report (a real initialisation), not "trusting the profile"
    assert "bedrock-engine --info" in chosen["why"]
    assert "initialised" in chosen["why"]
    notes = [c["value"] for c in manifest["choices"] if c["what"] == "transport note"]
    assert any("probed by the embedded engine" in n for n in notes)
