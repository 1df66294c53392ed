"""Grad-CAM and Grad-CAM++ panels (paper Fig. A3), with the ``grad-cam`` package (extra ``cam``)."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn

from lesionpaste.errors import LesionPasteError
from lesionpaste.train.evaluation.overlays import heat_colour
from lesionpaste.train.models.backbones import backbone


def target_layer(model: nn.Module, arch: str) -> nn.Module:
    """The last convolutional stage of the architecture (``train.models.backbones``' ``cam_layer``).

    Args:
        model: the network, built by ``build_model`` (or a ``MapModel`` around one).
        arch: its architecture name (``train.models.build.ARCHS``).

    Returns:
        The module whose activations Grad-CAM weighs.
    """
    return backbone(arch).cam_layer(getattr(model, "backbone", model))


def cam_maps(
    model: nn.Module,
    arch: str,
    normalizer: nn.Module,
    images: np.ndarray,
    batch_size: int = 8,
    what: str = "--cam",
) -> dict[str, np.ndarray]:
    """Grad-CAM and Grad-CAM++ maps of class 1 (anomalous) for every image.

    Args:
        model: the trained network, on its device.
        arch: its architecture name.
        normalizer: the run's ``Normalizer`` (uint8 NHWC -> normalised float NCHW).
        images: ``(N, H, W, C)`` ``uint8`` images, ``C`` 1 or 3.
        batch_size: images per backward pass.
        what: the option named when the package is missing.

    Returns:
        ``{"gradcam": maps, "gradcam++": maps}``, each ``(N, S, S)`` ``float32`` in [0, 1]
        (the package scales each map to its own maximum) at the network's input side ``S``.

    Raises:
        LesionPasteError: the ``grad-cam`` package is not installed.
    """
    try:
        from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except ImportError:
        raise LesionPasteError(
            f"{what} needs the grad-cam package: pip install 'lesionpaste[cam]'"
        ) from None
    model.eval()
    device = next(model.parameters()).device
    layers = [target_layer(model, arch)]
    out: dict[str, list[np.ndarray]] = {"gradcam": [], "gradcam++": []}
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(images[start : start + batch_size]).to(device)
        x = normalizer(batch).float().contiguous()
        targets = [ClassifierOutputTarget(1)] * len(x)
        for name, method in (("gradcam", GradCAM), ("gradcam++", GradCAMPlusPlus)):
            with method(model=model, target_layers=layers) as cam:
                out[name].append(np.asarray(cam(input_tensor=x, targets=targets), np.float32))
    return {name: np.concatenate(maps) for name, maps in out.items()}


def cam_panels(
    model: nn.Module, arch: str, normalizer: nn.Module, images: np.ndarray, captions: list[str]
) -> np.ndarray:
    """Rows of: image, Grad-CAM, Grad-CAM++, and both overlaid, for class 1 (anomalous).

    Args:
        model: the trained network, on its device.
        arch: its architecture name.
        normalizer: the run's ``Normalizer`` (uint8 NHWC -> normalised float NCHW).
        images: ``(N, H, W, C)`` ``uint8`` images, ``C`` 1 or 3.
        captions: one caption per image, written on its row.

    Returns:
        ``(22 + N * h, 5 * w, 3)`` RGB ``uint8`` picture: a header, then one row per image
        (small images are enlarged to about 160 pixels wide).

    Raises:
        LesionPasteError: the ``grad-cam`` package is not installed.
    """
    maps = cam_maps(model, arch, normalizer, images)
    plain, plus = maps["gradcam"], maps["gradcam++"]
    rows = []
    for image, a, b, caption in zip(images, plain, plus, captions):
        rgb = image if image.shape[2] == 3 else np.repeat(image, 3, axis=2)
        scale = max(1, 160 // rgb.shape[1])  # small images are enlarged to be seen
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        h, w = rgb.shape[:2]
        maps = [heat_colour(cv2.resize(m, (w, h))) for m in (a, b)]
        overlays = [cv2.addWeighted(rgb, 0.55, m, 0.45, 0) for m in maps]
        row = np.concatenate([rgb, *maps, *overlays], axis=1)
        cv2.putText(
            row, caption, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1, cv2.LINE_AA
        )
        rows.append(row)
    header = np.full((22, rows[0].shape[1], 3), 255, np.uint8)
    for i, title in enumerate(
        ["image", "Grad-CAM", "Grad-CAM++", "Grad-CAM overlay", "Grad-CAM++ overlay"]
    ):
        cv2.putText(
            header,
            title,
            (i * rows[0].shape[1] // 5 + 4, 15),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    return np.concatenate([header, *rows], axis=0)
