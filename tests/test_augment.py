"""Directed tests of the lesion augmentation (synth/pasting/augment.py): the drawn parameters (the
documented stream, each switch), and every resampling path through ``augment_lesion``:
area shrinking, linear growing, the half-covered mask rule, the rotation canvas and centre, the
intensity map's order and clipping, and the colour path's types."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lesionpaste.synth.pasting.augment import (
    AugmentConfig,
    AugmentDraw,
    augment_lesion,
    draw_augmentation,
    draw_augmentations,
    resize_lesion,
    rotate_lesion,
)

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate

ALL_ON = AugmentConfig(colour=True, hue_shift=0.1)
ALL_OFF = AugmentConfig(
    flip=False, rotation=False, resize=False, contrast=False, brightness=False, colour=False
)


def test_the_draws_are_the_documented_stream_in_its_fixed_order():
    n = 50
    draws = draw_augmentations(np.random.default_rng(11), ALL_ON, n)
    rng = np.random.default_rng(11)
    flips = rng.random((n, 2)) < 0.5
    angles = rng.uniform(0.0, 360.0, n)
    scales = rng.uniform(0.75, 1.25, n)
    contrasts = rng.uniform(0.75, 1.25, n)
    brightnesses = rng.uniform(0.8, 1.2, n)
    hues = rng.uniform(-0.1, 0.1, n)
    saturations = rng.uniform(0.75, 1.25, n)
    for i, d in enumerate(draws):
        assert (d.flip_h, d.flip_v) == (bool(flips[i, 0]), bool(flips[i, 1]))
        assert (d.angle, d.scale, d.contrast) == (angles[i], scales[i], contrasts[i])
        assert (d.brightness, d.hue, d.saturation) == (brightnesses[i], hues[i], saturations[i])
    assert {d.flip_h for d in draws} == {True, False} and {d.flip_v for d in draws} == {True, False}
    assert min(d.hue for d in draws) < 0 < max(d.hue for d in draws)


def test_switched_off_operations_draw_the_identity_and_leave_the_others_unchanged():
    assert draw_augmentations(np.random.default_rng(3), ALL_OFF, 20) == [AugmentDraw()] * 20
    on = draw_augmentations(np.random.default_rng(3), ALL_ON, 20)
    for name, field in [("flip", "flip_h"), ("rotation", "angle"), ("resize", "scale"),
                        ("contrast", "contrast"), ("brightness", "brightness"), ("colour", "hue")]:  # fmt: skip
        config = AugmentConfig(**{**ALL_ON.to_dict(), name: False})
        off = draw_augmentations(np.random.default_rng(3), config, 20)
        identity = getattr(AugmentDraw(), field)
        assert all(getattr(d, field) == identity for d in off), name
        for other in ("angle", "scale", "contrast", "brightness", "saturation"):
            if other != field and not (name == "colour" and other == "saturation"):
                assert [getattr(d, other) for d in off] == [getattr(d, other) for d in on]


def test_shrinking_averages_each_output_pixels_footprint():
    rng = np.random.default_rng(0)
    patch = rng.uniform(0, 255, (8, 8, 3)).astype(np.float32)
    out, mask = augment_lesion(patch, np.ones((8, 8), bool), AugmentDraw(scale=0.25))
    blocks = patch.reshape(2, 4, 2, 4, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(out, blocks, atol=1e-3)
    assert mask.shape == (2, 2) and mask.all()
    assert out.dtype == np.float32


def test_growing_interpolates_linearly():
    ramp = np.tile(np.array([0.0, 60.0, 120.0, 180.0], np.float32)[None, :, None], (4, 1, 1))
    out, mask = augment_lesion(ramp, np.ones((4, 4), bool), AugmentDraw(scale=1.5))
    assert out.shape == (6, 6, 1) and mask.all()
    np.testing.assert_allclose(out[2, :, 0], [0, 30, 70, 110, 150, 180], atol=1e-3)


def test_a_thin_lesion_keeps_at_least_one_pixel_along_each_axis():
    patch = np.full((8, 2, 1), 90.0, np.float32)
    out, mask = augment_lesion(patch, np.ones((8, 2), bool), AugmentDraw(scale=0.25))
    assert out.shape == (2, 1, 1) and mask.shape == (2, 1)
    out, mask = augment_lesion(
        patch.transpose(1, 0, 2), np.ones((2, 8), bool), AugmentDraw(scale=0.25)
    )
    assert out.shape == (1, 2, 1) and mask.shape == (1, 2)


def test_the_mask_keeps_pixels_exactly_half_covered():
    mask = np.array([[True, False, True, True]])  # halves to coverage 0.5 and 1.0
    patch = np.full((2, 4, 1), 100.0, np.float32)
    _, out = augment_lesion(patch, np.repeat(mask, 2, axis=0), AugmentDraw(scale=0.5))
    assert out.tolist() == [[True, True]]


def test_a_lesion_thinner_than_half_a_pixel_keeps_its_most_covered_pixel():
    mask = np.zeros((1, 8), bool)
    mask[0, 7] = True  # coverage 0 then 0.25 after shrinking to 2 pixels
    patch = np.full((1, 8, 1), 100.0, np.float32)
    _, out = augment_lesion(patch, mask, AugmentDraw(scale=0.25))
    assert out.tolist() == [[False, True]]


def test_a_full_turn_changes_nothing():
    rng = np.random.default_rng(1)
    patch = rng.uniform(0, 255, (4, 6, 3)).astype(np.float32)
    mask = np.ones((4, 6), bool)
    for angle in (0.0, 360.0, 720.0):
        out, out_mask = augment_lesion(patch, mask, AugmentDraw(angle=angle))
        np.testing.assert_array_equal(out, patch)
        np.testing.assert_array_equal(out_mask, mask)


def test_a_half_and_a_quarter_turn_turn_about_the_centre_on_a_canvas_with_a_margin():
    rng = np.random.default_rng(2)
    patch = rng.uniform(0, 255, (2, 4, 3)).astype(np.float32)
    mask = np.ones((2, 4), bool)
    half, half_mask = augment_lesion(patch, mask, AugmentDraw(angle=180.0))
    assert half.shape == (4, 6, 3)  # one pixel of margin each side
    np.testing.assert_allclose(half[1:-1, 1:-1], patch[::-1, ::-1], atol=1e-3)
    assert half_mask[1:-1, 1:-1].all() and not half_mask[0].any() and not half_mask[:, 0].any()
    quarter, quarter_mask = augment_lesion(patch, mask, AugmentDraw(angle=90.0))
    assert quarter.shape == (6, 4, 3)  # the canvas turns with the patch: 4 wide, 6 tall
    np.testing.assert_allclose(quarter[1:-1, 1:-1], np.rot90(patch), atol=1e-3)
    assert quarter_mask[1:-1, 1:-1].all() and not quarter_mask[0].any()


def test_an_oblique_turn_grows_the_canvas_to_hold_the_whole_patch():
    patch = np.full((4, 4, 3), 200.0, np.float32)
    out, mask = augment_lesion(patch, np.ones((4, 4), bool), AugmentDraw(angle=45.0))
    side = math.ceil(6 * (math.cos(math.pi / 4) + math.sin(math.pi / 4)))  # 4 + 2 margin
    assert out.shape == (side, side, 3) == (9, 9, 3)
    # the patch's edge repeats into the margin, so a flat lesion stays flat where it is lesion
    np.testing.assert_allclose(out[mask], 200.0, atol=1e-3)
    assert mask[4, 4] and not mask[0, 0] and 12 <= mask.sum() <= 25


def test_contrast_and_brightness_compose_as_documented():
    patch = np.array([[[40.0], [60.0], [80.0], [100.0]]], np.float32).reshape(1, 4, 1)
    mask = np.ones((1, 4), bool)
    out, _ = augment_lesion(patch, mask, AugmentDraw(contrast=2.0, brightness=1.1))
    mean = 70.0
    np.testing.assert_allclose(out[..., 0], ((patch[..., 0] - mean) * 2.0 + mean) * 1.1, atol=1e-3)
    assert out.dtype == np.float32


def test_the_intensity_map_is_clipped_to_the_pixel_range():
    patch = np.array([[0.0, 255.0, 255.0, 255.0]], np.float32).reshape(1, 4, 1)
    mask = np.ones((1, 4), bool)
    low, _ = augment_lesion(patch, mask, AugmentDraw(contrast=1.25))
    assert low.min() == 0.0 and low.max() == 255.0  # 0 would go below 0, 255 above 255
    high, _ = augment_lesion(patch, mask, AugmentDraw(brightness=1.2))
    assert high.max() == 255.0 and high.min() == 0.0


def test_the_colour_path_returns_float32_in_range():
    rng = np.random.default_rng(4)
    patch = rng.uniform(0, 255, (5, 5, 3)).astype(np.float32)
    out, _ = augment_lesion(patch, np.ones((5, 5), bool), AugmentDraw(hue=0.5, saturation=1.2))
    assert out.dtype == np.float32 and out.min() >= 0.0 and out.max() <= 255.0 + 1e-3
    red = np.zeros((2, 2, 3), np.float32)
    red[..., 0] = 200.0
    cyan, _ = augment_lesion(red, np.ones((2, 2), bool), AugmentDraw(hue=0.5))  # half a turn
    np.testing.assert_allclose(cyan[0, 0], [0.0, 200.0, 200.0], atol=0.05)
    over, _ = augment_lesion(red, np.ones((2, 2), bool), AugmentDraw(saturation=2.0))
    np.testing.assert_allclose(over[0, 0], [200.0, 0.0, 0.0], atol=0.05)  # saturation capped at 1
    pale = red.copy()
    pale[..., 1:] = 100.0
    paler, _ = augment_lesion(pale, np.ones((2, 2), bool), AugmentDraw(saturation=0.5))
    np.testing.assert_allclose(paler[0, 0], [200.0, 150.0, 150.0], atol=0.05)


@pytest.mark.parametrize("shape", [(1, 1), (1, 3), (3, 1), (2, 2)])
def test_a_lesion_shrunk_to_one_pixel_is_its_mean_times_the_brightness(shape):
    rng = np.random.default_rng(5)
    patch = rng.uniform(0, 200, (*shape, 3)).astype(np.float32)
    scale = 0.4 if max(shape) > 1 else 1.0
    draw = AugmentDraw(scale=scale, brightness=1.1, flip_h=True, angle=30.0, contrast=1.2)
    out, mask = augment_lesion(patch, np.ones(shape, bool), draw)
    assert out.shape == (1, 1, 3) and mask.tolist() == [[True]]
    np.testing.assert_allclose(out[0, 0], patch.reshape(-1, 3).mean(axis=0) * 1.1, rtol=1e-5)


def test_a_lesion_one_pixel_wide_but_longer_is_not_taken_for_one_pixel():
    patch = np.zeros((1, 4, 1), np.float32)
    patch[0, 3] = 200.0
    out, mask = augment_lesion(patch, np.ones((1, 4), bool), AugmentDraw(scale=1.0, flip_h=True))
    assert out.shape == (1, 4, 1) and out[0, 0, 0] == 200.0 and mask.all()
    out, _ = augment_lesion(patch, np.ones((1, 4), bool), AugmentDraw(scale=0.5))
    assert out.shape == (1, 2, 1)
    kept, _ = augment_lesion(patch, np.ones((1, 4), bool), AugmentDraw(scale=0.5), base_scale=2.0)
    assert kept.shape == (1, 4, 1)  # the factor is base_scale * scale
    tall, _ = augment_lesion(patch.reshape(4, 1, 1), np.ones((4, 1), bool), AugmentDraw(scale=0.5))
    assert tall.shape == (2, 1, 1)
    grown, _ = augment_lesion(patch[:, :1], np.ones((1, 1), bool), AugmentDraw(scale=2.0))
    assert grown.shape == (2, 2, 1)  # one pixel grown to two is no longer the one-pixel path


def test_rotation_grows_the_canvas_and_keeps_the_lesion_whole():
    patch = np.full((20, 30, 3), 100, np.uint8)
    mask = np.ones((20, 30), bool)
    _rotated, rmask = rotate_lesion(patch, mask, 45.0)
    assert rmask.shape[0] >= math.ceil((20 + 30) / math.sqrt(2)) - 1
    assert abs(int(rmask.sum()) - 600) < 0.1 * 600  # area kept: nothing clipped
    assert not rmask[0].all() and not rmask[:, 0].all()


def test_a_lesion_shrunk_below_one_pixel_leaves_one_pixel():
    patch = np.full((6, 6, 3), 50, np.uint8)
    mask = np.zeros((6, 6), bool)
    mask[2:4, 2:4] = True
    small, smask = resize_lesion(patch, mask, 0.1)
    assert smask.sum() == 1 and small.shape[:2] == smask.shape


def test_switching_an_augmentation_off_keeps_every_other_draw():
    on = draw_augmentation(np.random.default_rng(5), AugmentConfig())
    off = draw_augmentation(np.random.default_rng(5), AugmentConfig(rotation=False))
    assert off.angle == 0.0 and on.angle != 0.0
    assert (on.scale, on.contrast, on.brightness, on.flip_h) == (
        off.scale,
        off.contrast,
        off.brightness,
        off.flip_h,
    )
    colour_off = draw_augmentation(np.random.default_rng(5), AugmentConfig())
    assert colour_off.hue == 0.0 and colour_off.saturation == 1.0  # colour is off by default


def test_brightness_and_contrast_act_on_the_lesion_pixels():
    from lesionpaste.synth.pasting.augment import AugmentDraw

    patch = np.full((4, 4, 3), 100, np.uint8)
    mask = np.ones((4, 4), bool)
    out, _ = augment_lesion(patch, mask, AugmentDraw(brightness=1.2))
    assert np.allclose(out, 120)


def _random_lesion(rng, h, w, c=3):
    patch = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
    yy, xx = np.mgrid[:h, :w]
    mask = (yy - h / 2) ** 2 / (h / 2) ** 2 + (xx - w / 2) ** 2 / (w / 2) ** 2 <= 1.0
    return patch, mask


def test_the_inside_path_gives_the_whole_patchs_pixels_inside_its_mask():
    """augment_inside (the hot path) keeps only the mask's pixels; they must be exactly
    augment_lesion's, for every switch, with the stack left unchanged."""
    from lesionpaste.synth.pasting.augment import augment_inside, draw_table, stack_lesion

    rng = np.random.default_rng(5)
    for config in (ALL_ON, ALL_OFF, AugmentConfig(), AugmentConfig(contrast=False)):
        table = draw_table(np.random.default_rng(1), config, 30)
        for i in range(30):
            h, w = (int(v) for v in rng.integers(3, 40, 2))
            patch, mask = _random_lesion(rng, h, w)
            draw, factor = table.draw(i), float(rng.uniform(0.05, 1.6))
            full, full_mask = augment_lesion(patch, mask, AugmentDraw(**{**draw.__dict__,
                                             "scale": factor}))  # fmt: skip
            if full_mask.shape == (1, 1):
                continue  # augment_lesion's own one-pixel path, not the inside path
            stack = stack_lesion(patch, mask)
            before = stack.copy()
            values, inside_mask = augment_inside(stack, draw, factor)
            np.testing.assert_array_equal(stack, before)  # one stack serves every paste
            np.testing.assert_array_equal(inside_mask, full_mask)
            np.testing.assert_array_equal(values, full[full_mask])


def test_many_one_pixel_lesions_at_once_equal_each_one_alone():
    from lesionpaste.synth.pasting.augment import one_pixel_lesion, one_pixel_lesions

    rng = np.random.default_rng(2)
    means = rng.uniform(0, 255, (40, 3))
    bright = rng.uniform(0.8, 1.3, 40)
    hue = rng.uniform(-0.1, 0.1, 40)
    sat = rng.uniform(0.7, 1.3, 40)
    hue[::3], sat[::3] = 0.0, 1.0  # some rows without a colour draw stay untouched by HSV
    together = one_pixel_lesions(means, bright, hue, sat)
    for i in range(40):
        alone = one_pixel_lesion(means[i], AugmentDraw(brightness=bright[i], hue=hue[i],
                                                       saturation=sat[i]))  # fmt: skip
        np.testing.assert_array_equal(together[i], alone.reshape(-1))
    grey = one_pixel_lesions(means[:, :1], bright, hue, sat)  # one channel: no colour step
    np.testing.assert_array_equal(grey[:, 0], np.clip(means[:, 0] * bright, 0, 255)
                                  .astype(np.float32))  # fmt: skip
