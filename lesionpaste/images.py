"""Image files: safe reading (sizes from headers, the pixel limit, truncation, decoding), the
readers of colour images, grey images and masks, and the PNG writers.

A PNG or JPEG of a few kilobytes can claim a billion pixels (a decompression bomb); every
reader of image bytes, whether the user's own images or files received in a dataset, asks
``refuse_oversized`` first.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import cv2
import numpy as np

from lesionpaste.digests import sha256_bytes
from lesionpaste.errors import LesionPasteError
from lesionpaste.file_names import PNG_SOFTWARE
from lesionpaste.files import atomic_output, open_regular, read_regular_file

#: Images whose header claims more pixels than this are refused before decoding (a
#: decompression bomb would otherwise allocate gigabytes); ``$LP_MAX_PIXELS`` changes it.
DEFAULT_MAX_PIXELS = 250_000_000

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: the files taken as images in a folder of images (DICOM slices among them)
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".tif", ".tiff", ".dcm")


def max_pixels() -> int:
    """The pixel limit in force (``$LP_MAX_PIXELS``, else ``DEFAULT_MAX_PIXELS``).

    Returns:
        The most pixels (width times height) an image header may claim.
    """
    value = os.environ.get("LP_MAX_PIXELS", "")
    return int(value) if value.isdigit() else DEFAULT_MAX_PIXELS


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a JPEG's frame header, without decoding; None if not found.

    Args:
        data: the file's bytes (its markers up to the frame header are enough).

    Returns:
        ``(width, height)`` in pixels, or None when ``data`` is not a JPEG or has no frame
        header.
    """
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return width, height
        i += 2 + length
    return None


def header_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` read from a JPEG or PNG header without decoding, else None.

    Args:
        data: the file's bytes (the header is enough).

    Returns:
        ``(width, height)`` in pixels, or None for another format or no header found.
    """
    if data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return jpeg_size(data)


def refuse_oversized(data: bytes, where: object) -> None:
    """Raise ``LesionPasteError`` when the header of ``data`` claims more than ``max_pixels()``.

    Args:
        data: the image file's bytes (the header is enough).
        where: the file, named in the message.

    Raises:
        LesionPasteError: the header claims more pixels than ``max_pixels()``.
    """
    size = header_size(data)
    if size is not None and size[0] * size[1] > max_pixels():
        raise LesionPasteError(
            f"{where}: {size[0]}x{size[1]} pixels is over the limit of {max_pixels():,} "
            "(set LP_MAX_PIXELS to allow larger images)"
        )


def read_bytes(path: Path) -> bytes:
    """Read a whole image file, turning a missing, unreadable, empty or non-regular file
    (a directory, a FIFO, a device) into a clear error.

    Args:
        path: the image file.

    Returns:
        The file's bytes (never empty).

    Raises:
        LesionPasteError: missing, unreadable, empty or not a regular file.
    """
    data = read_regular_file(path, what="image file")
    if not data:
        raise LesionPasteError(f"{path}: the file is empty (0 bytes)")
    return data


def _jpeg_is_complete(data: bytes) -> bool:
    # Entropy-coded data never holds FF D9 (FF is always stuffed), so a complete JPEG has an
    # end-of-image marker after its last start-of-scan marker; a truncated one does not.
    last_sos = data.rfind(b"\xff\xda")
    return last_sos >= 0 and data.find(b"\xff\xd9", last_sos) >= 0


def _png_is_complete(data: bytes) -> bool:
    return data.rstrip(b"\x00").endswith(b"IEND\xaeB`\x82")


