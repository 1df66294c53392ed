"""The fast DeLong algorithm against an independent slow implementation and scikit-learn."""

import itertools
import math

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from lesionpaste.train.metrics.delong import auc_ci, delong_covariance, paired_test

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate


def slow_delong(scores: np.ndarray, labels: np.ndarray):
    """DeLong et al. (1988) from the definitions: structural components over all pairs."""
    labels = labels.astype(bool)
    pos, neg = scores[:, labels], scores[:, ~labels]
    m, n = pos.shape[1], neg.shape[1]
    k = len(scores)
    v10 = np.zeros((k, m))
    v01 = np.zeros((k, n))
    for r in range(k):
        for i, j in itertools.product(range(m), range(n)):
            psi = 1.0 if pos[r, i] > neg[r, j] else 0.5 if pos[r, i] == neg[r, j] else 0.0
            v10[r, i] += psi / n
            v01[r, j] += psi / m
    aucs = v10.mean(axis=1)
    s10 = np.array(
        [
            [np.sum((v10[a] - aucs[a]) * (v10[b] - aucs[b])) / (m - 1) for b in range(k)]
            for a in range(k)
        ]
    )
    s01 = np.array(
        [
            [np.sum((v01[a] - aucs[a]) * (v01[b] - aucs[b])) / (n - 1) for b in range(k)]
            for a in range(k)
        ]
    )
    return aucs, s10 / m + s01 / n


@pytest.mark.parametrize("seed", range(6))
def test_fast_delong_equals_the_definition(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(12, 60))
    labels = rng.random(n) < 0.4
    labels[:2] = [True, False]
    base = rng.normal(size=n) + labels
    # rounded scores: many ties, as real classifiers' scores have
    scores = np.stack([np.round(base, 1), np.round(base + rng.normal(size=n), 1), rng.random(n)])
    fast_aucs, fast_cov = delong_covariance(scores, labels)
    slow_aucs, slow_cov = slow_delong(scores, labels)
    np.testing.assert_allclose(fast_aucs, slow_aucs, atol=1e-12)
    np.testing.assert_allclose(fast_cov, slow_cov, atol=1e-12)
    for r in range(3):
        assert fast_aucs[r] == pytest.approx(roc_auc_score(labels, scores[r]), abs=1e-12)


def test_confidence_interval_and_counts():
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    scores = np.array([0.9, 0.8, 0.3, 0.4, 0.2, 0.1, 0.35, 0.7])
    ci = auc_ci(scores, labels)
    aucs, cov = slow_delong(scores[None], labels)
    assert ci["auc"] == pytest.approx(aucs[0]) and ci["se"] == pytest.approx(np.sqrt(cov[0, 0]))
    assert ci["ci_low"] == pytest.approx(max(0, aucs[0] - 1.959964 * np.sqrt(cov[0, 0])), abs=1e-6)
    assert (ci["n_pos"], ci["n_neg"]) == (4, 4)
    perfect = auc_ci(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]))
    assert perfect["auc"] == 1.0 and perfect["ci_low"] == perfect["ci_high"] == 1.0


def test_paired_test_is_antisymmetric_and_detects_a_real_difference():
    rng = np.random.default_rng(3)
    labels = np.r_[np.ones(150), np.zeros(150)].astype(int)
    good = labels * 1.5 + rng.normal(size=300)
    poor = labels * 0.2 + rng.normal(size=300)
    ab, ba = paired_test(good, poor, labels), paired_test(poor, good, labels)
    assert ab["z"] == pytest.approx(-ba["z"]) and ab["p"] == pytest.approx(ba["p"])
    assert ab["p"] < 1e-6
    same = paired_test(good, good + 0.0, labels)
    assert same["p"] == 1.0


def test_published_example_hanley_mcneil_1982():
    """Hanley and McNeil (Radiology 1982), table of 109 CT ratings: 58 normal cases rated
    1..5 as (33, 6, 6, 11, 2), 51 abnormal as (3, 2, 2, 11, 33). They publish the Wilcoxon
    area 0.893 with standard error 0.032 from their closed-form approximation; DeLong's
    nonparametric standard error must agree with that approximation closely."""
    ratings = np.arange(1, 6)
    negatives = np.repeat(ratings, [33, 6, 6, 11, 2])
    positives = np.repeat(ratings, [3, 2, 2, 11, 33])
    scores = np.r_[positives, negatives].astype(float)
    labels = np.r_[np.ones(51), np.zeros(58)]
    result = auc_ci(scores, labels)
    assert round(result["auc"], 3) == 0.893
    assert result["se"] == pytest.approx(0.032, abs=0.002)


@pytest.mark.parametrize("m, n", [(2, 2), (2, 7), (7, 2), (3, 3)])
def test_fast_delong_equals_the_definition_with_two_or_three_cases_of_a_class(m, n):
    rng = np.random.default_rng(m * 10 + n)
    labels = np.array([True] * m + [False] * n)
    scores = np.stack([rng.normal(size=m + n) + labels, rng.normal(size=m + n)])
    fast_aucs, fast_cov = delong_covariance(scores, labels)
    slow_aucs, slow_cov = slow_delong(scores, labels)
    np.testing.assert_allclose(fast_aucs, slow_aucs, atol=1e-12)
    np.testing.assert_allclose(fast_cov, slow_cov, atol=1e-12)


def test_one_case_of_a_class_has_no_spread_from_that_class():
    scores = np.array([[0.9, 0.1, 0.5, 0.3, 0.95]])
    labels = np.array([True, False, False, False, False])  # m = 1
    aucs, cov = delong_covariance(scores, labels)
    neg = scores[0, 1:]
    v01 = (scores[0, 0] > neg).astype(float)  # per negative: is the one positive above it
    assert aucs[0] == pytest.approx(0.75)
    assert cov[0, 0] == pytest.approx(np.var(v01, ddof=1) / 4)  # only the negatives' term
    aucs, cov = delong_covariance(scores, ~labels)  # n = 1
    assert np.isfinite(cov).all() and cov.shape == (1, 1)


def test_a_class_without_cases_is_refused_by_name():
    with pytest.raises(ValueError, match="at least one positive and one negative case"):
        delong_covariance(np.array([0.1, 0.2]), np.array([0, 0]))
    with pytest.raises(ValueError, match="at least one positive and one negative case"):
        delong_covariance(np.array([0.1, 0.2]), np.array([1, 1]))


def test_intervals_are_clipped_to_zero_and_one():
    labels = np.array([1] * 6 + [0] * 6)
    nearly = np.array([0.9, 0.8, 0.85, 0.95, 0.7, 0.3, 0.1, 0.2, 0.4, 0.35, 0.15, 0.05])
    high = auc_ci(nearly, labels)
    assert high["auc"] > 0.9 and high["auc"] + 1.96 * high["se"] > 1 and high["ci_high"] == 1.0
    low = auc_ci(-nearly, labels)
    assert low["auc"] - 1.96 * low["se"] < 0 and low["ci_low"] == 0.0


def test_two_scorers_without_variance_but_with_a_difference_are_certainly_different():
    labels = np.array([1, 1, 0, 0])
    perfect = np.array([0.9, 0.8, 0.2, 0.1])
    result = paired_test(perfect, -perfect, labels)
    assert result["difference"] == 1.0 and result["z"] == math.inf and result["p"] == 0.0


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
