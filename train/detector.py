"""A trained detector put to work: its input contract and a scorer, from a run or an export.

``load_detector(PATH)`` takes a run directory (``lp-train``'s) or an export folder
(``lp-export``'s ``model.json`` beside an ONNX or TorchScript model). ``.score(images)`` scores
images already prepared; ``.predict(paths)`` reads and prepares raw files by the contract first.
The scores are those ``lp-eval`` gives: one scoring path (``train.scoring.model_outputs``), the
image score the run chose, and a flag at each synthetic threshold.

This module imports no torch itself: an ONNX export is scored through ONNX Runtime alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lesionpaste.contract import (
    CONTRACT_FILE,
    InputContract,
    Preparation,
    check_thresholds,
    preparation_of,
    read_contract,
)
from lesionpaste.dataset_format import read_dataset_json
from lesionpaste.digests import sha256_file
from lesionpaste.errors import LesionPasteError
from lesionpaste.files import write_text_atomic
from lesionpaste.jsonfiles import read_json_file
from train.map_scores import image_scores

#: a scorer: ``(N, S, S, C)`` prepared ``uint8`` images -> class-1 probabilities and maps
Scorer = Callable[[np.ndarray], tuple[np.ndarray, "np.ndarray | None"]]
#: the most images scored in one forward pass
BATCH = 32


@dataclass
class Scored:
    """What a detector says of a batch of images.

    Attributes:
        scores: ``(N,)`` image scores (the contract's image score).
        probabilities: ``(N,)`` the classifier's probability of the anomalous class.
        maps: ``(N, h, w)`` map probabilities at the map's stride, or None.
        flagged: per synthetic threshold name, ``(N,)`` booleans: score above it.
    """

    scores: np.ndarray
    probabilities: np.ndarray
    maps: np.ndarray | None
    flagged: dict[str, np.ndarray]


class Detector:
    """A trained detector: its input contract and a scorer.

    Args:
        contract: how images are prepared and what the score means.
        scorer: the model, as a function of prepared ``uint8`` images.
        source: the run or export it was loaded from.
        kind: ``"run"``, ``"torchscript"`` or ``"onnx"``.
        model_sha256: the digest of the model's file (the run's checkpoint, or the export's
            model), which ``lp-predict`` records.
    """

    def __init__(
        self, contract: InputContract, scorer: Scorer, source: Path, kind: str, model_sha256: str
    ):
        self.contract, self._scorer, self.source, self.kind = contract, scorer, source, kind
        self.model_sha256 = model_sha256

    def score(self, images: np.ndarray) -> Scored:
        """Score images already prepared by the contract.

        Args:
            images: ``(N, S, S, C)`` ``uint8`` prepared images (``S`` the contract's size,
                ``C`` its channels).

        Returns:
            The scores, probabilities, maps and flags.

        Raises:
            LesionPasteError: images of another shape than the contract's.
        """
        images = np.asarray(images)
        p = self.contract.preparation
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != p.channels:
            raise LesionPasteError(
                f"images of shape {images.shape} ({images.dtype}): the detector takes (N, S, S, "
                f"{p.channels}) uint8 images prepared by its contract"
            )
        probabilities, maps = [], []
        for start in range(0, len(images), BATCH):
            prob, low = self._scorer(images[start : start + BATCH])
            probabilities.append(np.asarray(prob))
            maps.append(low)
        prob = np.concatenate(probabilities) if probabilities else np.zeros(0, np.float32)
        low = np.concatenate(maps) if maps and maps[0] is not None else None
        scores = prob if low is None else image_scores(prob, low)[self.contract.image_score]
        flagged = {name: scores > t for name, t in self.contract.thresholds.items()}
        return Scored(scores, prob, low, flagged)

    def predict(self, paths: Iterable[str | Path]) -> Scored:
        """Read raw image files, prepare each by the contract, and score them.

        Args:
            paths: image files (or DICOM slices) of the detector's modality.

        Returns:
            The scores, in the order of ``paths``.

        Raises:
            LesionPasteError: a file that cannot be read or prepared (of the other modality,
                say); ``lp-predict`` records and skips such files instead.
        """
        paths = [Path(p) for p in paths]
        parts = []
        for start in range(0, len(paths), BATCH):  # a batch prepared at a time: flat memory
            chunk = paths[start : start + BATCH]
            parts.append(self.score(np.stack([self.contract.preparation.prepare(p).image
                                              for p in chunk])))  # fmt: skip
        if not parts:
            return self.score(np.zeros((0, 1, 1, self.contract.preparation.channels), np.uint8))
        maps = None if parts[0].maps is None else np.concatenate([p.maps for p in parts])
        return Scored(
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.probabilities for p in parts]),
            maps,
            {k: np.concatenate([p.flagged[k] for p in parts]) for k in parts[0].flagged},
        )


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
    if (path / "model.json").exists() or path.name == "model.json":
        from train.exported import load_export

        return load_export(path if path.is_dir() else path.parent, device)
    if not (path / "checkpoint.pt").exists() and not (path / CONTRACT_FILE).exists():
        raise LesionPasteError(
            f"{path}: neither an lp-train run (checkpoint.pt) nor an lp-export folder (model.json)"
        )
    contract = run_contract(path, like)
    from train.scoring import model_file, run_scorer

    digest = sha256_file(model_file(path))
    return Detector(contract, run_scorer(path, device), path, "run", digest)


def run_contract(run: Path, like: str | Path | None = None) -> InputContract:
    """A run's input contract: its ``contract.json``, or for a run made before runs recorded
    one, assembled from ``like``'s preparation and the run's own files.

    Args:
        run: the run directory.
        like: a dataset prepared as the run's training images were, or None.

    Returns:
        The contract.

    Raises:
        LesionPasteError: a damaged contract, or no contract and no ``like``.
    """
    run = Path(run)
    if (run / CONTRACT_FILE).exists():
        return read_contract(run / CONTRACT_FILE)
    if like is None:
        raise LesionPasteError(
            f"{run} records no input contract (trained before LesionPaste 0.2); pass --like "
            "DATASET, its training dataset (or one prepared the same way), to say how to "
            "prepare images"
        )
    like = Path(like)
    return contract_of_run(run, preparation_of(read_dataset_json(like), like))


def contract_of_run(run: Path, preparation: Preparation) -> InputContract:
    """The contract of a trained run: the given preparation, the network's input from its
    configuration, the image score from ``maps.json`` and the thresholds from
    ``thresholds.json`` (each read through the safe reader and checked).

    Args:
        run: the run directory (``config.json`` and, when present, ``maps.json`` and
            ``thresholds.json``).
        preparation: how its training images were prepared.

    Returns:
        The contract.

    Raises:
        LesionPasteError: a missing or damaged configuration, ``maps.json`` or
            ``thresholds.json``.
    """
    from train.models import ARCHS, input_normalization

    config = read_json_file(run / "config.json", 1 << 20)
    arch, size, maps = (
        (config.get(k) for k in ("arch", "size", "maps"))
        if isinstance(config, dict)
        else (None, None, None)
    )
    if arch not in ARCHS or isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise LesionPasteError(f"{run}/config.json: missing or damaged (arch, size)")
    image_score, map_threshold = "classifier", None
    if maps:
        from train.scoring import map_choices

        choices = map_choices(run)
        image_score, map_threshold = choices["image_score"], choices.get("pixel_threshold")
    thresholds, n_normals = {}, 0
    if (run / "thresholds.json").exists():
        thresholds, n_normals = check_thresholds(
            read_json_file(run / "thresholds.json", 1 << 20), run / "thresholds.json"
        )
    mean, std = input_normalization(arch)
    return InputContract(
        preparation, size, tuple(mean), tuple(std), image_score, thresholds, n_normals, arch,
        bool(maps), map_threshold,
    )  # fmt: skip


def write_run_contract(run: Path, preparation: Preparation) -> InputContract:
    """Record a trained run's input contract in it (``contract.json``), from its own files.

    Args:
        run: the trained run directory (rank 0, holding its lock).
        preparation: how its training images were prepared (``preparation_of`` its dataset).

    Returns:
        The contract written.
    """
    contract = contract_of_run(run, preparation)
    text = json.dumps(contract.to_dict(), indent=2, allow_nan=False) + "\n"
    write_text_atomic(run / CONTRACT_FILE, text)
    return contract
