"""Load one annotated 2-D image (fundus photograph or CT slice) with its masks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from lesionpaste.bank_builder.annotated import AnnotatedImage, check_mask_shape
from lesionpaste.ct_files import is_dicom, read_dicom_hu
from lesionpaste.errors import LesionPasteError
from lesionpaste.images import read_gray, read_mask, read_rgb
from lesionpaste.recipes import (
    GrahamRecipe,
    NoRecipe,
    Recipe,
    WindowRecipe,
    disc_mask,
    estimate_fundus_disc,
    graham,
    window_hu,
)


def _record(role: str, path: Path, sha: str, base: Path | None) -> dict:
    shown = Path(path).relative_to(base) if base is not None else Path(Path(path).name)
    return {"role": role, "path": shown.as_posix(), "sha256": sha}


@contextlib.contextmanager
def _masks_reading(mask_paths: dict[str, Path]) -> Iterator[list[Future]]:
    """Decode the masks on a second thread while the caller decodes the image (OpenCV
    releases the GIL); the thread ends with the block, and an error cancels what is left."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lp-mask-reader") as pool:
        pending = [pool.submit(read_mask, path) for path in mask_paths.values()]
        try:
            yield pending
        except BaseException:
            for future in pending:
                future.cancel()
            raise


def _collect_masks(
    pending: list[Future],
    mask_paths: dict[str, Path],
    image_shape,
    image_path: Path,
    base: Path | None,
) -> tuple[dict[str, np.ndarray], list[dict]]:
    masks, files = {}, []
    for (lesion_type, path), future in zip(mask_paths.items(), pending):
        mask, sha = future.result()
        check_mask_shape(mask, image_shape, path, image_path)
        masks[lesion_type] = mask
        files.append(_record(f"mask:{lesion_type}", path, sha, base))
    return masks, files


def _fundus_disc(raw: np.ndarray, image_path: Path):
    try:
        return estimate_fundus_disc(raw)
    except LesionPasteError as exc:
        raise LesionPasteError(f"{image_path}: {exc}") from None


def load_fundus(
    source_id: str,
    image_path: Path,
    mask_paths: dict[str, Path],
    recipe: Recipe,
    base: Path | None = None,
    licence: str = "unknown",
    attribution: str = "unknown",
) -> AnnotatedImage:
    """Read a colour fundus photograph and its masks, and preprocess the photograph.

    ``base``: paths are recorded relative to it (else by file name only).

    Args:
        source_id: the source's id in the bank, e.g. ``IDRiD_48``.
        image_path: the colour photograph.
        mask_paths: ``{lesion type: mask file}``.
        recipe: Graham's recipe, or no recipe (windowing is refused).
        base: the folder that recorded paths are relative to, or None for file names only.
        licence: the source's licence, for dataset cards.
        attribution: the source's attribution, for dataset cards.

    Returns:
        The preprocessed ``(H, W, 3)`` ``uint8`` image with its boolean masks, field of view
        and provenance.

    Raises:
        LesionPasteError: a window recipe, an unreadable image or mask, a blank photograph
            (no disc found), or a mask of another size than the image.
    """
    if isinstance(recipe, WindowRecipe):
        raise LesionPasteError("CT windowing does not apply to fundus photographs")
    with _masks_reading(mask_paths) as pending:
        raw, sha = read_rgb(image_path)
        disc = _fundus_disc(raw, image_path)
        image = graham(raw, disc, recipe) if isinstance(recipe, GrahamRecipe) else raw
        masks, files = _collect_masks(pending, mask_paths, raw.shape, image_path, base)
    kept = recipe.disc_fraction if isinstance(recipe, GrahamRecipe) else 1.0
    return AnnotatedImage(
        source_id=source_id,
        image=image,
        masks=masks,
        files=[_record("image", image_path, sha, base), *files],
        fov={"cx": disc.cx, "cy": disc.cy, "radius": disc.radius},
        region=disc_mask(raw.shape[:2], disc, kept),
        licence=licence,
        attribution=attribution,
    )


def load_ct_slice(
    source_id: str,
    image_path: Path,
    mask_paths: dict[str, Path],
    recipe: Recipe,
    pixel_spacing: list[float] | None = None,
    base: Path | None = None,
    licence: str = "unknown",
    attribution: str = "unknown",
) -> AnnotatedImage:
    """Read a CT slice (DICOM in HU, or an 8-bit image already windowed) and its masks.

    Args:
        source_id: the source's id in the bank.
        image_path: a DICOM slice, or an 8-bit grey image already windowed.
        mask_paths: ``{lesion type: mask file}``.
        recipe: a window recipe for DICOM, no recipe for 8-bit images (Graham is refused).
        pixel_spacing: ``[row_mm, col_mm]``; None takes the DICOM file's, if any.
        base: the folder that recorded paths are relative to, or None for file names only.
        licence: the source's licence, for dataset cards.
        attribution: the source's attribution, for dataset cards.

    Returns:
        The ``(H, W, 1)`` ``uint8`` slice with its boolean masks and provenance.

    Raises:
        LesionPasteError: Graham's recipe, DICOM without windowing, windowing of an 8-bit
            image, an unreadable image or mask, or a mask of another size than the image.
    """
    if isinstance(recipe, GrahamRecipe):
        raise LesionPasteError("Graham's fundus recipe does not apply to CT slices")
    if is_dicom(image_path):
        hu, sha, spacing = read_dicom_hu(image_path)
        if isinstance(recipe, NoRecipe):
            raise LesionPasteError(
                f"{image_path}: a DICOM slice is in HU and needs windowing (--preprocess window)"
            )
        pixels = window_hu(hu, recipe)
        pixel_spacing = pixel_spacing or (list(spacing) if spacing else None)
    else:
        if isinstance(recipe, WindowRecipe):
            raise LesionPasteError(
                f"{image_path}: windowing needs HU values (DICOM or NIfTI); this 8-bit image is "
                "used as it is (--preprocess none)"
            )
        pixels, sha = read_gray(image_path)
    with _masks_reading(mask_paths) as pending:
        masks, files = _collect_masks(pending, mask_paths, pixels.shape, image_path, base)
    return AnnotatedImage(
        source_id=source_id,
        image=pixels[:, :, None],
        masks=masks,
        files=[_record("image", image_path, sha, base), *files],
        pixel_spacing=pixel_spacing,
        licence=licence,
        attribution=attribution,
    )
