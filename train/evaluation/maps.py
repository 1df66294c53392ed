"""``lp-eval --maps``: each image's anomaly map and picture, and the pixel metrics against the
evaluation set's lesion masks, next to Grad-CAM and Grad-CAM++ on the same images.

What is scored:
* ``maps``: the run's decoder (``--maps`` at training), its probabilities upsampled to the
  image; Dice and IoU at the pixel threshold chosen on the synthetic validation pairs
  (``maps.json``).
* ``gradcam`` and ``gradcam++``: the class-1 maps of the ``grad-cam`` package, each scaled to
  its own maximum by the package; Dice and IoU at 0.5, as no threshold was chosen for them.
* Only images with a ground-truth mask, inside their field of view: for fundus photographs the
  disc that ``lp-synth prep`` cropped and resized them to (centred, radius half the side), for
  CT the whole slice.
  Per lesion type, the type's pixels are the positives, and the other types' lesion pixels are
  left out (neither positive nor negative).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from lesionpaste.dataset import OpenedDataset
from lesionpaste.errors import LesionPasteError
from lesionpaste.images import encode_png
from lesionpaste.recipes import Disc, disc_mask
from lesionpaste.train.evaluation.overlays import as_rgb, map_overlay, outlined
from lesionpaste.train.metrics.pixel_metrics import paired_difference, pixel_report

#: Dice/IoU threshold of the Grad-CAM maps (scaled to [0, 1] per image)
CAM_THRESHOLD = 0.5
#: images drawn in ``maps.png``
PICTURE_ROWS = 8


def map_files(
    images: np.ndarray, maps: list[np.ndarray], masks: list[np.ndarray | None], stems: list[str]
) -> dict[str, bytes]:
    """Each image's map as a 16-bit PNG and its picture, as files for the evaluation folder.

    Args:
        images: ``(N, H, W, C)`` ``uint8`` images.
        maps: one ``(H, W)`` probability map per image.
        masks: one ``(H, W)`` boolean ground-truth mask per image, or None.
        stems: one file stem per image (its id).

    Returns:
        ``{relative path: PNG bytes}``: ``maps/<stem>.png`` (probability times 65535, 16-bit
        grey) and ``maps/<stem>_panel.png`` (image, true lesions outlined, map, overlay).
    """
    files = {}
    for image, heat, mask, stem in zip(images, maps, masks, stems):
        level = np.round(np.clip(heat, 0, 1) * 65535).astype(np.uint16)
        files[f"maps/{stem}.png"] = encode_png(level, what=f"maps/{stem}.png")
        files[f"maps/{stem}_panel.png"] = encode_png(panel(image, heat, mask), what=stem)
    return files


def panel(image: np.ndarray, heat: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """One image's row: the image, its true lesions outlined, the map, the map overlaid.

    The map is drawn scaled to its own maximum (its file keeps the probabilities).

    Args:
        image: ``(H, W, C)`` ``uint8`` image, ``C`` 1 or 3.
        heat: ``(H, W)`` map in [0, 1].
        mask: ``(H, W)`` boolean ground truth, or None.

    Returns:
        ``(H, 4 W, 3)`` RGB ``uint8`` picture.
    """
    rgb = as_rgb(image)
    coloured, overlay = map_overlay(image, heat)
    return np.concatenate([rgb, outlined(rgb, mask), coloured, outlined(overlay, mask)], axis=1)


def maps_picture(panels: list[np.ndarray], titles: list[str]) -> np.ndarray:
    """``maps.png``: a header and up to ``PICTURE_ROWS`` rows of panels.

    Args:
        panels: the rows, each ``(H, W, 3)`` ``uint8`` of one width.
        titles: the column titles.

    Returns:
        The picture, RGB ``uint8``.
    """
    rows = panels[:PICTURE_ROWS]
    width = rows[0].shape[1]
    header = np.full((22, width, 3), 255, np.uint8)
    for i, title in enumerate(titles):
        x = i * width // len(titles) + 4
        cv2.putText(header, title, (x, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    return np.concatenate([header, *rows], axis=0)


def type_fovs(
    union: list[np.ndarray], typed: list[np.ndarray], fovs: list[np.ndarray | None]
) -> list[np.ndarray]:
    """Fields of view for scoring one lesion type: other types' lesion pixels left out.

    Args:
        union: each image's mask of every lesion type.
        typed: each image's mask of the one type.
        fovs: each image's field of view, or None for the whole image.

    Returns:
        One boolean ``(H, W)`` field of view per image.
    """
    out = []
    for u, t, f in zip(union, typed, fovs):
        keep = ~(u & ~t)
        out.append(keep if f is None else keep & f)
    return out


def _report(maps, masks, threshold, fovs, n_boot, seed) -> dict | None:
    """``pixel_report``, or None where the images hold no lesion of this kind."""
    try:
        return pixel_report(maps, masks, threshold, fovs, n_boot=n_boot, seed=seed)
    except LesionPasteError:
        return None


def compare_map_kinds(
    kinds: dict[str, tuple[list[np.ndarray], float]],
    opened: OpenedDataset,
    scored: list[int],
    union: list[np.ndarray],
    fovs: list[np.ndarray | None],
    n_boot: int,
    seed: int,
) -> dict:
    """The pixel metrics of every map kind, overall and per lesion type, and their paired
    differences from the first kind.

    Args:
        kinds: ``{name: (maps, threshold)}`` for the images of ``scored``, the run's first.
        opened: the evaluation set (its masks and per-type masks).
        scored: the rows that have a ground-truth mask.
        union: their masks of every lesion type (already read, in ``scored``'s order).
        fovs: the field of view of each scored image (None entries: whole image).
        n_boot: bootstrap resamples (by image).
        seed: the bootstrap's seed.

    Returns:
        ``{name: {auroc, aupro, dice, iou, intervals..., "by_type": {TYPE: ...}},
        "differences": {"maps - gradcam": {"auroc": ..., "aupro": ...}, ...}, "n_images",
        "types"}``.
    """
    typed = [opened.type_masks(i) for i in scored]
    types = sorted({t for masks in typed for t in masks})
    result: dict = {"n_images": len(scored), "types": types}
    for name, (maps, threshold) in kinds.items():
        entry = _report(maps, union, threshold, fovs, n_boot, seed) or {}
        entry["by_type"] = {}
        for t in types:
            truth = [masks.get(t, np.zeros_like(u)) for masks, u in zip(typed, union)]
            t_fovs = type_fovs(union, truth, fovs)
            entry["by_type"][t] = _report(maps, truth, threshold, t_fovs, n_boot, seed)
        result[name] = entry
    first, *others = kinds
    result["differences"] = {}
    for other in others:
        result["differences"][f"{first} - {other}"] = {
            metric: paired_difference(
                kinds[first][0], kinds[other][0], union, metric, fovs, n_boot=n_boot, seed=seed
            )
            for metric in ("auroc", "aupro")
        }
    return result


def stems_of(paths: list[str]) -> list[str]:
    """File stems for the evaluation images' maps: their names without folder or suffix.

    Args:
        paths: the images' relative paths in the evaluation set.

    Returns:
        One stem per image.
    """
    return [Path(p).stem for p in paths]


def field_of_view(shape: tuple[int, int], modality: str | None) -> np.ndarray | None:
    """The field of view of a prepared evaluation image.

    ``lp-synth prep`` crops a fundus photograph to the square around its disc and resizes it,
    so the disc is centred with a radius of half the side.

    Args:
        shape: ``(H, W)`` of the image.
        modality: the bank's modality recorded in the set (``"fundus"``, ``"ct"``) or None.

    Returns:
        ``(H, W)`` boolean disc for fundus, None (the whole image) otherwise.
    """
    if modality != "fundus":
        return None
    h, w = shape
    return disc_mask(shape, Disc((w - 1) / 2, (h - 1) / 2, min(h, w) / 2))
