"""``lp-train`` and ``lp-eval``: train the detector on a dataset, evaluate it like the paper."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import click
import cv2
import numpy as np
import torch

from lesionpaste.cli import Command
from lesionpaste.dataset_format import read_dataset_json
from lesionpaste.errors import LesionPasteError
from lesionpaste.files import (
    entries,
    output_lock,
    remove_temp_files,
    swap_in,
    write_text_atomic,
)
from lesionpaste.outputs import check_output, is_run, real
from train.data import load_dataset
from train.engine import (
    Normalizer,
    TrainConfig,
    load_checkpoint,
    pick_device,
    place_images,
    scores_of,
    train,
)
from train.evaluate import (
    compare,
    metrics,
    read_scores,
    write_metrics,
    write_scores,
)
from train.folds import DEFAULT_GROUP, fold_plan, subset, summarise
from train.models import ARCHS, build_model
from train.roc_plot import roc_picture


def _dataset_sha(root: Path) -> str:
    import hashlib

    return hashlib.sha256((Path(root) / "manifest.csv").read_bytes()).hexdigest()


def _prepare_run(run: Path, config: TrainConfig) -> None:
    """Check that ``run`` is this configuration's run (or new), then record the config.

    Called with the run's lock held: temporary files left by a killed run are removed.
    """
    if _rank() != 0:
        return  # rank 0 prepares; the others wait for it (a barrier) before reading the run
    saved = run / "config.json"
    if saved.exists():
        try:
            previous = json.loads(saved.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            previous = None
        if previous is None and (run / "checkpoint.pt").exists():
            # the checkpoint records its configuration too: judge by it, keep the training
            previous = load_checkpoint(run / "checkpoint.pt").get("config")
        elif previous is None:
            previous = asdict(config)  # nothing trained yet: nothing to lose
        if previous != asdict(config):
            raise LesionPasteError(
                f"{run} holds a run with another configuration; rerun it with the "
                "same options to resume, use another --out, or pass --overwrite"
            )
    elif entries(run):
        raise LesionPasteError(f"{run} exists and is not a run directory; use another --out")
    run.mkdir(parents=True, exist_ok=True)
    remove_temp_files(run)
    write_text_atomic(saved, json.dumps(asdict(config), indent=2) + "\n")


def _work_dir(run: Path, overwrite: bool) -> Path:
    """Where this run trains: ``run`` itself, or, when ``--overwrite`` replaces an earlier
    run there, the hidden sibling ``.NAME.partial``, swapped in only once training is done
    (so a failed or killed replacement leaves the earlier run whole)."""
    if overwrite and entries(run):
        resolved = real(run)
        return resolved.with_name(f".{resolved.name}.partial")
    return run


@contextlib.contextmanager
def _replacing(work: Path, run: Path):
    """Around the training of ``work``: when it replaces the run at ``run``, start it afresh
    (removing what an interrupted replacement left), swap it in once done, and remove it on
    failure, so the earlier run stays whole either way (rank 0 only)."""
    if work == run or _rank() != 0:
        yield
        return
    shutil.rmtree(work, ignore_errors=True)
    try:
        yield
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    swap_in(work, run)


def _train_inputs(dataset: Path, eval_set: Path | None, weights: str) -> list:
    weights_file = Path(weights) if weights not in ("imagenet", "none") else None
    return [("dataset", dataset), ("evaluation set", eval_set), ("weights file", weights_file)]


def _refuse_a_folder_that_is_not_a_run(run: Path) -> None:
    """A run (or cross-validation) goes into a new or empty folder, or resumes a run: never
    into another folder, where its files could replace ones of the same name."""
    found = entries(run)
    if found and not is_run(run, found):
        raise LesionPasteError(f"{run} exists and is not a run directory; use another --out")


def _rank() -> int:
    """This process's rank under torchrun (0 alone)."""
    return int(os.environ.get("RANK", "0"))


def _locked(run: Path):
    """The run's lock (rank 0 only: the other ranks of a torchrun job share it)."""
    return output_lock(run, "lp-train") if _rank() == 0 else contextlib.nullcontext()


