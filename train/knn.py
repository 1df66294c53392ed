"""The unsupervised baseline: distance to the k nearest normal training images in the feature
space of an ImageNet-pretrained network (no training)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors
from torch import nn

from train.models import build_model


def feature_extractor(arch: str) -> nn.Module:
    """The pretrained network without its classifier: pooled features of the last stage."""
    model, _ = build_model(arch, "imagenet", classes=1000)
    if arch == "efficientnet_lite0":
        model._fc = nn.Identity()
        model._dropout = nn.Identity()
    elif arch == "vgg16":
        model.classifier = nn.Sequential(*list(model.classifier)[:-1])
    else:
        model.fc = nn.Identity()
    return model.eval()


@torch.no_grad()
def features(
    model: nn.Module,
    normalizer: nn.Module,
    images: np.ndarray,
    device: torch.device,
    batch_size: int = 64,
) -> np.ndarray:
    """L2-normalised features of every image."""
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(images[start : start + batch_size]).to(device)
        f = model(normalizer(x)).float()
        out.append(torch.nn.functional.normalize(f, dim=1).cpu())
    return torch.cat(out).numpy()


def knn_scores(reference: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Mean Euclidean distance of each query to its ``k`` nearest reference features."""
    k = max(1, min(k, len(reference)))
    distances, _ = NearestNeighbors(n_neighbors=k).fit(reference).kneighbors(queries)
    return distances.mean(axis=1)
