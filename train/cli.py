"""The trainer's command lines (``lp-train``, ``lp-eval``, ``lp-knn``): they parse, check the outputs
and call the library (``training``, ``runs``, ``evaluation``)."""

from __future__ import annotations

from pathlib import Path

import click

from lesionpaste.cli import Command, warn_to_stderr
from lesionpaste.errors import LesionPasteError
from lesionpaste.train.evaluation.evaluate_run import evaluate_run, print_metrics
from lesionpaste.train.metrics.image_scores import IMAGE_SCORES
from lesionpaste.train.models.backbones import BACKBONES
from lesionpaste.train.models.build import ARCHS
from lesionpaste.train.runs.train_run import TrainRequest, train_run
from lesionpaste.train.training.config import TrainConfig
from lesionpaste.train.training.loop import validation_text
from lesionpaste.train.training.selection import CRITERIA, criteria_against_real, run_row


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
@click.option(
    "--heldout-val",
    type=click.Path(path_type=Path),
    help="Also validate, every epoch, on twins of the same validation normals pasted from "
    "another annotated image's lesions (lp-synth with another bank, same normals and "
    "preparation): logged as heldout_val_auc, a criterion the training lesions cannot flatter.",
)
@click.option(
    "--keep-best",
    type=click.Choice(sorted(CRITERIA)),
    help="Early stopping on synthetic validation only: keep the epoch of the best validation "
    "AUC (val: the same-bank pairs; heldout: --heldout-val's) as the run's model (best.pt), "
    "for lp-eval and the thresholds. Default: the last epoch, the paper's.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cuda or cpu.")
@click.option("--compile", "compile", is_flag=True, help="torch.compile the model.")
@click.option(
    "--maps",
    is_flag=True,
    help="Also learn a pixel anomaly map from the pasted masks (a light decoder).",
)
@click.option(
    "--map-weight",
    default=1.0,
    show_default=True,
    help="With --maps: the pixel loss's weight (BCE + soft Dice) next to the image loss.",
)
@click.option(
    "--image-score",
    type=click.Choice(["auto", *IMAGE_SCORES]),
    default="auto",
    show_default=True,
    help="With --maps: the image score; auto = the best on the synthetic validation pairs.",
)
@click.option(
    "--freeze",
    default=0,
    show_default=True,
    help="Keep the backbone's first N stages frozen; their activations are computed once "
    "(fast CPU training). 0 = full fine-tuning, the paper's.",
)
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
    eval_set,
    heldout_val,
    folds,
    group_pattern,
    no_verify,
    overwrite,
    quiet,
    **settings,
) -> None:
    """Train the normal (0) vs synthetic anomaly (1) classifier on DATASET (a dataset
    directory, or an archive of one made by lp-synth pack)."""
    # parse -> build the configuration and the request (each checks its own rules) -> run
    config = TrainConfig(
        **{**settings, "keep_best": settings["keep_best"] or "", "size": settings["size"] or 256},
        dataset=str(Path(dataset).resolve()),
        heldout_val=str(Path(heldout_val).resolve()) if heldout_val is not None else "",
    )
    request = TrainRequest(dataset, run, config, eval_set, heldout_val, folds, group_pattern,
                           verify=not no_verify, overwrite=overwrite,
                           size_from_dataset=not settings["size"])  # fmt: skip
    entry = train_run(
        request, quiet, warn=(lambda m: None) if quiet else warn_to_stderr("lp-train")
    )
    if entry is None:  # a cross-validation, or not the first of distributed processes
        return
    if not quiet and entry:  # an empty entry: the run had already finished (it said so)
        kept = f" kept (best {config.keep_best})" if config.keep_best else ""
        click.echo(
            f"trained {run}: epoch {entry['epoch']}{kept}, loss {entry['loss']:.4f}"
            f"{validation_text(entry)}"
        )
    if eval_set is not None:
        evaluate_run(run, eval_set, run / "eval", None, config.device, True, quiet)


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
@click.option(
    "--maps",
    is_flag=True,
    help="Write each image's anomaly map (a run trained with --maps) and, where EVAL_SET has "
    "lesion masks, pixel AUROC, AUPRO, Dice and IoU next to Grad-CAM's.",
)
@click.option(
    "--boot",
    "n_boot",
    default=1000,
    show_default=True,
    help="Bootstrap resamples (by image) of the operating points' intervals and, with --maps, "
    "of the pixel metrics'.",
)
@click.option("--device", default="auto", show_default=True)
@click.option("--overwrite", is_flag=True)
@click.option("-q", "--quiet", is_flag=True)
def eval_command(run, eval_set, out, other, cam, maps, n_boot, device, overwrite, quiet) -> None:
    """Evaluate RUN on EVAL_SET: AUC 0 vs 1..4 and 0 vs all with DeLong 95% intervals."""
    evaluate_run(run, eval_set, out, other, device, overwrite, quiet, cam, maps, n_boot)


