"""IDRiD: find an image and its lesion masks in the official segmentation tree.

The layout itself is read by ``lesionpaste.idrid_files`` (shared with the synthesizer, which
prepares IDRiD images and masks as an evaluation set); this adds the bank's warnings and the
licence and attribution recorded with every source.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lesionpaste import idrid_files
from lesionpaste.idrid_files import IMAGE_SUFFIXES, normalise_id, segmentation_dir

__all__ = ["ATTRIBUTION", "IMAGE_SUFFIXES", "LICENCE", "locate", "normalise_id", "segmentation_dir"]

LICENCE = "CC BY 4.0"
ATTRIBUTION = (
    "IDRiD: Porwal et al., Indian Diabetic Retinopathy Image Dataset (IDRiD), Data 3(3):25, 2018"
)


def locate(root: Path, image_id: str, warn: Callable[[str], None]) -> tuple[Path, dict[str, Path]]:
    """Find ``IDRiD_NN``'s image and lesion masks; a missing lesion type only warns.

    The optic-disc masks (``_OD``) are anatomy and are never read.

    Args:
        root: the IDRiD data root.
        image_id: a canonical id (``normalise_id``), e.g. ``IDRiD_48``.
        warn: called with a message for each lesion type that has no mask.

    Returns:
        ``(image, masks)``: the photograph's path and ``{lesion type: mask path}`` for the
        types found.

    Raises:
        LesionPasteError: ``root`` is not the IDRiD tree, or it has no such image.
    """
    image, masks = idrid_files.locate(root, image_id)
    for t in idrid_files.LESION_TYPES:
        if t not in masks:
            name = idrid_files.LESION_TYPE_NAMES[t]
            warn(f"{image_id}: no {name} ({t}) mask; going on without it")
    return image, masks
