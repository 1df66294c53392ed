"""IDRiD: find an image and its lesion masks in the official segmentation tree."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from bank_builder.annotated import FUNDUS_TYPE_NAMES, FUNDUS_TYPES
from lesionpaste.errors import LesionPasteError

LICENCE = "CC BY 4.0"
ATTRIBUTION = (
    "IDRiD: Porwal et al., Indian Diabetic Retinopathy Image Dataset (IDRiD), Data 3(3):25, 2018"
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")


def normalise_id(text: str) -> str:
    """``idrid_48``, ``IDRiD_48`` or ``48`` -> ``IDRiD_48``."""
    m = re.fullmatch(r"(?:idrid[_-]?)?0*(\d{1,3})", text.strip(), flags=re.IGNORECASE)
    if not m:
        raise LesionPasteError(f"{text!r} is not an IDRiD id (expected e.g. idrid_48)")
    return f"IDRiD_{int(m.group(1)):02d}"


def segmentation_dir(root: Path) -> Path:
    """The ``A. Segmentation`` folder under ``root`` (or ``root`` itself)."""
    for candidate in (root / "A. Segmentation", root):
        if (candidate / "1. Original Images").is_dir():
            return candidate
    raise LesionPasteError(
        f"{root} does not look like the IDRiD tree: no 'A. Segmentation/1. Original Images' in it"
    )


def _files_by_lower_name(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for dirpath, _, names in os.walk(folder):
        for name in sorted(names):
            found.setdefault(name.lower(), Path(dirpath) / name)
    return found


def locate(root: Path, image_id: str, warn: Callable[[str], None]) -> tuple[Path, dict[str, Path]]:
    """Find ``IDRiD_NN``'s image and lesion masks; a missing lesion type only warns.

    The optic-disc masks (``_OD``) are anatomy and are never read.
    """
    seg = segmentation_dir(root)
    images = _files_by_lower_name(seg / "1. Original Images")
    image = next(
        (images[n] for n in (image_id.lower() + s for s in IMAGE_SUFFIXES) if n in images), None
    )
    if image is None:
        known = sorted(
            Path(p).stem for n, p in images.items() if re.fullmatch(r"idrid_\d+\.\w+", n)
        )
        hint = f"found {known[0]} .. {known[-1]} ({len(known)} images)" if known else "found none"
        raise LesionPasteError(
            f"unknown IDRiD id {image_id}: no {image_id}.jpg under {seg / '1. Original Images'} "
            f"({hint})"
        )
    masks_dir = seg / "2. All Segmentation Groundtruths"
    mask_files = _files_by_lower_name(masks_dir) if masks_dir.is_dir() else {}
    masks: dict[str, Path] = {}
    for t in FUNDUS_TYPES:
        name = next(
            (
                f"{image_id}_{t}{s}".lower()
                for s in (".tif", ".tiff", ".png")
                if f"{image_id}_{t}{s}".lower() in mask_files
            ),
            None,
        )
        if name is None:
            warn(f"{image_id}: no {FUNDUS_TYPE_NAMES[t]} ({t}) mask; going on without it")
        else:
            masks[t] = mask_files[name]
    return image, masks
