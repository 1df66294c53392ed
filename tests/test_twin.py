"""What a twin records and how its scale and random streams are derived, checked directly."""

from __future__ import annotations

import hashlib
import math
from types import SimpleNamespace

import numpy as np
import pytest

from lesionpaste.bank_format import read_bank
from lesionpaste.errors import LesionPasteError
from lesionpaste.preparation import Prepared
from lesionpaste.synth.pasting.augment import (
    AugmentConfig,
    AugmentDraw,
    draw_augmentation,
)
from lesionpaste.synth.pasting.tiers import make_tiers
from lesionpaste.synth.pasting.twin import (
    STREAMS,
    PasteConfig,
    base_scales,
    count_range,
    draw_count,
    image_generators,
    paste_record,
    synthesize_twin,
)
from tests.synth_fixtures import make_fundus_bank

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate


def _bank(*sources: dict):
    return SimpleNamespace(meta=SimpleNamespace(sources=list(sources)))


def test_scales_come_from_fundus_radii_or_ct_spacings_else_one():
    bank = _bank({"fov": {"radius": 100.0}}, {"pixel_spacing": [0.5, 0.7]}, {"fov": None})
    fundus = Prepared(np.zeros((4, 4, 3), np.uint8), np.ones((4, 4), bool), fov_radius=50.0)
    np.testing.assert_allclose(base_scales(bank, fundus), [0.5, 1.0, 1.0])
    ct = Prepared(np.zeros((4, 4, 1), np.uint8), np.ones((4, 4), bool), pixel_spacing=[0.9, 1.4])
    scales = base_scales(bank, ct)
    np.testing.assert_allclose(scales, [1.0, 0.5, 1.0])  # 0.7 mm source pixels onto 1.4 mm
    assert scales.dtype == np.float64
    bare = Prepared(np.zeros((4, 4, 1), np.uint8), np.ones((4, 4), bool))
    np.testing.assert_allclose(base_scales(bank, bare), [1.0, 1.0, 1.0])


def test_each_image_has_its_own_streams_seeded_from_the_run_seed_and_its_id():
    rngs = image_generators(3, "10007_left")
    assert list(rngs) == list(STREAMS)
    key = int.from_bytes(hashlib.sha256(b"10007_left").digest()[:8], "little")
    children = np.random.SeedSequence([3, key]).spawn(len(STREAMS))
    for name, child in zip(STREAMS, children):
        expected = np.random.Generator(np.random.PCG64(child)).random(4)
        np.testing.assert_array_equal(rngs[name].random(4), expected)
    again, other = image_generators(3, "10007_left"), image_generators(4, "10007_left")
    assert again["select"].random() == image_generators(3, "10007_left")["select"].random()
    assert again["mix"].random() != other["mix"].random()
    assert image_generators(3, "é")["place"].random() != image_generators(3, "e")["place"].random()


def test_a_paste_record_holds_every_documented_field_rounded_to_six_places():
    draw = AugmentDraw(True, False, 12.34567891, 1.1234567, 0.91234567, 1.05555555, 0.0123456789,
                       0.98765432)  # fmt: skip
    mask = np.zeros((3, 5), bool)
    mask[1, 1:4] = True
    record = paste_record(7, "HE", "idrid_03", 10, 20, mask, 0.123456789, draw, 0.654321987)
    assert record == {
        "lesion": 7, "type": "HE", "source": "idrid_03", "y": 10, "x": 20, "h": 3, "w": 5,
        "area": 3, "scale": 0.123457, "angle": 12.345679, "flip_h": True, "flip_v": False,
        "contrast": 0.912346, "brightness": 1.055556, "hue": 0.012346, "saturation": 0.987654,
        "lambda": 0.654322,
    }  # fmt: skip


def test_the_paste_configuration_is_recorded_as_given():
    config = PasteConfig(lam=(0.5, 0.8), augment=AugmentConfig(colour=True), tries=7)
    recorded = config.to_dict()
    assert recorded == {
        "lambda": [0.5, 0.8],
        "augment": AugmentConfig(colour=True).to_dict(),
        "placement_tries": 7,
    }
    assert recorded["augment"]["colour"] is True and recorded["augment"]["flip"] is True
    assert PasteConfig(lam=None).to_dict()["lambda"] is None


@pytest.fixture(scope="module")
def small_bank(tmp_path_factory):
    return read_bank(make_fundus_bank(tmp_path_factory.mktemp("bank") / "b.h5"))


def _prepared(size=96, radius=40.0):
    yy, xx = np.mgrid[:size, :size]
    region = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= (0.9 * radius) ** 2
    image = np.random.default_rng(2).integers(90, 160, (size, size, 3), dtype=np.uint8)
    return Prepared(image=image, region=region, fov_radius=radius)


