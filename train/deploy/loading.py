"""``load_detector``: a trained detector from a run directory (``lp-train``'s) or an export
folder (``lp-export``'s ``model.json`` beside an ONNX or TorchScript model). Imports no torch for
an ONNX export."""

from __future__ import annotations

import functools
from pathlib import Path

from lesionpaste.digests import sha256_file
from lesionpaste.errors import LesionPasteError
from lesionpaste.file_names import CHECKPOINT, CONTRACT_FILE, MODEL_RECORD
from lesionpaste.train.deploy.detector import Detector
from lesionpaste.train.runs.contract import run_contract


def load_detector(path: str | Path, like: str | Path | None = None, device: str = "auto"):
    """A trained detector from a run directory or an export folder.

    Args:
        path: an ``lp-train`` run, or an ``lp-export`` folder (``model.json``).
        like: for a run trained before runs recorded their input contract, a dataset prepared
            as its training images were (its training dataset): it supplies the preparation.
        device: ``"auto"``, ``"cuda"`` or ``"cpu"`` (a run or TorchScript export).

    Returns:
        The ``Detector``.

    Raises:
        LesionPasteError: neither a run nor an export, a damaged contract, model or
            ``model.json``, or a run without a contract and no ``like``.
    """
    path = Path(path)
    if (path / MODEL_RECORD).exists() or path.name == MODEL_RECORD:
        from lesionpaste.train.deploy.exported import load_export

        return load_export(path if path.is_dir() else path.parent, device)
    if not (path / CHECKPOINT).exists() and not (path / CONTRACT_FILE).exists():
        raise LesionPasteError(
            f"{path}: neither an lp-train run (checkpoint.pt) nor an lp-export folder (model.json)"
        )
    contract = run_contract(path, like)
    from lesionpaste.train.runs.restore import model_file, run_scorer

    digest = functools.partial(sha256_file, model_file(path))  # hashed if asked (lp-predict)
    return Detector(contract, run_scorer(path, device), path, "run", digest)
