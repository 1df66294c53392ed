"""The lesion bank file (HDF5, schema version 1): the one writer and the one reader.

Layout::

    /                      attributes: format, schema_version, modality, channels,
                           lesion_types, preprocess, sources, tool_version, command
    /lesions/pixels        uint8 [sum(h*w*C)]  every patch, row-major, concatenated
    /lesions/masks         uint8 [sum(h*w)]    every component mask (0/1), concatenated
    /lesions/type          uint8 [N]           index into ``lesion_types``
    /lesions/source        uint16 [N]          index into ``sources``
    /lesions/bbox          int32 [N, 4]        y, x, h, w in the (preprocessed) source
    /lesions/area          int64 [N]           pixels in the component
    /sources/histogram     uint64 [S, C, 256]  histogram of each source's field of view

Lesion ``i`` occupies ``pixels[o_i : o_i + h_i*w_i*C]`` where ``o_i`` is the running sum of the
earlier patches' sizes (likewise for masks), so offsets are derived, never stored.
JSON-valued attributes (``lesion_types``, ``preprocess``, ``sources``) are UTF-8 strings.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from lesionpaste.digests import sha256_file
from lesionpaste.errors import LesionPasteError
from lesionpaste.file_names import BANK_FORMAT

FORMAT = BANK_FORMAT
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Lesion:
    """One isolated lesion region.

    Attributes:
        patch: ``(h, w, C)`` ``uint8`` pixels of the (preprocessed) source inside the bounding box.
        mask: ``(h, w)`` boolean mask of exactly this connected component (not of the box).
        lesion_type: type name, e.g. ``"MA"`` or ``"COVID"``.
        source: index of the source image in the bank.
        bbox: ``(y, x, h, w)`` of the box in the source image.
        area: number of pixels in the component.
    """

    patch: np.ndarray
    mask: np.ndarray
    lesion_type: str
    source: int
    bbox: tuple[int, int, int, int]
    area: int


@dataclass
class BankMeta:
    """Everything about a bank but its pixels."""

    modality: str
    channels: int
    lesion_types: list[str]
    preprocess: dict
    sources: list[dict]
    tool_version: str
    command: str
    schema_version: int = SCHEMA_VERSION


def write_bank(path: Path, meta: BankMeta, lesions: list[Lesion], histograms: np.ndarray) -> None:
    """Write a bank to ``path`` (the caller makes it atomic). Output is byte-reproducible.

    Args:
        path: the HDF5 file to write (created or truncated).
        meta: the bank's attributes; ``meta.lesion_types`` must name every lesion's type.
        lesions: the lesions, in the order they are stored.
        histograms: ``(S, C, 256)`` counts of each source's field of view (stored as
            ``uint64``).
    """
    type_index = {t: i for i, t in enumerate(meta.lesion_types)}
    c = meta.channels
    pixels = np.concatenate([lesion.patch.reshape(-1) for lesion in lesions])
    masks = np.concatenate([lesion.mask.reshape(-1) for lesion in lesions]).astype(np.uint8)
    with h5py.File(path, "w", track_order=True) as f:
        f.attrs["format"] = FORMAT
        f.attrs["schema_version"] = np.int64(meta.schema_version)
        f.attrs["modality"] = meta.modality
        f.attrs["channels"] = np.int64(c)
        f.attrs["lesion_types"] = json.dumps(meta.lesion_types)
        f.attrs["preprocess"] = json.dumps(meta.preprocess, sort_keys=True)
        f.attrs["sources"] = json.dumps(meta.sources, sort_keys=True)
        f.attrs["tool_version"] = meta.tool_version
        f.attrs["command"] = meta.command
        g = f.create_group("lesions")
        opts = {"track_times": False}
        g.create_dataset("pixels", data=pixels, **opts)
        g.create_dataset("masks", data=masks, **opts)
        g.create_dataset(
            "type", data=np.array([type_index[l.lesion_type] for l in lesions], np.uint8), **opts
        )
        g.create_dataset("source", data=np.array([l.source for l in lesions], np.uint16), **opts)
        g.create_dataset("bbox", data=np.array([l.bbox for l in lesions], np.int32), **opts)
        g.create_dataset("area", data=np.array([l.area for l in lesions], np.int64), **opts)
        s = f.create_group("sources")
        s.create_dataset("histogram", data=histograms.astype(np.uint64), **opts)


@dataclass
class Bank:
    """A bank read into memory. ``lesion(i)`` gives one lesion; arrays are per lesion."""

    path: Path
    sha256: str
    meta: BankMeta
    types: np.ndarray
    sources: np.ndarray
    bbox: np.ndarray
    area: np.ndarray
    histograms: np.ndarray
    _pixels: np.ndarray = field(repr=False)
    _masks: np.ndarray = field(repr=False)
    _pixel_offsets: np.ndarray = field(repr=False)
    _mask_offsets: np.ndarray = field(repr=False)

    def __len__(self) -> int:
        return len(self.types)

    _cache: dict = field(default_factory=dict, repr=False)

    def lesion(self, i: int) -> Lesion:
        """The ``i``-th lesion, with its patch ``(h, w, C)`` and boolean mask ``(h, w)``.

        Lesions are built once and kept (a synthesizer draws the same ones many times);
        treat their arrays as read-only.

        Args:
            i: the lesion's index, ``0 <= i < len(bank)``.

        Returns:
            The lesion: ``patch`` ``(h, w, C)`` ``uint8``, ``mask`` ``(h, w)`` boolean, its
            type name, source index, bounding box and area.
        """
        cached = self._cache.get(i)
        if cached is None:
            cached = self._cache[i] = self._build_lesion(i)
        return cached

    def _build_lesion(self, i: int) -> Lesion:
        y, x, h, w = (int(v) for v in self.bbox[i])
        c = self.meta.channels
        p0, m0 = self._pixel_offsets[i], self._mask_offsets[i]
        return Lesion(
            patch=self._pixels[p0 : p0 + h * w * c].reshape(h, w, c),
            mask=self._masks[m0 : m0 + h * w].reshape(h, w).astype(bool),
            lesion_type=self.meta.lesion_types[int(self.types[i])],
            source=int(self.sources[i]),
            bbox=(y, x, h, w),
            area=int(self.area[i]),
        )

    def counts(self) -> dict[str, int]:
        """Lesions per type, in the bank's type order (types with no lesion included).

        Returns:
            ``{type name: number of lesions}`` for every type of ``meta.lesion_types``.
        """
        c = Counter(int(t) for t in self.types)
        return {name: c.get(i, 0) for i, name in enumerate(self.meta.lesion_types)}

    def indices_of(self, lesion_types: list[str]) -> np.ndarray:
        """Indices of the lesions whose type is one of ``lesion_types``.

        Args:
            lesion_types: type names; names the bank does not have are ignored.

        Returns:
            ``(K,)`` ``int64`` lesion indices, ascending (empty when none match).
        """
        wanted = [
            self.meta.lesion_types.index(t) for t in lesion_types if t in self.meta.lesion_types
        ]
        return np.flatnonzero(np.isin(self.types, wanted))


def _attr_str(f: h5py.File, name: str, path: Path) -> str:
    if name not in f.attrs:
        raise LesionPasteError(f"{path}: damaged bank, attribute {name!r} is missing")
    value = f.attrs[name]
    return value.decode() if isinstance(value, bytes) else str(value)


def _attr_int(f: h5py.File, name: str, path: Path) -> int:
    value = f.attrs.get(name)
    if isinstance(value, (bytes, str)) or not np.issubdtype(np.asarray(value).dtype, np.integer):
        raise LesionPasteError(f"{path}: damaged bank, attribute {name!r} is not an integer")
    return int(value)


def _attr_json(f: h5py.File, name: str, path: Path, kind: type):
    try:
        value = json.loads(_attr_str(f, name, path))
    except json.JSONDecodeError:
        raise LesionPasteError(f"{path}: damaged bank, attribute {name!r} is not JSON") from None
    if not isinstance(value, kind):
        raise LesionPasteError(f"{path}: damaged bank, attribute {name!r} has the wrong type")
    return value


def _dataset(f: h5py.File, name: str, path: Path, ndim: int) -> np.ndarray:
    obj = f.get(name)
    if not isinstance(obj, h5py.Dataset) or obj.ndim != ndim:
        raise LesionPasteError(f"{path}: damaged bank, dataset {name!r} is missing or malformed")
    declared, size = obj.size * obj.dtype.itemsize, f.id.get_filesize()
    if declared > max(256 << 20, 64 * size):
        # banks are written uncompressed: a small file declaring gigabytes is hostile
        raise LesionPasteError(
            f"{path}: dataset {name!r} would take {declared / 2**30:.1f} GiB in memory from a "
            f"{size:,}-byte file; refused unread (damaged or hostile bank)"
        )
    return obj[()]


def read_meta(path: Path) -> BankMeta:
    """Read and check only the attributes of a bank (cheap).

    Args:
        path: the bank file.

    Returns:
        The bank's metadata (no pixels are read).

    Raises:
        LesionPasteError: no such file, not a lesion bank, another schema version, or
            damaged attributes.
    """
    return _open(path, with_arrays=False)[0]


def read_bank(path: Path) -> Bank:
    """Read a whole bank, refusing files that are not banks or of another schema version.

    Args:
        path: the bank file.

    Returns:
        The bank in memory, with its file's sha256.

    Raises:
        LesionPasteError: no such file, not a lesion bank, another schema version, an
            unreadable, damaged, inconsistent or hostile (oversized) file.
    """
    meta, arrays, digest = _open(path, with_arrays=True)
    return Bank(path=Path(path), sha256=digest, meta=meta, **arrays)


def _open(path: Path, with_arrays: bool):
    path = Path(path)
    if not path.is_file():
        raise LesionPasteError(f"{path}: no such bank file")
    if not h5py.is_hdf5(path):
        raise LesionPasteError(f"{path}: not a lesion bank (not an HDF5 file)")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") not in (FORMAT, FORMAT.encode()):
                raise LesionPasteError(f"{path}: not a lesion bank (an HDF5 file of another kind)")
            version = f.attrs.get("schema_version")
            version = version.item() if isinstance(version, np.generic) else version
            if version != SCHEMA_VERSION:
                raise LesionPasteError(
                    f"{path}: bank schema version {version!r} is not supported; this lesionpaste "
                    f"reads version {SCHEMA_VERSION} (rebuild the bank, or use a matching version)"
                )
            meta = BankMeta(
                modality=_attr_str(f, "modality", path),
                channels=_attr_int(f, "channels", path),
                lesion_types=_attr_json(f, "lesion_types", path, list),
                preprocess=_attr_json(f, "preprocess", path, dict),
                sources=_attr_json(f, "sources", path, list),
                tool_version=_attr_str(f, "tool_version", path),
                command=_attr_str(f, "command", path),
                schema_version=int(version),
            )
            if meta.channels not in (1, 3) or meta.modality not in ("fundus", "ct"):
                raise LesionPasteError(f"{path}: damaged bank, bad modality or channel count")
            if not with_arrays:
                return meta, None, None
            arrays = {
                "types": _dataset(f, "lesions/type", path, 1),
                "sources": _dataset(f, "lesions/source", path, 1),
                "bbox": _dataset(f, "lesions/bbox", path, 2),
                "area": _dataset(f, "lesions/area", path, 1),
                "histograms": _dataset(f, "sources/histogram", path, 3),
                "_pixels": _dataset(f, "lesions/pixels", path, 1),
                "_masks": _dataset(f, "lesions/masks", path, 1),
            }
    except OSError as exc:
        raise LesionPasteError(f"{path}: unreadable bank file ({exc})") from None
    _check_consistent(path, meta, arrays)
    sizes = arrays["bbox"][:, 2].astype(np.int64) * arrays["bbox"][:, 3]
    arrays["_mask_offsets"] = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    arrays["_pixel_offsets"] = arrays["_mask_offsets"] * meta.channels
    digest = sha256_file(path)
    return meta, arrays, digest


def _check_consistent(path: Path, meta: BankMeta, a: dict) -> None:
    """Refuse a bank whose tables disagree (damaged or hand-edited files)."""
    n = len(a["types"])
    bad = (
        n == 0
        or a["bbox"].shape != (n, 4)
        or len(a["sources"]) != n
        or len(a["area"]) != n
        or (a["bbox"][:, 2:] <= 0).any()
        or int(a["types"].max()) >= len(meta.lesion_types)
        or int(a["sources"].max()) >= len(meta.sources)
        or a["histograms"].shape != (len(meta.sources), meta.channels, 256)
    )
    if not bad:
        sizes = a["bbox"][:, 2].astype(np.int64) * a["bbox"][:, 3]
        bad = sizes.sum() != a["_masks"].size or sizes.sum() * meta.channels != a["_pixels"].size
    if bad:
        raise LesionPasteError(f"{path}: damaged bank, its lesion tables are inconsistent")