def test_count_range_is_the_papers():
    assert count_range(10) == (1, 15) and count_range(1) == (1, 1) and count_range(3) == (1, 4)


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


def _binned_probabilities(low: int, high: int, distribution: str) -> dict[str, float]:
    """Each lesion-count bin's probability under ``draw_count``'s documented formula."""
    from lesionpaste.lesion_bins import LESION_BINS, in_bin

    counts = np.arange(low, high + 1)
    if distribution == "uniform":
        p = np.full(len(counts), 1 / len(counts))
    else:
        p = np.log((counts + 1) / counts) / math.log((high + 1) / low)
    assert p.sum() == pytest.approx(1.0)
    return {
        name: float(sum(q for c, q in zip(counts, p) if in_bin(int(c), lo, hi)))
        for name, lo, hi in LESION_BINS
    }


@pytest.mark.parametrize("distribution", ["uniform", "loguniform"])
def test_drawn_counts_follow_the_chosen_distribution(distribution):
    """N_L = 59 (IDRiD_03's microaneurysms): counts 1..88. Each bin's share within four
    binomial standard deviations of its probability, as the tier test does."""
    from lesionpaste.lesion_bins import count_histogram

    rng, n = np.random.default_rng(11), 6000
    low, high = count_range(59)
    drawn = [draw_count(rng, low, high, distribution) for _ in range(n)]
    assert min(drawn) == low and max(drawn) == high  # both ends are reachable
    seen = count_histogram(drawn)
    for name, p in _binned_probabilities(low, high, distribution).items():
        sd = math.sqrt(n * p * (1 - p))
        assert abs(seen[name] - n * p) <= 4 * sd, (name, seen[name], n * p)
    median = float(np.median(drawn))
    assert (median > 40) if distribution == "uniform" else (median < 12)


def test_uniform_counts_are_the_papers_draw_so_earlier_datasets_keep_their_bytes():
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    assert [draw_count(a, 1, 88, "uniform") for _ in range(50)] == [
        int(b.integers(1, 89)) for _ in range(50)
    ]
    assert a.random() == b.random()  # and the generator is left where it was


def test_a_count_range_bounds_every_twin_and_is_recorded(small_bank):
    tiers = make_tiers("fundus", small_bank.counts())
    pools = [small_bank.indices_of(list(t.types)) for t in tiers]
    config = PasteConfig(count="loguniform", count_range=(2, 3))
    for i in range(30):
        twin = synthesize_twin(
            _prepared(48, 20.0), small_bank, tiers, pools, config, image_generators(1, f"c{i}")
        )
        assert 2 <= twin.n_drawn <= 3
    assert "lesion_count" not in PasteConfig().to_dict()  # the paper's: recorded as before
    assert config.to_dict()["lesion_count"] == {"distribution": "loguniform", "range": [2, 3]}
    assert PasteConfig(count="loguniform").to_dict()["lesion_count"]["range"] == (
        "1 to 1.5 N_L per tier"
    )


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"count": "normal"}, "--count 'normal': expected uniform or loguniform"),
        ({"count_range": (0, 5)}, "--count-range 0,5: expected LOW,HIGH whole numbers"),
        ({"count_range": (6, 5)}, "--count-range 6,5"),
        ({"count_range": (1, 10_001)}, "1 <= LOW <= HIGH <= 10,000"),
        ({"count_range": (1.5, 5)}, "--count-range 1.5,5"),
    ],
)
def test_bad_count_settings_are_refused(kwargs, words):
    with pytest.raises(LesionPasteError) as caught:
        PasteConfig(**kwargs)
    assert words in str(caught.value)


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
    from lesionpaste.synth.pasting.augment import draw_augmentations

    for seed in range(3):
        one = draw_augmentation(np.random.default_rng(seed), AugmentConfig(colour=True))
        batch = draw_augmentations(np.random.default_rng(seed), AugmentConfig(colour=True), 1)
        assert one == batch[0]
        assert one != draw_augmentations(np.random.default_rng(seed), AugmentConfig(colour=True),
                                         2)[1]  # fmt: skip


