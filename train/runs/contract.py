"""A run's input contract (``RUN/contract.json``): written by ``lp-train`` from its dataset's
preparation and its own files, read back checked; for a run made before runs recorded one,
assembled from a dataset prepared as its training images were (``--like``)."""

from __future__ import annotations

import json
from pathlib import Path

from lesionpaste.contract import (
    InputContract,
    Preparation,
    check_thresholds,
    preparation_of,
    read_contract,
)
from lesionpaste.dataset_format import read_dataset_json
from lesionpaste.errors import LesionPasteError
from lesionpaste.file_names import CONTRACT_FILE, RUN_CONFIG, THRESHOLDS
from lesionpaste.files import write_text_atomic
from lesionpaste.jsonfiles import read_json_file


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
    from lesionpaste.train.models.build import input_normalization
    from lesionpaste.train.training.config import read_config

    config = read_config(run / RUN_CONFIG)
    arch, size, maps = config.arch, config.size, config.maps
    if size < 8:
        raise LesionPasteError(f"{run / RUN_CONFIG}: missing or damaged (arch, size)")
    image_score, map_threshold = "classifier", None
    if maps:
        from lesionpaste.train.runs.restore import map_choices

        choices = map_choices(run)
        image_score, map_threshold = choices["image_score"], choices.get("pixel_threshold")
    thresholds, n_normals = {}, 0
    if (run / THRESHOLDS).exists():
        thresholds, n_normals = check_thresholds(
            read_json_file(run / THRESHOLDS, 1 << 20), run / THRESHOLDS
        )
    mean, std = input_normalization(arch)
    return InputContract(
        preparation, size, tuple(mean), tuple(std), image_score, thresholds, n_normals, arch,
        maps, map_threshold,
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
