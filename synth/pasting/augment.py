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

from lesionpaste.errors import LesionPasteError


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

    def __post_init__(self) -> None:
        """Refuse ranges the operations cannot use (one place for these rules).

        Raises:
            LesionPasteError: a range that is reversed, not finite, or not above 0, or a hue
                shift outside [0, 0.5].
        """
        for name in ("resize_range", "contrast_range", "brightness_range", "saturation_range"):
            low, high = getattr(self, name)
            if not 0 < low <= high < float("inf"):  # False for NaN
                raise LesionPasteError(
                    f"augmentation {name} ({low:g}, {high:g}): expected 0 < LOW <= HIGH, finite"
                )
        if not 0 <= self.hue_shift <= 0.5:
            raise LesionPasteError(f"augmentation hue_shift {self.hue_shift:g}: expected [0, 0.5]")

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


@dataclass(frozen=True)
class DrawTable:
    """``n`` lesions' drawn parameters as columns (identity values where switched off), for
    the hot path that would otherwise build one ``AugmentDraw`` per lesion.

    Attributes:
        flip_h: ``(n,)`` bool.
        flip_v: ``(n,)`` bool.
        angle: ``(n,)`` float64 degrees.
        scale: ``(n,)`` float64 resize factors.
        contrast: ``(n,)`` float64.
        brightness: ``(n,)`` float64.
        hue: ``(n,)`` float64 turns.
        saturation: ``(n,)`` float64.
    """

    flip_h: np.ndarray
    flip_v: np.ndarray
    angle: np.ndarray
    scale: np.ndarray
    contrast: np.ndarray
    brightness: np.ndarray
    hue: np.ndarray
    saturation: np.ndarray

    @classmethod
    def of(cls, draws: list[AugmentDraw]) -> DrawTable:
        """The columns of some draws.

        Args:
            draws: the lesions' draws.

        Returns:
            Their table, one row each.
        """
        return cls(*(np.array([getattr(d, f) for d in draws]) for f in cls.__dataclass_fields__))

    def take(self, rows: np.ndarray) -> DrawTable:
        """Some rows of the table.

        Args:
            rows: integer row indices.

        Returns:
            A table of those rows, in that order.
        """
        return DrawTable(*(getattr(self, f)[rows] for f in self.__dataclass_fields__))

    def draw(self, i: int) -> AugmentDraw:
        """The ``i``-th lesion's parameters as one ``AugmentDraw``.

        Args:
            i: the lesion's position in the table.

        Returns:
            Its draw.
        """
        return AugmentDraw(
            flip_h=bool(self.flip_h[i]),
            flip_v=bool(self.flip_v[i]),
            angle=float(self.angle[i]),
            scale=float(self.scale[i]),
            contrast=float(self.contrast[i]),
            brightness=float(self.brightness[i]),
            hue=float(self.hue[i]),
            saturation=float(self.saturation[i]),
        )


def draw_table(rng: np.random.Generator, config: AugmentConfig, n: int) -> DrawTable:
    """Draw ``n`` lesions' parameters at once: every parameter is always drawn (same draws
    whatever is switched on), then the ones switched off are set to their identity.

    Args:
        rng: the image's ``augment`` generator.
        config: which operations are on, and their ranges.
        n: how many lesions.

    Returns:
        The columns of the ``n`` draws.
    """
    flips = rng.random((n, 2)) < 0.5
    angles = rng.uniform(0.0, 360.0, n)
    scales = rng.uniform(*config.resize_range, n)
    contrasts = rng.uniform(*config.contrast_range, n)
    brightnesses = rng.uniform(*config.brightness_range, n)
    hues = rng.uniform(-config.hue_shift, config.hue_shift, n)
    saturations = rng.uniform(*config.saturation_range, n)

    def kept(values: np.ndarray, on: bool, identity) -> np.ndarray:
        return values if on else np.full(n, identity, values.dtype)

    return DrawTable(
        flip_h=kept(flips[:, 0], config.flip, False),
        flip_v=kept(flips[:, 1], config.flip, False),
        angle=kept(angles, config.rotation, 0.0),
        scale=kept(scales, config.resize, 1.0),
        contrast=kept(contrasts, config.contrast, 1.0),
        brightness=kept(brightnesses, config.brightness, 1.0),
        hue=kept(hues, config.colour, 0.0),
        saturation=kept(saturations, config.colour, 1.0),
    )