def _scalar_twin(prepared, bank, tiers, pools, config, rngs, colour_luts=None):
    """The twin pasted one lesion at a time (augment_lesion, find_position, mixup_paste): the
    reference that the batched one-pixel path must reproduce exactly."""
    import cv2

    from lesionpaste.synth.pasting.augment import augment_lesion, draw_augmentations
    from lesionpaste.synth.pasting.paste import find_position, mixup_paste

    select, mix = rngs["select"], rngs["mix"]
    tier = int(select.choice(len(tiers), p=[t.ratio for t in tiers]))
    pool = pools[tier]
    low, high = count_range(len(pool))
    n = int(select.integers(low, high + 1))
    chosen = select.choice(pool, size=n, replace=True)
    scales = base_scales(bank, prepared)
    image, union = prepared.image.copy(), np.zeros(prepared.image.shape[:2], bool)
    region_pixels = np.argwhere(prepared.region)
    draws = draw_augmentations(rngs["augment"], config.augment, n)
    lams = mix.uniform(*config.lam, n) if config.lam else np.ones(n)
    placed = []
    for index, draw, lam in zip(chosen, draws, lams):
        lesion = bank.lesion(int(index))
        patch = lesion.patch
        if colour_luts is not None:
            table = np.ascontiguousarray(colour_luts[lesion.source].T[:, None, :])
            patch = cv2.LUT(patch, table).reshape(patch.shape)
        patch, mask = augment_lesion(patch, lesion.mask, draw, scales[lesion.source])
        position = find_position(rngs["place"], mask, prepared.region, config.tries, region_pixels)
        if position is None:
            continue
        y, x = position
        mixup_paste(image, patch, mask, y, x, float(lam))
        union[y : y + mask.shape[0], x : x + mask.shape[1]] |= mask
        placed.append((int(index), y, x, mask.shape))
    return image, union, placed


@pytest.mark.parametrize("colour", [False, True])
def test_the_batched_one_pixel_path_gives_the_scalar_twin_exactly(small_bank, colour):
    tiers = make_tiers("fundus", small_bank.counts())
    pools = [small_bank.indices_of(list(t.types)) for t in tiers]
    # small radius: most lesions shrink to one pixel, and many land on the same pixels
    prepared = _prepared(size=48, radius=6.0)
    config = PasteConfig(augment=AugmentConfig(colour=colour))
    luts = None
    if colour:  # a non-trivial colour table per source
        luts = np.stack(
            [
                np.stack([np.clip(np.arange(256) * 0.8 + 20 * c, 0, 255) for c in range(3)])
                for _ in small_bank.meta.sources
            ]
        )
        luts = luts.astype(np.uint8)  # fmt: skip
    ones = 0
    for seed in range(40):
        twin = synthesize_twin(prepared, small_bank, tiers, pools, config,
                               image_generators(seed, "a"), luts)  # fmt: skip
        image, union, placed = _scalar_twin(prepared, small_bank, tiers, pools, config,
                                            image_generators(seed, "a"), luts)  # fmt: skip
        assert np.array_equal(twin.image, image) and np.array_equal(twin.mask, union)
        assert [(p["lesion"], p["y"], p["x"], (p["h"], p["w"])) for p in twin.pastes] == placed
        ones += sum(p["h"] == p["w"] == 1 for p in twin.pastes)
    assert ones > 50  # the one-pixel path was taken, often


def test_blending_one_pixel_lesions_together_equals_pasting_each_in_turn():
    from lesionpaste.synth.pasting.paste import blend_pixels, mixup_paste

    rng = np.random.default_rng(0)
    for _ in range(50):
        image = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        k = int(rng.integers(1, 30))  # with 36 pixels, repeats are common
        ys, xs = rng.integers(0, 6, k), rng.integers(0, 6, k)
        values = rng.uniform(0, 255, (k, 3)).astype(np.float32)
        lams = rng.uniform(0.5, 0.8, k)
        expected = image.copy()
        for i in range(k):
            mixup_paste(expected, values[i].reshape(1, 1, 3), np.ones((1, 1), bool),
                        int(ys[i]), int(xs[i]), float(lams[i]))  # fmt: skip
        blend_pixels(image, ys, xs, values, lams)
        assert np.array_equal(image, expected)


def test_a_kept_lesion_stack_is_the_colour_mapped_stack_and_the_cache_is_bounded(
    small_bank, monkeypatch
):
    import lesionpaste.synth.pasting.twin as twin_module
    from lesionpaste.synth.pasting.augment import stack_lesion
    from lesionpaste.synth.pasting.twin import lesion_stack, lesion_table

    luts = np.stack([np.stack([255 - np.arange(256)] * 3) for _ in small_bank.meta.sources])
    luts = luts.astype(np.uint8)
    table = lesion_table(small_bank, luts)
    lesion = small_bank.lesion(2)
    expected = stack_lesion(255 - lesion.patch, lesion.mask)
    got = lesion_stack(table, small_bank, 2, luts)
    np.testing.assert_array_equal(got, expected)
    assert lesion_stack(table, small_bank, 2, luts) is got  # kept for the next paste
    assert table.stacks.nbytes == got.nbytes
    monkeypatch.setattr(twin_module, "STACK_CACHE_BYTES", 0)
    bounded = lesion_table(small_bank, luts)
    again = lesion_stack(bounded, small_bank, 2, luts)
    np.testing.assert_array_equal(again, expected)
    assert not bounded.stacks.kept and bounded.stacks.nbytes == 0


