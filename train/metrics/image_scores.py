"""Image-level scores of a model with an anomaly map, and the choice among them.

A run trained with ``--maps`` can score an image four ways: the classifier's probability, the
map's maximum, the mean of the map's top 1% of pixels, or the mean of the classifier's
probability and that top-1% mean. ``--image-score auto`` takes whichever scores the held-out
synthetic validation pairs best (never the evaluation set).
"""

from __future__ import annotations

import cv2
import numpy as np
from sklearn.metrics import roc_auc_score

#: the image scores a run with maps offers, in the order ties are broken
IMAGE_SCORES = ("classifier", "map_max", "map_topk", "combined")
#: the share of a map's pixels whose mean is the ``map_topk`` score
TOP_K_FRACTION = 0.01


def image_scores(probabilities: np.ndarray, maps: np.ndarray) -> dict[str, np.ndarray]:
    """Every image score of ``IMAGE_SCORES`` for a batch of images.

    Args:
        probabilities: ``(N,)`` classifier probabilities of the anomalous class.
        maps: ``(N, h, w)`` map probabilities in [0, 1] (any resolution).

    Returns:
        ``{name: (N,) float64 scores}`` for each name of ``IMAGE_SCORES``.
    """
    if len(maps) == 0:
        return {name: np.zeros(0) for name in IMAGE_SCORES}
    flat = maps.reshape(len(maps), -1).astype(np.float64)
    k = max(1, round(TOP_K_FRACTION * flat.shape[1]))
    top = np.sort(flat, axis=1)[:, -k:].mean(axis=1)
    probabilities = probabilities.astype(np.float64)
    return {
        "classifier": probabilities,
        "map_max": flat.max(axis=1),
        "map_topk": top,
        "combined": (probabilities + top) / 2,
    }


def validation_aucs(scores: dict[str, np.ndarray], labels: np.ndarray) -> dict[str, float]:
    """The AUC of each image score on labelled (validation) images.

    Args:
        scores: ``image_scores``'s result.
        labels: ``(N,)`` labels 0/1.

    Returns:
        ``{name: AUC}``, empty when the labels hold one class only.
    """
    if len(set(labels.tolist())) != 2:
        return {}
    return {name: float(roc_auc_score(labels, s)) for name, s in scores.items()}


def choose_image_score(aucs: dict[str, float]) -> str:
    """The image score with the highest validation AUC (ties: the first of ``IMAGE_SCORES``).

    Args:
        aucs: ``validation_aucs``'s result.

    Returns:
        A name of ``IMAGE_SCORES``; ``"classifier"`` when no AUC is known.
    """
    known = [name for name in IMAGE_SCORES if name in aucs]
    if not known:
        return "classifier"
    return max(known, key=lambda name: (aucs[name], -IMAGE_SCORES.index(name)))


def upsample_maps(maps: np.ndarray, shape: tuple[int, int]) -> list[np.ndarray]:
    """Map probabilities at an image size (bilinear, as ``train.models.decoder.probability_maps``
    upsamples logits; here the probabilities, for maps already computed).

    Args:
        maps: ``(N, h, w)`` map probabilities.
        shape: ``(H, W)`` of the output.

    Returns:
        One ``(H, W)`` ``float32`` map per image.
    """
    h, w = shape
    return [cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) for m in maps]


def map_summary(
    probabilities: np.ndarray,
    maps: np.ndarray,
    labels: np.ndarray,
    masks: np.ndarray,
    image_score: str = "auto",
) -> dict:
    """What a run with maps decides on its synthetic validation pairs, for ``lp-eval``.

    Args:
        probabilities: ``(N,)`` classifier probabilities of the validation images.
        maps: ``(N, h, w)`` their map probabilities.
        labels: ``(N,)`` labels 0/1.
        masks: ``(N, H, W)`` their pasted masks (0/1).
        image_score: ``"auto"`` or a name of ``IMAGE_SCORES``.

    Returns:
        ``{"image_score", "image_score_option", "val_auc_by_score", "pixel_threshold",
        "val_dice", "val_iou", "n_val", "top_k_fraction"}``: the image score used (the best
        on validation with ``auto``) and the pixel threshold with the best pooled Dice.
    """
    from lesionpaste.train.metrics.pixel_metrics import best_threshold, dice_iou

    aucs = validation_aucs(image_scores(probabilities, maps), labels)
    chosen = choose_image_score(aucs) if image_score == "auto" else image_score
    full = upsample_maps(maps, masks.shape[1:])
    truth = [m > 0 for m in masks]
    summary: dict = {
        "image_score": chosen,
        "image_score_option": image_score,
        "val_auc_by_score": aucs,
        "n_val": len(labels),
        "top_k_fraction": TOP_K_FRACTION,
        "pixel_threshold": None,
        "val_dice": None,
        "val_iou": None,
    }
    if any(t.any() for t in truth):
        threshold = best_threshold(full, truth)
        dice, iou = dice_iou(full, truth, threshold)
        summary.update(pixel_threshold=float(threshold), val_dice=dice, val_iou=iou)
    return summary