@click.command(cls=Command)
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--out",
    "run",
    type=click.Path(path_type=Path),
    required=True,
    help="Run directory (config, checkpoint, log).",
)
@click.option("--arch", type=click.Choice(ARCHS), default="vgg16", show_default=True)
@click.option(
    "--weights",
    default="imagenet",
    show_default=True,
    help="imagenet (torchvision, cached or downloaded), none, or a state dict file.",
)
@click.option("--epochs", default=50, show_default=True)
@click.option("--batch-size", default=64, show_default=True, help="Global batch size.")
@click.option("--lr", default=1e-3, show_default=True)
@click.option("--momentum", default=0.9, show_default=True)
@click.option("--weight-decay", default=0.0, show_default=True)
@click.option("--size", type=int, help="Input side (default: the dataset's).")
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--val-fraction",
    default=0.1,
    show_default=True,
    help="Twin pairs held out to watch training (never the evaluation set).",
)
@click.option("--device", default="auto", show_default=True, help="auto, cuda or cpu.")
@click.option("--compile", "use_compile", is_flag=True, help="torch.compile the model.")
@click.option(
    "--eval",
    "eval_set",
    type=click.Path(path_type=Path),
    help="Evaluate on this evaluation set after training (into RUN/eval).",
)
@click.option(
    "--folds",
    type=int,
    default=0,
    help="k-fold cross-validation on --eval (MosMed protocol); 0 = off.",
)
@click.option(
    "--group-pattern",
    default=None,
    help="Regex whose first group is an image id's patient/study (for --folds).",
)
@click.option(
    "--supervised",
    is_flag=True,
    help="Train on a labelled set's real labels (0 vs >0): the supervised baseline.",
)
@click.option("--no-verify", is_flag=True, help="Skip the sha256 check of every image.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an earlier run there (kept whole until the new one is trained).",
)
@click.option("-q", "--quiet", is_flag=True)
def train_command(
    dataset,
    run,
    arch,
    weights,
    epochs,
    batch_size,
    lr,
    momentum,
    weight_decay,
    size,
    seed,
    val_fraction,
    device,
    use_compile,
    eval_set,
    folds,
    group_pattern,
    supervised,
    no_verify,
    overwrite,
    quiet,
) -> None:
    """Train the normal (0) vs synthetic anomaly (1) classifier on DATASET."""
    check_output(run, "run", _train_inputs(dataset, eval_set, weights), overwrite)
    _refuse_a_folder_that_is_not_a_run(run)
    if eval_set is not None and not folds:  # RUN/eval is written after training: check it now
        check_output(run / "eval", "evaluation", _eval_inputs(run, eval_set, None), True)
    _refuse_an_evaluation_set(dataset, supervised)
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise LesionPasteError("--epochs, --batch-size and --lr must be positive")
    data = load_dataset(dataset, verify=not no_verify)
    if supervised:  # normal (grade 0) against every abnormal grade
        data.labels = (data.labels > 0).astype(np.int64)
    config = TrainConfig(
        dataset=str(Path(dataset).resolve()),
        arch=arch,
        weights=weights,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        size=size or int(data.images.shape[1]),
        seed=seed,
        val_fraction=val_fraction,
        device=device,
        compile=use_compile,
        dataset_sha256=_dataset_sha(dataset),
        supervised=supervised,
    )
    if folds:
        if eval_set is None:
            raise LesionPasteError("--folds needs --eval EVALSET (the images to split into folds)")
        evaluation = load_dataset(eval_set, verify=not no_verify)
        work = _work_dir(run, overwrite)
        with _locked(run), _replacing(work, run):
            cross_validate(
                data, evaluation, work, config, folds, group_pattern or DEFAULT_GROUP, quiet
            )
        return
    work = _work_dir(run, overwrite)
    with _locked(run), _replacing(work, run):
        _prepare_run(work, config)
        entry = train(data, work, config, quiet=quiet)
    if _rank() != 0:
        return
    if not quiet and entry:
        val = f", validation AUC {entry['val_auc']:.4f}" if "val_auc" in entry else ""
        click.echo(f"trained {run}: epoch {entry['epoch']}, loss {entry['loss']:.4f}{val}")
    if eval_set is not None:
        evaluate_run(run, eval_set, run / "eval", None, device, overwrite=True, quiet=quiet)


