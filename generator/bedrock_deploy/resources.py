"""Where shipped data lives: the source tree when run from a checkout, else the installed copy."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent
_SOURCE_ROOT = _PKG.parent.parent  # generator/bedrock_deploy -> repository root
_INSTALLED = _PKG / "data"


def _root() -> Path:
    if (_SOURCE_ROOT / "site-profiles").is_dir() and (_SOURCE_ROOT / "share").is_dir():
        return _SOURCE_ROOT
    return _INSTALLED


def data_dir(name: str) -> Path:
    """``site-profiles``, ``share``, or ``spack-repo``."""
    return _root() / name


def share_path(*parts: str) -> Path:
    return data_dir("share").joinpath(*parts)


def site_profiles_dir() -> Path:
    return data_dir("site-profiles")


def spack_repo_dir() -> Path:
    return data_dir("spack-repo")
