"""The ROC picture draws each comparison's curve where its ROC lies."""

from __future__ import annotations

import numpy as np

from train.evaluate import metrics
from train.roc_plot import COLOURS, MARGIN, roc_picture


def test_a_perfect_scorer_is_drawn_up_the_left_edge_and_along_the_top():
    labels = np.array([0] * 20 + [1] * 20)
    scores = labels + np.linspace(0, 0.5, 40)  # every anomaly above every normal: AUC 1
    result = metrics(scores, labels)
    size = 200
    image = roc_picture(scores, labels, result, size=size)
    assert image.shape == (size + 2 * MARGIN, size + 2 * MARGIN + 230, 3)
    colour = np.array(COLOURS[0])
    x0, y0 = MARGIN, MARGIN + size
    left = image[y0 - size // 2, x0]  # FPR 0, TPR 0.5
    top = image[y0 - size, x0 + size // 2]  # FPR 0.5, TPR 1
    middle = image[y0 - size // 2, x0 + size // 2]  # on the chance diagonal: not the curve
    assert (left == colour).all() and (top == colour).all()
    assert not (middle == colour).all()
    legend = image[MARGIN : MARGIN + 30, x0 + size + 15 :]
    assert (legend == colour).all(axis=-1).any()  # the legend line, in the curve's colour


def test_a_comparison_without_a_result_is_not_drawn():
    labels = np.array([0] * 10 + [1] * 10)
    scores = labels.astype(float)
    image = roc_picture(scores, labels, {"auc": {}}, size=100)
    assert not (image == np.array(COLOURS[0])).all(axis=-1).any()
