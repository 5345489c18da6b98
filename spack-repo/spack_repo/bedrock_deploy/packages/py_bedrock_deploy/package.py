# Spack package of bedrock-deploy itself (repo API v2: namespace 'bedrock_deploy').
# Layout and imports follow spack/spack-packages (repos/spack_repo/builtin/packages/*/package.py)
# and mochi-hpc/mochi-spack-packages (spack_repo/mochi/packages/py_mochi_bedrock/package.py).
# tests/test_spack_package.py checks these declarations against pyproject.toml.
from spack_repo.builtin.build_systems.python import PythonPackage

from spack.package import *


class PyBedrockDeploy(PythonPackage):
    """Spack-integrated deployment generator for Mochi Bedrock services on HPC clusters, with
    its embedded Bedrock-compatible engine (C++17, built by scikit-build-core and pybind11)."""

    # No public release yet: an environment generated with a source tree builds it through a
    # 'develop:' entry (spack.yaml: develop: py-bedrock-deploy: {spec: ..., path: <tree>}).
    license("BSD-3-Clause")

    version("0.1.0")

    # Build: scikit-build-core drives CMake, which builds native/ (C++17, pybind11 module).
    depends_on("cxx", type="build")
    depends_on("python@3.11:", type=("build", "run"))
    depends_on("py-scikit-build-core@0.10:", type="build")
    depends_on("py-pybind11@2.12:", type="build")
    depends_on("cmake@3.20:", type="build")
    depends_on("ninja", type="build")
    depends_on("nlohmann-json@3:", type="build")

    # Run: the generator (pyproject.toml [project] dependencies).
    depends_on("py-jinja2@3.1:", type=("build", "run"))
    depends_on("py-ruamel-yaml@0.18:", type=("build", "run"))
    depends_on("py-ruamel-yaml-clib@0.2.8:", type=("build", "run"))  # libyaml's C parser
    depends_on("py-pydantic@2.6:", type=("build", "run"))
    depends_on("py-rich@13:", type=("build", "run"))

    import_modules = ["bedrock_deploy"]
