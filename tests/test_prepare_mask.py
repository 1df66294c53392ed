"""A ground-truth mask prepared exactly like its image (lesionpaste/preparation.py, synth/inputs/prepare_mask.py): a known square is
drawn into a generated photograph (or CT slice) and into its mask, both are prepared, and the
prepared mask must be exactly where the square lands in the prepared image, to the pixel."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lesionpaste.errors import LesionPasteError
from lesionpaste.preparation import (
    crop_square,
    fundus_geometry,
    prepare_ct,
    prepare_fundus,
    resize_square,
)
from lesionpaste.recipes import GrahamRecipe, NoRecipe, estimate_fundus_disc
from lesionpaste.synth.inputs.prepare_mask import prepare_mask

BACKGROUND, SQUARE = 100, 200


def _photograph(h: int, w: int, radius: int) -> np.ndarray:
    """A uniform grey disc on black: the square's pixels are the only other value."""
    image = np.zeros((h, w, 3), np.uint8)
    cv2.circle(image, (w // 2, h // 2), radius, (BACKGROUND,) * 3, -1)
    return image


def _with_square(image: np.ndarray, y: int, x: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """The image with a square of ``SQUARE`` at (y, x), and the square's mask."""
    image = image.copy()
    image[y : y + side, x : x + side] = SQUARE
    mask = np.zeros(image.shape[:2], bool)
    mask[y : y + side, x : x + side] = True
    return image, mask


def _coverage(prepared_image: np.ndarray) -> np.ndarray:
    """How much of each prepared pixel the square covers, read from the image itself (an area
    average of BACKGROUND and SQUARE)."""
    grey = prepared_image[:, :, 0].astype(np.float64)
    return (grey - BACKGROUND) / (SQUARE - BACKGROUND)


def _assert_aligned(mask: np.ndarray, image: np.ndarray, band: float = 0.03) -> None:
    """The mask is lesion exactly where the square covers half of a pixel or more: checked on
    every pixel not within ``band`` of one half (uint8 rounding of the image)."""
    cover = _coverage(image)
    clear = np.abs(cover - 0.5) > band
    assert mask.any() and clear.mean() > 0.9
    np.testing.assert_array_equal(mask[clear], (cover >= 0.5)[clear])


def test_the_image_path_is_unchanged_by_the_geometry():
    """prepare_fundus gives the bytes of the crop_square + resize_square it always did."""
    raw = _photograph(300, 400, 130)
    raw[140:150, 180:190] = (250, 30, 30)
    disc = estimate_fundus_disc(raw)
    crop, crop_disc = crop_square(raw, disc)
    for size in (0, 64, 333):
        expected, _ = resize_square(crop, crop_disc, size)
        prepared = prepare_fundus(raw, NoRecipe(), size)
        np.testing.assert_array_equal(prepared.image, expected)
        g = prepared.geometry
        assert g == fundus_geometry(raw.shape, disc, size) and g.source_shape == (300, 400)


@pytest.mark.parametrize("factor", [1, 3, 5])
def test_a_fundus_mask_lands_exactly_on_its_square_at_an_integer_scale(factor):
    raw = _photograph(300, 400, 127)  # a disc 255 pixels across: the crop's side
    g = prepare_fundus(raw, NoRecipe(), 0).geometry
    assert g.height == g.width == 255
    # on the output grid, and clear of the bands through the centre the disc is estimated on
    y, x = g.top + factor * 10, g.left + factor * 15
    image, mask = _with_square(raw, y, x, factor * 9)
    prepared = prepare_fundus(image, NoRecipe(), 255 // factor)
    assert prepared.geometry == g.__class__(g.source_shape, g.top, g.left, 255, 255,
                                            (255 // factor,) * 2)  # fmt: skip
    out = prepare_mask(mask, prepared)
    np.testing.assert_array_equal(out, (prepared.image == SQUARE).all(axis=2))
    assert out.sum() == 81 and out[10:19, 15:24].all()


@pytest.mark.parametrize("y, x, side", [(131, 177, 23), (140, 201, 30), (98, 150, 17)])
def test_a_fundus_mask_lands_on_its_square_at_any_scale(y, x, side):
    image, mask = _with_square(_photograph(300, 400, 130), y, x, side)
    prepared = prepare_fundus(image, NoRecipe(), 83)  # shrinks by about 3.13
    out = prepare_mask(mask, prepared)
    assert out.shape == (83, 83)
    _assert_aligned(out, prepared.image)


def test_one_source_pixel_of_misalignment_would_show():
    image, mask = _with_square(_photograph(300, 400, 130), 131, 177, 23)
    prepared = prepare_fundus(image, NoRecipe(), 83)
    shifted = prepare_mask(np.roll(mask, 1, axis=1), prepared)
    cover = _coverage(prepared.image)
    clear = np.abs(cover - 0.5) > 0.03
    assert (shifted[clear] != (cover >= 0.5)[clear]).any()


def test_graham_cuts_the_mask_to_the_disc_it_keeps():
    raw = _photograph(300, 400, 130)
    mask = np.zeros(raw.shape[:2], bool)
    mask[140:160, 60:90] = True  # straddles the 0.9-radius disc's left edge (x = 83)
    prepared = prepare_fundus(raw, GrahamRecipe(), 100)
    out = prepare_mask(mask, prepared)
    assert out.any() and not (out & ~prepared.region).any()
    assert prepare_mask(mask, prepare_fundus(raw, NoRecipe(), 100)).sum() > out.sum()


@pytest.mark.parametrize("shape, size", [((128, 192), 64), ((221, 190), 100), ((180, 150), 64)])
def test_a_ct_mask_lands_on_its_square(shape, size):
    h, w = shape
    grey = np.full(shape, BACKGROUND, np.uint8)
    grey[40:90, 30:81] = SQUARE
    mask = grey == SQUARE
    prepared = prepare_ct(grey, NoRecipe(), size, None)
    out = prepare_mask(mask, prepared)
    assert out.shape == (size, size)
    if (h % size, w % size) == (0, 0):  # an integer scale: exact
        np.testing.assert_array_equal(out, prepared.image[:, :, 0] == SQUARE)
    else:
        _assert_aligned(out, prepared.image)


def test_a_ct_slice_kept_at_its_size_keeps_its_mask():
    grey = np.full((50, 60), BACKGROUND, np.uint8)
    mask = np.zeros((50, 60), bool)
    mask[10:12, 5:9] = True
    np.testing.assert_array_equal(prepare_mask(mask, prepare_ct(grey, NoRecipe(), 0, None)), mask)


def test_a_mask_of_another_size_is_refused():
    prepared = prepare_ct(np.zeros((50, 60), np.uint8), NoRecipe(), 32, None)
    with pytest.raises(LesionPasteError, match="mask is 59x50 but its image is 60x50"):
        prepare_mask(np.zeros((50, 59), bool), prepared)
