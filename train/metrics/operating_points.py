"""What a screening programme decides with: sensitivity and specificity at a threshold.

Conventions, used throughout:

* an image is **flagged** when its score is **above** the threshold (``score > t``);
* ``sensitivity`` is the share of anomalous images flagged, ``specificity`` the share of normal
  images not flagged;
* *sensitivity at specificity S*: the lowest threshold that leaves at least a share S of the
  normals unflagged (the ``ceil(S * n)``-th smallest normal score), and the sensitivity there;
* *specificity at sensitivity S*: the highest threshold that still flags at least a share S of
  the anomalous images, and the specificity there;
* intervals: percentile 95% bootstrap intervals (``numpy.percentile`` at 2.5 and 97.5),
  resampling images with replacement within each class (so that both classes stay present),
  from a seeded generator; the number of resamples is recorded with them.

A threshold from the synthetic validation pairs (``validation_thresholds``) needs no real
anomaly: it is the score below which a given share of the validation *normals* fall.
"""

from __future__ import annotations

import math

import numpy as np

from lesionpaste.train.metrics.auc import comparisons
from lesionpaste.train.metrics.pixel_metrics import check_n_boot, percentile_interval

#: the specificities at which sensitivity is reported, and the reverse
TARGETS = (0.90, 0.95)
#: the shares of validation normals that a synthetic threshold lets pass
PASS_RATES = (0.95, 0.90)


def _rank(share: float, n: int) -> int:
    """``ceil(share * n)`` without a float's last bit turning 19.0 into 20 (at least 1)."""
    return max(1, math.ceil(share * n - 1e-9))


def normal_quantile(normal_scores: np.ndarray, share: float) -> float:
    """The lowest threshold that leaves at least ``share`` of these normals unflagged.

    Args:
        normal_scores: ``(n,)`` scores of normal images (``n >= 1``).
        share: the share in (0, 1] that must pass.

    Returns:
        The ``ceil(share * n)``-th smallest score: every normal at or below it passes.
    """
    ordered = np.sort(np.asarray(normal_scores, np.float64))
    return float(ordered[_rank(share, len(ordered)) - 1])


def sensitivity_at_specificity(scores: np.ndarray, y: np.ndarray, specificity: float) -> float:
    """The sensitivity at the lowest threshold whose specificity is at least ``specificity``.

    Args:
        scores: ``(N,)`` scores.
        y: ``(N,)`` 0 (normal) or 1 (anomalous), both present.
        specificity: the specificity to reach, in (0, 1].

    Returns:
        The share of anomalous images scored above that threshold.
    """
    threshold = normal_quantile(scores[y == 0], specificity)
    return float(np.mean(scores[y == 1] > threshold))


def specificity_at_sensitivity(scores: np.ndarray, y: np.ndarray, sensitivity: float) -> float:
    """The specificity at the highest threshold whose sensitivity is at least ``sensitivity``.

    Flagging at least ``m = ceil(sensitivity * n_pos)`` anomalous images needs a threshold
    below the ``m``-th highest anomalous score; every normal scored below that one passes.

    Args:
        scores: ``(N,)`` scores.
        y: ``(N,)`` 0 (normal) or 1 (anomalous), both present.
        sensitivity: the sensitivity to reach, in (0, 1].

    Returns:
        The share of normal images scored below the ``m``-th highest anomalous score.
    """
    positives = np.sort(scores[y == 1])[::-1]
    bar = positives[_rank(sensitivity, len(positives)) - 1]
    return float(np.mean(scores[y == 0] < bar))


def _point_values(scores: np.ndarray, y: np.ndarray) -> dict[str, float]:
    out = {}
    for target in TARGETS:
        pct = round(100 * target)
        out[f"sens_at_spec_{pct}"] = sensitivity_at_specificity(scores, y, target)
        out[f"spec_at_sens_{pct}"] = specificity_at_sensitivity(scores, y, target)
    return out


def _resamples(y: np.ndarray, n_boot: int, rng: np.random.Generator):
    """Index arrays of ``n_boot`` resamples, drawn with replacement within each class."""
    groups = [np.flatnonzero(y == c) for c in np.unique(y)]
    for _ in range(n_boot):
        yield np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups])


