"""cxprobe: synthetic monitoring of customer service channels."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cxprobe")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
