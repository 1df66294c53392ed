"""Ground-truth lesion masks of an evaluation set: found beside its images (an IDRiD tree, or
a ``--masks`` folder) and prepared exactly like their image.

A ``--masks DIR`` holds ``<id>.png`` (an image's union mask) or ``<TYPE>/<id>.png`` (one mask
per lesion type, the union made from them); ``.tif`` and ``.tiff`` are taken too. Any non-zero
pixel is lesion (``lesionpaste.images.read_mask``). An image without a mask file gets none.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from pathlib import Path

import numpy as np

from lesionpaste import idrid_files
from lesionpaste.errors import LesionPasteError
from lesionpaste.files import open_regular
from lesionpaste.images import check_complete, header_size, read_bytes, read_mask
from lesionpaste.preparation import Prepared
from lesionpaste.synth.inputs.normals import NormalImage
from lesionpaste.synth.inputs.prepare_mask import prepare_mask

MASK_SUFFIXES = (".png", ".tif", ".tiff")
#: how image files begin: PNG, JPEG, TIFF (little- and big-endian)
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"II*\x00", b"MM\x00*")
_HEAD_BYTES = 1 << 16
_TYPE_NAME = re.compile(r"[A-Za-z0-9_]+")


def idrid_images(root: Path, label: int = 1) -> list[NormalImage]:
    """Every photograph of an IDRiD tree, with its lesion-type masks (MA, HE, EX, SE; never
    the optic disc's), labelled ``label``.

    Args:
        root: the IDRiD data root (``lesionpaste.idrid_files``).
        label: every image's label (1: the segmentation set's images all have lesions).

    Returns:
        One image per photograph, by id (``IDRiD_NN``), with the types' mask files it has.

    Raises:
        LesionPasteError: ``root`` is not the IDRiD tree, or holds no photograph.
    """
    images = idrid_files.image_files(root)
    if not images:
        raise LesionPasteError(f"{root}: no IDRiD_NN image in the IDRiD tree")
    masks = idrid_files.mask_files(root)
    return [
        NormalImage(image_id, path, label,
                    type_masks=tuple(idrid_files.lesion_masks(root, image_id, masks).items()))
        for image_id, path in images.items()
    ]  # fmt: skip


def _mask_files(folder: Path) -> dict[str, Path]:
    """The mask files directly in ``folder``, by id (the name's NFC stem)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in MASK_SUFFIXES:
            continue
        if not path.is_file():
            continue
        key = unicodedata.normalize("NFC", path.stem)
        if key in found:
            raise LesionPasteError(
                f"{folder}: two masks for {key!r} ({found[key].name}, {path.name}); keep one"
            )
        found[key] = path
    return found


def folder_masks(masks: Path) -> tuple[dict[str, Path], dict[str, dict[str, Path]]]:
    """The masks of a ``--masks`` folder: union masks by id, and per-type masks by type and id.

    Args:
        masks: the folder: ``<id>.png`` and/or ``<TYPE>/<id>.png``.

    Returns:
        ``(union, types)``: ``{id: file}`` and ``{TYPE: {id: file}}`` (types sorted by name).

    Raises:
        LesionPasteError: no such folder, a type folder whose name is not letters, digits and
            ``_`` or is ``OD`` (the optic disc is anatomy), or two files for one id.
    """
    masks = Path(masks)
    if not masks.is_dir():
        raise LesionPasteError(f"--masks {masks}: no such folder of masks")
    types: dict[str, dict[str, Path]] = {}
    for folder in sorted(p for p in masks.iterdir() if p.is_dir()):
        if folder.name.startswith("."):
            continue
        if not _TYPE_NAME.fullmatch(folder.name):
            raise LesionPasteError(
                f"{folder}: a lesion type folder is named with letters, digits and _ (e.g. MA)"
            )
        if folder.name.upper() == "OD":
            raise LesionPasteError(f"{folder}: the optic disc is anatomy, not a lesion")
        types[folder.name] = _mask_files(folder)
    return _mask_files(masks), types


def attach_folder_masks(items: list[NormalImage], masks: Path) -> tuple[list[NormalImage], int]:
    """The images with their masks from a ``--masks`` folder, matched by id.

    Args:
        items: the evaluation images.
        masks: the ``--masks`` folder (``folder_masks``).

    Returns:
        ``(items, without)``: the images, each with the mask files found for it, and how many
        have none.

    Raises:
        LesionPasteError: a folder ``folder_masks`` refuses, no mask matching any image, or
            an image with both a union mask and per-type masks.
    """
    union, types = folder_masks(masks)
    out, without = [], 0
    for item in items:
        own = tuple(
            (t, files[item.image_id]) for t, files in types.items() if item.image_id in files
        )
        whole = union.get(item.image_id)
        if whole is not None and own:
            raise LesionPasteError(
                f"{masks}: {item.image_id!r} has both {whole.name} and per-type masks "
                f"({', '.join(t for t, _ in own)}); give either union masks or per-type masks"
            )
        without += whole is None and not own
        out.append(dataclasses.replace(item, union_mask=whole, type_masks=own))
    if without == len(items):
        raise LesionPasteError(
            f"--masks {masks}: no mask matches an image (expected <id>.png or <TYPE>/<id>.png, "
            f"e.g. {items[0].image_id}.png)"
        )
    return out, without


def _size_refusal(path: Path, mask_hw: tuple, item: NormalImage, image_hw: tuple) -> str:
    (mh, mw), (ih, iw) = mask_hw[:2], image_hw[:2]
    return (
        f"{path}: mask is {mw}x{mh} but its image {Path(item.path).name} is {iw}x{ih}; "
        "masks must have their image's size"
    )


def _mask_bytes(path: Path, item: NormalImage) -> bytes:
    """One of ``item``'s mask files, whole (a FIFO or directory refused unread), checked to be
    a PNG, JPEG or TIFF that is not cut short."""
    try:
        data = read_bytes(path)
        check_complete(data, path)
    except LesionPasteError as exc:
        raise LesionPasteError(f"mask of {item.image_id}: {exc}") from None
    if not data.startswith(_MAGIC):
        raise LesionPasteError(
            f"mask of {item.image_id}: {path}: not a readable image (PNG, JPEG or TIFF "
            "expected; is the file corrupt?)"
        )
    return data


def check_mask_headers(items: list[NormalImage]) -> None:
    """Refuse, before any work starts, a mask file that is missing, empty, not an image (PNG,
    JPEG or TIFF), cut short, or whose header gives another size than its image's (PNG and
    JPEG headers); what only decoding finds is refused when each mask is read.

    Args:
        items: the evaluation images, with their mask files.

    Raises:
        LesionPasteError: one such mask (the message names the file).
    """
    for item in items:
        if not item.has_masks:
            continue
        try:
            with open_regular(item.path, "image") as fh:
                image_size = header_size(fh.read(_HEAD_BYTES))
        except LesionPasteError:
            image_size = None  # an unreadable image is skipped (or refused) by the run
        paths = [p for p in [item.union_mask] if p is not None] + [p for _, p in item.type_masks]
        for path in paths:
            size = header_size(_mask_bytes(path, item))
            if size is not None and image_size is not None and size != image_size:
                raise LesionPasteError(_size_refusal(path, size[::-1], item, image_size[::-1]))


def _read_checked(path: Path, item: NormalImage, prepared: Prepared) -> np.ndarray:
    """One mask file of ``item``, read; refused when unreadable or of another size."""
    try:
        mask, _ = read_mask(path)
    except LesionPasteError as exc:
        raise LesionPasteError(f"mask of {item.image_id}: {exc}") from None
    source = prepared.geometry.source_shape if prepared.geometry else None
    if source is not None and tuple(mask.shape[:2]) != tuple(source):
        raise LesionPasteError(_size_refusal(path, mask.shape, item, source))
    return mask


def _prepared(mask: np.ndarray, path: Path, prepared: Prepared) -> np.ndarray:
    try:
        return prepare_mask(mask, prepared)
    except LesionPasteError as exc:
        raise LesionPasteError(f"{path}: {exc}") from None


def prepared_masks(
    item: NormalImage, prepared: Prepared
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """An evaluation image's masks, prepared exactly like it (``synth.inputs.prepare_mask.prepare_mask``).

    The union of per-type masks is made at the source's resolution and prepared by the same
    rule, joined with every prepared type mask (so it holds each of them).

    Args:
        item: the image, with its mask files (``has_masks``).
        prepared: the image as prepared.

    Returns:
        ``(union, types)``: the ``(H, W)`` boolean union mask and ``{type: (H, W) boolean}``
        (empty for a union-only mask).

    Raises:
        LesionPasteError: a mask that is missing or unreadable, or of another size than its
            image (the message names the file).
    """
    if item.union_mask is not None:
        mask = _read_checked(item.union_mask, item, prepared)
        return _prepared(mask, item.union_mask, prepared), {}
    types: dict[str, np.ndarray] = {}
    whole: np.ndarray | None = None
    for lesion_type, path in item.type_masks:
        mask = _read_checked(path, item, prepared)
        types[lesion_type] = _prepared(mask, path, prepared)
        whole = mask if whole is None else whole | mask
    if whole is None:
        raise LesionPasteError(f"{item.image_id}: no mask file to prepare")
    union = _prepared(whole, item.type_masks[0][1], prepared)
    for mask in types.values():
        union |= mask
    return union, types
