"""Cross-validation on the evaluation set (``lp-train --folds``): one run per fold, folds split
by patient, the spread over folds and one pooled out-of-fold AUC."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from lesionpaste.digests import sha256_bytes
from lesionpaste.errors import LesionPasteError
from lesionpaste.file_names import CHECKPOINT, CV_RECORD, FOLD_RECORD, SCORES
from lesionpaste.files import remove_temp_files, write_text_atomic
from lesionpaste.jsonfiles import saved_json
from lesionpaste.train.metrics.auc import metrics, write_metrics, write_scores
from lesionpaste.train.runs.folder import prepare_run
from lesionpaste.train.runs.folds import fold_plan, subset, summarise
from lesionpaste.train.runs.restore import score
from lesionpaste.train.training.config import TrainConfig
from lesionpaste.train.training.loop import train


def cross_validate(
    synthetic,
    evaluation,
    run: Path,
    config: TrainConfig,
    folds: int,
    pattern: str,
    quiet: bool,
) -> dict:
    """Train and evaluate one run per fold (RUN/fold_K); write RUN/cv.json with the spread.

    Args:
        synthetic: the synthetic training set (``LoadedDataset``).
        evaluation: the evaluation set (``LoadedDataset``) to split into folds.
        run: the cross-validation's directory (its lock held by the caller).
        config: the training configuration of every fold.
        folds: how many folds (at least 2).
        pattern: the regular expression whose first group is an image's patient or study.
        quiet: no progress bar or per-fold lines.

    Returns:
        The summary written to ``cv.json``: ``folds``, ``group_pattern``, ``per_fold``
        metrics, ``auc`` mean and spread per comparison, and ``pooled_out_of_fold`` AUCs.

    Raises:
        LesionPasteError: a bad fold plan (fewer than 2 folds or groups, no twin of the
            evaluation set's normals, a bad pattern), or a fold directory holding another
            configuration or split.
    """
    plan = fold_plan(evaluation, synthetic, folds, config.seed, pattern)
    per_fold = []
    pooled = np.full(len(evaluation.labels), np.nan)
    run.mkdir(parents=True, exist_ok=True)
    remove_temp_files(run)
    for k, (train_rows, test_rows) in enumerate(plan, start=1):
        fold_run = run / f"fold_{k}"
        prepare_run(fold_run, config)
        _check_fold(fold_run, [evaluation.twin_ids[i] for i in np.flatnonzero(test_rows)])
        train(subset(synthetic, train_rows), fold_run, config, quiet=quiet)
        test = subset(evaluation, test_rows)
        scores = score(fold_run, test, config.device)
        result = metrics(scores, test.labels)
        result["test_ids"] = test.twin_ids
        per_fold.append(result)
        write_scores(fold_run / SCORES, test.paths, test.labels, scores)
        pooled[test_rows] = scores
        if not quiet:
            shown = ", ".join(f"{n} {e['auc']:.4f}" for n, e in result["auc"].items())
            click.echo(f"fold {k}/{folds}: {shown}")
    summary = {
        "folds": folds,
        "group_pattern": pattern,
        "per_fold": per_fold,
        "auc": summarise(per_fold),
        # every image scored by the fold model that did not train on it: one AUC with its
        # DeLong interval over the whole set, comparable (paired) with other methods
        "pooled_out_of_fold": metrics(pooled, evaluation.labels)["auc"],
    }
    write_scores(run / SCORES, evaluation.paths, evaluation.labels, pooled)
    write_metrics(run / CV_RECORD, summary)
    if not quiet:
        for name, s in summary["auc"].items():
            e = summary["pooled_out_of_fold"].get(name)
            pooled_text = (
                f"; pooled {e['auc']:.4f} [{e['ci_low']:.4f}, {e['ci_high']:.4f}]" if e else ""
            )
            click.echo(
                f"{name:>6}: AUC {s['mean']:.4f} ± {s['std']:.4f} over {s['folds']} folds"
                + pooled_text
            )
    return summary


def _check_fold(fold_run: Path, test_ids: list[str]) -> None:
    """Record which images a fold tests on; refuse to resume a fold of another plan (its
    model may have trained on the new test images)."""
    record = fold_run / FOLD_RECORD
    digest = sha256_bytes("\n".join(sorted(test_ids)).encode())
    if record.exists():
        saved = saved_json(record)
        saved = saved.get("test_ids_sha256") if isinstance(saved, dict) else None
        if saved != digest and (fold_run / CHECKPOINT).exists():
            raise LesionPasteError(
                f"{fold_run} holds a fold of another split (other folds, group pattern or "
                "evaluation set); use another --out, or pass --overwrite"
            )
    write_text_atomic(record, json.dumps({"test_ids_sha256": digest}) + "\n")
