"""MosMed (COVID19_1110)'s published layout: study ids, and where a study's volume and its
lesion mask lie (``studies/CT-*/study_NNNN.nii.gz``, ``masks/study_NNNN_mask.nii.gz``)."""

from __future__ import annotations

import re
from pathlib import Path

from lesionpaste.errors import LesionPasteError


def normalise_id(text: str) -> str:
    """``study_0255``, ``STUDY_255`` or ``255`` -> ``study_0255``.

    Args:
        text: a study id as the user wrote it.

    Returns:
        The canonical id, ``study_NNNN``.

    Raises:
        LesionPasteError: ``text`` is not a MosMed study id.
    """
    m = re.fullmatch(r"(?:study[_-]?)?0*(\d{1,4})", text.strip(), flags=re.IGNORECASE)
    if not m:
        raise LesionPasteError(f"{text!r} is not a MosMed study id (expected e.g. study_0255)")
    return f"study_{int(m.group(1)):04d}"


def locate(root: Path, study_id: str) -> tuple[Path, Path]:
    """Paths of ``studies/CT-*/study_NNNN.nii.gz`` and ``masks/study_NNNN_mask.nii.gz``.

    Args:
        root: the MosMed data root.
        study_id: a canonical study id (``normalise_id``).

    Returns:
        ``(volume, mask)``: the study's CT volume and its lesion mask.

    Raises:
        LesionPasteError: no such study, or the study has no lesion mask.
    """
    volumes = sorted((root / "studies").glob(f"CT-*/{study_id}.nii.gz"))
    if not volumes:
        raise LesionPasteError(
            f"unknown MosMed study {study_id}: no studies/CT-*/{study_id}.nii.gz under {root}"
        )
    mask = root / "masks" / f"{study_id}_mask.nii.gz"
    if not mask.is_file():
        raise LesionPasteError(
            f"MosMed study {study_id} has no lesion mask (masks/{study_id}_mask.nii.gz under "
            f"{root}); only part of CT-1 is annotated"
        )
    return volumes[0], mask
