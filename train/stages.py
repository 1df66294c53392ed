"""Each backbone as a sequence of stages and a head, so that the first stages can be frozen.

``split(model, arch)`` gives modules whose composition is exactly the model's forward:
``head(stage_k(...stage_1(x)))``. ``lp-train --freeze N`` keeps the first N stages frozen
(no gradient, batch-norm statistics fixed), computes their output once per image, and trains
the rest on it (train/frozen.py).
"""

from __future__ import annotations

import torch
from torch import nn


class _Head(nn.Module):
    """The layers after the last stage: pooling (and more) down to the logits."""

    def __init__(self, arch: str, model: nn.Module):
        super().__init__()
        self.arch = arch
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logits from the last stage's output.

        Args:
            x: the last stage's ``(N, C, h, w)`` output.

        Returns:
            ``(N, classes)`` logits.
        """
        m = self.model
        if self.arch in ("resnet18", "resnet50"):
            return m.fc(torch.flatten(m.avgpool(x), 1))
        if self.arch == "vgg16":
            return m.classifier(torch.flatten(m.avgpool(x), 1))
        if self.arch == "efficientnet_lite0":
            x = torch.nn.functional.relu6(m._bn1(m._conv_head(x)))
            return m._fc(m._dropout(x.mean(dim=(2, 3))))
        return m.fc(x.mean(dim=(2, 3)))  # smallcnn


def _cut(layers: list[nn.Module], at: list[int]) -> list[nn.Module]:
    """``layers`` as consecutive ``nn.Sequential`` stages ending after each index of ``at``."""
    stages, start = [], 0
    for end in at:
        stages.append(nn.Sequential(*layers[start : end + 1]))
        start = end + 1
    return stages


class _Stem(nn.Module):
    """EfficientNet-Lite0's stem: convolution, batch norm, ReLU6."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.conv, self.bn = model._conv_stem, model._bn0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The stem's output.

        Args:
            x: ``(N, 3, H, W)`` normalised images.

        Returns:
            ``(N, 32, H / 2, W / 2)`` features.
        """
        return torch.nn.functional.relu6(self.bn(self.conv(x)))


def split(model: nn.Module, arch: str) -> tuple[list[nn.Module], nn.Module]:
    """The model's stages, in forward order, and its head.

    The stages share the model's modules (no copy): freezing a stage freezes the model's.

    Args:
        model: a network built by ``train.models.build_model``.
        arch: its architecture name.

    Returns:
        ``(stages, head)``: ResNets 5 stages (stem, layer1..4), VGG16 5 (its convolution
        blocks, each ending in a max pool), EfficientNet-Lite0 8 (the stem and its 7 block
        stages), the small CNN 4.
    """
    if arch in ("resnet18", "resnet50"):
        stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
        stages = [stem, model.layer1, model.layer2, model.layer3, model.layer4]
    elif arch == "vgg16":
        layers = list(model.features)
        pools = [i for i, layer in enumerate(layers) if isinstance(layer, nn.MaxPool2d)]
        stages = _cut(layers, pools)
    elif arch == "efficientnet_lite0":
        from lesionpaste.train.efficientnet_lite import STAGES

        ends = list(torch.cumsum(torch.tensor([s[0] for s in STAGES]), 0) - 1)
        stages = [_Stem(model), *_cut(list(model._blocks), [int(e) for e in ends])]
    else:
        stages = _cut(list(model.features), list(range(1, len(model.features), 2)))
    return stages, _Head(arch, model)


def freeze(stages: list[nn.Module], n: int) -> None:
    """Freeze the first ``n`` stages: no gradient, and batch norm kept in eval mode.

    Args:
        stages: ``split``'s stages.
        n: how many, from the first.
    """
    for stage in stages[:n]:
        stage.eval()
        for p in stage.parameters():
            p.requires_grad_(False)
