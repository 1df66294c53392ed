"""``lp-predict`` and ``lp-export``: a trained detector scoring new images, and shipped as one
model file with its contract. They parse and call the library (``train.deploy.predict``,
``train.deploy.export_run``), which checks the output; no torch is imported here, so an ONNX
export is scored without it."""

from __future__ import annotations

from pathlib import Path

import click

from lesionpaste.cli import Command
from lesionpaste.file_names import PREDICTIONS_CSV, PREDICTIONS_HTML
from lesionpaste.train.deploy.predict import predict

#: --like, for lp-predict and lp-export
like_option = click.option(
    "--like",
    type=click.Path(path_type=Path),
    help="For a run trained before runs recorded their input contract: a dataset prepared as "
    "its training images were (its training dataset).",
)


@click.command(cls=Command)
@click.argument("detector", type=click.Path(path_type=Path))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True)
@like_option
@click.option("-j", "--jobs", default=1, show_default=True, help="Processes preparing images.")
@click.option("--strict", is_flag=True, help="Stop at the first unreadable image.")
@click.option("--device", default="auto", show_default=True, help="auto, cuda or cpu.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier lp-predict output at OUT.")
@click.option("-q", "--quiet", is_flag=True)
def predict_command(detector, inputs, out, like, jobs, strict, device, overwrite, quiet) -> None:
    """Score new images with DETECTOR (an lp-train run, or an lp-export folder).

    INPUTS are image files, folders of them, CSV files listing them (a path, image, file or
    filename column; the other columns are carried through), DICOM slices or NIfTI volumes.
    Each image is prepared as the detector's training images were (its input contract),
    scored, and flagged at each synthetic threshold: OUT/predictions.csv and
    OUT/predictions.html. A rerun after an interruption scores only what is missing.
    """
    counts = predict(detector, list(inputs), out, like=like, jobs=jobs, strict=strict,
                     device=device, overwrite=overwrite, quiet=quiet)  # fmt: skip
    if not quiet:
        flagged = ", ".join(f"{n} above {name}" for name, n in counts["flagged"].items())
        click.echo(
            f"scored {counts['scored']} image(s), skipped {counts['skipped']}"
            + (f", {counts['resumed']} already done" if counts["resumed"] else "")
            + (f"; flagged {flagged}" if flagged else "")
            + f"; wrote {out / PREDICTIONS_CSV} and {PREDICTIONS_HTML}"
        )


def main_predict() -> None:
    """Console entry point of ``lp-predict``."""
    predict_command(prog_name="lp-predict")
