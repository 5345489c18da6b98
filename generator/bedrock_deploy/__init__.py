"""bedrock-deploy: deployment generator for Mochi Bedrock services on HPC clusters.

Importing the package does nothing else (the command line's entry point relies on it): the
version is looked up on first use.
"""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("bedrock-deploy")
        except PackageNotFoundError:  # running from a source tree that is not installed
            value = "0.0.0+source"
        globals()["__version__"] = value
        return value
    raise AttributeError(f"module 'bedrock_deploy' has no attribute {name!r}")
