"""``lp-synth export``: a dataset copied into another tool's layout (``synth.sharing.export_layouts``).

Images and masks are copied byte for byte (pixel-identical; a mask that is not already 0/255
is the one file rewritten, as 0/255), each image checked against its manifest sha256 as it is
read, after the whole dataset has passed ``verify``. Provenance comes along at the export's
root: ``lesionpaste-dataset.json`` (the dataset's ``dataset.json``), ``LESIONPASTE_CARD.md``
(its card, when it has one) and ``lesionpaste-export.json`` (layout, split, tool version,
command, and every exported file with its source and sha256), written last.

The export is built in a hidden sibling ``.NAME.export.partial`` and swapped in when complete,
under the output's lock; the output must not overlap the dataset, and ``--overwrite`` replaces
only an earlier export.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from lesionpaste import __version__
from lesionpaste.dataset_archive import dataset_directory
from lesionpaste.dataset_format import read_dataset_json, read_manifest, safe_path, verify
from lesionpaste.digests import sha256_bytes, sha256_file
from lesionpaste.errors import LesionPasteError
from lesionpaste.file_names import (
    CARD,
    DATASET_RECORD,
    EXPORT_CARD,
    EXPORT_DATASET_COPY,
    EXPORT_FORMAT,
    EXPORT_HF_CARD,
    EXPORT_METADATA,
    EXPORT_RECORD,
    MANIFEST,
)
from lesionpaste.files import building_folder, read_regular_file
from lesionpaste.images import decode, encode_png
from lesionpaste.outputs import check_output, real
from lesionpaste.synth.sharing.export_layouts import (
    LAYOUTS,
    ExportedFile,
    Split,
    hugging_face_card,
    imagefolder_files,
    metadata_jsonl,
    mvtec_files,
)


def export_dataset(
    dataset: Path,
    out: Path,
    layout: str,
    *,
    command: str,
    split: Split | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Export a dataset (a directory, or an archive of one) into ``layout`` at ``out``.

    Args:
        dataset: the dataset directory or archive.
        out: the folder to write.
        layout: ``"mvtec"`` or ``"imagefolder"``.
        command: the command line, recorded in ``lesionpaste-export.json``.
        split: how ``mvtec`` splits a synthetic set's pairs (default ``Split()``).
        overwrite: replace an earlier export at ``out``.
        progress: called with (files copied, files to copy).

    Returns:
        The export's record (``lesionpaste-export.json``).

    Raises:
        LesionPasteError: an unknown layout; ``out`` is a link, overlaps the dataset, exists
            (without ``overwrite``) or is not an earlier export; the dataset is not whole
            (``verify``); a split that leaves training or test empty; a file that changed.
    """
    if layout not in LAYOUTS:
        raise LesionPasteError(f"unknown export layout {layout!r}; choose {' or '.join(LAYOUTS)}")
    dataset, out = Path(dataset), Path(out)
    check_output(out, "export", [("dataset", dataset)], overwrite)
    if os.path.lexists(out) and not overwrite:
        raise LesionPasteError(f"{out} already exists; pass --overwrite to replace it")
    split = split or Split()
    with dataset_directory(dataset) as root:
        problems = verify(root)
        if problems:
            raise LesionPasteError(
                f"{dataset} is not a whole dataset ({problems[0]}); see lp-synth verify "
                f"{dataset}; nothing was exported"
            )
        meta, rows = read_dataset_json(root), read_manifest(root)
        if layout == "mvtec":
            files = mvtec_files(meta["kind"], rows, split)
        else:
            files = imagefolder_files(rows)
        target = real(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        with building_folder(target, "lp-synth export", "export", out, overwrite) as work:
            work.mkdir()
            copied = [_copy(root, work, f, progress, len(files)) for f in files]
            if layout == "imagefolder":
                (work / EXPORT_METADATA).write_text(metadata_jsonl(files), encoding="utf-8")
                (work / EXPORT_HF_CARD).write_text(hugging_face_card(), encoding="utf-8")
            record = _record(root, meta, layout, split, command, copied)
            _provenance(root, work, record)
    return record


def _copy(root: Path, work: Path, f: ExportedFile, progress, total: int) -> dict:
    """Copy one file into the export; its entry in ``lesionpaste-export.json``."""
    data = read_regular_file(safe_path(root, f.source), what="PNG file")
    converted = False
    if not f.mask and sha256_bytes(data) != f.row["sha256"]:
        raise LesionPasteError(f"{root}: {f.source} changed while it was exported; rerun")
    if f.mask:
        mask = decode(data, f"{root}: {f.source}", cv2.IMREAD_UNCHANGED)
        if mask.ndim != 2 or mask.dtype != np.uint8 or not np.isin(mask, (0, 255)).all():
            flat = mask if mask.ndim == 2 else mask.any(axis=2)
            data, converted = encode_png(flat > 0), True
    path = work.joinpath(*f.path.split("/"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as fh:
        fh.write(data)
    if progress:
        progress(1, total)
    entry = {"path": f.path, "source": f.source, "sha256": sha256_bytes(data)}
    return {**entry, "converted_to_0_255": True} if converted else entry


def _record(root: Path, meta: dict, layout: str, split: Split, command: str, copied: list) -> dict:
    """``lesionpaste-export.json``: what was exported, from what, how, and every file."""
    counts: dict[str, int] = {}
    for entry in copied:
        folder = entry["path"].rsplit("/", 1)[0]
        counts[folder] = counts.get(folder, 0) + 1
    record = {
        "format": EXPORT_FORMAT,
        "layout": layout,
        "tool_version": __version__,
        "command": command,
        "dataset": {
            "kind": meta["kind"],
            "dataset_json_sha256": sha256_file(root / DATASET_RECORD),
            "manifest_sha256": sha256_file(root / MANIFEST),
        },
        "counts": dict(sorted(counts.items())),
        "files": copied,
    }
    if layout == "mvtec" and meta["kind"] == "synthetic":
        record["split"] = {
            "by": "patient of the twin id; a pair is never split",
            "train_fraction": split.train_fraction,
            "seed": split.seed,
            "group_pattern": split.pattern,
            "left_out": "the anomalous twins of the training pairs",
        }
    return record


def _provenance(root: Path, work: Path, record: dict) -> None:
    """The dataset's ``dataset.json`` and card, then the export's record (last)."""
    shutil.copyfile(root / DATASET_RECORD, work / EXPORT_DATASET_COPY)
    if (root / CARD).is_file() and not (root / CARD).is_symlink():
        shutil.copyfile(root / CARD, work / EXPORT_CARD)
    text = json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    (work / EXPORT_RECORD).write_text(text, encoding="utf-8")
