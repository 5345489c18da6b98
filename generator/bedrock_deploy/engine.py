"""The compiled engine (``native/``): where its executables are, and its Python bindings.

Executables (``bedrock-engine``, ``bedrock-engine-query``, ``bedrock-engine-shutdown``) are
installed by ``pip install`` into the environment's ``bin/`` (on ``PATH``, next to
``bedrock-deploy``). They are found in ``$BEDROCK_DEPLOY_ENGINE_DIR``, else in the scripts
directory of the running Python's environment, else in a package ``_bin/`` (a plain CMake
install of ``native/``), else on ``PATH``. The bindings (``bedrock_deploy._engine``) are
re-exported here: ``Server``, ``Client``, ``ConfigError``, ``RpcError``,
``UnsupportedProtocol``, ``load_config``.
"""

from __future__ import annotations

import os
import shutil
import sysconfig
from pathlib import Path
from typing import Any

EXECUTABLES = ("bedrock-engine", "bedrock-engine-query", "bedrock-engine-shutdown")
_PKG = Path(__file__).resolve().parent


class EngineNotFound(RuntimeError):
    """The compiled engine is not installed where we look for it.

    Example::

        try:
            client = bd.Client("na+sm")
        except bd.EngineNotFound as err:
            print(err)   # ... install bedrock-deploy with `pip install .` ...
    """


def engine_dir() -> Path | None:
    """Directory holding the engine executables, or None if they cannot be found."""
    env = os.environ.get("BEDROCK_DEPLOY_ENGINE_DIR")
    if env:
        return Path(env)
    for candidate in (Path(sysconfig.get_path("scripts")), _PKG / "_bin"):
        if (candidate / "bedrock-engine").is_file():
            return candidate
    found = shutil.which("bedrock-engine")
    return Path(found).parent if found else None


def executable(name: str = "bedrock-engine") -> Path:
    """Absolute path of one engine executable; raises EngineNotFound with where we looked."""
    if name not in EXECUTABLES:
        raise ValueError(f"unknown engine executable {name!r} (expected one of {EXECUTABLES})")
    directory = engine_dir()
    if directory is not None and (directory / name).is_file():
        return directory / name
    raise EngineNotFound(
        f"{name} not found (looked in $BEDROCK_DEPLOY_ENGINE_DIR, "
        f"{sysconfig.get_path('scripts')}, {_PKG / '_bin'}, PATH); "
        "install bedrock-deploy with `pip install .` so that native/ is compiled"
    )


def bindings() -> Any:
    """The compiled module ``bedrock_deploy._engine`` (raises EngineNotFound if missing)."""
    try:
        from bedrock_deploy import _engine  # type: ignore[attr-defined]
    except ImportError as exc:
        raise EngineNotFound(
            f"bedrock_deploy._engine is not built ({exc}); install bedrock-deploy with "
            "`pip install .` so that native/ is compiled"
        ) from exc
    return _engine


def __getattr__(name: str) -> Any:
    if name in {"Server", "Client", "ConfigError", "RpcError", "UnsupportedProtocol",
                "load_config", "set_log_level"}:
        return getattr(bindings(), name)
    raise AttributeError(name)
