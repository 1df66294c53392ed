"""Colour-domain matching: map lesion colours onto the normals' colour distribution (the
histograms compared are ``lesionpaste.histograms.channel_histograms``)."""

from __future__ import annotations

import numpy as np

from lesionpaste.errors import LesionPasteError
from lesionpaste.histograms import channel_histograms
from lesionpaste.synth.inputs.load_normal import normals_recipe, prepare_normal


def matching_lut(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """A 256-entry lookup table mapping a histogram ``source`` onto ``target``
    (classic histogram matching: each level goes to the target level of equal quantile).

    Args:
        source: ``(256,)`` counts of the levels to map.
        target: ``(256,)`` counts of the levels to match.

    Returns:
        ``(256,)`` ``uint8`` table; the identity when either histogram is empty.
    """
    src_cdf = np.cumsum(source, dtype=np.float64)
    tgt_cdf = np.cumsum(target, dtype=np.float64)
    if src_cdf[-1] == 0 or tgt_cdf[-1] == 0:
        return np.arange(256, dtype=np.uint8)
    src_cdf /= src_cdf[-1]
    tgt_cdf /= tgt_cdf[-1]
    lut = np.searchsorted(tgt_cdf, src_cdf, side="left")
    return np.clip(lut, 0, 255).astype(np.uint8)


def colour_luts(source_histograms: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``(S, C, 256)`` tables mapping each bank source's channels onto the pooled normals.

    Args:
        source_histograms: ``(S, C, 256)`` histograms of the bank's sources.
        target: ``(C, 256)`` pooled histogram of the normals.

    Returns:
        ``(S, C, 256)`` ``uint8`` lookup tables.
    """
    s, c, _ = source_histograms.shape
    return np.stack(
        [
            np.stack([matching_lut(source_histograms[i, k], target[k]) for k in range(c)])
            for i in range(s)
        ]
    )


def pooled_normals_histogram(
    normals, bank, preprocess, size, sample, seed, window=None
) -> np.ndarray:
    """The pooled field-of-view histogram of ``sample`` normals drawn by ``seed``, prepared as
    the twins are: the target that ``--match-colour`` maps the bank's sources onto.

    Args:
        normals: the run's normal images (``NormalImage``).
        bank: the lesion bank.
        preprocess: the ``--preprocess`` choice (``"none"`` skips the bank's recipe).
        size: the output side in pixels (0 keeps the resolution).
        sample: how many normals to pool.
        seed: the seed of the draw of normals.
        window: ``(level, width)`` in HU for HU normals, or None.

    Returns:
        ``(C, 256)`` ``uint64`` counts over the fields of view of the normals that could be
        read (unreadable ones are skipped).

    Raises:
        LesionPasteError: the bank's recipe cannot be read.
    """
    rng = np.random.default_rng(seed)
    picked = rng.permutation(len(normals))[:sample]
    recipe = normals_recipe(bank, preprocess, window)
    total = np.zeros((bank.meta.channels, 256), np.uint64)
    for i in sorted(picked):
        try:
            prepared = prepare_normal(normals[i].path, bank, recipe, size, normals[i].slice)
        except LesionPasteError:
            continue
        total += channel_histograms(prepared.image, prepared.region)
    return total
