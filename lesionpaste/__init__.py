"""LesionPaste's shared core: what the lesion bank builder, the synthesizer and the trainer all
stand on (the one user-facing error, file safety, the output guard, readers of received files).

It imports none of the three parts and no torch.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("lesionpaste")
except _metadata.PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
