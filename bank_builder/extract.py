"""Lesion extraction: 8-connected components of a lesion mask, each cut from its source."""

from __future__ import annotations

import cv2
import numpy as np

from lesionpaste.bank_format import Lesion


def component_boxes(
    labels: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bounding boxes and areas of labelled components, from the mask's pixels alone.

    Equivalent to OpenCV's component statistics but proportional to the number of lesion
    pixels rather than the image size (lesion masks are sparse).

    Args:
        labels: ``(H, W)`` integer component labels (``cv2.connectedComponents``).
        mask: ``(H, W)`` boolean mask whose pixels the components cover.

    Returns:
        ``labels`` present (ascending), ``(K, 4)`` boxes ``y, x, h, w``, areas, and for each
        mask pixel (grouped by component) its ``(y, x)``.
    """
    points = cv2.findNonZero(mask.view(np.uint8))
    if points is None:
        empty = np.zeros(0, np.int64)
        return empty, np.zeros((0, 4), np.int64), empty, np.zeros((0, 2), np.int64)
    points = points.reshape(-1, 2)  # (N, 1, 2) in OpenCV 4, (N, 2) in OpenCV 5
    xs, ys = points[:, 0], points[:, 1]
    which = labels[ys, xs]
    order = np.argsort(which, kind="stable")
    which, ys, xs = which[order], ys[order], xs[order]
    starts = np.flatnonzero(np.r_[True, which[1:] != which[:-1]])
    y0, y1 = np.minimum.reduceat(ys, starts), np.maximum.reduceat(ys, starts)
    x0, x1 = np.minimum.reduceat(xs, starts), np.maximum.reduceat(xs, starts)
    boxes = np.stack([y0, x0, y1 - y0 + 1, x1 - x0 + 1], axis=1).astype(np.int64)
    areas = np.diff(np.r_[starts, len(which)])
    return which[starts], boxes, areas, np.stack([ys, xs], axis=1)


def extract_lesions(
    image: np.ndarray,
    mask: np.ndarray,
    lesion_type: str,
    source: int,
    region: np.ndarray | None = None,
) -> tuple[list[Lesion], int]:
    """Cut every 8-connected component of ``mask`` out of ``image``.

    Components come in raster order of their first pixel (OpenCV's label order), so the
    result is deterministic. ``image`` is ``(H, W, C)``; ``mask`` is ``(H, W)`` boolean.
    When ``region`` (the field of view kept by preprocessing) is given, components with any
    pixel outside it are left out: their patches would hold blanked-out pixels.

    Args:
        image: ``(H, W, C)`` ``uint8`` preprocessed source image.
        mask: ``(H, W)`` boolean lesion mask of one type.
        lesion_type: the type name given to every lesion, e.g. ``"MA"``.
        source: the source's index in the bank.
        region: ``(H, W)`` boolean field of view, or None to keep every component.

    Returns:
        The lesions, and how many components were left out for lying outside ``region``.
    """
    # Label only the box around the mask's pixels: lesion masks are sparse.
    x0, y0, bw, bh = cv2.boundingRect(mask.view(np.uint8))
    if bw == 0:  # an empty mask (OpenCV must not be given an empty image)
        return [], 0
    crop = np.ascontiguousarray(mask[y0 : y0 + bh, x0 : x0 + bw])
    _, labels = cv2.connectedComponents(crop.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    present, boxes, areas, pixels = component_boxes(labels, crop)
    keep = np.ones(len(present), bool)
    if region is not None and len(present):
        starts = np.r_[0, np.cumsum(areas)[:-1]]
        inside = region[pixels[:, 0] + y0, pixels[:, 1] + x0]
        keep = np.logical_and.reduceat(inside, starts)
    lesions = []
    for label, (y, x, h, w), area in zip(present[keep], boxes[keep], areas[keep]):
        lesions.append(
            Lesion(
                patch=image[y0 + y : y0 + y + h, x0 + x : x0 + x + w].copy(),
                mask=labels[y : y + h, x : x + w] == label,
                lesion_type=lesion_type,
                source=source,
                bbox=(int(y0 + y), int(x0 + x), int(h), int(w)),
                area=int(area),
            )
        )
    return lesions, int((~keep).sum())
