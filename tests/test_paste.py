"""Directed tests for the image maths that decides what a twin looks like: both branches of
MixUp, every augmentation through ``augment_lesion`` with the others off, overlapping pastes,
and per-source colour tables in a multi-source bank."""

from __future__ import annotations

import numpy as np
import pytest

from lesionpaste.bank_builder.annotated import FUNDUS_TYPES, AnnotatedImage
from lesionpaste.bank_builder.build import build_bank
from lesionpaste.bank_format import read_bank
from lesionpaste.preparation import Prepared
from lesionpaste.recipes import NoRecipe
from lesionpaste.synth.pasting.augment import (
    AugmentConfig,
    AugmentDraw,
    augment_lesion,
)
from lesionpaste.synth.pasting.paste import find_position, mixup_paste
from lesionpaste.synth.pasting.tiers import Tier
from lesionpaste.synth.pasting.twin import PasteConfig, image_generators, synthesize_twin

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate


@pytest.mark.parametrize("lam", [0.5, 0.6, 0.8, 1.0])
def test_mixup_on_a_one_pixel_lesion_follows_eq_1(lam):
    image = np.full((5, 5, 3), 100, np.uint8)
    before = image.copy()
    patch = np.array([[[200.0, 10.0, 160.0]]], np.float32)
    mixup_paste(image, patch, np.ones((1, 1), bool), 2, 3, lam)
    expected = np.rint((1 - lam) * np.array([100.0, 100.0, 100.0]) + lam * patch[0, 0])
    np.testing.assert_array_equal(image[2, 3], expected.astype(np.uint8))
    image[2, 3] = before[2, 3]
    np.testing.assert_array_equal(image, before)  # nothing else touched


def test_mixup_on_a_larger_lesion_weights_the_lesion_by_lambda():
    image = np.full((6, 6, 1), 40, np.uint8)
    patch = np.full((2, 3, 1), 240.0, np.float32)
    mask = np.array([[True, False, True], [True, True, False]])
    mixup_paste(image, patch, mask, 1, 2, 0.75)
    inside = image[1:3, 2:5, 0][mask]
    assert (inside == 190).all()  # 0.25 * 40 + 0.75 * 240
    outside = image[1:3, 2:5, 0][~mask]
    assert (outside == 40).all() and image[0].max() == 40


ASYMMETRIC = np.arange(4 * 6 * 3, dtype=np.float32).reshape(4, 6, 3) * 2.0
FULL = np.ones((4, 6), bool)


def _only(**kw) -> AugmentDraw:
    return AugmentDraw(**kw)


def test_horizontal_and_vertical_flips_mirror_patch_and_mask():
    mask = FULL.copy()
    mask[0, 0] = False
    patch, out = augment_lesion(ASYMMETRIC, mask, _only(flip_h=True))
    np.testing.assert_array_equal(patch, ASYMMETRIC[:, ::-1])
    np.testing.assert_array_equal(out, mask[:, ::-1])
    patch, out = augment_lesion(ASYMMETRIC, mask, _only(flip_v=True))
    np.testing.assert_array_equal(patch, ASYMMETRIC[::-1])
    np.testing.assert_array_equal(out, mask[::-1])


