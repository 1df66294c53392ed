"""What ``lp-predict`` scores: image files, folders of them, CSV files listing them (their other
columns carried through), DICOM slices and NIfTI volumes (one item per axial slice)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from lesionpaste.ct_files import NIFTI_SUFFIXES, is_nifti, load_nifti
from lesionpaste.errors import LesionPasteError
from lesionpaste.files import read_regular_file
from lesionpaste.images import IMAGE_SUFFIXES

#: the columns of a CSV that may name the image, in the order they are looked for
PATH_COLUMNS = ("path", "image", "file", "filename")
#: the longest CSV listing read (a million rows of paths is well under it)
MAX_CSV_BYTES = 256 << 20


@dataclass(frozen=True)
class Item:
    """One image to score.

    Attributes:
        input: the file as listed (the path given, found in a folder, or read from a CSV).
        path: the file to read.
        image_id: a name for it: the path relative to the folder it was found in, without its
            suffix (a NIfTI slice: ``NAME_zNNN``).
        slice_index: the axial slice of a NIfTI volume, else None.
        extra: a CSV row's other columns.
        missing: why it cannot be read (a CSV naming a file that does not exist), else None.
    """

    input: str
    path: Path
    image_id: str
    slice_index: int | None = None
    extra: dict[str, str] = field(default_factory=dict)
    missing: str | None = None

    @property
    def key(self) -> str:
        """The item's key in ``predictions.csv``.

        Returns:
            Its input, with ``#SLICE`` for a slice of a volume.
        """
        return row_key(self.input, self.slice_index)


def row_key(input_: str, slice_index: int | None) -> str:
    """How ``predictions.csv`` (and ``prediction.json``) key an image: its input, with
    ``#SLICE`` for a slice of a volume.

    Args:
        input_: the file as listed.
        slice_index: the axial slice of a volume, or None.

    Returns:
        The key.
    """
    return input_ if slice_index is None else f"{input_}#{slice_index}"


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES or path.name.lower().endswith(NIFTI_SUFFIXES)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _volume_items(path: Path, image_id: str, extra: dict[str, str]) -> list[Item]:
    image, _ = load_nifti(path)
    return [Item(str(path), path, f"{image_id}_z{z:03d}", z, extra) for z in range(image.shape[2])]


def _file_items(path: Path, image_id: str, extra: dict[str, str] | None = None) -> list[Item]:
    if is_nifti(path):
        return _volume_items(path, image_id, extra or {})
    return [Item(str(path), path, image_id, None, extra or {})]


def _folder_items(folder: Path) -> list[Item]:
    files = sorted(
        p
        for p in folder.rglob("*")
        if _is_image(p)
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    items = []
    for p in files:
        relative = p.relative_to(folder)
        items += _file_items(p, (relative.parent / _stem(p)).as_posix())
    return items


def _resolve(name: str, base: Path) -> Path | None:
    """A CSV's image name as a file: as written (relative to the CSV's folder), or in its
    ``images/`` folder, with one of the image suffixes added when it has none."""
    candidates = [Path(name)] if Path(name).is_absolute() else [base / name, base / "images" / name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
        for suffix in IMAGE_SUFFIXES:
            with_suffix = candidate.with_name(candidate.name + suffix)
            if with_suffix.is_file():
                return with_suffix
    return None


def _csv_items(listing: Path) -> tuple[list[Item], list[str]]:
    text = read_regular_file(listing, MAX_CSV_BYTES, "CSV listing")
    try:
        reader = csv.DictReader(io.StringIO(text.decode("utf-8-sig")))
        rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise LesionPasteError(f"{listing}: not a readable CSV file ({exc})") from None
    columns = [c for c in reader.fieldnames or [] if c]
    column = next((c for c in PATH_COLUMNS if c in columns), None)
    if column is None:
        raise LesionPasteError(
            f"{listing}: no column naming the images ({', '.join(PATH_COLUMNS)})"
        )
    carried = [c for c in columns if c != column]
    items = []
    for number, row in enumerate(rows, start=2):
        name = (row.get(column) or "").strip()
        extra = {c: row.get(c) or "" for c in carried}
        path = _resolve(name, listing.parent) if name else None
        if path is None:
            reason = "no file of that name" if name else f"line {number}: no image named"
            items.append(Item(name, listing.parent / name, Path(name).stem, None, extra, reason))
        else:
            items += _file_items(path, _stem(Path(name)), extra)
    return items, carried


def list_inputs(inputs: list[Path]) -> tuple[list[Item], list[str]]:
    """Every image the inputs name, in order, with the CSV columns carried through.

    Args:
        inputs: image files, NIfTI volumes, folders (searched recursively, hidden entries
            skipped) and CSV files (a ``path``, ``image``, ``file`` or ``filename`` column;
            names relative to the CSV's folder or its ``images/`` folder, with or without
            their suffix).

    Returns:
        ``(items, carried)``: the images (one per slice of a volume; a CSV row naming no
        existing file is an item with ``missing`` set), and the CSV columns carried.

    Raises:
        LesionPasteError: an input that does not exist or is of no known kind, an unreadable
            CSV or volume, or no image at all.
    """
    items: list[Item] = []
    carried: list[str] = []
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            found = _folder_items(path)
            if not found:
                raise LesionPasteError(f"{path}: no images in it ({', '.join(IMAGE_SUFFIXES)})")
            items += found
        elif path.suffix.lower() == ".csv":
            found, columns = _csv_items(path)
            items += found
            carried += [c for c in columns if c not in carried]
        elif not path.exists():
            raise LesionPasteError(f"{path}: no such file or folder")
        elif _is_image(path):
            items += _file_items(path, _stem(path))
        else:
            raise LesionPasteError(
                f"{path}: not an image ({', '.join(IMAGE_SUFFIXES)}, .nii, .nii.gz), a folder "
                "or a CSV listing"
            )
    unique = list({item.key: item for item in reversed(items)}.values())[::-1]
    if not unique:
        raise LesionPasteError("no image to score in the inputs")
    return unique, carried
