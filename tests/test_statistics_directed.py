"""Directed tests for the statistics that decide reported results: the direction of every
statistic (a better scorer must come out better), the per-grade comparisons, the splits and
folds (membership pinned, groups and twin pairs never split); the schedule is in test_schedule.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from synth.normals import NormalImage, in_training_split, split
from train.delong import auc_ci, delong_covariance, paired_test
from train.evaluate import compare, comparisons, metrics
from train.folds import groups_of

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate

LABELS = np.array([0] * 30 + [1] * 20)


def _scores(separation: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, len(LABELS)) + separation * LABELS


def test_a_better_scorer_comes_out_better_in_the_paired_test():
    good, poor = _scores(2.0, 1), _scores(0.3, 2)
    forward = paired_test(good, poor, LABELS)
    assert forward["auc_a"] == pytest.approx(roc_auc_score(LABELS, good))
    assert forward["auc_b"] == pytest.approx(roc_auc_score(LABELS, poor))
    assert forward["auc_a"] > forward["auc_b"]
    assert forward["difference"] == pytest.approx(forward["auc_a"] - forward["auc_b"])
    assert forward["z"] > 2 and forward["p"] < 0.05
    backward = paired_test(poor, good, LABELS)
    assert backward["z"] == pytest.approx(-forward["z"]) and backward["difference"] < 0
    # the z is the difference over the DeLong standard error of the difference
    aucs, cov = delong_covariance(np.stack([good, poor]), LABELS)
    se = math.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert forward["z"] == pytest.approx((aucs[0] - aucs[1]) / se)
    assert forward["p"] == pytest.approx(2 * norm.sf(forward["z"]))


def test_identical_scorers_are_not_different():
    s = _scores(1.0, 3)
    result = paired_test(s, s, LABELS)
    assert result["difference"] == 0 and result["z"] == 0 and result["p"] == 1.0


def test_the_interval_is_centred_on_the_auc_and_narrows_with_separation_and_n():
    weak = auc_ci(_scores(0.5, 4), LABELS)
    assert weak["ci_low"] < weak["auc"] < weak["ci_high"]
    assert weak["auc"] == pytest.approx(roc_auc_score(LABELS, _scores(0.5, 4)))
    z = norm.ppf(0.975)
    assert weak["ci_high"] - weak["auc"] == pytest.approx(z * weak["se"])
    big = np.tile(LABELS, 4)
    rng = np.random.default_rng(4)
    wide = auc_ci(rng.normal(0, 1, len(big)) + 0.5 * big, big)
    assert wide["se"] < weak["se"]
    assert (weak["n_pos"], weak["n_neg"]) == (20, 30)


def test_an_inverted_scorer_has_the_mirrored_auc():
    s = _scores(1.5, 5)
    up, down = auc_ci(s, LABELS), auc_ci(-s, LABELS)
    assert up["auc"] == pytest.approx(1 - down["auc"]) and up["auc"] > 0.8
    assert up["se"] == pytest.approx(down["se"])


def test_per_grade_comparisons_take_grade_zero_against_each_grade():
    labels = np.array([0, 0, 0, 1, 1, 2, 4])
    chosen = comparisons(labels)
    assert sorted(chosen) == ["0v1", "0v2", "0v4", "0vall"]
    np.testing.assert_array_equal(chosen["0v2"], [1, 1, 1, 0, 0, 1, 0])
    assert chosen["0vall"].all()
    assert sorted(comparisons(np.array([0, 1, 0, 1]))) == ["0v1"]


def test_per_grade_aucs_see_which_grade_is_detected():
    labels = np.array([0] * 20 + [1] * 10 + [2] * 10)
    rng = np.random.default_rng(6)
    scores = rng.normal(0, 1, 40) + 3.0 * (labels == 2)  # only grade 2 is detectable
    auc = metrics(scores, labels)["auc"]
    assert auc["0v2"]["auc"] > 0.9 and auc["0v1"]["auc"] < 0.75
    assert auc["0v1"]["n_pos"] == 10 and auc["0v1"]["n_neg"] == 20
    assert auc["0vall"]["n_pos"] == 20
    assert auc["0v2"]["auc"] == pytest.approx(roc_auc_score(labels[labels != 1] == 2,
                                                            scores[labels != 1]))  # fmt: skip
    pairs = compare(scores, -scores, labels)
    assert set(pairs) == set(auc) == {"0v1", "0v2", "0vall"}
    assert pairs["0v1"]["auc_a"] == pytest.approx(auc["0v1"]["auc"])
    assert pairs["0v2"]["z"] > 0 and pairs["0v2"]["auc_a"] == pytest.approx(auc["0v2"]["auc"])


def test_the_training_split_is_the_documented_hash_rule_and_keeps_its_members():
    import hashlib

    ids = [f"{n}_{eye}" for n in range(10, 60) for eye in ("left", "right")]
    for image_id in ids:
        digest = hashlib.sha256(f"7:{image_id}".encode()).digest()
        assert in_training_split(image_id, 0.8, 7) == (
            int.from_bytes(digest[:8], "big") / 2**64 < 0.8
        )
    images = [NormalImage(i, None, 0) for i in ids]
    train = split(images, "train", 0.8, 7)
    rest = split(images, "rest", 0.8, 7)
    assert {i.image_id for i in train}.isdisjoint({i.image_id for i in rest})
    assert len(train) + len(rest) == len(ids)
    assert [i.image_id for i in split(images[::-1], "train", 0.8, 7)] == [
        i.image_id for i in train[::-1]
    ]  # independent of order
    assert split(images, "train", 0.8, 8) != train  # and of the seed


def test_the_validation_split_keeps_twin_pairs_together_and_is_pinned():
    from train.schedule import split_by_twin

    twin_ids = [f"t{i:02d}" for i in range(20) for _ in range(2)]
    val = split_by_twin(twin_ids, 0.25, seed=0)
    for a, b in zip(val[::2], val[1::2]):
        assert a == b  # the normal and its anomalous twin on the same side
    assert val.sum() == 10  # 5 of 20 pairs
    chosen = sorted({t for t, v in zip(twin_ids, val) if v})
    rng = np.random.default_rng(0)
    assert chosen == sorted(rng.permutation(sorted(set(twin_ids)))[:5].tolist())
    assert chosen != sorted(
        {t for t, v in zip(twin_ids, split_by_twin(twin_ids, 0.25, seed=1)) if v}
    )


def test_groups_come_from_eyepacs_and_mosmed_ids():
    ids = ["10007_left", "10007_right", "study_0255_z012", "IDRiD_03", "patient 1 (1)"]
    assert groups_of(ids, r"^(.*?)(?:_(?:left|right))?$").tolist()[:2] == ["10007", "10007"]
    from train.folds import DEFAULT_GROUP

    assert groups_of(["study_0255_z012", "study_0255_z013"], DEFAULT_GROUP).tolist() == [
        "study_0255",
        "study_0255",
    ]