def operating_points(
    scores: np.ndarray, labels: np.ndarray, n_boot: int, rng: np.random.Generator
) -> dict:
    """Sensitivity at 90% and 95% specificity and specificity at 90% and 95% sensitivity, with
    bootstrap intervals, for every comparison of ``train.metrics.auc.comparisons``.

    Args:
        scores: ``(N,)`` anomaly scores.
        labels: ``(N,)`` integer labels (0 normal).
        n_boot: bootstrap resamples for each comparison.
        rng: the bootstrap's generator.

    Returns:
        ``{comparison: {"sens_at_spec_90": {"value", "ci_low", "ci_high"}, "sens_at_spec_95",
        "spec_at_sens_90", "spec_at_sens_95", "n_pos", "n_neg"}}`` for each comparison with
        both classes.

    Raises:
        LesionPasteError: ``n_boot`` is not a positive whole number.
    """
    n_boot = check_n_boot(n_boot)
    out = {}
    for name, chosen in comparisons(labels).items():
        s, y = scores[chosen].astype(np.float64), (labels[chosen] > 0).astype(int)
        if len(set(y.tolist())) < 2:
            continue
        point = _point_values(s, y)
        boots = [_point_values(s[i], y[i]) for i in _resamples(y, n_boot, rng)]
        entry = {}
        for key, value in point.items():
            low, high, _ = percentile_interval([b[key] for b in boots])
            entry[key] = {"value": value, "ci_low": low, "ci_high": high}
        out[name] = {**entry, "n_pos": int(y.sum()), "n_neg": int((y == 0).sum())}
    return out


def validation_thresholds(scores: np.ndarray, labels: np.ndarray) -> dict | None:
    """The thresholds that let 95% and 90% of the synthetic validation normals pass.

    Only the normals' scores are used: no anomaly, synthetic or real, enters the choice.

    Args:
        scores: ``(N,)`` the trained model's scores of its validation images.
        labels: ``(N,)`` their labels (0 normal, 1 synthetic twin).

    Returns:
        ``{"pass_95": t, "pass_90": t, "n_normals": n}``, or None without validation normals.
    """
    normals = np.asarray(scores, np.float64)[np.asarray(labels) == 0]
    if not len(normals):
        return None
    out: dict = {f"pass_{round(100 * r)}": normal_quantile(normals, r) for r in PASS_RATES}
    out["n_normals"] = len(normals)
    return out


def _share(flags: np.ndarray, n_boot: int, rng: np.random.Generator) -> dict:
    """A share of flagged images with its bootstrap interval (``nan`` for no image)."""
    if not len(flags):
        return {"value": float("nan"), "ci_low": float("nan"), "ci_high": float("nan")}
    boots = [float(flags[rng.integers(0, len(flags), len(flags))].mean()) for _ in range(n_boot)]
    low, high, _ = percentile_interval(boots)
    return {"value": float(flags.mean()), "ci_low": low, "ci_high": high}


def apply_thresholds(
    scores: np.ndarray,
    labels: np.ndarray,
    thresholds: dict,
    n_boot: int,
    rng: np.random.Generator,
) -> dict:
    """Each synthetic threshold applied to an evaluation set: a confusion table by label, and
    sensitivity and specificity with bootstrap intervals.

    Args:
        scores: ``(N,)`` the evaluation images' scores.
        labels: ``(N,)`` their integer labels (0 normal, 1..4 DR grade or CT class).
        thresholds: ``validation_thresholds``'s result.
        n_boot: bootstrap resamples for each interval.
        rng: the bootstrap's generator.

    Returns:
        ``{"pass_95": {"threshold", "by_label": {"0": {"n", "flagged", "flagged_share":
        {"value", "ci_low", "ci_high"}}, ...}, "sensitivity": {...}, "specificity": {...}},
        "pass_90": ..., "n_validation_normals": n}``; sensitivity pools every non-zero label.

    Raises:
        LesionPasteError: ``n_boot`` is not a positive whole number.
    """
    n_boot = check_n_boot(n_boot)
    scores = np.asarray(scores, np.float64)
    out: dict = {"n_validation_normals": thresholds["n_normals"]}
    for rate in PASS_RATES:
        key = f"pass_{round(100 * rate)}"
        t = float(thresholds[key])
        flagged = scores > t
        by_label = {}
        for label in sorted(set(labels.tolist())):
            chosen = flagged[labels == label]
            by_label[str(label)] = {
                "n": len(chosen),
                "flagged": int(chosen.sum()),
                "flagged_share": _share(chosen, n_boot, rng),
            }
        out[key] = {
            "threshold": t,
            "by_label": by_label,
            "sensitivity": _share(flagged[labels > 0], n_boot, rng),
            "specificity": _share(~flagged[labels == 0], n_boot, rng),
        }
    return out