@click.command(cls=Command)
@click.argument("train_set", type=click.Path(path_type=Path))
@click.argument("eval_set", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True)
@click.option(
    "--arch",
    type=click.Choice([b.name for b in BACKBONES.values() if b.pretrained]),
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
    from lesionpaste.train.evaluation.knn_baseline import evaluate_knn

    result = evaluate_knn(train_set, eval_set, out, arch=arch, k=k, size=size, device=device,
                          overwrite=overwrite)  # fmt: skip
    if not quiet:
        print_metrics(result, out)


@click.command(cls=Command)
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--by",
    type=click.Choice(sorted(CRITERIA)),
    default="heldout",
    show_default=True,
    help="Rank by the held-out-lesion validation AUC (lp-train --heldout-val), the "
    "same-bank one, or the same-bank one on the twins with 1-5 lesions (few: the hardest).",
)
@click.option(
    "--eval",
    "evaluation",
    default="eval",
    show_default=True,
    help="Each run's lp-eval folder (RUN/EVAL) whose real AUC is shown where it exists.",
)
@click.option("--comparison", default="0vall", show_default=True, help="The real AUC shown.")
def select_command(runs, by, evaluation, comparison) -> None:
    """Rank trained RUNS by a synthetic validation AUC (no real anomaly needed); where runs
    have been evaluated on real images, show how well each criterion ranks them as the real
    AUC does (Spearman's rank correlation)."""
    rows = [run_row(run, evaluation, comparison) for run in runs]
    if all(getattr(r, by) is None for r in rows):
        how = "train with --heldout-val" if by == "heldout" else "no validation twin had 1-5"
        raise LesionPasteError(f"no run logged a {CRITERIA[by]} ({how}); rank --by val")
    rows.sort(key=lambda r: -1.0 if getattr(r, by) is None else getattr(r, by), reverse=True)

    def cell(v: float | None) -> str:
        return "-" if v is None else f"{v:.4f}"

    click.echo(f"{'run':<40} {'epoch':>5} {'val':>7} {'heldout':>7} {'few':>7} {comparison:>7}")
    for r in rows:
        click.echo(
            f"{r.run!s:<40} {r.epoch:>5} {cell(r.val):>7} {cell(r.heldout):>7} "
            f"{cell(r.few):>7} {cell(r.real):>7}"
        )
    for name, result in criteria_against_real(rows).items():
        if result is not None:
            click.echo(
                f"{name} against the real {comparison} AUC: Spearman rho {result['rho']:+.3f} "
                f"(p = {result['p']:.3g}, {result['runs']} runs)"
            )


def main_train() -> None:
    """Console entry point of ``lp-train``."""
    train_command(prog_name="lp-train")


def main_eval() -> None:
    """Console entry point of ``lp-eval``."""
    eval_command(prog_name="lp-eval")


def main_knn() -> None:
    """Console entry point of ``lp-knn``."""
    knn_command(prog_name="lp-knn")


def main_select() -> None:
    """Console entry point of ``lp-select``."""
    select_command(prog_name="lp-select")
