"""Where a tool may write: never through a link, never over, into or around one of its inputs,
and ``--overwrite`` replaces only what a LesionPaste tool wrote there before.

Every tool calls ``check_output`` before doing any work. The checks compare real paths
(``os.path.realpath``), so ``.``, ``..`` and links in any spelling are seen through.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from lesionpaste.errors import LesionPasteError
from lesionpaste.file_names import (
    BANK_FORMAT,
    BEST,
    CAM_PICTURE,
    CARD,
    CHECKPOINT,
    CONTRACT_FILE,
    CV_RECORD,
    DATASET_FORMAT,
    DATASET_RECORD,
    EVALUATION_RECORD,
    EXPORT_CARD,
    EXPORT_DATASET_COPY,
    EXPORT_FORMAT,
    EXPORT_HF_CARD,
    EXPORT_METADATA,
    EXPORT_RECORD,
    FOLD_RECORD,
    LOG,
    MANIFEST,
    MAPS_DIR,
    MAPS_PICTURE,
    MAPS_RECORD,
    MASKS_RECORD,
    METRICS,
    MODEL_FILES,
    MODEL_RECORD,
    PASTES,
    PREDICTION_RECORD,
    PREDICTIONS_CSV,
    PREDICTIONS_HTML,
    ROC_PICTURE,
    RUN_CONFIG,
    SCORES,
    THRESHOLDS,
    THUMBS_DIR,
    WEIGHTS_SOURCE,
)
from lesionpaste.files import entries, is_temp_file
from lesionpaste.images import is_marked_png
from lesionpaste.jsonfiles import read_json_file
from lesionpaste.tar_archives import is_dataset_archive

#: What each kind of output is, in words.
KINDS = {
    "dataset": "a LesionPaste dataset directory",
    "run": "an lp-train run directory",
    "evaluation": "an lp-eval / lp-knn evaluation folder",
    "bank": "a lesion bank file",
    "picture": "a PNG picture written by LesionPaste",
    "archive": "a dataset archive written by lp-synth pack",
    "export": "a folder written by lp-synth export",
    "predictions": "a folder written by lp-predict",
    "model": "a model folder written by lp-export",
}

_DATASET_TOP = {
    DATASET_RECORD,
    MANIFEST,
    PASTES,
    MASKS_RECORD,
    CARD,
    "images",
    "masks",
}
#: what ``lp-synth export`` writes at the top of its folder (mvtec and imagefolder layouts)
_EXPORT_TOP = {
    EXPORT_RECORD,
    EXPORT_DATASET_COPY,
    EXPORT_CARD,
    EXPORT_HF_CARD,
    EXPORT_METADATA,
    "metadata.csv",  # the imagefolder table of earlier versions: their exports stay replaceable
    "train",
    "test",
    "ground_truth",
    "normal",
    "anomalous",
}
_EVALUATION_FILES = {SCORES, METRICS, ROC_PICTURE, CAM_PICTURE, MAPS_PICTURE}
_RUN_FILES = {
    RUN_CONFIG,
    CHECKPOINT,
    BEST,
    LOG,
    WEIGHTS_SOURCE,
    MAPS_RECORD,
    THRESHOLDS,
    FOLD_RECORD,
    SCORES,
    CV_RECORD,
    CONTRACT_FILE,
    CARD,
    EVALUATION_RECORD,
}
_FOLD = re.compile(r"fold_[0-9]+")
#: what lp-predict writes: its record, the table, the report, and PNG folders
_PREDICTION_FILES = {PREDICTION_RECORD, PREDICTIONS_CSV, PREDICTIONS_HTML}
_PREDICTION_DIRS = {THUMBS_DIR, MAPS_DIR}
#: what lp-export writes: the model, its description and its card
_MODEL_FILES = {MODEL_RECORD, *MODEL_FILES.values(), CARD}


def real(path: Path) -> Path:
    """The path with every link, ``.`` and ``..`` resolved (it need not exist).

    Args:
        path: any path.

    Returns:
        The absolute, resolved path.
    """
    return Path(os.path.realpath(path))


def relation(out: Path, other: Path) -> str | None:
    """How ``out`` overlaps ``other`` ("is", "lies inside", "contains"), or None.

    Args:
        out: the output path.
        other: an input path.

    Returns:
        ``"is"``, ``"lies inside"`` or ``"contains"`` (comparing real paths), or None when
        they do not overlap.
    """
    a, b = real(out), real(other)
    if a == b:
        return "is"
    if b in a.parents:
        return "lies inside"
    if a in b.parents:
        return "contains"
    return None


def check_output(
    out: Path,
    kind: str,
    inputs: Iterable[tuple[str, Path | None]],
    overwrite: bool,
) -> None:
    """Refuse, before any work, an output that would put a user's files at risk.

    Args:
        out: the output path the user gave (a file or a directory, by ``kind``).
        kind: one of ``KINDS``: what the tool writes there.
        inputs: ``(what, path)`` for every file or folder the tool reads; None entries are
            skipped.
        overwrite: whether ``--overwrite`` was given. With it, an existing output is
            accepted only when it is recognisably an earlier output of the same kind (or
            an empty directory); without it nothing existing is ever replaced (the tool
            itself refuses or resumes).

    Raises:
        LesionPasteError: the output is a symbolic link, is / lies inside / contains an
            input, or holds something else than an earlier output of this kind. The message
            says that nothing was touched.
    """
    out = Path(out)
    if out.is_symlink():
        raise LesionPasteError(
            f"{out} is a symbolic link (to {os.readlink(out)}); outputs are never written "
            "through a link, so nothing was touched: give the real path or a new name"
        )
    for what, path in inputs:
        if path is None:
            continue
        how = relation(out, Path(path))
        if how is not None:
            raise LesionPasteError(
                f"the output {out} {how} the {what} ({path}); inputs are never written to, "
                "so nothing was touched: choose an output outside every input"
            )
    if overwrite and os.path.lexists(out):
        found = foreign(out, kind)
        if found is not None:
            raise LesionPasteError(
                f"{out}: {found}; --overwrite replaces only an earlier output of the same tool "
                f"({KINDS[kind]}), so nothing was touched: choose another output"
            )


def foreign(path: Path, kind: str) -> str | None:
    """What at ``path`` keeps it from being an earlier output of ``kind`` (None when it is one,
    or when it is an empty directory of a directory kind).

    Args:
        path: the existing output path.
        kind: one of ``KINDS``.

    Returns:
        A phrase saying what is foreign there (e.g. ``"it has no metrics.json"``), or None.
    """
    path = Path(path)
    if kind == "bank":
        return None if path.is_file() and _is_bank(path) else _what(path, "a lesion bank")
    if kind == "picture":
        if path.is_file() and is_marked_png(path):
            return None
        return _what(path, "a PNG written by LesionPaste")
    if kind == "archive":
        if path.is_file() and not path.is_symlink() and is_dataset_archive(path):
            return None
        return _what(path, "a dataset archive")
    if not path.is_dir():
        return _what(path, "a directory")
    found = entries(path)
    if not found:
        return None
    return {
        "dataset": _foreign_dataset,
        "run": _foreign_run,
        "evaluation": _foreign_evaluation,
        "export": _foreign_export,
        "predictions": _foreign_predictions,
        "model": _foreign_model,
    }[kind](path, found)


def is_run(folder: Path, found: list[Path] | None = None) -> bool:
    """Whether ``folder`` is marked as an lp-train run: its ``config.json``, or ``fold_K`` runs
    of a cross-validation (``found``: its entries, when already listed).

    Args:
        folder: the folder.
        found: its entries (``entries(folder)``), or None to list them here.

    Returns:
        Whether it holds ``config.json`` or a ``fold_K`` entry.
    """
    found = entries(folder) if found is None else found
    names = {e.name for e in found}
    return RUN_CONFIG in names or any(_FOLD.fullmatch(n) for n in names)


def _what(path: Path, wanted: str) -> str:
    if path.is_symlink():
        return f"it is a symbolic link, not {wanted}"
    if path.is_dir():
        return f"it is a directory, not {wanted}"
    return f"it is a file that is not {wanted}"


def _is_bank(path: Path) -> bool:
    try:
        import h5py

        with h5py.File(path, "r") as f:
            value = f.attrs.get("format")
    except (OSError, ValueError):
        return False
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return value == BANK_FORMAT


def _unexpected(entry: Path, kind: str) -> str:
    return f"it holds {entry.name!r}, which {_WRITER[kind]} does not write"


_WRITER = {
    "dataset": "lp-synth",
    "run": "lp-train",
    "evaluation": "lp-eval",
    "export": "lp-synth export",
    "predictions": "lp-predict",
    "model": "lp-export",
}


def _foreign_dataset(root: Path, found: list[Path]) -> str | None:
    try:
        meta = read_json_file(root / DATASET_RECORD)
    except LesionPasteError:
        return "it has no readable dataset.json"
    if not isinstance(meta, dict) or meta.get("format") != DATASET_FORMAT:
        return "its dataset.json is not a LesionPaste dataset's"
    for entry in found:
        if entry.name not in _DATASET_TOP or entry.is_symlink():
            return _unexpected(entry, "dataset")
        if entry.name in ("images", "masks"):
            if not entry.is_dir():
                return _unexpected(entry, "dataset")
            for inner in entry.rglob("*"):
                ours = inner.is_dir() or inner.suffix == ".png" or is_temp_file(inner)
                if inner.is_symlink() or not ours:
                    where = str(inner.relative_to(root))
                    return f"it holds {where!r}, which lp-synth does not write"
    return None


def _foreign_export(root: Path, found: list[Path]) -> str | None:
    try:
        record = read_json_file(root / EXPORT_RECORD)
    except LesionPasteError:
        return f"it has no readable {EXPORT_RECORD}"
    if not isinstance(record, dict) or record.get("format") != EXPORT_FORMAT:
        return f"its {EXPORT_RECORD} is not lp-synth export's"
    for entry in found:
        if entry.name not in _EXPORT_TOP or entry.is_symlink():
            return _unexpected(entry, "export")
        if entry.is_dir():
            for inner in entry.rglob("*"):
                if inner.is_symlink() or not (inner.is_dir() or inner.suffix == ".png"):
                    where = str(inner.relative_to(root))
                    return f"it holds {where!r}, which lp-synth export does not write"
    return None


def _foreign_evaluation(root: Path, found: list[Path]) -> str | None:
    if not (root / METRICS).is_file():
        return "it has no metrics.json"
    for entry in found:
        if entry.name == "maps" and entry.is_dir() and not entry.is_symlink():
            for inner in entry.iterdir():  # lp-eval --maps: one map and one panel per image
                if inner.is_symlink() or not inner.is_file() or inner.suffix != ".png":
                    return (
                        f"it holds {str(inner.relative_to(root))!r}, which lp-eval does not write"
                    )
            continue
        if entry.name not in _EVALUATION_FILES or not entry.is_file() or entry.is_symlink():
            return _unexpected(entry, "evaluation")
    return None


def _foreign_run(root: Path, found: list[Path]) -> str | None:
    if not is_run(root, found):
        return "it has no config.json"
    for entry in found:
        if entry.is_symlink():
            return _unexpected(entry, "run")
        if entry.is_file() and entry.name in _RUN_FILES:
            continue
        if entry.is_dir():
            inner = entries(entry)
            if _FOLD.fullmatch(entry.name) and (not inner or _foreign_run(entry, inner) is None):
                continue
            if inner and _foreign_evaluation(entry, inner) is None:
                continue
            if not inner:
                continue
        return _unexpected(entry, "run")
    return None


def _foreign_predictions(root: Path, found: list[Path]) -> str | None:
    if not (root / PREDICTION_RECORD).is_file():
        return f"it has no {PREDICTION_RECORD}"
    for entry in found:
        if entry.is_symlink():
            return _unexpected(entry, "predictions")
        if entry.name in _PREDICTION_DIRS and entry.is_dir():
            for inner in entry.iterdir():  # a thumbnail (and a map) per image
                if inner.is_symlink() or not inner.is_file():
                    return f"it holds {str(inner.relative_to(root))!r}, which lp-predict does not write"
                if inner.suffix != ".png" and not is_temp_file(inner):
                    return f"it holds {str(inner.relative_to(root))!r}, which lp-predict does not write"
            continue
        if entry.name in _PREDICTION_FILES and entry.is_file():
            continue
        if is_temp_file(entry):
            continue
        return _unexpected(entry, "predictions")
    return None


def _foreign_model(root: Path, found: list[Path]) -> str | None:
    if not (root / MODEL_RECORD).is_file():
        return f"it has no {MODEL_RECORD}"
    for entry in found:
        if entry.is_symlink() or not entry.is_file():
            return _unexpected(entry, "model")
        if entry.name not in _MODEL_FILES and not is_temp_file(entry):
            return _unexpected(entry, "model")
    return None
