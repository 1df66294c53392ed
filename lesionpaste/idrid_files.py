"""IDRiD's published segmentation tree: image ids, and where an image and its lesion masks lie
(``A. Segmentation/1. Original Images/{a. Training Set,b. Testing Set}/IDRiD_NN.jpg`` and
``A. Segmentation/2. All Segmentation Groundtruths/.../IDRiD_NN_{MA,HE,EX,SE}.tif``).

The one reader of the layout: the bank builder cuts lesions from it, and the synthesizer
prepares its images and masks as an evaluation set. The optic-disc masks (``_OD``) are anatomy,
not lesions, and are never looked up.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from lesionpaste.errors import LesionPasteError

#: IDRiD's lesion types, in the order of its ground-truth folders.
LESION_TYPES = ["MA", "HE", "EX", "SE"]
LESION_TYPE_NAMES = {
    "MA": "microaneurysms",
    "HE": "haemorrhages",
    "EX": "hard exudates",
    "SE": "soft exudates",
}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
MASK_SUFFIXES = (".tif", ".tiff", ".png")
IMAGES_FOLDER = "1. Original Images"
MASKS_FOLDER = "2. All Segmentation Groundtruths"
_IMAGE_NAME = re.compile(r"idrid_\d+\.\w+")
_LISTED_NAME = re.compile(r"idrid_\d{1,3}\.\w+")


def normalise_id(text: str) -> str:
    """``idrid_48``, ``IDRiD_48`` or ``48`` -> ``IDRiD_48``.

    Args:
        text: an IDRiD image id as the user wrote it.

    Returns:
        The canonical id, ``IDRiD_NN``.

    Raises:
        LesionPasteError: ``text`` is not an IDRiD id.
    """
    m = re.fullmatch(r"(?:idrid[_-]?)?0*(\d{1,3})", text.strip(), flags=re.IGNORECASE)
    if not m:
        raise LesionPasteError(f"{text!r} is not an IDRiD id (expected e.g. idrid_48)")
    return f"IDRiD_{int(m.group(1)):02d}"


def segmentation_dir(root: Path) -> Path:
    """The ``A. Segmentation`` folder under ``root`` (or ``root`` itself).

    Args:
        root: the IDRiD data root.

    Returns:
        The folder holding ``1. Original Images``.

    Raises:
        LesionPasteError: neither ``root`` nor ``root/A. Segmentation`` holds it.
    """
    root = Path(root)
    for candidate in (root / "A. Segmentation", root):
        if (candidate / IMAGES_FOLDER).is_dir():
            return candidate
    raise LesionPasteError(
        f"{root} does not look like the IDRiD tree: no 'A. Segmentation/1. Original Images' in it"
    )


def is_idrid_root(root: Path) -> bool:
    """Whether ``root`` is IDRiD's segmentation tree, as ``segmentation_dir`` recognises it.

    Args:
        root: a folder.

    Returns:
        True when ``root`` or ``root/A. Segmentation`` holds ``1. Original Images``.
    """
    root = Path(root)
    return any((c / IMAGES_FOLDER).is_dir() for c in (root / "A. Segmentation", root))


def files_by_lower_name(folder: Path) -> dict[str, Path]:
    """Every file under ``folder`` (recursively) by its lower-cased name; the first one in
    sorted order wins when two folders hold one name.

    Args:
        folder: the folder to walk.

    Returns:
        ``{lower-cased file name: path}``.
    """
    found: dict[str, Path] = {}
    for dirpath, dirnames, names in os.walk(folder):
        dirnames.sort()
        for name in sorted(names):
            found.setdefault(name.lower(), Path(dirpath) / name)
    return found


def _first(files: dict[str, Path], stem: str, suffixes: tuple[str, ...]) -> Path | None:
    """The file named ``stem`` with the first of ``suffixes`` there is (names lower-cased)."""
    return next((files[n] for n in (stem.lower() + s for s in suffixes) if n in files), None)


def image_files(root: Path) -> dict[str, Path]:
    """Every photograph of the tree (training and testing sets), by canonical id.

    Args:
        root: the IDRiD data root.

    Returns:
        ``{IDRiD_NN: path}``, sorted by id; for an id with several files, the first of
        ``IMAGE_SUFFIXES`` wins.

    Raises:
        LesionPasteError: ``root`` is not the IDRiD tree.
    """
    files = files_by_lower_name(segmentation_dir(root) / IMAGES_FOLDER)
    ids = {normalise_id(Path(n).stem) for n in files if _LISTED_NAME.fullmatch(n)}
    found = {i: _first(files, i, IMAGE_SUFFIXES) for i in sorted(ids)}
    return {i: p for i, p in found.items() if p is not None}


def find_image(root: Path, image_id: str, files: dict[str, Path] | None = None) -> Path:
    """The photograph of ``IDRiD_NN``.

    Args:
        root: the IDRiD data root.
        image_id: a canonical id (``normalise_id``), e.g. ``IDRiD_48``.
        files: ``files_by_lower_name`` of the images folder, when already walked.

    Returns:
        The photograph's path.

    Raises:
        LesionPasteError: ``root`` is not the IDRiD tree, or it has no such image (the
            message gives the ids it has).
    """
    seg = segmentation_dir(root)
    files = files_by_lower_name(seg / IMAGES_FOLDER) if files is None else files
    image = _first(files, image_id, IMAGE_SUFFIXES)
    if image is None:
        known = sorted(Path(p).stem for n, p in files.items() if _IMAGE_NAME.fullmatch(n))
        hint = f"found {known[0]} .. {known[-1]} ({len(known)} images)" if known else "found none"
        raise LesionPasteError(
            f"unknown IDRiD id {image_id}: no {image_id}.jpg under {seg / IMAGES_FOLDER} ({hint})"
        )
    return image


def mask_files(root: Path) -> dict[str, Path]:
    """Every ground-truth file of the tree, by lower-cased name (empty without the folder).

    Args:
        root: the IDRiD data root.

    Returns:
        ``files_by_lower_name`` of ``2. All Segmentation Groundtruths``.

    Raises:
        LesionPasteError: ``root`` is not the IDRiD tree.
    """
    folder = segmentation_dir(root) / MASKS_FOLDER
    return files_by_lower_name(folder) if folder.is_dir() else {}


def lesion_masks(
    root: Path, image_id: str, files: dict[str, Path] | None = None
) -> dict[str, Path]:
    """The lesion masks of ``IDRiD_NN`` there are (``IDRiD_NN_MA.tif`` ...), never the optic
    disc's.

    Args:
        root: the IDRiD data root.
        image_id: a canonical id, e.g. ``IDRiD_48``.
        files: ``mask_files(root)``, when already walked.

    Returns:
        ``{lesion type: mask path}`` for the types found, in ``LESION_TYPES`` order.

    Raises:
        LesionPasteError: ``root`` is not the IDRiD tree.
    """
    files = mask_files(root) if files is None else files
    found = {t: _first(files, f"{image_id}_{t}", MASK_SUFFIXES) for t in LESION_TYPES}
    return {t: p for t, p in found.items() if p is not None}


def locate(root: Path, image_id: str) -> tuple[Path, dict[str, Path]]:
    """Find ``IDRiD_NN``'s photograph and lesion masks.

    Args:
        root: the IDRiD data root.
        image_id: a canonical id (``normalise_id``), e.g. ``IDRiD_48``.

    Returns:
        ``(image, masks)``: the photograph's path and ``{lesion type: mask path}`` for the
        types found (a type without a mask is absent).

    Raises:
        LesionPasteError: ``root`` is not the IDRiD tree, or it has no such image.
    """
    return find_image(root, image_id), lesion_masks(root, image_id)