def draw_augmentations(
    rng: np.random.Generator, config: AugmentConfig, n: int
) -> list[AugmentDraw]:
    """Draw ``n`` lesions' parameters at once (``draw_table``), one ``AugmentDraw`` each.

    Args:
        rng: the image's ``augment`` generator.
        config: which operations are on, and their ranges.
        n: how many lesions.

    Returns:
        ``n`` draws, identity values for the operations switched off.
    """
    table = draw_table(rng, config, n)
    return [table.draw(i) for i in range(n)]


def draw_augmentation(rng: np.random.Generator, config: AugmentConfig) -> AugmentDraw:
    """One lesion's parameters (see ``draw_augmentations``).

    Args:
        rng: the image's ``augment`` generator.
        config: which operations are on, and their ranges.

    Returns:
        The lesion's draw.
    """
    return draw_augmentations(rng, config, 1)[0]


def stack_lesion(patch: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Patch channels and the mask as one float32 image, so one resample serves both.

    Args:
        patch: ``(h, w, C)`` lesion patch.
        mask: ``(h, w)`` boolean lesion mask.

    Returns:
        ``(h, w, C + 1)`` ``float32``: the patch, then the mask as 0 or 1.
    """
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
    stack[0, :, -1] = stack[-1, :, -1] = 0.0
    stack[:, 0, -1] = stack[:, -1, -1] = 0.0
    h, w = stack.shape[:2]
    rad = math.radians(angle)  # angle * (pi / 180), as cv2.getRotationMatrix2D computes it
    alpha, beta = math.cos(rad), math.sin(rad)
    cos, sin = abs(alpha), abs(beta)
    # rounded first: cos(90°) is 6e-17, not 0, and would grow the canvas by a whole pixel
    new_w = math.ceil(round(w * cos + h * sin, 9))
    new_h = math.ceil(round(w * sin + h * cos, 9))
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    # cv2.getRotationMatrix2D((cx, cy), angle, 1), then centred on the grown canvas
    matrix = np.array(
        [
            [alpha, beta, (1 - alpha) * cx - beta * cy + (new_w - w) / 2.0],
            [-beta, alpha, beta * cx + (1 - alpha) * cy + (new_h - h) / 2.0],
        ]
    )
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
    return _unstack(_resize_stack(stack_lesion(patch, mask), factor))


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
    return _unstack(_rotate_stack(stack_lesion(patch, mask), angle))


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
    return _gain(out, _mean_inside(out[mask]) if contrast != 1.0 else 0.0, contrast, brightness)


def _mean_inside(values: np.ndarray) -> np.ndarray:
    """``(K, C)`` float32 pixels' mean per channel, summed and divided as ``ndarray.mean``."""
    return np.add.reduce(values, axis=0) / len(values)


def _gain(values: np.ndarray, mean, contrast: float, brightness: float) -> np.ndarray:
    """``((p - mean) * contrast + mean) * brightness`` as one affine map, clipped to [0, 255]:
    elementwise, so the same on a whole patch or on its pixels inside the mask."""
    out = values * (contrast * brightness) + mean * (1.0 - contrast) * brightness
    return np.minimum(np.maximum(out, 0.0, out=out), 255.0, out=out)


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
    return _shift_hsv(patch, np.float32(hue * 360.0), np.float32(saturation))


def _shift_hsv(patch: np.ndarray, degrees, saturation) -> np.ndarray:
    """Hue plus ``degrees``, saturation times ``saturation`` (float32 scalars, or arrays that
    broadcast against ``patch[..., 0]``)."""
    hsv = cv2.cvtColor(np.clip(patch, 0, 255).astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0] + degrees) % np.float32(360.0)
    hsv[..., 1] = np.clip(hsv[..., 1] * saturation, 0.0, 1.0)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * np.float32(255.0)


