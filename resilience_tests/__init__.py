"""Chaos and resilience experiments for Kubernetes, run with pytest."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("resilience-tests")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