def test_records_made_together_equal_each_made_alone():
    from lesionpaste.synth.pasting.augment import draw_table
    from lesionpaste.synth.pasting.twin import paste_records

    draws = draw_table(np.random.default_rng(3), AugmentConfig(colour=True), 5)
    scales = np.random.default_rng(4).uniform(0.01, 1.0, 5)
    lams = np.random.default_rng(5).uniform(0.5, 0.8, 5)
    masks = [np.ones((1 + i, 2), bool) for i in range(5)]
    placed = [(i, "MA", "s", 3 * i, 2 * i, *m.shape, int(m.sum())) for i, m in enumerate(masks)]
    together = paste_records(placed, scales, draws, lams)
    alone = [
        paste_record(i, "MA", "s", 3 * i, 2 * i, masks[i], scales[i], draws.draw(i), lams[i])
        for i in range(5)
    ]
    assert together == alone
    assert all(r["scale"] == round(float(s), 6) for r, s in zip(together, scales))


def test_a_lesion_scale_multiplies_the_matched_scale(small_bank):
    """--lesion-scale S: S times the matched scale, so S^2 times the area; recorded in the
    configuration only when it is not the paper's 1."""
    big = int(np.argmax(small_bank.area))
    source_radius = small_bank.meta.sources[0]["fov"]["radius"]
    prepared = _prepared(size=200, radius=110.0)
    tiers = make_tiers("fundus", small_bank.counts())
    pools = [np.array([big])] * 4
    still = AugmentConfig(resize=False, rotation=False, flip=False)
    config = PasteConfig(augment=still, lesion_scale=2.0)
    twin = synthesize_twin(prepared, small_bank, tiers, pools, config, image_generators(0, "s"))
    expected = small_bank.area[big] * (2 * 110.0 / source_radius) ** 2
    assert twin.pastes
    for paste in twin.pastes:
        assert paste["scale"] == pytest.approx(2 * 110.0 / source_radius)
        assert abs(paste["area"] - expected) <= 0.15 * expected
    assert config.to_dict()["lesion_scale"] == 2.0
    assert (
        "lesion_scale" not in PasteConfig().to_dict() and "edge_blur" not in PasteConfig().to_dict()
    )


def test_a_feathered_edge_fades_the_lesion_toward_its_border_and_stays_inside_its_mask(small_bank):
    tiers = make_tiers("fundus", small_bank.counts())
    pools = [small_bank.indices_of(list(t.types)) for t in tiers]
    prepared = _prepared(size=200, radius=300.0)  # large lesions: many edge pixels
    hard = PasteConfig(lam=(1.0, 1.0))
    soft = PasteConfig(lam=(1.0, 1.0), edge_blur=2.0)
    assert soft.to_dict()["edge_blur"] == 2.0
    changed_hard = changed_soft = 0
    for i in range(6):
        a = synthesize_twin(prepared, small_bank, tiers, pools, hard, image_generators(1, f"f{i}"))
        b = synthesize_twin(prepared, small_bank, tiers, pools, soft, image_generators(1, f"f{i}"))
        assert np.array_equal(a.mask, b.mask)  # the same lesions in the same places
        np.testing.assert_array_equal(b.image[~b.mask], prepared.image[~b.mask])
        original = prepared.image.astype(int)
        changed_hard += np.abs(a.image.astype(int) - original)[a.mask].sum()
        changed_soft += np.abs(b.image.astype(int) - original)[b.mask].sum()
    assert changed_soft < 0.9 * changed_hard  # the edges are blended less


def test_feathered_weights_keep_the_core_and_fade_the_edge():
    from lesionpaste.synth.pasting.paste import feathered_weights

    assert feathered_weights(np.ones((1, 1), bool), 1.5).tolist() == [1.0]
    yy, xx = np.mgrid[:15, :15]
    disc = (yy - 7) ** 2 + (xx - 7) ** 2 <= 36
    weights = np.zeros(disc.shape, np.float32)
    weights[disc] = feathered_weights(disc, 1.5)
    assert weights[7, 7] == pytest.approx(1.0) and 0 < weights[7, 1] < 0.8  # core, edge
    assert weights[7, 1] < weights[7, 3] < weights[7, 5] <= weights[7, 7]  # fades outward
    assert ((weights[disc] > 0) & (weights[disc] <= 1)).all()
