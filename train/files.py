"""File safety shared by the three tools: atomic writes, a run lock, OS errors in one line.

Standard library only. It lives in ``train/`` because the trainer may import neither
``synth`` nor ``bank_builder``, while they may import it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class RunLocked(Exception):
    """Another live process holds the lock (its message names the pid)."""


def write_atomic(path: Path, data: bytes, fsync: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary name, so ``path`` is whole or absent."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text_atomic(path: Path, text: str) -> None:
    """``write_atomic`` for UTF-8 text."""
    write_atomic(path, text.encode("utf-8"))


def remove_temp_files(folder: Path, recursive: bool = False) -> int:
    """Delete the ``.NAME.PID.tmp`` files that killed runs left half-written in ``folder``.

    Call it only while holding the folder's run lock: then no live writer owns them.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    stale = [p for p in (folder.rglob if recursive else folder.glob)(".*.tmp") if p.is_file()]
    for path in stale:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return len(stale)


@contextlib.contextmanager
def output_lock(out: Path, tool: str, error: type[Exception] = RunLocked) -> Iterator[None]:
    """The run lock of an output (file or folder): ``.NAME.lock`` beside it, named from the
    resolved path so that any spelling of the output (``.``, ``..``, links) shares one lock."""
    out = Path(out).resolve()
    with run_lock(out.with_name(f".{out.name}.lock"), tool, error):
        yield


@contextlib.contextmanager
def run_lock(path: Path, tool: str, error: type[Exception] = RunLocked) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` while a run writes; raise ``error`` (the calling
    tool's one-line error) if another live run holds it.

    The kernel releases the lock when its process dies (even by SIGKILL), so a stale lock
    file never blocks a later run. The file is removed at the end; a run that locked a file
    which the previous holder removed meanwhile locks the new file instead.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise error(
                f"another {tool} run (pid {other}) is writing this output; wait for it to end"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder we waited on removed the file: lock the current one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # still holding the lock: nobody else can be using this file
        os.close(fd)


_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def describe_os_error(exc: OSError) -> str:
    """One line for an operating-system error met while reading or writing files."""
    where = f"{exc.filename}: " if exc.filename else ""
    if exc.errno in _DISK_FULL:  # the system's wording: libraries (HDF5) append pages of detail
        return (
            f"{where}{os.strerror(exc.errno)}: the disk (or a file size limit) is full; nothing "
            "partial was kept under a final name; free some space and rerun the same command"
        )
    return f"{where}{(exc.strerror or str(exc) or type(exc).__name__).splitlines()[0]}"
