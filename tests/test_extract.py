import numpy as np
import pytest
from scipy import ndimage

from lesionpaste.bank_builder.extract import component_boxes, extract_lesions

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate


def _mask_and_image(seed=0, shape=(60, 80)):
    rng = np.random.default_rng(seed)
    mask = rng.random(shape) > 0.93
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    return mask, image


def test_components_are_8_connected_and_counted_like_scipy():
    for seed in range(5):
        mask, image = _mask_and_image(seed)
        lesions, left_out = extract_lesions(image, mask, "MA", 0)
        _, expected = ndimage.label(mask, structure=np.ones((3, 3)))
        assert len(lesions) == expected and left_out == 0
        assert sum(lesion.area for lesion in lesions) == mask.sum()


def test_diagonal_neighbours_form_one_lesion():
    mask = np.zeros((10, 10), bool)
    mask[2, 2] = mask[3, 3] = True
    lesions, _ = extract_lesions(np.zeros((10, 10, 3), np.uint8), mask, "MA", 0)
    assert len(lesions) == 1 and lesions[0].area == 2 and lesions[0].bbox == (2, 2, 2, 2)


def test_each_lesion_is_an_exact_crop_with_only_its_own_component():
    # A ring with a dot inside: the dot lies in the ring's bounding box but is not the ring.
    mask = np.zeros((40, 40), bool)
    mask[10, 10:30] = mask[29, 10:30] = mask[10:30, 10] = mask[10:30, 29] = True
    mask[20, 20] = True
    image = np.random.default_rng(3).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    lesions, _ = extract_lesions(image, mask, "HE", 2)
    assert len(lesions) == 2
    ring = max(lesions, key=lambda lesion: lesion.area)
    y, x, h, w = ring.bbox
    np.testing.assert_array_equal(ring.patch, image[y : y + h, x : x + w])
    assert not ring.mask[20 - y, 20 - x]  # the dot is not part of the ring's mask
    assert ring.mask.sum() == ring.area == 76
    assert ring.lesion_type == "HE" and ring.source == 2


def test_components_leaving_the_region_are_left_out_and_counted():
    mask = np.zeros((30, 30), bool)
    mask[5:8, 5:8] = True  # inside
    mask[20:25, 27:30] = True  # crosses the region's edge
    region = np.zeros((30, 30), bool)
    region[:, :28] = True
    lesions, left_out = extract_lesions(np.zeros((30, 30, 3), np.uint8), mask, "EX", 0, region)
    assert [lesion.bbox for lesion in lesions] == [(5, 5, 3, 3)]
    assert left_out == 1


def test_an_empty_mask_gives_no_lesion():
    lesions, left_out = extract_lesions(
        np.zeros((20, 20, 3), np.uint8), np.zeros((20, 20), bool), "SE", 0, np.ones((20, 20), bool)
    )
    assert lesions == [] and left_out == 0


def test_boxes_are_in_source_coordinates_when_the_mask_is_off_centre():
    mask = np.zeros((50, 60), bool)
    mask[40:43, 50:52] = True
    image = np.random.default_rng(5).integers(0, 256, (50, 60, 3), dtype=np.uint8)
    (lesion,), _ = extract_lesions(image, mask, "EX", 0)
    assert lesion.bbox == (40, 50, 3, 2)
    np.testing.assert_array_equal(lesion.patch, image[40:43, 50:52])


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
