"""The sha256 digests that a bank, a dataset and a run record of their files."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from lesionpaste.files import open_regular


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of a byte string.

    Args:
        data: the bytes to digest.

    Returns:
        The 64-character lowercase hex digest.
    """
    return hashlib.sha256(data).hexdigest()


def is_sha256(value: object) -> bool:
    """Whether a value read from a file is a hex sha256 digest (64 hex digits, either case).

    Args:
        value: the value, of any type.

    Returns:
        True for a digest.
    """
    return isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F]{64}", value) is not None


def sha256_file(path: Path) -> str:
    """Hex sha256 of a regular file's bytes, read in blocks (any size in constant memory).

    Args:
        path: the file.

    Returns:
        The 64-character lowercase hex digest.

    Raises:
        LesionPasteError: missing or unreadable, or not a regular file (a FIFO, a
            directory): refused, not read.
    """
    h = hashlib.sha256()
    with open_regular(path) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
