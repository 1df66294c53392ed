"""Lesion extraction: 8-connected components of a lesion mask, each cut from its source."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Lesion:
    """One isolated lesion region.

    Attributes:
        patch: ``(h, w, C)`` ``uint8`` pixels of the (preprocessed) source inside the bounding box.
        mask: ``(h, w)`` boolean mask of exactly this connected component (not of the box).
        lesion_type: type name, e.g. ``"MA"`` or ``"COVID"``.
        source: index of the source image in the bank.
        bbox: ``(y, x, h, w)`` of the box in the source image.
        area: number of pixels in the component.
    """

    patch: np.ndarray
    mask: np.ndarray
    lesion_type: str
    source: int
    bbox: tuple[int, int, int, int]
    area: int


def extract_lesions(
    image: np.ndarray,
    mask: np.ndarray,
    lesion_type: str,
    source: int,
    region: np.ndarray | None = None,
) -> tuple[list[Lesion], int]:
    """Cut every 8-connected component of ``mask`` out of ``image``.

    Components come in OpenCV's label order (raster order of their first pixel), so the
    result is deterministic. ``image`` is ``(H, W, C)``; ``mask`` is ``(H, W)`` boolean.
    When ``region`` (the field of view kept by preprocessing) is given, components with any
    pixel outside it are left out: their patches would hold blanked-out pixels.

    Returns:
        The lesions, and how many components were left out for lying outside ``region``.
    """
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.view(np.uint8), connectivity=8, ltype=cv2.CV_32S
    )
    outside = np.zeros(count, bool)
    if region is not None:
        outside[np.unique(labels[~region])] = True
    outside[0] = True  # the background
    lesions = []
    for label in np.flatnonzero(~outside):
        x, y, w, h, area = (int(v) for v in stats[label])
        component = labels[y : y + h, x : x + w] == label
        lesions.append(
            Lesion(
                patch=image[y : y + h, x : x + w].copy(),
                mask=component,
                lesion_type=lesion_type,
                source=source,
                bbox=(y, x, h, w),
                area=area,
            )
        )
    return lesions, int(outside.sum()) - 1
