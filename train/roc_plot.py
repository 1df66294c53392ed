"""The ROC picture of an evaluation (``roc.png``): one curve per comparison, with its AUC and
DeLong 95% interval in the legend."""

from __future__ import annotations

import cv2
import numpy as np
from sklearn.metrics import roc_curve

from train.evaluate import comparisons

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
        e = result["auc"][name]
        legend = f"{name}: {e['auc']:.3f} [{e['ci_low']:.3f}, {e['ci_high']:.3f}]"
        _text(image, legend, (x0 + size + 15, MARGIN + 20 + 22 * i), 0.45, colour)
    return image