def check_complete(data: bytes, path: Path) -> None:
    """Refuse a JPEG or PNG whose bytes stop before the end of the image.

    Decoders fill the missing part of a truncated JPEG with grey and only print a warning;
    a lesion bank cut from such an image would be silently wrong.

    Args:
        data: the file's bytes (other formats pass unchecked).
        path: the file, named in the message.

    Raises:
        LesionPasteError: a JPEG without its end-of-image marker or a PNG without ``IEND``.
    """
    if data[:3] == b"\xff\xd8\xff" and not _jpeg_is_complete(data):
        raise LesionPasteError(f"{path}: truncated JPEG (no end-of-image marker); re-copy the file")
    if data[:8] == b"\x89PNG\r\n\x1a\n" and not _png_is_complete(data):
        raise LesionPasteError(f"{path}: truncated PNG (no IEND chunk); re-copy the file")


def decode(data: bytes, path: Path, flags: int) -> np.ndarray:
    """Decode image bytes with OpenCV, refusing truncated, unreadable or oversized images.

    Args:
        data: the file's bytes.
        path: the file, named in messages.
        flags: ``cv2.IMREAD_*``.

    Returns:
        The image as OpenCV decodes it: ``(H, W)`` or ``(H, W, C)`` BGR(A), ``uint8`` or
        ``uint16``.

    Raises:
        LesionPasteError: oversized (``refuse_oversized``), truncated or not decodable.
    """
    refuse_oversized(data, path)
    check_complete(data, path)
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # errors are ours to tell
    buf = np.frombuffer(data, np.uint8)
    try:
        image = cv2.imdecode(buf, flags)
    except cv2.error:
        image = None
    if image is None:
        raise LesionPasteError(
            f"{path}: not a readable image (PNG, JPEG or TIFF expected; is the file corrupt?)"
        )
    return image


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return len(body).to_bytes(4, "big") + kind + body + crc.to_bytes(4, "big")


_MARK = _chunk(b"tEXt", b"Software\0" + PNG_SOFTWARE)


def mark_png(data: bytes) -> bytes:
    """PNG bytes with a ``tEXt`` chunk saying LesionPaste wrote them (after ``IHDR``), so that
    ``--overwrite`` can tell the tools' pictures from anyone else's.

    Args:
        data: PNG file bytes.

    Returns:
        The same PNG with the ``Software: LesionPaste`` ``tEXt`` chunk inserted.

    Raises:
        ValueError: ``data`` is not PNG bytes (a programming error, not user input).
    """
    if data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise ValueError("not PNG bytes")
    end_of_ihdr = 8 + 12 + int.from_bytes(data[8:12], "big")
    return data[:end_of_ihdr] + _MARK + data[end_of_ihdr:]


def is_marked_png(path: Path) -> bool:
    """True when ``path`` is a PNG file that ``mark_png`` marked (its first chunks are read).

    Args:
        path: the file (a missing or non-regular one is not marked).

    Returns:
        Whether the LesionPaste mark comes before the first ``IDAT`` chunk.
    """
    try:
        with open_regular(path) as fh:
            head = fh.read(1 << 16)
    except LesionPasteError:
        return False
    if head[:8] != PNG_SIGNATURE:
        return False
    return _MARK in head[: head.find(b"IDAT") if b"IDAT" in head else len(head)]


def encode_png(image: np.ndarray, mark: bool = False, what: str = "an image") -> bytes:
    """Lossless PNG bytes of an RGB ``(H, W, 3)``, grey ``(H, W)`` / ``(H, W, 1)`` or boolean
    mask image (a mask as 0/255). ``mark``: tag it as LesionPaste's own (``mark_png``).

    Args:
        image: ``(H, W, 3)`` RGB, ``(H, W)`` / ``(H, W, 1)`` grey (``uint8`` or ``uint16``), or
            ``(H, W)`` boolean.
        mark: tag the PNG as LesionPaste's own.
        what: what the image is, for the message.

    Returns:
        The PNG file's bytes.

    Raises:
        LesionPasteError: OpenCV could not encode it.
    """
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise LesionPasteError(f"could not encode {what} as PNG")
    return mark_png(buf.tobytes()) if mark else buf.tobytes()


