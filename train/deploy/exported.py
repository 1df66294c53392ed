"""An ``lp-export`` folder: ``model.json`` (the input contract, the class meaning, the
thresholds, the tool version, the training dataset's digest, the bank's sources and the
evaluation figures) beside one model file, ONNX (``model.onnx``, scored through ONNX Runtime
alone, no torch) or TorchScript (``model.pt``).

``model.json`` comes from whoever sent the folder: it is read through the safe JSON reader and
checked value by value, the model file must be the one it names by digest, and the model's input
must be the size and channels its contract says.
"""

from __future__ import annotations

from pathlib import Path

from lesionpaste.contract import contract_from_dict
from lesionpaste.digests import is_sha256
from lesionpaste.errors import LesionPasteError
from lesionpaste.file_names import MODEL_FILES, MODEL_RECORD
from lesionpaste.jsonfiles import read_json_file
from lesionpaste.train.deploy.detector import Detector

MODEL_FORMAT = "lesionpaste-model"
MODEL_VERSION = 1


def check_model_json(data: object, where: Path) -> dict:
    """A parsed ``model.json``, checked for format, version, model format and file name.

    Args:
        data: the parsed JSON.
        where: the file, named in messages.

    Returns:
        It, as a dict.

    Raises:
        LesionPasteError: another format or version, an unknown model format, a model file
            name that is not that format's, or a digest that is not one.
    """
    if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
        raise LesionPasteError(f"{where}: not an lp-export model description")
    version = data.get("schema_version")
    if isinstance(version, bool) or version != MODEL_VERSION:
        raise LesionPasteError(
            f"{where}: schema version {version!r} is not known to this "
            f"version (it reads {MODEL_VERSION}); update LesionPaste"
        )
    kind = data.get("model_format")
    if not isinstance(kind, str) or kind not in MODEL_FILES:
        raise LesionPasteError(f"{where}: unknown model_format {kind!r} (onnx or torchscript)")
    if data.get("model_file") != MODEL_FILES[kind]:
        raise LesionPasteError(
            f"{where}: model_file {data.get('model_file')!r}; the {kind} format's model file is "
            f"{MODEL_FILES[kind]}, beside model.json"
        )
    if not is_sha256(data.get("model_sha256")):
        raise LesionPasteError(f"{where}: model_sha256 is not a sha256 digest")
    return data


def load_export(folder: Path, device: str = "auto") -> Detector:
    """The detector of an ``lp-export`` folder.

    Args:
        folder: the folder holding ``model.json`` and its model file.
        device: for TorchScript, ``"auto"``, ``"cuda"`` or ``"cpu"`` (ONNX runs on the CPU).

    Returns:
        The detector (an ONNX one imports no torch).

    Raises:
        LesionPasteError: a damaged, oversized or absurdly nested ``model.json``; a model file
            that is missing, altered (its digest), damaged, a pickle, or whose input is not the
            contract's size and channels.
    """
    folder = Path(folder)
    where = folder / MODEL_RECORD
    data = check_model_json(read_json_file(where, 1 << 20), where)
    contract = contract_from_dict(data.get("contract"), where)
    model = folder / data["model_file"]
    digest = data["model_sha256"]  # the bytes loaded are the bytes checked: read once
    if data["model_format"] == "onnx":
        from lesionpaste.train.deploy.onnx_runner import OnnxScorer

        scorer = OnnxScorer(model, sha256=digest)
    else:
        from lesionpaste.train.deploy.export_model import TorchScriptScorer
        from lesionpaste.train.models.on_device import pick_device

        scorer = TorchScriptScorer(model, pick_device(device), sha256=digest)
    p = contract.preparation
    if (scorer.side, scorer.channels, scorer.has_map) != (p.size, p.channels, contract.maps):
        raise LesionPasteError(
            f"{where} does not match its model: the model takes {scorer.side}x{scorer.side}x"
            f"{scorer.channels} images{' and gives a map' if scorer.has_map else ''}, the "
            f"contract says {p.size}x{p.size}x{p.channels}{' with a map' if contract.maps else ''}"
        )
    return Detector(contract, scorer.score, folder, data["model_format"], data["model_sha256"])
