"""How images reach a model: the device chosen (``--device``), the uint8 images placed on it,
normalised inside the model (``Normalizer``), and scored in batches."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lesionpaste.errors import LesionPasteError
from lesionpaste.train.models.build import input_normalization
from lesionpaste.train.models.decoder import collect_outputs


def pick_device(name: str) -> torch.device:
    """The torch device for ``--device``: ``auto`` (CUDA when there is one), ``cuda`` or
    ``cpu``.

    Args:
        name: ``"auto"``, ``"cuda"`` or ``"cpu"``.

    Returns:
        The device.

    Raises:
        LesionPasteError: ``cuda`` without a CUDA device, or another name.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise LesionPasteError("--device cuda: no CUDA device is available (use --device cpu)")
    if name not in ("cuda", "cpu"):
        raise LesionPasteError(f"--device {name!r}: expected auto, cuda or cpu")
    return torch.device(name)


class Normalizer(nn.Module):
    """uint8 NHWC on the device -> float NCHW, ImageNet-normalised, 3 channels, resized.

    Args:
        size: the network's input side, in pixels.
        channels_last: return tensors in ``torch.channels_last`` memory format.
        arch: the architecture whose input normalisation applies.
    """

    def __init__(self, size: int, channels_last: bool, arch: str = "vgg16"):
        super().__init__()
        self.size = size
        self.channels_last = channels_last
        mean, std = input_normalization(arch)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1) * 255)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """``(N, H, W, C)`` uint8 -> ``(N, 3, size, size)`` float, normalised for the network.

        Args:
            batch: ``(N, H, W, C)`` ``uint8`` images, ``C`` 1 or 3 (grey is repeated).

        Returns:
            ``(N, 3, size, size)`` ``float32`` tensor (antialiased bilinear resize when needed).
        """
        x = batch.permute(0, 3, 1, 2).float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(
                x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False
            )
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def free_gpu_bytes(device: torch.device) -> int:
    """The GPU's free memory.

    Args:
        device: a CUDA device.

    Returns:
        Its free memory in bytes.
    """
    return torch.cuda.mem_get_info(device)[0]


def fits_on_device(
    nbytes: int,
    device: torch.device,
    free_bytes: Callable[[torch.device], int] = free_gpu_bytes,
) -> bool:
    """Whether data of ``nbytes`` is moved onto the device: a GPU with over twice that free.

    Args:
        nbytes: the data's size in bytes.
        device: the device training runs on (on a CPU the data stays in host memory).
        free_bytes: the device's free memory in bytes (queried only for a GPU).

    Returns:
        True to move the data onto the device.
    """
    return device.type == "cuda" and nbytes < 0.5 * free_bytes(device)


def place_images(images: np.ndarray, device: torch.device) -> tuple[torch.Tensor, bool]:
    """The uint8 images on the device when they fit (with room to spare), else pinned host
    memory from which batches are copied asynchronously.

    Args:
        images: ``(N, H, W, C)`` ``uint8`` images.
        device: the training device.

    Returns:
        ``(tensor, on_device)``: the images as a ``uint8`` tensor, and whether it is on (or,
        for the CPU, usable as is by) the device.
    """
    tensor = torch.from_numpy(images)
    if device.type != "cuda":
        return tensor, True
    if fits_on_device(tensor.nbytes, device):
        return tensor.to(device), True
    return tensor.pin_memory(), False


def scores_of(
    model: nn.Module,
    normalizer: nn.Module,
    images: torch.Tensor,
    device: torch.device,
    batch_size: int = 128,
) -> np.ndarray:
    """Probability of class 1 (anomalous) for every image.

    Args:
        model: the two-class network.
        normalizer: the run's ``Normalizer``.
        images: ``(N, H, W, C)`` ``uint8`` tensor (on the device or in host memory).
        device: the device to compute on.
        batch_size: images per forward pass.

    Returns:
        ``(N,)`` ``float32`` softmax probabilities of class 1.
    """
    batches = (
        normalizer(images[i : i + batch_size].to(device, non_blocking=True))
        for i in range(0, len(images), batch_size)
    )
    return collect_outputs(model, batches, device, maps=False)[0]