def one_pixel_lesions(
    means: np.ndarray, brightness: np.ndarray, hue: np.ndarray, saturation: np.ndarray
) -> np.ndarray:
    """Lesions shrunk to one pixel, many at once: each patch's mean (what area resampling
    gives), then its brightness gain and its colour draw (flips, rotation and contrast about
    its own mean leave a single pixel as it is).

    Args:
        means: ``(K, C)`` ``float64`` mean of each patch over its whole box.
        brightness: ``(K,)`` brightness gains.
        hue: ``(K,)`` hue shifts, in turns.
        saturation: ``(K,)`` saturation factors.

    Returns:
        ``(K, C)`` ``float32`` pixels in [0, 255].
    """
    pixels = np.clip(means * brightness[:, None], 0.0, 255.0).astype(np.float32)
    coloured = (hue != 0.0) | (saturation != 1.0)
    if pixels.shape[1] == 3:
        # one conversion per pixel: OpenCV's HSV conversions round a pixel's last bit by
        # where it sits in the image, so a column of pixels could differ from each alone
        for i in np.flatnonzero(coloured).tolist():
            one = pixels[i].reshape(1, 1, 3)
            pixels[i] = _shift_hsv(one, np.float32(hue[i] * 360.0), np.float32(saturation[i]))[0, 0]
    return pixels


def one_pixel_lesion(mean: np.ndarray, draw: AugmentDraw) -> np.ndarray:
    """A lesion shrunk to one pixel (``one_pixel_lesions`` of one).

    Args:
        mean: ``(C,)`` ``float64`` mean of the patch over its whole box.
        draw: the lesion's drawn parameters.

    Returns:
        ``(1, 1, C)`` ``float32`` pixel in [0, 255].
    """
    pixel = one_pixel_lesions(
        mean.reshape(1, -1),
        np.array([draw.brightness]),
        np.array([draw.hue]),
        np.array([draw.saturation]),
    )
    return pixel.reshape(1, 1, -1)


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
    return augment_stacked(stack_lesion(patch, mask), draw, factor)


def augment_stacked(
    stack: np.ndarray, draw: AugmentDraw, factor: float
) -> tuple[np.ndarray, np.ndarray]:
    """``augment_lesion`` of a lesion already stacked (``stack_lesion``), by the total
    ``factor``: the same operations in the same order, so the same result. The stack is not
    changed, so one stack per bank lesion can serve every paste of it.

    Args:
        stack: ``(h, w, C + 1)`` ``float32`` patch and mask.
        draw: the lesion's drawn parameters.
        factor: the total scale factor (source-to-target times ``draw.scale``).

    Returns:
        ``(patch, mask)`` as ``augment_lesion`` returns them.
    """
    patch, mask = _unstack(_geometry(stack, draw, factor))
    patch = adjust_intensity(patch, mask, draw.contrast, draw.brightness)
    return distort_colour(patch, draw.hue, draw.saturation), mask


def augment_inside(
    stack: np.ndarray, draw: AugmentDraw, factor: float
) -> tuple[np.ndarray, np.ndarray]:
    """``augment_stacked``, keeping only the pixels inside the lesion's mask: all that a
    paste uses (``synth.pasting.paste.blend_inside``), for less work on the hot path. Every operation
    after the resampling is per pixel, so those pixels are the same as ``augment_stacked``'s.

    Args:
        stack: ``(h, w, C + 1)`` ``float32`` patch and mask.
        draw: the lesion's drawn parameters.
        factor: the total scale factor (source-to-target times ``draw.scale``).

    Returns:
        ``(values, mask)``: ``(K, C)`` ``float32`` pixels in [0, 255], ``patch[mask]`` of
        ``augment_stacked``, and its ``(h', w')`` boolean mask with ``K`` pixels set.
    """
    stack = _geometry(stack, draw, factor)
    mask = _threshold(stack[:, :, -1])
    if draw.hue != 0.0 or draw.saturation != 1.0:
        # OpenCV's HSV conversions round a pixel's last bit by where it sits in the image
        # (vector lanes or the scalar tail), so the colour path runs on the whole patch
        patch = adjust_intensity(stack[:, :, :-1], mask, draw.contrast, draw.brightness)
        return distort_colour(np.ascontiguousarray(patch), draw.hue, draw.saturation)[mask], mask
    values = stack[:, :, :-1][mask]
    contrast, brightness = draw.contrast, draw.brightness
    if contrast != 1.0 or brightness != 1.0:
        mean = _mean_inside(values) if contrast != 1.0 else 0.0
        values = _gain(values, mean, contrast, brightness)
    return values, mask


def _geometry(stack: np.ndarray, draw: AugmentDraw, factor: float) -> np.ndarray:
    """Flip, resize by ``factor`` and rotate a stacked lesion (a new array or ``stack``)."""
    if draw.flip_h:
        stack = stack[:, ::-1]
    if draw.flip_v:
        stack = stack[::-1]
    resized = _resize_stack(np.ascontiguousarray(stack), factor)
    return _rotate_stack(resized, draw.angle)
