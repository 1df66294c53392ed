"""The ROC picture draws each comparison's curve where its ROC lies."""

from __future__ import annotations

import numpy as np

from lesionpaste.train.evaluation.roc_plot import COLOURS, MARGIN, roc_picture
from lesionpaste.train.metrics.auc import metrics


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


def test_operating_points_are_marked_where_they_lie_on_the_curve():
    from lesionpaste.train.metrics.operating_points import operating_points

    rng = np.random.default_rng(0)
    labels = np.array([0] * 200 + [1] * 200)
    scores = rng.normal(labels * 1.5, 1.0)
    result = metrics(scores, labels)
    size = 400
    bare = roc_picture(scores, labels, result, size=size)
    result["operating_points"] = operating_points(scores, labels, 20, rng)
    # a threshold at the middle: a square where its (FPR, TPR) falls
    t = float(np.median(scores))
    flagged = scores > t
    fpr, tpr = flagged[labels == 0].mean(), flagged[labels == 1].mean()
    result["synthetic_thresholds"] = {"pass_95": {"threshold": t}, "pass_90": {"threshold": t}}
    marked = roc_picture(scores, labels, result, size=size)
    x0, y0 = MARGIN, MARGIN + size
    x, y = int(x0 + fpr * size), int(y0 - tpr * size)
    square_edge = marked[y - 5, x - 5 : x + 6]  # the square's top side, in the curve's colour
    assert (square_edge == np.array(COLOURS[0])).all(axis=-1).sum() >= 8
    sens = result["operating_points"]["0v1"]["sens_at_spec_95"]["value"]
    circle = marked[
        int(y0 - sens * size) - 8 : int(y0 - sens * size) + 9, x0 : x0 + int(0.1 * size)
    ]
    before = bare[int(y0 - sens * size) - 8 : int(y0 - sens * size) + 9, x0 : x0 + int(0.1 * size)]
    coloured = (circle == np.array(COLOURS[0])).all(axis=-1).sum()
    assert coloured > (before == np.array(COLOURS[0])).all(axis=-1).sum() + 10  # the circle
