"""Lesion augmentation (paper Fig. 1B, Table 1): pure functions over a patch and its mask.

Every random number is drawn by ``draw_augmentation`` from the image's own generator, in a
fixed order and whether or not an operation is switched on, so that switching one operation
off (the ablations of Table 1) leaves every other draw, lesion and position unchanged.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    """Which operations run, and their ranges. Defaults: the paper's five, no colour."""

    flip: bool = True
    rotation: bool = True
    resize: bool = True
    contrast: bool = True
    brightness: bool = True
    colour: bool = False
    resize_range: tuple[float, float] = (0.75, 1.25)
    contrast_range: tuple[float, float] = (0.75, 1.25)
    brightness_range: tuple[float, float] = (0.8, 1.2)
    hue_shift: float = 0.05
    saturation_range: tuple[float, float] = (0.75, 1.25)

    def to_dict(self) -> dict:
        """The configuration as a JSON-ready dict (recorded in ``dataset.json``).

        Returns:
            Every field by name (ranges as tuples, which JSON writes as lists).
        """
        return asdict(self)


@dataclass(frozen=True)
class AugmentDraw:
    """The drawn parameters of one lesion's augmentation (identity where switched off)."""

    flip_h: bool = False
    flip_v: bool = False
    angle: float = 0.0
    scale: float = 1.0
    contrast: float = 1.0
    brightness: float = 1.0
    hue: float = 0.0
    saturation: float = 1.0


def draw_augmentations(
    rng: np.random.Generator, config: AugmentConfig, n: int
) -> list[AugmentDraw]:
    """Draw ``n`` lesions' parameters at once: every parameter is always drawn (same draws
    whatever is switched on), then only the enabled ones are kept.

    Args:
        rng: the image's ``augment`` generator.
        config: which operations are on, and their ranges.
        n: how many lesions.

    Returns:
        ``n`` draws, identity values for the operations switched off.
    """
    flips = rng.random((n, 2)) < 0.5
    angles = rng.uniform(0.0, 360.0, n)
    scales = rng.uniform(*config.resize_range, n)
    contrasts = rng.uniform(*config.contrast_range, n)
    brightnesses = rng.uniform(*config.brightness_range, n)
    hues = rng.uniform(-config.hue_shift, config.hue_shift, n)
    saturations = rng.uniform(*config.saturation_range, n)
    return [
        AugmentDraw(
            flip_h=bool(flips[i, 0]) and config.flip,
            flip_v=bool(flips[i, 1]) and config.flip,
            angle=float(angles[i]) if config.rotation else 0.0,
            scale=float(scales[i]) if config.resize else 1.0,
            contrast=float(contrasts[i]) if config.contrast else 1.0,
            brightness=float(brightnesses[i]) if config.brightness else 1.0,
            hue=float(hues[i]) if config.colour else 0.0,
            saturation=float(saturations[i]) if config.colour else 1.0,
        )
        for i in range(n)
    ]


def draw_augmentation(rng: np.random.Generator, config: AugmentConfig) -> AugmentDraw:
    """One lesion's parameters (see ``draw_augmentations``).

    Args:
        rng: the image's ``augment`` generator.
        config: which operations are on, and their ranges.

    Returns:
        The lesion's draw.
    """
    return draw_augmentations(rng, config, 1)[0]


