"""Reading a LesionPaste dataset directory (schema version 1) into memory, safely.

The trainer reads the format alone, so that a collaborator who received a dataset can train on
it with this package (or their own code): ``dataset.json``, ``manifest.csv`` and PNG images.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from train.errors import TrainError

FORMAT = "lesionpaste-dataset"
SCHEMA_VERSION = 1
COLUMNS = ["path", "label", "twin_id", "tier", "n_lesions", "mask_path", "sha256"]


@dataclass
class LoadedDataset:
    """Images ``(N, H, W, C)`` uint8, integer labels, twin ids and relative paths."""

    root: Path
    meta: dict
    images: np.ndarray
    labels: np.ndarray
    twin_ids: list[str]
    paths: list[str]


def _safe(root: Path, relative: str) -> Path:
    pure = PurePosixPath(relative)
    if not relative or pure.is_absolute() or "\\" in relative or ".." in pure.parts:
        raise TrainError(f"{root}: unsafe path {relative!r} in manifest.csv")
    path = root / pure
    real_root, real = Path(os.path.realpath(root)), Path(os.path.realpath(path))
    if real_root not in real.parents:
        raise TrainError(f"{root}: path {relative!r} leads outside the dataset (a link?)")
    return path


def read_meta(root: Path) -> dict:
    """``dataset.json``, checked for format and schema version."""
    root = Path(root)
    path = root / "dataset.json"
    if not path.is_file():
        raise TrainError(f"{root}: no dataset.json (not a LesionPaste dataset, or unfinished)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise TrainError(f"{path}: not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise TrainError(f"{path}: not a LesionPaste dataset description")
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise TrainError(
            f"{path}: dataset schema version {meta.get('schema_version')!r} is not supported "
            f"(this trainer reads version {SCHEMA_VERSION})"
        )
    return meta


def read_rows(root: Path) -> list[dict]:
    """Manifest rows with safe paths, numeric labels and no duplicates."""
    path = Path(root) / "manifest.csv"
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames != COLUMNS:
                raise TrainError(f"{path}: unexpected columns {reader.fieldnames}")
            rows = list(reader)
    except FileNotFoundError:
        raise TrainError(f"{root}: no manifest.csv") from None
    except (UnicodeDecodeError, csv.Error):
        raise TrainError(f"{path}: not a readable CSV file") from None
    seen = set()
    for line, row in enumerate(rows, start=2):
        if any(v is None for v in row.values()) or None in row:
            raise TrainError(f"{path}, line {line}: wrong number of fields")
        _safe(Path(root), row["path"])
        if row["path"] in seen:
            raise TrainError(f"{path}, line {line}: {row['path']} is listed twice")
        seen.add(row["path"])
        try:
            int(row["label"])
        except ValueError:
            raise TrainError(
                f"{path}, line {line}: label {row['label']!r} is not an integer"
            ) from None
    if not rows:
        raise TrainError(f"{path}: the manifest lists no image")
    return rows


def repeated_id(rows: list[dict], kind: str | None) -> str | None:
    """A twin id listed too often: twice with one label (a synthetic set pairs one normal
    with one anomalous image per id), or twice at all in an evaluation set; else None."""
    seen: set = set()
    for row in rows:
        key = row["twin_id"] if kind == "evaluation" else (row["twin_id"], row["label"])
        if key in seen:
            return row["twin_id"]
        seen.add(key)
    return None


def _refuse_repeated_ids(root: Path, rows: list[dict], kind: str | None) -> None:
    twin = repeated_id(rows, kind)
    if twin is not None:
        raise TrainError(f"{root}/manifest.csv: twin id {twin!r} is listed more than once")


def load_dataset(root: Path, verify: bool = True) -> LoadedDataset:
    """Every image of a dataset in memory, after checking each file's sha256 (``verify``)."""
    root = Path(root)
    meta = read_meta(root)
    rows = read_rows(root)
    _refuse_repeated_ids(root, rows, meta.get("kind"))
    images = []
    for row in rows:
        path = _safe(root, row["path"])
        try:
            data = path.read_bytes()
        except OSError:
            raise TrainError(f"{root}: {row['path']} is missing or unreadable") from None
        if verify and hashlib.sha256(data).hexdigest() != row["sha256"]:
            raise TrainError(
                f"{root}: {row['path']} does not match its sha256 (damaged or altered)"
            )
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise TrainError(f"{root}: {row['path']} is not a readable PNG")
        if image.ndim == 2:
            image = image[:, :, None]
        elif image.shape[2] == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        images.append(image)
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise TrainError(
            f"{root}: images of several sizes {sorted(shapes)[:3]}; make the dataset "
            "with one --size"
        )
    return LoadedDataset(
        root=root,
        meta=meta,
        images=np.stack(images),
        labels=np.array([int(r["label"]) for r in rows], dtype=np.int64),
        twin_ids=[r["twin_id"] for r in rows],
        paths=[r["path"] for r in rows],
    )
