"""Golden Bedrock configs: the Mofka-like example on every shipped site with a written node.

The files under tests/golden/configs/<site>/ are reviewed by eye against each machine's
topology (cores, reserved cores, NUMA domains, NIC locality); Polaris, Aurora and Frontier have
their facts checked below too. If a change is intended, rewrite them with the one golden
command (tests/golden/README.md) and review the diff before committing it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bedrock_deploy.generate import Inputs, _layout_dict, build_plan
from bedrock_deploy.resources import share_path
from bedrock_deploy.service import load_service
from bedrock_deploy.sites import load_site
from golden_files import Goldens, golden_sites

GOLDEN = Path(__file__).parent / "golden" / "configs"
SITES = sorted(golden_sites())


def rendered(site: str) -> dict[str, str]:
    inputs = Inputs(site=load_site(site), service=load_service(share_path(
        "examples", "mofka-like.yaml")), account="PROJECT")
    plan, warnings = build_plan(inputs)
    assert warnings == []
    files = {f"rank-{i}.json": json.dumps(c, indent=2) + "\n"
             for i, c in enumerate(plan.configs)}
    files["layout.json"] = json.dumps(_layout_dict(plan.layout), indent=2) + "\n"
    return files


@pytest.mark.parametrize("site", SITES)
def test_mofka_like_golden(site: str, goldens: Goldens) -> None:
    goldens.check_dir(GOLDEN / site, rendered(site))


def test_no_config_golden_without_a_shipped_site(goldens: Goldens) -> None:
    goldens.check_no_others(sorted(GOLDEN.iterdir()), {GOLDEN / s for s in SITES})


def _layout(site: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((GOLDEN / site / "layout.json").read_text())
    return data


def test_golden_facts_polaris() -> None:
    # Polaris: 32 cores (NPS4: 0-7, 8-15, 16-23, 24-31; siblings +32), NICs on NUMA 0 and 2
    ranks = _layout("polaris")["ranks"]
    assert [r["numa"] for r in ranks] == [[0], [2], [1], [3]]  # NIC domains first
    assert [r["xstreams"][0]["cpus"] for r in ranks] == ["0,32", "16,48", "8,40", "24,56"]


def test_golden_facts_aurora() -> None:
    # Aurora: 2 x 52 cores, cores 0 and 52 reserved (with siblings 104, 156)
    ranks = _layout("aurora")["ranks"]
    cpus = {c for r in ranks for part in r["cpus"].split(",") for c in
            range(int(part.split("-")[0]), int(part.split("-")[-1]) + 1)}
    assert not cpus & {0, 52, 104, 156}
    assert [r["numa"] for r in ranks] == [[0], [1], [0], [1]]


def test_golden_facts_frontier() -> None:
    # Frontier: low-noise mode reserves the first core of each L3 (0, 8, ..., 56)
    ranks = _layout("frontier")["ranks"]
    assert [r["xstreams"][0]["cpus"] for r in ranks] == ["1,65", "17,81", "33,97", "49,113"]
    config = json.loads((GOLDEN / "frontier" / "rank-0.json").read_text())
    assert config["margo"]["mercury"] == {"address": "cxi://"}  # no auth_key on CXI
