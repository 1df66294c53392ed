"""The ROC picture of an evaluation (``roc.png``): one curve per comparison, with its AUC and
DeLong 95% interval in the legend, and its operating points marked: a circle at sensitivity at
90% and 95% specificity, a square at each threshold chosen on the synthetic validation normals
(``train.metrics.operating_points``)."""

from __future__ import annotations

import cv2
import numpy as np
from sklearn.metrics import roc_curve

from lesionpaste.train.metrics.auc import comparisons
from lesionpaste.train.metrics.operating_points import normal_quantile

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (0, 0, 0)]
MARGIN = 50
LEGEND_WIDTH = 230


def _text(image: np.ndarray, text: str, xy: tuple[int, int], scale: float, colour=(0, 0, 0)):
    cv2.putText(image, text, xy, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def roc_picture(
    scores: np.ndarray, labels: np.ndarray, result: dict, size: int = 520
) -> np.ndarray:
    """An RGB plot of the ROC curves of the comparisons in ``result["auc"]``: the plot area is
    ``size`` pixels square, its lower-left corner (FPR 0, TPR 0) at ``(MARGIN, MARGIN + size)``.

    Args:
        scores: ``(N,)`` anomaly scores.
        labels: ``(N,)`` integer labels.
        result: the ``metrics`` result; only comparisons in ``result["auc"]`` are drawn.
        size: the plot area's side, in pixels.

    Returns:
        ``(size + 2 * MARGIN, size + 2 * MARGIN + LEGEND_WIDTH, 3)`` ``uint8`` picture.
    """
    image = np.full((size + 2 * MARGIN, size + 2 * MARGIN + LEGEND_WIDTH, 3), 255, np.uint8)
    x0, y0 = MARGIN, MARGIN + size

    def point(fpr: float, tpr: float) -> tuple[int, int]:
        return int(x0 + fpr * size), int(y0 - tpr * size)

    cv2.rectangle(image, point(0, 1), point(1, 0), (0, 0, 0), 1)
    cv2.line(image, point(0, 0), point(1, 1), (180, 180, 180), 1, cv2.LINE_AA)
    for t in np.linspace(0, 1, 6):
        _text(image, f"{t:.1f}", (int(x0 + t * size) - 10, y0 + 18), 0.4)
        _text(image, f"{t:.1f}", (x0 - 32, int(y0 - t * size) + 4), 0.4)
    _text(image, "false positive rate", (x0 + size // 2 - 70, y0 + 40), 0.5)
    _text(image, "true positive rate", (4, MARGIN - 14), 0.5)
    for i, (name, chosen) in enumerate(comparisons(labels).items()):
        if name not in result["auc"]:
            continue
        colour = COLOURS[i % len(COLOURS)]
        fpr, tpr, _ = roc_curve((labels[chosen] > 0).astype(int), scores[chosen])
        pts = np.array([point(f, t) for f, t in zip(fpr, tpr)], np.int32)
        cv2.polylines(image, [pts], False, colour, 2, cv2.LINE_AA)
        for fpr_at, tpr_at, square in _marks(scores[chosen], labels[chosen], name, result):
            centre = point(fpr_at, tpr_at)
            if square:
                cv2.rectangle(image, (centre[0] - 5, centre[1] - 5),
                              (centre[0] + 5, centre[1] + 5), colour, 2)  # fmt: skip
            else:
                cv2.circle(image, centre, 5, colour, 2, cv2.LINE_AA)
        e = result["auc"][name]
        legend = f"{name}: {e['auc']:.3f} [{e['ci_low']:.3f}, {e['ci_high']:.3f}]"
        _text(image, legend, (x0 + size + 15, MARGIN + 20 + 22 * i), 0.45, colour)
    rows = len(result["auc"])
    _text(image, "o sens. at 90/95% spec.", (x0 + size + 15, MARGIN + 40 + 22 * rows), 0.4)
    if result.get("synthetic_thresholds"):
        _text(image, "[] synthetic thresholds", (x0 + size + 15, MARGIN + 58 + 22 * rows), 0.4)
    return image


def _marks(scores: np.ndarray, labels: np.ndarray, name: str, result: dict) -> list:
    """``(fpr, tpr, square)`` of the operating points to mark on one comparison's curve."""
    y = labels > 0
    marks = []
    for key in ("sens_at_spec_90", "sens_at_spec_95"):
        entry = result.get("operating_points", {}).get(name, {}).get(key)
        if entry is not None:
            target = int(key.rsplit("_", 1)[1]) / 100
            threshold = normal_quantile(scores[~y], target)
            marks.append((float(np.mean(scores[~y] > threshold)), entry["value"], False))
    for key in ("pass_95", "pass_90"):
        entry = (result.get("synthetic_thresholds") or {}).get(key)
        if entry is not None:
            flagged = scores > entry["threshold"]
            marks.append((float(flagged[~y].mean()), float(flagged[y].mean()), True))
    return marks
