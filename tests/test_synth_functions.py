"""The synthesizer's image maths and draws, at the function level."""

import math

import numpy as np
import pytest

from lesionpaste.bank_format import read_bank
from lesionpaste.errors import LesionPasteError
from synth.augment import (
    AugmentConfig,
    augment_lesion,
    draw_augmentation,
    resize_lesion,
    rotate_lesion,
)
from synth.paste import find_position, mixup_paste
from synth.prepare import Prepared
from synth.tiers import make_tiers, parse_ratios
from synth.twin import PasteConfig, count_range, image_generators, synthesize_twin
from tests.synth_fixtures import make_fundus_bank

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate


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
    from synth.augment import AugmentDraw

    patch = np.full((4, 4, 3), 100, np.uint8)
    mask = np.ones((4, 4), bool)
    out, _ = augment_lesion(patch, mask, AugmentDraw(brightness=1.2))
    assert np.allclose(out, 120)


def test_positions_keep_the_whole_mask_inside_the_region():
    region = np.zeros((64, 64), bool)
    region[10:40, 20:50] = True
    mask = np.ones((5, 7), bool)
    rng = np.random.default_rng(1)
    for _ in range(50):
        y, x = find_position(rng, mask, region)
        assert region[y : y + 5, x : x + 7].all()
    assert find_position(rng, np.ones((31, 5), bool), region) is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("0.8,0.2", "2 value.s. given"),
        ("0.8,0.1,0.2,-0.1", "non-negative"),
        ("0.5,0.1,0.1,0.1", "sum to 1"),
        ("a,b,c,d", "comma-separated"),
        ("nan,0,0,1", "finite"),
    ],
)
def test_bad_ratios_are_refused(text, message):
    with pytest.raises(LesionPasteError, match=message):
        parse_ratios(text, 4, (0.8, 0.1, 0.05, 0.05))


def test_a_tier_needing_a_missing_type_is_an_error_naming_it():
    counts = {"MA": 5, "HE": 3, "EX": 4, "SE": 0}
    with pytest.raises(LesionPasteError, match="MA\\+HE\\+SE.*SE"):
        make_tiers("fundus", counts)
    tiers = make_tiers("fundus", counts, "0.9,0.1,0,0")  # a zero ratio is fine
    assert [t.ratio for t in tiers] == [0.9, 0.1, 0.0, 0.0]


def test_count_range_is_the_papers():
    assert count_range(10) == (1, 15) and count_range(1) == (1, 1) and count_range(3) == (1, 4)


@pytest.fixture(scope="module")
def small_bank(tmp_path_factory):
    return read_bank(make_fundus_bank(tmp_path_factory.mktemp("bank") / "b.h5"))


def _prepared(size=96, radius=40.0):
    yy, xx = np.mgrid[:size, :size]
    region = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= (0.9 * radius) ** 2
    image = np.random.default_rng(2).integers(90, 160, (size, size, 3), dtype=np.uint8)
    return Prepared(image=image, region=region, fov_radius=radius)


def test_tier_frequencies_and_lesion_counts_follow_the_configuration(small_bank):
    tiers = make_tiers("fundus", small_bank.counts())
    pools = [small_bank.indices_of(list(t.types)) for t in tiers]
    prepared = _prepared(48, 20.0)
    n = 800
    seen = np.zeros(len(tiers), int)
    for i in range(n):
        twin = synthesize_twin(
            prepared, small_bank, tiers, pools, PasteConfig(), image_generators(7, f"img{i}")
        )
        seen[twin.tier] += 1
        low, high = count_range(len(pools[twin.tier]))
        assert low <= twin.n_drawn <= high
        assert not (twin.mask & ~prepared.region).any()  # every paste inside the field of view
        kinds = {p["type"] for p in twin.pastes}
        assert kinds <= set(tiers[twin.tier].types)
    for count, tier in zip(seen, tiers):
        sd = math.sqrt(n * tier.ratio * (1 - tier.ratio))
        assert abs(count - n * tier.ratio) <= 4 * sd, (count, tier)


def test_twin_differs_from_its_normal_only_inside_the_pasted_mask(small_bank):
    tiers = make_tiers("fundus", small_bank.counts())
    pools = [small_bank.indices_of(list(t.types)) for t in tiers]
    prepared = _prepared()
    for i in range(20):
        twin = synthesize_twin(
            prepared, small_bank, tiers, pools, PasteConfig(), image_generators(0, f"t{i}")
        )
        np.testing.assert_array_equal(twin.image[~twin.mask], prepared.image[~twin.mask])
        assert twin.mask.any() and all(0.5 <= p["lambda"] <= 0.8 for p in twin.pastes)


def test_scale_matching_gives_the_expected_area(small_bank):
    """A lesion from a fundus of radius R_s pasted into one of radius R_t, with the resize and
    rotation augmentations off, covers area * (R_t / R_s)^2."""
    big = int(np.argmax(small_bank.area))
    source_radius = small_bank.meta.sources[0]["fov"]["radius"]
    prepared = _prepared(size=200, radius=220.0)
    tiers = make_tiers("fundus", small_bank.counts())
    pools = [np.array([big])] * 4
    config = PasteConfig(augment=AugmentConfig(resize=False, rotation=False, flip=False))
    twin = synthesize_twin(prepared, small_bank, tiers, pools, config, image_generators(0, "s"))
    expected = small_bank.area[big] * (220.0 / source_radius) ** 2
    for paste in twin.pastes:
        assert paste["scale"] == pytest.approx(220.0 / source_radius)
        assert abs(paste["area"] - expected) <= 0.15 * expected


def test_one_draw_is_the_first_of_a_batch_of_one():
    from synth.augment import draw_augmentations

    for seed in range(3):
        one = draw_augmentation(np.random.default_rng(seed), AugmentConfig(colour=True))
        batch = draw_augmentations(np.random.default_rng(seed), AugmentConfig(colour=True), 1)
        assert one == batch[0]
        assert one != draw_augmentations(np.random.default_rng(seed), AugmentConfig(colour=True),
                                         2)[1]  # fmt: skip
