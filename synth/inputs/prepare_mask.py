"""A ground-truth mask prepared exactly like its image: the same crop and resize, through the
image's ``lesionpaste.preparation.Geometry``. A pure function of arrays."""

from __future__ import annotations

import numpy as np

from lesionpaste.errors import LesionPasteError
from lesionpaste.preparation import Prepared, crop_window
from lesionpaste.synth.inputs.mask_resize import resize_mask


def prepare_mask(mask: np.ndarray, prepared: Prepared) -> np.ndarray:
    """A ground-truth mask of an image's source, prepared exactly like the image: the same
    window and resize (``Prepared.geometry``), by area coverage (``resize_mask``), then cut to
    the field of view where the recipe blanked the image (Graham's disc).

    Args:
        mask: ``(H, W)`` boolean mask of the source (the full-resolution file).
        prepared: the image prepared from that source.

    Returns:
        ``(h, w)`` boolean mask, pixel-aligned with ``prepared.image``.

    Raises:
        LesionPasteError: the image's geometry is unknown, or the mask's size is not its
            source's.
    """
    g = prepared.geometry
    if g is None:
        raise LesionPasteError(
            "cannot align a mask with its image (the image's geometry is unknown)"
        )
    if tuple(mask.shape[:2]) != tuple(g.source_shape):
        (mh, mw), (ih, iw) = mask.shape[:2], g.source_shape
        raise LesionPasteError(f"mask is {mw}x{mh} but its image is {iw}x{ih}")
    source = np.ascontiguousarray(mask, dtype=bool).view(np.uint8)
    window = crop_window(source, g.top, g.left, g.height, g.width, 0)
    out = resize_mask(window.view(bool), g.out_shape)
    return out & prepared.region if prepared.fov_kept else out
