"""File safety shared by the three tools: atomic writes, a run lock, OS errors in one line.

Standard library only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

from lesionpaste.errors import LesionPasteError


def open_regular(path: Path, what: str = "file"):
    """Open a regular file for binary reading, refusing before reading anything what is not one.

    A directory, a FIFO (whose reading would block for ever), a device or a socket is refused.
    The file is opened without blocking and checked on the open descriptor, so it cannot be
    swapped for a FIFO in between.

    Args:
        path: the file.
        what: what the file should be, for messages (e.g. ``"CSV file"``).

    Returns:
        The file, opened ``"rb"`` (a binary file object; close it, e.g. with ``with``).

    Raises:
        LesionPasteError: missing, unreadable, or not a regular file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise LesionPasteError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise LesionPasteError(f"{path}: a directory, where a {what} was expected") from None
    except OSError as exc:
        raise LesionPasteError(f"{path}: cannot read ({exc.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO, device or socket"
        raise LesionPasteError(f"{path}: {kind}, where a {what} was expected")
    return os.fdopen(fd, "rb")


def read_regular_file(path: Path, max_bytes: int | None = None, what: str = "file") -> bytes:
    """The bytes of a regular file (see ``open_regular``), refusing one longer than
    ``max_bytes`` without reading it all.

    Args:
        path: the file.
        max_bytes: the longest file accepted; None reads any length.
        what: what the file should be, for messages.

    Returns:
        The file's bytes.

    Raises:
        LesionPasteError: missing, unreadable, not a regular file, or over ``max_bytes``.
    """
    with open_regular(path, what) as fh:
        try:
            data = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
        except OSError as exc:
            raise LesionPasteError(f"{path}: cannot read ({exc.strerror})") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise LesionPasteError(
            f"{path}: longer than a {what} may be ({max_bytes:,} bytes); refused unread"
        )
    return data


def temp_name(path: Path) -> Path:
    """The temporary name a write to ``path`` uses before it is renamed: ``.NAME.PID.tmp``
    beside it (hidden, and named by the writing process so a killed run's leftover is known).

    Args:
        path: the final file.

    Returns:
        The temporary path, in the same folder.
    """
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def refuse_existing(path: Path, overwrite: bool) -> None:
    """Fail early, before any work, when ``path`` exists and ``overwrite`` was not asked.

    Args:
        path: the output file.
        overwrite: whether replacing an existing file is allowed.

    Raises:
        LesionPasteError: ``path`` is a directory, or exists and ``overwrite`` is false.
    """
    path = Path(path)
    if path.is_dir():
        raise LesionPasteError(f"{path} is a directory; give a file name for the output")
    if path.exists() and not overwrite:
        raise LesionPasteError(f"{path} already exists; pass --overwrite to replace it")


@contextlib.contextmanager
def atomic_output(
    path: Path, overwrite: bool = False, fsync: bool = False, clean: bool = True
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without error, rename it
    over ``path``, so that ``path`` is only ever absent, the old file, or the whole new one.

    Args:
        path: the final file.
        overwrite: when false (the default), refuse if ``path`` exists, before the block and
            again just before the rename.
        fsync: flush the written file to the disk before the rename.
        clean: first remove the temporary files that killed runs left for this output.

    Yields:
        The temporary path (``.NAME.PID.tmp`` beside ``path``) to write to.

    Raises:
        LesionPasteError: ``path`` exists (without ``overwrite``) or is a directory.

    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    refuse_existing(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    if clean:
        remove_temp_files(path.parent, name=glob.escape(path.name))
    tmp = temp_name(path)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        refuse_existing(path, overwrite)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_atomic(path: Path, data: bytes, fsync: bool = False) -> None:
    """Write ``data`` to ``path`` through ``atomic_output``, replacing what is there: for the
    files of a tool's own output, written while it holds the output's lock.

    Args:
        path: the file to write.
        data: its whole new content.
        fsync: flush it to the disk before the rename.

    Raises:
        LesionPasteError: ``path`` is a directory.
    """
    with atomic_output(path, overwrite=True, fsync=fsync, clean=False) as tmp:
        tmp.write_bytes(data)


def swap_in(new: Path, out: Path) -> None:
    """Put the finished directory ``new`` at ``out``, in place of an earlier output there.

    The earlier output stays whole (under ``out``, then briefly under the hidden sibling
    ``.NAME.replaced``) until the new one is in place, and is removed only then.

    Args:
        new: the finished directory, on the same file system as ``out``.
        out: where it goes (absent, or an earlier output to replace).
    """
    new, out = Path(new), Path(out)
    if not os.path.lexists(out):
        new.rename(out)
        return
    old = out.with_name(f".{out.name}.replaced")
    shutil.rmtree(old, ignore_errors=True)
    out.rename(old)
    new.rename(out)
    shutil.rmtree(old)


@contextlib.contextmanager
def building_folder(target: Path, tool: str, kind: str, shown: Path, overwrite: bool):
    """Build a directory beside ``target`` and swap it in when the block ends without error.

    Under ``target``'s lock: what a killed run left is removed, the block fills the hidden
    sibling ``.NAME.KIND.partial`` (which it creates), then ``target`` is refused if it
    appeared meanwhile (without ``overwrite``) and the new folder swapped in (``swap_in``). On
    any error, or a kill, the sibling is removed and ``target`` is left as it was.

    Args:
        target: the final directory (its real path).
        tool: the tool's name, for the lock.
        kind: a word naming the work (``unpack``, ``export``) in the sibling's name.
        shown: ``target`` as the user gave it, for the error message.
        overwrite: whether an earlier output at ``target`` may be replaced.

    Yields:
        The sibling directory to fill (not yet created).

    Raises:
        LesionPasteError: ``target`` exists at the end and ``overwrite`` is false.
    """
    work = target.with_name(f".{target.name}.{kind}.partial")
    with output_lock(target, tool):
        shutil.rmtree(work, ignore_errors=True)  # what a killed run left
        try:
            yield work
            if os.path.lexists(target) and not overwrite:
                raise LesionPasteError(f"{shown} already exists; pass --overwrite to replace it")
            swap_in(work, target)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise


def write_text_atomic(path: Path, text: str) -> None:
    """``write_atomic`` for UTF-8 text.

    Args:
        path: the file to write.
        text: its whole new content, encoded as UTF-8.

    Raises:
        LesionPasteError: ``path`` is a directory.
    """
    write_atomic(path, text.encode("utf-8"))


def is_temp_file(path: Path) -> bool:
    """A ``.NAME.PID.tmp`` file: what ``atomic_output`` writes before renaming (a killed run's
    leftover when it is still there).

    Args:
        path: the file (only its name is looked at).

    Returns:
        Whether its name is hidden and ends in ``.tmp``.
    """
    return path.name.startswith(".") and path.name.endswith(".tmp")


def _writer_alive(temp: Path) -> bool:
    """Whether the process named in a ``.NAME.PID.tmp`` file still runs (it may be writing)."""
    pid = temp.name[: -len(".tmp")].rpartition(".")[2]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def entries(folder: Path) -> list[Path]:
    """A folder's entries, sorted, less killed runs' temporary files (empty if no folder).

    Args:
        folder: the folder to list.

    Returns:
        Its entries' paths, sorted; an empty list when ``folder`` is not a directory.
    """
    if not Path(folder).is_dir():
        return []
    return sorted(p for p in Path(folder).iterdir() if not is_temp_file(p))


def remove_temp_files(folder: Path, recursive: bool = False, name: str = "*") -> int:
    """Delete the ``.NAME.PID.tmp`` files that killed runs left half-written in ``folder``.

    Args:
        folder: where to look.
        recursive: look in its sub-folders too.
        name: only the temporary files of outputs matching this pattern (e.g. a bank's name).

    A file whose writing process still runs is kept.

    Returns:
        How many files were removed (0 when ``folder`` is not a directory).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    found = (folder.rglob if recursive else folder.glob)(f".{name}.*.tmp")
    stale = [p for p in found if p.is_file() and not _writer_alive(p)]
    for path in stale:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return len(stale)


@contextlib.contextmanager
def output_lock(out: Path, tool: str) -> Iterator[None]:
    """The run lock of an output (file or folder): ``.NAME.lock`` beside it, named from the
    resolved path so that any spelling of the output (``.``, ``..``, links) shares one lock.

    Args:
        out: the output file or folder.
        tool: the tool's name, for the message when another run holds the lock.

    Yields:
        Nothing (None), while the lock is held.

    Raises:
        LesionPasteError: another live run holds the lock.
    """
    out = Path(out).resolve()
    with run_lock(out.with_name(f".{out.name}.lock"), tool):
        yield


@contextlib.contextmanager
def run_lock(path: Path, tool: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` while a run writes; raise ``LesionPasteError`` if
    another live run holds it.

    The kernel releases the lock when its process dies (even by SIGKILL), so a stale lock
    file never blocks a later run. The file is removed at the end; a run that locked a file
    which the previous holder removed meanwhile locks the new file instead.

    Args:
        path: the lock file (created, and holding the locking process's id).
        tool: the tool's name, for the message when another run holds the lock.

    Yields:
        Nothing (None), while the lock is held.

    Raises:
        LesionPasteError: another live run holds the lock.
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
            raise LesionPasteError(
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
    """One line for an operating-system error met while reading or writing files.

    Args:
        exc: the error.

    Returns:
        ``FILE: reason`` on one line (a full disk explained, with what to do).
    """
    where = f"{exc.filename}: " if exc.filename else ""
    if exc.errno in _DISK_FULL:  # the system's wording: libraries (HDF5) append pages of detail
        return (
            f"{where}{os.strerror(exc.errno)}: the disk (or a file size limit) is full; nothing "
            "partial was kept under a final name; free some space and rerun the same command"
        )
    return f"{where}{(exc.strerror or str(exc) or type(exc).__name__).splitlines()[0]}"
