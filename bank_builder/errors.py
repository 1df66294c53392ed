"""The user-facing error, from the shared core (one type for every tool)."""

from lesionpaste.errors import LesionPasteError

__all__ = ["LesionPasteError"]
