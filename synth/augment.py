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


def draw_augmentation(rng: np.random.Generator, config: AugmentConfig) -> AugmentDraw:
    """Draw all parameters (always the same number of draws), then keep the enabled ones."""
    flips = rng.random(2) < 0.5
    angle = float(rng.uniform(0.0, 360.0))
    scale = float(rng.uniform(*config.resize_range))
    contrast = float(rng.uniform(*config.contrast_range))
    brightness = float(rng.uniform(*config.brightness_range))
    hue = float(rng.uniform(-config.hue_shift, config.hue_shift))
    saturation = float(rng.uniform(*config.saturation_range))
    return AugmentDraw(
        flip_h=bool(flips[0]) and config.flip,
        flip_v=bool(flips[1]) and config.flip,
        angle=angle if config.rotation else 0.0,
        scale=scale if config.resize else 1.0,
        contrast=contrast if config.contrast else 1.0,
        brightness=brightness if config.brightness else 1.0,
        hue=hue if config.colour else 0.0,
        saturation=saturation if config.colour else 1.0,
    )


def resize_lesion(
    patch: np.ndarray, mask: np.ndarray, factor: float
) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic resize. Shrinking averages over each output pixel's footprint (area), so a
    lesion far smaller than a pixel fades instead of vanishing; the mask is the pixels at least
    half covered, or the most covered one when none is (a lesion never disappears)."""
    h, w = mask.shape
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    if size == (w, h):
        return patch.astype(np.float32), mask
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    out = cv2.resize(patch.astype(np.float32), size, interpolation=interpolation)
    coverage = cv2.resize(mask.astype(np.float32), size, interpolation=interpolation)
    out = out.reshape(size[1], size[0], patch.shape[2])
    return out, _threshold(coverage)


def _threshold(coverage: np.ndarray) -> np.ndarray:
    mask = coverage >= 0.5
    if not mask.any():
        mask = np.zeros_like(mask)
        mask.flat[int(np.argmax(coverage))] = True
    return mask


def rotate_lesion(
    patch: np.ndarray, mask: np.ndarray, angle: float
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate by ``angle`` degrees on a canvas grown to hold the whole rotated patch."""
    if angle % 360.0 == 0.0:
        return patch, mask
    h, w = mask.shape
    rad = math.radians(angle)
    cos, sin = abs(math.cos(rad)), abs(math.sin(rad))
    new_w, new_h = math.ceil(w * cos + h * sin), math.ceil(w * sin + h * cos)
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, 1.0)
    matrix[0, 2] += (new_w - w) / 2.0
    matrix[1, 2] += (new_h - h) / 2.0
    rotated = cv2.warpAffine(
        patch, matrix, (new_w, new_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    ).reshape(new_h, new_w, patch.shape[2])
    coverage = cv2.warpAffine(
        mask.astype(np.float32),
        matrix,
        (new_w, new_h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return rotated, _threshold(coverage)


def adjust_intensity(
    patch: np.ndarray, mask: np.ndarray, contrast: float, brightness: float
) -> np.ndarray:
    """Contrast about the lesion's mean intensity, then brightness as a gain (float32)."""
    out = patch.astype(np.float32)
    if contrast != 1.0:
        mean = out[mask].mean(axis=0)
        out = (out - mean) * contrast + mean
    if brightness != 1.0:
        out = out * brightness
    return np.clip(out, 0.0, 255.0)


def distort_colour(patch: np.ndarray, hue: float, saturation: float) -> np.ndarray:
    """Shift hue by ``hue`` turns and scale saturation; brightness (value) is untouched."""
    if patch.shape[2] != 3 or (hue == 0.0 and saturation == 1.0):
        return patch
    hsv = cv2.cvtColor(np.clip(patch, 0, 255).astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0] + hue * 360.0) % 360.0
    hsv[..., 1] = np.clip(hsv[..., 1] * saturation, 0.0, 1.0)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0


def augment_lesion(
    patch: np.ndarray, mask: np.ndarray, draw: AugmentDraw, base_scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Apply one draw: flip, resize (by ``base_scale * draw.scale``; the base matches the
    source's scale to the target's), rotation, contrast, brightness, colour.

    Returns a float32 ``(h, w, C)`` patch in [0, 255] and its boolean mask.
    """
    if draw.flip_h:
        patch, mask = patch[:, ::-1], mask[:, ::-1]
    if draw.flip_v:
        patch, mask = patch[::-1], mask[::-1]
    patch, mask = resize_lesion(
        np.ascontiguousarray(patch), np.ascontiguousarray(mask), base_scale * draw.scale
    )
    patch, mask = rotate_lesion(patch, mask, draw.angle)
    patch = adjust_intensity(patch, mask, draw.contrast, draw.brightness)
    return distort_colour(patch, draw.hue, draw.saturation), mask
