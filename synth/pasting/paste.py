"""MixUp pasting, eq. (1) of the paper, and placement inside the field of view."""

from __future__ import annotations

import cv2
import numpy as np


def mixup_paste(
    image: np.ndarray, patch: np.ndarray, mask: np.ndarray, y: int, x: int, lam: float
) -> None:
    """Paste ``patch`` into ``image`` at ``(y, x)`` in place, by eq. (1).

    Inside ``mask``: ``(1 - lam) * I + lam * L``, rounded to the nearest integer; outside it the
    image is not touched. ``lam = 1`` is a hard paste (the paper's "w.o. MixUp").

    Args:
        image: ``(H, W, C)`` ``uint8`` image, changed in place.
        patch: ``(h, w, C)`` ``float32`` lesion patch in [0, 255].
        mask: ``(h, w)`` boolean lesion mask.
        y: the top row of the paste, in pixels.
        x: the left column of the paste, in pixels.
        lam: λ, the lesion's weight in [0, 1].
    """
    h, w = mask.shape
    if h == w == 1:  # a one-pixel lesion: the same formula on one pixel, without masking
        blended = (1.0 - lam) * image[y, x].astype(np.float32) + lam * patch[0, 0]
        image[y, x] = np.clip(np.rint(blended), 0, 255).astype(image.dtype)
        return
    blend_inside(image, patch[mask], mask, y, x, lam)


def blend_inside(
    image: np.ndarray,
    values: np.ndarray,
    mask: np.ndarray,
    y: int,
    x: int,
    lam: float,
    weights: np.ndarray | None = None,
) -> None:
    """``mixup_paste`` given only the lesion's pixels inside its mask (``patch[mask]``).

    Args:
        image: ``(H, W, C)`` ``uint8`` image, changed in place.
        values: ``(K, C)`` ``float32`` lesion pixels in [0, 255], in the mask's row-major order.
        mask: ``(h, w)`` boolean lesion mask with ``K`` pixels set.
        y: the top row of the paste, in pixels.
        x: the left column of the paste, in pixels.
        lam: λ, the lesion's weight in [0, 1].
        weights: ``(K,)`` factors in [0, 1] on λ per pixel (a feathered edge,
            ``feathered_weights``), or None for λ everywhere (eq. (1)).
    """
    h, w = mask.shape
    target = image[y : y + h, x : x + w]
    if weights is None:
        blended = (1.0 - lam) * target[mask].astype(np.float32) + lam * values
    else:
        a = (lam * weights).astype(np.float32)[:, None]
        blended = (1.0 - a) * target[mask].astype(np.float32) + a * values
    np.rint(blended, out=blended)
    target[mask] = np.minimum(np.maximum(blended, 0, out=blended), 255, out=blended)


def feathered_weights(mask: np.ndarray, sigma: float) -> np.ndarray:
    """A feathered edge inside a lesion's mask: the mask blurred by a Gaussian of ``sigma``
    pixels, divided by its largest value inside the mask, so that the lesion's most interior
    pixel keeps the full λ and its edge fades. Pixels outside the mask stay untouched, so the
    recorded mask still holds every changed pixel; a one-pixel lesion keeps its full λ.

    Args:
        mask: ``(h, w)`` boolean lesion mask with ``K`` pixels set.
        sigma: the Gaussian's standard deviation in pixels (``> 0``).

    Returns:
        ``(K,)`` ``float32`` weights in (0, 1], in the mask's row-major order.
    """
    pad = int(np.ceil(3 * sigma))
    canvas = np.pad(mask.astype(np.float32), pad)
    blurred = cv2.GaussianBlur(canvas, (0, 0), sigma)[
        pad : pad + mask.shape[0], pad : pad + mask.shape[1]
    ]
    inside = blurred[mask]
    return (inside / inside.max()).astype(np.float32)


def find_position(
    rng: np.random.Generator,
    mask: np.ndarray,
    region: np.ndarray,
    tries: int = 100,
    region_pixels: np.ndarray | None = None,
) -> tuple[int, int] | None:
    """A top-left position where every pixel of ``mask`` falls inside ``region``.

    Positions are drawn uniformly over the image; the first that fits is taken. Returns None
    when none of ``tries`` draws fits (the lesion is larger than the free field of view).
    For a one-pixel mask, given ``region_pixels`` (``np.argwhere(region)``), one draw among
    them gives the same uniform distribution without rejections.

    Args:
        rng: the image's ``place`` generator.
        mask: ``(h, w)`` boolean lesion mask.
        region: ``(H, W)`` boolean field of view.
        tries: how many positions to draw before giving up.
        region_pixels: ``(K, 2)`` ``(y, x)`` of ``region``'s pixels, or None.

    Returns:
        ``(y, x)`` of the top-left corner, or None when no draw fits.
    """
    h, w = mask.shape
    if h == w == 1 and region_pixels is not None and len(region_pixels):
        y, x = region_pixels[int(rng.integers(len(region_pixels)))]
        return int(y), int(x)
    height, width = region.shape
    if h > height or w > width:
        return None
    for _ in range(tries):
        y = int(rng.integers(0, height - h + 1))
        x = int(rng.integers(0, width - w + 1))
        if region[y : y + h, x : x + w][mask].all():
            return y, x
    return None


def blend_pixels(
    image: np.ndarray, ys: np.ndarray, xs: np.ndarray, values: np.ndarray, lams: np.ndarray
) -> None:
    """Paste one-pixel lesions by eq. (1), in order, in place: ``mixup_paste`` of each 1x1
    lesion in turn, done as a few vectorised steps.

    A pixel that several of them hit is blended again over its earlier result, in their order:
    each round takes the first remaining lesion of every pixel. The arithmetic is
    ``mixup_paste``'s (float32, rounded to the nearest integer), so the result is identical.

    Args:
        image: ``(H, W, C)`` ``uint8`` image, changed in place.
        ys: ``(K,)`` rows of the lesions.
        xs: ``(K,)`` columns.
        values: ``(K, C)`` ``float32`` lesion pixels in [0, 255].
        lams: ``(K,)`` λ of each lesion (float64, as drawn).
    """
    remaining = np.arange(len(ys))
    width = image.shape[1]
    while remaining.size:
        flat = ys[remaining] * width + xs[remaining]
        _, first = np.unique(flat, return_index=True)
        take = remaining[np.sort(first)]
        y, x = ys[take], xs[take]
        lam = lams[take]
        blended = (1.0 - lam).astype(np.float32)[:, None] * image[y, x].astype(np.float32)
        blended += lam.astype(np.float32)[:, None] * values[take]
        image[y, x] = np.clip(np.rint(blended), 0, 255).astype(image.dtype)
        keep = np.ones(remaining.size, bool)
        keep[np.sort(first)] = False
        remaining = remaining[keep]
