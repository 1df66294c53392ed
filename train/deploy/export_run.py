"""``lp-export`` as one call: a trained run as one model file (ONNX or TorchScript) with
``model.json`` (what it is and takes) and its model card, into a folder checked first by the
output guard and swapped in whole."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import lesionpaste
from lesionpaste.digests import sha256_file
from lesionpaste.errors import LesionPasteError
from lesionpaste.file_names import CARD, EVALUATION_RECORD, MODEL_FILES, MODEL_RECORD, RUN_CONFIG
from lesionpaste.files import building_folder, write_text_atomic
from lesionpaste.jsonfiles import finite_json, read_json_file
from lesionpaste.outputs import check_output, real
from lesionpaste.train.deploy.export_model import InferenceGraph, export_onnx, export_torchscript
from lesionpaste.train.deploy.exported import MODEL_FORMAT, MODEL_VERSION
from lesionpaste.train.runs.contract import run_contract
from lesionpaste.train.runs.restore import restore
from lesionpaste.train.training.config import read_config


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
    config = asdict(read_config(run / RUN_CONFIG))
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


def export_run(
    run: Path, kind: str, out: Path, like: Path | None = None, overwrite: bool = False
) -> Path:
    """Export a run's model as it was trained (no fused layers) into ``out``.

    Args:
        run: the ``lp-train`` run.
        kind: ``"onnx"`` or ``"torchscript"``.
        out: the export folder to write (``model.json``, the model file, ``README.md``).
        like: for a run without an input contract, a dataset prepared as its images were.
        overwrite: replace an earlier ``lp-export`` folder at ``out``.

    Returns:
        The model file's path.

    Raises:
        LesionPasteError: an unsafe output, a run without a usable contract or checkpoint, a
            run trained at the source resolution (``--size 0``), or an exported model whose
            scores differ from the run's.
    """
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
        description = model_description(run, contract, kind, sha256_file(model_path))
        text = json.dumps(finite_json(description), indent=1, allow_nan=False) + "\n"
        write_text_atomic(work / MODEL_RECORD, text)
        if (run / CARD).is_file():
            shutil.copyfile(run / CARD, work / CARD)
    return out / MODEL_FILES[kind]
