"""MosMed (COVID19_1110): axial slices with lesions from a study's NIfTI volume and mask."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lesionpaste.bank_builder.annotated import AnnotatedImage
from lesionpaste.ct_files import axial, load_nifti
from lesionpaste.errors import LesionPasteError
from lesionpaste.mosmed_files import locate
from lesionpaste.recipes import WindowRecipe, window_hu

LESION_TYPE = "COVID"
LICENCE = "CC BY-NC-ND 3.0"
ATTRIBUTION = (
    "MosMedData: Morozov et al., Chest CT scans with COVID-19 related findings, "
    "arXiv:2005.06465, 2020"
)


def parse_slices(spec: str | None, available: list[int], study_id: str) -> list[int]:
    """``None`` -> every slice with a lesion; ``"12,14-16"`` -> those slices, each checked.

    Args:
        spec: the ``--slices`` value, or None.
        available: the axial slice indices that hold a lesion.
        study_id: the study, named in messages.

    Returns:
        The slice indices to bank (``available`` itself for None, else sorted and unique).

    Raises:
        LesionPasteError: a malformed ``spec``, or a chosen slice without lesion.
    """
    if spec is None:
        return available
    chosen: list[int] = []
    for part in spec.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise LesionPasteError(f"--slices {spec!r}: expected numbers and ranges like 12,14-16")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        chosen.extend(range(lo, hi + 1))
    missing = [z for z in chosen if z not in available]
    if missing:
        raise LesionPasteError(
            f"{study_id}: slice(s) {', '.join(map(str, missing))} have no lesion "
            f"(slices with lesions: {', '.join(map(str, available))})"
        )
    return sorted(set(chosen))


def load_study(
    root: Path, study_id: str, recipe: WindowRecipe, slices: str | None = None
) -> Iterator[AnnotatedImage]:
    """Yield one annotated slice per axial slice with lesions (or per chosen slice).

    Args:
        root: the MosMed data root.
        study_id: a canonical study id, e.g. ``study_0255``.
        recipe: the CT window the slices are mapped through.
        slices: the ``--slices`` value (``"12,14-16"``), or None for every slice with lesions.

    Yields:
        One annotated slice per chosen axial slice: ``(H, W, 1)`` ``uint8`` windowed image,
        the ``COVID`` boolean mask, pixel spacing and provenance.

    Raises:
        LesionPasteError: the study, its mask or its volume cannot be found or read, the
            shapes differ, the mask is empty, or ``slices`` is malformed or names slices
            without lesion.
    """
    volume_path, mask_path = locate(root, study_id)
    volume_img, volume_sha = load_nifti(volume_path)
    mask_img, mask_sha = load_nifti(mask_path)
    if mask_img.shape != volume_img.shape:
        raise LesionPasteError(
            f"{mask_path}: mask is {'x'.join(map(str, mask_img.shape))} but the volume "
            f"{volume_path.name} is {'x'.join(map(str, volume_img.shape))}; they must match"
        )
    hu = volume_img.get_fdata(dtype=np.float32)
    lesion = np.asarray(mask_img.dataobj) > 0
    available = [int(z) for z in np.flatnonzero(lesion.any(axis=(0, 1)))]
    if not available:
        raise LesionPasteError(f"{mask_path}: every lesion mask slice is empty (no lesion to bank)")
    zooms = volume_img.header.get_zooms()
    files = [
        {"role": "image", "path": volume_path.relative_to(root).as_posix(), "sha256": volume_sha},
        {
            "role": f"mask:{LESION_TYPE}",
            "path": mask_path.relative_to(root).as_posix(),
            "sha256": mask_sha,
        },
    ]
    for z in parse_slices(slices, available, study_id):
        yield AnnotatedImage(
            source_id=f"{study_id}:z{z:03d}",
            image=window_hu(axial(hu, z), recipe)[:, :, None],
            masks={LESION_TYPE: axial(lesion, z)},
            files=files,
            pixel_spacing=[float(zooms[1]), float(zooms[0])],
            licence=LICENCE,
            attribution=ATTRIBUTION,
        )
