"""The preparation contract (lesionpaste/preparation.py) function by function: windows, crops
and geometry to the pixel, resizing, CT thresholds and the lung region on slices drawn by hand,
the recipe of the normals, and ``prepare_file`` on small files of each kind. Expected values are
worked out by hand (or with numpy/OpenCV directly), never read back from the function tested."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest

from lesionpaste.preparation import (
    Geometry,
    Prepared,
    _in_file_pixels,
    crop_square,
    crop_window,
    ct_geometry,
    ct_region,
    ct_thresholds,
    fundus_geometry,
    normals_recipe_from,
    prepare_ct,
    prepare_file,
    prepare_fundus,
    resize_square,
    square_window,
)
from lesionpaste.recipes import (
    Disc,
    GrahamRecipe,
    NoRecipe,
    WindowRecipe,
    estimate_fundus_disc,
    graham,
    recipe_to_dict,
)
from tests.conftest import refusal, synthetic_fundus, write_rgb

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate

HU_MESSAGE = "it needs a bank built with CT windowing, or --window LEVEL,WIDTH"


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _window_by_hand(image, top, left, height, width, fill):
    """The window pixel by pixel: the source pixel where there is one, else ``fill``."""
    out = np.full((height, width, *image.shape[2:]), fill, image.dtype)
    for r in range(height):
        for c in range(width):
            y, x = top + r, left + c
            if 0 <= y < image.shape[0] and 0 <= x < image.shape[1]:
                out[r, c] = image[y, x]
    return out


def _circle(shape, centre, radius) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.circle(mask, centre, radius, 1, thickness=-1, lineType=cv2.LINE_8)
    return mask.astype(bool)


def _cut_photo() -> np.ndarray:
    """An 80 x 160 photograph whose disc (centre (80, 40), radius 50) is cut at top and
    bottom: its disc is estimated as cx 80, cy 39.5, radius 50.5 (x 30..130, y 0..79), so its
    square is rows -10..90 (side round(101) = 101, top round(-10.5) = -10), columns 30..130."""
    raw = synthetic_fundus(80, 160, 50, seed=3)
    assert estimate_fundus_disc(raw) == Disc(80.0, 39.5, 50.5)  # precondition
    return raw


def _cut_crop(raw) -> np.ndarray:
    """The cut photograph's 101 x 101 square, by hand: 10 black rows, raw's 80, 11 black."""
    crop = np.zeros((101, 101, 3), np.uint8)
    crop[10:90] = raw[:, 30:131]
    return crop


# ---- Geometry, square windows, crops


def test_a_geometry_scaled_multiplies_the_window_and_keeps_the_output():
    g = Geometry((8, 10), -3, 5, 7, 9, (4, 4))
    scaled = g.scaled(2, [16, 20])
    assert scaled == Geometry((16, 20), -6, 10, 14, 18, (4, 4))
    assert type(scaled.source_shape) is tuple and type(scaled.top) is int
    assert g.scaled(4.0, (32, 40)) == Geometry((32, 40), -12, 20, 28, 36, (4, 4))


@pytest.mark.parametrize(
    "disc, window",
    [
        # side round(16.4) = 16; top round(21.6 - 7.5) = 14, left round(47.3 - 7.5) = 40
        (Disc(47.3, 21.6, 8.2), (14, 40, 16)),
        # side 20; top round(2.2 - 9.5) = -7, left round(3.4 - 9.5) = -6: leaves the image
        (Disc(3.4, 2.2, 10.0), (-7, -6, 20)),
        # round(0.4) = 0: the side is at least 1, centred on the pixel
        (Disc(5.0, 6.0, 0.2), (6, 5, 1)),
        # side round(3.0) = 3; top round(4.6 - 1) = 4, left round(2.3 - 1) = 1
        (Disc(2.3, 4.6, 1.5), (4, 1, 3)),
    ],
)
def test_the_square_window_has_side_twice_the_radius_around_the_centre(disc, window):
    assert square_window(disc) == window


@pytest.mark.parametrize(
    "top, left, height, width",
    [
        (1, 2, 3, 4),  # inside
        (0, 0, 6, 8),  # the whole image, flush with every edge
        (-2, -3, 5, 6),  # leaves it at the top and left
        (4, 5, 5, 6),  # leaves it at the bottom and right
        (-1, -2, 9, 12),  # encloses it
        (5, 7, 1, 1),  # its last pixel
    ],
)
@pytest.mark.parametrize("channels", [(), (1,), (3,)])
def test_a_window_is_the_source_where_it_overlaps_and_fill_elsewhere(
    top, left, height, width, channels
):
    rng = np.random.default_rng(0)
    image = rng.integers(1, 256, (6, 8, *channels), dtype=np.uint8)  # never 0: padding shows
    for fill in (0, 7):
        got = crop_window(image, top, left, height, width, fill)
        assert got.shape == (height, width, *channels) and got.dtype == np.uint8
        np.testing.assert_array_equal(got, _window_by_hand(image, top, left, height, width, fill))
    np.testing.assert_array_equal(
        crop_window(image, top, left, height, width),
        _window_by_hand(image, top, left, height, width, 0),
    )


def test_a_window_keeps_the_dtype_of_its_image():
    image = np.arange(24, dtype=np.uint16).reshape(4, 6) * 1000 + 1
    got = crop_window(image, -1, 2, 3, 5, 60000)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, _window_by_hand(image, -1, 2, 3, 5, 60000))


def test_a_square_crop_is_padded_and_gives_the_disc_in_its_pixels():
    rng = np.random.default_rng(1)
    image = rng.integers(1, 256, (6, 8, 3), dtype=np.uint8)
    disc = Disc(1.2, 4.9, 2.6)  # side round(5.2) = 5, top round(2.9) = 3, left round(-0.8) = -1
    crop, inside = crop_square(image, disc, fill=9)
    np.testing.assert_array_equal(crop, _window_by_hand(image, 3, -1, 5, 5, 9))
    assert inside == Disc(1.2 + 1, 4.9 - 3, 2.6)
    crop, inside = crop_square(image, disc)
    np.testing.assert_array_equal(crop, _window_by_hand(image, 3, -1, 5, 5, 0))
    assert inside == Disc(1.2 + 1, 4.9 - 3, 2.6)


@pytest.mark.parametrize(
    "size, out", [(0, 101), (-3, 101), (1, 1), (64, 64), (101, 101), (300, 300)]
)
def test_the_fundus_geometry_is_the_disc_square_resized_to_size(size, out):
    disc = Disc(80.0, 39.5, 50.5)
    expected = Geometry((80, 160), -10, 30, 101, 101, (out, out))
    assert fundus_geometry((80, 160, 3), disc, size) == expected
    assert fundus_geometry((80, 160), disc, size) == expected


@pytest.mark.parametrize(
    "size, out", [(0, (40, 60)), (-1, (40, 60)), (1, (1, 1)), (32, (32, 32)), (90, (90, 90))]
)
def test_the_ct_geometry_is_the_whole_slice_resized_to_size(size, out):
    expected = Geometry((40, 60), 0, 0, 40, 60, out)
    assert ct_geometry((40, 60), size) == expected
    assert ct_geometry((40, 60, 1), size) == expected


# ---- resizing


def _square(side, channels=3, seed=2):
    return np.random.default_rng(seed).integers(0, 256, (side, side, channels), dtype=np.uint8)


@pytest.mark.parametrize("size", [0, -2, 40])
def test_no_resize_for_size_0_or_less_or_the_same_side(size):
    image, disc = _square(40), Disc(10.1, 14.2, 16.3)
    got, got_disc = resize_square(image, disc, size)
    assert got is image and got_disc is disc


@pytest.mark.parametrize(
    "size, chosen, other, expected",
    [  # (c + 0.5) * k - 0.5 for the centre, r * k for the radius
        (25, cv2.INTER_AREA, cv2.INTER_LINEAR, Disc(6.0625, 8.5625, 10.0)),  # k = 0.625
        (60, cv2.INTER_LINEAR, cv2.INTER_AREA, Disc(15.25, 21.25, 24.0)),  # k = 1.5
    ],
)
def test_shrinking_averages_areas_enlarging_interpolates_and_the_disc_follows(
    size, chosen, other, expected
):
    image = _square(40)
    got, disc = resize_square(image, Disc(10.0, 14.0, 16.0), size)
    want = cv2.resize(image, (size, size), interpolation=chosen)
    assert not np.array_equal(want, cv2.resize(image, (size, size), interpolation=other))
    np.testing.assert_array_equal(got, want)
    assert disc == expected


def test_a_one_channel_square_keeps_its_channel_axis_down_to_one_pixel():
    image = _square(40, channels=1)
    got, _ = resize_square(image, Disc(20.0, 20.0, 20.0), 20)
    assert got.shape == (20, 20, 1)
    area = cv2.resize(image[:, :, 0], (20, 20), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(got[:, :, 0], area)
    got, disc = resize_square(_square(32), Disc(15.5, 7.5, 16.0), 1)  # k = 1/32
    assert got.shape == (1, 1, 3)
    assert disc == Disc(0.0, -0.25, 0.5)  # 16 / 32 - 0.5, 8 / 32 - 0.5, 16 / 32


# ---- prepare_fundus


def test_a_fundus_photograph_is_cropped_to_its_disc_square_padded_with_black():
    raw = _cut_photo()
    prepared = prepare_fundus(raw, NoRecipe(), 0)
    np.testing.assert_array_equal(prepared.image, _cut_crop(raw))
    assert prepared.geometry == Geometry((80, 160), -10, 30, 101, 101, (101, 101))
    # the disc in the crop: (80 - 30, 39.5 + 10), radius 50.5 -> drawn at (50, 50), 50
    np.testing.assert_array_equal(prepared.region, _circle((101, 101), (50, 50), 50))
    assert prepared.fov_radius == 50.5
    assert prepared.fov_kept is False
    assert prepared.pixel_spacing is None and prepared.source_sha256 is None


def test_a_fundus_photograph_is_resized_with_its_disc():
    raw = _cut_photo()
    prepared = prepare_fundus(raw, NoRecipe(), 50)
    expected = cv2.resize(_cut_crop(raw), (50, 50), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(prepared.image, expected)
    assert prepared.geometry == Geometry((80, 160), -10, 30, 101, 101, (50, 50))
    # k = 50/101: centre (50.5 k - 0.5, 50 k - 0.5) = (24.5, 24.25), radius 50.5 k = 25
    assert prepared.fov_radius == pytest.approx(25.0, abs=1e-12)
    np.testing.assert_array_equal(prepared.region, _circle((50, 50), (24, 24), 25))
    assert prepared.fov_kept is False


def test_graham_is_applied_after_resizing_and_keeps_its_share_of_the_disc():
    raw = _cut_photo()
    recipe = GrahamRecipe(disc_fraction=0.75)
    prepared = prepare_fundus(raw, recipe, 50)
    k = 50 / 101
    disc = Disc(50.5 * k - 0.5, 50.0 * k - 0.5, 50.5 * k)
    resized = cv2.resize(_cut_crop(raw), (50, 50), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(prepared.image, graham(resized, disc, recipe))
    assert not np.array_equal(prepared.image, resized)
    # round(25 * 0.75) = 19
    np.testing.assert_array_equal(prepared.region, _circle((50, 50), (24, 24), 19))
    assert prepared.fov_kept is True and prepared.fov_radius == pytest.approx(25.0, abs=1e-12)
    assert prepared.geometry == Geometry((80, 160), -10, 30, 101, 101, (50, 50))


def test_a_blank_photograph_is_refused():
    message = refusal(prepare_fundus, np.zeros((40, 60, 3), np.uint8), NoRecipe(), 0)
    assert message == "no fundus found: the image is blank"


# ---- CT thresholds and the lung region


def test_ct_thresholds_are_minus_500_and_minus_400_hu_through_the_window():
    # the paper's window: low -1000 HU, 255/1400 a HU: 500 * 0.1821 = 91.07, 600 * .. = 109.3
    assert ct_thresholds(WindowRecipe()) == (91, 109)
    # low -550 HU, 1.275 a HU: 50 * 1.275 = 63.75 -> 64, 150 * 1.275 = 191.25 -> 191
    body, lung = ct_thresholds(WindowRecipe(level=-450.0, width=200.0))
    assert (body, lung) == (64, 191) and type(body) is int and type(lung) is int
    assert ct_thresholds(NoRecipe()) == (64, 80)  # 8-bit slices exported with a lung window
    assert ct_thresholds(GrahamRecipe()) == (64, 80)


def _region_is(pixels, expected):
    region = ct_region(pixels, NoRecipe())
    assert region.dtype == bool
    np.testing.assert_array_equal(region, expected)


def test_the_region_is_the_air_inside_the_body_at_the_exact_thresholds():
    """Levels 64 (body above) and 80 (lung below): a body of 200 on a background of exactly
    64 (not body), holding a block of 79 (lung), one of exactly 80 (not lung) and a hole of
    exactly 64 (not body, inside it: lung)."""
    pixels = np.full((100, 100), 64, np.uint8)
    pixels[10:90, 10:90] = 200
    pixels[20:40, 20:40] = 79
    pixels[50:70, 20:40] = 80
    pixels[20:40, 55:75] = 64
    expected = np.zeros((100, 100), bool)
    expected[20:40, 20:40] = expected[20:40, 55:75] = True
    _region_is(pixels, expected)


def test_the_region_is_in_the_largest_8_connected_body():
    """Three bodies in scan order: 9 pixels, 200 in two squares touching at a corner (two of
    100 each if 4-connected), 144; no lung, so the region is the chosen body."""
    pixels = np.zeros((60, 60), np.uint8)
    pixels[2:5, 2:5] = 200
    pixels[10:20, 10:20] = pixels[20:30, 20:30] = 200
    pixels[40:52, 5:17] = 200
    expected = np.zeros((60, 60), bool)
    expected[10:20, 10:20] = expected[20:30, 20:30] = True
    _region_is(pixels, expected)


@pytest.mark.parametrize("fill", [0, 64])
def test_no_body_makes_the_whole_slice_the_region(fill):
    region = ct_region(np.full((30, 40), fill, np.uint8), NoRecipe())
    assert region.dtype == bool and region.shape == (30, 40) and region.all()


@pytest.mark.parametrize("rows, cols, lungs", [(10, 10, True), (9, 11, False)])
def test_lungs_of_1_percent_of_the_slice_or_more_are_the_region_else_the_filled_body(
    rows, cols, lungs
):
    """100 x 100 slice: 100 lung pixels is exactly 1%; 99 is under it."""
    pixels = np.zeros((100, 100), np.uint8)
    pixels[10:90, 10:90] = 200
    pixels[40 : 40 + rows, 40 : 40 + cols] = 0
    expected = np.zeros((100, 100), bool)
    if lungs:
        expected[40 : 40 + rows, 40 : 40 + cols] = True
    else:
        expected[10:90, 10:90] = True  # the body with its hole filled
    _region_is(pixels, expected)


def test_the_lungs_are_opened_with_a_3x3_square():
    """A 20 x 30 lung stays whole, a lone 3 x 3 one survives a 3 x 3 opening, a 2-pixel-wide
    strip does not."""
    pixels = np.zeros((100, 100), np.uint8)
    pixels[10:90, 10:90] = 200
    pixels[20:40, 20:50] = 0
    pixels[60:63, 60:63] = 0
    pixels[70:72, 20:40] = 0
    expected = np.zeros((100, 100), bool)
    expected[20:40, 20:50] = expected[60:63, 60:63] = True
    _region_is(pixels, expected)


# ---- prepare_ct

#: HU -> grey through the paper's window (low -1000 HU, 255/1400 a HU), by hand:
#: 1040 * 0.18214 = 189.4, 200 * .. = 36.4, 580 * .. = 105.6
HU_GREY = {-1000: 0, 40: 189, -800: 36, -420: 106}


def _hu_slice() -> np.ndarray:
    """40 x 40 HU: air around a body of 40 HU holding lung at -800 HU and a block at -420 HU
    (grey 106: lung under the paper's window, whose lung level is 109, but not under 80)."""
    hu = np.full((40, 40), -1000, np.int16)
    hu[4:36, 4:36] = 40
    hu[8:20, 8:28] = -800
    hu[24:32, 8:28] = -420
    return hu


def _hu_grey(hu) -> np.ndarray:
    grey = np.zeros(hu.shape, np.uint8)
    for value, level in HU_GREY.items():
        grey[hu == value] = level
    return grey


def _hu_lungs() -> np.ndarray:
    lungs = np.zeros((40, 40), bool)
    lungs[8:20, 8:28] = lungs[24:32, 8:28] = True
    return lungs


def _assert_ct(prepared, grey, region, spacing, geometry):
    assert prepared.image.shape == (*grey.shape, 1) and prepared.image.dtype == np.uint8
    np.testing.assert_array_equal(prepared.image[:, :, 0], grey)
    np.testing.assert_array_equal(prepared.region, region)
    assert prepared.pixel_spacing == spacing and prepared.geometry == geometry
    assert prepared.fov_radius is None and prepared.fov_kept is False


@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_a_slice_in_hu_is_windowed_and_its_lungs_found_at_the_window_levels(dtype):
    hu = _hu_slice().astype(dtype)
    prepared = prepare_ct(hu, WindowRecipe(), 0, [0.7, 0.8])
    geometry = Geometry((40, 40), 0, 0, 40, 40, (40, 40))
    _assert_ct(prepared, _hu_grey(_hu_slice()), _hu_lungs(), [0.7, 0.8], geometry)
    assert prepared.source_sha256 is None


def test_a_slice_is_windowed_by_its_own_recipe():
    # level 0, width 2000: low -1000 HU, 0.1275 a HU; 40 HU -> 132.6, -420 HU -> 73.95
    prepared = prepare_ct(_hu_slice(), WindowRecipe(level=0.0, width=2000.0), 0, None)
    assert prepared.image[20, 30, 0] == 133 and prepared.image[28, 10, 0] == 74


def test_an_8_bit_slice_is_kept_as_it_is_even_with_a_window():
    grey = _hu_grey(_hu_slice())
    prepared = prepare_ct(grey, WindowRecipe(), 0, None)
    _assert_ct(prepared, grey, _hu_lungs(), None, Geometry((40, 40), 0, 0, 40, 40, (40, 40)))
    # the levels of 8-bit exports (64, 80) leave the block of 106 out of the lungs
    lungs = _hu_lungs()
    lungs[24:32] = False
    _assert_ct(prepare_ct(grey, NoRecipe(), 0, None), grey, lungs, None,
               Geometry((40, 40), 0, 0, 40, 40, (40, 40)))  # fmt: skip


def test_a_slice_with_a_channel_axis_and_a_non_square_slice_keep_their_size():
    rng = np.random.default_rng(4)
    grey = rng.integers(0, 256, (40, 60), dtype=np.uint8)
    for pixels in (grey, grey[:, :, None]):
        spacing = [0.5, 0.75]
        prepared = prepare_ct(pixels, NoRecipe(), 0, spacing)
        assert prepared.image.shape == (40, 60, 1) and prepared.region.shape == (40, 60)
        np.testing.assert_array_equal(prepared.image[:, :, 0], grey)
        assert prepared.pixel_spacing is spacing
        assert prepared.geometry == Geometry((40, 60), 0, 0, 40, 60, (40, 60))


@pytest.mark.parametrize(
    "size, interpolation, spacing",
    [
        (20, cv2.INTER_AREA, [1.0, 2.25]),  # 0.5 * 40 / 20, 0.75 * 60 / 20
        (40, cv2.INTER_LINEAR, [0.5, 1.125]),  # the shorter side kept: not shrinking
        (80, cv2.INTER_LINEAR, [0.25, 0.5625]),
    ],
)
def test_a_slice_is_resized_square_with_its_pixel_spacing(size, interpolation, spacing):
    rng = np.random.default_rng(5)
    grey = rng.integers(0, 256, (40, 60), dtype=np.uint8)
    expected = cv2.resize(grey, (size, size), interpolation=interpolation)
    other = cv2.INTER_LINEAR if interpolation == cv2.INTER_AREA else cv2.INTER_AREA
    assert not np.array_equal(expected, cv2.resize(grey, (size, size), interpolation=other))
    prepared = prepare_ct(grey, NoRecipe(), size, [0.5, 0.75])
    assert prepared.image.shape == (size, size, 1) and prepared.region.shape == (size, size)
    assert prepared.image.flags.c_contiguous
    np.testing.assert_array_equal(prepared.image[:, :, 0], expected)
    assert prepared.pixel_spacing == spacing
    assert prepared.geometry == Geometry((40, 60), 0, 0, 40, 60, (size, size))
    assert prepare_ct(grey, NoRecipe(), size, None).pixel_spacing is None


# ---- the normals' recipe


def test_the_normals_recipe_is_the_banks_or_none_but_never_drops_a_ct_window():
    graham_bank = recipe_to_dict(GrahamRecipe(gain=3.0))
    window_bank = recipe_to_dict(WindowRecipe(level=-600.0, width=1500.0))
    assert normals_recipe_from(graham_bank, "bank") == GrahamRecipe(gain=3.0)
    assert normals_recipe_from(graham_bank, "none") == NoRecipe()
    assert normals_recipe_from(window_bank, "bank") == WindowRecipe(level=-600.0, width=1500.0)
    assert normals_recipe_from(window_bank, "none") == WindowRecipe(level=-600.0, width=1500.0)
    assert normals_recipe_from({"name": "none"}, "bank") == NoRecipe()


def test_a_window_asked_for_is_level_then_width_and_wins_over_the_bank():
    for bank in (recipe_to_dict(GrahamRecipe()), {"name": "none"}, {"name": "unknown"}):
        for preprocess in ("bank", "none"):
            got = normals_recipe_from(bank, preprocess, (-600.0, 1500.0))
            assert got == WindowRecipe(level=-600.0, width=1500.0)


def test_an_unknown_bank_recipe_is_refused():
    message = refusal(normals_recipe_from, {"name": "sharpen"}, "none")
    assert message == "unknown preprocessing recipe 'sharpen' (known: graham, window, none)"


# ---- prepare_file: fundus photographs


def test_a_fundus_file_is_prepared_with_its_digest_and_geometry_in_its_pixels(tmp_path):
    raw = _cut_photo()
    path = write_rgb(tmp_path / "eye.png", raw)
    prepared = prepare_file(path, "fundus", NoRecipe(), 0)
    np.testing.assert_array_equal(prepared.image, _cut_crop(raw))
    assert prepared.geometry == Geometry((80, 160), -10, 30, 101, 101, (101, 101))
    assert prepared.source_sha256 == _sha(path) and prepared.fov_radius == 50.5
    graham_kept = prepare_file(path, "fundus", GrahamRecipe(), 0, strict_modality=True)
    assert graham_kept.fov_kept is True and graham_kept.source_sha256 == _sha(path)


def test_a_grey_photograph_is_taken_for_fundus_unless_strict(tmp_path):
    grey = synthetic_fundus(80, 160, 50, seed=3)[:, :, 0]
    path = tmp_path / "grey.png"
    assert cv2.imwrite(str(path), grey)
    prepared = prepare_file(path, "fundus", NoRecipe(), 0)
    assert prepared.image.shape == (101, 101, 3)
    np.testing.assert_array_equal(prepared.image[10:90, :, 1], grey[:, 30:131])
    message = refusal(prepare_file, path, "fundus", NoRecipe(), 0, None, True)
    assert message == (
        f"{path}: a grey image (a CT slice?), where a colour fundus photograph is expected"
    )


def test_a_ct_file_is_refused_for_fundus_when_strict_and_unreadable_otherwise(tmp_path):
    volume = _write_nifti(tmp_path / "v.nii.gz")
    dicom = _write_dicom(tmp_path / "s.dcm", _hu_slice(), None)
    for path in (volume, dicom):
        message = refusal(prepare_file, path, "fundus", NoRecipe(), 0, None, True)
        assert message == f"{path}: a CT file, where a colour fundus photograph is expected"
        message = refusal(prepare_file, path, "fundus", NoRecipe(), 0)
        assert message == (
            f"{path}: not a readable image (PNG, JPEG or TIFF expected; is the file corrupt?)"
        )


def test_a_blank_fundus_file_is_refused(tmp_path):
    path = write_rgb(tmp_path / "black.png", np.zeros((40, 60, 3), np.uint8))
    assert refusal(prepare_file, path, "fundus", NoRecipe(), 0) == (
        "no fundus found: the image is blank"
    )


def _jpeg(tmp_path, exif_rotation=False):
    """A 201 x 333 JPEG photograph (odd sides: the decoder's half is 101 x 167, rounded up)."""
    path = write_rgb(tmp_path / "eye.jpg", synthetic_fundus(201, 333, 90, seed=6))
    if exif_rotation:  # an APP1 Exif segment saying "rotate 90 degrees" (orientation 6)
        tiff = b"II*\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00"
        body = b"Exif\x00\x00" + tiff + b"\x00\x00\x00\x00\x00\x00"
        data = path.read_bytes()
        path.write_bytes(data[:2] + b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body
                         + data[2:])  # fmt: skip
    return path


def test_a_jpeg_decoded_at_half_scale_has_its_geometry_in_the_files_pixels(tmp_path):
    path = _jpeg(tmp_path)
    half = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_REDUCED_COLOR_2), cv2.COLOR_BGR2RGB)
    assert half.shape == (101, 167, 3)  # 201 // 2 = 100 >= 64 > 201 // 4: factor 2
    prepared = prepare_file(path, "fundus", NoRecipe(), 64)
    expected = prepare_fundus(half, NoRecipe(), 64)
    np.testing.assert_array_equal(prepared.image, expected.image)
    g = expected.geometry
    assert g.source_shape == (101, 167)
    assert prepared.geometry == Geometry(
        (201, 333), 2 * g.top, 2 * g.left, 2 * g.height, 2 * g.width, (64, 64)
    )
    assert prepared.source_sha256 == _sha(path)


