import cv2
import numpy as np
import pytest

from lesionpaste.errors import LesionPasteError
from lesionpaste.recipes import (
    Disc,
    GrahamRecipe,
    WindowRecipe,
    disc_mask,
    estimate_fundus_disc,
    gaussian_low_pass,
    graham,
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
