"""A dataset someone sent you, opened in Python: its metadata and manifest checked at once, each
image read (and checked against its sha256) only when it is asked for.

    import lesionpaste
    data = lesionpaste.open_dataset("eyeq-synth")
    print(data.meta["kind"], len(data), data.labels.mean())
    sample = data[0]  # sample.image (H, W, C) uint8, sample.label, sample.mask
    data.type_masks(0)  # an evaluation set with masks: {"MA": (H, W) bool, ...}
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
    read_mask_index,
    repeated_id,
)
from lesionpaste.errors import LesionPasteError
from lesionpaste.file_names import MANIFEST


@dataclass(frozen=True)
class Sample:
    """One image of a dataset.

    Attributes:
        image: ``(H, W, C)`` ``uint8``: RGB for fundus photographs, one channel for CT.
        label: 0 normal, 1 synthetic anomaly (an evaluation set: the DR grade or CT class).
        twin_id: the normal image a synthetic pair was made from (shared by both twins).
        path: the image's path in the dataset.
        mask: ``(H, W)`` boolean, where lesions were pasted (an anomalous twin) or the
            ground-truth lesions are (an evaluation image with a mask), else None.
    """

    image: np.ndarray
    label: int
    twin_id: str
    path: str
    mask: np.ndarray | None


def as_hwc(image: np.ndarray) -> np.ndarray:
    """An image as OpenCV decodes it (BGR, or 2-D grey) as ``(H, W, C)``: RGB, or one channel.

    Args:
        image: ``(H, W)`` grey or ``(H, W, C)`` BGR image as OpenCV decodes it.

    Returns:
        ``(H, W, 1)`` for grey, ``(H, W, 3)`` RGB for three channels, other shapes unchanged;
        the dtype is kept.
    """
    if image.ndim == 2:
        return image[:, :, None]
    if image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


class OpenedDataset(Sequence[Sample]):
    """A dataset directory (``lesionpaste-dataset``, schema version 1, or 2 for an evaluation
    set with masks) opened for reading.

    Attributes:
        root: the directory.
        meta: ``dataset.json`` (configuration, counts, sources and their licences).
        rows: ``manifest.csv``, one dict per image.
    """

    def __init__(self, root: Path, meta: dict, rows: list[dict]):
        self.root, self.meta, self.rows = root, meta, rows
        self._mask_digests: dict[str, str] | None = None
        self._mask_records: dict[str, dict] | None = None

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
        """Every image's label, ``int64``.

        Returns:
            ``(N,)`` ``int64`` labels, in manifest order.
        """
        return np.array([int(r["label"]) for r in self.rows], dtype=np.int64)

    def image(self, i: int, check: bool = True) -> np.ndarray:
        """Image ``i`` as ``(H, W, C)`` ``uint8``; ``check``: its bytes must match the manifest's
        sha256 (a damaged or altered file is refused with ``LesionPasteError``).

        Args:
            i: the image's row in the manifest.
            check: verify the file's sha256 against the manifest before decoding.

        Returns:
            ``(H, W, C)`` ``uint8``: RGB for fundus photographs, one channel for CT.

        Raises:
            LesionPasteError: the file is missing, not regular, altered, oversized, truncated
                or unreadable.
        """
        row = self.rows[i]
        digest = row["sha256"] if check else None
        return as_hwc(read_image(self.root, row["path"], cv2.IMREAD_UNCHANGED, digest))

    @property
    def mask_types(self) -> list[str]:
        """The lesion types of an evaluation set's per-type masks (``dataset.json["masks"]``).

        Returns:
            The type names, e.g. ``["MA", "HE", "EX", "SE"]``; empty for a set without masks
            or a synthetic set.
        """
        masks = self.meta.get("masks")
        types = masks.get("types", []) if isinstance(masks, dict) else []
        return [t for t in types if isinstance(t, str)] if isinstance(types, list) else []

    def mask(self, i: int) -> np.ndarray | None:
        """Image ``i``'s mask: where lesions were pasted into a twin (checked against
        ``pastes.jsonl``), or an evaluation image's ground truth, the union of its lesion
        types (checked against ``masks.jsonl``); None for an image without a mask.

        Args:
            i: the image's row in the manifest.

        Returns:
            ``(H, W)`` boolean mask, or None when the row has no ``mask_path``.

        Raises:
            LesionPasteError: ``pastes.jsonl`` (``masks.jsonl``) is missing or malformed, has
                no record of this mask, or the mask file is missing, altered or unreadable.
        """
        relative = self.rows[i]["mask_path"]
        if not relative:
            return None
        if self.meta.get("kind") == "evaluation":
            digest = self._mask_record(i)["mask_sha256"]
            return read_image(self.root, relative, cv2.IMREAD_GRAYSCALE, digest) > 0
        if self._mask_digests is None:
            digests, problems = read_mask_digests(self.root)
            if problems:
                raise LesionPasteError(f"{self.root}: {problems[0]}")
            self._mask_digests = digests
        digest = self._mask_digests.get(relative)
        if digest is None:
            raise LesionPasteError(f"{self.root}: {relative} has no record in pastes.jsonl")
        return read_image(self.root, relative, cv2.IMREAD_GRAYSCALE, digest) > 0

    def type_masks(self, i: int) -> dict[str, np.ndarray]:
        """Evaluation image ``i``'s ground truth per lesion type (checked against
        ``masks.jsonl``); a type without a mask for this image is absent.

        Args:
            i: the image's row in the manifest.

        Returns:
            ``{type: (H, W) boolean mask}``; empty for an image without masks, or in a
            synthetic set.

        Raises:
            LesionPasteError: ``masks.jsonl`` is missing or malformed, has no record of this
                image, or a mask file is missing, altered or unreadable.
        """
        if self.meta.get("kind") != "evaluation" or not self.rows[i]["mask_path"]:
            return {}
        types = self._mask_record(i)["types"]
        return {
            name: read_image(self.root, entry["path"], cv2.IMREAD_GRAYSCALE, entry["sha256"]) > 0
            for name, entry in types.items()
        }

    def _mask_record(self, i: int) -> dict:
        """Row ``i``'s record in ``masks.jsonl`` (the file read and checked on first use)."""
        if self._mask_records is None:
            records, problems = read_mask_index(self.root, self.rows)
            if problems:
                raise LesionPasteError(f"{self.root}: {problems[0]}")
            self._mask_records = records
        record = self._mask_records.get(self.rows[i]["twin_id"])
        if record is None:
            raise LesionPasteError(
                f"{self.root}: {self.rows[i]['mask_path']} has no record in masks.jsonl"
            )
        return record


def open_dataset(path: str | Path) -> OpenedDataset:
    """Open a LesionPaste dataset (synthetic or evaluation) for reading.

    ``dataset.json`` and ``manifest.csv`` are read and checked now: format and schema version,
    safe paths, unique ids. Images (and masks, with ``pastes.jsonl``) are read when asked for.

    Args:
        path: the dataset directory.

    Returns:
        The opened dataset: ``meta``, ``rows``, and images read on indexing.

    Raises:
        LesionPasteError: not a dataset, another schema version, a hostile or damaged manifest.
    """
    root = Path(path)
    meta = read_dataset_json(root)
    rows = read_manifest(root)
    twin = repeated_id(rows, meta.get("kind"))
    if twin is not None:
        raise LesionPasteError(f"{root / MANIFEST}: twin id {twin!r} is listed more than once")
    return OpenedDataset(root, meta, rows)
