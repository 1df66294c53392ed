"""Directed tests of lesion extraction (bank_builder/extract.py): the empty case of the box
statistics, boxes and field-of-view checks of components away from the mask's corner."""

from __future__ import annotations

import numpy as np
import pytest

from bank_builder.extract import component_boxes, extract_lesions

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate


def test_an_empty_mask_has_empty_statistics_of_the_documented_shapes():
    present, boxes, areas, pixels = component_boxes(
        np.zeros((4, 5), np.int32), np.zeros((4, 5), bool)
    )
    assert [a.shape for a in (present, boxes, areas, pixels)] == [(0,), (0, 4), (0,), (0, 2)]
    assert all(a.dtype == np.int64 for a in (present, boxes, areas, pixels))


def test_boxes_of_several_components_are_in_source_coordinates():
    image = np.arange(30 * 40 * 3, dtype=np.uint32).reshape(30, 40, 3).astype(np.uint8)
    mask = np.zeros((30, 40), bool)
    mask[5:7, 8:11] = True  # first component: the mask's box starts here (y0 5, x0 8)
    mask[12:15, 20:22] = True  # second: 7 rows and 12 columns into that box
    lesions, left_out = extract_lesions(image, mask, "HE", 3)
    assert left_out == 0
    assert [l.bbox for l in lesions] == [(5, 8, 2, 3), (12, 20, 3, 2)]
    np.testing.assert_array_equal(lesions[1].patch, image[12:15, 20:22])
    assert [l.area for l in lesions] == [6, 6] and {l.source for l in lesions} == {3}


def test_a_component_with_only_its_first_pixel_outside_the_region_is_left_out():
    mask = np.zeros((20, 30), bool)
    mask[4:7, 6:9] = True  # first in raster order: (4, 6)
    mask[12:14, 15:18] = True
    region = np.ones((20, 30), bool)
    region[4, 6] = False  # only the first pixel of the first component
    lesions, left_out = extract_lesions(np.zeros((20, 30, 3), np.uint8), mask, "EX", 0, region)
    assert left_out == 1 and [l.bbox for l in lesions] == [(12, 15, 2, 3)]


def test_the_region_is_looked_up_at_source_coordinates_off_the_diagonal():
    mask = np.zeros((40, 60), bool)
    mask[2:4, 30:33] = True  # y0 2, x0 30: far from the diagonal
    mask[20:22, 50:52] = True
    region = np.ones((40, 60), bool)
    region[20:22, 50:52] = False  # the second component lies outside
    region[28:30, 2:4] = False  # where a swapped or mis-offset lookup would land
    region[18:20, 20:22] = False
    lesions, left_out = extract_lesions(np.zeros((40, 60, 3), np.uint8), mask, "MA", 0, region)
    assert left_out == 1 and [l.bbox for l in lesions] == [(2, 30, 2, 3)]
