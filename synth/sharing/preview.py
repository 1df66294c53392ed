"""A picture of a synthetic dataset: normal and anomalous twins, pasted masks outlined."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from lesionpaste.dataset_format import read_dataset_json, read_image, read_manifest
from lesionpaste.errors import LesionPasteError

OUTLINE = (0, 255, 0)


def _load(root: Path, relative: str) -> np.ndarray:
    return cv2.cvtColor(read_image(root, relative, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def outlined(image: np.ndarray, mask: np.ndarray, scale: int) -> np.ndarray:
    """``image`` enlarged ``scale`` times with the outline of ``mask`` drawn on it.

    Args:
        image: ``(H, W, 3)`` RGB ``uint8`` image.
        mask: ``(H, W)`` ``uint8`` mask (non-zero inside).
        scale: the integer enlargement.

    Returns:
        ``(H * scale, W * scale, 3)`` ``uint8`` image with the outline in green.
    """
    big = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    big_mask = cv2.resize(mask, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(
        (big_mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
    )
    cv2.drawContours(big, contours, -1, OUTLINE, 1)
    return big


def lesion_counts(root: Path) -> dict[str, list[int]]:
    """Each tier's twins' pasted-lesion counts, from the manifest (``tier`` numbers the
    configuration's tiers from 1), for ``count_table``.

    Args:
        root: the synthetic dataset directory.

    Returns:
        ``{tier name: counts}`` in the configuration's tier order.

    Raises:
        LesionPasteError: not a dataset, or an evaluation set.
    """
    meta = read_dataset_json(root)
    if meta["kind"] != "synthetic":
        raise LesionPasteError(f"{root}: an evaluation set has no twins to preview")
    tiers = meta.get("config", {}).get("tiers") or []
    names = ["+".join(t.get("types", [])) if isinstance(t, dict) else "?" for t in tiers]
    out: dict[str, list[int]] = {name: [] for name in names}
    for row in read_manifest(root):
        if row["label"] == "1" and row["tier"]:
            tier = int(row["tier"])
            name = names[tier - 1] if 1 <= tier <= len(names) else f"tier {tier}"
            out.setdefault(name, []).append(int(row["n_lesions"] or 0))
    return out


def twin_grid(root: Path, count: int = 8, columns: int = 2) -> np.ndarray:
    """Up to ``count`` pairs (normal | anomalous with outlines), ``columns`` pairs a row,
    chosen to include every tier present.

    Args:
        root: the synthetic dataset directory.
        count: the most pairs shown.
        columns: pairs per row.

    Returns:
        ``(H, W, 3)`` RGB ``uint8`` picture of the pairs.

    Raises:
        LesionPasteError: not a dataset, an evaluation set, or an image that cannot be read.
    """
    meta = read_dataset_json(root)
    if meta["kind"] != "synthetic":
        raise LesionPasteError(f"{root}: an evaluation set has no twins to preview")
    anomalous = [r for r in read_manifest(root) if r["label"] == "1"]
    by_tier: dict[str, list[dict]] = {}
    for row in anomalous:
        by_tier.setdefault(row["tier"], []).append(row)
    chosen: list[dict] = []
    while len(chosen) < min(count, len(anomalous)):
        for rows in by_tier.values():
            if rows and len(chosen) < count:
                chosen.append(rows.pop(0))
    normal_path = {r["twin_id"]: r["path"] for r in read_manifest(root) if r["label"] == "0"}
    tiles = []
    for row in chosen:
        normal = _load(root, normal_path[row["twin_id"]])
        twin = _load(root, row["path"])
        mask = read_image(root, row["mask_path"], cv2.IMREAD_GRAYSCALE)
        scale = max(1, 512 // max(normal.shape[:2]))
        pair = np.concatenate(
            [
                outlined(normal, np.zeros_like(mask), scale),
                np.full((normal.shape[0] * scale, 4, 3), 255, np.uint8),
                outlined(twin, mask, scale),
            ],
            axis=1,
        )
        label = f"{row['twin_id']}  tier {row['tier']}  {row['n_lesions']} lesions"
        cv2.putText(
            pair, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1, cv2.LINE_AA
        )
        tiles.append(pair)
    h = max(t.shape[0] for t in tiles)
    w = max(t.shape[1] for t in tiles)
    tiles = [
        cv2.copyMakeBorder(
            t, 0, h - t.shape[0] + 8, 0, w - t.shape[1] + 8, cv2.BORDER_CONSTANT, value=(32, 32, 32)
        )
        for t in tiles
    ]
    while len(tiles) % columns:
        tiles.append(np.full_like(tiles[0], 32))
    rows = [np.concatenate(tiles[i : i + columns], axis=1) for i in range(0, len(tiles), columns)]
    return np.concatenate(rows, axis=0)
