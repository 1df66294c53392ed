"""Colour matching (``--match-colour``) on histograms whose answer can be counted by hand."""

from __future__ import annotations

import numpy as np
import pytest

from lesionpaste.histograms import channel_histograms
from lesionpaste.synth.pasting.colour import colour_luts, matching_lut

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate


def _hist(levels: dict[int, int]) -> np.ndarray:
    h = np.zeros(256, np.int64)
    for level, count in levels.items():
        h[level] = count
    return h


def test_histogram_counts_each_channel_inside_the_region_only():
    image = np.zeros((2, 3, 2), np.uint8)
    image[0, :, 0] = [5, 5, 7]
    image[1, :, 0] = [9, 9, 9]  # outside the region
    image[:, :, 1] = 200
    region = np.array([[True, True, True], [False, False, False]])
    h = channel_histograms(image, region)
    assert h.shape == (2, 256)
    assert h[0, 5] == 2 and h[0, 7] == 1 and h[0, 9] == 0 and h[0].sum() == 3
    assert h[1, 200] == 3 and h[1].sum() == 3
    assert h.dtype == np.uint64  # exact counts, whatever the image size
    everything = channel_histograms(image)  # no region: every pixel
    assert everything[0, 9] == 3 and everything[0].sum() == 6 and everything[1, 200] == 6


def test_matching_maps_each_level_to_the_target_level_of_equal_quantile():
    source = _hist({k: 1 for k in range(100)})  # uniform over 0..99
    target = _hist({k: 1 for k in range(100, 200)})  # uniform over 100..199
    lut = matching_lut(source, target)
    np.testing.assert_array_equal(lut[:100], np.arange(100, 200))
    assert lut.dtype == np.uint8 and (np.diff(lut.astype(int)) >= 0).all()  # monotone


def test_matching_a_histogram_onto_itself_is_the_identity_and_a_point_moves_to_the_point():
    full = _hist({k: 3 for k in range(256)})
    np.testing.assert_array_equal(matching_lut(full, full), np.arange(256))
    lut = matching_lut(_hist({50: 10}), _hist({200: 4}))
    assert lut[50] == 200 and lut[255] == 200


def test_matching_splits_mass_by_quantile():
    # half the source at 10 and half at 20; the target a quarter at 30 and three quarters at 90
    lut = matching_lut(_hist({10: 5, 20: 5}), _hist({30: 1, 90: 3}))
    assert lut[10] == 90 and lut[20] == 90  # the source's 50% quantile lies in the target's 90s
    lut = matching_lut(_hist({10: 1, 20: 3}), _hist({30: 1, 90: 3}))
    assert lut[10] == 30 and lut[20] == 90


def test_an_empty_histogram_gives_the_identity():
    empty, some = np.zeros(256, np.int64), _hist({3: 1})
    np.testing.assert_array_equal(matching_lut(empty, some), np.arange(256))
    np.testing.assert_array_equal(matching_lut(some, empty), np.arange(256))


def test_colour_luts_are_per_source_and_per_channel():
    sources = np.zeros((2, 3, 256), np.int64)
    target = np.zeros((3, 256), np.int64)
    for c in range(3):
        target[c, 100 + 50 * c] = 1  # channel c of the normals sits at 100 + 50c
    sources[0, :, 10] = 1
    sources[1, :, 40] = 1
    luts = colour_luts(sources, target)
    assert luts.shape == (2, 3, 256)
    for i, level in ((0, 10), (1, 40)):
        for c in range(3):
            assert luts[i, c, level] == 100 + 50 * c
            np.testing.assert_array_equal(luts[i, c], matching_lut(sources[i, c], target[c]))


def test_mass_at_the_last_level_is_matched_too():
    assert matching_lut(_hist({255: 4}), _hist({10: 1}))[255] == 10
    assert matching_lut(_hist({10: 4}), _hist({255: 1}))[10] == 255
    assert matching_lut(np.zeros(256, np.int64), _hist({3: 1})).dtype == np.uint8


def test_the_pooled_normals_histogram_sums_the_prepared_sample(tmp_path):
    from lesionpaste.bank_format import read_bank
    from lesionpaste.synth.inputs.load_normal import normals_recipe, prepare_normal
    from lesionpaste.synth.inputs.normals import list_folder
    from lesionpaste.synth.pasting.colour import pooled_normals_histogram
    from tests.synth_fixtures import make_fundus_bank, make_normals

    bank = read_bank(make_fundus_bank(tmp_path / "b.h5"))
    normals = list_folder(make_normals(tmp_path / "n", 4))
    recipe = normals_recipe(bank, "bank")

    def histogram_of(i: int) -> np.ndarray:
        prepared = prepare_normal(normals[i].path, bank, recipe, 48)
        return channel_histograms(prepared.image, prepared.region)

    every = pooled_normals_histogram(normals, bank, "bank", 48, 10, seed=0)
    assert every.dtype == np.uint64 and every.shape == (3, 256)
    np.testing.assert_array_equal(every, sum(histogram_of(i) for i in range(4)))
    first = int(np.random.default_rng(5).permutation(4)[0])  # the sample drawn by the seed
    np.testing.assert_array_equal(
        pooled_normals_histogram(normals, bank, "bank", 48, 1, seed=5), histogram_of(first)
    )
    plain = pooled_normals_histogram(normals, bank, "none", 48, 10, seed=0)
    assert not np.array_equal(plain, every)  # the normals' recipe is the one asked for
    normals[1].path.write_bytes(b"not an image")  # an unreadable normal is left out
    np.testing.assert_array_equal(
        pooled_normals_histogram(normals, bank, "bank", 48, 10, seed=0),
        sum(histogram_of(i) for i in (0, 2, 3)),
    )
