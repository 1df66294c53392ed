"""A light dense decoder over a backbone's multi-scale features: a pixel-level anomaly map.

``MapModel`` wraps any network of ``train.models.build`` (VGG16, ResNets, EfficientNet-Lite0, the
small CNN). Forward hooks collect the last feature map of each stride (4, 8, 16 and 32 where the
backbone has them); a small feature pyramid (1x1 lateral convolutions to 64 channels, top-down
upsampling and addition, one 3x3 convolution) turns them into one logit per pixel at stride 4.
The classifier head is untouched, so ``model(x)`` is still the image-level logits (Grad-CAM and
the image scores work as before) and ``model(x, with_map=True)`` adds the map.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lesionpaste.train.models.backbones import backbone

#: the decoder's channels: light (about 0.1 M parameters over VGG16's taps)
DECODER_CHANNELS = 64
#: the strides whose features feed the decoder, finest first
TAP_STRIDES = (4, 8, 16, 32)
#: the side of the probe image that finds each stage's stride
_PROBE = 64


def stage_modules(model: nn.Module, arch: str) -> list[nn.Module]:
    """The backbone's stages in forward order, among which the taps are chosen
    (``train.models.backbones``' ``taps``).

    Args:
        model: a network built by ``train.models.build.build_model``.
        arch: its architecture name.

    Returns:
        The modules whose outputs are candidate feature maps.
    """
    return backbone(arch).taps(model)


def find_taps(model: nn.Module, arch: str) -> tuple[list[int], list[int], list[int]]:
    """For each stride of ``TAP_STRIDES`` the backbone reaches, its last stage of that stride.

    A probe image of 64x64 pixels goes through the backbone once (no gradient, eval mode; the
    mode is restored afterwards).

    Args:
        model: a network built by ``train.models.build.build_model``.
        arch: its architecture name.

    Returns:
        ``(indices, strides, channels)``: the chosen stages' positions in ``stage_modules``,
        their strides and their channel counts, finest first.
    """
    stages = stage_modules(model, arch)
    shapes: dict[int, tuple[int, int]] = {}
    handles = [
        m.register_forward_hook(lambda _m, _i, out, k=k: shapes.__setitem__(k, out.shape[1:3]))
        for k, m in enumerate(stages)
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, _PROBE, _PROBE, device=next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    chosen: dict[int, tuple[int, int]] = {}
    for k, (channels, height) in sorted(shapes.items()):
        stride = _PROBE // height
        if stride in TAP_STRIDES:
            chosen[stride] = (k, channels)  # the last stage of each stride wins
    strides = sorted(chosen)
    return [chosen[s][0] for s in strides], strides, [chosen[s][1] for s in strides]


class PyramidDecoder(nn.Module):
    """Top-down feature pyramid: features of several strides -> one logit map at the finest.

    Args:
        channels: the input channels of each feature map, finest first.
        width: the decoder's channels.
    """

    def __init__(self, channels: list[int], width: int = DECODER_CHANNELS):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels)
        self.smooth = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        self.out = nn.Conv2d(width, 1, 1)
        nn.init.constant_(self.out.bias, -4.0)  # start near "no lesion": most pixels are normal

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Merge the pyramid from the coarsest level down.

        Args:
            features: the backbone's feature maps, finest first.

        Returns:
            ``(N, 1, h, w)`` logits at the finest feature map's resolution.
        """
        x = self.lateral[-1](features[-1].float())
        for lateral, feature in zip(self.lateral[-2::-1], features[-2::-1]):
            x = F.interpolate(x, size=feature.shape[-2:], mode="bilinear", align_corners=False)
            x = x + lateral(feature.float())
        return self.out(self.smooth(x))


class MapModel(nn.Module):
    """A backbone with its classifier head and a dense decoder for a pixel anomaly map.

    Args:
        backbone: a network built by ``train.models.build.build_model``.
        arch: its architecture name.
    """

    def __init__(self, backbone: nn.Module, arch: str):
        super().__init__()
        self.backbone = backbone
        indices, self.strides, channels = find_taps(backbone, arch)
        self.decoder = PyramidDecoder(channels)
        self._features: list[torch.Tensor] = []
        stages = stage_modules(backbone, arch)
        for k in indices:
            stages[k].register_forward_hook(self._keep)

    def _keep(self, _module: nn.Module, _inputs, output: torch.Tensor) -> None:
        self._features.append(output)

    def forward(
        self, x: torch.Tensor, with_map: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Image logits, and with ``with_map`` the map's logits.

        Args:
            x: ``(N, 3, H, W)`` normalised images.
            with_map: also return the anomaly map.

        Returns:
            ``(N, 2)`` logits; with ``with_map``, also ``(N, 1, H / s, W / s)`` map logits,
            ``s`` the finest tap's stride (4 for every pretrained backbone).
        """
        self._features = []
        logits = self.backbone(x)
        features, self._features = self._features, []
        if not with_map:
            return logits
        return logits, self.decoder(features)

    @property
    def map_stride(self) -> int:
        """The stride of the map relative to the input (4 for the pretrained backbones).

        Returns:
            The finest tap's stride.
        """
        return self.strides[0]


def map_loss(map_logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per-image pixel loss: binary cross-entropy plus soft Dice, at the masks' resolution.

    The map is upsampled (bilinear) to the masks' size. Soft Dice is per image with a
    smoothing of 1 pixel, so a normal image (empty mask) is pushed towards an empty map.

    Args:
        map_logits: ``(N, 1, h, w)`` map logits.
        masks: ``(N, H, W)`` masks, 0/1 (any dtype).

    Returns:
        ``(N,)`` losses, one per image (BCE averaged over its pixels, plus 1 - Dice).
    """
    target = masks.float()
    logits = F.interpolate(
        map_logits.float(), size=target.shape[-2:], mode="bilinear", align_corners=False
    )[:, 0]
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=(1, 2))
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(1, 2))
    dice = (2 * inter + 1) / (p.sum(dim=(1, 2)) + target.sum(dim=(1, 2)) + 1)
    return bce + 1 - dice


