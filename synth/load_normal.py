"""One normal image read and prepared like the bank's source: the recipe the normals get, and
the reading of a fundus photograph, a CT volume's slice, a DICOM slice or an 8-bit slice."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from lesionpaste.bank_format import Bank
from lesionpaste.ct_files import is_dicom, read_dicom_hu
from lesionpaste.errors import LesionPasteError
from lesionpaste.images import read_gray, read_rgb_reduced
from lesionpaste.recipes import NoRecipe, Recipe, WindowRecipe, recipe_from_dict
from synth.ct_volumes import is_nifti, read_axial_hu
from synth.prepare import Prepared, prepare_ct, prepare_fundus


def normals_recipe(
    bank: Bank, preprocess: str, window: tuple[float, float] | None = None
) -> Recipe:
    """The recipe applied to normal images: the bank's, none when asked, or a CT window for
    HU normals (``window``: level, width) when the bank was cut from 8-bit slices.

    Args:
        bank: the lesion bank.
        preprocess: the ``--preprocess`` choice; ``"none"`` drops the bank's recipe (never a
            CT window).
        window: ``(level, width)`` in HU, or None.

    Returns:
        The recipe for the normals.

    Raises:
        LesionPasteError: the bank's recipe is unknown or malformed.
    """
    if window is not None:
        return WindowRecipe(level=window[0], width=window[1])
    recipe = recipe_from_dict(bank.meta.preprocess)
    return NoRecipe() if preprocess == "none" and not isinstance(recipe, WindowRecipe) else recipe


def prepare_normal(
    path: Path, bank: Bank, recipe: Recipe, size: int, slice_index: int | None = None
) -> Prepared:
    """Read one normal image (or one axial slice of a CT volume) and prepare it like the
    bank's source (fundus or CT).

    Args:
        path: the image file, DICOM slice or NIfTI volume.
        bank: the lesion bank (its modality decides the reading).
        recipe: the recipe for the normals (``normals_recipe``).
        size: the output side in pixels (0 keeps the resolution).
        slice_index: the axial slice of a NIfTI volume, else None.

    Returns:
        The prepared image: ``(H, W, C)`` ``uint8`` and its ``(H, W)`` boolean field of view.

    Raises:
        LesionPasteError: an unreadable image, HU input without a CT window, a 16-bit slice
            for a CT window, or a blank fundus photograph.
    """
    if bank.meta.modality == "fundus":
        raw, _, factor, full_shape = read_rgb_reduced(path, size)
        return _in_file_pixels(prepare_fundus(raw, recipe, size), raw.shape, factor, full_shape)
    if is_nifti(path):
        if not isinstance(recipe, WindowRecipe) or slice_index is None:
            raise LesionPasteError(
                f"{path}: a CT volume is in HU; it needs a bank built with CT windowing, or "
                "--window LEVEL,WIDTH"
            )
        hu, spacing = read_axial_hu(path, slice_index)
        return prepare_ct(hu, recipe, size, spacing)
    if is_dicom(path):
        if not isinstance(recipe, WindowRecipe):
            raise LesionPasteError(
                f"{path}: a DICOM slice is in HU; it needs a bank built with CT windowing, or "
                "--window LEVEL,WIDTH"
            )
        hu, _, spacing = read_dicom_hu(path)
        return prepare_ct(hu, recipe, size, list(spacing) if spacing else None)
    # an 8-bit slice: exported with a CT window already, used as is (never a 16-bit one)
    grey, _ = read_gray(path, eight_bit_only=isinstance(recipe, WindowRecipe))
    return prepare_ct(grey, recipe, size, None)


def _in_file_pixels(
    prepared: Prepared, decoded: tuple[int, ...], factor: int, full_shape: tuple[int, int]
) -> Prepared:
    """``prepared`` with its geometry in the pixels of the file (a JPEG the decoder read at
    ``1/factor`` scale), so that a mask of the file is prepared like the image; no geometry
    when the decoded size is not the file's reduced size (an EXIF-rotated JPEG)."""
    if factor == 1 or prepared.geometry is None:
        return prepared
    expected = (-(-full_shape[0] // factor), -(-full_shape[1] // factor))
    if tuple(decoded[:2]) != expected:
        return dataclasses.replace(prepared, geometry=None)
    return dataclasses.replace(prepared, geometry=prepared.geometry.scaled(factor, full_shape))
