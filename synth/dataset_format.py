"""The shareable dataset format (schema version 1): names, safe paths, and verification.

A dataset is a directory::

    dataset.json      written last: schema, kind, counts, configuration, bank, provenance
    manifest.csv      path,label,twin_id,tier,n_lesions,mask_path,sha256 (one row per image)
    pastes.jsonl      synthetic sets: one JSON line per anomalous image, every paste recorded
    README.md         the dataset card (licences and attribution of the sources)
    images/normal/ID.png, images/anomalous/ID.png, masks/ID.png     (synthetic)
    images/ID.png                                                   (evaluation)

Paths in it are relative; readers reject absolute paths, ``..`` and links leaving it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path, PurePosixPath

from bank_builder.errors import LesionPasteError
from train.data import repeated_id

FORMAT = "lesionpaste-dataset"
SCHEMA_VERSION = 1
MANIFEST_COLUMNS = ["path", "label", "twin_id", "tier", "n_lesions", "mask_path", "sha256"]
KINDS = ("synthetic", "evaluation")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def safe_path(root: Path, relative: str) -> Path:
    """``root / relative``, refusing absolute paths, ``..``, and links that leave ``root``."""
    text = str(relative)
    pure = PurePosixPath(text)
    if not text or pure.is_absolute() or "\\" in text or ".." in pure.parts or text.startswith("~"):
        raise LesionPasteError(f"unsafe path {text!r} in the dataset (must be relative, no '..')")
    path = Path(root) / pure
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(path))
    if real != real_root and real_root not in real.parents:
        raise LesionPasteError(f"path {text!r} in the dataset leads outside it (a link?)")
    return path


def read_dataset_json(root: Path) -> dict:
    """``dataset.json`` of a dataset directory, checked for format and schema version."""
    path = Path(root) / "dataset.json"
    if not Path(root).is_dir():
        raise LesionPasteError(f"{root}: no such dataset directory")
    if not path.is_file():
        raise LesionPasteError(f"{root}: no dataset.json (not a dataset, or an unfinished run)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LesionPasteError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise LesionPasteError(f"{path}: not a LesionPaste dataset description")
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise LesionPasteError(
            f"{path}: dataset schema version {meta.get('schema_version')!r} is not supported; "
            f"this lesionpaste reads version {SCHEMA_VERSION}"
        )
    if meta.get("kind") not in KINDS:
        raise LesionPasteError(f"{path}: unknown dataset kind {meta.get('kind')!r}")
    return meta


def read_manifest(root: Path) -> list[dict]:
    """The manifest rows, with their paths checked for safety and duplicates refused."""
    path = Path(root) / "manifest.csv"
    if not path.is_file():
        raise LesionPasteError(f"{root}: no manifest.csv")
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames != MANIFEST_COLUMNS:
                raise LesionPasteError(
                    f"{path}: columns {reader.fieldnames} are not {','.join(MANIFEST_COLUMNS)}"
                )
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise LesionPasteError(f"{path}: not a readable CSV file ({exc})") from None
    seen: set[str] = set()
    for line, row in enumerate(rows, start=2):
        if None in row or any(v is None for v in row.values()):
            raise LesionPasteError(f"{path}, line {line}: wrong number of fields")
        safe_path(root, row["path"])
        if row["mask_path"]:
            safe_path(root, row["mask_path"])
        if row["path"] in seen:
            raise LesionPasteError(f"{path}, line {line}: {row['path']} is listed twice")
        seen.add(row["path"])
        try:
            int(row["label"])
        except ValueError:
            raise LesionPasteError(
                f"{path}, line {line}: label {row['label']!r} is not a number"
            ) from None
    return rows


def verify(root: Path) -> list[str]:
    """Every problem found in a dataset (empty when it is whole): schema, counts, paths, and
    the sha256 of every image, mask and metadata file."""
    problems: list[str] = []
    try:
        meta = read_dataset_json(root)
        rows = read_manifest(root)
    except LesionPasteError as exc:
        return [str(exc)]
    for name, digest in meta.get("files", {}).items():
        try:
            if sha256_file(safe_path(root, name)) != digest:
                problems.append(f"{name}: sha256 differs from dataset.json")
        except (OSError, LesionPasteError) as exc:
            problems.append(f"{name}: {exc}")
    for row in rows:
        try:
            file = safe_path(root, row["path"])
            if not file.is_file():
                problems.append(f"{row['path']}: missing")
            elif sha256_file(file) != row["sha256"]:
                problems.append(f"{row['path']}: sha256 differs from the manifest")
            if row["mask_path"] and not safe_path(root, row["mask_path"]).is_file():
                problems.append(f"{row['mask_path']}: missing")
        except LesionPasteError as exc:
            problems.append(str(exc))
    twin = repeated_id(rows, meta.get("kind"))
    if twin is not None:
        problems.append(f"manifest.csv: twin id {twin!r} is listed more than once")
    labels = [int(r["label"]) for r in rows]
    counts = meta.get("counts", {})
    if counts.get("images") != len(rows):
        problems.append(
            f"dataset.json counts {counts.get('images')} images, manifest has {len(rows)}"
        )
    if meta["kind"] == "synthetic":
        if counts.get("normal") != labels.count(0) or counts.get("anomalous") != labels.count(1):
            problems.append("dataset.json normal/anomalous counts differ from the manifest")
        if set(labels) - {0, 1}:
            problems.append("a synthetic dataset has labels other than 0 and 1")
        problems.extend(_verify_masks(root, rows))
    return problems


def _verify_masks(root: Path, rows: list[dict]) -> list[str]:
    path = Path(root) / "pastes.jsonl"
    if not path.is_file():
        return ["pastes.jsonl: missing"]
    problems = []
    recorded = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
            recorded[record["mask_path"]] = record["mask_sha256"]
        except (json.JSONDecodeError, KeyError, TypeError):
            problems.append("pastes.jsonl: a malformed line")
    for row in rows:
        if row["mask_path"]:
            digest = recorded.get(row["mask_path"])
            file = safe_path(root, row["mask_path"])
            if digest is None:
                problems.append(f"{row['mask_path']}: no paste record")
            elif file.is_file() and sha256_file(file) != digest:
                problems.append(f"{row['mask_path']}: sha256 differs from pastes.jsonl")
    return problems
