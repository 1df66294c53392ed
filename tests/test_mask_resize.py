"""Directed tests of the mask resizing by area coverage (synth/inputs/mask_resize.py): the half-covered
rule, and every lesion component keeping its best-covered pixel."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lesionpaste.synth.inputs.mask_resize import (
    area_coverage,
    area_weights,
    keep_components,
    resize_mask,
)

pytestmark = pytest.mark.mutation


def test_area_weights_split_each_output_pixel_exactly():
    weights = area_weights(10, 4)  # output pixels span 2.5 source pixels
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    np.testing.assert_allclose(weights[0], [0.4, 0.4, 0.2, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(weights[1, 2:5], [0.2, 0.4, 0.4])
    up = area_weights(2, 5)  # enlarging: each output pixel lies in one or two source pixels
    np.testing.assert_allclose(up.sum(axis=1), 1.0)
    np.testing.assert_allclose(up[2], [0.5, 0.5])


def test_coverage_is_opencvs_area_average_when_shrinking():
    rng = np.random.default_rng(0)
    mask = rng.random((97, 131)) < 0.3
    expected = area_weights(97, 23) @ mask.astype(np.float64) @ area_weights(131, 40).T
    np.testing.assert_allclose(area_coverage(mask, (23, 40)), expected, atol=1e-5)
    ref = cv2.resize(mask.astype(np.float32), (40, 23), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(area_coverage(mask, (23, 40)), ref, atol=1e-6)


def test_a_pixel_is_lesion_when_covered_by_half_or_more():
    mask = np.zeros((64, 64), bool)
    mask[0:6, 0:8] = True  # output rows 0 (full) and 1 (half covered): s = 4
    mask[0:5, 32:40] = True  # output rows 0 (full) and 1 (a quarter)
    out = resize_mask(mask, (16, 16))
    assert out[0:2, 0:2].all()
    assert out[0, 8:10].all() and not out[1, 8:10].any()
    assert out.sum() == 6


def test_every_component_keeps_its_best_covered_pixel():
    mask = np.zeros((1024, 1024), bool)
    mask[500, 700] = True  # a microaneurysm: 1/256 of an output pixel
    mask[15:17, 15:17] = True  # 2x2 across four output pixels, best: the first
    mask[300, 100:300] = True  # a thin line: 1/16 of each output pixel it crosses
    mask[600:602, 402] = True  # two pixels, in output pixel (37, 25)
    mask[601, 405:407] = True  # a second component in the same output pixel
    out = resize_mask(mask, (64, 64))
    assert out[500 // 16, 700 // 16]
    assert out[0, 0] and not out[0, 1] and not out[1, 0] and not out[1, 1]
    assert out[300 // 16, 100 // 16 : 300 // 16].sum() == 1
    assert out[37, 25]
    assert out.sum() == 4


def test_a_component_already_half_covering_a_pixel_adds_nothing():
    mask = np.zeros((64, 64), bool)
    mask[8:12, 8:12] = True  # output pixel (2, 2) wholly covered
    mask[12, 8:13] = True  # joined to it: covers a little of the pixels below
    resized = area_coverage(mask, (16, 16)) >= 0.5
    before = resized.copy()
    np.testing.assert_array_equal(keep_components(mask, resized), before)


def test_enlarging_and_keeping_the_size():
    mask = np.zeros((10, 10), bool)
    mask[2:4, 6:8] = True
    big = resize_mask(mask, (20, 20))
    np.testing.assert_array_equal(big, np.kron(mask, np.ones((2, 2), bool)))
    same = resize_mask(mask, (10, 10))
    np.testing.assert_array_equal(same, mask)
    assert same is not mask
    assert not resize_mask(np.zeros((30, 40), bool), (7, 9)).any()
