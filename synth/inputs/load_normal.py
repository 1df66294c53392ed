"""One normal image read and prepared like the bank's source (``lesionpaste.preparation``),
with the recipe the normals get."""

from __future__ import annotations

from pathlib import Path

from lesionpaste.bank_format import Bank
from lesionpaste.preparation import Prepared, normals_recipe_from, prepare_file
from lesionpaste.recipes import Recipe


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
    return normals_recipe_from(bank.meta.preprocess, preprocess, window)


def prepare_normal(
    path: Path, bank: Bank, recipe: Recipe, size: int, slice_index: int | None = None
) -> Prepared:
    """Read one normal image (or one axial slice of a CT volume) and prepare it like the
    bank's source (``lesionpaste.preparation.prepare_file`` for the bank's modality).

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
    return prepare_file(path, bank.meta.modality, recipe, size, slice_index)
