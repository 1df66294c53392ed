"""Where a synthesis run's inputs come from: the bank and the normal images (an option, an
environment variable or ``lesionpaste.toml``), and which of the normals a run uses."""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from lesionpaste.config import config_value
from lesionpaste.errors import LesionPasteError
from lesionpaste.synth.inputs.ct_volumes import is_mosmed_root, normal_slices
from lesionpaste.synth.inputs.normals import (
    NormalImage,
    is_eyeq,
    list_folder,
    read_label_file,
    split,
)


def setting(option, env: str, key: str) -> str | None:
    """An input's value: the option, else the environment variable ``env``, else ``key``
    under ``[synth]`` in ``lesionpaste.toml``; None when none gives one.

    Args:
        option: the command-line value, or None.
        env: the environment variable to try next, e.g. ``LP_BANK``.
        key: the key under ``[synth]`` in the config file.

    Returns:
        The first value given (config-file paths resolved against the file), or None.

    Raises:
        LesionPasteError: the config file is missing (``$LP_CONFIG``), not valid TOML, or
            holds a value that is not a string.
    """
    return option or os.environ.get(env) or config_value("synth", key)


def resolve_bank(option: str | None) -> Path:
    """--bank, else $LP_BANK, else [synth] bank in lesionpaste.toml, else the one bank in banks/.

    Args:
        option: the ``--bank`` value, or None.

    Returns:
        The bank file's path (not yet checked or read).

    Raises:
        LesionPasteError: no bank given and ``banks/`` holds none or several, or the config
            file cannot be read.
    """
    value = setting(option, "LP_BANK", "bank")
    if value:
        return Path(value)
    found = sorted(glob.glob("banks/*.h5"))
    if len(found) == 1:
        return Path(found[0])
    if not found:
        raise LesionPasteError(
            "no bank given: pass --bank, set LP_BANK, or build one first (lp-bank build idrid_48)"
        )
    raise LesionPasteError(f"banks/ holds several banks ({', '.join(found)}); choose with --bank")


def bank_studies(bank) -> set[str]:
    """The MosMed studies a bank was cut from (``study_0255:z012`` -> ``study_0255``): kept
    out of the normals and of the evaluation set, which must not contain the bank's source.

    Args:
        bank: the lesion bank (its ``meta.sources`` are read).

    Returns:
        The study ids, the part of each source id before ``:``.
    """
    return {str(source["id"]).split(":")[0] for source in bank.meta.sources}


def resolve_normals(
    option: str | None,
    images: str | None,
    grades: tuple[int, ...],
    quality: str | None,
    per_study: int = 8,
    exclude: set[str] = frozenset(),
) -> tuple[list[NormalImage], list[dict]]:
    """Normal images from a folder, or from a label file (EyeQ / EyePACS) with filters.

    From a label file the default is what "normal" means in the paper: grade 0, and for EyeQ
    good quality only.

    Args:
        option: the ``--normals`` value (a folder, a label CSV or a MosMed root), or None
            for ``$LP_NORMALS`` or the config file.
        images: the ``--images`` folder of a label file, or None for the default.
        grades: the DR grades to keep from a label file (empty: grade 0).
        quality: the EyeQ quality to keep (``good``, ``usable``, ``reject``), or None.
        per_study: slices per CT-0 study, for a MosMed root.
        exclude: MosMed study ids to leave out (the bank's sources).

    Returns:
        ``(images, missing)``: the normal images, and records of images that are listed
        (or unreadable) but cannot be used.

    Raises:
        LesionPasteError: no normals given, filters without a label file, or a folder or
            label file that cannot be used.
    """
    value = setting(option, "LP_NORMALS", "normals")
    if not value:
        raise LesionPasteError(
            "no normal images given: pass --normals DIR or a label CSV, or set LP_NORMALS"
        )
    path = Path(value)
    if path.is_file():
        return read_label_file(
            path,
            _images_beside(path, images),
            set(grades) if grades else {0},
            quality or ("good" if is_eyeq(path) else None),
        )
    if grades or quality:
        raise LesionPasteError("--grade and --quality filter a label file; give --normals FILE.csv")
    if is_mosmed_root(path):
        return normal_slices(path, per_study, exclude)
    return list_folder(path), []


def _images_beside(labels: Path, images: str | None) -> Path:
    """The image folder of a label file: --images, else images/ beside it, else its folder."""
    if images:
        return Path(images)
    return labels.parent / "images" if (labels.parent / "images").is_dir() else labels.parent


def normals_inputs(value: str | None, images: str | None) -> list[tuple[str, Path]]:
    """The files and folders the normal images are read from (never to be written to):
    ``value`` is the resolved --normals (option, $LP_NORMALS or lesionpaste.toml).

    Args:
        value: the resolved ``--normals`` value, or None.
        images: the ``--images`` value, or None.

    Returns:
        ``(what, path)`` for each input (for ``check_output``); empty for no ``value``.
    """
    if not value:
        return []
    path = Path(value)
    if path.is_file():
        return [("label file", path), ("image folder", _images_beside(path, images))]
    return [("folder of normal images", path)]


def refuse_volumes_for_fundus(items: list[NormalImage], bank) -> None:
    """Refuse CT slices (from a MosMed folder) as normals for a fundus bank.

    Args:
        items: the normal images.
        bank: the lesion bank.

    Raises:
        LesionPasteError: a fundus bank and normals that are slices of CT volumes.
    """
    if bank.meta.modality == "fundus" and any(item.slice is not None for item in items):
        raise LesionPasteError(
            "these normals are CT slices (a MosMed folder); this is a fundus bank"
        )


def select(items: list[NormalImage], missing: list[dict], run: dict) -> list[NormalImage]:
    """The images a run uses: --strict on listed-but-missing ones, --split, then --limit.

    Args:
        items: the normal images found.
        missing: records of listed images that are missing.
        run: the run's options (``strict``, ``split_part``, ``split_fraction``,
            ``split_seed``, ``group_pattern``, ``limit``, and ``diseased``: the patients
            of the label file with an abnormal image, kept out of ``--split train``).

    Returns:
        The images to use, in order.

    Raises:
        LesionPasteError: missing images with ``--strict``, a split fraction outside (0, 1),
            a split part with no image, or a limit below 1.
    """
    _refuse_missing_if_strict(missing, run["strict"])
    part = _split(
        items,
        run["split_part"],
        run["split_fraction"],
        run["split_seed"],
        run["group_pattern"],
        run.get("diseased", frozenset()),
    )
    return _limited(part, run["limit"])


def _refuse_missing_if_strict(missing: list[dict], strict: bool) -> None:
    if strict and missing:
        raise LesionPasteError(
            f"{missing[0]['id']}: {missing[0]['reason']} ({len(missing)} such image(s); --strict)"
        )


def _split(items, part, fraction, seed, pattern, diseased):
    if part is None:
        return items
    if not 0 < fraction < 1:
        raise LesionPasteError("--split-fraction must lie between 0 and 1")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise LesionPasteError(f"--group-pattern {pattern!r}: not a regular expression ({exc})")
    chosen = split(items, part, fraction, seed, pattern, diseased)
    if not chosen:
        raise LesionPasteError(f"--split {part}: no image falls in this part")
    return chosen


def _limited(items: list[NormalImage], limit: int | None) -> list[NormalImage]:
    if limit is not None and limit < 1:
        raise LesionPasteError("--limit must be a positive number of images")
    return items[:limit] if limit else items
