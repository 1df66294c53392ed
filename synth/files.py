"""PNG encoding for the synthesizer's outputs."""

from __future__ import annotations

import cv2
import numpy as np

from lesionpaste.errors import LesionPasteError


def encode_png(image: np.ndarray) -> bytes:
    """Lossless PNG bytes of an RGB, grey ``(H, W, 1)`` or boolean mask image."""
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise LesionPasteError("could not encode a PNG image")
    return buf.tobytes()