def test_an_exif_rotated_jpeg_has_no_geometry(tmp_path):
    path = _jpeg(tmp_path, exif_rotation=True)
    prepared = prepare_file(path, "fundus", NoRecipe(), 64)
    assert prepared.image.shape == (64, 64, 3)
    assert prepared.geometry is None and prepared.source_sha256 == _sha(path)


def _prepared(geometry):
    return Prepared(np.zeros((4, 4, 3), np.uint8), np.ones((4, 4), bool), geometry=geometry)


def test_in_file_pixels_scales_the_geometry_by_the_decoders_factor():
    g = Geometry((51, 84), -2, 3, 50, 50, (20, 20))
    # 201 x 333 at 1/4: ceil(201 / 4) = 51, ceil(333 / 4) = 84
    got = _in_file_pixels(_prepared(g), (51, 84, 3), 4, (201, 333), "ab")
    assert got.geometry == Geometry((201, 333), -8, 12, 200, 200, (20, 20))
    assert got.source_sha256 == "ab"
    got = _in_file_pixels(_prepared(g), (51, 84, 3), 1, (51, 84), "cd")
    assert got.geometry is g and got.source_sha256 == "cd"


@pytest.mark.parametrize("decoded", [(84, 51, 3), (50, 84, 3), (51, 83, 3), (51, 85, 3)])
def test_in_file_pixels_drops_a_geometry_the_decoded_size_does_not_fit(decoded):
    g = Geometry((51, 84), -2, 3, 50, 50, (20, 20))
    got = _in_file_pixels(_prepared(g), decoded, 4, (201, 333), "ab")
    assert got.geometry is None and got.source_sha256 == "ab"


