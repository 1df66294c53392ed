"""Small file helpers for the synthesizer: PNG encoding and its run lock."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from bank_builder.errors import LesionPasteError
from train import files


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


@contextlib.contextmanager
def run_lock(path: Path) -> Iterator[None]:
    """The output's run lock (see ``train.files.run_lock``), refusing as a one-line error."""
    try:
        with files.run_lock(path, "lp-synth"):
            yield
    except files.RunLocked as exc:
        raise LesionPasteError(str(exc)) from None
