"""The per-channel histogram that a bank stores for each source's field of view and that colour
matching compares with the normals' (one definition for both)."""

from __future__ import annotations

import numpy as np


def channel_histograms(image: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """``(C, 256)`` exact ``uint64`` counts of each channel's levels inside ``region``.

    Args:
        image: ``(H, W, C)`` ``uint8``.
        region: ``(H, W)`` boolean; ``None`` counts every pixel.

    Returns:
        ``(C, 256)`` ``uint64``: row ``c`` counts the pixels of each level in channel ``c``.
    """
    pixels = image.reshape(-1, image.shape[2]) if region is None else image[region]
    return np.stack(
        [np.bincount(pixels[:, c], minlength=256) for c in range(image.shape[2])]
    ).astype(np.uint64)
