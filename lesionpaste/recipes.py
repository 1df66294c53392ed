"""Preprocessing recipes: Ben Graham's fundus recipe and CT windowing (pure functions).

A bank records the recipe its lesions were cut under (``Recipe.to_dict``); whatever the lesions
are pasted onto must go through the same recipe (``apply_recipe``), so both live here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from lesionpaste.errors import LesionPasteError


@dataclass(frozen=True)
class Disc:
    """A fundus field of view: centre ``(cx, cy)`` and radius, in pixels."""

    cx: float
    cy: float
    radius: float


def _extent(profile: np.ndarray) -> tuple[int, int] | None:
    """First and last index where ``profile`` exceeds a tenth of its mean (Graham's test)."""
    inside = np.flatnonzero(profile > profile.mean() / 10.0)
    if inside.size == 0:
        return None
    return int(inside[0]), int(inside[-1])


def estimate_fundus_disc(image: np.ndarray) -> Disc:
    """Estimate the fundus disc of a colour fundus photograph.

    The radius comes from the horizontal extent of the bright region along a band through the
    image centre (as in Graham's recipe), the centre from the horizontal and vertical extents.
    Discs cut off at the top and bottom (IDRiD, many EyePACS cameras) keep their true radius
    because the horizontal extent is never cut.

    Args:
        image: ``(H, W, 3)`` RGB or ``(H, W)`` grey fundus photograph.

    Returns:
        The disc's centre and radius, in pixels.

    Raises:
        LesionPasteError: when no bright region is found (a blank image).
    """
    h, w = image.shape[:2]
    pixels = image if image.ndim == 3 else image[:, :, None]
    band = max(1, h // 40)
    rows = pixels[max(0, h // 2 - band) : h // 2 + band + 1]
    x_profile = rows.sum(axis=(0, 2), dtype=np.float64)
    x_ext = _extent(x_profile)
    if x_ext is None:  # nothing above a tenth of the mean: a blank (all-zero) band
        raise LesionPasteError("no fundus found: the image is blank")
    x0, x1 = x_ext
    cx = (x0 + x1) / 2.0
    cband = max(1, w // 40)
    cols = pixels[:, max(0, int(cx) - cband) : int(cx) + cband + 1]
    y_ext = _extent(cols.sum(axis=(1, 2), dtype=np.float64))
    y0, y1 = y_ext if y_ext is not None else (0, h - 1)
    return Disc(cx=cx, cy=(y0 + y1) / 2.0, radius=(x1 - x0 + 1) / 2.0)


def disc_mask(shape: tuple[int, int], disc: Disc, fraction: float = 1.0) -> np.ndarray:
    """Boolean mask of the pixels within ``fraction * radius`` of the disc centre.

    Args:
        shape: ``(H, W)`` of the mask.
        disc: the field of view, in pixels.
        fraction: the share of the radius to keep.

    Returns:
        ``(H, W)`` boolean mask, True inside the (rasterised) circle.
    """
    mask = np.zeros(shape, np.uint8)
    cv2.circle(
        mask,
        (round(disc.cx), round(disc.cy)),
        round(disc.radius * fraction),
        1,
        thickness=-1,
        lineType=cv2.LINE_8,
    )
    return mask.astype(bool)


def low_pass_factor(sigma: float, h: int, w: int) -> int:
    """How much ``gaussian_low_pass`` downscales an ``h`` x ``w`` image for ``sigma``: as much
    as keeps the reduced sigma at 4 px or more and the reduced image 16 px a side or more, and
    at most 16; 1 (an exact blur) for small sigmas and small images.

    Args:
        sigma: the Gaussian's standard deviation, in pixels.
        h: the image height, in pixels.
        w: the image width, in pixels.

    Returns:
        The integer downscaling factor, 1 to 16.
    """
    return int(max(1, min(16, sigma // 4, min(h, w) // 16)))


def gaussian_low_pass(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with a large sigma, computed at reduced scale and upsampled.

    A Gaussian of sigma ``s`` is a low-pass filter, so blurring a ``1/f`` downscaled copy with
    ``s/f`` and upsampling gives the same result up to rounding at a fraction of the cost
    (sigma ~ 57-143 px on full IDRiD images takes 11-26 s directly). The factor keeps the
    reduced sigma at 4 px or more, so small images are blurred exactly.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` image (``uint8`` for the recipes).
        sigma: the Gaussian's standard deviation, in pixels of ``image``.

    Returns:
        The blurred image, same shape and dtype.
    """
    h, w = image.shape[:2]
    factor = low_pass_factor(sigma, h, w)
    if factor == 1:
        return cv2.GaussianBlur(image, (0, 0), sigma)
    small = cv2.resize(image, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / factor)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class GrahamRecipe:
    """Ben Graham's Kaggle DR recipe at native resolution.

    ``out = gain * (image - blur(image, sigma_fraction * radius)) + offset``, saturated to
    ``uint8``; pixels beyond ``disc_fraction * radius`` are set to ``offset``.
    """

    name: str = field(default="graham", init=False)
    sigma_fraction: float = 1.0 / 30.0
    gain: float = 4.0
    offset: float = 128.0
    disc_fraction: float = 0.9


@dataclass(frozen=True)
class WindowRecipe:
    """CT windowing of Hounsfield units to ``uint8`` (paper: level -300 HU, width 1400 HU)."""

    name: str = field(default="window", init=False)
    level: float = -300.0
    width: float = 1400.0


def parse_window(spec: str) -> WindowRecipe:
    """``"LEVEL,WIDTH"`` in HU (e.g. ``"-300,1400"``) as a ``WindowRecipe``.

    Args:
        spec: ``"LEVEL,WIDTH"``, both numbers in HU.

    Returns:
        The window recipe.

    Raises:
        LesionPasteError: not two numbers, or a width that is not positive.
    """
    try:
        level, width = (float(v) for v in spec.split(","))
    except ValueError:
        raise LesionPasteError(
            f"--window {spec!r}: expected LEVEL,WIDTH in HU, e.g. -300,1400"
        ) from None
    if not width > 0:
        raise LesionPasteError(f"--window {spec!r}: the width must be positive")
    return WindowRecipe(level=level, width=width)


@dataclass(frozen=True)
class NoRecipe:
    """Images are used as they are."""

    name: str = field(default="none", init=False)


Recipe = GrahamRecipe | WindowRecipe | NoRecipe
_RECIPES = {cls.name: cls for cls in (GrahamRecipe, WindowRecipe, NoRecipe)}


def recipe_to_dict(recipe: Recipe) -> dict:
    """The recipe as a JSON-ready dict (stored in the bank).

    Args:
        recipe: any recipe.

    Returns:
        Its fields, ``name`` included.
    """
    return asdict(recipe)


def recipe_from_dict(data: dict) -> Recipe:
    """Rebuild a recipe from its stored dict, refusing unknown names or fields.

    Args:
        data: a dict from ``recipe_to_dict`` (e.g. a bank's ``preprocess`` attribute).

    Returns:
        The recipe.

    Raises:
        LesionPasteError: an unknown recipe name, or fields the recipe does not have.
    """
    name = data.get("name")
    cls = _RECIPES.get(name)
    if cls is None:
        raise LesionPasteError(
            f"unknown preprocessing recipe {name!r} (known: {', '.join(_RECIPES)})"
        )
    try:
        return cls(**{k: v for k, v in data.items() if k != "name"})
    except TypeError as exc:
        raise LesionPasteError(f"malformed {name} recipe: {exc}") from None


def graham(image: np.ndarray, disc: Disc, recipe: GrahamRecipe = GrahamRecipe()) -> np.ndarray:
    """Apply Ben Graham's recipe to an RGB ``uint8`` fundus image with a known disc.

    Args:
        image: ``(H, W, 3)`` RGB ``uint8`` fundus photograph.
        disc: its field of view, in pixels.
        recipe: the recipe's parameters.

    Returns:
        ``(H, W, 3)`` ``uint8``: the sharpened image, ``offset`` outside the disc.
    """
    blur = gaussian_low_pass(image, recipe.sigma_fraction * disc.radius)
    sharpened = cv2.addWeighted(image, recipe.gain, blur, -recipe.gain, recipe.offset, dst=blur)
    out = np.full_like(image, round(recipe.offset))
    inside = disc_mask(image.shape[:2], disc, recipe.disc_fraction).view(np.uint8)
    cv2.copyTo(sharpened, inside, out)
    return out


def window_hu(hu: np.ndarray, recipe: WindowRecipe = WindowRecipe()) -> np.ndarray:
    """Map Hounsfield units to ``uint8``: ``level - width/2`` -> 0, ``level + width/2`` -> 255.

    Args:
        hu: an array in Hounsfield units, any shape.
        recipe: the window's level and width, in HU.

    Returns:
        The windowed ``uint8`` array, same shape (rounded and clipped to 0..255).
    """
    low = recipe.level - recipe.width / 2.0
    scaled = (hu.astype(np.float32) - low) * (255.0 / recipe.width)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def apply_recipe(recipe: Recipe, image: np.ndarray, disc: Disc | None = None) -> np.ndarray:
    """Apply any recipe: Graham needs the fundus ``disc``, windowing needs HU input.

    Args:
        recipe: the recipe to apply.
        image: ``(H, W, 3)`` RGB ``uint8`` for Graham, HU values for windowing, anything for
            no recipe.
        disc: the fundus disc for Graham; None estimates it from ``image``.

    Returns:
        The preprocessed image (``uint8`` for Graham and windowing; ``image`` itself for
        no recipe).

    Raises:
        LesionPasteError: Graham's recipe on a blank image (no disc found).
    """
    if isinstance(recipe, GrahamRecipe):
        if disc is None:
            disc = estimate_fundus_disc(image)
        return graham(image, disc, recipe)
    if isinstance(recipe, WindowRecipe):
        return window_hu(image, recipe)
    return image
