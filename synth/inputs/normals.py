"""Which normal images to use: a folder, or a label file (EyeQ or EyePACS) with filters."""

from __future__ import annotations

import csv
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from lesionpaste.dataset_format import has_control_character, name_key
from lesionpaste.errors import LesionPasteError
from lesionpaste.images import IMAGE_SUFFIXES

QUALITY = {"good": 0, "usable": 1, "reject": 2}
#: The longest id (UTF-8 bytes): with ``.png`` and a temporary prefix it stays one file name.
MAX_ID_BYTES = 200


@dataclass(frozen=True)
class NormalImage:
    """One input image: its id (file stem, used for output names), path and label if known;
    for a CT volume (NIfTI), the axial slice it stands for; for an evaluation image, its
    ground-truth masks if it has any (a union mask file, or one file per lesion type)."""

    image_id: str
    path: Path
    label: int | None = None
    slice: int | None = None
    union_mask: Path | None = None
    type_masks: tuple[tuple[str, Path], ...] = ()

    @property
    def has_masks(self) -> bool:
        """Whether the image comes with ground-truth masks.

        Returns:
            True when it has a union mask file or a mask of some lesion type.
        """
        return self.union_mask is not None or bool(self.type_masks)


def name_problem(name: str) -> str | None:
    """Why ``name`` (an image file's name, its stem, or a label file's entry) cannot give one
    plain file name that every file system and reader takes; None when it can.

    Args:
        name: the name to check.

    Returns:
        A phrase saying what is wrong (e.g. ``"is empty"``), or None.
    """
    if not name.strip():
        return "is empty"
    if "/" in name or "\\" in name:
        return "holds a path separator (images are named, not located, here)"
    if any(unicodedata.category(c) == "Cs" for c in name):
        return "is not valid UTF-8"
    if has_control_character(name):
        return "holds a control character (a line break, tab, NUL, ...)"
    if name.startswith("."):
        return "starts with '.' (a hidden or relative name)"
    if len(unicodedata.normalize("NFC", name).encode()) > MAX_ID_BYTES:
        return f"is too long for an output file name (over {MAX_ID_BYTES} bytes)"
    return None


def checked_id(stem: str, where: str) -> str:
    """The id of an image whose file is called ``stem`` (+ extension): the name in Unicode NFC
    form, which names its output files.

    Args:
        stem: the image's file name without extension (or a label file's entry).
        where: the folder or label file line, named in the message.

    Returns:
        The id, NFC-normalised.

    Raises:
        LesionPasteError: when ``name_problem`` finds one, naming the image and the reason.
    """
    problem = name_problem(stem)
    if problem:
        raise LesionPasteError(f"{where}: image name {stem!r} {problem}")
    return unicodedata.normalize("NFC", stem)


def list_folder(folder: Path) -> list[NormalImage]:
    """Every image file directly in ``folder``, sorted by name.

    Args:
        folder: the folder of images (hidden files are skipped).

    Returns:
        One unlabelled image per file.

    Raises:
        LesionPasteError: no such folder, no image in it, a name that cannot be an id, or two
            names that map to one output name.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise LesionPasteError(f"{folder}: no such folder of images")
    files = sorted(  # hidden files (such as macOS's ._NAME companions) are not images
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
    )
    if not files:
        raise LesionPasteError(f"{folder}: no images in it ({', '.join(IMAGE_SUFFIXES)})")
    return _unique([NormalImage(checked_id(p.stem, str(folder)), p) for p in files], folder)


def image_folder(folder: Path) -> Path:
    """Where a folder's images are: the folder, or its ``images/`` when the folder holds no
    image itself (a data set laid out as ``images/`` beside ``masks/``).

    Args:
        folder: the folder given.

    Returns:
        ``folder``, or ``folder / "images"``.
    """
    folder = Path(folder)
    inner = folder / "images"
    if folder.is_dir() and inner.is_dir():
        direct = (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not any(p.is_file() and not p.name.startswith(".") for p in direct):
            return inner
    return folder


def _unique(images: list[NormalImage], where) -> list[NormalImage]:
    """Refuse two images whose outputs would share a name, here or on a file system that
    ignores case or Unicode form (macOS, Windows): a dataset is shared."""
    seen: dict[str, Path] = {}
    for image in images:
        key = name_key(image.image_id)
        if key in seen:
            raise LesionPasteError(
                f"{where}: two images map to one output name {image.image_id!r} "
                f"({seen[key].name}, {image.path.name}); rename one of them"
            )
        seen[key] = image.path
    return images


def _stem(name: str) -> str:
    """A label file's image name without its extension (names may be given without one)."""
    return Path(name).stem if Path(name).suffix.lower() in IMAGE_SUFFIXES else name


