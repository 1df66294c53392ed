"""Axial slices of CT volumes in MosMed's layout, as normal images or a labelled evaluation set.

MosMed COVID19_1110: ``studies/CT-0/study_NNNN.nii.gz`` (no findings) to ``CT-4``, and
``masks/study_NNNN_mask.nii.gz`` for the annotated part of CT-1. Following the paper's protocol,
normal slices come from CT-0 studies (a few per study, spread over the central part of the
volume, where the lungs are) and abnormal slices are those with a lesion in an annotated study.
Slice indices are those of the volume in canonical (RAS) orientation, as the bank uses.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np

from lesionpaste.ct_files import load_nifti
from lesionpaste.errors import LesionPasteError
from lesionpaste.mosmed_files import locate
from lesionpaste.synth.inputs.normals import NormalImage

NORMAL_CATEGORY = "CT-0"


def is_mosmed_root(path: Path) -> bool:
    """True for a folder in MosMed's layout (``studies/CT-*/``).

    Args:
        path: the folder.

    Returns:
        Whether it has a ``studies`` folder holding a ``CT-*`` folder.
    """
    studies = Path(path) / "studies"
    return studies.is_dir() and any(p.is_dir() for p in studies.glob("CT-*"))


def _study_id(path: Path) -> str:
    name = path.name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else path.stem


def axial_depth(path: Path) -> int:
    """Number of axial slices of a NIfTI volume in canonical orientation, from its header
    alone (the voxels are not decompressed).

    Args:
        path: the ``.nii`` or ``.nii.gz`` file.

    Returns:
        The number of slices along the volume's axial (superior-inferior) axis.

    Raises:
        LesionPasteError: an unreadable header, or not a 3-D volume.
    """
    import nibabel as nib

    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
        opener = gzip.open if head == b"\x1f\x8b" else open
        with opener(path, "rb") as fh:
            raw = fh.read(352)
        header = nib.Nifti1Header.from_fileobj(io.BytesIO(raw))
        shape = header.get_data_shape()
        if len(shape) != 3:
            raise LesionPasteError(f"{path}: expected a 3-D volume, found shape {shape}")
        orientation = nib.io_orientation(header.get_best_affine())
        return int(shape[int(np.flatnonzero(orientation[:, 0] == 2)[0])])
    except LesionPasteError:
        raise
    except Exception as exc:  # noqa: BLE001 - gzip/nibabel raise many types for damaged files
        raise LesionPasteError(
            f"{path}: not a readable NIfTI header ({type(exc).__name__})"
        ) from None


def central_slices(depth: int, count: int) -> list[int]:
    """``count`` slice indices spread evenly over the central 60% of ``depth`` slices.

    Args:
        depth: the volume's number of axial slices.
        count: how many slices wanted (at most ``depth``).

    Returns:
        The slice indices, sorted and unique.
    """
    count = min(count, depth)
    positions = 0.2 + 0.6 * (np.arange(count) + 0.5) / max(count, 1)
    return sorted({int(np.floor(p * depth)) for p in positions})


def normal_slices(
    root: Path, per_study: int, exclude: set[str] = frozenset()
) -> tuple[list[NormalImage], list[dict]]:
    """``per_study`` central slices of every CT-0 study (label 0), ids ``study_NNNN_zZZZ``;
    and the studies whose volume could not be read (id, path, reason).

    Args:
        root: the MosMed data root.
        per_study: slices taken from each study.
        exclude: study ids to leave out (the bank's sources).

    Returns:
        ``(slices, unreadable)``: the normal slices, and one record per unreadable study.

    Raises:
        LesionPasteError: ``per_study`` below 1, or no CT-0 study.
    """
    if per_study < 1:
        raise LesionPasteError("--per-study must be at least 1")
    volumes = sorted((Path(root) / "studies" / NORMAL_CATEGORY).glob("*.nii*"))
    if not volumes:
        raise LesionPasteError(f"{root}: no studies/{NORMAL_CATEGORY}/*.nii.gz (normal studies)")
    items, unreadable = [], []
    for path in volumes:
        study = _study_id(path)
        if study in exclude:
            continue
        try:
            depth = axial_depth(path)
        except LesionPasteError as exc:
            unreadable.append(
                {"id": study, "status": "skipped", "path": str(path), "reason": str(exc)}
            )
            continue
        for z in central_slices(depth, per_study):
            items.append(NormalImage(f"{study}_z{z:03d}", path, 0, z))
    return items, unreadable


def lesion_slices(root: Path, exclude: set[str] = frozenset()) -> list[NormalImage]:
    """Every slice with a lesion in every annotated study (label 1), ids ``study_NNNN_zZZZ``.

    Args:
        root: the MosMed data root.
        exclude: study ids to leave out (the bank's sources).

    Returns:
        One item per slice with a lesion, in study then slice order.

    Raises:
        LesionPasteError: a mask whose study volume is missing, or an unreadable mask.
    """
    items = []
    for mask_path in sorted((Path(root) / "masks").glob("*_mask.nii*")):
        study = _study_id(mask_path)[: -len("_mask")]
        if study in exclude:
            continue
        volume_path, _ = locate(Path(root), study)
        mask, _ = load_nifti(mask_path)
        lesion = np.asarray(mask.dataobj) > 0
        for z in np.flatnonzero(lesion.any(axis=(0, 1))):
            items.append(NormalImage(f"{study}_z{int(z):03d}", volume_path, 1, int(z)))
    return items


def evaluation_slices(
    root: Path, per_study: int, exclude: set[str] = frozenset()
) -> tuple[list[NormalImage], list[dict]]:
    """The paper's MosMed evaluation set: CT-0 slices (0) and annotated lesion slices (1),
    and the unreadable normal studies. Studies in ``exclude`` (the bank's sources) are left
    out.

    Args:
        root: the MosMed data root.
        per_study: normal slices taken from each CT-0 study.
        exclude: study ids to leave out.

    Returns:
        ``(items, unreadable)``: normal then lesion slices, and the unreadable normal studies.

    Raises:
        LesionPasteError: no CT-0 study, ``per_study`` below 1, no annotated study with a
            lesion, or an unreadable mask.
    """
    normals, unreadable = normal_slices(root, per_study, exclude)
    items = normals + lesion_slices(root, exclude)
    if not any(item.label == 1 for item in items):
        raise LesionPasteError(f"{root}: no annotated study (masks/*_mask.nii.gz) with a lesion")
    return items, unreadable
