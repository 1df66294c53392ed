"""Training with the first backbone stages frozen (``lp-train --freeze N``).

The trainer applies no augmentation, so a frozen stage's output for an image is the same every
epoch: it is computed once (``cache_activations``), kept in memory when it fits (else in a
temporary file), and each step runs only the trainable tail (``Tail``) on it. With ``--maps``
the decoder's taps that lie inside the frozen stages are cached too.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lesionpaste.train.models.on_device import fits_on_device, free_gpu_bytes
from lesionpaste.train.models.stages import freeze, split

#: the share of the machine's memory that cached activations may take before they go to a file
MEMORY_SHARE = 0.4


class Tail(nn.Module):
    """The trainable part of a network whose first stages are frozen: from the frozen output
    (and the frozen taps of a ``MapModel``) to the logits (and map).

    Args:
        model: the network (a ``train.models.build`` backbone or a ``train.models.decoder.MapModel``).
        arch: its architecture name.
        frozen: how many stages are frozen.
    """

    def __init__(self, model: nn.Module, arch: str, frozen: int):
        super().__init__()
        self.map_model = model if hasattr(model, "decoder") else None
        backbone = model.backbone if self.map_model is not None else model
        stages, self.head = split(backbone, arch)
        self.frozen = nn.ModuleList(stages[:frozen])
        self.tail = nn.ModuleList(stages[frozen:])
        self.decoder = self.map_model.decoder if self.map_model is not None else None
        freeze(stages, frozen)

    def train(self, mode: bool = True) -> Tail:
        """Set the trainable part's mode; the frozen stages stay in eval mode.

        Args:
            mode: training (True) or evaluation.

        Returns:
            This module.
        """
        super().train(mode)
        self.frozen.eval()
        return self

    def frozen_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The frozen stages' output and, for a ``MapModel``, the taps they hold.

        Args:
            x: ``(N, 3, H, W)`` normalised images.

        Returns:
            ``[output, *taps]``: the last frozen stage's output, then the decoder's taps
            inside the frozen stages, finest first.
        """
        if self.map_model is not None:
            self.map_model._features = []
        for stage in self.frozen:
            x = stage(x)
        taps = self.map_model._features if self.map_model is not None else []
        if self.map_model is not None:
            self.map_model._features = []
        return [x, *taps]

    def forward(
        self, cached: list[torch.Tensor], with_map: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits (and the map) from the frozen part's outputs.

        Args:
            cached: ``frozen_outputs``'s result for a batch.
            with_map: also return the map's logits (a ``MapModel`` only).

        Returns:
            ``(N, 2)`` logits, and with ``with_map`` the ``(N, 1, h, w)`` map logits.
        """
        x, *taps = cached
        if self.map_model is not None:
            self.map_model._features = list(taps)
        for stage in self.tail:
            x = stage(x)
        logits = self.head(x)
        if self.map_model is None:
            return logits
        features, self.map_model._features = self.map_model._features, []
        return (logits, self.decoder(features)) if with_map else logits


@dataclass
class Activations:
    """Cached frozen outputs of every image: one array per output of ``frozen_outputs``.

    Attributes:
        arrays: ``(N, C, h, w)`` ``float32`` tensors (in memory, or mapped from a file).
        path: the temporary file behind them, or None when in memory.
    """

    arrays: list[torch.Tensor]
    path: str | None = None

    def batch(self, idx: torch.Tensor, device: torch.device) -> list[torch.Tensor]:
        """The cached outputs of some images, on the device.

        Args:
            idx: the images' indices.
            device: where the batch is used.

        Returns:
            One tensor per cached output.
        """
        return [a[idx.to(a.device)].to(device, non_blocking=True) for a in self.arrays]

    def close(self) -> None:
        """Delete the temporary file, if any."""
        self.arrays = []
        if self.path is not None and os.path.exists(self.path):
            os.unlink(self.path)


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


#: images per forward pass while caching: on a CPU a few at a time, so that the early stages'
#: large activations stay in the processor's caches (EfficientNet-Lite0's first stages at
#: 256x256 ran about 3x faster per image at 4 than at 64 on this project's 2-core machine)
CACHE_BATCH = {"cpu": 4, "cuda": 64}


def cache_batch_size(device: torch.device) -> int:
    """Images per forward pass while caching.

    Args:
        device: the device the frozen stages run on.

    Returns:
        ``CACHE_BATCH`` for its type, else 64.
    """
    return CACHE_BATCH.get(device.type, 64)


def stays_on_device(
    total: int,
    device: torch.device,
    in_file: bool,
    free_bytes: Callable[[torch.device], int] = free_gpu_bytes,
) -> bool:
    """Whether cached outputs move onto the device: when in memory and they fit on a GPU.

    Args:
        total: the cached outputs' size in bytes.
        device: the device training runs on.
        in_file: whether the outputs went to a temporary file (they then stay there).
        free_bytes: the device's free memory in bytes (queried only for a GPU).

    Returns:
        True to keep the outputs on the device, False to keep them on the host.
    """
    return not in_file and fits_on_device(total, device, free_bytes)


def cache_activations(
    tail: Tail,
    normalizer: nn.Module,
    images: torch.Tensor,
    device: torch.device,
    batch_size: int | None = None,
    memory_budget: int | None = None,
) -> Activations:
    """Compute the frozen stages' outputs of every image once.

    Args:
        tail: the network's trainable tail (its frozen stages compute the outputs).
        normalizer: the run's ``Normalizer``.
        images: ``(N, H, W, C)`` ``uint8`` tensor.
        device: the device to compute on.
        batch_size: images per forward pass (default ``CACHE_BATCH`` for the device).
        memory_budget: bytes the cache may hold in memory (default ``MEMORY_SHARE`` of the
            machine's); beyond it the cache is a temporary file.

    Returns:
        The cached outputs, kept on the device when it is a GPU with room, else on the host.
    """
    tail.frozen.eval()
    batch_size = batch_size or cache_batch_size(device)
    budget = int(MEMORY_SHARE * _memory_bytes()) if memory_budget is None else memory_budget
    with torch.no_grad():
        first = tail.frozen_outputs(normalizer(images[:1].to(device)))
    shapes = [(len(images), *t.shape[1:]) for t in first]
    total = sum(4 * int(np.prod(s)) for s in shapes)
    path = None
    if total > budget:
        handle, path = tempfile.mkstemp(prefix="lesionpaste-frozen-", suffix=".f32")
        os.close(handle)
        store = np.memmap(path, np.float32, "w+", shape=(total // 4,))
        offsets = np.cumsum([0] + [int(np.prod(s)) for s in shapes])
        arrays = [
            torch.from_numpy(store[offsets[k] : offsets[k + 1]].reshape(s))
            for k, s in enumerate(shapes)
        ]
    else:
        arrays = [torch.empty(s, dtype=torch.float32) for s in shapes]
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].to(device, non_blocking=True)
            for array, out in zip(arrays, tail.frozen_outputs(normalizer(batch))):
                array[start : start + len(out)] = out.float().cpu()
    if stays_on_device(total, device, path is not None):
        arrays = [a.to(device) for a in arrays]
    return Activations(arrays, path)
