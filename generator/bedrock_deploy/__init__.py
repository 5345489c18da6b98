"""bedrock-deploy: deployment generator for Mochi Bedrock services on HPC clusters."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bedrock-deploy")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