def write_png(path: Path, rgb: np.ndarray, overwrite: bool = False, what: str = "the picture"):
    """Write an RGB ``uint8`` picture as a PNG file marked as LesionPaste's, atomically,
    refusing to replace an existing file unless ``overwrite``.

    Args:
        path: the ``*.png`` file to write.
        rgb: ``(H, W, 3)`` RGB ``uint8`` picture (grey or boolean images are accepted too).
        overwrite: replace an existing file.
        what: what the picture is, for messages.

    Raises:
        LesionPasteError: ``path`` does not end in ``.png``, is a directory, or exists
            without ``overwrite``, or the picture cannot be encoded.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise LesionPasteError(f"{path}: {what} is written as PNG; name it *.png")
    try:
        data = encode_png(rgb, mark=True, what=what)
    except LesionPasteError as exc:
        raise LesionPasteError(f"{path}: {exc}") from None
    with atomic_output(path, overwrite) as tmp:
        tmp.write_bytes(data)


_REDUCED = {
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


def read_rgb_at_least(path: Path, min_side: int) -> tuple[np.ndarray, str]:
    """Read a colour image, letting the JPEG decoder scale it down by 2, 4 or 8 when its
    shorter side stays at least ``min_side`` (DCT-domain scaling: a fraction of the cost of a
    full decode, and a proper low-pass). Other formats, or ``min_side <= 0``, read in full.

    Args:
        path: the image file.
        min_side: the shortest shorter side, in pixels, the reduced image may have.

    Returns:
        ``(rgb, sha256)``: the ``(H, W, 3)`` RGB ``uint8`` image (16-bit files scaled to 8
        bits) and the file's hex sha256.

    Raises:
        LesionPasteError: the file is missing, empty, not regular, oversized, truncated,
            unreadable, or of an unsupported pixel type.
    """
    rgb, sha, _, _ = read_rgb_reduced(path, min_side)
    return rgb, sha


def read_rgb_reduced(path: Path, min_side: int) -> tuple[np.ndarray, str, int, tuple[int, int]]:
    """``read_rgb_at_least``, saying also how much the decoder reduced the image: what a mask
    of the full-resolution file needs to be prepared like the image.

    Args:
        path: the image file.
        min_side: the shortest shorter side, in pixels, the reduced image may have.

    Returns:
        ``(rgb, sha256, factor, full_shape)``: the image as ``read_rgb_at_least`` gives it, the
        file's hex sha256, the reduction (1, 2, 4 or 8; pixel ``i`` of the image covers pixels
        ``factor*i`` to ``factor*i + factor - 1`` of the file) and the file's ``(H, W)``.

    Raises:
        LesionPasteError: the file is missing, empty, not regular, oversized, truncated,
            unreadable, or of an unsupported pixel type.
    """
    data = read_bytes(path)
    size = jpeg_size(data) if min_side > 0 else None
    factor = 1
    if size is not None:
        while factor < 8 and min(size) // (factor * 2) >= min_side:
            factor *= 2
    if factor == 1:
        rgb = _rgb(decode(data, path, cv2.IMREAD_UNCHANGED), path)
        return rgb, sha256_bytes(data), 1, (rgb.shape[0], rgb.shape[1])
    rgb = _rgb(decode(data, path, _REDUCED[factor]), path)
    return rgb, sha256_bytes(data), factor, (size[1], size[0])


def _rgb(image: np.ndarray, path: Path) -> np.ndarray:
    image = to_uint8(image, path)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)


def to_uint8(image: np.ndarray, path: Path) -> np.ndarray:
    """Scale a 16-bit image to 8 bits; pass 8-bit images through.

    Args:
        image: ``uint8`` or ``uint16`` image, any shape.
        path: the file it came from, named in the message.

    Returns:
        The image as ``uint8`` (16-bit values shifted right by 8), same shape.

    Raises:
        LesionPasteError: another dtype.
    """
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    raise LesionPasteError(f"{path}: unsupported pixel type {image.dtype} (8 or 16 bit expected)")


def read_rgb(path: Path) -> tuple[np.ndarray, str]:
    """Read a colour image as an ``(H, W, 3)`` RGB ``uint8`` array, with the file's sha256.

    Args:
        path: the image file (a grey one is expanded to RGB).

    Returns:
        ``(rgb, sha256)``: the ``(H, W, 3)`` ``uint8`` image and the file's hex sha256.

    Raises:
        LesionPasteError: the file is missing, empty, not regular, oversized, truncated,
            unreadable, or of an unsupported pixel type.
    """
    return read_rgb_at_least(path, 0)


def is_grey(image: np.ndarray) -> bool:
    """Whether a three-channel image's channels are equal everywhere (a grey picture stored in
    colour).

    Args:
        image: ``(H, W, 3)`` image.

    Returns:
        True when all three channels hold the same values.
    """
    return bool(
        np.array_equal(image[:, :, 0], image[:, :, 1])
        and np.array_equal(image[:, :, 1], image[:, :, 2])
    )


def read_gray(
    path: Path, eight_bit_only: bool = False, refuse_colour: bool = False
) -> tuple[np.ndarray, str]:
    """Read an image as an ``(H, W)`` single-channel ``uint8`` array, with its sha256.

    ``eight_bit_only`` refuses 16-bit files instead of scaling them (a 16-bit CT export holds
    HU-like values that scaling would turn into a near-black picture).

    Args:
        path: the image file (a colour one is converted to grey).
        eight_bit_only: refuse images that are not 8-bit.
        refuse_colour: refuse an image whose colour channels differ (a colour photograph
            where a grey slice is expected).

    Returns:
        ``(gray, sha256)``: the ``(H, W)`` ``uint8`` image and the file's hex sha256.

    Raises:
        LesionPasteError: the file is missing, empty, not regular, oversized, truncated or
            unreadable, 16-bit with ``eight_bit_only``, colour with ``refuse_colour``, or of an
            unsupported pixel type.
    """
    data = read_bytes(path)
    image = decode(data, path, cv2.IMREAD_UNCHANGED)
    if eight_bit_only and image.dtype != np.uint8:
        raise LesionPasteError(
            f"{path}: a {image.dtype.itemsize * 8}-bit slice; CT slices are taken in HU from "
            "DICOM or NIfTI, or as 8-bit exports already windowed"
        )
    image = to_uint8(image, path)
    if refuse_colour and image.ndim == 3 and image.shape[2] >= 3 and not is_grey(image[:, :, :3]):
        raise LesionPasteError(f"{path}: a colour image, where a grey CT slice is expected")
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        image = cv2.cvtColor(image, code)
    return image, sha256_bytes(data)


def read_mask(path: Path) -> tuple[np.ndarray, str]:
    """Read a lesion mask as an ``(H, W)`` boolean array (any non-zero pixel is lesion).

    Handles the official IDRiD form (1-bit palette TIFF, lesion = palette index 1, shown red),
    8-bit palette TIFFs, 0/1 or 0/255 PNGs in 8 or 16 bits, and colour masks (a pixel is
    lesion when any colour channel is non-zero; with an alpha channel, also only where it is
    opaque). The mask is read at full bit depth: a 16-bit 0/1 mask would otherwise scale to 0.

    Args:
        path: the mask file.

    Returns:
        ``(mask, sha256)``: the ``(H, W)`` boolean mask and the file's hex sha256.

    Raises:
        LesionPasteError: the file is missing, empty, not regular, oversized, truncated or
            unreadable.
    """
    data = read_bytes(path)
    mask = decode(data, path, cv2.IMREAD_UNCHANGED)
    if mask.ndim == 2:
        return mask > 0, sha256_bytes(data)
    channels = cv2.split(mask)
    colour = channels[0]
    for channel in channels[1:3]:  # lesion where any colour channel is non-zero
        colour = cv2.max(colour, channel)
    lesion = colour > 0
    if mask.shape[2] == 4:
        lesion &= mask[:, :, 3] > 0
    return lesion, sha256_bytes(data)
