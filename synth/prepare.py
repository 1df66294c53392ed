"""Normal images made ready for pasting: the bank's recipe, a square crop, the output size,
and the field of view where lesions may land. Pure functions of arrays."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from lesionpaste.recipes import (
    Disc,
    GrahamRecipe,
    Recipe,
    WindowRecipe,
    disc_mask,
    estimate_fundus_disc,
    graham,
    window_hu,
)


@dataclass
class Prepared:
    """A preprocessed normal image and what pasting needs to know about it.

    Attributes:
        image: ``(H, W, C)`` ``uint8``: the normal twin exactly as written.
        region: ``(H, W)`` boolean field of view; every pasted lesion lies wholly inside it.
        fov_radius: fundus radius in output pixels (fundus), else None.
        pixel_spacing: ``[row_mm, col_mm]`` of output pixels (CT), else None.
    """

    image: np.ndarray
    region: np.ndarray = field(repr=False)
    fov_radius: float | None = None
    pixel_spacing: list[float] | None = None


def crop_square(image: np.ndarray, disc: Disc, fill: int = 0) -> tuple[np.ndarray, Disc]:
    """The square of side ``2 * radius`` around the disc (padded with ``fill`` where it
    leaves the photograph), and the disc in the crop's coordinates."""
    side = max(1, round(2 * disc.radius))
    x0, y0 = round(disc.cx - (side - 1) / 2), round(disc.cy - (side - 1) / 2)
    h, w = image.shape[:2]
    top, left = max(0, -y0), max(0, -x0)
    bottom, right = max(0, y0 + side - h), max(0, x0 + side - w)
    inner = image[max(0, y0) : min(h, y0 + side), max(0, x0) : min(w, x0 + side)]
    crop = cv2.copyMakeBorder(
        inner, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(fill,) * 4
    )
    return crop.reshape(side, side, image.shape[2]), Disc(disc.cx - x0, disc.cy - y0, disc.radius)


def resize_square(image: np.ndarray, disc: Disc, size: int) -> tuple[np.ndarray, Disc]:
    """Resize a square crop to ``size`` pixels (area averaging when shrinking)."""
    side = image.shape[0]
    if size <= 0 or size == side:
        return image, disc
    k = size / side
    interpolation = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    out = cv2.resize(image, (size, size), interpolation=interpolation)
    out = out.reshape(size, size, image.shape[2])
    return out, Disc((disc.cx + 0.5) * k - 0.5, (disc.cy + 0.5) * k - 0.5, disc.radius * k)


def prepare_fundus(raw: np.ndarray, recipe: Recipe, size: int) -> Prepared:
    """Crop a fundus photograph to its disc, resize it to ``size`` (0 keeps the resolution)
    and apply the recipe.

    Graham's recipe is applied after resizing, as Graham's own code rescaled every image to a
    fixed radius first: its blur is relative to the radius, so the result equals applying it at
    native resolution up to resampling (tested), at a fraction of the cost.
    """
    disc = estimate_fundus_disc(raw)
    crop, disc = crop_square(raw, disc)
    image, disc = resize_square(crop, disc, size)
    fraction = 1.0
    if isinstance(recipe, GrahamRecipe):
        image = graham(image, disc, recipe)
        fraction = recipe.disc_fraction
    return Prepared(
        image=image, region=disc_mask(image.shape[:2], disc, fraction), fov_radius=disc.radius
    )


def ct_thresholds(recipe: Recipe) -> tuple[int, int]:
    """Grey levels for "inside the body" (> -500 HU) and "air-filled lung" (< -400 HU)."""
    if isinstance(recipe, WindowRecipe):
        body, lung = window_hu(np.array([-500.0, -400.0]), recipe)
        return int(body), int(lung)
    return 64, 80  # 8-bit slices exported with a lung window


def ct_region(pixels: np.ndarray, recipe: Recipe) -> np.ndarray:
    """The lungs of an axial CT slice (air-filled pixels inside the body), or the body when
    no lung is found: where lung lesions may be pasted."""
    body_level, lung_level = ct_thresholds(recipe)
    body = (pixels > body_level).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(body, connectivity=8)
    if count <= 1:
        return np.ones(pixels.shape, bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    body = (labels == largest).astype(np.uint8)
    # fill the body's holes (the lungs among them): flood the outside from a padded border
    padded = cv2.copyMakeBorder(body, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    outside = padded.copy()
    cv2.floodFill(outside, None, (0, 0), 1)
    filled = (padded | (1 - outside))[1:-1, 1:-1].astype(bool)
    lungs = filled & (pixels < lung_level)
    lungs = cv2.morphologyEx(lungs.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    if lungs.sum() >= 0.01 * pixels.size:
        return lungs.astype(bool)
    return filled


def prepare_ct(
    pixels: np.ndarray, recipe: Recipe, size: int, pixel_spacing: list[float] | None
) -> Prepared:
    """Window HU (an 8-bit slice is taken as windowed already and kept), resize to ``size``
    square, and find the lungs."""
    in_hu = isinstance(recipe, WindowRecipe) and pixels.dtype != np.uint8
    grey = window_hu(pixels, recipe) if in_hu else pixels
    h, w = grey.shape[:2]
    if size > 0 and (h, w) != (size, size):
        interpolation = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
        grey = cv2.resize(grey, (size, size), interpolation=interpolation)
        if pixel_spacing:
            pixel_spacing = [pixel_spacing[0] * h / size, pixel_spacing[1] * w / size]
    grey = np.ascontiguousarray(grey.reshape(grey.shape[0], grey.shape[1]))
    return Prepared(
        image=grey[:, :, None], region=ct_region(grey, recipe), pixel_spacing=pixel_spacing
    )
