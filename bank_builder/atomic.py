"""Write outputs so that they appear only complete, and never replace a file unasked."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from lesionpaste.errors import LesionPasteError
from lesionpaste.images import mark_png


def refuse_existing(path: Path, overwrite: bool) -> None:
    """Fail early, before any work, when ``path`` exists and ``overwrite`` was not asked."""
    path = Path(path)
    if path.is_dir():
        raise LesionPasteError(f"{path} is a directory; give a file name for the output")
    if path.exists() and not overwrite:
        raise LesionPasteError(f"{path} already exists; pass --overwrite to replace it")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove temporary files that killed runs left next to ``path`` (their pid is gone)."""
    removed = []
    for tmp in Path(path).parent.glob(f".{Path(path).name}.*.tmp"):
        pid = tmp.name[len(Path(path).name) + 2 : -len(".tmp")]
        if pid.isdigit() and not _pid_alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            removed.append(tmp)
    return removed


def write_png(path: Path, rgb, overwrite: bool = False, what: str = "the picture") -> None:
    """Write an RGB ``uint8`` array as a PNG file (marked as LesionPaste's), atomically,
    refusing to replace unasked."""
    import cv2

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise LesionPasteError(f"{path}: {what} is written as PNG; name it *.png")
    refuse_existing(path, overwrite)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise LesionPasteError(f"{path}: could not encode {what} as PNG")
    with atomic_output(path, overwrite) as tmp:
        tmp.write_bytes(mark_png(encoded.tobytes()))


@contextlib.contextmanager
def atomic_output(path: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was, so a
    crash or a refused input never leaves a half-written file under the final name.
    """
    path = Path(path)
    refuse_existing(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
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