def probability_maps(map_logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Map logits as probabilities at an image size.

    Args:
        map_logits: ``(N, 1, h, w)`` map logits.
        size: ``(H, W)`` of the output.

    Returns:
        ``(N, H, W)`` ``float32`` probabilities (bilinear upsampling of the logits).
    """
    up = F.interpolate(map_logits.float(), size=size, mode="bilinear", align_corners=False)
    return torch.sigmoid(up[:, 0])


def map_outputs(
    model: nn.Module,
    normalizer: nn.Module,
    images: torch.Tensor,
    device: torch.device,
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Classifier probabilities and map probabilities of a ``MapModel`` for every image.

    Args:
        model: the trained ``MapModel``.
        normalizer: the run's ``Normalizer``.
        images: ``(N, H, W, C)`` ``uint8`` tensor (on the device or in host memory).
        device: the device to compute on.
        batch_size: images per forward pass.

    Returns:
        ``(probabilities, maps)``: ``(N,)`` ``float32`` softmax probabilities of class 1 and
        ``(N, h, w)`` ``float32`` map probabilities at the map's stride.
    """
    batches = (
        normalizer(images[i : i + batch_size].to(device, non_blocking=True))
        for i in range(0, len(images), batch_size)
    )
    probabilities, maps = collect_outputs(model, batches, device, maps=True)
    return probabilities, maps


def collect_outputs(
    module: nn.Module, inputs, device: torch.device, maps: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Class-1 probabilities (and map probabilities) of a network over batches of its inputs,
    in eval mode, without gradients, in bf16 autocast on CUDA.

    Args:
        module: the network (a backbone, a ``MapModel`` or a ``train.training.frozen.Tail``).
        inputs: an iterable of its input batches (already on ``device``).
        device: the device it runs on.
        maps: call it with ``with_map=True`` and return the maps too.

    Returns:
        ``(probabilities, maps)``: ``(N,)`` ``float32`` and, with ``maps``, ``(N, h, w)``
        ``float32`` map probabilities (else None); empty arrays for no batch.
    """
    module.eval()
    probabilities, out_maps = [], []
    with (
        torch.no_grad(),
        torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"),
    ):
        for batch in inputs:
            out = module(batch, with_map=True) if maps else module(batch)
            logits = out[0] if maps else out
            probabilities.append(torch.softmax(logits.float(), dim=1)[:, 1].cpu())
            if maps:
                out_maps.append(torch.sigmoid(out[1].float())[:, 0].cpu())
    if not probabilities:
        return np.zeros(0, np.float32), (np.zeros((0, 1, 1), np.float32) if maps else None)
    return torch.cat(probabilities).numpy(), (torch.cat(out_maps).numpy() if maps else None)
