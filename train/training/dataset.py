"""Reading a LesionPaste dataset directory (schema version 1) into memory, safely.

The trainer reads the format alone, so that a collaborator who received a dataset can train on
it with this package (or their own code): ``dataset.json``, ``manifest.csv`` and PNG images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lesionpaste.dataset import OpenedDataset, open_dataset
from lesionpaste.dataset_format import count_cell
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
    masks: np.ndarray | None = None  # (N, H, W) uint8 0/1 when loaded; empty for a normal
    n_lesions: np.ndarray | None = None  # (N,) pasted lesions per image (0 where none)
    tiers: np.ndarray | None = None  # (N,) each anomalous twin's tier (0 where none)


def load_dataset(
    root: Path, verify: bool = True, masks: bool = False, twins: set[str] | None = None
) -> LoadedDataset:
    """Every image of a dataset in memory, after checking each file's sha256 (``verify``).

    Args:
        root: the dataset directory.
        verify: check each image against its sha256 in the manifest.
        masks: also read every image's lesion mask (checked against its recorded sha256);
            an image without one gets an empty mask.
        twins: read only the images of these twin ids (None: all); the others are not read.

    Returns:
        The dataset: ``(N, H, W, C)`` ``uint8`` images, ``(N,)`` ``int64`` labels, twin ids
        and relative paths, in manifest order; with ``masks``, ``(N, H, W)`` ``uint8`` 0/1
        masks.

    Raises:
        LesionPasteError: not a dataset, a hostile or damaged manifest or image, images of
            several sizes, or none of ``twins``.
    """
    opened = open_dataset(root)
    if twins is not None:
        opened = OpenedDataset(
            opened.root, opened.meta, [r for r in opened.rows if r["twin_id"] in twins]
        )
        if not len(opened):
            raise LesionPasteError(f"{opened.root}: holds none of the {len(twins)} twins asked for")
    images = [opened.image(i, check=verify) for i in range(len(opened))]
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise LesionPasteError(
            f"{opened.root}: images of several sizes or channel counts {sorted(shapes)[:3]} "
            "(height, width, channels); a dataset is made with one --size and one modality"
        )
    return LoadedDataset(
        root=opened.root,
        meta=opened.meta,
        images=np.stack(images),
        labels=opened.labels,
        twin_ids=[r["twin_id"] for r in opened.rows],
        paths=[r["path"] for r in opened.rows],
        masks=_masks(opened, images[0].shape[:2]) if masks else None,
        n_lesions=_counts(opened.rows, "n_lesions"),
        tiers=_counts(opened.rows, "tier"),
    )


def _counts(rows: list[dict], column: str) -> np.ndarray:
    """A manifest column of whole numbers (checked by ``read_manifest``) as ``(N,)`` int64,
    0 where a cell is empty."""
    return np.array([count_cell(row[column]) or 0 for row in rows], dtype=np.int64)


def _masks(opened: OpenedDataset, shape: tuple[int, int]) -> np.ndarray:
    """Every image's mask as ``(N, H, W)`` ``uint8`` 0/1 (zeros where an image has none)."""
    out = np.zeros((len(opened), *shape), np.uint8)
    for i in range(len(opened)):
        mask = opened.mask(i)
        if mask is not None:
            if mask.shape != shape:
                raise LesionPasteError(
                    f"{opened.root}: {opened.rows[i]['mask_path']} is {mask.shape[1]}x"
                    f"{mask.shape[0]}, its image {shape[1]}x{shape[0]}"
                )
            out[i] = mask
    return out


class TorchDataset(torch.utils.data.Dataset):
    """A received dataset for a ``torch.utils.data.DataLoader``: item ``i`` is image ``i`` as a
    ``(C, H, W)`` ``uint8`` tensor (through ``transform`` when given) and its label.

    Images are read, and checked against their sha256, when the loader asks for them.

    Args:
        dataset: an opened dataset, or the directory of one to open.
        transform: applied to each ``(C, H, W)`` ``uint8`` image tensor, or None.
    """

    def __init__(self, dataset: OpenedDataset | str | Path, transform=None):
        self.dataset = dataset if isinstance(dataset, OpenedDataset) else open_dataset(dataset)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = torch.from_numpy(np.ascontiguousarray(self.dataset.image(i).transpose(2, 0, 1)))
        label = int(self.dataset.rows[i]["label"])
        return (self.transform(image) if self.transform else image), label
