"""``lp-export``: a trained run as one model file (ONNX or TorchScript) with ``model.json`` and
its model card, for a machine without this code (ONNX: ONNX Runtime alone)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click

import lesionpaste
from lesionpaste.cli import Command
from lesionpaste.errors import LesionPasteError
from lesionpaste.file_names import CARD, EVALUATION_RECORD, MODEL_FILES, MODEL_RECORD, RUN_CONFIG
from lesionpaste.files import building_folder, write_text_atomic
from lesionpaste.jsonfiles import finite_json, read_json_file
from lesionpaste.outputs import check_output, real
from lesionpaste.train.deploy.exported import MODEL_FORMAT, MODEL_VERSION
from lesionpaste.train.predict_cli import like_option
from lesionpaste.train.runs.contract import run_contract


def model_description(run: Path, contract, kind: str, digest: str) -> dict:
    """``model.json``: what the exported model is and takes.

    Args:
        run: the run exported.
        contract: its input contract.
        kind: ``"onnx"`` or ``"torchscript"``.
        digest: the model file's sha256.

    Returns:
        The JSON-ready description.
    """
    config = read_json_file(run / RUN_CONFIG, 1 << 20)
    evaluation = None
    if (run / EVALUATION_RECORD).is_file():
        evaluation = read_json_file(run / EVALUATION_RECORD, 1 << 20)
    return {
        "format": MODEL_FORMAT,
        "schema_version": MODEL_VERSION,
        "model_format": kind,
        "model_file": MODEL_FILES[kind],
        "model_sha256": digest,
        "inputs": "images: (batch, S, S, C) uint8, prepared by the contract",
        "outputs": "probability: (batch,) class-1 probability; map: (batch, h, w) with maps",
        "tool_version": lesionpaste.__version__,
        "contract": contract.to_dict(),
        "training": {
            key: config.get(key)
            for key in (
                "dataset",
                "dataset_sha256",
                "bank_sources",
                "arch",
                "weights",
                "epochs",
                "batch_size",
                "lr",
                "size",
                "freeze",
                "maps",
                "seed",
                "supervised",
            )
        },
        "evaluation": evaluation,
    }


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
    from lesionpaste.train.deploy.export_model import (
        InferenceGraph,
        export_onnx,
        export_torchscript,
    )
    from lesionpaste.train.runs.restore import restore

    check_output(out, "model", [("run", run)], overwrite)
    contract = run_contract(run, like)
    side, channels = contract.preparation.size, contract.preparation.channels
    if side == 0:
        raise LesionPasteError(
            f"{run} was trained on images of their source resolution (--size 0); an export "
            "takes one fixed size"
        )
    model, normalizer, _config, _ = restore(run, "cpu", fused=False)  # as trained
    graph = InferenceGraph(model, normalizer)
    writer = export_onnx if kind == "onnx" else export_torchscript
    with building_folder(real(out), "lp-export", "export", out, overwrite) as work:
        work.mkdir(parents=True)
        model_path = work / MODEL_FILES[kind]
        writer(graph, side, channels, model_path)
        from lesionpaste.digests import sha256_file

        description = model_description(run, contract, kind, sha256_file(model_path))
        text = json.dumps(finite_json(description), indent=1, allow_nan=False) + "\n"
        write_text_atomic(work / MODEL_RECORD, text)
        if (run / CARD).is_file():
            shutil.copyfile(run / CARD, work / CARD)
    if not quiet:
        click.echo(f"exported {run} as {kind} into {out} ({MODEL_FILES[kind]}, {MODEL_RECORD})")


def main_export() -> None:
    """Console entry point of ``lp-export``."""
    export_command(prog_name="lp-export")
