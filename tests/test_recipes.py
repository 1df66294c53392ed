import cv2
import numpy as np
import pytest

from lesionpaste.errors import LesionPasteError
from lesionpaste.recipes import (
    Disc,
    GrahamRecipe,
    NoRecipe,
    WindowRecipe,
    apply_recipe,
    disc_mask,
    estimate_fundus_disc,
    gaussian_low_pass,
    graham,
    low_pass_factor,
    parse_window,
    recipe_from_dict,
    recipe_to_dict,
    window_hu,
)
from tests.conftest import synthetic_fundus

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate


@pytest.mark.parametrize("h, w, radius", [(240, 320, 110), (200, 400, 130), (256, 256, 128)])
def test_disc_estimate_finds_centre_and_radius(h, w, radius):
    # (200, 400, 130) is cut at top and bottom, as IDRiD photographs are.
    disc = estimate_fundus_disc(synthetic_fundus(h, w, radius))
    assert disc.radius == pytest.approx(radius, abs=1.5)
    assert disc.cx == pytest.approx(w // 2, abs=1.5)
    assert disc.cy == pytest.approx(h // 2, abs=1.5)


def test_blank_image_has_no_disc():
    with pytest.raises(LesionPasteError, match="blank"):
        estimate_fundus_disc(np.zeros((50, 60, 3), np.uint8))


def test_fast_low_pass_matches_the_exact_gaussian():
    rng = np.random.default_rng(1)
    image = cv2.GaussianBlur(rng.integers(0, 255, (600, 800, 3), dtype=np.uint8), (0, 0), 3)
    image = np.ascontiguousarray(image)
    sigma = 40.0
    exact = cv2.GaussianBlur(image, (0, 0), sigma).astype(int)
    fast = gaussian_low_pass(image, sigma).astype(int)
    inner = (slice(100, -100), slice(100, -100))  # borders differ by the resampling
    assert np.abs(exact - fast)[inner].mean() < 0.6
    assert np.abs(exact - fast)[inner].max() <= 3


def test_small_sigma_is_blurred_exactly():
    image = synthetic_fundus()
    np.testing.assert_array_equal(
        gaussian_low_pass(image, 3.0), cv2.GaussianBlur(image, (0, 0), 3.0)
    )


def test_graham_is_the_kaggle_formula_inside_the_disc_and_grey_outside():
    image = synthetic_fundus(240, 320, 110)
    disc = Disc(160, 120, 110)
    out = graham(image, disc)
    blur = cv2.GaussianBlur(image, (0, 0), 110 / 30)  # sigma < 4*4: computed exactly
    expected = np.clip(4.0 * image.astype(float) - 4.0 * blur + 128, 0, 255)
    inside = disc_mask(image.shape[:2], disc, 0.9)
    np.testing.assert_array_equal(out[inside], expected[inside])  # exact: the blur is uint8
    assert (out[~inside] == 128).all()


def test_window_maps_the_paper_window_to_0_255():
    hu = np.array([-2000.0, -1000.0, -300.0, 400.0, 3000.0])
    np.testing.assert_array_equal(window_hu(hu, WindowRecipe(-300, 1400)), [0, 0, 128, 255, 255])


def test_recipes_round_trip_and_unknown_names_are_refused():
    for recipe in (GrahamRecipe(), WindowRecipe(-600, 1500)):
        assert recipe_from_dict(recipe_to_dict(recipe)) == recipe
    with pytest.raises(LesionPasteError, match="unknown preprocessing recipe"):
        recipe_from_dict({"name": "clahe"})


def _banded(h: int, w: int) -> np.ndarray:
    """Rows h/2-2 .. h/2+2 (the centre band of an 80-row image) each lit at their own columns,
    and the rows just outside it at others; likewise the columns around the centre."""
    image = np.zeros((h, w), np.uint8)
    mid = h // 2
    image[mid - 3, 0:5] = 100  # outside the band
    image[mid - 2, 10:15] = 100
    image[mid - 1 : mid + 2, 40:60] = 100
    image[mid + 2, 90:95] = 100
    image[mid + 3, 95:100] = 100  # outside the band
    image[5:10, 50] = 100
    image[70:75, 54] = 100
    image[0:5, 49] = 100  # outside the column band (52 +- 2)
    image[75:80, 55] = 100
    return image


def test_the_extent_is_where_the_profile_exceeds_a_tenth_of_its_mean():
    # one row: mean (1 + 9 * 11) / 10 = 10, so the first pixel (1) is exactly a tenth: outside
    row = np.array([[1] + [11] * 9], np.uint8)
    assert estimate_fundus_disc(row) == Disc(cx=5.0, cy=0.0, radius=4.5)
    row = np.array([[2] + [11] * 9], np.uint8)  # just above a tenth: inside
    assert estimate_fundus_disc(row) == Disc(cx=4.5, cy=0.0, radius=5.0)
    column = row.T.copy()  # the same profile down the centre column
    disc = estimate_fundus_disc(np.array([[1]] + [[11]] * 9, np.uint8))
    assert (disc.cy, disc.radius) == (5.0, 0.5) and estimate_fundus_disc(column).cy == 4.5


def test_the_disc_is_measured_in_a_band_through_the_centre_rows_and_columns():
    disc = estimate_fundus_disc(_banded(80, 100))
    assert disc == Disc(cx=52.0, cy=39.5, radius=42.5)  # x 10..94, y 5..74


def test_the_band_is_one_row_each_side_on_a_short_image():
    image = np.zeros((40, 100), np.uint8)
    image[19:22, 40:60] = 100  # rows 19..21: the band of a 40-row image
    image[18, 10:15] = 100  # one row further: outside it
    image[22, 85:90] = 100
    assert estimate_fundus_disc(image).radius == 10.0


def test_no_light_down_the_centre_column_centres_the_disc_vertically():
    image = np.zeros((20, 40, 3), np.uint8)
    image[9:12, 0:10] = 150
    image[9:12, 30:40] = 150  # dark around x = 19.5
    assert estimate_fundus_disc(image) == Disc(cx=19.5, cy=9.5, radius=20.0)


def test_a_blank_image_is_refused_with_one_line():
    with pytest.raises(LesionPasteError) as err:
        estimate_fundus_disc(np.zeros((30, 30), np.uint8))
    assert str(err.value) == "no fundus found: the image is blank"


def test_the_disc_mask_holds_the_pixels_within_the_radius():
    yy, xx = np.mgrid[:41, :51]
    distance = np.hypot(xx - 25, yy - 20)
    for fraction, radius in [(1.0, 12), (0.5, 6)]:
        mask = disc_mask((41, 51), Disc(25.0, 20.0, 12.0), fraction)
        assert mask.dtype == bool and mask.shape == (41, 51)
        assert mask[distance <= radius - 0.6].all() and not mask[distance >= radius + 0.6].any()
    assert (
        disc_mask((41, 51), Disc(25.0, 20.0, 12.0)) == disc_mask((41, 51), Disc(25, 20, 12), 1.0)
    ).all()


@pytest.mark.parametrize(
    "sigma, h, w, factor",
    [
        (3.0, 1000, 1000, 1),
        (7.9, 1000, 1000, 1),
        (8.0, 1000, 1000, 2),
        (63.9, 4000, 4000, 15),
        (64.0, 4000, 4000, 16),
        (400.0, 4000, 4000, 16),  # at most 16
        (100.0, 100, 1000, 6),  # the reduced image keeps 16 px a side
        (100.0, 1000, 255, 15),
        (100.0, 256, 4000, 16),
        (100.0, 20, 20, 1),
    ],
)
def test_the_low_pass_factor_keeps_4_px_of_sigma_and_16_px_of_image(sigma, h, w, factor):
    assert low_pass_factor(sigma, h, w) == factor


def test_a_fast_low_pass_of_an_edge_matches_the_exact_blur():
    image = np.zeros((400, 480, 3), np.uint8)
    image[:, 240:] = 200
    sigma = 40.0  # factor 10
    exact = cv2.GaussianBlur(image, (0, 0), sigma).astype(int)
    fast = gaussian_low_pass(image, sigma).astype(int)
    assert np.abs(exact - fast)[100:-100, 100:-100].max() <= 2
    small = np.ascontiguousarray(image[:, 200:280])  # 80 px wide: factor 5 for sigma 40
    assert gaussian_low_pass(small, 7.0).shape == small.shape
    np.testing.assert_array_equal(
        gaussian_low_pass(small, 7.0), cv2.GaussianBlur(small, (0, 0), 7.0)
    )


@pytest.mark.parametrize(
    "spec, expected",
    [("-300,1400", WindowRecipe(-300.0, 1400.0)), ("40, 400", WindowRecipe(40.0, 400.0))],
)
def test_a_window_option_is_level_then_width(spec, expected):
    assert parse_window(spec) == expected


@pytest.mark.parametrize(
    "spec, message",
    [
        ("-300", "--window '-300': expected LEVEL,WIDTH in HU, e.g. -300,1400"),
        ("a,b", "--window 'a,b': expected LEVEL,WIDTH in HU, e.g. -300,1400"),
        ("1,2,3", "--window '1,2,3': expected LEVEL,WIDTH in HU, e.g. -300,1400"),
        ("-300,0", "--window '-300,0': the width must be positive"),
        ("-300,-5", "--window '-300,-5': the width must be positive"),
        ("-300,nan", "--window '-300,nan': the width must be positive"),
    ],
)
def test_a_bad_window_option_is_refused_with_one_line(spec, message):
    with pytest.raises(LesionPasteError) as err:
        parse_window(spec)
    assert str(err.value) == message


def test_each_recipe_is_applied_as_its_own_function():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:120, :160]
    fundus = np.zeros((120, 160, 3), np.uint8)
    fundus[np.hypot(xx - 80, yy - 60) <= 50] = rng.integers(60, 200, 3, dtype=np.uint8)
    recipe = GrahamRecipe()
    estimated = estimate_fundus_disc(fundus)
    np.testing.assert_array_equal(apply_recipe(recipe, fundus), graham(fundus, estimated, recipe))
    given = Disc(70.0, 50.0, 40.0)
    np.testing.assert_array_equal(
        apply_recipe(recipe, fundus, given), graham(fundus, given, recipe)
    )
    assert not np.array_equal(graham(fundus, given, recipe), graham(fundus, estimated, recipe))
    hu = rng.uniform(-1200, 600, (8, 8)).astype(np.float32)
    window = WindowRecipe(-600.0, 1500.0)
    np.testing.assert_array_equal(apply_recipe(window, hu), window_hu(hu, window))
    assert apply_recipe(NoRecipe(), fundus) is fundus


def test_a_malformed_recipe_names_its_problem():
    with pytest.raises(LesionPasteError) as err:
        recipe_from_dict({"name": "window", "level": 1, "colour": 2})
    assert str(err.value).startswith("malformed window recipe: ")
    with pytest.raises(LesionPasteError) as err:
        recipe_from_dict({})
    assert str(err.value) == "unknown preprocessing recipe None (known: graham, window, none)"
