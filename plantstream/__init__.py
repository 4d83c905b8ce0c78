"""plantstream: the record contracts and the plant model shared by every stage.

This package is the bottom layer of the pipeline. Collectors, streams, sinks and runtimes import
it; it imports none of them (a test enforces that). See docs/architecture.md.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("plantstream")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0"

__all__ = ["__version__"]
