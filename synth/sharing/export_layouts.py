"""Where each file of a dataset goes in the layouts that other anomaly-detection tools read.

``mvtec`` (the MVTec AD layout, read by anomalib's ``MVTec`` and ``Folder`` datamodules)::

    train/good/NAME.png                normal twins of the training pairs
    test/good/NAME.png                 normal twins of the test pairs (evaluation set: label 0)
    test/lesion/NAME.png               anomalous twins of the test pairs (evaluation set: label > 0)
    ground_truth/lesion/NAME.png       the mask of test/lesion/NAME.png, 0 and 255

Each mask has its image's own name, not MVTec's ``NAME_mask.png``: anomalib (and any tool that
sorts the images and the masks separately and pairs them by position) needs both lists in one
order, and ``1_mask.png`` sorts after ``10_mask.png`` where ``1.png`` sorts before ``10.png``.
anomalib accepts either name.

A synthetic set's pairs are split by the patient of their twin id (``patient_of``, so both
eyes of a patient fall on one side), a fixed hash of (``seed``, patient) putting a
``train_fraction`` of them in training (``in_training_split``, as ``lp-synth --split`` does).
A pair is never split: a test pair gives its normal and anomalous twin to ``test/``; a
training pair gives only its normal twin to ``train/good`` (MVTec trains on good images only),
and its anomalous twin is left out, since in ``test/`` it would be a pasted copy of a training
image. An evaluation set has no training part: everything goes to ``test/``.

``imagefolder`` (torchvision's ``ImageFolder``, Hugging Face ``datasets``' imagefolder)::

    normal/NAME.png  anomalous/NAME.png  metadata.jsonl  README.md

``metadata.jsonl`` has one JSON object per image: ``file_name`` (relative to it) first, then
``label`` (0 normal, 1 anomalous: its folder), ``dataset_label`` (the dataset's own label: 0/1
for a synthetic set, the grade for an evaluation set), ``twin_id``, ``tier`` and ``n_lesions``
(integers, ``null`` where the image has none: a normal twin's tier), ``source_path`` (the file
in the dataset) and ``sha256``. JSON lines rather than CSV: ``datasets`` reads a CSV column
with empty cells as floats and refuses it as an integer column. ``README.md`` is the Hugging
Face dataset card: YAML that declares these features (``label`` a class label named
``normal``/``anomalous``, ``tier`` an integer), which ``load_dataset(OUT)`` applies. It holds no
masks: ``ImageFolder`` takes every folder at its root for a class, so a ``masks/`` folder would
be a third class; the masks travel in the ``mvtec`` layout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import PurePosixPath

from lesionpaste.dataset_format import count_cell, name_key
from lesionpaste.errors import LesionPasteError
from lesionpaste.synth.inputs.normals import SPLIT_GROUP, in_training_split, patient_of

LAYOUTS = ("mvtec", "imagefolder")
#: the MVTec defect type every lesion image is filed under
DEFECT = "lesion"
#: ``metadata.jsonl``'s fields, in order, with their Hugging Face ``datasets`` types
METADATA_FEATURES = {
    "file_name": "string",
    "label": "class_label",
    "dataset_label": "int32",
    "twin_id": "string",
    "tier": "int32",
    "n_lesions": "int32",
    "source_path": "string",
    "sha256": "string",
}
#: ``label``'s class names, by value
LABEL_NAMES = ("normal", "anomalous")


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
            path = f"ground_truth/{DEFECT}/{_name(row['path'])}"  # its image's own name
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


def metadata_jsonl(files: list[ExportedFile]) -> str:
    """``metadata.jsonl`` of an ``imagefolder`` export: one JSON object per image, typed.

    Args:
        files: the export's files (``imagefolder_files``).

    Returns:
        The JSON-lines text (UTF-8 names kept as they are).
    """
    lines = []
    for f in files:
        row = f.row
        record = {
            "file_name": f.path,
            "label": int(int(row["label"]) > 0),
            "dataset_label": int(row["label"]),
            "twin_id": row["twin_id"],
            "tier": count_cell(row["tier"]),
            "n_lesions": count_cell(row["n_lesions"]),
            "source_path": row["path"],
            "sha256": row["sha256"],
        }
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    return "".join(lines)


def hugging_face_card() -> str:
    """``README.md`` of an ``imagefolder`` export: the Hugging Face dataset card, whose YAML
    declares ``metadata.jsonl``'s features so that ``datasets`` names the labels and keeps the
    counts integers.

    Returns:
        The card's text.
    """
    features = ["  features:", "  - name: image", "    dtype: image"]
    for name, kind in METADATA_FEATURES.items():
        if name == "file_name":
            continue  # datasets turns it into the image column
        features.append(f"  - name: {name}")
        if kind == "class_label":
            features += ["    dtype:", "      class_label:", "        names:"]
            features += [f"          '{value}': {n}" for value, n in enumerate(LABEL_NAMES)]
        else:
            features.append(f"    dtype: {kind}")
    return "\n".join([
        "---",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        '    path: ["normal/*.png", "anomalous/*.png", "metadata.jsonl"]',
        *features,
        "---",
        "",
        "# LesionPaste imagefolder export",
        "",
        "Images in `normal/` and `anomalous/`; `metadata.jsonl` gives each its label (0 normal,",
        "1 anomalous), the dataset's own label (`dataset_label`: the grade of an evaluation set),",
        "its twin, tier and lesion count (null where it has none), its source and sha256.",
        "`datasets.load_dataset(\"PATH\")` reads the features declared above. The dataset's own card",
        "is `LESIONPASTE_CARD.md`; `lesionpaste-export.json` lists every file with its source.",
        "",
    ])  # fmt: skip


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
