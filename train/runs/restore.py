"""A run's trained model restored from its checkpoint, and scoring prepared images: the one
scoring path of ``lp-eval``, ``lp-predict``, ``lp-export`` and ``lesionpaste.load_detector``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lesionpaste.errors import LesionPasteError
from lesionpaste.file_names import BEST, CHECKPOINT, MAPS_RECORD
from lesionpaste.jsonfiles import read_json_file
from lesionpaste.train.metrics.image_scores import IMAGE_SCORES, image_scores
from lesionpaste.train.models.build import build_model
from lesionpaste.train.models.decoder import MapModel, map_outputs
from lesionpaste.train.models.fused import for_inference, keep_freed_memory
from lesionpaste.train.models.on_device import Normalizer, pick_device, place_images, scores_of
from lesionpaste.train.training.checkpoints import load_checkpoint
from lesionpaste.train.training.config import TrainConfig


def restore(run: Path, device_name: str, fused: bool = True):
    """The trained model of a run, its normalizer and configuration, on the device.

    Args:
        run: the run directory (its ``checkpoint.pt`` is read, and with ``--keep-best`` the
            kept epoch's ``best.pt``).
        device_name: ``"auto"``, ``"cuda"`` or ``"cpu"``.
        fused: made for scoring (``train.models.fused.for_inference``: batch norm folded,
            activations and padding fused; the same scores within 1e-6, about 2.7x faster on
            a CPU), and on a CPU the process's freed memory kept for reuse. False gives the
            model as trained (what ``lp-export`` exports).

    Returns:
        ``(model, normalizer, config, device)``.

    Raises:
        LesionPasteError: no loadable checkpoint, one of another version, or an unavailable
            device.
    """
    name = model_file(run).name
    state = load_checkpoint(run / name)
    if name != BEST and isinstance(state.get("config"), dict) and state["config"].get("keep_best"):
        raise LesionPasteError(f"{run}/{BEST}: no checkpoint (the kept epoch of --keep-best)")
    try:
        config = TrainConfig(**state["config"])
        model, _ = build_model(config.arch, "none")
        if config.maps:
            model = MapModel(model, config.arch)
        model.load_state_dict(state["model"])
    except (TypeError, KeyError, RuntimeError, LesionPasteError) as exc:
        raise LesionPasteError(
            f"{run}/{name} does not hold a model of this version ({exc})"
        ) from None
    device = pick_device(device_name)
    model = model.to(device, memory_format=torch.channels_last)
    if fused:
        model = for_inference(model)
        if device.type == "cpu":
            keep_freed_memory()  # a scoring process: no page faults on every batch
    return model, Normalizer(config.size, True, config.arch).to(device), config, device


def model_file(run: Path) -> Path:
    """The checkpoint holding a run's model: ``best.pt`` (the kept epoch of ``--keep-best``)
    when there is one, else ``checkpoint.pt``.

    Args:
        run: the run directory.

    Returns:
        The checkpoint's path.
    """
    return run / BEST if (run / BEST).exists() else run / CHECKPOINT


def score(run: Path, dataset, device_name: str) -> np.ndarray:
    """Every image's anomaly score under the run's trained model.

    Args:
        run: the run directory.
        dataset: the images to score (``LoadedDataset``).
        device_name: ``"auto"``, ``"cuda"`` or ``"cpu"``.

    Returns:
        ``(N,)`` scores: the probability of class 1, or for a run with maps the image score
        its ``maps.json`` names.

    Raises:
        LesionPasteError: the run's model cannot be restored.
    """
    return score_and_maps(run, dataset, device_name)[0]


def score_and_maps(
    run: Path, dataset, device_name: str, restored: tuple | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Every image's anomaly score, and its anomaly map when the run learnt maps.

    Args:
        run: the run directory.
        dataset: the images to score (``LoadedDataset``).
        device_name: ``"auto"``, ``"cuda"`` or ``"cpu"``.
        restored: ``restore(run, device_name)`` when the caller already has it.

    Returns:
        ``(scores, maps)``: ``(N,)`` scores (see ``score``) and ``(N, h, w)`` ``float32`` map
        probabilities at the map's stride, or None for a run without maps.

    Raises:
        LesionPasteError: the run's model cannot be restored, or its ``maps.json`` is missing.
    """
    restored = restored or restore(run, device_name)
    probabilities, maps = model_outputs(restored, dataset.images)
    if maps is None:
        return probabilities, None
    return image_scores(probabilities, maps)[map_choices(run)["image_score"]], maps


def model_outputs(restored: tuple, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The restored model's outputs for prepared images: the one scoring path of ``lp-eval``,
    ``lp-predict`` and ``lesionpaste.load_detector``.

    Args:
        restored: ``restore(run, device)``.
        images: ``(N, H, W, C)`` ``uint8`` prepared images.

    Returns:
        ``(probabilities, maps)``: ``(N,)`` ``float32`` class-1 probabilities and, for a run
        with maps, ``(N, h, w)`` ``float32`` map probabilities (else None).
    """
    model, normalizer, config, device = restored
    tensor, _ = place_images(np.ascontiguousarray(images), device)
    if not config.maps:
        return scores_of(model, normalizer, tensor, device), None
    return map_outputs(model, normalizer, tensor, device)


def run_scorer(run: Path, device_name: str):
    """A run's model as a scorer of prepared images (``train.deploy.detector.Scorer``).

    Args:
        run: the run directory.
        device_name: ``"auto"``, ``"cuda"`` or ``"cpu"``.

    Returns:
        A function of ``(N, S, S, C)`` ``uint8`` images giving ``model_outputs``.

    Raises:
        LesionPasteError: the run's model cannot be restored.
    """
    restored = restore(run, device_name)
    return lambda images: model_outputs(restored, images)


def map_choices(run: Path) -> dict:
    """What a run with maps chose on its validation pairs (``maps.json``).

    Args:
        run: the run directory.

    Returns:
        ``maps.json``: the image score, the pixel threshold, and their validation figures.

    Raises:
        LesionPasteError: the file is missing, oversized, nested absurdly deep, names an
            unknown image score, or holds a pixel threshold that is not a number in [0, 1].
    """
    path = run / MAPS_RECORD
    if not path.exists():
        raise LesionPasteError(f"{path}: missing (train the run again)")
    choices = read_json_file(path, 1 << 20)
    if not isinstance(choices, dict) or choices.get("image_score") not in IMAGE_SCORES:
        raise LesionPasteError(f"{path}: damaged, no known image_score (train the run again)")
    threshold = choices.get("pixel_threshold")
    if threshold is not None and not (
        isinstance(threshold, (int, float))
        and not isinstance(threshold, bool)
        and 0.0 <= threshold <= 1.0  # False for NaN
    ):
        raise LesionPasteError(f"{path}: pixel_threshold is {threshold!r}, not a number in [0, 1]")
    return choices