def _refuse_an_evaluation_set(dataset: Path, supervised: bool) -> None:
    """Training takes a synthetic dataset, or an evaluation set with ``--supervised``."""
    if read_dataset_json(dataset)["kind"] != "synthetic" and not supervised:
        raise LesionPasteError(
            f"{dataset} is an evaluation set; train on a synthetic dataset, or pass "
            "--supervised to train on its real labels (the supervised baseline)"
        )


def cross_validate(
    synthetic,
    evaluation,
    run: Path,
    config: TrainConfig,
    folds: int,
    pattern: str,
    quiet: bool,
) -> dict:
    """Train and evaluate one run per fold (RUN/fold_K); write RUN/cv.json with the spread."""
    plan = fold_plan(evaluation, synthetic, folds, config.seed, pattern)
    per_fold = []
    pooled = np.full(len(evaluation.labels), np.nan)
    run.mkdir(parents=True, exist_ok=True)
    remove_temp_files(run)
    for k, (train_rows, test_rows) in enumerate(plan, start=1):
        fold_run = run / f"fold_{k}"
        _prepare_run(fold_run, config)
        _check_fold(fold_run, [evaluation.twin_ids[i] for i in np.flatnonzero(test_rows)])
        train(subset(synthetic, train_rows), fold_run, config, quiet=quiet)
        test = subset(evaluation, test_rows)
        scores = _score(fold_run, test, config.device)
        result = metrics(scores, test.labels)
        result["test_ids"] = test.twin_ids
        per_fold.append(result)
        write_scores(fold_run / "scores.csv", test.paths, test.labels, scores)
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
    write_scores(run / "scores.csv", evaluation.paths, evaluation.labels, pooled)
    write_metrics(run / "cv.json", summary)
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
    record = fold_run / "fold.json"
    digest = hashlib.sha256("\n".join(sorted(test_ids)).encode()).hexdigest()
    if record.exists():
        try:
            saved = json.loads(record.read_text(encoding="utf-8")).get("test_ids_sha256")
        except (OSError, ValueError, AttributeError):
            saved = None
        if saved != digest and (fold_run / "checkpoint.pt").exists():
            raise LesionPasteError(
                f"{fold_run} holds a fold of another split (other folds, group pattern or "
                "evaluation set); use another --out, or pass --overwrite"
            )
    write_text_atomic(record, json.dumps({"test_ids_sha256": digest}) + "\n")


def _restore(run: Path, device_name: str):
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


def _score(run: Path, dataset, device_name: str) -> np.ndarray:
    model, normalizer, _, device = _restore(run, device_name)
    images, _ = place_images(dataset.images, device)
    return scores_of(model, normalizer, images, device)


def _cam_picture(run: Path, data, scores: np.ndarray, count: int, device: str) -> np.ndarray:
    """Grad-CAM panels for the ``count`` highest-scored anomalous images."""
    from train.cam import cam_panels

    model, normalizer, config, _ = _restore(run, device)
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
    check_output(out, "evaluation", _eval_inputs(run, eval_set, other), overwrite)
    if out.exists() and not overwrite:
        raise LesionPasteError(f"{out} already exists; pass --overwrite to replace it")
    data = load_dataset(eval_set)
    scores = _score(run, data, device)
    result = metrics(scores, data.labels)
    result["run"] = str(run)
    result["evaluation_set"] = str(eval_set)
    if other is not None:
        result["compare"] = {
            "other_run": str(other),
            "delong": compare(scores, _other_scores(other, data, device), data.labels),
        }
    panels = _cam_picture(run, data, scores, cam, device) if cam else None
    _write_evaluation(out, data, scores, result, panels)
    if not quiet:
        _print_metrics(result, out)
    return result


def _eval_inputs(run: Path, eval_set: Path, other: Path | None) -> list:
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
        return _score(other, data, device)
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


