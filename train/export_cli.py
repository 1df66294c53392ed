"""``lp-export``: a trained run as one model file (ONNX or TorchScript) with ``model.json`` and
its model card, for a machine without this code (ONNX: ONNX Runtime alone)."""

from __future__ import annotations

from pathlib import Path

import click

from lesionpaste.cli import Command
from lesionpaste.file_names import MODEL_FILES, MODEL_RECORD
from lesionpaste.train.predict_cli import like_option


@click.command(cls=Command)
@click.argument("run", type=click.Path(path_type=Path))
@click.option(
    "--format", "kind", type=click.Choice(sorted(MODEL_FILES)), default="onnx", show_default=True
)
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True)
@like_option
@click.option("--overwrite", is_flag=True, help="Replace an earlier lp-export folder at OUT.")
@click.option("-q", "--quiet", is_flag=True)
def export_command(run, kind, out, like, overwrite, quiet) -> None:
    """Export RUN's model as one ONNX or TorchScript file into OUT, with model.json (its input
    contract, thresholds, training data and evaluation) and its model card; lp-predict OUT
    scores with it, and an ONNX export needs only ONNX Runtime."""
    from lesionpaste.train.deploy.export_run import export_run

    export_run(run, kind, out, like, overwrite)
    if not quiet:
        click.echo(f"exported {run} as {kind} into {out} ({MODEL_FILES[kind]}, {MODEL_RECORD})")


def main_export() -> None:
    """Console entry point of ``lp-export``."""
    export_command(prog_name="lp-export")