def test_rotation_by_90_degrees_turns_the_lesion_on_a_grown_canvas():
    patch, mask = augment_lesion(ASYMMETRIC, FULL, _only(angle=90.0))
    assert mask.shape == (8, 6)  # 6 wide, 4 high, turned, plus a one-pixel margin each side
    rows, cols = np.nonzero(mask)
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (6, 4)
    inner = patch[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    np.testing.assert_allclose(inner, np.rot90(ASYMMETRIC), atol=1e-3)  # counter-clockwise


def test_resize_scales_the_lesion_and_keeps_its_mean():
    patch, mask = augment_lesion(ASYMMETRIC, FULL, _only(scale=2.0))
    assert mask.shape == (8, 12) and mask.all()
    assert patch.mean() == pytest.approx(ASYMMETRIC.mean(), rel=0.02)
    patch, mask = augment_lesion(ASYMMETRIC, FULL, _only(), base_scale=0.5)
    assert mask.shape == (2, 3)


def test_contrast_scales_deviations_about_the_lesion_mean():
    patch, _ = augment_lesion(ASYMMETRIC + 40, FULL, _only(contrast=0.5))
    source = ASYMMETRIC + 40
    mean = source.reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(patch, (source - mean) * 0.5 + mean, atol=1e-3)


def test_brightness_is_a_gain_on_the_lesion_pixels():
    patch, _ = augment_lesion(ASYMMETRIC, FULL, _only(brightness=1.2))
    np.testing.assert_allclose(patch, np.clip(ASYMMETRIC * 1.2, 0, 255), atol=1e-3)
    one, _ = augment_lesion(ASYMMETRIC, FULL, _only(brightness=0.8), base_scale=0.1)
    np.testing.assert_allclose(one[0, 0], ASYMMETRIC.reshape(-1, 3).mean(axis=0) * 0.8, rtol=1e-5)


def test_colour_distortion_shifts_hue_and_scales_saturation_only():
    red = np.zeros((4, 6, 3), np.float32)
    red[..., 0] = 200.0
    red[..., 1] = 100.0
    shifted, _ = augment_lesion(red, FULL, _only(hue=1 / 3))  # a third of a turn: red -> green
    assert shifted[..., 1].mean() > shifted[..., 0].mean()
    np.testing.assert_allclose(shifted.max(axis=2), red.max(axis=2), atol=0.05)  # value kept
    grey, _ = augment_lesion(red, FULL, _only(saturation=0.0))
    np.testing.assert_allclose(grey[..., 0], grey[..., 1], atol=0.05)


def test_an_identity_draw_changes_nothing():
    patch, mask = augment_lesion(ASYMMETRIC, FULL, _only())
    np.testing.assert_array_equal(patch, ASYMMETRIC)
    np.testing.assert_array_equal(mask, FULL)


_yy, _xx = np.mgrid[:9, :9]
DISC = (_yy - 4) ** 2 + (_xx - 4) ** 2 <= 16  # a round lesion: its box's corners are not lesion


def _two_source_bank(path) -> object:
    """Two sources, each with one round lesion (9x9 box) of every type, on flat grey images."""
    sources = []
    for k in range(2):
        image = np.full((60, 60, 3), 120, np.uint8)
        masks = {}
        for j, lesion_type in enumerate(FUNDUS_TYPES):
            mask = np.zeros((60, 60), bool)
            mask[5 + 12 * j : 14 + 12 * j, 20:29] = DISC
            masks[lesion_type] = mask
        sources.append(
            AnnotatedImage(
                source_id=f"src_{k}",
                image=image,
                masks=masks,
                files=[{"role": "image", "path": f"src_{k}.png", "sha256": "0" * 64}],
                fov={"cx": 30.0, "cy": 30.0, "radius": 30.0},
                region=np.ones((60, 60), bool),
                licence="CC0",
                attribution="tests",
            )
        )
    build_bank(sources, path, modality="fundus", lesion_types=FUNDUS_TYPES, recipe=NoRecipe(),
               command="test")  # fmt: skip
    return read_bank(path)


def _flat(size: int, region: np.ndarray | None = None) -> Prepared:
    image = np.full((size, size, 3), 60, np.uint8)
    return Prepared(
        image=image, region=np.ones((size, size), bool) if region is None else region,
        fov_radius=30.0,
    )  # fmt: skip


OFF = PasteConfig(lam=None, augment=AugmentConfig(False, False, False, False, False, False))


def test_each_source_gets_its_own_colour_table(tmp_path):
    bank = _two_source_bank(tmp_path / "b.h5")
    luts = np.zeros((2, 3, 256), np.uint8)
    luts[0] += 10  # source 0: every value to 10
    luts[1] += 250  # source 1: every value to 250
    tiers = [Tier(("MA",), 1.0)]
    pools = [bank.indices_of(["MA"])]
    seen = set()
    for seed in range(6):
        twin = synthesize_twin(_flat(200), bank, tiers, pools, OFF, image_generators(seed, "a"),
                               luts)  # fmt: skip
        for paste in twin.pastes:
            box = twin.image[paste["y"] : paste["y"] + 9, paste["x"] : paste["x"] + 9]
            values = set(np.unique(box).tolist())
            assert values <= {10, 250, 60}
            # the last paste on top is whole: its own source's table, never the other's
        last = twin.pastes[-1]
        box = twin.image[last["y"] : last["y"] + 9, last["x"] : last["x"] + 9]
        expected = 10 if last["source"] == "src_0" else 250
        assert (box[DISC] == expected).all(), (last["source"], np.unique(box[DISC]))
        seen.add(last["source"])
    assert seen == {"src_0", "src_1"}


def test_overlapping_pastes_keep_every_pasted_pixel_in_the_union_mask(tmp_path):
    bank = _two_source_bank(tmp_path / "b.h5")
    region = np.zeros((40, 40), bool)
    region[10:24, 10:24] = True  # room for 9x9 lesions only where they overlap each other
    tiers = [Tier(tuple(FUNDUS_TYPES), 1.0)]
    pools = [bank.indices_of(list(FUNDUS_TYPES))]
    overlapped = 0
    for seed in range(5):
        twin = synthesize_twin(_flat(40, region), bank, tiers, pools, OFF,
                               image_generators(seed, "b"))  # fmt: skip
        changed = (twin.image != 60).any(axis=2)
        np.testing.assert_array_equal(twin.mask, changed)  # hard pastes: changed = pasted
        boxes = np.zeros((40, 40), int)
        for p in twin.pastes:
            boxes[p["y"] : p["y"] + p["h"], p["x"] : p["x"] + p["w"]] += 1
        overlapped += int((boxes > 1).any())
    assert overlapped >= 3  # the fixture does make pastes overlap


def test_a_column_lesion_is_pasted_whole_not_as_one_pixel():
    image = np.full((6, 6, 1), 40, np.uint8)
    mixup_paste(image, np.full((3, 1, 1), 240.0, np.float32), np.ones((3, 1), bool), 1, 2, 1.0)
    assert (image[1:4, 2, 0] == 240).all() and image.sum() == 40 * 33 + 240 * 3


def test_one_pixel_positions_are_one_draw_among_the_region_pixels():
    from lesionpaste.synth.pasting.paste import find_position

    region = np.zeros((9, 9), bool)
    region[2:5, 3:7] = True
    pixels = np.argwhere(region)
    for seed in range(5):
        got = find_position(np.random.default_rng(seed), np.ones((1, 1), bool), region, 100, pixels)
        expected = pixels[int(np.random.default_rng(seed).integers(len(pixels)))]
        assert got == (int(expected[0]), int(expected[1]))


def test_a_larger_mask_never_takes_the_one_pixel_shortcut():
    from lesionpaste.synth.pasting.paste import find_position

    region = np.zeros((6, 6), bool)
    region[2, 2] = True  # one pixel: a 2x2 lesion can never fit
    rng = np.random.default_rng(0)
    assert find_position(rng, np.ones((2, 2), bool), region, 50, np.argwhere(region)) is None
    after = np.random.default_rng(0)
    after.integers(0, 5, 100)  # exactly the tries' draws (y and x each time)
    assert rng.integers(1 << 30) == after.integers(1 << 30)


def test_positions_reach_the_first_column_and_row():
    from lesionpaste.synth.pasting.paste import find_position

    region = np.zeros((5, 5), bool)
    region[0:2, 0] = True  # only the top-left 2x1 spot fits a 2x1 lesion
    assert find_position(np.random.default_rng(1), np.ones((2, 1), bool), region, 500) == (0, 0)


def test_a_black_lesion_on_black_stays_black_and_white_on_white_stays_white():
    for value in (0, 255):
        image = np.full((4, 4, 3), value, np.uint8)
        mixup_paste(image, np.full((1, 1, 3), value, np.float32), np.ones((1, 1), bool), 1, 1, 0.6)
        mask = np.array([[True, False], [True, True]])
        mixup_paste(image, np.full((2, 2, 3), value, np.float32), mask, 2, 2, 0.6)
        assert (image == value).all()


def test_a_lesion_the_size_of_the_field_fits_only_at_the_origin():
    from lesionpaste.synth.pasting.paste import find_position

    region = np.ones((6, 8), bool)
    rng = np.random.default_rng(0)
    assert find_position(rng, np.ones((6, 8), bool), region) == (0, 0)
    assert find_position(rng, np.ones((7, 2), bool), region) is None  # taller than the image
    assert find_position(rng, np.ones((2, 9), bool), region) is None  # wider than the image


def test_the_last_position_of_each_axis_can_be_drawn():
    from lesionpaste.synth.pasting.paste import find_position

    region = np.zeros((5, 5), bool)
    region[3:, 3:] = True  # only the bottom-right 2x2 corner is free
    rng = np.random.default_rng(1)
    assert find_position(rng, np.ones((2, 2), bool), region, tries=1000) == (3, 3)


def test_placement_gives_up_after_exactly_its_tries():
    from lesionpaste.synth.pasting.paste import find_position

    region = np.zeros((10, 10), bool)  # nothing fits
    rng = np.random.default_rng(2)
    assert find_position(rng, np.ones((2, 2), bool), region) is None
    again = np.random.default_rng(2)
    again.integers(0, 9, 2 * 100)  # the default: 100 tries of two draws each
    assert rng.integers(0, 2**31) == again.integers(0, 2**31)


def test_mixup_follows_eq_1_inside_the_mask_and_touches_nothing_outside():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    before = image.copy()
    patch = rng.uniform(0, 255, (10, 12, 3)).astype(np.float32)
    mask = rng.random((10, 12)) > 0.4
    lam = 0.63
    mixup_paste(image, patch, mask, 7, 9, lam)
    region = np.zeros((40, 50), bool)
    region[7:17, 9:21] = mask
    np.testing.assert_array_equal(image[~region], before[~region])
    expected = np.rint((1 - lam) * before[7:17, 9:21][mask].astype(np.float64) + lam * patch[mask])
    np.testing.assert_array_equal(image[7:17, 9:21][mask], expected.astype(np.uint8))


def test_hard_paste_copies_the_lesion():
    image = np.zeros((10, 10, 1), np.uint8)
    mixup_paste(image, np.full((2, 2, 1), 200.0, np.float32), np.ones((2, 2), bool), 1, 1, 1.0)
    assert (image[1:3, 1:3] == 200).all() and image.sum() == 800


def test_positions_keep_the_whole_mask_inside_the_region():
    region = np.zeros((64, 64), bool)
    region[10:40, 20:50] = True
    mask = np.ones((5, 7), bool)
    rng = np.random.default_rng(1)
    for _ in range(50):
        y, x = find_position(rng, mask, region)
        assert region[y : y + 5, x : x + 7].all()
    assert find_position(rng, np.ones((31, 5), bool), region) is None


def test_blending_the_pixels_inside_the_mask_equals_mixup_of_the_whole_patch():
    from lesionpaste.synth.pasting.paste import blend_inside

    rng = np.random.default_rng(4)
    for _ in range(20):
        image = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
        patch = rng.uniform(-20, 280, (5, 4, 3)).astype(np.float32)  # clipping exercised
        mask = rng.random((5, 4)) < 0.6
        lam = float(rng.uniform(0.5, 1.0))
        expected = image.copy()
        mixup_paste(expected, patch, mask, 3, 2, lam)
        blend_inside(image, patch[mask], mask, 3, 2, lam)
        np.testing.assert_array_equal(image, expected)
