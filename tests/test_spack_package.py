"""Our Spack repo (spack-repo/, repo API v2) and its py-bedrock-deploy package, checked without
Spack: package.py is executed against a minimal stand-in of the documented package API surface
(base class PythonPackage from spack_repo.builtin.build_systems.python; directives version,
variant, depends_on, license, maintainers from spack.package), and its declarations are compared
with pyproject.toml, the single source of truth for versions and dependencies."""

from __future__ import annotations

import importlib.util
import re
import sys
import tomllib
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from bedrock_deploy.resources import spack_repo_dir
from bedrock_deploy.spack_check import knowledge

ROOT = Path(__file__).resolve().parent.parent
REPO = spack_repo_dir() / "spack_repo" / "bedrock_deploy"
PACKAGE = REPO / "packages" / "py_bedrock_deploy" / "package.py"


@dataclass
class Declared:
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    depends: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    licenses: list[str] = field(default_factory=list)
    maintainers: list[str] = field(default_factory=list)


def load_package(path: Path) -> tuple[type, Declared]:
    """Execute package.py with stand-ins for the Spack modules it imports."""
    decl = Declared()

    class PythonPackage:  # stand-in base class
        pass

    def version(ver: str, *args: Any, **kw: Any) -> None:
        decl.versions[ver] = kw

    def variant(name: str, **kw: Any) -> None:
        decl.variants[name] = kw

    def depends_on(spec: str, type: str | tuple[str, ...] = ("build", "link"),
                   when: str | None = None) -> None:
        name = re.match(r"[a-z0-9][a-z0-9\-]*", spec)
        assert name, spec
        types_ = (type,) if isinstance(type, str) else tuple(type)
        decl.depends[name.group()] = (spec, types_)

    def license(spdx: str) -> None:
        decl.licenses.append(spdx)

    def maintainers(*names: str) -> None:
        decl.maintainers += names

    package_api = types.ModuleType("spack.package")
    for fn in (version, variant, depends_on, license, maintainers):
        setattr(package_api, fn.__name__, fn)
    package_api.__all__ = [fn.__name__ for fn in (version, variant, depends_on, license,
                                                  maintainers)]  # type: ignore[attr-defined]
    python_bs = types.ModuleType("spack_repo.builtin.build_systems.python")
    python_bs.PythonPackage = PythonPackage  # type: ignore[attr-defined]
    stand_ins = {"spack": types.ModuleType("spack"), "spack.package": package_api,
                 "spack_repo": types.ModuleType("spack_repo"),
                 "spack_repo.builtin": types.ModuleType("spack_repo.builtin"),
                 "spack_repo.builtin.build_systems": types.ModuleType("b"),
                 "spack_repo.builtin.build_systems.python": python_bs}
    saved = {k: sys.modules.get(k) for k in stand_ins}
    sys.modules.update(stand_ins)
    try:
        spec = importlib.util.spec_from_file_location("bd_spack_package", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    classes = [c for c in vars(module).values()
               if isinstance(c, type) and issubclass(c, PythonPackage) and c is not PythonPackage]
    assert len(classes) == 1
    return classes[0], decl


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    path = ROOT / "pyproject.toml"
    if not path.is_file():
        pytest.skip("needs the source tree's pyproject.toml")
    return tomllib.loads(path.read_text())


def _min_version(requirement: str) -> tuple[str, str]:
    m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*>=\s*([0-9.]+)", requirement.strip())
    assert m, f"expected 'name>=version', got {requirement!r}"
    return m.group(1), m.group(2)


def _spack_name(pypi: str) -> str:
    return "py-" + re.sub(r"[._]", "-", pypi.lower())


def test_repo_layout_is_api_v2() -> None:
    repo_yaml = YAML(typ="safe").load((REPO / "repo.yaml").read_text())
    assert repo_yaml == {"repo": {"namespace": "bedrock_deploy", "api": "v2.0"}}
    assert REPO.name == repo_yaml["repo"]["namespace"]
    assert REPO.parent.name == "spack_repo"
    for pkg_dir in (REPO / "packages").iterdir():
        assert re.fullmatch(r"[a-z0-9_]+", pkg_dir.name), pkg_dir  # underscores, no dashes
        assert (pkg_dir / "package.py").is_file()


def test_package_class_and_build_system() -> None:
    cls, decl = load_package(PACKAGE)
    assert cls.__name__ == "PyBedrockDeploy"  # py_bedrock_deploy -> PyBedrockDeploy
    assert cls.__doc__ and "Bedrock" in cls.__doc__
    text = PACKAGE.read_text()
    assert "from spack_repo.builtin.build_systems.python import PythonPackage" in text
    assert "from spack.package import *" in text
    assert cls.import_modules == ["bedrock_deploy"]  # type: ignore[attr-defined]
    assert decl.variants == {}


def test_package_matches_pyproject(pyproject: dict[str, Any]) -> None:
    _, decl = load_package(PACKAGE)
    project = pyproject["project"]
    assert list(decl.versions) == [project["version"]]
    assert decl.licenses == [project["license"]["text"]]
    # run dependencies, with the same minimum versions
    for req in project["dependencies"]:
        name, minimum = _min_version(req)
        spec, types_ = decl.depends[_spack_name(name)]
        assert spec == f"{_spack_name(name)}@{minimum}:", spec
        assert "run" in types_
    # build system: scikit-build-core + pybind11, CMake of [tool.scikit-build], Python floor
    for req in pyproject["build-system"]["requires"]:
        name, minimum = _min_version(req)
        spec, types_ = decl.depends[_spack_name(name)]
        assert spec == f"{_spack_name(name)}@{minimum}:" and types_ == ("build",)
    cmake_min = pyproject["tool"]["scikit-build"]["cmake"]["version"].lstrip(">=")
    assert decl.depends["cmake"] == (f"cmake@{cmake_min}:", ("build",))
    py_min = project["requires-python"].lstrip(">=")
    assert decl.depends["python"][0] == f"python@{py_min}:"
    assert "nlohmann-json" in decl.depends and "cxx" in decl.depends
    run_py = {n for n, (_, t) in decl.depends.items() if "run" in t and n.startswith("py-")}
    assert run_py == {_spack_name(_min_version(r)[0]) for r in project["dependencies"]}


def test_knowledge_table_knows_our_package(pyproject: dict[str, Any]) -> None:
    assert knowledge().packages["py-bedrock-deploy"].latest == pyproject["project"]["version"]
