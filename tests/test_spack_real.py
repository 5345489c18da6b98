"""Real Spack: every shipped cluster profile's spack.yaml (kv and mofka-like examples, the
reviewed goldens in tests/golden/spack/) concretizes with the Spack at ``$SPACK_ROOT``.

Spack is not on PyPI or Debian, so without ``SPACK_ROOT`` these tests are skipped and say so;
the structural checks (tests/test_spack_check.py, tests/test_spack_env.py) run everywhere.

What the Spack must have (an admin's setup, never part of this repository): the mochi package
repository (mochi-hpc/mochi-spack-packages) listed before builtin in its configuration, or a
checkout of it named by ``BEDROCK_DEPLOY_MOCHI_REPO``; a Python that imports ``clingo``
(``SPACK_PYTHON``). The environments name their repositories by git URL; offline, those
entries are dropped and the Spack's own repositories are used. Each site's environment is for
another machine, so it is concretized with ``concretizer:targets:host_compatible:false``
(externals and compiler prefixes are not looked at in that step; a build would need them).
One concretization takes about a minute on a 2-core machine; they run one after another.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from bedrock_deploy.sites import shipped_profiles

GOLDEN = Path(__file__).parent / "golden" / "spack"
CLUSTERS = sorted(n for n in shipped_profiles() if not n.startswith("local"))
CASES = [(site, ex) for site in CLUSTERS for ex in ("kv-service", "mofka-like")]

pytestmark = pytest.mark.spack


def _spack() -> Path:
    root = os.environ.get("SPACK_ROOT")
    if not root:
        pytest.skip("no real Spack: SPACK_ROOT is not set, so spack.yaml was not concretized "
                    "(only the structural checks ran)")
    exe = Path(root) / "bin" / "spack"
    if not exe.is_file():
        pytest.skip(f"SPACK_ROOT={root} has no bin/spack: no concretization ran")
    return exe


@pytest.fixture(scope="module")
def spack() -> Path:
    exe = _spack()
    repos = subprocess.run([str(exe), "repo", "list"], capture_output=True, text=True,
                           check=False).stdout
    if "mochi" not in repos and not os.environ.get("BEDROCK_DEPLOY_MOCHI_REPO"):
        pytest.skip("the Spack at SPACK_ROOT has no 'mochi' repository and "
                    "BEDROCK_DEPLOY_MOCHI_REPO is not set: no concretization ran")
    return exe


def offline_copy(golden: Path, env_dir: Path) -> Path:
    """The golden environment with its git-URL repositories dropped (offline)."""
    yaml = YAML()
    data = yaml.load(golden.read_text())
    data["spack"].pop("repos", None)
    mochi = os.environ.get("BEDROCK_DEPLOY_MOCHI_REPO")
    if mochi:
        data["spack"]["repos"] = {"mochi": mochi}
    env_dir.mkdir(parents=True)
    with (env_dir / "spack.yaml").open("w") as fh:
        yaml.dump(data, fh)
    return env_dir


@pytest.mark.parametrize(("site", "example"), CASES)
def test_real_spack_concretizes(spack: Path, tmp_path: Path, site: str, example: str) -> None:
    env = offline_copy(GOLDEN / f"{site}--{example}.yaml", tmp_path / "env")
    start = time.monotonic()
    proc = subprocess.run(
        [str(spack), "-c", "concretizer:targets:host_compatible:false", "-e", str(env),
         "concretize", "-f"], capture_output=True, text=True, check=False)
    took = time.monotonic() - start
    assert proc.returncode == 0, f"{site}/{example}: Spack refused it:\n{proc.stderr[-3000:]}"
    lock = env / "spack.lock"
    assert lock.is_file() and '"mochi-bedrock"' in lock.read_text()
    print(f"{site}--{example}: concretized in {took:.0f} s")
    shutil.rmtree(env / ".spack-env", ignore_errors=True)


def test_without_spack_the_skip_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPACK_ROOT", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        _spack()
    assert "SPACK_ROOT is not set" in str(skipped.value)
