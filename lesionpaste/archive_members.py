"""What a dataset archive may hold, judged from its tar headers alone, before anything is written.

An archive comes from someone else, so each member is checked on its header: it must be a
regular file or a folder (no link, device, FIFO or sparse file), under a safe relative name
(no absolute name, no ``..``), named once (also on a file system that ignores case or Unicode
form), one of the files a dataset holds, and within the bounds that its ``dataset.json`` (the
archive's first member) sets:

- members: at most ``9 + T + N * (2 + T)`` for ``N = counts.images`` images and ``T`` mask
  types (an evaluation set's ``masks.types``; 0 otherwise): five metadata files, each image
  with its union mask and one mask per type, and the folders ``images/``, ``images/normal/``,
  ``images/anomalous/``, ``masks/`` and ``masks/TYPE/``;
- bytes: ``dataset.json`` at most 64 MiB (its reader's limit); each other metadata file at most
  64 MiB + 1 MiB per image; each PNG at most ``8 * S * S + 64 KiB`` for the recorded side
  ``S = config.size`` (8 bytes a pixel: more than an uncompressed 16-bit RGBA PNG), or, for a
  dataset kept at its input's size, the pixel limit (``$LP_MAX_PIXELS``) in place of ``S * S``;
  the members together at most the sum of those bounds over the members allowed.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from lesionpaste.dataset_format import (
    METADATA_FILES,
    has_control_character,
    is_safe_relative,
    name_key,
)
from lesionpaste.errors import LesionPasteError
from lesionpaste.file_names import DATASET_RECORD
from lesionpaste.images import max_pixels
from lesionpaste.jsonfiles import MAX_JSON_BYTES

#: folders a dataset holds its PNG images and masks in
PNG_FOLDERS = ("images", "masks")
#: a metadata file's bound: this, plus ``METADATA_BYTES_PER_IMAGE`` per image
METADATA_BYTES = 64 << 20
METADATA_BYTES_PER_IMAGE = 1 << 20
#: a PNG's bound: this many bytes a pixel, plus ``PNG_OVERHEAD``
PNG_BYTES_PER_PIXEL = 8
PNG_OVERHEAD = 64 << 10
#: the fixed folders (``images/``, ``images/normal/``, ``images/anomalous/``, ``masks/``)
FIXED_FOLDERS = 4

_TYPES = {
    tarfile.SYMTYPE: "a symbolic link",
    tarfile.LNKTYPE: "a hard link",
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a FIFO",
    tarfile.GNUTYPE_SPARSE: "a sparse file",
}


@dataclass(frozen=True)
class ArchiveLimits:
    """The bounds an archive's ``dataset.json`` sets on the rest of the archive.

    Attributes:
        images: ``counts.images``, the images the dataset declares.
        mask_types: the evaluation set's mask types (0 for other datasets).
        members: the most members the archive may hold (``dataset.json`` included).
        png_bytes: the most bytes one PNG image or mask may declare.
        metadata_bytes: the most bytes one metadata file (manifest, pastes...) may declare.
        total_bytes: the most bytes all members together may declare.
    """

    images: int
    mask_types: int
    members: int
    png_bytes: int
    metadata_bytes: int
    total_bytes: int

    def member_bytes(self, name: str) -> int:
        """The most bytes the member ``name`` may declare.

        Args:
            name: a member's name (already checked by ``member_kind``).

        Returns:
            ``MAX_JSON_BYTES`` for ``dataset.json``, ``metadata_bytes`` for another metadata
            file, ``png_bytes`` for an image or mask.
        """
        if name == DATASET_RECORD:
            return MAX_JSON_BYTES
        return self.metadata_bytes if name in METADATA_FILES else self.png_bytes


def limits_for(meta: dict, where: str) -> ArchiveLimits:
    """The bounds an archive's ``dataset.json`` sets (see the module's description).

    Args:
        meta: the archive's ``dataset.json`` (checked by ``check_dataset_meta``).
        where: the archive, named in the message.

    Returns:
        The limits.

    Raises:
        LesionPasteError: ``dataset.json`` declares no positive image count.
    """
    images = meta.get("counts", {}).get("images")
    if isinstance(images, bool) or not isinstance(images, int) or images < 1:
        raise LesionPasteError(
            f"{where}: dataset.json declares no image count (counts.images), so the archive's "
            "size cannot be bounded; refused before writing anything"
        )
    masks = meta.get("masks") if meta.get("kind") == "evaluation" else None
    types = masks.get("types") if isinstance(masks, dict) else None
    mask_types = len(types) if isinstance(types, list) else 0
    size = meta.get("config", {}).get("size")
    pixels = size * size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else 0
    png_bytes = PNG_BYTES_PER_PIXEL * (pixels or max_pixels()) + PNG_OVERHEAD
    metadata_bytes = METADATA_BYTES + METADATA_BYTES_PER_IMAGE * images
    pngs = images * (2 + mask_types)
    metadata = len(METADATA_FILES)
    return ArchiveLimits(
        images=images,
        mask_types=mask_types,
        members=metadata + FIXED_FOLDERS + mask_types + pngs,
        png_bytes=png_bytes,
        metadata_bytes=metadata_bytes,
        # every slot filled by the largest file it could hold: a folder's slot by a PNG
        total_bytes=MAX_JSON_BYTES
        + (metadata - 1) * metadata_bytes
        + (pngs + FIXED_FOLDERS + mask_types) * png_bytes,
    )


def member_kind(info: tarfile.TarInfo, where: str) -> str:
    """``"file"`` or ``"dir"`` for a member a dataset archive may hold, judged by its header.

    Args:
        info: the member's header.
        where: the archive, named in the message.

    Returns:
        ``"file"`` for a regular file, ``"dir"`` for a folder.

    Raises:
        LesionPasteError: a link, device, FIFO, sparse file or other special member; an
            absolute name, a ``..`` component, another unsafe name; a name that is not one
            of a dataset's files (its metadata files, PNGs under ``images/`` and ``masks/``).
    """
    name = info.name
    if info.type in _TYPES:
        raise LesionPasteError(
            f"{where}: member {name!r} is {_TYPES[info.type]}; a dataset archive holds only "
            "regular files and folders, so nothing was written"
        )
    if not (info.isreg() or info.isdir()):
        raise LesionPasteError(
            f"{where}: member {name!r} is of tar type {info.type!r}, not a regular file or "
            "folder; nothing was written"
        )
    _refuse_unsafe_name(name, where)
    kind = "dir" if info.isdir() else "file"
    if not _dataset_name(PurePosixPath(name).parts, kind):
        raise LesionPasteError(
            f"{where}: member {name!r} is not a file a LesionPaste dataset holds (its metadata "
            "files, PNG images and masks under images/ and masks/); nothing was written"
        )
    return kind


def _refuse_unsafe_name(name: str, where: str) -> None:
    pure = PurePosixPath(name)
    if name.startswith("/") or pure.is_absolute():
        raise LesionPasteError(
            f"{where}: member {name!r} has an absolute name; members are named relative to "
            "the dataset, so nothing was written"
        )
    if ".." in name.split("/"):
        raise LesionPasteError(
            f"{where}: member {name!r} has a '..' component, which would lead outside the "
            "dataset; nothing was written"
        )
    parts = name.split("/")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # tarfile keeps undecodable bytes as surrogates
        raise LesionPasteError(
            f"{where}: member {name!r} is not named in UTF-8; nothing was written"
        ) from None
    if not is_safe_relative(name) or any(p in ("", ".") for p in parts):
        shown = "control characters" if has_control_character(name) else "an unsafe form"
        raise LesionPasteError(
            f"{where}: member {name!r} has {shown} (a dataset's names are plain relative "
            "paths); nothing was written"
        )


def _dataset_name(parts: tuple[str, ...], kind: str) -> bool:
    """Whether a member's name is one a dataset directory holds (``outputs`` judges a dataset
    directory by the same rule)."""
    if kind == "dir":
        return parts[0] in PNG_FOLDERS
    if len(parts) == 1:
        return parts[0] in METADATA_FILES
    return parts[0] in PNG_FOLDERS and parts[-1].lower().endswith(".png")


@dataclass
class MemberNames:
    """The names met so far in an archive, to refuse a name met twice (exactly, or once case
    and Unicode form are ignored, as some file systems do) and a name that is both a file and
    a folder."""

    files: set[str] = field(default_factory=set)
    folders: set[str] = field(default_factory=set)
    folded: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, kind: str, where: str) -> None:
        """Record a member's name, refusing one that clashes with an earlier member.

        Args:
            name: the member's name (already checked by ``member_kind``).
            kind: ``"file"`` or ``"dir"``.
            where: the archive, named in the message.

        Raises:
            LesionPasteError: the name was met before (exactly, or in another case or
                Unicode form), or is both a file and a folder's name.
        """
        key = name_key(name)
        if key in self.folded:
            earlier = self.folded[key]
            same = "appears twice" if earlier == name else f"collides with {earlier!r}"
            raise LesionPasteError(
                f"{where}: member {name!r} {same} (a duplicate name, on a file system that "
                "ignores case or Unicode form at least); nothing was written"
            )
        parents = {"/".join(name.split("/")[:i]) for i in range(1, name.count("/") + 1)}
        if parents & self.files or (kind == "file" and name in self.folders):
            raise LesionPasteError(
                f"{where}: member {name!r} is both a file and a folder; nothing was written"
            )
        self.folded[key] = name
        self.folders |= parents
        (self.files if kind == "file" else self.folders).add(name)
