"""Reading images and masks from disk, with checks that turn bad files into clear errors.

Every reader returns RGB (or single-channel) ``uint8`` arrays together with the sha256 of the
bytes it decoded, so that a file is read once for both provenance and pixels.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from lesionpaste.errors import LesionPasteError
from lesionpaste.images import decode, jpeg_size, read_bytes


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of a byte string."""
    return hashlib.sha256(data).hexdigest()


_REDUCED = {
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


def read_rgb_at_least(path: Path, min_side: int) -> tuple[np.ndarray, str]:
    """Read a colour image, letting the JPEG decoder scale it down by 2, 4 or 8 when its
    shorter side stays at least ``min_side`` (DCT-domain scaling: a fraction of the cost of a
    full decode, and a proper low-pass). Other formats, or ``min_side <= 0``, read in full."""
    data = read_bytes(path)
    size = jpeg_size(data) if min_side > 0 else None
    factor = 1
    if size is not None:
        while factor < 8 and min(size) // (factor * 2) >= min_side:
            factor *= 2
    if factor == 1:
        return _rgb(decode(data, path, cv2.IMREAD_UNCHANGED), path), sha256_hex(data)
    return _rgb(decode(data, path, _REDUCED[factor]), path), sha256_hex(data)


def _rgb(image: np.ndarray, path: Path) -> np.ndarray:
    image = to_uint8(image, path)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)


def to_uint8(image: np.ndarray, path: Path) -> np.ndarray:
    """Scale a 16-bit image to 8 bits; pass 8-bit images through."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    raise LesionPasteError(f"{path}: unsupported pixel type {image.dtype} (8 or 16 bit expected)")


def read_rgb(path: Path) -> tuple[np.ndarray, str]:
    """Read a colour image as an ``(H, W, 3)`` RGB ``uint8`` array, with the file's sha256."""
    return read_rgb_at_least(path, 0)


def read_gray(path: Path, eight_bit_only: bool = False) -> tuple[np.ndarray, str]:
    """Read an image as an ``(H, W)`` single-channel ``uint8`` array, with its sha256.

    ``eight_bit_only`` refuses 16-bit files instead of scaling them (a 16-bit CT export holds
    HU-like values that scaling would turn into a near-black picture)."""
    data = read_bytes(path)
    image = decode(data, path, cv2.IMREAD_UNCHANGED)
    if eight_bit_only and image.dtype != np.uint8:
        raise LesionPasteError(
            f"{path}: a {image.dtype.itemsize * 8}-bit slice; CT slices are taken in HU from "
            "DICOM or NIfTI, or as 8-bit exports already windowed"
        )
    image = to_uint8(image, path)
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        image = cv2.cvtColor(image, code)
    return image, sha256_hex(data)


def read_mask(path: Path) -> tuple[np.ndarray, str]:
    """Read a lesion mask as an ``(H, W)`` boolean array (any non-zero pixel is lesion).

    Handles the official IDRiD form (1-bit palette TIFF, lesion = palette index 1, shown red),
    8-bit palette TIFFs, 0/1 or 0/255 PNGs in 8 or 16 bits, and colour masks (a pixel is
    lesion when any colour channel is non-zero; with an alpha channel, also only where it is
    opaque). The mask is read at full bit depth: a 16-bit 0/1 mask would otherwise scale to 0.
    """
    data = read_bytes(path)
    mask = decode(data, path, cv2.IMREAD_UNCHANGED)
    if mask.ndim == 2:
        return mask > 0, sha256_hex(data)
    lesion = (mask[:, :, :3] > 0).any(axis=2)
    if mask.shape[2] == 4:
        lesion &= mask[:, :, 3] > 0
    return lesion, sha256_hex(data)


def is_dicom(path: Path) -> bool:
    """True when the file carries the DICOM preamble magic (or a .dcm suffix)."""
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

    Returns the HU array, the file's sha256 and the pixel spacing ``(row_mm, col_mm)``
    when the file gives one. Needs the ``ct`` extra (pydicom).
    """
    try:
        import pydicom
    except ImportError:
        raise LesionPasteError(
            "reading DICOM needs pydicom: pip install 'lesionpaste[ct]'"
        ) from None
    import io

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
    return hu, sha256_hex(data), spacing_mm
