"""Evaluation as in the paper: ROC AUC for 0 vs 1..4 and 0 vs all, with DeLong intervals."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from lesionpaste.files import open_regular, write_text_atomic
from lesionpaste.train.metrics.delong import auc_ci, paired_test


def comparisons(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Which images enter each AUC: ``0vK`` (grade 0 against grade K) and ``0vall``.

    A binary set (labels 0/1) has the single comparison ``0v1``.

    Args:
        labels: ``(N,)`` integer labels (0 normal, 1..4 DR grade or CT class).

    Returns:
        ``{name: (N,) boolean selection}``, ``0vall`` only with more than one non-zero label.
    """
    present = sorted(set(labels.tolist()) - {0})
    out = {f"0v{k}": (labels == 0) | (labels == k) for k in present}
    if len(present) > 1:
        out["0vall"] = np.ones(len(labels), bool)
    return out


def metrics(scores: np.ndarray, labels: np.ndarray) -> dict:
    """``{"auc": {"0v1": {"auc", "ci_low", "ci_high", "n_pos", "n_neg", "se"}, ...}}``.

    Args:
        scores: ``(N,)`` anomaly scores.
        labels: ``(N,)`` integer labels.

    Returns:
        The AUC and DeLong interval of each comparison that has both classes.
    """
    result = {}
    for name, chosen in comparisons(labels).items():
        y = (labels[chosen] > 0).astype(int)
        if len(set(y.tolist())) < 2:
            continue
        # the AUC is scikit-learn's; its interval comes from DeLong's variance
        result[name] = auc_ci(scores[chosen], y, auc=roc_auc_score(y, scores[chosen]))
    return {"auc": result}


def compare(scores_a: np.ndarray, scores_b: np.ndarray, labels: np.ndarray) -> dict:
    """Paired DeLong tests (this run against another) for every comparison.

    Args:
        scores_a: ``(N,)`` this run's scores.
        scores_b: ``(N,)`` the other method's scores of the same images.
        labels: ``(N,)`` integer labels.

    Returns:
        ``{name: paired_test result}`` for each comparison that has both classes.
    """
    out = {}
    for name, chosen in comparisons(labels).items():
        y = (labels[chosen] > 0).astype(int)
        if len(set(y.tolist())) == 2:
            out[name] = paired_test(scores_a[chosen], scores_b[chosen], y)
    return out


def write_scores(path: Path, paths: list[str], labels: np.ndarray, scores: np.ndarray) -> None:
    """``scores.csv`` (``path,label,score``), written atomically.

    Args:
        path: the CSV file (replaced).
        paths: each image's relative path.
        labels: ``(N,)`` integer labels.
        scores: ``(N,)`` scores (written with 8 significant digits).
    """
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["path", "label", "score"])
    for p, label, score in zip(paths, labels, scores):
        writer.writerow([p, int(label), f"{float(score):.8g}"])
    write_text_atomic(path, text.getvalue())


def read_scores(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``scores.csv`` back as paths, labels and scores (ValueError when not of that form).

    Args:
        path: the CSV file.

    Returns:
        ``(paths, labels, scores)``: the paths, ``(N,)`` integer labels and ``(N,)`` float
        scores.

    Raises:
        ValueError: other columns, or a label or score that is not a (finite) number.
        LesionPasteError: missing, unreadable or not a regular file.
    """
    with open_regular(path, "scores file") as raw:
        reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
        if reader.fieldnames != ["path", "label", "score"]:
            raise ValueError(f"{path}: columns {reader.fieldnames} are not path,label,score")
        rows = list(reader)
    scores = np.array([float(r["score"]) for r in rows])
    if not np.isfinite(scores).all():  # float() reads "nan" and "inf"
        raise ValueError(f"{path}: a score that is not a finite number")
    return [r["path"] for r in rows], np.array([int(r["label"]) for r in rows]), scores


def write_metrics(path: Path, result: dict) -> None:
    """A JSON file of an evaluation or a run (metrics, maps.json, thresholds.json), written
    atomically.

    Args:
        path: the JSON file (replaced).
        result: the JSON-ready content (keys sorted, indented).
    """
    write_text_atomic(path, json.dumps(result, indent=2, sort_keys=True) + "\n")
