"""The image scores of a run with maps, and the choice among them (train/metrics/image_scores.py)."""

from __future__ import annotations

import numpy as np
import pytest

from lesionpaste.train.metrics.image_scores import (
    IMAGE_SCORES,
    TOP_K_FRACTION,
    choose_image_score,
    image_scores,
    map_summary,
    validation_aucs,
)

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate


def test_each_image_score_is_what_its_name_says():
    maps = np.zeros((2, 10, 10))
    maps[0, 0, 0] = 0.9  # one hot pixel: the max, and the top 1% (1 of 100 pixels)
    maps[1] = 0.2
    probabilities = np.array([0.1, 0.7])
    scores = image_scores(probabilities, maps)
    assert set(scores) == set(IMAGE_SCORES)
    np.testing.assert_allclose(scores["classifier"], [0.1, 0.7])
    np.testing.assert_allclose(scores["map_max"], [0.9, 0.2])
    np.testing.assert_allclose(scores["map_topk"], [0.9, 0.2])
    np.testing.assert_allclose(scores["combined"], [0.5, 0.45])


def test_the_top_k_score_averages_the_top_one_percent():
    maps = np.arange(400, dtype=float).reshape(1, 20, 20)  # top 1% = the 4 highest pixels
    assert TOP_K_FRACTION == 0.01
    assert image_scores(np.zeros(1), maps)["map_topk"][0] == pytest.approx(
        np.mean([396, 397, 398, 399])
    )


def test_the_choice_is_the_best_validation_auc_and_ties_go_to_the_first():
    assert choose_image_score({"classifier": 0.7, "map_max": 0.9, "map_topk": 0.8}) == "map_max"
    assert choose_image_score({"classifier": 0.9, "combined": 0.9}) == "classifier"
    assert choose_image_score({}) == "classifier"


def test_validation_aucs_need_both_classes():
    scores = image_scores(np.array([0.2, 0.8]), np.zeros((2, 4, 4)))
    assert validation_aucs(scores, np.array([1, 1])) == {}
    assert validation_aucs(scores, np.array([0, 1]))["classifier"] == 1.0


def _validation_pairs(rng, n: int, cells: int, background: float, lesion: float):
    """``n`` validation images alternating normal and twin: each twin's mask covers ``cells``
    map cells (4 x 4 pixels each, stride 4) in row 1 from column 1, where its map is
    ``lesion``; elsewhere the maps are uniform in [0, ``background``)."""
    labels = np.array([0, 1] * (n // 2))
    masks = np.zeros((n, 16, 16), np.uint8)
    masks[labels == 1, 4:8, 4 : 4 + 4 * cells] = 1
    maps = rng.uniform(0, background, (n, 4, 4))
    maps[labels == 1, 1, 1 : 1 + cells] = lesion
    return labels, masks, maps


def test_the_summary_picks_the_map_when_only_the_map_separates():
    rng = np.random.default_rng(0)
    labels, masks, maps = _validation_pairs(rng, 20, cells=1, background=0.2, lesion=0.9)
    probabilities = rng.uniform(0, 1, 20)  # a classifier at chance
    summary = map_summary(probabilities, maps, labels, masks)
    assert summary["image_score"] in ("map_max", "map_topk")
    assert summary["val_auc_by_score"]["map_max"] == 1.0
    assert 0 < summary["pixel_threshold"] < 1 and summary["val_dice"] > 0.3
    forced = map_summary(probabilities, maps, labels, masks, image_score="classifier")
    assert forced["image_score"] == "classifier"


def test_no_image_gives_empty_scores():
    scores = image_scores(np.zeros(0), np.zeros((0, 4, 4)))
    assert set(scores) == set(IMAGE_SCORES)
    assert all(s.shape == (0,) for s in scores.values())


def test_the_summary_records_every_field_and_dice_and_iou_agree():
    rng = np.random.default_rng(1)
    labels, masks, maps = _validation_pairs(rng, 12, cells=2, background=0.3, lesion=0.8)
    summary = map_summary(rng.uniform(0, 1, 12), maps, labels, masks, image_score="map_max")
    assert set(summary) == {"image_score", "image_score_option", "val_auc_by_score",
                            "pixel_threshold", "val_dice", "val_iou", "n_val",
                            "top_k_fraction"}  # fmt: skip
    assert (summary["image_score"], summary["image_score_option"]) == ("map_max", "map_max")
    assert (summary["n_val"], summary["top_k_fraction"]) == (12, TOP_K_FRACTION)
    dice, iou = summary["val_dice"], summary["val_iou"]
    assert 0 < iou < dice < 1 and iou == pytest.approx(dice / (2 - dice))
    # without a pasted pixel there is no pixel threshold to choose
    empty = map_summary(rng.uniform(0, 1, 12), maps, labels, np.zeros_like(masks))
    assert (empty["pixel_threshold"], empty["val_dice"], empty["val_iou"]) == (None, None, None)
    assert empty["image_score_option"] == "auto"


def test_upsampled_maps_are_float32_at_the_image_size():
    from lesionpaste.train.metrics.image_scores import upsample_maps

    out = upsample_maps(np.array([[[0.0, 1.0], [1.0, 0.0]]]), (4, 6))
    assert len(out) == 1 and out[0].shape == (4, 6) and out[0].dtype == np.float32
    assert out[0][0, 0] == 0.0 and out[0][0, -1] == 1.0  # corners keep their cells' values
