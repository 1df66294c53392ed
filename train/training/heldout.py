"""Validation with held-out lesions: the run's validation normals, with twins pasted from the
lesions of *another* annotated image (``lp-train --heldout-val``).

The usual validation pairs are pasted from the training bank, so a detector that learns those
lesions' exact look scores them well and may transfer no better. Twins of the same normal
images made from a bank the run never saw keep everything else equal and ask whether the
detector finds lesions it was not shown: a criterion for choosing settings without any real
anomaly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lesionpaste.dataset_format import bank_source_ids, source_patient
from lesionpaste.errors import LesionPasteError
from lesionpaste.train.training.dataset import LoadedDataset


@dataclass
class HeldoutPairs:
    """The held-out validation images ``(M, H, W, C)`` uint8 and their labels 0/1."""

    images: np.ndarray
    labels: np.ndarray


def heldout_pairs(
    data: LoadedDataset, heldout: LoadedDataset, validation: np.ndarray
) -> HeldoutPairs:
    """The pairs of ``heldout`` whose normal is one of the run's validation normals.

    Args:
        data: the training dataset.
        heldout: a synthetic dataset made from the same normal images, prepared the same way,
            with a bank of other annotated images.
        validation: ``(N,)`` boolean, the run's validation images in ``data``.

    Returns:
        Every validation normal (as ``heldout`` holds it) and its twin in ``heldout``.

    Raises:
        LesionPasteError: ``heldout`` is not synthetic, either dataset records no bank
            source, ``heldout`` shares a source (or a volume's patient) with the training
            bank, lacks a validation normal or its twin, or holds it with other
            pixels (another preparation or size).
    """
    where = heldout.root
    if heldout.meta.get("kind") != "synthetic":
        raise LesionPasteError(f"{where}: --heldout-val takes a synthetic dataset (lp-synth)")
    mine, theirs = bank_source_ids(data.meta), bank_source_ids(heldout.meta)
    if not mine or not theirs:
        raise LesionPasteError(
            f"{where if not theirs else data.root}: its dataset.json records no bank source, "
            "so held-out lesions cannot be told from the training ones"
        )
    patients = {source_patient(s) for s in mine}
    shared = sorted(s for s in theirs if source_patient(s) in patients)
    if shared:
        raise LesionPasteError(
            f"{where}: its bank shares {', '.join(shared)} with the training bank; "
            "held-out validation needs lesions of another annotated image"
        )
    index = {(t, int(y)): i for i, (t, y) in enumerate(zip(heldout.twin_ids, heldout.labels))}
    chosen = []
    for i in np.flatnonzero(validation & (data.labels == 0)):
        twin = data.twin_ids[i]
        normal, anomalous = index.get((twin, 0)), index.get((twin, 1))
        if normal is None or anomalous is None:
            raise LesionPasteError(
                f"{where}: no pair for the validation normal {twin}; make it with lp-synth "
                "from the same normal images as the training dataset"
            )
        if not np.array_equal(heldout.images[normal], data.images[i]):  # shapes included
            raise LesionPasteError(
                f"{where}: its normal {twin} differs from the training dataset's; make it "
                "with the same --size and preparation"
            )
        chosen += [normal, anomalous]
    order = np.asarray(chosen, dtype=np.int64)
    return HeldoutPairs(images=heldout.images[order], labels=heldout.labels[order].copy())
