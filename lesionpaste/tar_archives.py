"""Reading a tar (or tar.gz) archive as a dataset archive is read: a stream that remembers its
last read, errors as one line, and whether a file is an archive ``lp-synth pack`` could have
written. Below both ``dataset_archive`` (pack, unpack) and ``outputs`` (the guard, which must
recognise an earlier archive), so neither imports the other."""

from __future__ import annotations

import contextlib
import gzip
import os
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from lesionpaste.errors import LesionPasteError
from lesionpaste.file_names import DATASET_RECORD
from lesionpaste.files import open_regular

#: what tarfile and gzip raise on a damaged archive
READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)
GZIP_MAGIC = b"\x1f\x8b"


class Recorder:
    """A read-only stream that remembers its last read (where, and what): the block at which
    ``tarfile`` stopped listing, without seeking back (a gzip stream seeks back by
    decompressing it again from its start)."""

    def __init__(self, stream):
        self.stream = stream
        self.last: tuple[int, bytes] = (-1, b"")

    def read(self, size: int = -1) -> bytes:
        """Read from the stream, remembering what was read.

        Args:
            size: the most bytes to read (-1: to the end).

        Returns:
            The bytes read.
        """
        where = self.stream.tell()
        data = self.stream.read(size)
        self.last = (where, data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move in the stream (forward: a gzip stream seeks back only by starting over).

        Args:
            offset: the position (for ``whence=SEEK_SET``).
            whence: as for ``io.IOBase.seek``.

        Returns:
            The new position.
        """
        return self.stream.seek(offset, whence)

    def tell(self) -> int:
        """The stream's position.

        Returns:
            The position, in uncompressed bytes.
        """
        return self.stream.tell()


@contextlib.contextmanager
def open_tar(archive: Path) -> Iterator[tuple[tarfile.TarFile, Recorder]]:
    """The archive (plain tar, or gzip-compressed) opened for reading, with its recording
    stream; its read errors become one line.

    Args:
        archive: the archive file.

    Yields:
        ``(tar, stream)``: the open archive, and the stream it reads through.

    Raises:
        LesionPasteError: not a regular file, or not a readable tar or tar.gz archive.
    """
    with open_regular(archive, "dataset archive") as fh:
        compressed = fh.read(2) == GZIP_MAGIC
        fh.seek(0)
        stream = Recorder(gzip.GzipFile(fileobj=fh, mode="rb") if compressed else fh)
        try:
            with tarfile.open(fileobj=stream, mode="r:") as tar:
                yield tar, stream
        except READ_ERRORS as exc:
            raise LesionPasteError(
                f"{archive}: not a readable tar or tar.gz archive ({exc or type(exc).__name__});"
                " nothing was written"
            ) from None


def is_dataset_archive(path: Path) -> bool:
    """Whether ``path`` is an archive that ``pack`` could have written: a tar file (plain or
    compressed) whose first member is ``dataset.json``.

    Args:
        path: the file.

    Returns:
        Whether it is one (False for anything unreadable).
    """
    try:
        with open_tar(Path(path)) as (tar, _stream):
            first = tar.next()
    except LesionPasteError:
        return False
    return first is not None and first.name == DATASET_RECORD and first.isreg()
