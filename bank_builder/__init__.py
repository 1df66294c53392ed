"""Lesion bank: extract lesions from annotated images into a versioned HDF5 file."""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("lesionpaste")
except _metadata.PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