def test_in_file_pixels_keeps_no_geometry_as_none():
    got = _in_file_pixels(_prepared(None), (51, 84, 3), 4, (201, 333), "ef")
    assert got.geometry is None and got.source_sha256 == "ef"


# ---- prepare_file: CT files


def _write_nifti(path):
    """A 40 x 40 x 3 volume (0.5 x 0.75 x 2 mm voxels, RAS) whose axial slice 1 is
    ``_hu_slice()`` and whose other slices are air."""
    nib = pytest.importorskip("nibabel")
    volume = np.full((40, 40, 3), -1000, np.float32)
    volume[:, :, 1] = np.flipud(_hu_slice()).T  # axial shows flipud(volume[:, :, z].T)
    nib.save(nib.Nifti1Image(volume, np.diag([0.5, 0.75, 2.0, 1.0])), path)
    return path


def _write_dicom(path, hu, spacing):
    """A CT slice stored as HU + 1024 (slope 1, intercept -1024), with ``spacing`` or none."""
    pytest.importorskip("pydicom")
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, "1.2.3.4"
    ds.Rows, ds.Columns = hu.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation = 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    if spacing:
        ds.PixelSpacing = list(spacing)
    ds.PixelData = (hu.astype(np.int32) + 1024).astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_a_nifti_slice_is_windowed_with_its_spacing_and_the_volumes_digest(tmp_path):
    path = _write_nifti(tmp_path / "v.nii.gz")
    prepared = prepare_file(path, "ct", WindowRecipe(), 0, slice_index=1)
    geometry = Geometry((40, 40), 0, 0, 40, 40, (40, 40))
    # spacing (row, column) = the zooms of y then x
    _assert_ct(prepared, _hu_grey(_hu_slice()), _hu_lungs(), [0.75, 0.5], geometry)
    assert prepared.source_sha256 == _sha(path)
    air = prepare_file(path, "ct", WindowRecipe(), 20, slice_index=0)
    assert air.image.shape == (20, 20, 1) and not air.image.any() and air.region.all()
    assert air.pixel_spacing == [1.5, 1.0]  # 0.75 * 40 / 20, 0.5 * 40 / 20