def _stack(patch: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Patch channels and the mask as one float32 image, so one resample serves both."""
    return np.concatenate([patch.astype(np.float32), mask[:, :, None].astype(np.float32)], axis=2)


def _unstack(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.ascontiguousarray(stack[:, :, :-1]), _threshold(stack[:, :, -1])


def _threshold(coverage: np.ndarray) -> np.ndarray:
    """Pixels at least half covered; the most covered one when none is (never empty)."""
    mask = coverage >= 0.5
    if not mask.any():
        mask.flat[int(np.argmax(coverage))] = True
    return mask


def _resize_stack(stack: np.ndarray, factor: float) -> np.ndarray:
    h, w = stack.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    if size == (w, h):
        return stack
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    return cv2.resize(stack, size, interpolation=interpolation).reshape(size[1], size[0], -1)


def _rotate_stack(stack: np.ndarray, angle: float) -> np.ndarray:
    if angle % 360.0 == 0.0:
        return stack
    # one pixel of margin: the patch repeats its edge, the mask is 0 beyond the lesion
    stack = cv2.copyMakeBorder(stack, 1, 1, 1, 1, cv2.BORDER_REPLICATE).reshape(
        stack.shape[0] + 2, stack.shape[1] + 2, -1
    )
    stack[[0, -1], :, -1] = 0.0
    stack[:, [0, -1], -1] = 0.0
    h, w = stack.shape[:2]
    rad = math.radians(angle)
    cos, sin = abs(math.cos(rad)), abs(math.sin(rad))
    # rounded first: cos(90°) is 6e-17, not 0, and would grow the canvas by a whole pixel
    new_w = math.ceil(round(w * cos + h * sin, 9))
    new_h = math.ceil(round(w * sin + h * cos, 9))
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, 1.0)
    matrix[0, 2] += (new_w - w) / 2.0
    matrix[1, 2] += (new_h - h) / 2.0
    out = cv2.warpAffine(
        stack, matrix, (new_w, new_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return out.reshape(new_h, new_w, -1)


def resize_lesion(
    patch: np.ndarray, mask: np.ndarray, factor: float
) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic resize. Shrinking averages over each output pixel's footprint (area), so a
    lesion far smaller than a pixel fades instead of vanishing; the mask is the pixels at least
    half covered, or the most covered one when none is (a lesion never disappears).

    Args:
        patch: ``(h, w, C)`` lesion patch (``uint8`` or ``float32``).
        mask: ``(h, w)`` boolean lesion mask.
        factor: the scale factor (``> 0``).

    Returns:
        ``(patch, mask)``: the resized ``(h', w', C)`` ``float32`` patch and its ``(h', w')``
        boolean mask, never empty.
    """
    return _unstack(_resize_stack(_stack(patch, mask), factor))


def rotate_lesion(
    patch: np.ndarray, mask: np.ndarray, angle: float
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate by ``angle`` degrees on a canvas grown to hold the whole rotated patch.

    Args:
        patch: ``(h, w, C)`` lesion patch (``uint8`` or ``float32``).
        mask: ``(h, w)`` boolean lesion mask.
        angle: the rotation in degrees, counter-clockwise.

    Returns:
        ``(patch, mask)``: the rotated ``(h', w', C)`` ``float32`` patch and its ``(h', w')``
        boolean mask, never empty.
    """
    return _unstack(_rotate_stack(_stack(patch, mask), angle))


def adjust_intensity(
    patch: np.ndarray, mask: np.ndarray, contrast: float, brightness: float
) -> np.ndarray:
    """Contrast about the lesion's mean intensity, then brightness as a gain (float32).

    Args:
        patch: ``(h, w, C)`` lesion patch.
        mask: ``(h, w)`` boolean lesion mask (the pixels whose mean is kept).
        contrast: the contrast factor (1 leaves it).
        brightness: the brightness gain (1 leaves it).

    Returns:
        ``(h, w, C)`` ``float32`` patch, clipped to [0, 255].
    """
    out = patch.astype(np.float32, copy=False)
    if contrast == 1.0 and brightness == 1.0:
        return out
    mean = out[mask].mean(axis=0) if contrast != 1.0 else 0.0
    # (p - m) * c + m, then * b, as one affine map
    out = out * (contrast * brightness) + mean * (1.0 - contrast) * brightness
    return np.clip(out, 0.0, 255.0, out=out)


def distort_colour(patch: np.ndarray, hue: float, saturation: float) -> np.ndarray:
    """Shift hue by ``hue`` turns and scale saturation; brightness (value) is untouched.

    Args:
        patch: ``(h, w, C)`` patch with values in [0, 255]; only RGB (``C == 3``) is changed.
        hue: the hue shift, in turns (1 = 360 degrees).
        saturation: the saturation factor.

    Returns:
        ``(h, w, 3)`` ``float32`` RGB patch in [0, 255]; ``patch`` itself when it is not RGB
        or nothing changes.
    """
    if patch.shape[2] != 3 or (hue == 0.0 and saturation == 1.0):
        return patch
    hsv = cv2.cvtColor(np.clip(patch, 0, 255).astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0] + hue * 360.0) % 360.0
    hsv[..., 1] = np.clip(hsv[..., 1] * saturation, 0.0, 1.0)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0


def one_pixel_lesion(mean: np.ndarray, draw: AugmentDraw) -> np.ndarray:
    """A lesion shrunk to one pixel: its patch's mean (what area resampling gives), then the
    brightness gain and the colour draw (flips, rotation and contrast about its own mean leave
    a single pixel as it is).

    Args:
        mean: ``(C,)`` ``float64`` mean of the patch over its whole box.
        draw: the lesion's drawn parameters.

    Returns:
        ``(1, 1, C)`` ``float32`` pixel in [0, 255].
    """
    pixel = np.clip(mean * draw.brightness, 0.0, 255.0).astype(np.float32).reshape(1, 1, -1)
    return distort_colour(pixel, draw.hue, draw.saturation)


def augment_lesion(
    patch: np.ndarray, mask: np.ndarray, draw: AugmentDraw, base_scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Apply one draw: flip, resize (by ``base_scale * draw.scale``; the base matches the
    source's scale to the target's), rotation, contrast, brightness, colour.

    Patch and mask are resampled together (one float32 image); the mask is then the pixels at
    least half covered. A lesion shrunk to a single pixel (common at 256x256: a microaneurysm
    is about one pixel there) takes a short path with the same result: its pixel is the mean of
    the patch (what area resampling gives), and flips, rotation and contrast about its own
    mean leave a single pixel unchanged.

    Args:
        patch: ``(h, w, C)`` ``uint8`` lesion patch from the bank.
        mask: ``(h, w)`` boolean lesion mask.
        draw: the lesion's drawn parameters.
        base_scale: the source-to-target scale factor (``base_scales``).

    Returns:
        ``(patch, mask)``: a ``float32`` ``(h', w', C)`` patch in [0, 255] and its
        ``(h', w')`` boolean mask, never empty.
    """
    factor = base_scale * draw.scale
    h, w = mask.shape
    if max(1, round(w * factor)) == 1 and max(1, round(h * factor)) == 1:
        mean = patch.reshape(-1, patch.shape[2]).mean(axis=0, dtype=np.float64)
        return one_pixel_lesion(mean, draw), np.ones((1, 1), bool)
    if draw.flip_h:
        patch, mask = patch[:, ::-1], mask[:, ::-1]
    if draw.flip_v:
        patch, mask = patch[::-1], mask[::-1]
    stack = _rotate_stack(_resize_stack(_stack(patch, mask), factor), draw.angle)
    patch, mask = _unstack(stack)
    patch = adjust_intensity(patch, mask, draw.contrast, draw.brightness)
    return distort_colour(patch, draw.hue, draw.saturation), mask