def _find_image(folder: Path, name: str, by_stem: dict[str, Path]) -> Path | None:
    direct = folder / name
    if Path(name).suffix.lower() in IMAGE_SUFFIXES and direct.is_file():
        return direct
    return by_stem.get(unicodedata.normalize("NFC", _stem(name)))  # whichever form each uses


def in_training_split(image_id: str, fraction: float, seed: int) -> bool:
    """A fixed pseudo-random choice of ``fraction`` of the ids, by hash of (seed, id):
    independent of the order and number of images, so a split never moves an image.

    Args:
        image_id: the image's id.
        fraction: the share of ids in the training split, in (0, 1).
        seed: the split's seed.

    Returns:
        Whether the id falls in the training split.
    """
    digest = hashlib.sha256(f"{seed}:{image_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


#: an image id's patient for ``--split``: EyePACS-style ``10007_left``/``10007_right`` are
#: patient ``10007``, CHASE_DB1-style ``Image_01L``/``Image_01R`` are ``Image_01``; any other
#: id is its own patient
SPLIT_GROUP = r"^(.*?)(?:[_-](?:left|right)|(?<=\d)[LR])?$"


def patient_of(image_id: str, pattern: str = SPLIT_GROUP) -> str:
    """The patient an image id belongs to: the first group of ``pattern``.

    Args:
        image_id: the image's id.
        pattern: a regular expression matched at the start of the id; its first group is the
            patient (the id itself when it does not match or has no group).

    Returns:
        The patient's id.
    """
    match = re.match(pattern, image_id)
    if match is None or not match.groups() or match.group(1) is None:
        return image_id
    return match.group(1)


def split(
    images: list[NormalImage],
    part: str,
    fraction: float,
    seed: int,
    pattern: str = SPLIT_GROUP,
    diseased: frozenset[str] = frozenset(),
) -> list[NormalImage]:
    """``train``: the normal (label 0 or unlabelled) images of the patients in the training
    fraction who have no abnormal image; ``rest``: every other image (the held-out patients',
    every image of a patient with an abnormal one, and all abnormal images).

    The split is by patient (``pattern``), so both eyes of a patient fall on one side: a
    normal eye whose fellow eye is abnormal is never trained on while that eye is evaluated.

    Args:
        images: the images to split.
        part: ``"train"`` or ``"rest"``.
        fraction: the share of patients in the training split.
        seed: the split's seed.
        pattern: the regular expression whose first group is an id's patient.
        diseased: patients with an abnormal image (``patients_with_disease``), besides those
            of ``images`` own abnormal images.

    Returns:
        The images of that part, in their order.
    """
    diseased = set(diseased) | {
        patient_of(image.image_id, pattern) for image in images if image.label not in (0, None)
    }
    chosen = [
        (image.label in (0, None))
        and (patient := patient_of(image.image_id, pattern)) not in diseased
        and in_training_split(patient, fraction, seed)
        for image in images
    ]
    keep = chosen if part == "train" else [not c for c in chosen]
    return [image for image, k in zip(images, keep) if k]


def is_eyeq(labels: Path) -> bool:
    """True when a label CSV is in EyeQ's form (it has a quality column).

    Args:
        labels: the label CSV (an unreadable one is not EyeQ's).

    Returns:
        Whether its header has both ``quality`` and ``DR_grade``.
    """
    try:
        with Path(labels).open(newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return "quality" in header and "DR_grade" in header


def _label_rows(labels: Path) -> tuple[list[dict], str, str | None]:
    """A label file's rows, and its grade and quality columns (EyePACS has no quality)."""
    try:
        with labels.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise LesionPasteError(f"{labels}: not a readable CSV file ({exc})") from None
    columns = set(rows[0]) if rows else set()
    if {"image", "level"} <= columns:
        return rows, "level", None
    if {"image", "quality", "DR_grade"} <= columns:
        return rows, "DR_grade", "quality"
    raise LesionPasteError(
        f"{labels}: unknown label file; expected columns image,level (EyePACS) or "
        "image,quality,DR_grade (EyeQ)"
    )


def _grade_and_quality(
    row: dict, grade_col: str, quality_col: str | None, where: str
) -> tuple[int, int | None]:
    try:
        return int(row[grade_col]), (int(row[quality_col]) if quality_col else None)
    except (TypeError, ValueError):
        raise LesionPasteError(f"{where}: grade or quality is not a number") from None


def patients_with_disease(labels: Path, pattern: str = SPLIT_GROUP) -> frozenset[str]:
    """The patients of a label file with an image of a grade above 0 (any quality, whether the
    image is present or not): ``--split`` keeps their normal eyes out of training.

    Args:
        labels: an EyePACS or EyeQ label CSV.
        pattern: the regular expression whose first group is an id's patient.

    Returns:
        Their patient ids.

    Raises:
        LesionPasteError: an unknown or unreadable label file, or a grade that is not a number.
    """
    rows, grade_col, quality_col = _label_rows(Path(labels))
    out = set()
    for line, row in enumerate(rows, start=2):
        grade, _ = _grade_and_quality(row, grade_col, quality_col, f"{labels}, line {line}")
        if grade > 0:
            out.add(patient_of(_stem((row["image"] or "").strip()), pattern))
    return frozenset(out)


def read_label_file(
    labels: Path,
    images: Path,
    grades: set[int] | None = None,
    quality: str | None = None,
) -> tuple[list[NormalImage], list[dict]]:
    """Images listed in an EyePACS (``image,level``) or EyeQ (``image,quality,DR_grade``) file.

    Args:
        labels: the CSV file.
        images: the folder holding the images (names with or without their extension).
        grades: keep only these DR grades (e.g. ``{0}`` for normals).
        quality: EyeQ only: keep ``good`` (0), ``usable`` (1) or ``reject`` (2) images.

    Returns:
        The images found, and ``{"id", "reason"}`` records for listed images that are missing.

    Raises:
        LesionPasteError: no such file or folder, an unknown or unreadable label file, a
            grade that is not a number, ``quality`` without a quality column, a name that
            cannot be an id, two names mapping to one output name, or no image left.
    """
    labels, images = Path(labels), Path(images)
    if not labels.is_file():
        raise LesionPasteError(f"{labels}: no such label file")
    if not images.is_dir():
        raise LesionPasteError(f"{images}: no such folder of images")
    rows, grade_col, quality_col = _label_rows(labels)
    if quality is not None and quality_col is None:
        raise LesionPasteError(
            f"--quality needs an EyeQ label file; {labels.name} has no quality column"
        )
    wanted_quality = QUALITY[quality] if quality else None
    by_stem = {
        unicodedata.normalize("NFC", p.stem): p
        for p in images.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES
    }
    found, missing = [], []
    for line, row in enumerate(rows, start=2):
        grade, q = _grade_and_quality(row, grade_col, quality_col, f"{labels}, line {line}")
        if grades is not None and grade not in grades:
            continue
        if wanted_quality is not None and q != wanted_quality:
            continue
        name = (row["image"] or "").strip()
        # the whole entry is checked: a path separator would vanish from its stem
        image_id = _stem(checked_id(name, f"{labels}, line {line}"))
        path = _find_image(images, name, by_stem)
        if path is None:
            missing.append(
                {"id": image_id, "reason": f"listed in {labels.name} but not in {images}"}
            )
            continue
        found.append(NormalImage(image_id, path, grade))
    if not found:
        raise LesionPasteError(f"{labels}: no image matches the filters (or none is in {images})")
    return _unique(found, labels), missing
