"""The unsupervised baseline: distance to the k nearest normal training images in the feature
space of an ImageNet-pretrained network (no training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors
from torch import nn

from lesionpaste.errors import LesionPasteError
from lesionpaste.outputs import check_output
from lesionpaste.train.evaluation.evaluate_run import write_evaluation
from lesionpaste.train.metrics.auc import metrics
from lesionpaste.train.models.backbones import backbone
from lesionpaste.train.models.build import build_model
from lesionpaste.train.models.on_device import Normalizer, pick_device
from lesionpaste.train.training.dataset import load_dataset


def feature_extractor(arch: str) -> nn.Module:
    """The pretrained network without its classifier: pooled features of the last stage.

    Args:
        arch: the architecture name (one with ImageNet weights).

    Returns:
        The network in eval mode, giving ``(N, D)`` features.

    Raises:
        LesionPasteError: an unknown architecture, or ImageNet weights that are not available.
    """
    model, _ = build_model(arch, "imagenet", classes=1000)
    backbone(arch).pooled(model)  # the classifier removed: pooled features out
    return model.eval()


@torch.no_grad()
def features(
    model: nn.Module,
    normalizer: nn.Module,
    images: np.ndarray,
    device: torch.device,
    batch_size: int = 64,
) -> np.ndarray:
    """L2-normalised features of every image.

    Args:
        model: the feature extractor (``feature_extractor``).
        normalizer: the ``Normalizer`` for its input.
        images: ``(N, H, W, C)`` ``uint8`` images.
        device: the device to compute on.
        batch_size: images per forward pass.

    Returns:
        ``(N, D)`` ``float32`` features, each of unit L2 norm.
    """
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(images[start : start + batch_size]).to(device)
        f = model(normalizer(x)).float()
        out.append(torch.nn.functional.normalize(f, dim=1).cpu())
    return torch.cat(out).numpy()


def knn_scores(reference: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Mean Euclidean distance of each query to its ``k`` nearest reference features.

    Args:
        reference: ``(M, D)`` features of the normal training images.
        queries: ``(N, D)`` features of the images to score.
        k: neighbours to average over (clipped to 1..M).

    Returns:
        ``(N,)`` ``float64`` scores, higher meaning more anomalous.
    """
    k = max(1, min(k, len(reference)))
    distances, _ = NearestNeighbors(n_neighbors=k).fit(reference).kneighbors(queries)
    return distances.mean(axis=1)


def evaluate_knn(
    train_set: Path,
    eval_set: Path,
    out: Path,
    *,
    arch: str = "efficientnet_lite0",
    k: int = 5,
    size: int | None = None,
    device: str = "auto",
    overwrite: bool = False,
) -> dict:
    """``lp-knn`` as one call: score ``eval_set`` by the distance to the ``k`` nearest normal
    images of ``train_set``, and write the evaluation (``scores.csv``, ``metrics.json``,
    ``roc.png``) into ``out``, checked first by the output guard.

    Args:
        train_set: the reference dataset (its label-0 images are the normals).
        eval_set: the evaluation set.
        out: the evaluation folder to write.
        arch: the pretrained feature network.
        k: nearest normal images averaged.
        size: the network's input side (None: the evaluation set's).
        device: ``"auto"``, ``"cuda"`` or ``"cpu"``.
        overwrite: replace an earlier evaluation at ``out``.

    Returns:
        The metrics written (AUCs with their intervals, the method and its inputs).

    Raises:
        LesionPasteError: an unsafe or existing output, unreadable datasets, or a reference
            dataset without a normal image.
    """
    inputs = [("reference dataset", train_set), ("evaluation set", eval_set)]
    check_output(out, "evaluation", inputs, overwrite)
    if out.exists() and not overwrite:
        raise LesionPasteError(f"{out} already exists; pass --overwrite to replace it")
    reference, evaluation = load_dataset(train_set), load_dataset(eval_set)
    normals = reference.images[reference.labels == 0]
    if len(normals) == 0:
        raise LesionPasteError(f"{train_set} has no normal (label 0) image")
    torch_device = pick_device(device)
    model = feature_extractor(arch).to(torch_device)
    normalizer = Normalizer(size or int(evaluation.images.shape[1]), False, arch).to(torch_device)
    scores = knn_scores(
        features(model, normalizer, normals, torch_device),
        features(model, normalizer, evaluation.images, torch_device),
        k,
    )
    result = metrics(scores, evaluation.labels)
    result.update(
        method=f"{k}-NN distance, {arch} ImageNet features",
        reference=str(train_set),
        evaluation_set=str(eval_set),
    )
    write_evaluation(out, evaluation, scores, result, None)
    return result
