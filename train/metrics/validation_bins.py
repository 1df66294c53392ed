"""The synthetic validation AUC split by what the anomalous twins hold.

One validation AUC hides what a detector can find: twins with 50 pasted microaneurysms are easy,
real early disease has a handful. Here the validation normals are set against the anomalous
twins of each lesion-count bin (1-5, 6-20, 21-50, more than 50 pasted lesions) and of each tier,
one AUC each, so a user sees before any real anomaly exists how few lesions the detector still
finds. ``lp-select --by few`` ranks runs by the fewest-lesion bin.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from lesionpaste.lesion_bins import LESION_BINS, in_bin

#: the bin of the fewest lesions: the hardest to find, and ``lp-select --by few``'s criterion
FEWEST_BIN = LESION_BINS[0][0]


def auc_against_normals(scores: np.ndarray, labels: np.ndarray, chosen: np.ndarray) -> dict:
    """Every normal image against the chosen anomalous ones.

    Args:
        scores: ``(N,)`` image scores (higher: more anomalous).
        labels: ``(N,)`` 0 normal, 1 anomalous.
        chosen: ``(N,)`` boolean, the anomalous images to set against the normals.

    Returns:
        ``{"auc": float or None, "anomalous": k}``: None where there is no normal image or no
        chosen anomalous one; ``k`` the chosen anomalous images.
    """
    normal = labels == 0
    picked = chosen & (labels == 1)
    k = int(picked.sum())
    if not k or not normal.any():
        return {"auc": None, "anomalous": k}
    keep = normal | picked
    return {"auc": float(roc_auc_score(labels[keep], scores[keep])), "anomalous": k}


def aucs_by_lesion_count(
    scores: np.ndarray, labels: np.ndarray, n_lesions: np.ndarray
) -> dict[str, dict]:
    """The normals against the anomalous twins of each ``LESION_BINS`` bin.

    Args:
        scores: ``(N,)`` image scores.
        labels: ``(N,)`` 0 normal, 1 anomalous.
        n_lesions: ``(N,)`` pasted lesions per image (a normal's is not used).

    Returns:
        ``{bin name: auc_against_normals(...)}`` in bin order.
    """
    out = {}
    for name, low, high in LESION_BINS:  # lesionpaste/lesion_bins.py, as the dataset card
        out[name] = auc_against_normals(scores, labels, in_bin(n_lesions, low, high))
    return out


def aucs_by_tier(scores: np.ndarray, labels: np.ndarray, tiers: np.ndarray) -> dict[str, dict]:
    """The normals against the anomalous twins of each tier present.

    Args:
        scores: ``(N,)`` image scores.
        labels: ``(N,)`` 0 normal, 1 anomalous.
        tiers: ``(N,)`` each anomalous twin's tier (1-3; a normal's is not used).

    Returns:
        ``{"1": auc_against_normals(...), ...}`` for each tier of an anomalous twin, in order.
    """
    present = sorted({int(t) for t in tiers[labels == 1]})
    return {str(t): auc_against_normals(scores, labels, tiers == t) for t in present}
