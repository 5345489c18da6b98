"""A shared-memory deployment on a site that also builds libfabric for its TCP fallback:
mercury needs its sm plugin (not ~ofi), and the site-wide fabrics stay allowed."""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML

from bedrock_deploy.cli import main
from bedrock_deploy.resources import share_path


def test_sm_on_local_site(tmp_path: Path) -> None:
    out = tmp_path / "dep"
    rc = main(["generate", "--site", "local", "--service",
               str(share_path("examples", "kv-service.yaml")), "--nodes", "1",
               "--transport", "sm", "-o", str(out)])
    assert rc == 0
    env = YAML(typ="safe").load((out / "spack.yaml").read_text())["spack"]
    mercury = [s for s in env["specs"] if s.startswith("mercury")]
    assert mercury == ["mercury~boostsys~checksum+sm"]
    # no libfabric root spec for na+sm; the site's own requirement for its tcp fallback stays
    assert not any(s.startswith("libfabric") for s in env["specs"])
    assert env["packages"]["libfabric"]["require"] == ["fabrics=tcp,rxm"]
    assert (out / "configs" / "rank-0.json").read_text().count('"na+sm://"') == 1
