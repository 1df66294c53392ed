"""Images made ready for a detector: the recipe (Ben Graham's, a CT window, or none), a square
crop around a fundus photograph's disc, the output size, and the field of view where lesions may
land. The one preparation behind ``lp-synth`` (normals and evaluation sets) and ``lp-predict``
(new images, by a run's input contract). Pure functions of arrays, and ``prepare_file`` reading
one file (``synth.inputs.prepare_mask.prepare_mask`` prepares a mask of the same source through the same
``Geometry``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from lesionpaste.ct_files import (
    is_dicom,
    is_nifti,
    nifti_sha256,
    read_axial_hu,
    read_dicom_hu,
)
from lesionpaste.errors import LesionPasteError
from lesionpaste.images import is_grey, read_gray, read_rgb_reduced
from lesionpaste.recipes import (
    Disc,
    GrahamRecipe,
    NoRecipe,
    Recipe,
    WindowRecipe,
    disc_mask,
    estimate_fundus_disc,
    graham,
    recipe_from_dict,
    window_hu,
)


@dataclass(frozen=True)
class Geometry:
    """Where a prepared image's pixels come from: a window of its source (which may reach past
    the source's edges, where the image is padded) resized to the output.

    Attributes:
        source_shape: ``(H, W)`` of the source the window is in.
        top: the window's first row in the source (negative: padded above).
        left: the window's first column in the source (negative: padded left).
        height: the window's height in source pixels.
        width: the window's width in source pixels.
        out_shape: ``(H, W)`` of the prepared image.
    """

    source_shape: tuple[int, int]
    top: int
    left: int
    height: int
    width: int
    out_shape: tuple[int, int]

    def scaled(self, factor: int, source_shape: tuple[int, int]) -> Geometry:
        """The same window in a source ``factor`` times larger (the full-resolution file of
        an image the JPEG decoder read at ``1/factor`` scale): pixel ``i`` of the reduced
        image covers pixels ``factor*i .. factor*i + factor - 1`` of the file.

        Args:
            factor: the reduction the image was decoded at (1, 2, 4 or 8).
            source_shape: ``(H, W)`` of the full-resolution source.

        Returns:
            The geometry in the full-resolution source's pixels, with the same output.
        """
        f = int(factor)
        return Geometry(tuple(source_shape), self.top * f, self.left * f, self.height * f,
                        self.width * f, self.out_shape)  # fmt: skip


@dataclass
class Prepared:
    """A preprocessed normal image and what pasting needs to know about it.

    Attributes:
        image: ``(H, W, C)`` ``uint8``: the normal twin exactly as written.
        region: ``(H, W)`` boolean field of view; every pasted lesion lies wholly inside it.
        fov_radius: fundus radius in output pixels (fundus), else None.
        pixel_spacing: ``[row_mm, col_mm]`` of output pixels (CT), else None.
        geometry: where the image's pixels come from in its source (``prepare_mask`` gives a
            mask of the source the same crop and resize), or None when not known.
        fov_kept: True when the recipe blanked the image outside ``region`` (Graham's recipe
            on a fundus photograph): a mask is then cut to ``region`` too.
        source_sha256: the hex sha256 of the file it was read from (``prepare_file``), or
            None.
    """

    image: np.ndarray
    region: np.ndarray = field(repr=False)
    fov_radius: float | None = None
    pixel_spacing: list[float] | None = None
    geometry: Geometry | None = None
    fov_kept: bool = False
    source_sha256: str | None = None


def square_window(disc: Disc) -> tuple[int, int, int]:
    """The square of side ``2 * radius`` around a disc, in the disc's image's pixels.

    Args:
        disc: the field of view, in pixels.

    Returns:
        ``(top, left, side)``: the square's first row and column (negative where it leaves the
        image) and its side, ``max(1, round(2 * radius))``.
    """
    side = max(1, round(2 * disc.radius))
    return round(disc.cy - (side - 1) / 2), round(disc.cx - (side - 1) / 2), side


def crop_window(
    image: np.ndarray, top: int, left: int, height: int, width: int, fill: int = 0
) -> np.ndarray:
    """The ``height`` x ``width`` window of ``image`` at (``top``, ``left``), padded with
    ``fill`` where it leaves the image.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` image.
        top: the window's first row (may be negative).
        left: the window's first column (may be negative).
        height: the window's height.
        width: the window's width.
        fill: the value of padded pixels.

    Returns:
        ``(height, width)`` or ``(height, width, C)``, of ``image``'s dtype.
    """
    h, w = image.shape[:2]
    pad_top, pad_left = max(0, -top), max(0, -left)
    bottom, right = max(0, top + height - h), max(0, left + width - w)
    inner = image[max(0, top) : min(h, top + height), max(0, left) : min(w, left + width)]
    crop = cv2.copyMakeBorder(
        inner, pad_top, bottom, pad_left, right, cv2.BORDER_CONSTANT, value=(fill,) * 4
    )
    return crop.reshape(height, width, *image.shape[2:])


def crop_square(image: np.ndarray, disc: Disc, fill: int = 0) -> tuple[np.ndarray, Disc]:
    """The square of side ``2 * radius`` around the disc (padded with ``fill`` where it
    leaves the photograph), and the disc in the crop's coordinates.

    Args:
        image: ``(H, W, C)`` image.
        disc: its field of view, in pixels.
        fill: the value of padded pixels.

    Returns:
        ``(crop, disc)``: the ``(S, S, C)`` crop, ``S = max(1, round(2 * radius))``, and the
        disc in its coordinates.
    """
    y0, x0, side = square_window(disc)
    crop = crop_window(image, y0, x0, side, side, fill)
    return crop, Disc(disc.cx - x0, disc.cy - y0, disc.radius)


def fundus_geometry(shape: tuple[int, ...], disc: Disc, size: int) -> Geometry:
    """The geometry ``prepare_fundus`` gives a photograph: the square around its disc
    (``crop_square``), resized to ``size`` (``resize_square``).

    Args:
        shape: the photograph's shape, ``(H, W)`` or ``(H, W, C)``.
        disc: its field of view, in pixels.
        size: the output side in pixels; 0 or less keeps the crop's side.

    Returns:
        The geometry from the photograph's pixels to the prepared image's.
    """
    top, left, side = square_window(disc)
    out = size if size > 0 else side
    return Geometry((shape[0], shape[1]), top, left, side, side, (out, out))


def ct_geometry(shape: tuple[int, ...], size: int) -> Geometry:
    """The geometry ``prepare_ct`` gives a slice: all of it, resized to ``size`` square.

    Args:
        shape: the slice's shape, ``(H, W)``.
        size: the output side in pixels; 0 or less keeps the slice's size.

    Returns:
        The geometry from the slice's pixels to the prepared slice's.
    """
    h, w = shape[0], shape[1]
    return Geometry((h, w), 0, 0, h, w, (size, size) if size > 0 else (h, w))


def resize_square(image: np.ndarray, disc: Disc, size: int) -> tuple[np.ndarray, Disc]:
    """Resize a square crop to ``size`` pixels (area averaging when shrinking).

    Args:
        image: ``(S, S, C)`` square image.
        disc: its field of view, in pixels.
        size: the new side in pixels; 0 or less keeps the image as it is.

    Returns:
        ``(image, disc)``: the ``(size, size, C)`` image and the disc scaled with it.
    """
    side = image.shape[0]
    if size <= 0 or size == side:
        return image, disc
    k = size / side
    interpolation = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    out = cv2.resize(image, (size, size), interpolation=interpolation)
    out = out.reshape(size, size, image.shape[2])
    return out, Disc((disc.cx + 0.5) * k - 0.5, (disc.cy + 0.5) * k - 0.5, disc.radius * k)


def prepare_fundus(raw: np.ndarray, recipe: Recipe, size: int) -> Prepared:
    """Crop a fundus photograph to its disc, resize it to ``size`` (0 keeps the resolution)
    and apply the recipe.

    Graham's recipe is applied after resizing, as Graham's own code rescaled every image to a
    fixed radius first: its blur is relative to the radius, so the result equals applying it at
    native resolution up to resampling (tested), at a fraction of the cost.

    Args:
        raw: ``(H, W, 3)`` RGB ``uint8`` photograph.
        recipe: the recipe for the normals (Graham's, or none).
        size: the output side in pixels (0 keeps the resolution).

    Returns:
        The ``(size, size, 3)`` ``uint8`` image, its boolean field of view and its radius.

    Raises:
        LesionPasteError: a blank photograph (no disc found).
    """
    disc = estimate_fundus_disc(raw)
    geometry = fundus_geometry(raw.shape, disc, size)
    crop = crop_window(raw, geometry.top, geometry.left, geometry.height, geometry.width)
    disc = Disc(disc.cx - geometry.left, disc.cy - geometry.top, disc.radius)
    image, disc = resize_square(crop, disc, geometry.out_shape[0])
    graham_kept = isinstance(recipe, GrahamRecipe)
    fraction = 1.0
    if graham_kept:
        image = graham(image, disc, recipe)
        fraction = recipe.disc_fraction
    return Prepared(
        image=image,
        region=disc_mask(image.shape[:2], disc, fraction),
        fov_radius=disc.radius,
        geometry=geometry,
        fov_kept=graham_kept,
    )


def ct_thresholds(recipe: Recipe) -> tuple[int, int]:
    """Grey levels for "inside the body" (> -500 HU) and "air-filled lung" (< -400 HU).

    Args:
        recipe: the CT window, or another recipe for 8-bit slices exported with a lung
            window.

    Returns:
        ``(body, lung)`` grey levels on the ``uint8`` scale.
    """
    if isinstance(recipe, WindowRecipe):
        body, lung = window_hu(np.array([-500.0, -400.0]), recipe)
        return int(body), int(lung)
    return 64, 80  # 8-bit slices exported with a lung window


def ct_region(pixels: np.ndarray, recipe: Recipe) -> np.ndarray:
    """The lungs of an axial CT slice (air-filled pixels inside the body), or the body when
    no lung is found: where lung lesions may be pasted.

    Args:
        pixels: ``(H, W)`` ``uint8`` windowed slice.
        recipe: the recipe it was windowed with (``ct_thresholds``).

    Returns:
        ``(H, W)`` boolean region (all True when no body is found).
    """
    body_level, lung_level = ct_thresholds(recipe)
    body = (pixels > body_level).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(body, connectivity=8)
    if count <= 1:
        return np.ones(pixels.shape, bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    body = (labels == largest).astype(np.uint8)
    # fill the body's holes (the lungs among them): flood the outside from a padded border
    padded = cv2.copyMakeBorder(body, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    outside = padded.copy()
    cv2.floodFill(outside, None, (0, 0), 1)
    filled = (padded | (1 - outside))[1:-1, 1:-1].astype(bool)
    lungs = filled & (pixels < lung_level)
    lungs = cv2.morphologyEx(lungs.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    if lungs.sum() >= 0.01 * pixels.size:
        return lungs.astype(bool)
    return filled


def prepare_ct(
    pixels: np.ndarray, recipe: Recipe, size: int, pixel_spacing: list[float] | None
) -> Prepared:
    """Window HU (an 8-bit slice is taken as windowed already and kept), resize to ``size``
    square, and find the lungs.

    Args:
        pixels: ``(H, W)`` slice, in HU (float) or already windowed (``uint8``).
        recipe: the CT window, or no recipe for 8-bit slices.
        size: the output side in pixels (0 keeps the resolution).
        pixel_spacing: ``[row_mm, col_mm]`` of the input pixels, or None.

    Returns:
        The ``(size, size, 1)`` ``uint8`` slice, its boolean lung region and its pixel spacing
        after resizing.
    """
    in_hu = isinstance(recipe, WindowRecipe) and pixels.dtype != np.uint8
    grey = window_hu(pixels, recipe) if in_hu else pixels
    h, w = grey.shape[:2]
    geometry = ct_geometry((h, w), size)
    if geometry.out_shape != (h, w):
        interpolation = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
        grey = cv2.resize(grey, geometry.out_shape[::-1], interpolation=interpolation)
        if pixel_spacing:
            pixel_spacing = [pixel_spacing[0] * h / size, pixel_spacing[1] * w / size]
    grey = np.ascontiguousarray(grey.reshape(grey.shape[0], grey.shape[1]))
    return Prepared(
        image=grey[:, :, None],
        region=ct_region(grey, recipe),
        pixel_spacing=pixel_spacing,
        geometry=geometry,
    )


def normals_recipe_from(
    bank_recipe: dict, preprocess: str, window: tuple[float, float] | None = None
) -> Recipe:
    """The recipe applied to the images pasted onto (and to any image scored like them): the
    bank's, none when asked, or a CT window for HU images (``window``: level, width) when the
    bank was cut from 8-bit slices.

    Args:
        bank_recipe: the bank's recipe, as ``recipe_to_dict`` records it.
        preprocess: the ``--preprocess`` choice, ``"bank"`` or ``"none"``; ``"none"`` drops the
            bank's recipe (never a CT window).
        window: ``(level, width)`` in HU, or None.

    Returns:
        The recipe.

    Raises:
        LesionPasteError: the bank's recipe is unknown or malformed.
    """
    if window is not None:
        return WindowRecipe(level=window[0], width=window[1])
    recipe = recipe_from_dict(bank_recipe)
    return NoRecipe() if preprocess == "none" and not isinstance(recipe, WindowRecipe) else recipe


def prepare_file(
    path: Path,
    modality: str,
    recipe: Recipe,
    size: int,
    slice_index: int | None = None,
    strict_modality: bool = False,
) -> Prepared:
    """Read one image file (or one axial slice of a CT volume) and prepare it: a fundus
    photograph cropped to its disc, resized and given the recipe; a CT slice windowed (HU from
    DICOM or NIfTI) or taken as an 8-bit export, and resized.

    Args:
        path: the image file, DICOM slice or NIfTI volume.
        modality: ``"fundus"`` or ``"ct"``.
        recipe: the recipe (``normals_recipe_from``).
        size: the output side in pixels (0 keeps the resolution).
        slice_index: the axial slice of a NIfTI volume, else None.
        strict_modality: refuse a file of the other modality (a DICOM, NIfTI or grey image
            for fundus; a colour image for CT) instead of converting it.

    Returns:
        The prepared image: ``(H, W, C)`` ``uint8`` and its ``(H, W)`` boolean field of view.

    Raises:
        LesionPasteError: an unreadable image, HU input without a CT window, a 16-bit slice
            for a CT window, a blank fundus photograph, or with ``strict_modality`` an image
            of the other modality.
    """
    if modality == "fundus":
        if strict_modality and (is_nifti(path) or is_dicom(path)):
            raise LesionPasteError(
                f"{path}: a CT file, where a colour fundus photograph is expected"
            )
        raw, sha, factor, full_shape = read_rgb_reduced(path, size)
        if strict_modality and is_grey(raw):
            raise LesionPasteError(
                f"{path}: a grey image (a CT slice?), where a colour fundus photograph is expected"
            )
        prepared = prepare_fundus(raw, recipe, size)
        return _in_file_pixels(prepared, raw.shape, factor, full_shape, sha)
    if is_nifti(path):
        if not isinstance(recipe, WindowRecipe) or slice_index is None:
            raise LesionPasteError(
                f"{path}: a CT volume is in HU; it needs a bank built with CT windowing, or "
                "--window LEVEL,WIDTH"
            )
        hu, spacing = read_axial_hu(path, slice_index)
        return _from(prepare_ct(hu, recipe, size, spacing), nifti_sha256(path))
    if is_dicom(path):
        if not isinstance(recipe, WindowRecipe):
            raise LesionPasteError(
                f"{path}: a DICOM slice is in HU; it needs a bank built with CT windowing, or "
                "--window LEVEL,WIDTH"
            )
        hu, sha, spacing = read_dicom_hu(path)
        return _from(prepare_ct(hu, recipe, size, list(spacing) if spacing else None), sha)
    # an 8-bit slice: exported with a CT window already, used as is (never a 16-bit one)
    grey, sha = read_gray(
        path, eight_bit_only=isinstance(recipe, WindowRecipe), refuse_colour=strict_modality
    )
    return _from(prepare_ct(grey, recipe, size, None), sha)


def _from(prepared: Prepared, sha256: str) -> Prepared:
    """``prepared`` with the digest of the file it was read from."""
    return dataclasses.replace(prepared, source_sha256=sha256)


def _in_file_pixels(
    prepared: Prepared,
    decoded: tuple[int, ...],
    factor: int,
    full_shape: tuple[int, int],
    sha256: str,
) -> Prepared:
    """``prepared`` with its file's digest and its geometry in the pixels of the file (a JPEG
    the decoder read at ``1/factor`` scale), so that a mask of the file is prepared like the
    image; no geometry when the decoded size is not the file's reduced size (an EXIF-rotated
    JPEG)."""
    prepared = _from(prepared, sha256)
    if factor == 1 or prepared.geometry is None:
        return prepared
    expected = (-(-full_shape[0] // factor), -(-full_shape[1] // factor))
    if tuple(decoded[:2]) != expected:
        return dataclasses.replace(prepared, geometry=None)
    return dataclasses.replace(prepared, geometry=prepared.geometry.scaled(factor, full_shape))
