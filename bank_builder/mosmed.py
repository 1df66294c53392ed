"""MosMed (COVID19_1110): axial slices with lesions from a study's NIfTI volume and mask."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bank_builder.annotated import AnnotatedImage
from bank_builder.image_files import sha256_hex
from bank_builder.preprocess import WindowRecipe, window_hu
from lesionpaste.errors import LesionPasteError
from lesionpaste.images import read_bytes

LESION_TYPE = "COVID"
LICENCE = "CC BY-NC-ND 3.0"
ATTRIBUTION = (
    "MosMedData: Morozov et al., Chest CT scans with COVID-19 related findings, "
    "arXiv:2005.06465, 2020"
)


def normalise_id(text: str) -> str:
    """``study_0255``, ``STUDY_255`` or ``255`` -> ``study_0255``."""
    m = re.fullmatch(r"(?:study[_-]?)?0*(\d{1,4})", text.strip(), flags=re.IGNORECASE)
    if not m:
        raise LesionPasteError(f"{text!r} is not a MosMed study id (expected e.g. study_0255)")
    return f"study_{int(m.group(1)):04d}"


def locate(root: Path, study_id: str) -> tuple[Path, Path]:
    """Paths of ``studies/CT-*/study_NNNN.nii.gz`` and ``masks/study_NNNN_mask.nii.gz``."""
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


def load_nifti(path: Path):
    """Read a (gzipped) NIfTI file into a canonical (RAS) image, with the file's sha256."""
    try:
        import nibabel as nib
    except ImportError:
        raise LesionPasteError(
            "reading NIfTI needs nibabel: pip install 'lesionpaste[ct]'"
        ) from None
    data = read_bytes(path)
    try:
        raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        image = nib.as_closest_canonical(nib.Nifti1Image.from_bytes(raw))
    except Exception as exc:  # noqa: BLE001 - gzip/nibabel raise many types for damaged files
        raise LesionPasteError(
            f"{path}: not a readable NIfTI file ({type(exc).__name__})"
        ) from None
    if len(image.shape) != 3:
        raise LesionPasteError(f"{path}: expected a 3-D volume, found shape {image.shape}")
    return image, sha256_hex(data)


def axial(volume: np.ndarray, z: int) -> np.ndarray:
    """Axial slice ``z`` of a RAS volume as displayed: anterior up, patient's right on the left."""
    return np.ascontiguousarray(np.flipud(volume[:, :, z].T))


def parse_slices(spec: str | None, available: list[int], study_id: str) -> list[int]:
    """``None`` -> every slice with a lesion; ``"12,14-16"`` -> those slices, each checked."""
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
    """Yield one annotated slice per axial slice with lesions (or per chosen slice)."""
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
