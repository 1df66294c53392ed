"""An annotated source image, as every source reader hands it to the bank builder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lesionpaste.errors import LesionPasteError
from lesionpaste.idrid_files import LESION_TYPE_NAMES, LESION_TYPES

#: The fundus lesion types (IDRiD's, from ``lesionpaste.idrid_files``) and their names.
FUNDUS_TYPES = LESION_TYPES
FUNDUS_TYPE_NAMES = LESION_TYPE_NAMES


@dataclass
class AnnotatedImage:
    """One source image after preprocessing, with its lesion masks and provenance.

    Attributes:
        source_id: e.g. ``IDRiD_03`` or ``study_0255:z012``.
        image: ``(H, W, C)`` ``uint8``, preprocessed with the bank's recipe.
        masks: lesion type -> ``(H, W)`` boolean mask (types without a mask are absent).
        files: provenance, ``{"role": "image" | "mask:MA" | ..., "path": ..., "sha256": ...}``.
        fov: fundus field of view ``{"cx", "cy", "radius"}`` in pixels, or None.
        pixel_spacing: ``[row_mm, col_mm]`` for CT, or None when unknown.
        region: boolean mask of the field of view, used for the colour histogram.
        licence, attribution: for the dataset cards of what is made from the bank.
    """

    source_id: str
    image: np.ndarray
    masks: dict[str, np.ndarray]
    files: list[dict]
    fov: dict | None = None
    pixel_spacing: list[float] | None = None
    region: np.ndarray | None = field(default=None, repr=False)
    licence: str = "unknown"
    attribution: str = "unknown"

    def describe(self) -> dict:
        """The JSON-ready provenance record stored in the bank's ``sources`` attribute.

        Returns:
            ``{"id", "shape", "files", "fov", "pixel_spacing", "licence", "attribution"}``,
            ``shape`` being ``[H, W]`` of the preprocessed image.
        """
        h, w = self.image.shape[:2]
        return {
            "id": self.source_id,
            "shape": [h, w],
            "files": self.files,
            "fov": self.fov,
            "pixel_spacing": self.pixel_spacing,
            "licence": self.licence,
            "attribution": self.attribution,
        }


def check_mask_shape(mask: np.ndarray, image_shape: tuple[int, ...], mask_path, image_path) -> None:
    """Refuse a mask whose size differs from its image's.

    Args:
        mask: ``(H, W)`` lesion mask.
        image_shape: the image's shape, ``(H, W)`` or ``(H, W, C)``.
        mask_path: the mask file, named in the message.
        image_path: the image file, named in the message.

    Raises:
        LesionPasteError: the mask's height and width differ from the image's.
    """
    if mask.shape[:2] != tuple(image_shape[:2]):
        mh, mw = mask.shape[:2]
        ih, iw = image_shape[:2]
        raise LesionPasteError(
            f"{mask_path}: mask is {mw}x{mh} but its image {Path(image_path).name} is {iw}x{ih}; "
            "masks must have the image's size"
        )
