"""A contact sheet of a bank's lesions, grouped by type, with counts."""

from __future__ import annotations

import cv2
import numpy as np

from lesionpaste.bank_format import Bank

BACKGROUND = (32, 32, 32)
TEXT = (235, 235, 235)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def lesion_tile(patch: np.ndarray, mask: np.ndarray, cell: int) -> np.ndarray:
    """The patch scaled to fit a ``cell``-pixel square (nearest neighbour, so tiny lesions
    stay honest), with the pixels outside the lesion's own mask dimmed.

    Args:
        patch: ``(h, w, C)`` ``uint8`` lesion patch, ``C`` 1 or 3.
        mask: ``(h, w)`` boolean lesion mask.
        cell: the tile's side, in pixels.

    Returns:
        ``(cell, cell, 3)`` ``uint8`` RGB tile, the patch centred on the background.
    """
    rgb = patch if patch.shape[2] == 3 else np.repeat(patch, 3, axis=2)
    shown = np.where(mask[:, :, None], rgb, (rgb * 0.35).astype(np.uint8))
    h, w = mask.shape
    scale = min(cell / h, cell / w)
    size = (max(1, int(w * scale)), max(1, int(h * scale)))
    interpolation = cv2.INTER_NEAREST if scale >= 1 else cv2.INTER_AREA
    resized = cv2.resize(shown, size, interpolation=interpolation)
    tile = np.full((cell, cell, 3), BACKGROUND, np.uint8)
    y, x = (cell - size[1]) // 2, (cell - size[0]) // 2
    tile[y : y + size[1], x : x + size[0]] = resized
    return tile


def spread_by_size(areas: np.ndarray, k: int) -> np.ndarray:
    """Up to ``k`` positions into ``areas`` spread evenly from the largest to the smallest.

    Args:
        areas: ``(N,)`` lesion areas, in pixels.
        k: the most positions wanted.

    Returns:
        Integer positions into ``areas``, largest area first (all ``N`` when ``N <= k``).
    """
    order = np.argsort(-areas, kind="stable")
    if len(order) <= k:
        return order
    return order[np.unique(np.linspace(0, len(order) - 1, k).round().astype(int))]


def _title(text: str, width: int, height: int = 30) -> np.ndarray:
    bar = np.full((height, width, 3), BACKGROUND, np.uint8)
    cv2.putText(bar, text, (8, height - 9), FONT, 0.55, TEXT, 1, cv2.LINE_AA)
    return bar


def contact_sheet(bank: Bank, per_type: int = 64, columns: int = 16, cell: int = 64) -> np.ndarray:
    """An RGB image: a title, then for each lesion type a header with its count and up to
    ``per_type`` lesions spread over sizes, largest first.

    Args:
        bank: the bank to show.
        per_type: the most lesions shown per type.
        columns: tiles per row.
        cell: each tile's side, in pixels.

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB image, ``W = columns * (cell + 4) + 4``.
    """
    gap = 4
    width = columns * (cell + gap) + gap
    n_sources = len(bank.meta.sources)
    parts = [
        _title(
            f"{bank.path.name}: {len(bank)} lesions from {n_sources} source"
            f"{'s' if n_sources != 1 else ''} ({bank.meta.modality}, "
            f"preprocess {bank.meta.preprocess.get('name')})",
            width,
            36,
        )
    ]
    for type_index, name in enumerate(bank.meta.lesion_types):
        members = np.flatnonzero(bank.types == type_index)
        if members.size == 0:
            continue
        chosen = members[spread_by_size(bank.area[members], per_type)]
        shown = f"showing {len(chosen)} spread over sizes" if len(chosen) < len(members) else "all"
        parts.append(_title(f"{name}: {len(members)} lesions ({shown})", width))
        rows = -(-len(chosen) // columns)
        grid = np.full((rows * (cell + gap) + gap, width, 3), BACKGROUND, np.uint8)
        for k, i in enumerate(chosen):
            lesion = bank.lesion(int(i))
            r, c = divmod(k, columns)
            y, x = gap + r * (cell + gap), gap + c * (cell + gap)
            grid[y : y + cell, x : x + cell] = lesion_tile(lesion.patch, lesion.mask, cell)
        parts.append(grid)
    return np.concatenate(parts, axis=0)
