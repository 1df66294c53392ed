"""Which images an evaluation set holds: a folder (one ``--label``, or a label file), an IDRiD
tree, or a MosMed folder; their ground-truth masks (``synth.inputs.ground_truth``); and the images the
lesion bank was cut from, which are left out (an evaluation set holding them would test the
detector on the very lesions it was trained with)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lesionpaste.dataset_format import source_images_in
from lesionpaste.errors import LesionPasteError
from lesionpaste.idrid_files import is_idrid_root
from lesionpaste.synth.inputs.ct_volumes import evaluation_slices, is_mosmed_root
from lesionpaste.synth.inputs.ground_truth import attach_folder_masks, idrid_images
from lesionpaste.synth.inputs.locations import bank_studies, refuse_volumes_for_fundus
from lesionpaste.synth.inputs.normals import NormalImage, image_folder, list_folder, read_label_file

#: why a bank source is left out, as ``dataset.json``'s ``skipped`` records it
LEFT_OUT_REASON = (
    "a source of the lesion bank (its lesions were cut from this image): left out, as an "
    "evaluation set must not hold it"
)


@dataclass
class EvaluationImages:
    """The images found for an evaluation set.

    Attributes:
        items: the images, labelled, with their mask files if any.
        missing: records of listed images that cannot be used (label file, MosMed volumes).
        masks: where the masks come from: ``"idrid"``, ``"folder"``, or None for no masks.
        without_masks: with masks, how many images have no mask file.
    """

    items: list[NormalImage]
    missing: list[dict] = field(default_factory=list)
    masks: str | None = None
    without_masks: int = 0


def evaluation_images(
    images: Path,
    labels: Path | None,
    label: int | None,
    grades: set[int] | None,
    quality: str | None,
    masks: Path | None,
    per_study: int,
    bank,
) -> EvaluationImages:
    """The images of ``lp-synth prep --images``: a MosMed folder (labelled by its layout), an
    IDRiD tree (every photograph, ``label`` default 1, with its lesion masks), or a folder
    (``--labels`` or ``--label``, and ``--masks``).

    Args:
        images: the ``--images`` folder (a folder holding only ``images/`` means that one).
        labels: a label CSV giving each image's grade, or None.
        label: one label for every image, or None.
        grades: keep only these grades of a label file, or None.
        quality: the EyeQ quality to keep, or None.
        masks: the ``--masks`` folder, or None.
        per_study: normal slices per CT-0 study, for a MosMed folder.
        bank: the lesion bank (its modality, and its MosMed studies left out).

    Returns:
        The images, with what was missing and where the masks come from.

    Raises:
        LesionPasteError: options that do not fit the kind of folder, no label given for a
            folder, or images, labels or masks that cannot be used.
    """
    if is_mosmed_root(images):
        if labels or label is not None:
            raise LesionPasteError(
                "a MosMed folder is labelled by its layout; drop --labels/--label"
            )
        if masks is not None:
            raise LesionPasteError("--masks applies to a folder of images, not to a MosMed folder")
        items, missing = evaluation_slices(images, per_study, bank_studies(bank))
        refuse_volumes_for_fundus(items, bank)
        return EvaluationImages(items, missing)
    if is_idrid_root(images):
        return _idrid(images, labels, label, masks, bank)
    if labels:
        items, missing = read_label_file(labels, images, grades, quality)
    elif label is not None:
        items = [NormalImage(n.image_id, n.path, label) for n in list_folder(image_folder(images))]
        missing = []
    else:
        raise LesionPasteError("give --labels CSV (grades per image) or --label N for all images")
    if masks is None:
        return EvaluationImages(items, missing)
    items, without = attach_folder_masks(items, masks)
    return EvaluationImages(items, missing, "folder", without)


def _idrid(images: Path, labels, label, masks, bank) -> EvaluationImages:
    """An IDRiD tree's photographs with their lesion masks, checked against the options."""
    if labels:
        raise LesionPasteError(
            "an IDRiD tree is labelled with --label N (default 1: its segmentation images all "
            "have lesions); drop --labels"
        )
    if masks is not None:
        raise LesionPasteError("an IDRiD tree brings its own lesion masks; drop --masks")
    if bank.meta.modality != "fundus":
        raise LesionPasteError("an IDRiD tree holds fundus photographs; this is a CT bank")
    items = idrid_images(images, 1 if label is None else label)
    return EvaluationImages(items, [], "idrid", sum(not i.has_masks for i in items))


def leave_out_sources(
    items: list[NormalImage], source_ids: set[str]
) -> tuple[list[NormalImage], list[dict]]:
    """The images that are not bank sources, and a ``skipped`` record for each one that is
    (``lesionpaste.dataset_format.source_images_in``: the same id, or a slice of the same
    volume).

    Args:
        items: the evaluation images.
        source_ids: the ids of the bank's sources (and of ``--like``'s bank's).

    Returns:
        ``(kept, left_out)``: the other images in order, and ``{"id", "status", "path",
        "reason", "left_out"}`` for each source found.
    """
    sources = set(source_images_in([{"twin_id": i.image_id} for i in items], source_ids))
    kept = [i for i in items if i.image_id not in sources]
    left_out = [
        {"id": i.image_id, "status": "skipped", "path": str(i.path), "reason": LEFT_OUT_REASON,
         "left_out": True}
        for i in items
        if i.image_id in sources
    ]  # fmt: skip
    return kept, left_out
