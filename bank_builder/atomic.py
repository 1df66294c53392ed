"""Write outputs so that they appear only complete, and never replace a file unasked."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from bank_builder.errors import LesionPasteError


def refuse_existing(path: Path, overwrite: bool) -> None:
    """Fail early, before any work, when ``path`` exists and ``overwrite`` was not asked."""
    path = Path(path)
    if path.is_dir():
        raise LesionPasteError(f"{path} is a directory; give a file name for the output")
    if path.exists() and not overwrite:
        raise LesionPasteError(f"{path} already exists; pass --overwrite to replace it")


@contextlib.contextmanager
def atomic_output(path: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was, so a
    crash or a refused input never leaves a half-written file under the final name.
    """
    path = Path(path)
    refuse_existing(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        refuse_existing(path, overwrite)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
