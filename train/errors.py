"""The trainer's user-facing error: the core's one error type under the trainer's old name."""

from lesionpaste.errors import LesionPasteError

#: The same class as ``LesionPasteError`` (kept so that ``except TrainError`` reads naturally).
TrainError = LesionPasteError

__all__ = ["TrainError"]
