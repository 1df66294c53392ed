"""Anomaly maps drawn over images: a jet colouring, lesion outlines, and the overlay that
``lp-eval --maps`` and ``lp-predict`` show. Pure functions of arrays (no torch)."""

from __future__ import annotations

import cv2
import numpy as np


def heat_colour(heat: np.ndarray) -> np.ndarray:
    """A [0, 1] map as an RGB jet image.

    Args:
        heat: ``(H, W)`` float map with values in [0, 1].

    Returns:
        ``(H, W, 3)`` RGB ``uint8`` jet-coloured image.
    """
    return cv2.cvtColor(
        cv2.applyColorMap(np.uint8(255 * heat), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB
    )


def outlined(rgb: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """An image with the outlines of its true lesions drawn in green.

    Args:
        rgb: ``(H, W, 3)`` ``uint8`` image.
        mask: ``(H, W)`` boolean mask, or None (the image is returned unchanged).

    Returns:
        ``(H, W, 3)`` ``uint8`` copy with the outlines.
    """
    out = rgb.copy()
    if mask is not None and mask.any():
        contours, _ = cv2.findContours(
            mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
        )
        cv2.drawContours(out, contours, -1, (0, 255, 0), 1)
    return out


def as_rgb(image: np.ndarray) -> np.ndarray:
    """An ``(H, W, C)`` image as RGB: a grey channel repeated three times.

    Args:
        image: ``(H, W, 1)`` or ``(H, W, 3)`` ``uint8`` image.

    Returns:
        ``(H, W, 3)`` ``uint8``.
    """
    return image if image.shape[2] == 3 else np.repeat(image, 3, axis=2)


def map_overlay(image: np.ndarray, heat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A map coloured, and coloured over its image; the map is drawn scaled to its own maximum
    (its values stay probabilities wherever they are saved).

    Args:
        image: ``(H, W, C)`` ``uint8`` image, ``C`` 1 or 3.
        heat: ``(H, W)`` map in [0, 1], at the image's size.

    Returns:
        ``(coloured, overlay)``: two ``(H, W, 3)`` RGB ``uint8`` pictures.
    """
    coloured = heat_colour(np.clip(heat / max(float(heat.max()), 1e-6), 0, 1))
    return coloured, cv2.addWeighted(as_rgb(image), 0.55, coloured, 0.45, 0)
