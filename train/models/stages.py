"""Each backbone as a sequence of stages and a head, so that the first stages can be frozen.

``split(model, arch)`` gives modules whose composition is exactly the model's forward:
``head(stage_k(...stage_1(x)))``. ``lp-train --freeze N`` keeps the first N stages frozen
(no gradient, batch-norm statistics fixed), computes their output once per image, and trains
the rest on it (train/training/frozen.py).
"""

from __future__ import annotations

import torch
from torch import nn

from lesionpaste.train.models.backbones import backbone


class _Head(nn.Module):
    """The layers after the last stage: pooling (and more) down to the logits
    (``train.models.backbones``' ``head``)."""

    def __init__(self, arch: str, model: nn.Module):
        super().__init__()
        self.arch = arch
        self.model = model
        self._head = backbone(arch).head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logits from the last stage's output.

        Args:
            x: the last stage's ``(N, C, h, w)`` output.

        Returns:
            ``(N, classes)`` logits.
        """
        return self._head(self.model, x)


def split(model: nn.Module, arch: str) -> tuple[list[nn.Module], nn.Module]:
    """The model's stages, in forward order, and its head (``train.models.backbones``).

    The stages share the model's modules (no copy): freezing a stage freezes the model's.

    Args:
        model: a network built by ``train.models.build.build_model``.
        arch: its architecture name.

    Returns:
        ``(stages, head)``: the registry's stages (``Backbone.n_stages`` of them; ResNets:
        stem, layer1..4) and a head that completes the forward.
    """
    return backbone(arch).stages(model), _Head(arch, model)


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
