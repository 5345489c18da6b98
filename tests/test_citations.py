"""Citations a reader can follow: nothing in the repository points at notes kept outside it.

Facts are cited from public sources (URLs, upstream files at a tag or commit) or from the
project's own pages under docs/ (docs/bedrock-config-rules.md, docs/platform-notes.md, ...).
Research notes that lived beside the project (a ``shared`` reference folder and its note files)
are not in the repository, so a citation of them leads nowhere. The patterns below are written
so that this file does not match them itself.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bedrock_deploy.bedrock_validator import RULES

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

# Where the notes were, and their file names (with or without the .md suffix), and the markers
# they were cited with: "rule" and a number (their numbering of the configuration rules, which
# have names now), section signs with a number, "[R]" source tags.
OUTSIDE_NOTES = re.compile(
    r"\.\./shared\b"
    r"|/work[/]shared"
    r"|shared[/]reference"
    r"|\b(?:mochi[-]stack|mochi[-]observed|spack[-]observed|slurm[-]multinode"
    r"|hpc[-]local(?:-setup)?)\b"
    r"|\bpeers[.]md\b"
    r"|\brules? [0-9]+\b"
    r"|§ ?[0-9]"
    r"|\[R\]\s"
)
# Folders that are not part of the repository's content (build output, caches).
SKIPPED_DIRS = {".git", "build", "dist", "__pycache__", ".pytest_cache", ".ruff_cache",
                ".mypy_cache", ".hypothesis"}


def repository_files() -> list[Path]:
    """Every file that is (or would be) committed: git's view when there is one, else a walk
    that skips build output and caches."""
    git = shutil.which("git")
    if git and (ROOT / ".git").exists():
        out = subprocess.run([git, "-C", str(ROOT), "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], capture_output=True, check=True).stdout
        files = [ROOT / name for name in out.decode().split("\0") if name]
        return [f for f in files if f.is_file()]
    return [p for p in ROOT.rglob("*")
            if p.is_file() and not SKIPPED_DIRS & set(p.relative_to(ROOT).parts)
            and not p.name.endswith(".egg-info")]


def text_of(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data:
        return None  # binary (figures, compiled objects)
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None


def test_repository_files_are_found() -> None:
    names = {f.relative_to(ROOT).as_posix() for f in repository_files()}
    assert {"README.md", "docs/bedrock-config-rules.md", "docs/platform-notes.md",
            "generator/bedrock_deploy/bedrock_validator.py", "tests/test_citations.py"} <= names


def test_nothing_cites_notes_outside_the_repository() -> None:
    found = []
    for path in repository_files():
        text = text_of(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            match = OUTSIDE_NOTES.search(line)
            if match:
                found.append(f"{path.relative_to(ROOT)}:{number}: {match.group(0)!r}: "
                             f"{line.strip()[:120]}")
    assert not found, ("cite a public source or a page of docs/ instead (docs/platform-notes.md "
                       "for what was observed here, docs/bedrock-config-rules.md for the "
                       "configuration rules, by name):\n" + "\n".join(found))


def test_the_pattern_catches_what_it_must() -> None:
    """The check above would pass on anything if the pattern matched nothing."""
    # written with "|" where the pattern would otherwise match this file
    cited = [c.replace("|", "") for c in (
        "see ..|/shared|/reference/hpc|-local.md §|6", "/work|/shared|/reference/x",
        "(mochi|-stack.md rule| 7)", "rule| 10", "rules| 5-6", "spack|-observed.md",
        "mochi|-observed.md §|1", "slurm|-multinode.md", "peers|.md", "# [R|] §|7",
        "hpc|-local.md")]
    assert all(OUTSIDE_NOTES.search(c) for c in cited), [
        c for c in cited if not OUTSIDE_NOTES.search(c)]
    fine = ["(rule cxi-no-auth-key)", "docs/platform-notes.md", "the Mochi stack",
            "mochi-hpc/mochi-margo@v0.24.0:src/margo-info.c", "tests/data/bedrock-corpus",
            "layout rules", "ruled out"]
    assert not [c for c in fine if OUTSIDE_NOTES.search(c)]


@pytest.mark.skipif(shutil.which("grep") is None, reason="needs grep")
def test_issue_grep_finds_nothing() -> None:
    """The check of the issue, as written there."""
    result = subprocess.run(
        ["grep", "-rn", r"shared" r"/reference\|mochi" r"-stack.md\|rule" r" [0-9]",
         "generator", "native", "share", "site-profiles"],
        cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1 and result.stdout == "", result.stdout


def test_every_rule_has_its_section_in_the_rules_page() -> None:
    text = (DOCS / "bedrock-config-rules.md").read_text()
    sections = re.findall(r"^## `([a-z0-9-]+)`$", text, flags=re.MULTILINE)
    assert sections == list(RULES)
    for name in RULES:
        assert f"[`{name}`](#{name})" in text, f"{name} missing from the summary table"
    # every section names at least one public source
    for body in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        assert "Sources:" in body and "https://" in body, body.splitlines()[0]


def test_cited_docs_pages_exist() -> None:
    """Every page of docs/ cited anywhere (as docs/<page>.md) exists."""
    cited: dict[str, str] = {}
    for path in repository_files():
        text = text_of(path)
        if text is None:
            continue
        for name in re.findall(r"\bdocs/([A-Za-z0-9_-]+\.md)\b", text):
            cited.setdefault(name, str(path.relative_to(ROOT)))
    missing = {name: where for name, where in cited.items() if not (DOCS / name).is_file()}
    assert not missing, missing
