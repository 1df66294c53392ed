"""Colour-domain matching: map lesion colours onto the normals' colour distribution (the
histograms compared are ``lesionpaste.histograms.channel_histograms``)."""

from __future__ import annotations

import numpy as np


def matching_lut(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """A 256-entry lookup table mapping a histogram ``source`` onto ``target``
    (classic histogram matching: each level goes to the target level of equal quantile)."""
    src_cdf = np.cumsum(source, dtype=np.float64)
    tgt_cdf = np.cumsum(target, dtype=np.float64)
    if src_cdf[-1] == 0 or tgt_cdf[-1] == 0:
        return np.arange(256, dtype=np.uint8)
    src_cdf /= src_cdf[-1]
    tgt_cdf /= tgt_cdf[-1]
    lut = np.searchsorted(tgt_cdf, src_cdf, side="left")
    return np.clip(lut, 0, 255).astype(np.uint8)


def colour_luts(source_histograms: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``(S, C, 256)`` tables mapping each bank source's channels onto the pooled normals."""
    s, c, _ = source_histograms.shape
    return np.stack(
        [
            np.stack([matching_lut(source_histograms[i, k], target[k]) for k in range(c)])
            for i in range(s)
        ]
    )
