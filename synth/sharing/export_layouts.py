"""Where each file of a dataset goes in the layouts that other anomaly-detection tools read.

``mvtec`` (the MVTec AD layout, read by anomalib's ``MVTec`` and ``Folder`` datamodules)::

    train/good/NAME.png                normal twins of the training pairs
    test/good/NAME.png                 normal twins of the test pairs (evaluation set: label 0)
    test/lesion/NAME.png               anomalous twins of the test pairs (evaluation set: label > 0)
    ground_truth/lesion/STEM_mask.png  the mask of test/lesion/STEM.png, 0 and 255

A synthetic set's pairs are split by the patient of their twin id (``patient_of``, so both
eyes of a patient fall on one side), a fixed hash of (``seed``, patient) putting a
``train_fraction`` of them in training (``in_training_split``, as ``lp-synth --split`` does).
A pair is never split: a test pair gives its normal and anomalous twin to ``test/``; a
training pair gives only its normal twin to ``train/good`` (MVTec trains on good images only),
and its anomalous twin is left out, since in ``test/`` it would be a pasted copy of a training
image. An evaluation set has no training part: everything goes to ``test/``.

``imagefolder`` (torchvision's ``ImageFolder``, Hugging Face ``datasets``' imagefolder)::

    normal/NAME.png  anomalous/NAME.png  metadata.csv

``metadata.csv`` has ``file_name`` (relative to it) first, then ``label`` (the dataset's: 0
normal, 1 synthetic anomaly, or an evaluation set's grade), ``twin_id``, ``tier``,
``n_lesions``, ``source_path`` (the file in the dataset) and ``sha256``. It holds no masks:
``ImageFolder`` takes every folder at its root for a class, so a ``masks/`` folder would be a
third class; the masks travel in the ``mvtec`` layout.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import PurePosixPath

from lesionpaste.dataset_format import name_key
from lesionpaste.errors import LesionPasteError
from lesionpaste.synth.inputs.normals import SPLIT_GROUP, in_training_split, patient_of

LAYOUTS = ("mvtec", "imagefolder")
#: the MVTec defect type every lesion image is filed under
DEFECT = "lesion"
METADATA_COLUMNS = ["file_name", "label", "twin_id", "tier", "n_lesions", "source_path", "sha256"]


@dataclass(frozen=True)
class ExportedFile:
    """One file of an export.

    Attributes:
        path: where it goes in the export (POSIX, relative).
        source: the file it copies in the dataset.
        mask: whether it is a mask (stored 0/255).
        row: the manifest row of its image.
    """

    path: str
    source: str
    mask: bool
    row: dict


@dataclass(frozen=True)
class Split:
    """How ``mvtec`` splits a synthetic set's pairs: see the module's description.

    Attributes:
        train_fraction: the share of patients whose pairs go to training, in (0, 1).
        seed: the split's seed.
        pattern: the regular expression whose first group is a twin id's patient.
    """

    train_fraction: float = 0.8
    seed: int = 0
    pattern: str = SPLIT_GROUP

    def in_training(self, twin_id: str) -> bool:
        """Whether a pair goes to training.

        Args:
            twin_id: the pair's twin id.

        Returns:
            Whether its patient falls in the training fraction.
        """
        return in_training_split(patient_of(twin_id, self.pattern), self.train_fraction, self.seed)


def _name(path: str) -> str:
    return PurePosixPath(path).name


def _mask_name(row: dict) -> str:
    return f"{PurePosixPath(row['path']).stem}_mask.png"


def mvtec_files(kind: str, rows: list[dict], split: Split) -> list[ExportedFile]:
    """The files of an ``mvtec`` export, in manifest order.

    Args:
        kind: the dataset's kind, ``"synthetic"`` or ``"evaluation"``.
        rows: its manifest rows.
        split: how a synthetic set's pairs are split (unused for an evaluation set).

    Returns:
        One entry per exported image and mask.

    Raises:
        LesionPasteError: a synthetic set whose split leaves training or test empty, or two
            files that would get one name.
    """
    files = []
    for row in rows:
        anomalous = int(row["label"]) > 0
        train = kind == "synthetic" and split.in_training(row["twin_id"])
        if train and anomalous:
            continue  # a training pair's twin: in test/ it would copy a training image
        folder = "train/good" if train else f"test/{DEFECT if anomalous else 'good'}"
        files.append(ExportedFile(f"{folder}/{_name(row['path'])}", row["path"], False, row))
        if anomalous and row["mask_path"]:
            path = f"ground_truth/{DEFECT}/{_mask_name(row)}"
            files.append(ExportedFile(path, row["mask_path"], True, row))
    if kind == "synthetic":
        folders = {f.path.split("/")[0] for f in files}
        if not folders >= {"train", "test"}:
            missing = "training" if "train" not in folders else "test"
            raise LesionPasteError(
                f"the split (--train-fraction {split.train_fraction}, --split-seed {split.seed}) "
                f"puts no pair in {missing}; change them, or export more pairs"
            )
    return _unique(files)


def imagefolder_files(rows: list[dict]) -> list[ExportedFile]:
    """The files of an ``imagefolder`` export, in manifest order: its images.

    Args:
        rows: the dataset's manifest rows.

    Returns:
        One entry per image, in ``normal/`` (label 0) or ``anomalous/`` (label > 0).

    Raises:
        LesionPasteError: two files that would get one name.
    """
    files = []
    for row in rows:
        folder = "anomalous" if int(row["label"]) > 0 else "normal"
        files.append(ExportedFile(f"{folder}/{_name(row['path'])}", row["path"], False, row))
    return _unique(files)


def metadata_csv(files: list[ExportedFile]) -> str:
    """``metadata.csv`` of an ``imagefolder`` export: one line per image, ``file_name`` first.

    Args:
        files: the export's files (``imagefolder_files``).

    Returns:
        The CSV text (quoted as CSV requires, so any name round-trips).
    """
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(METADATA_COLUMNS)
    for f in files:
        row = f.row
        writer.writerow([f.path, row["label"], row["twin_id"], row["tier"], row["n_lesions"],
                         row["path"], row["sha256"]])  # fmt: skip
    return text.getvalue()


def _unique(files: list[ExportedFile]) -> list[ExportedFile]:
    """Refuse two files with one name (also where case or Unicode form is ignored)."""
    seen: dict[str, str] = {}
    for f in files:
        key = name_key(f.path)
        if key in seen:
            raise LesionPasteError(
                f"{f.source} and {seen[key]} would both be exported as {f.path}; rename one"
            )
        seen[key] = f.source
    return files
