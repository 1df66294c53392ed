"""k-fold cross-validation (the paper's MosMed protocol).

The evaluation set's images are split into folds by group (patient or study, read from the
image id with ``--group-pattern``), stratified by label. For each fold the detector trains on
the synthetic twins of the *other* folds' normal images only, and is evaluated on the fold.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from lesionpaste.errors import LesionPasteError
from lesionpaste.train.training.dataset import LoadedDataset

DEFAULT_GROUP = r"^(.*?)(?:[_:-]z?\d+)?$"


def groups_of(ids: list[str], pattern: str) -> np.ndarray:
    """The group (patient/study) of each id: the first capture group of ``pattern``.

    Args:
        ids: the image ids.
        pattern: a regular expression matched at the start of each id.

    Returns:
        ``(N,)`` string array: each id's group (the id itself when the pattern does not
        match or has no group).

    Raises:
        LesionPasteError: ``pattern`` is not a regular expression.
    """
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise LesionPasteError(
            f"--group-pattern {pattern!r}: not a regular expression ({exc})"
        ) from None
    out = []
    for image_id in ids:
        m = regex.match(image_id)
        out.append(m.group(1) if m and m.groups() else image_id)
    return np.array(out)


def subset(data: LoadedDataset, keep: np.ndarray) -> LoadedDataset:
    """The images of ``data`` where ``keep`` is true.

    Args:
        data: the dataset in memory.
        keep: ``(N,)`` boolean selection.

    Returns:
        A copy of ``data`` holding only the selected images and everything recorded per
        image (labels, ids, paths, and the masks, lesion counts and tiers where loaded).
    """
    idx = np.flatnonzero(keep)

    def rows_of(values: np.ndarray | None) -> np.ndarray | None:
        return None if values is None else values[idx]

    return replace(
        data,
        images=data.images[idx],
        labels=data.labels[idx],
        twin_ids=[data.twin_ids[i] for i in idx],
        paths=[data.paths[i] for i in idx],
        masks=rows_of(data.masks),
        n_lesions=rows_of(data.n_lesions),
        tiers=rows_of(data.tiers),
    )


def fold_plan(
    evaluation: LoadedDataset,
    synthetic: LoadedDataset,
    folds: int,
    seed: int,
    pattern: str = DEFAULT_GROUP,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per fold: (synthetic rows to train on, evaluation rows to test on).

    Args:
        evaluation: the evaluation set, split into folds by group, stratified by label.
        synthetic: the synthetic training set; a fold trains on the twins of the other
            folds' groups.
        folds: how many folds.
        seed: the seed of the split.
        pattern: the regular expression whose first group is an id's patient or study.

    Returns:
        One ``(train_rows, test_rows)`` pair of boolean arrays per fold, over the
        synthetic and the evaluation images respectively.

    Raises:
        LesionPasteError: fewer than 2 folds, fewer groups than folds, a bad pattern, or no
            synthetic twin made from the evaluation set's normals.
    """
    if folds < 2:
        raise LesionPasteError("--folds needs at least 2 folds")
    eval_groups = groups_of(evaluation.twin_ids, pattern)
    labels = (evaluation.labels > 0).astype(int)
    normal_ids = {i for i, label in zip(evaluation.twin_ids, evaluation.labels) if label == 0}
    if not normal_ids & set(synthetic.twin_ids):
        raise LesionPasteError(
            "--folds: no synthetic twin is made from the evaluation set's normal "
            "images (their ids differ); synthesize twins of those very normals"
        )
    if len(set(eval_groups)) < folds:
        raise LesionPasteError(
            f"--folds {folds}: the evaluation set has only {len(set(eval_groups))} groups"
        )
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    synth_groups = groups_of(synthetic.twin_ids, pattern)
    plan = []
    for _, test in splitter.split(np.zeros(len(labels)), labels, eval_groups):
        held_out = set(eval_groups[test])
        train_rows = np.array([g not in held_out for g in synth_groups])
        test_rows = np.zeros(len(labels), bool)
        test_rows[test] = True
        plan.append((train_rows, test_rows))
    return plan


def summarise(per_fold: list[dict]) -> dict:
    """Mean and standard deviation of each AUC over the folds that have it.

    Args:
        per_fold: each fold's ``metrics`` result.

    Returns:
        ``{name: {"mean", "std", "folds"}}`` per comparison (sample standard deviation, 0 for
        one fold).
    """
    names = sorted({name for result in per_fold for name in result["auc"]})
    out = {}
    for name in names:
        values = [r["auc"][name]["auc"] for r in per_fold if name in r["auc"]]
        out[name] = {
            "mean": float(np.mean(values)),
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "folds": len(values),
        }
    return out
