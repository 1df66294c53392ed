"""A dataset someone sent you, opened in Python: its metadata and manifest checked at once, each
image read (and checked against its sha256) only when it is asked for.

    import lesionpaste
    data = lesionpaste.open_dataset("eyeq-synth")
    print(data.meta["kind"], len(data), data.labels.mean())
    sample = data[0]  # sample.image (H, W, C) uint8, sample.label, sample.mask
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lesionpaste.dataset_format import (
    read_dataset_json,
    read_image,
    read_manifest,
    read_mask_digests,
    repeated_id,
)
from lesionpaste.errors import LesionPasteError


@dataclass(frozen=True)
class Sample:
    """One image of a dataset.

    Attributes:
        image: ``(H, W, C)`` ``uint8``: RGB for fundus photographs, one channel for CT.
        label: 0 normal, 1 synthetic anomaly (an evaluation set: the DR grade or CT class).
        twin_id: the normal image a synthetic pair was made from (shared by both twins).
        path: the image's path in the dataset.
        mask: ``(H, W)`` boolean, where lesions were pasted (an anomalous twin), else None.
    """

    image: np.ndarray
    label: int
    twin_id: str
    path: str
    mask: np.ndarray | None


def as_hwc(image: np.ndarray) -> np.ndarray:
    """An image as OpenCV decodes it (BGR, or 2-D grey) as ``(H, W, C)``: RGB, or one channel."""
    if image.ndim == 2:
        return image[:, :, None]
    if image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


class OpenedDataset(Sequence[Sample]):
    """A dataset directory (``lesionpaste-dataset``, schema version 1) opened for reading.

    Attributes:
        root: the directory.
        meta: ``dataset.json`` (configuration, counts, sources and their licences).
        rows: ``manifest.csv``, one dict per image.
    """

    def __init__(self, root: Path, meta: dict, rows: list[dict]):
        self.root, self.meta, self.rows = root, meta, rows
        self._mask_digests: dict[str, str] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Sample:  # type: ignore[override]
        row = self.rows[i]
        return Sample(
            image=self.image(i),
            label=int(row["label"]),
            twin_id=row["twin_id"],
            path=row["path"],
            mask=self.mask(i),
        )

    def __iter__(self) -> Iterator[Sample]:
        return (self[i] for i in range(len(self)))

    @property
    def labels(self) -> np.ndarray:
        """Every image's label, ``int64``."""
        return np.array([int(r["label"]) for r in self.rows], dtype=np.int64)

    def image(self, i: int, check: bool = True) -> np.ndarray:
        """Image ``i`` as ``(H, W, C)`` ``uint8``; ``check``: its bytes must match the manifest's
        sha256 (a damaged or altered file is refused with ``LesionPasteError``)."""
        row = self.rows[i]
        digest = row["sha256"] if check else None
        return as_hwc(read_image(self.root, row["path"], cv2.IMREAD_UNCHANGED, digest))

    def mask(self, i: int) -> np.ndarray | None:
        """Where lesions were pasted into image ``i`` (checked against ``pastes.jsonl``), or None
        for an image without a mask."""
        relative = self.rows[i]["mask_path"]
        if not relative:
            return None
        if self._mask_digests is None:
            digests, problems = read_mask_digests(self.root)
            if problems:
                raise LesionPasteError(f"{self.root}: {problems[0]}")
            self._mask_digests = digests
        digest = self._mask_digests.get(relative)
        if digest is None:
            raise LesionPasteError(f"{self.root}: {relative} has no record in pastes.jsonl")
        return read_image(self.root, relative, cv2.IMREAD_GRAYSCALE, digest) > 0


def open_dataset(path: str | Path) -> OpenedDataset:
    """Open a LesionPaste dataset (synthetic or evaluation) for reading.

    ``dataset.json`` and ``manifest.csv`` are read and checked now: format and schema version,
    safe paths, unique ids. Images (and masks, with ``pastes.jsonl``) are read when asked for.

    Raises:
        LesionPasteError: not a dataset, another schema version, a hostile or damaged manifest.
    """
    root = Path(path)
    meta = read_dataset_json(root)
    rows = read_manifest(root)
    twin = repeated_id(rows, meta.get("kind"))
    if twin is not None:
        raise LesionPasteError(f"{root}/manifest.csv: twin id {twin!r} is listed more than once")
    return OpenedDataset(root, meta, rows)
