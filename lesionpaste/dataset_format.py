"""The shareable dataset format (schema versions 1 and 2): its one writer, reader and verifier.

A dataset is a directory::

    dataset.json      written last: schema, kind, counts, configuration, bank, provenance
    manifest.csv      path,label,twin_id,tier,n_lesions,mask_path,sha256 (one row per image)
    pastes.jsonl      synthetic sets: one JSON line per anomalous image, every paste recorded
    masks.jsonl       evaluation sets with masks: one JSON line per image with a mask
    README.md         the dataset card (licences and attribution of the sources)
    images/normal/ID.png, images/anomalous/ID.png, masks/ID.png     (synthetic)
    images/ID.png                                                   (evaluation)
    masks/ID.png, masks/TYPE/ID.png                                 (evaluation, schema 2)

Schema 2 is an evaluation set with ground-truth lesion masks (``dataset.json["masks"]``); every
other dataset is written as schema 1, as before masks existed.

Datasets come from other people, so every reader here refuses with one line: absolute paths,
``..`` and links leaving the directory, files that are not regular files (a FIFO would block
a reader for ever), JSON nested absurdly deep or too long, and images whose header claims more
than the pixel limit (``lesionpaste.images``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import unicodedata
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import numpy as np

from lesionpaste.digests import sha256_bytes, sha256_file
from lesionpaste.errors import LesionPasteError
from lesionpaste.file_names import CARD, DATASET_RECORD, MANIFEST, MASKS_RECORD, PASTES
from lesionpaste.file_names import DATASET_FORMAT as FORMAT
from lesionpaste.files import open_regular
from lesionpaste.images import decode
from lesionpaste.jsonfiles import json_lines, read_json_file

SCHEMA_VERSION = 1
#: an evaluation set with ground-truth masks (``masks.jsonl``, ``dataset.json["masks"]``)
MASKS_SCHEMA_VERSION = 2
#: the schema versions a reader takes, by kind
SCHEMA_VERSIONS = {"synthetic": (1,), "evaluation": (1, 2)}
MANIFEST_COLUMNS = ["path", "label", "twin_id", "tier", "n_lesions", "mask_path", "sha256"]
KINDS = ("synthetic", "evaluation")


def manifest_text(rows: Iterable[dict]) -> str:
    """``manifest.csv``: the header, then one line per row (its values in ``MANIFEST_COLUMNS``
    order, a missing one empty), quoted as CSV requires so that any image name round-trips.

    Args:
        rows: one dict per image, keyed by ``MANIFEST_COLUMNS`` names.

    Returns:
        The CSV text, one line per row, ending each in a newline.
    """
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    for row in rows:
        writer.writerow([row.get(column, "") for column in MANIFEST_COLUMNS])
    return text.getvalue()


def pastes_text(records: Iterable[dict]) -> str:
    """``pastes.jsonl``: one JSON object per anomalous twin, keys sorted.

    Args:
        records: one JSON-ready dict per anomalous twin.

    Returns:
        The JSON-lines text, one line per record (empty for no record).
    """
    return "".join(json.dumps(record, sort_keys=True) + "\n" for record in records)


def masks_text(records: Iterable[dict]) -> str:
    """``masks.jsonl``: one JSON object per evaluation image with a mask, keys sorted.

    Args:
        records: ``{"id", "mask_path", "mask_sha256", "types": {TYPE: {"path", "sha256"}}}``
            per image with a mask.

    Returns:
        The JSON-lines text, one line per record.
    """
    return "".join(json.dumps(record, sort_keys=True) + "\n" for record in records)


def dataset_json_text(meta: dict) -> str:
    """``dataset.json`` for ``meta`` (its ``format`` and ``schema_version`` set here), keys
    sorted and indented so that two datasets compare line by line.

    Args:
        meta: the dataset's description (kind, counts, configuration, files...).

    Returns:
        The JSON text, ending in a newline.
    """
    meta = {**meta, "format": FORMAT, "schema_version": schema_version_of(meta)}
    return json.dumps(meta, indent=2, sort_keys=True) + "\n"


def schema_version_of(meta: dict) -> int:
    """The schema version a dataset is written as: 2 for an evaluation set with masks, else 1.

    Args:
        meta: the dataset's description (``dataset.json`` content, with or without
            ``masks``).

    Returns:
        ``MASKS_SCHEMA_VERSION`` when ``meta`` has ``masks``, else ``SCHEMA_VERSION``.
    """
    return MASKS_SCHEMA_VERSION if "masks" in meta else SCHEMA_VERSION


def has_control_character(text: str) -> bool:
    """Whether ``text`` holds a control character (Unicode category Cc: C0, DEL and C1).

    Args:
        text: the string to check.

    Returns:
        True when any character is a control character.
    """
    return any(unicodedata.category(c) == "Cc" for c in text)


def is_safe_relative(text: str) -> bool:
    """Whether a path taken from a received file is safe to join to a folder: not empty,
    relative, no ``..``, no backslash, no leading ``~``, no control characters.

    Args:
        text: a POSIX path (from a manifest, ``dataset.json``, an archive's member names...).

    Returns:
        Whether it is safe (links are not looked at: ``safe_path`` does that on disk).
    """
    pure = PurePosixPath(text)
    return not (
        not text
        or has_control_character(text)
        or pure.is_absolute()
        or "\\" in text
        or ".." in pure.parts
        or text.startswith("~")
    )


def safe_path(root: Path, relative: str) -> Path:
    """``root / relative``, refusing absolute paths, ``..``, and links that leave ``root``.

    Args:
        root: the dataset directory.
        relative: a POSIX path from the dataset's files (manifest, ``dataset.json``...).

    Returns:
        ``root / relative`` (not resolved).

    Raises:
        LesionPasteError: an empty, absolute, ``~``, backslash or ``..`` path, one with
            control characters, or one that leads outside ``root`` through a link.
    """
    text = str(relative)
    if not is_safe_relative(text):
        raise LesionPasteError(
            f"unsafe path {text!r} in the dataset {root} (must be relative, no '..', no control "
            "characters)"
        )
    path = Path(root) / PurePosixPath(text)
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(path))
    if real != real_root and real_root not in real.parents:
        raise LesionPasteError(f"path {text!r} in the dataset {root} leads outside it (a link?)")
    return path


def read_dataset_json(root: Path) -> dict:
    """``dataset.json`` of a dataset directory, checked for format, schema version and kind.

    Args:
        root: the dataset directory.

    Returns:
        The parsed ``dataset.json``.

    Raises:
        LesionPasteError: no such directory, no (or an unreadable, oversized or malformed)
            ``dataset.json``, another format, schema version or kind, or ``counts``,
            ``config`` or ``files`` that is not a JSON object.
    """
    root = Path(root)
    path = root / DATASET_RECORD
    if not root.is_dir():
        raise LesionPasteError(f"{root}: no such dataset directory")
    if not os.path.lexists(path):
        raise LesionPasteError(f"{root}: no dataset.json (not a dataset, or an unfinished run)")
    return check_dataset_meta(read_json_file(path), path)


def check_dataset_meta(meta: object, path: object) -> dict:
    """A parsed ``dataset.json``, checked for format, schema version and kind (what
    ``read_dataset_json`` checks, for a ``dataset.json`` read from elsewhere, e.g. an archive).

    Args:
        meta: the parsed JSON.
        path: where it came from, named in the messages.

    Returns:
        ``meta``, a dict.

    Raises:
        LesionPasteError: another format, schema version or kind, or ``counts``, ``config``
            or ``files`` that is not a JSON object.
    """
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise LesionPasteError(f"{path}: not a LesionPaste dataset description")
    version = meta.get("schema_version")
    kind = meta.get("kind") if isinstance(meta.get("kind"), str) else None
    versions = SCHEMA_VERSIONS.get(kind, (SCHEMA_VERSION, MASKS_SCHEMA_VERSION))
    if isinstance(version, bool) or version not in versions:
        plural = "s" if len(versions) > 1 else ""
        raise LesionPasteError(
            f"{path}: dataset schema version {version!r} is not supported; "
            f"this lesionpaste reads version{plural} {' and '.join(map(str, versions))}"
        )
    if meta.get("kind") not in KINDS:
        raise LesionPasteError(f"{path}: unknown dataset kind {meta.get('kind')!r}")
    for key in ("counts", "config", "files"):
        if not isinstance(meta.get(key, {}), dict):
            raise LesionPasteError(f"{path}: {key!r} is not a JSON object")
    if version == MASKS_SCHEMA_VERSION and not isinstance(meta.get("masks"), dict):
        raise LesionPasteError(f"{path}: schema version 2 needs 'masks', a JSON object")
    return meta


def read_manifest(root: Path) -> list[dict]:
    """The manifest rows: safe paths, integer labels, no path twice, at least one row.

    Args:
        root: the dataset directory.

    Returns:
        One dict per ``manifest.csv`` row, keyed by ``MANIFEST_COLUMNS`` (values are strings).

    Raises:
        LesionPasteError: no (or an unreadable) ``manifest.csv``, other columns, a row with
            the wrong number of fields, an unsafe path, a path listed twice, a label that is
            not an integer, a tier or lesion count that is not a whole number, or no row.
    """
    path = Path(root) / MANIFEST
    if not os.path.lexists(path):
        raise LesionPasteError(f"{root}: no manifest.csv")
    try:
        with open_regular(path, "CSV file") as raw:
            reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
            if reader.fieldnames != MANIFEST_COLUMNS:
                raise LesionPasteError(
                    f"{path}: unexpected columns {reader.fieldnames}; expected "
                    + ",".join(MANIFEST_COLUMNS)
                )
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise LesionPasteError(f"{path}: not a readable CSV file ({exc})") from None
    seen: set[str] = set()
    for line, row in enumerate(rows, start=2):
        if None in row or any(v is None for v in row.values()):
            raise LesionPasteError(f"{path}, line {line}: wrong number of fields")
        safe_path(root, row["path"])
        if row["mask_path"]:
            safe_path(root, row["mask_path"])
        if row["path"] in seen:
            raise LesionPasteError(f"{path}, line {line}: {row['path']} is listed twice")
        seen.add(row["path"])
        try:
            int(row["label"])
        except ValueError:
            raise LesionPasteError(
                f"{path}, line {line}: label {row['label']!r} is not an integer"
            ) from None
        for column in ("tier", "n_lesions"):  # empty where an image has none
            if row[column] and not _is_count(row[column]):
                raise LesionPasteError(
                    f"{path}, line {line}: {column} {row[column]!r} is not a whole number"
                )
    if not rows:
        raise LesionPasteError(f"{path}: the manifest lists no image")
    return rows


def _is_count(text: str) -> bool:
    """Whether a manifest cell is a whole number written in ASCII digits (at most nine)."""
    return text.isascii() and text.isdigit() and len(text) <= 9


def count_cell(text: str) -> int | None:
    """A ``tier`` or ``n_lesions`` cell of a manifest that ``read_manifest`` has checked.

    Args:
        text: the cell as read.

    Returns:
        The whole number, or None where the cell is empty.
    """
    return int(text) if text != "" else None


def repeated_id(rows: list[dict], kind: str | None) -> str | None:
    """A twin id listed too often: twice with one label (a synthetic set pairs one normal
    with one anomalous image per id), or twice at all in an evaluation set; else None.

    Args:
        rows: the manifest rows (``read_manifest``).
        kind: the dataset's kind, ``"synthetic"`` or ``"evaluation"``.

    Returns:
        The first twin id found too often, or None.
    """
    seen: set = set()
    for row in rows:
        key = row["twin_id"] if kind == "evaluation" else (row["twin_id"], row["label"])
        if key in seen:
            return row["twin_id"]
        seen.add(key)
    return None


def read_image(root: Path, relative: str, flags: int, sha256: str | None = None) -> np.ndarray:
    """One image of a dataset, decoded with OpenCV ``flags`` (BGR order, as OpenCV gives it).

    Args:
        root: the dataset directory.
        relative: the image's path in it (checked by ``safe_path``).
        flags: ``cv2.IMREAD_*``.
        sha256: when given, the bytes must have this digest.

    Returns:
        The decoded image as OpenCV gives it (BGR or grey), of the file's dtype.

    Raises:
        LesionPasteError: unsafe path, missing or non-regular file, digest mismatch, a header
            over the pixel limit, a truncated or unreadable image.
    """
    path = safe_path(root, relative)
    with open_regular(path, "PNG image") as fh:
        data = fh.read()
    if sha256 is not None and sha256_bytes(data) != sha256:
        raise LesionPasteError(f"{root}: {relative} does not match its sha256 (damaged or altered)")
    return decode(data, f"{root}: {relative}", flags)


def _inside(root: Path, message: str) -> str:
    """A problem's message without the dataset's own path in front: the caller names it."""
    prefix = f"{root}: "
    return message.removeprefix(prefix)


def verify(root: Path) -> list[str]:
    """Every problem found in a dataset (empty when it is whole): schema, counts, paths, and
    the sha256 of every image, mask and metadata file.

    Args:
        root: the dataset directory.

    Returns:
        One line per problem (paths relative to ``root``); empty when the dataset is whole.
    """
    problems: list[str] = []
    try:
        meta = read_dataset_json(root)
        rows = read_manifest(root)
    except LesionPasteError as exc:
        return [_inside(root, str(exc))]
    for name, digest in meta.get("files", {}).items():
        try:
            problems.extend(_file_problems(root, name, digest, DATASET_RECORD))
        except (OSError, LesionPasteError) as exc:  # an unsafe name, an unreadable file
            problems.append(f"{name}: {_inside(root, str(exc))}")
    for row in rows:
        problems.extend(_file_problems(root, row["path"], row["sha256"], "the manifest"))
    twin = repeated_id(rows, meta.get("kind"))
    if twin is not None:
        problems.append(f"manifest.csv: twin id {twin!r} is listed more than once")
    labels = [int(r["label"]) for r in rows]
    counts = meta.get("counts", {})
    if counts.get("images") != len(rows):
        problems.append(
            f"dataset.json counts {counts.get('images')} images, manifest has {len(rows)}"
        )
    if meta["kind"] == "synthetic":
        if counts.get("normal") != labels.count(0) or counts.get("anomalous") != labels.count(1):
            problems.append("dataset.json normal/anomalous counts differ from the manifest")
        if set(labels) - {0, 1}:
            problems.append("a synthetic dataset has labels other than 0 and 1")
        problems.extend(_verify_masks(root, rows))
    else:
        problems.extend(_verify_evaluation_masks(root, meta, rows))
    return problems


#: the dataset's files that are not images or masks, in the order an archive holds them
METADATA_FILES = (DATASET_RECORD, MANIFEST, CARD, PASTES, MASKS_RECORD)


def listed_files(root: Path) -> list[str]:
    """Every file a dataset consists of, as the dataset itself lists them: ``dataset.json``,
    ``manifest.csv``, the metadata files (``dataset.json``'s ``files``, a synthetic set's
    ``pastes.jsonl``, an evaluation set's ``masks.jsonl``, the card ``README.md`` when there),
    then each manifest row's image and mask and each per-type mask of ``masks.jsonl``.

    Args:
        root: the dataset directory.

    Returns:
        Relative POSIX paths, each once: the metadata files first (``dataset.json`` first,
        ``manifest.csv`` second), then the images and masks in manifest order.

    Raises:
        LesionPasteError: not a dataset, or a manifest, ``dataset.json`` or ``masks.jsonl``
            that cannot be read or names an unsafe path.
    """
    meta = read_dataset_json(root)
    rows = read_manifest(root)
    metadata = {DATASET_RECORD, MANIFEST, *meta.get("files", {})}
    if meta["kind"] == "synthetic":
        metadata.add(PASTES)
    if "masks" in meta:
        metadata.add(MASKS_RECORD)
    if os.path.isfile(Path(root) / CARD):
        metadata.add(CARD)
    order = {name: i for i, name in enumerate(METADATA_FILES)}
    names = sorted(metadata, key=lambda n: (order.get(n, len(order)), n))
    for row in rows:
        names += [row["path"], row["mask_path"]] if row["mask_path"] else [row["path"]]
    if meta["kind"] == "evaluation" and "masks" in meta:
        records, _problems = read_mask_index(root, rows)
        names += [e["path"] for r in records.values() for e in r["types"].values()]
    for name in names:
        safe_path(root, name)
    return list(dict.fromkeys(names))


def _file_problems(root: Path, relative: str, digest: str | None, listed_in: str) -> list[str]:
    """What is wrong with one listed file: missing, not a regular file, another sha256."""
    path = safe_path(root, relative)
    if not os.path.lexists(path):
        return [f"{relative}: missing"]
    try:
        if digest is not None and sha256_file(path) != digest:
            return [f"{relative}: sha256 differs from {listed_in}"]
    except LesionPasteError as exc:
        return [str(exc)]
    return []


def read_mask_digests(root: Path) -> tuple[dict[str, str], list[str]]:
    """``pastes.jsonl``'s sha256 of every mask (``mask_path -> digest``), and a problem line
    for each malformed record.

    Args:
        root: the dataset directory.

    Returns:
        ``(digests, problems)``: ``{mask_path: hex sha256}``, and one line per malformed record.

    Raises:
        LesionPasteError: no ``pastes.jsonl``, or one that cannot be read as JSON lines.
    """
    path = Path(root) / PASTES
    if not os.path.lexists(path):
        raise LesionPasteError(f"{root}: pastes.jsonl: missing")
    recorded, problems = {}, []
    for number, record in json_lines(path):
        try:
            recorded[record["mask_path"]] = record["mask_sha256"]
        except (KeyError, TypeError):
            problems.append(f"pastes.jsonl, line {number}: a malformed line")
    return recorded, problems


def _verify_masks(root: Path, rows: list[dict]) -> list[str]:
    try:
        recorded, problems = read_mask_digests(root)
    except LesionPasteError as exc:
        return [_inside(root, str(exc))]
    for row in rows:
        if row["mask_path"]:
            digest = recorded.get(row["mask_path"])
            if digest is None:
                problems.append(f"{row['mask_path']}: no paste record")
            else:
                problems.extend(_file_problems(root, row["mask_path"], digest, PASTES))
    return problems


def _mask_record_problem(record: object) -> str | None:
    """What is malformed in one ``masks.jsonl`` record, or None when it is well formed."""
    if not isinstance(record, dict):
        return "a malformed line"
    for key in ("id", "mask_path", "mask_sha256"):
        if not isinstance(record.get(key), str):
            return f"a malformed line (no {key})"
    types = record.get("types")
    if not isinstance(types, dict):
        return "a malformed line ('types' is not a JSON object)"
    for name, entry in types.items():
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("path"), str)
            and isinstance(entry.get("sha256"), str)
        ):
            return f"a malformed line (type {name!r} lacks its path or sha256)"
    return None


def _mask_record_disagreement(
    root: Path, record: dict, manifest: dict[str, str], seen: dict[str, dict]
) -> str | None:
    """How a well-formed record disagrees with the manifest, or None; its paths must be safe
    (``safe_path``, which raises for one that is not)."""
    image_id = record["id"]
    if image_id not in manifest:
        return f"image {image_id!r} is not in the manifest"
    if image_id in seen:
        return f"image {image_id!r} is listed twice"
    if record["mask_path"] != manifest[image_id]:
        return (
            f"mask_path {record['mask_path']!r} of {image_id!r} differs from the manifest's "
            f"({manifest[image_id]!r})"
        )
    for relative in [record["mask_path"], *(e["path"] for e in record["types"].values())]:
        safe_path(root, relative)
    return None


def read_mask_index(root: Path, rows: list[dict]) -> tuple[dict[str, dict], list[str]]:
    """An evaluation set's ``masks.jsonl``: each image's mask record by id, checked against
    the manifest, and a problem line for each record that is malformed or disagrees with it.

    Every path in it is checked by ``safe_path``, as the manifest's are: no absolute path, no
    ``..``, no link leading out of the dataset.

    Args:
        root: the dataset directory.
        rows: its manifest rows (``read_manifest``).

    Returns:
        ``(records, problems)``: ``{id: {"id", "mask_path", "mask_sha256", "types": {TYPE:
        {"path", "sha256"}}}}`` for the well-formed records that agree with the manifest, and
        one line per problem (a row with a ``mask_path`` but no record included).

    Raises:
        LesionPasteError: no ``masks.jsonl``, one that cannot be read as JSON lines, or an
            unsafe path in it.
    """
    path = Path(root) / MASKS_RECORD
    if not os.path.lexists(path):
        raise LesionPasteError(f"{root}: masks.jsonl: missing")
    manifest = {row["twin_id"]: row["mask_path"] for row in rows}
    records: dict[str, dict] = {}
    problems: list[str] = []
    for number, record in json_lines(path):
        problem = _mask_record_problem(record)
        if problem is None:
            problem = _mask_record_disagreement(root, record, manifest, records)
        if problem is not None:
            problems.append(f"masks.jsonl, line {number}: {problem}")
            continue
        records[record["id"]] = record
    for image_id, mask_path in manifest.items():
        if mask_path and image_id not in records:
            problems.append(f"{mask_path}: no record in masks.jsonl")
    return records, problems


def _verify_evaluation_masks(root: Path, meta: dict, rows: list[dict]) -> list[str]:
    """The problems of an evaluation set's masks: ``masks.jsonl``, every mask's sha256, and
    ``dataset.json["masks"]`` against them."""
    with_masks = [row for row in rows if row["mask_path"]]
    if "masks" not in meta:
        if with_masks:
            return ["manifest.csv: rows give a mask_path, but dataset.json has no 'masks'"]
        return []
    problems = []
    if MASKS_RECORD not in meta.get("files", {}):
        problems.append("dataset.json: 'files' does not list masks.jsonl")
    try:
        records, found = read_mask_index(root, rows)
    except LesionPasteError as exc:
        return [*problems, _inside(root, str(exc))]
    problems += found
    for record in records.values():
        listed = [(record["mask_path"], record["mask_sha256"])]
        listed += [(e["path"], e["sha256"]) for e in record["types"].values()]
        for relative, digest in listed:
            problems.extend(_file_problems(root, relative, digest, MASKS_RECORD))
    summary = meta["masks"]
    if summary.get("images_with_masks") != len(with_masks):
        problems.append(
            f"dataset.json counts {summary.get('images_with_masks')!r} images with masks, "
            f"manifest has {len(with_masks)}"
        )
    types = summary.get("types")
    used = {t for record in records.values() for t in record["types"]}
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        problems.append("dataset.json: masks 'types' is not a list of names")
    elif used - set(types):
        problems.append(f"dataset.json: masks 'types' lacks {sorted(used - set(types))}")
    return problems


def ids_of_sources(sources: object, where: str = "the bank") -> set[str]:
    """The ids of a bank's sources (the images its lesions were cut from), e.g. ``IDRiD_03``
    or ``study_0255:z012`` (a slice of a volume).

    Args:
        sources: a bank's ``sources`` list (``BankMeta.sources``, or ``dataset.json``'s
            ``bank.sources``): one object with an ``id`` per source.
        where: what holds them, named in the message.

    Returns:
        The source ids.

    Raises:
        LesionPasteError: ``sources`` is not a list of objects with a text ``id``.
    """
    if not isinstance(sources, list) or not all(
        isinstance(s, dict) and isinstance(s.get("id"), str) for s in sources
    ):
        raise LesionPasteError(f"{where}: 'sources' is not a list of sources with an id")
    return {s["id"] for s in sources}


def bank_source_ids(meta: dict) -> set[str]:
    """The ids of the bank sources a ``dataset.json`` records (``bank.sources[].id``): the
    images whose lesions the dataset's bank holds, which no evaluation set may contain.

    Args:
        meta: a ``dataset.json`` (``read_dataset_json``).

    Returns:
        The source ids; empty when ``meta`` records no bank or no sources.

    Raises:
        LesionPasteError: ``bank`` is not a JSON object, or its ``sources`` is not a list of
            sources with a text ``id``.
    """
    bank = meta.get("bank", {})
    if not isinstance(bank, dict):
        raise LesionPasteError("dataset.json: 'bank' is not a JSON object")
    return ids_of_sources(bank.get("sources", []), "dataset.json's bank")


def name_key(text: str) -> str:
    """How names and ids compare when files are shared: Unicode NFC, case folded, as they
    collide on file systems that ignore case or Unicode form (macOS, Windows).

    Args:
        text: a file name, path or id.

    Returns:
        Its comparison key.
    """
    return unicodedata.normalize("NFC", text).casefold()


def source_patient(source_id: str) -> str:
    """The comparison key of the patient a bank source comes from: the id itself, or for a
    slice of a volume (``study_0255:z012``) the volume's (``study_0255``), in ``name_key``
    form.

    Args:
        source_id: a bank source id.

    Returns:
        The key; two sources of one patient have the same key.
    """
    return name_key(source_id.split(":", 1)[0])


def source_images_in(rows: Iterable[dict], source_ids: Iterable[str]) -> list[str]:
    """The ids of the evaluation rows that are bank sources: the same id (``IDRiD_03``), or
    for a source that is a slice of a volume (``study_0255:z012``) any slice of that volume
    (``study_0255``, ``study_0255_z040``), since it is the same patient. Ids compare in
    Unicode NFC form, ignoring case.

    Args:
        rows: evaluation rows, each with its id as ``twin_id`` (manifest rows).
        source_ids: the bank's source ids (``bank_source_ids``).

    Returns:
        The matching rows' ids, in row order, each once.
    """
    exact, volumes = set(), set()
    for source in source_ids:
        exact.add(name_key(source))
        if ":" in source:
            volumes.add(source_patient(source))
    found: dict[str, None] = {}
    for row in rows:
        image_id = str(row["twin_id"])
        key = name_key(image_id)
        if key in exact or key in volumes or any(key.startswith(v + "_") for v in volumes):
            found[image_id] = None
    return list(found)
