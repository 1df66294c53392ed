"""Reading a LesionPaste dataset directory (schema version 1) into memory, safely.

The trainer reads the format alone, so that a collaborator who received a dataset can train on
it with this package (or their own code): ``dataset.json``, ``manifest.csv`` and PNG images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lesionpaste.dataset_format import read_dataset_json, read_image, read_manifest, repeated_id
from lesionpaste.errors import LesionPasteError


@dataclass
class LoadedDataset:
    """Images ``(N, H, W, C)`` uint8, integer labels, twin ids and relative paths."""

    root: Path
    meta: dict
    images: np.ndarray
    labels: np.ndarray
    twin_ids: list[str]
    paths: list[str]


def _refuse_repeated_ids(root: Path, rows: list[dict], kind: str | None) -> None:
    twin = repeated_id(rows, kind)
    if twin is not None:
        raise LesionPasteError(f"{root}/manifest.csv: twin id {twin!r} is listed more than once")


def load_dataset(root: Path, verify: bool = True) -> LoadedDataset:
    """Every image of a dataset in memory, after checking each file's sha256 (``verify``)."""
    root = Path(root)
    meta = read_dataset_json(root)
    rows = read_manifest(root)
    _refuse_repeated_ids(root, rows, meta.get("kind"))
    images = []
    for row in rows:
        image = read_image(
            root, row["path"], cv2.IMREAD_UNCHANGED, row["sha256"] if verify else None
        )
        if image.ndim == 2:
            image = image[:, :, None]
        elif image.shape[2] == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        images.append(image)
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise LesionPasteError(
            f"{root}: images of several sizes or channel counts {sorted(shapes)[:3]} "
            "(height, width, channels); a dataset is made with one --size and one modality"
        )
    return LoadedDataset(
        root=root,
        meta=meta,
        images=np.stack(images),
        labels=np.array([int(r["label"]) for r in rows], dtype=np.int64),
        twin_ids=[r["twin_id"] for r in rows],
        paths=[r["path"] for r in rows],
    )
