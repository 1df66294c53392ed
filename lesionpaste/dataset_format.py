"""The shareable dataset format (schema version 1): its one writer, reader and verifier.

A dataset is a directory::

    dataset.json      written last: schema, kind, counts, configuration, bank, provenance
    manifest.csv      path,label,twin_id,tier,n_lesions,mask_path,sha256 (one row per image)
    pastes.jsonl      synthetic sets: one JSON line per anomalous image, every paste recorded
    README.md         the dataset card (licences and attribution of the sources)
    images/normal/ID.png, images/anomalous/ID.png, masks/ID.png     (synthetic)
    images/ID.png                                                   (evaluation)

Datasets come from other people, so every reader here refuses with one line: absolute paths,
``..`` and links leaving the directory, files that are not regular files (a FIFO would block
a reader for ever), JSON nested absurdly deep or too long, and images whose header claims more
than the pixel limit (``lesionpaste.images``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import unicodedata
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import numpy as np

from lesionpaste.digests import sha256_bytes, sha256_file
from lesionpaste.errors import LesionPasteError
from lesionpaste.files import open_regular
from lesionpaste.formats import DATASET_FORMAT as FORMAT
from lesionpaste.images import decode
from lesionpaste.jsonfiles import json_lines, read_json_file

SCHEMA_VERSION = 1
MANIFEST_COLUMNS = ["path", "label", "twin_id", "tier", "n_lesions", "mask_path", "sha256"]
KINDS = ("synthetic", "evaluation")


def manifest_text(rows: Iterable[dict]) -> str:
    """``manifest.csv``: the header, then one line per row (its values in ``MANIFEST_COLUMNS``
    order, a missing one empty), quoted as CSV requires so that any image name round-trips."""
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    for row in rows:
        writer.writerow([row.get(column, "") for column in MANIFEST_COLUMNS])
    return text.getvalue()


def pastes_text(records: Iterable[dict]) -> str:
    """``pastes.jsonl``: one JSON object per anomalous twin, keys sorted."""
    return "".join(json.dumps(record, sort_keys=True) + "\n" for record in records)


def dataset_json_text(meta: dict) -> str:
    """``dataset.json`` for ``meta`` (its ``format`` and ``schema_version`` set here), keys
    sorted and indented so that two datasets compare line by line."""
    meta = {**meta, "format": FORMAT, "schema_version": SCHEMA_VERSION}
    return json.dumps(meta, indent=2, sort_keys=True) + "\n"


def has_control_character(text: str) -> bool:
    """Whether ``text`` holds a control character (Unicode category Cc: C0, DEL and C1)."""
    return any(unicodedata.category(c) == "Cc" for c in text)


def safe_path(root: Path, relative: str) -> Path:
    """``root / relative``, refusing absolute paths, ``..``, and links that leave ``root``."""
    text = str(relative)
    pure = PurePosixPath(text)
    if (
        not text
        or has_control_character(text)
        or pure.is_absolute()
        or "\\" in text
        or ".." in pure.parts
        or text.startswith("~")
    ):
        raise LesionPasteError(
            f"unsafe path {text!r} in the dataset {root} (must be relative, no '..', no control "
            "characters)"
        )
    path = Path(root) / pure
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(path))
    if real != real_root and real_root not in real.parents:
        raise LesionPasteError(f"path {text!r} in the dataset {root} leads outside it (a link?)")
    return path


def read_dataset_json(root: Path) -> dict:
    """``dataset.json`` of a dataset directory, checked for format, schema version and kind."""
    root = Path(root)
    path = root / "dataset.json"
    if not root.is_dir():
        raise LesionPasteError(f"{root}: no such dataset directory")
    if not os.path.lexists(path):
        raise LesionPasteError(f"{root}: no dataset.json (not a dataset, or an unfinished run)")
    meta = read_json_file(path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise LesionPasteError(f"{path}: not a LesionPaste dataset description")
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise LesionPasteError(
            f"{path}: dataset schema version {meta.get('schema_version')!r} is not supported; "
            f"this lesionpaste reads version {SCHEMA_VERSION}"
        )
    if meta.get("kind") not in KINDS:
        raise LesionPasteError(f"{path}: unknown dataset kind {meta.get('kind')!r}")
    for key in ("counts", "config", "files"):
        if not isinstance(meta.get(key, {}), dict):
            raise LesionPasteError(f"{path}: {key!r} is not a JSON object")
    return meta


def read_manifest(root: Path) -> list[dict]:
    """The manifest rows: safe paths, integer labels, no path twice, at least one row."""
    path = Path(root) / "manifest.csv"
    if not os.path.lexists(path):
        raise LesionPasteError(f"{root}: no manifest.csv")
    try:
        with open_regular(path, "CSV file") as raw:
            reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
            if reader.fieldnames != MANIFEST_COLUMNS:
                raise LesionPasteError(
                    f"{path}: unexpected columns {reader.fieldnames}; expected "
                    + ",".join(MANIFEST_COLUMNS)
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
                f"{path}, line {line}: label {row['label']!r} is not an integer"
            ) from None
    if not rows:
        raise LesionPasteError(f"{path}: the manifest lists no image")
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


def read_image(root: Path, relative: str, flags: int, sha256: str | None = None) -> np.ndarray:
    """One image of a dataset, decoded with OpenCV ``flags`` (BGR order, as OpenCV gives it).

    Args:
        root: the dataset directory.
        relative: the image's path in it (checked by ``safe_path``).
        flags: ``cv2.IMREAD_*``.
        sha256: when given, the bytes must have this digest.

    Raises:
        LesionPasteError: unsafe path, missing or non-regular file, digest mismatch, a header
            over the pixel limit, a truncated or unreadable image.
    """
    path = safe_path(root, relative)
    with open_regular(path, "PNG image") as fh:
        data = fh.read()
    if sha256 is not None and sha256_bytes(data) != sha256:
        raise LesionPasteError(f"{root}: {relative} does not match its sha256 (damaged or altered)")
    return decode(data, f"{root}: {relative}", flags)


def _inside(root: Path, message: str) -> str:
    """A problem's message without the dataset's own path in front: the caller names it."""
    prefix = f"{root}: "
    return message.removeprefix(prefix)


def verify(root: Path) -> list[str]:
    """Every problem found in a dataset (empty when it is whole): schema, counts, paths, and
    the sha256 of every image, mask and metadata file."""
    problems: list[str] = []
    try:
        meta = read_dataset_json(root)
        rows = read_manifest(root)
    except LesionPasteError as exc:
        return [_inside(root, str(exc))]
    for name, digest in meta.get("files", {}).items():
        try:
            problems.extend(_file_problems(root, name, digest, "dataset.json"))
        except (OSError, LesionPasteError) as exc:  # an unsafe name, an unreadable file
            problems.append(f"{name}: {_inside(root, str(exc))}")
    for row in rows:
        problems.extend(_file_problems(root, row["path"], row["sha256"], "the manifest"))
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


def _file_problems(root: Path, relative: str, digest: str | None, listed_in: str) -> list[str]:
    """What is wrong with one listed file: missing, not a regular file, another sha256."""
    path = safe_path(root, relative)
    if not os.path.lexists(path):
        return [f"{relative}: missing"]
    try:
        if digest is not None and sha256_file(path) != digest:
            return [f"{relative}: sha256 differs from {listed_in}"]
    except LesionPasteError as exc:
        return [str(exc)]
    return []


def read_mask_digests(root: Path) -> tuple[dict[str, str], list[str]]:
    """``pastes.jsonl``'s sha256 of every mask (``mask_path -> digest``), and a problem line
    for each malformed record.

    Raises:
        LesionPasteError: no ``pastes.jsonl``, or one that cannot be read as JSON lines.
    """
    path = Path(root) / "pastes.jsonl"
    if not os.path.lexists(path):
        raise LesionPasteError(f"{root}: pastes.jsonl: missing")
    recorded, problems = {}, []
    for number, record in json_lines(path):
        try:
            recorded[record["mask_path"]] = record["mask_sha256"]
        except (KeyError, TypeError):
            problems.append(f"pastes.jsonl, line {number}: a malformed line")
    return recorded, problems


def _verify_masks(root: Path, rows: list[dict]) -> list[str]:
    try:
        recorded, problems = read_mask_digests(root)
    except LesionPasteError as exc:
        return [_inside(root, str(exc))]
    for row in rows:
        if row["mask_path"]:
            digest = recorded.get(row["mask_path"])
            if digest is None:
                problems.append(f"{row['mask_path']}: no paste record")
            else:
                problems.extend(_file_problems(root, row["mask_path"], digest, "pastes.jsonl"))
    return problems
