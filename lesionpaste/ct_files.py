"""CT files: single DICOM slices and NIfTI volumes, read in Hounsfield units with the file's
sha256 (both need the ``ct`` extra: pydicom, nibabel)."""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import numpy as np

from lesionpaste.digests import sha256_bytes, sha256_file
from lesionpaste.errors import LesionPasteError
from lesionpaste.images import read_bytes

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_dicom(path: Path) -> bool:
    """True when the file carries the DICOM preamble magic (or a .dcm suffix).

    Args:
        path: the file (an unreadable one is not DICOM).

    Returns:
        Whether it is taken as a DICOM file.
    """
    path = Path(path)
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


def read_dicom_hu(path: Path) -> tuple[np.ndarray, str, tuple[float, float] | None]:
    """Read a single-frame CT DICOM slice in Hounsfield units (float32).

    Needs the ``ct`` extra (pydicom).

    Args:
        path: the DICOM file.

    Returns:
        ``(hu, sha256, spacing)``: the ``(H, W)`` ``float32`` slice in HU (rescale slope and
        intercept applied), the file's hex sha256, and the pixel spacing ``(row_mm, col_mm)``
        when the file gives one, else None.

    Raises:
        LesionPasteError: pydicom is not installed, the file is missing, empty, unreadable or
            not a DICOM image, or it is not one 2-D slice.
    """
    try:
        import pydicom
    except ImportError:
        raise LesionPasteError(
            "reading DICOM needs pydicom: pip install 'lesionpaste[ct]'"
        ) from None
    data = read_bytes(path)
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        pixels = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for corrupt files
        raise LesionPasteError(
            f"{path}: not a readable DICOM image ({type(exc).__name__})"
        ) from None
    if pixels.ndim != 2:
        raise LesionPasteError(f"{path}: expected one 2-D slice, found shape {pixels.shape}")
    slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    hu = pixels.astype(np.float32) * slope + intercept
    spacing = getattr(ds, "PixelSpacing", None)
    spacing_mm = (float(spacing[0]), float(spacing[1])) if spacing is not None else None
    return hu, sha256_bytes(data), spacing_mm


def load_nifti(path: Path):
    """Read a (gzipped) NIfTI file into a canonical (RAS) image, with the file's sha256.

    Args:
        path: the ``.nii`` or ``.nii.gz`` file.

    Returns:
        ``(image, sha256)``: the nibabel ``Nifti1Image`` reoriented to RAS, and the file's hex
        sha256.

    Raises:
        LesionPasteError: nibabel is not installed, the file is missing, empty, unreadable or
            not NIfTI, or it is not a 3-D volume.
    """
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
    return image, sha256_bytes(data)


def axial(volume: np.ndarray, z: int) -> np.ndarray:
    """Axial slice ``z`` of a RAS volume as displayed: anterior up, patient's right on the left.

    Args:
        volume: ``(X, Y, Z)`` RAS-ordered volume, any dtype.
        z: the slice index along the last axis.

    Returns:
        ``(Y, X)`` C-contiguous slice, of the volume's dtype.
    """
    return np.ascontiguousarray(np.flipud(volume[:, :, z].T))


def is_nifti(path: Path) -> bool:
    """Whether ``path`` names a NIfTI volume (``.nii`` or ``.nii.gz``).

    Args:
        path: the file (only its name is looked at).

    Returns:
        Whether its name ends in ``.nii`` or ``.nii.gz`` (any case).
    """
    return Path(path).name.lower().endswith(NIFTI_SUFFIXES)


_VOLUME: dict[Path, tuple[np.ndarray, list[float]]] = {}


def read_axial_hu(path: Path, z: int) -> tuple[np.ndarray, list[float]]:
    """Axial slice ``z`` (canonical orientation) in HU, with its pixel spacing (row, column).

    The last volume read is kept, so the consecutive slices of one study decode it once.

    Args:
        path: the NIfTI volume.
        z: the axial slice index.

    Returns:
        ``(hu, spacing)``: the ``(Y, X)`` ``float32`` slice in HU and ``[row_mm, col_mm]``.

    Raises:
        LesionPasteError: an unreadable volume, or no such slice.
    """
    path = Path(path)
    if path not in _VOLUME:
        image, _ = load_nifti(path)
        zooms = image.header.get_zooms()
        _VOLUME.clear()
        _VOLUME[path] = (image.get_fdata(dtype=np.float32), [float(zooms[1]), float(zooms[0])])
    volume, spacing = _VOLUME[path]
    if not 0 <= z < volume.shape[2]:
        raise LesionPasteError(f"{path}: no axial slice {z} (the volume has {volume.shape[2]})")
    return axial(volume, z), spacing


def nifti_sha256(path: Path) -> str:
    """The sha256 of a NIfTI volume's file, computed once for the consecutive slices of one
    volume (the last volume's digest is kept, as ``read_axial_hu`` keeps its voxels).

    Args:
        path: the NIfTI file.

    Returns:
        The file's hex sha256.

    Raises:
        LesionPasteError: the file is missing, unreadable or not regular.
    """
    key = (str(path), os.stat(path).st_mtime_ns) if os.path.exists(path) else (str(path), 0)
    if key not in _DIGEST:
        _DIGEST.clear()
        _DIGEST[key] = sha256_file(Path(path))
    return _DIGEST[key]


_DIGEST: dict[tuple[str, int], str] = {}