def test_a_nifti_volume_needs_a_window_and_a_slice(tmp_path):
    path = _write_nifti(tmp_path / "v.nii.gz")
    expected = f"{path}: a CT volume is in HU; {HU_MESSAGE}"
    assert refusal(prepare_file, path, "ct", NoRecipe(), 0, 0) == expected
    assert refusal(prepare_file, path, "ct", GrahamRecipe(), 0, 0) == expected
    assert refusal(prepare_file, path, "ct", WindowRecipe(), 0, None) == expected


def test_a_dicom_slice_is_windowed_with_its_spacing_and_digest(tmp_path):
    path = _write_dicom(tmp_path / "s.dcm", _hu_slice(), (0.75, 0.5))
    prepared = prepare_file(path, "ct", WindowRecipe(), 0)
    geometry = Geometry((40, 40), 0, 0, 40, 40, (40, 40))
    _assert_ct(prepared, _hu_grey(_hu_slice()), _hu_lungs(), [0.75, 0.5], geometry)
    assert type(prepared.pixel_spacing) is list and prepared.source_sha256 == _sha(path)
    bare = _write_dicom(tmp_path / "bare.dcm", _hu_slice(), None)
    prepared = prepare_file(bare, "ct", WindowRecipe(), 20)
    assert prepared.pixel_spacing is None and prepared.source_sha256 == _sha(bare)
    assert prepared.image.shape == (20, 20, 1)


