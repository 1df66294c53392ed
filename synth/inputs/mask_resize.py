"""Resizing a lesion mask by area coverage, so that small lesions survive: a pixel of the
resized mask is lesion when lesion covers at least half of it, and every connected lesion
component of the source keeps at least the output pixel it covers most (a microaneurysm of a
4288x2848 photograph covers a fraction of one pixel at 256x256). Pure functions of arrays.

Coverage is exact area integration: output pixel ``j`` of ``n_out`` spans source coordinates
``[j * s, (j + 1) * s)`` with ``s = n_src / n_out``, the pixel-centre alignment OpenCV's
``resize`` gives the image (``INTER_AREA`` when shrinking is this very average).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

#: a pixel is lesion when at least this share of it is covered (less float rounding)
COVERED = 0.5 - 1e-6


def area_weights(n_src: int, n_out: int) -> np.ndarray:
    """The share of each output pixel that each source pixel covers, along one axis.

    Args:
        n_src: source pixels along the axis.
        n_out: output pixels along the axis.

    Returns:
        ``(n_out, n_src)`` ``float64``: row ``j`` holds the overlap of output pixel ``j`` with
        each source pixel, divided by the output pixel's length; each row sums to 1.
    """
    s = n_src / n_out
    starts = np.arange(n_out, dtype=np.float64)[:, None] * s
    pixels = np.arange(n_src, dtype=np.float64)[None, :]
    overlap = np.minimum(pixels + 1, starts + s) - np.maximum(pixels, starts)
    return np.clip(overlap, 0.0, None) / s


def area_coverage(mask: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    """How much of each output pixel the mask covers, by area.

    Args:
        mask: ``(H, W)`` boolean (or 0/1) mask.
        out_shape: ``(h, w)`` of the output.

    Returns:
        ``(h, w)`` ``float32`` coverage in [0, 1].
    """
    h, w = mask.shape[:2]
    oh, ow = out_shape
    values = mask.astype(np.float32)
    if oh <= h and ow <= w:  # shrinking: OpenCV's area average is exactly this, and fast
        return cv2.resize(values, (ow, oh), interpolation=cv2.INTER_AREA).reshape(oh, ow)
    rows, cols = area_weights(h, oh), area_weights(w, ow)
    return (rows @ values @ cols.T).astype(np.float32)


def _touched(start: int, length: int, n_src: int, n_out: int) -> tuple[int, int]:
    """The output pixels a run of source pixels ``[start, start + length)`` reaches."""
    s = n_src / n_out
    first = int(np.floor(start / s))
    last = int(np.ceil((start + length) / s))
    return max(0, first), min(n_out, max(last, first + 1))


def keep_components(mask: np.ndarray, resized: np.ndarray) -> np.ndarray:
    """Set, for every 8-connected lesion component of ``mask``, the output pixel it covers
    most, unless it already covers one by half or more (which ``resized`` then holds).

    Args:
        mask: ``(H, W)`` boolean source mask.
        resized: ``(h, w)`` boolean resized mask (coverage at least one half); updated.

    Returns:
        ``resized``, with each component's best-covered pixel set.
    """
    (h, w), (oh, ow) = mask.shape[:2], resized.shape[:2]
    left, top, width, height = cv2.boundingRect(np.ascontiguousarray(mask, dtype=np.uint8))
    if width == 0 or height == 0:
        return resized
    inner = np.ascontiguousarray(mask[top : top + height, left : left + width], dtype=np.uint8)
    _, labels = cv2.connectedComponents(inner, connectivity=8)
    rows, cols = area_weights(h, oh), area_weights(w, ow)
    for c, (ys, xs) in enumerate(ndimage.find_objects(labels), start=1):
        y, x = top + ys.start, left + xs.start
        bh, bw = ys.stop - ys.start, xs.stop - xs.start
        r0, r1 = _touched(y, bh, h, oh)
        c0, c1 = _touched(x, bw, w, ow)
        component = (labels[ys, xs] == c).astype(np.float64)
        cover = rows[r0:r1, y : y + bh] @ component @ cols[c0:c1, x : x + bw].T
        if cover.max() < COVERED:
            i, j = np.unravel_index(int(np.argmax(cover)), cover.shape)
            resized[r0 + i, c0 + j] = True
    return resized


def resize_mask(mask: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    """A lesion mask at another size: lesion where covered by half or more, and every lesion
    component keeping at least its best-covered pixel.

    Args:
        mask: ``(H, W)`` boolean mask.
        out_shape: ``(h, w)`` of the output.

    Returns:
        ``(h, w)`` boolean mask (a copy when the size is unchanged).
    """
    mask = np.asarray(mask, dtype=bool)
    if tuple(mask.shape[:2]) == tuple(out_shape):
        return mask.copy()
    resized = area_coverage(mask, out_shape) >= COVERED
    return keep_components(mask, resized)
