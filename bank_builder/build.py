"""Turn annotated images into a bank file: extract, check, and write atomically."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lesionpaste import __version__
from lesionpaste.bank_builder.annotated import AnnotatedImage
from lesionpaste.bank_builder.extract import extract_lesions
from lesionpaste.bank_format import BankMeta, Lesion, write_bank
from lesionpaste.errors import LesionPasteError
from lesionpaste.files import atomic_output, refuse_existing
from lesionpaste.histograms import channel_histograms
from lesionpaste.outputs import check_output
from lesionpaste.recipes import Recipe, recipe_to_dict


@dataclass(frozen=True)
class BuildResult:
    """What a build wrote."""

    path: Path
    counts: dict[str, int]
    sources: list[str]


def _lesions_of(
    source: AnnotatedImage, lesion_types: list[str], index: int, warn: Callable[[str], None]
) -> tuple[list[Lesion], dict[str, int]] | None:
    """The lesions of one source (bank source number ``index``), and how many of each type
    were left out for leaving the field of view; None when its masks hold no lesion."""
    for lesion_type in source.masks:
        if lesion_type not in lesion_types:
            raise LesionPasteError(f"{source.source_id}: unexpected lesion type {lesion_type}")
    found: list[Lesion] = []
    left_out: dict[str, int] = {}
    for lesion_type in (t for t in lesion_types if t in source.masks):
        cut, outside = extract_lesions(
            source.image, source.masks[lesion_type], lesion_type, index, source.region
        )
        found.extend(cut)
        if outside:
            left_out[lesion_type] = outside
    if left_out:
        warn(
            f"{source.source_id}: left out {sum(left_out.values())} lesion(s) "
            f"({', '.join(f'{t} {n}' for t, n in left_out.items())}) lying partly or wholly "
            "outside the field of view kept by preprocessing"
        )
    if not found:
        return None
    for lesion_type, mask in source.masks.items():
        if not mask.any():
            warn(f"{source.source_id}: the {lesion_type} mask is empty")
    return found, left_out


def build_bank(
    sources: Iterable[AnnotatedImage],
    out: Path,
    *,
    modality: str,
    lesion_types: list[str],
    recipe: Recipe,
    command: str,
    inputs: Iterable[tuple[str, Path | None]] = (),
    overwrite: bool = False,
    warn: Callable[[str], None] = lambda message: None,
) -> BuildResult:
    """Extract every lesion of every source and write the bank to ``out``.

    ``sources`` may be a lazy iterable: one source image is held in memory at a time.
    A source whose masks are all empty is skipped with a warning; a bank with no lesion at
    all is refused. Nothing is written unless the whole build succeeds.

    Args:
        sources: the annotated, preprocessed source images.
        out: the bank file to write.
        modality: ``"fundus"`` (3 channels) or ``"ct"`` (1 channel).
        lesion_types: the bank's lesion types, in order (e.g. ``["MA", "HE", "EX", "SE"]``).
        recipe: the preprocessing recipe the sources went through (recorded in the bank).
        command: the command line that built it (recorded for provenance).
        inputs: ``(what, path)`` for every file or folder the sources are read from: ``out``
            may not be, lie inside or hold one (``lesionpaste.outputs.check_output``).
        overwrite: replace an existing ``out`` (an earlier bank).
        warn: called with one message per warning (skipped sources, empty masks, lesions
            left out for leaving the field of view).

    Returns:
        The bank's path, its lesions per type, and the ids of the sources it holds.

    Raises:
        LesionPasteError: ``out`` is unsafe (a link, one of the inputs, or not a bank),
            exists without ``overwrite`` or is a directory, a source
            has a lesion type not in ``lesion_types``, or no source has any lesion.
    """
    check_output(out, "bank", inputs, overwrite)
    refuse_existing(out, overwrite)
    lesions: list[Lesion] = []
    described: list[dict] = []
    histograms: list[np.ndarray] = []
    empty_sources: list[str] = []
    channels = 3 if modality == "fundus" else 1
    for source in sources:
        found = _lesions_of(source, lesion_types, len(described), warn)
        if found is None:
            mask_files = [f["path"] for f in source.files if f["role"].startswith("mask:")]
            empty_sources.append(f"{source.source_id} ({', '.join(mask_files) or 'no mask'})")
            continue
        cut, left_out = found
        lesions.extend(cut)
        described.append({**source.describe(), "left_out_outside_fov": left_out})
        histograms.append(channel_histograms(source.image, source.region))
    if not lesions:
        raise LesionPasteError(
            f"every lesion mask is empty, there is no lesion to bank: {'; '.join(empty_sources)}"
        )
    for empty in empty_sources:
        warn(f"skipped {empty}: every lesion mask is empty")
    meta = BankMeta(
        modality=modality,
        channels=channels,
        lesion_types=list(lesion_types),
        preprocess=recipe_to_dict(recipe),
        sources=described,
        tool_version=__version__,
        command=command,
    )
    with atomic_output(out, overwrite) as tmp:
        write_bank(tmp, meta, lesions, np.stack(histograms))
    counts = {t: sum(1 for lesion in lesions if lesion.lesion_type == t) for t in lesion_types}
    return BuildResult(path=Path(out), counts=counts, sources=[s["id"] for s in described])