def _write_evaluation(out: Path, data, scores: np.ndarray, result: dict, panels) -> None:
    """scores.csv, metrics.json, roc.png (and cam.png) into ``out``, which appears complete."""
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_scores(tmp / "scores.csv", data.paths, data.labels, scores)
    write_metrics(tmp / "metrics.json", result)
    pictures = {"roc.png": roc_picture(scores, data.labels, result), "cam.png": panels}
    for name, picture in pictures.items():
        if picture is not None:
            ok, png = cv2.imencode(".png", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
            if not ok:
                raise LesionPasteError(f"could not encode {name}")
            (tmp / name).write_bytes(png.tobytes())
    swap_in(tmp, out)  # the earlier evaluation stays whole until the new one is in place


def _print_metrics(result: dict, out: Path) -> None:
    for name, e in result["auc"].items():
        click.echo(
            f"{name:>6}: AUC {e['auc']:.4f} [{e['ci_low']:.4f}, {e['ci_high']:.4f}] "
            f"({e['n_pos']} vs {e['n_neg']})"
        )
    click.echo(f"wrote {out}")


@click.command(cls=Command)
@click.argument("run", type=click.Path(path_type=Path))
@click.argument("eval_set", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True)
@click.option(
    "--compare",
    "other",
    type=click.Path(path_type=Path),
    help="Another run, or a folder whose scores.csv scores the same images (a --folds run, "
    "lp-knn): paired DeLong tests.",
)
@click.option(
    "--cam",
    default=0,
    show_default=True,
    help="Grad-CAM and Grad-CAM++ panels for this many anomalous images (cam.png).",
)
@click.option("--device", default="auto", show_default=True)
@click.option("--overwrite", is_flag=True)
@click.option("-q", "--quiet", is_flag=True)
def eval_command(run, eval_set, out, other, cam, device, overwrite, quiet) -> None:
    """Evaluate RUN on EVAL_SET: AUC 0 vs 1..4 and 0 vs all with DeLong 95% intervals."""
    evaluate_run(run, eval_set, out, other, device, overwrite, quiet, cam)


@click.command(cls=Command)
@click.argument("train_set", type=click.Path(path_type=Path))
@click.argument("eval_set", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True)
@click.option(
    "--arch",
    type=click.Choice(["efficientnet_lite0", "resnet18", "resnet50", "vgg16"]),
    default="efficientnet_lite0",
    show_default=True,
    help="Pretrained feature network.",
)
@click.option("--k", "k", default=5, show_default=True, help="Nearest normal images averaged.")
@click.option("--size", type=int, help="Input side (default: the evaluation set's).")
@click.option("--device", default="auto", show_default=True)
@click.option("--overwrite", is_flag=True)
@click.option("-q", "--quiet", is_flag=True)
def knn_command(train_set, eval_set, out, arch, k, size, device, overwrite, quiet) -> None:
    """Unsupervised baseline: score EVAL_SET by the distance to the k nearest normal images
    (label 0) of TRAIN_SET in the features of an ImageNet-pretrained network."""
    from train.knn import feature_extractor, features, knn_scores

    inputs = [("reference dataset", train_set), ("evaluation set", eval_set)]
    check_output(out, "evaluation", inputs, overwrite)
    if out.exists() and not overwrite:
        raise LesionPasteError(f"{out} already exists; pass --overwrite to replace it")
    reference, evaluation = load_dataset(train_set), load_dataset(eval_set)
    normals = reference.images[reference.labels == 0]
    if len(normals) == 0:
        raise LesionPasteError(f"{train_set} has no normal (label 0) image")
    torch_device = pick_device(device)
    model = feature_extractor(arch).to(torch_device)
    normalizer = Normalizer(size or int(evaluation.images.shape[1]), False, arch).to(torch_device)
    scores = knn_scores(
        features(model, normalizer, normals, torch_device),
        features(model, normalizer, evaluation.images, torch_device),
        k,
    )
    result = metrics(scores, evaluation.labels)
    result.update(
        method=f"{k}-NN distance, {arch} ImageNet features",
        reference=str(train_set),
        evaluation_set=str(eval_set),
    )
    _write_evaluation(out, evaluation, scores, result, None)
    if not quiet:
        _print_metrics(result, out)


def main_train() -> None:
    train_command(prog_name="lp-train")


def main_eval() -> None:
    eval_command(prog_name="lp-eval")


def main_knn() -> None:
    knn_command(prog_name="lp-knn")
