"""DeLong's variance of the ROC AUC and the paired test, by Sun and Xu's fast algorithm.

X. Sun and W. Xu, "Fast implementation of DeLong's algorithm for comparing the areas under
correlated receiver operating characteristic curves", IEEE Signal Processing Letters 21(11),
2014. AUCs themselves come from scikit-learn where a single AUC is wanted; here they fall out of
the same mid-ranks and agree with it exactly.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm, rankdata


def _midranks(x: np.ndarray) -> np.ndarray:
    return rankdata(x, method="average", axis=-1)


def delong_covariance(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and their DeLong covariance matrix for ``k`` score vectors on the same cases.

    Args:
        scores: ``(k, n)`` or ``(n,)`` scores, higher meaning positive.
        labels: ``(n,)`` 0/1 labels.

    Returns:
        ``(k,)`` AUCs and the ``(k, k)`` covariance matrix.

    Raises:
        ValueError: ``labels`` lack positives or negatives.
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    labels = np.asarray(labels).astype(bool)
    m, n = int(labels.sum()), int((~labels).sum())
    if m == 0 or n == 0:
        raise ValueError("DeLong needs at least one positive and one negative case")
    pos, neg = scores[:, labels], scores[:, ~labels]
    tx, ty = _midranks(pos), _midranks(neg)
    tz = _midranks(np.concatenate([pos, neg], axis=1))
    aucs = tz[:, :m].sum(axis=1) / (m * n) - (m + 1.0) / (2.0 * n)
    v01 = (tz[:, :m] - tx) / n  # per positive: fraction of negatives below it
    v10 = 1.0 - (tz[:, m:] - ty) / m  # per negative: fraction of positives above it
    sx = np.atleast_2d(np.cov(v01)) if m > 1 else np.zeros((len(scores), len(scores)))
    sy = np.atleast_2d(np.cov(v10)) if n > 1 else np.zeros((len(scores), len(scores)))
    return aucs, sx / m + sy / n


def auc_ci(
    scores: np.ndarray, labels: np.ndarray, level: float = 0.95, auc: float | None = None
) -> dict:
    """AUC with its DeLong confidence interval (normal approximation, clipped to [0, 1]).

    Args:
        scores: ``(n,)`` scores, higher meaning positive.
        labels: ``(n,)`` 0/1 labels, both present.
        level: the interval's confidence level.
        auc: the point estimate to centre on (e.g. scikit-learn's); by default the mid-rank
            one computed here (equal up to rounding).

    Returns:
        ``{"auc", "ci_low", "ci_high", "se", "n_pos", "n_neg"}``.

    Raises:
        ValueError: ``labels`` lack positives or negatives.
    """
    aucs, cov = delong_covariance(scores, labels)
    auc = min(1.0, max(0.0, float(aucs[0]) if auc is None else float(auc)))
    se = math.sqrt(max(float(cov[0, 0]), 0.0))
    z = float(norm.ppf(0.5 + level / 2.0))
    labels = np.asarray(labels).astype(bool)
    return {
        "auc": auc,
        "ci_low": max(0.0, auc - z * se),
        "ci_high": min(1.0, auc + z * se),
        "se": se,
        "n_pos": int(labels.sum()),
        "n_neg": int((~labels).sum()),
    }


def paired_test(scores_a: np.ndarray, scores_b: np.ndarray, labels: np.ndarray) -> dict:
    """DeLong's test that two scorings of the same cases have equal AUC (two-sided).

    Args:
        scores_a: ``(n,)`` scores of the first method.
        scores_b: ``(n,)`` scores of the second method, for the same cases.
        labels: ``(n,)`` 0/1 labels, both present.

    Returns:
        ``{"auc_a", "auc_b", "difference", "z", "p"}`` (difference = ``auc_a - auc_b``).

    Raises:
        ValueError: ``labels`` lack positives or negatives.
    """
    aucs, cov = delong_covariance(np.stack([scores_a, scores_b]), labels)
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    diff = float(aucs[0] - aucs[1])
    if var <= 0:
        z, p = (0.0, 1.0) if diff == 0 else (math.copysign(math.inf, diff), 0.0)
    else:
        z = diff / math.sqrt(var)
        p = float(2.0 * norm.sf(abs(z)))
    return {"auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "difference": diff, "z": z, "p": p}
