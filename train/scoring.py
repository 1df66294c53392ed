"""Scoring an evaluation set with a trained run, and writing the evaluation (``lp-eval``)."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import click
import numpy as np
import torch

from lesionpaste.errors import LesionPasteError
from lesionpaste.files import swap_in
from lesionpaste.images import encode_png
from lesionpaste.outputs import check_output
from train.data import load_dataset
from train.engine import (
    Normalizer,
    TrainConfig,
    load_checkpoint,
    pick_device,
    place_images,
    scores_of,
)
from train.evaluate import compare, metrics, read_scores, write_metrics, write_scores
from train.models import build_model
from train.roc_plot import roc_picture


def restore(run: Path, device_name: str):
    """The trained model of a run, its normalizer and configuration, on the device."""
    state = load_checkpoint(run / "checkpoint.pt")
    try:
        config = TrainConfig(**state["config"])
        model, _ = build_model(config.arch, "none")
        model.load_state_dict(state["model"])
    except (TypeError, KeyError, RuntimeError) as exc:
        raise LesionPasteError(
            f"{run}/checkpoint.pt does not hold a model of this version ({exc})"
        ) from None
    device = pick_device(device_name)
    model = model.to(device, memory_format=torch.channels_last)
    return model, Normalizer(config.size, True, config.arch).to(device), config, device


def score(run: Path, dataset, device_name: str) -> np.ndarray:
    """Every image's probability of being anomalous under the run's trained model."""
    model, normalizer, _, device = restore(run, device_name)
    images, _ = place_images(dataset.images, device)
    return scores_of(model, normalizer, images, device)


def _cam_picture(run: Path, data, scores: np.ndarray, count: int, device: str) -> np.ndarray:
    """Grad-CAM panels for the ``count`` highest-scored anomalous images."""
    from train.cam import cam_panels

    model, normalizer, config, _ = restore(run, device)
    anomalous = np.flatnonzero(data.labels > 0)
    if len(anomalous) == 0:
        raise LesionPasteError("--cam: the evaluation set has no anomalous image")
    chosen = anomalous[np.argsort(-scores[anomalous], kind="stable")[:count]]
    captions = [f"{data.paths[i]}  label {data.labels[i]}  score {scores[i]:.3f}" for i in chosen]
    return cam_panels(model, config.arch, normalizer, data.images[chosen], captions)


def evaluate_run(
    run: Path,
    eval_set: Path,
    out: Path,
    other: Path | None,
    device: str,
    overwrite: bool = False,
    quiet: bool = False,
    cam: int = 0,
) -> dict:
    """Score EVALSET with RUN's checkpoint; write scores.csv, metrics.json and roc.png."""
    check_output(out, "evaluation", eval_inputs(run, eval_set, other), overwrite)
    if out.exists() and not overwrite:
        raise LesionPasteError(f"{out} already exists; pass --overwrite to replace it")
    data = load_dataset(eval_set)
    scores = score(run, data, device)
    result = metrics(scores, data.labels)
    result["run"] = str(run)
    result["evaluation_set"] = str(eval_set)
    if other is not None:
        result["compare"] = {
            "other_run": str(other),
            "delong": compare(scores, _other_scores(other, data, device), data.labels),
        }
    panels = _cam_picture(run, data, scores, cam, device) if cam else None
    write_evaluation(out, data, scores, result, panels)
    if not quiet:
        print_metrics(result, out)
    return result


def eval_inputs(run: Path, eval_set: Path, other: Path | None) -> list:
    """What lp-eval reads: the run's own files (an evaluation folder may lie inside the run,
    as RUN/eval does, but may not be or hold them), the evaluation set, the compared run."""
    inputs = [("run's checkpoint", run / "checkpoint.pt"), ("evaluation set", eval_set)]
    if other is not None:
        inputs += [("compared run's checkpoint", other / "checkpoint.pt")]
        inputs += [("compared scores", other / "scores.csv")]
    return inputs


def _other_scores(other: Path, data, device: str) -> np.ndarray:
    """The scores another method gives the same images: its run's model when it has one,
    else its ``scores.csv`` (a cross-validated run, ``lp-knn``, an earlier ``lp-eval``)."""
    if (other / "checkpoint.pt").exists():
        return score(other, data, device)
    if not os.path.lexists(other / "scores.csv"):
        raise LesionPasteError(f"--compare {other}: neither a run (checkpoint.pt) nor scores.csv")
    try:
        paths, labels, scores = read_scores(other / "scores.csv")
    except (KeyError, ValueError, TypeError, UnicodeDecodeError, csv.Error):
        raise LesionPasteError(
            f"--compare {other}/scores.csv: not a path,label,score file"
        ) from None
    by_path = {p: (label, score) for p, label, score in zip(paths, labels, scores)}
    missing = [p for p in data.paths if p not in by_path]
    if missing or any(by_path[p][0] != label for p, label in zip(data.paths, data.labels)):
        raise LesionPasteError(
            f"--compare {other}/scores.csv does not score the same labelled images "
            f"({len(missing)} of {len(data.paths)} missing)"
        )
    return np.array([by_path[p][1] for p in data.paths])


def write_evaluation(out: Path, data, scores: np.ndarray, result: dict, panels) -> None:
    """scores.csv, metrics.json, roc.png (and cam.png) into ``out``, which appears complete."""
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_scores(tmp / "scores.csv", data.paths, data.labels, scores)
    write_metrics(tmp / "metrics.json", result)
    pictures = {"roc.png": roc_picture(scores, data.labels, result), "cam.png": panels}
    for name, picture in pictures.items():
        if picture is not None:
            (tmp / name).write_bytes(encode_png(picture, what=name))
    swap_in(tmp, out)  # the earlier evaluation stays whole until the new one is in place


def print_metrics(result: dict, out: Path) -> None:
    """One line per comparison: AUC, its 95% DeLong interval, positives vs negatives."""
    for name, e in result["auc"].items():
        click.echo(
            f"{name:>6}: AUC {e['auc']:.4f} [{e['ci_low']:.4f}, {e['ci_high']:.4f}] "
            f"({e['n_pos']} vs {e['n_neg']})"
        )
    click.echo(f"wrote {out}")
