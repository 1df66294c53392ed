"""The unsupervised baseline: distance to the k nearest normal training images in the feature
space of an ImageNet-pretrained network (no training)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors
from torch import nn

from lesionpaste.train.models.backbones import backbone
from lesionpaste.train.models.build import build_model


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