def test_a_dicom_slice_needs_a_window(tmp_path):
    path = _write_dicom(tmp_path / "s.dcm", _hu_slice(), None)
    for recipe in (NoRecipe(), GrahamRecipe()):
        assert refusal(prepare_file, path, "ct", recipe, 0) == (
            f"{path}: a DICOM slice is in HU; {HU_MESSAGE}"
        )


def test_an_8_bit_slice_file_is_used_as_it_is(tmp_path):
    grey = _hu_grey(_hu_slice())
    path = tmp_path / "slice.png"
    assert cv2.imwrite(str(path), grey)
    prepared = prepare_file(path, "ct", WindowRecipe(), 0, strict_modality=True)
    _assert_ct(prepared, grey, _hu_lungs(), None, Geometry((40, 40), 0, 0, 40, 40, (40, 40)))
    assert prepared.source_sha256 == _sha(path)


def test_a_16_bit_slice_file_is_refused_for_a_window_and_scaled_otherwise(tmp_path):
    wide = (_hu_grey(_hu_slice()).astype(np.uint16) << 8) + 255
    path = tmp_path / "slice16.png"
    assert cv2.imwrite(str(path), wide)
    assert refusal(prepare_file, path, "ct", WindowRecipe(), 0) == (
        f"{path}: a 16-bit slice; CT slices are taken in HU from DICOM or NIfTI, or as 8-bit "
        "exports already windowed"
    )
    prepared = prepare_file(path, "ct", NoRecipe(), 0)
    np.testing.assert_array_equal(prepared.image[:, :, 0], _hu_grey(_hu_slice()))
    assert prepared.source_sha256 == _sha(path)


def test_a_colour_file_is_refused_for_ct_when_strict_and_made_grey_otherwise(tmp_path):
    raw = synthetic_fundus(40, 60, 18, seed=7)
    path = write_rgb(tmp_path / "eye.png", raw)
    message = refusal(prepare_file, path, "ct", NoRecipe(), 0, None, True)
    assert message == f"{path}: a colour image, where a grey CT slice is expected"
    prepared = prepare_file(path, "ct", NoRecipe(), 0)
    expected = cv2.cvtColor(raw, cv2.COLOR_RGB2GRAY)
    assert prepared.image.shape == (40, 60, 1) and prepared.fov_kept is False
    np.testing.assert_array_equal(prepared.image[:, :, 0], expected)
    assert prepared.source_sha256 == _sha(path)
