"""What an install gives: the engine's executables on PATH, and tests that see the checkout.

``.ci/install`` installs bedrock-deploy in editable mode: the next ``pytest`` tests an edit under
``generator/`` without a reinstall. A plain ``pip install .`` (what a user runs) must put
``bedrock-engine``, ``bedrock-engine-query`` and ``bedrock-engine-shutdown`` next to
``bedrock-deploy`` in the environment's ``bin/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

import bedrock_deploy
from bedrock_deploy.engine import EXECUTABLES, engine_dir

REPO = Path(__file__).resolve().parent.parent


def test_tests_import_the_checkout_not_a_copy() -> None:
    """An edit under generator/ is what this run tests (no reinstall needed)."""
    assert Path(bedrock_deploy.__file__).resolve().is_relative_to(REPO / "generator")


def test_engine_executables_are_on_path() -> None:
    for name in EXECUTABLES:
        found = shutil.which(name)
        assert found, f"{name} is not on PATH ({os.environ.get('PATH')})"
    directory = engine_dir()
    assert directory is not None and (directory / "bedrock-engine").is_file()


@pytest.mark.engine
def test_fresh_pip_install_puts_the_engine_on_path(tmp_path: Path) -> None:
    """``pip install .`` into a new environment: the three executables land in its bin/ and run
    from PATH alone."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)
    bin_dir = env_dir / "bin"
    done = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-deps",
         "--no-build-isolation", "--disable-pip-version-check", str(REPO)],
        capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    path = f"{bin_dir}{os.pathsep}/usr/bin:/bin"
    for name in (*EXECUTABLES, "bedrock-deploy"):
        assert shutil.which(name, path=path) == str(bin_dir / name), name
    # Each runs from PATH alone: the query tool's usage error names itself.
    proc = subprocess.run(["bedrock-engine-query"], capture_output=True, text=True,
                          env={"PATH": path}, timeout=30)
    assert proc.returncode == 2 and "bedrock-engine-query" in proc.stderr + proc.stdout
    proc = subprocess.run([str(bin_dir / "python"), "-c",
                           "import bedrock_deploy.engine as e; print(e.engine_dir())"],
                          capture_output=True, text=True, env={"PATH": path}, timeout=60)
    assert proc.stdout.strip() == str(bin_dir), proc.stderr
