"""Golden files: compare what the code renders with tests/golden/, or rewrite them.

One switch rewrites every golden file (and the README's table of shipped sites)::

    python -m pytest -p no:cacheprovider -m golden --update-goldens

then review ``git diff tests/golden README.md`` by eye (tests/golden/README.md). Tests take the
``goldens`` fixture (tests/conftest.py), which marks them ``golden``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

GOLDEN_ROOT = Path(__file__).parent / "golden"
UPDATE_COMMAND = "python -m pytest -p no:cacheprovider -m golden --update-goldens"


class Goldens:
    """Compare rendered text with the golden files, or (``--update-goldens``) rewrite them."""

    def __init__(self, update: bool) -> None:
        self.update = update

    def check_file(self, path: Path, text: str) -> None:
        if self.update:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
            return
        assert path.is_file(), f"no golden file {path}: run `{UPDATE_COMMAND}` and review it"
        assert text == path.read_text(encoding="utf-8"), (
            f"{path} differs from what the code renders now; if the change is intended, run "
            f"`{UPDATE_COMMAND}` and review the diff")

    def check_dir(self, folder: Path, files: dict[str, str]) -> None:
        """``folder`` holds exactly ``files`` (name -> text)."""
        if self.update and folder.is_dir():
            for old in folder.iterdir():
                if old.name not in files:
                    old.unlink()
        for name, text in files.items():
            self.check_file(folder / name, text)
        assert sorted(p.name for p in folder.iterdir()) == sorted(files), (
            f"{folder} holds other files than the code renders: run `{UPDATE_COMMAND}`")

    def check_no_others(self, paths: list[Path], wanted: set[Path]) -> None:
        """No golden file or folder beyond ``wanted`` (e.g. of a site no longer shipped)."""
        stale = sorted(p for p in paths if p not in wanted)
        if self.update:
            for p in stale:
                if p.is_dir():
                    shutil.rmtree(p)
                else:
                    p.unlink()
            return
        assert not stale, f"golden files of nothing shipped: {stale}; run `{UPDATE_COMMAND}`"


def golden_sites() -> list[str]:
    """Shipped profiles whose node is written in the profile (not ``node: probe``, which
    depends on the host): the sites whose generated files are pinned by goldens."""
    from ruamel.yaml import YAML

    from bedrock_deploy.sites import load_site, shipped_profiles

    yaml = YAML(typ="safe")
    names = []
    for name in shipped_profiles():
        files = load_site(name).files
        if not any((yaml.load(Path(f).read_text(encoding="utf-8")) or {}).get("node") == "probe"
                   for f in files):
            names.append(name)
    return names
