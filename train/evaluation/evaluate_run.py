"""Scoring an evaluation set with a trained run, and writing the evaluation (``lp-eval``)."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import click
import numpy as np

from lesionpaste.contract import check_thresholds
from lesionpaste.dataset import open_dataset
from lesionpaste.dataset_format import source_images_in
from lesionpaste.errors import LesionPasteError
from lesionpaste.file_names import (
    CAM_PICTURE,
    CHECKPOINT,
    MAPS_PICTURE,
    METRICS,
    ROC_PICTURE,
    RUN_CONFIG,
    SCORES,
    THRESHOLDS,
)
from lesionpaste.files import swap_in
from lesionpaste.images import encode_png
from lesionpaste.jsonfiles import read_json_file
from lesionpaste.outputs import check_output
from lesionpaste.train.evaluation.roc_plot import roc_picture
from lesionpaste.train.metrics.auc import compare, metrics, read_scores, write_metrics, write_scores
from lesionpaste.train.metrics.image_scores import upsample_maps
from lesionpaste.train.metrics.operating_points import apply_thresholds, operating_points
from lesionpaste.train.runs.card import record_evaluation
from lesionpaste.train.runs.folder import eval_inputs
from lesionpaste.train.runs.restore import map_choices, restore, score, score_and_maps
from lesionpaste.train.training.config import read_config
from lesionpaste.train.training.dataset import load_dataset


def _cam_picture(restored: tuple, data, scores: np.ndarray, count: int) -> np.ndarray:
    """Grad-CAM panels for the ``count`` highest-scored anomalous images."""
    from lesionpaste.train.evaluation.cam import cam_panels

    model, normalizer, config, _ = restored
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
    maps: bool = False,
    n_boot: int = 1000,
) -> dict:
    """Score EVALSET with RUN's checkpoint; write scores.csv, metrics.json and roc.png.

    Args:
        run: the trained run directory.
        eval_set: the evaluation set directory.
        out: the evaluation folder to write.
        other: a run or a folder with ``scores.csv`` to compare with (DeLong), or None.
        device: ``"auto"``, ``"cuda"`` or ``"cpu"``.
        overwrite: replace an earlier evaluation at ``out``.
        quiet: print nothing.
        cam: how many Grad-CAM panels to draw (``cam.png``); 0 for none.
        maps: write each image's anomaly map and picture (``maps/``, ``maps.png``) and,
            where the set has lesion masks, the pixel metrics (``metrics.json["pixel"]``).
        n_boot: bootstrap resamples of the pixel metrics' intervals.

    Returns:
        The metrics written to ``metrics.json`` (AUCs, paths, and the comparison if any).

    Raises:
        LesionPasteError: an unsafe or existing output, an unreadable evaluation set, run or
            compared scores, or ``cam`` without anomalous images or the grad-cam package;
            an evaluation set holding a source image of the run's bank; ``maps`` for a run
            trained without maps.
    """
    check_output(out, "evaluation", eval_inputs(run, eval_set, other), overwrite)
    if out.exists() and not overwrite:
        raise LesionPasteError(f"{out} already exists; pass --overwrite to replace it")
    refuse_bank_sources(run, eval_set)
    data = load_dataset(eval_set)
    restored = restore(run, device)  # one checkpoint read for the scores, maps and Grad-CAM
    scores, low_maps = score_and_maps(run, data, device, restored)
    result = metrics(scores, data.labels)
    result.update(decisions(run, scores, data.labels, n_boot))
    result["run"] = str(run)
    result["evaluation_set"] = str(eval_set)
    if other is not None:
        result["compare"] = {
            "other_run": str(other),
            "delong": compare(scores, _other_scores(other, data, device), data.labels),
        }
    panels = _cam_picture(restored, data, scores, cam) if cam else None
    extra = {}
    if maps:
        if low_maps is None:
            raise LesionPasteError(f"--maps: {run} was trained without --maps (no map to write)")
        extra, result["pixel"] = _map_outputs(run, restored, eval_set, data, low_maps, n_boot)
    write_evaluation(out, data, scores, result, panels, extra)
    record_evaluation(run, evaluation_summary(result, eval_set, out))
    if not quiet:
        print_metrics(result, out)
    return result


def evaluation_summary(result: dict, eval_set: Path, out: Path) -> dict:
    """What the model card and an export keep of an evaluation: the AUCs with their
    intervals, and each synthetic threshold's sensitivity and specificity.

    Args:
        result: the metrics written to ``metrics.json``.
        eval_set: the evaluation set.
        out: the evaluation folder.

    Returns:
        ``{"evaluation_set", "out", "auc", "synthetic_thresholds"}``.
    """
    thresholds = {
        name: {k: t[k]["value"] for k in ("sensitivity", "specificity")}
        for name, t in (result.get("synthetic_thresholds") or {}).items()
        if isinstance(t, dict) and "sensitivity" in t
    }
    return {
        "evaluation_set": str(eval_set),
        "out": str(out),
        "auc": result["auc"],
        "synthetic_thresholds": thresholds,
    }


#: the seed of the operating points' bootstrap (recorded in metrics.json)
DECISION_SEED = 0


def decisions(run: Path, scores: np.ndarray, labels: np.ndarray, n_boot: int) -> dict:
    """The operating points of every comparison and, when the run recorded them, its synthetic
    thresholds applied to these images (``train.metrics.operating_points``).

    Args:
        run: the trained run (its ``thresholds.json``, if any).
        scores: ``(N,)`` the evaluation images' scores.
        labels: ``(N,)`` their integer labels.
        n_boot: bootstrap resamples of each interval.

    Returns:
        ``{"operating_points": ..., "bootstrap": {"resamples", "seed", "by"}}``, plus
        ``"synthetic_thresholds"`` for a run with ``thresholds.json``.

    Raises:
        LesionPasteError: ``thresholds.json`` is damaged, or ``n_boot`` is not positive.
    """
    rng = np.random.default_rng(DECISION_SEED)
    out = {
        "operating_points": operating_points(scores, labels, n_boot, rng),
        "bootstrap": {
            "resamples": int(n_boot),
            "seed": DECISION_SEED,
            "by": "image, with replacement within each class; percentile 95% intervals",
        },
    }
    path = run / THRESHOLDS
    if path.exists():  # the safe reader (size, depth), then every value checked
        saved = read_json_file(path, 1 << 20)
        thresholds, n_normals = check_thresholds(saved, path)
        thresholds["n_normals"] = n_normals
        out["synthetic_thresholds"] = apply_thresholds(scores, labels, thresholds, n_boot, rng)
        out["synthetic_thresholds"]["image_score"] = saved.get("image_score", "classifier")
    return out


def refuse_bank_sources(run: Path, eval_set: Path) -> None:
    """Refuse an evaluation set that holds a source image of the run's bank (leakage).

    Args:
        run: the trained run (its configuration records its bank's sources).
        eval_set: the evaluation set.

    Raises:
        LesionPasteError: naming the evaluation images that are sources of the bank.
    """
    if not (run / RUN_CONFIG).exists():  # the checkpoint's own configuration is used
        return
    sources = read_config(run / RUN_CONFIG).bank_sources
    if not sources:
        return
    leaked = source_images_in(open_dataset(eval_set).rows, set(sources))
    if leaked:
        raise LesionPasteError(
            f"{eval_set} holds {len(leaked)} source image(s) of the run's bank "
            f"({', '.join(leaked[:5])}): their lesions were pasted into the training twins; "
            "prepare it with lp-synth prep --like DATASET, which leaves them out"
        )


def _map_outputs(run, restored, eval_set, data, low_maps, n_boot) -> tuple[dict, dict]:
    """The files of ``--maps`` and the pixel metrics (where the set has masks)."""
    from lesionpaste.train.evaluation.maps import (
        CAM_THRESHOLD,
        compare_map_kinds,
        field_of_view,
        map_files,
        maps_picture,
        panel,
        stems_of,
    )

    opened = open_dataset(eval_set)
    shape = data.images.shape[1:3]
    full = upsample_maps(low_maps, shape)
    masks = [opened.mask(i) for i in range(len(opened))]
    files = map_files(data.images, full, masks, stems_of(data.paths))
    scored = [i for i, m in enumerate(masks) if m is not None]
    shown = scored or list(range(len(full)))
    rows = [panel(data.images[i], full[i], masks[i]) for i in shown]
    titles = ["image", "true lesions", "anomaly map", "overlay"]
    files[MAPS_PICTURE] = encode_png(maps_picture(rows, titles), what=MAPS_PICTURE)
    if not scored:
        return files, {"note": "the evaluation set has no lesion masks: no pixel metrics"}
    threshold = map_choices(run).get("pixel_threshold")
    kinds = {"maps": ([full[i] for i in scored], 0.5 if threshold is None else threshold)}
    model, normalizer, config, _ = restored
    from lesionpaste.train.evaluation.cam import cam_maps

    cams = cam_maps(model, config.arch, normalizer, data.images[scored], what="--maps")
    for name, values in cams.items():
        kinds[name] = (upsample_maps(values, shape), CAM_THRESHOLD)
    modality = opened.meta.get("bank", {}).get("modality")
    fovs = [field_of_view(shape, modality)] * len(scored)
    union = [masks[i] for i in scored]
    pixel = compare_map_kinds(kinds, opened, scored, union, fovs, n_boot, seed=0)
    pixel["thresholds"] = {name: t for name, (_, t) in kinds.items()}
    return files, pixel


def _other_scores(other: Path, data, device: str) -> np.ndarray:
    """The scores another method gives the same images: its run's model when it has one,
    else its ``scores.csv`` (a cross-validated run, ``lp-knn``, an earlier ``lp-eval``)."""
    if (other / CHECKPOINT).exists():
        return score(other, data, device)
    if not os.path.lexists(other / SCORES):
        raise LesionPasteError(f"--compare {other}: neither a run (checkpoint.pt) nor scores.csv")
    try:
        paths, labels, scores = read_scores(other / SCORES)
    except (KeyError, ValueError, TypeError, UnicodeDecodeError, csv.Error):
        raise LesionPasteError(
            f"--compare {other / SCORES}: not a path,label,score file (integer labels, finite "
            "scores)"
        ) from None
    by_path = {p: (label, score) for p, label, score in zip(paths, labels, scores)}
    missing = [p for p in data.paths if p not in by_path]
    if missing or any(by_path[p][0] != label for p, label in zip(data.paths, data.labels)):
        raise LesionPasteError(
            f"--compare {other / SCORES} does not score the same labelled images "
            f"({len(missing)} of {len(data.paths)} missing)"
        )
    return np.array([by_path[p][1] for p in data.paths])


def write_evaluation(
    out: Path, data, scores: np.ndarray, result: dict, panels, extra: dict | None = None
) -> None:
    """scores.csv, metrics.json, roc.png (and cam.png) into ``out``, which appears complete.

    Args:
        out: the evaluation folder (an earlier one is replaced only once the new is whole).
        data: the evaluation set (``LoadedDataset``).
        scores: ``(N,)`` scores of its images.
        result: the metrics to write.
        panels: the Grad-CAM picture (RGB ``uint8``), or None.
        extra: more files, ``{relative path: bytes}`` (the maps of ``--maps``).
    """
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_scores(tmp / SCORES, data.paths, data.labels, scores)
    write_metrics(tmp / METRICS, result)
    pictures = {ROC_PICTURE: roc_picture(scores, data.labels, result), CAM_PICTURE: panels}
    for name, picture in pictures.items():
        if picture is not None:
            (tmp / name).write_bytes(encode_png(picture, what=name))
    for relative, content in (extra or {}).items():
        (tmp / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp / relative).write_bytes(content)
    swap_in(tmp, out)  # the earlier evaluation stays whole until the new one is in place


def print_metrics(result: dict, out: Path) -> None:
    """One line per comparison: AUC, its 95% DeLong interval, positives vs negatives.

    Args:
        result: the ``metrics`` result.
        out: the evaluation folder, named in the last line.
    """
    points = result.get("operating_points", {})
    for name, e in result["auc"].items():
        click.echo(
            f"{name:>6}: AUC {e['auc']:.4f} [{e['ci_low']:.4f}, {e['ci_high']:.4f}] "
            f"({e['n_pos']} vs {e['n_neg']})"
        )
        if name in points:
            p = points[name]
            click.echo(
                "        "
                + "; ".join(
                    f"{label} {p[key]['value']:.3f} [{p[key]['ci_low']:.3f}, "
                    f"{p[key]['ci_high']:.3f}]"
                    for key, label in (
                        ("sens_at_spec_95", "sensitivity at 95% specificity"),
                        ("spec_at_sens_95", "specificity at 95% sensitivity"),
                    )
                )
            )
    synthetic = result.get("synthetic_thresholds")
    if synthetic:
        for key, share in (("pass_95", "95%"), ("pass_90", "90%")):
            t = synthetic[key]
            counts = ", ".join(
                f"grade {label}: {c['flagged']}/{c['n']}" for label, c in t["by_label"].items()
            )
            click.echo(
                f"threshold passing {share} of the synthetic validation normals "
                f"({t['threshold']:.4g}): flagged {counts}; sensitivity "
                f"{t['sensitivity']['value']:.3f}, specificity {t['specificity']['value']:.3f}"
            )
    click.echo(f"wrote {out}")
