"""A dataset as one archive (``lp-synth pack`` / ``unpack``), and a safe way to read one.

``pack`` writes every file the dataset lists (``listed_files``) into a tar archive, plain or
gzip-compressed by the output's name (``.tar``, ``.tar.gz`` / ``.tgz``), ``dataset.json`` first,
atomically (``atomic_output``); links are never followed.

``unpack`` reads the archive twice. The first pass reads only the headers (and
``dataset.json``, the first member) and refuses, before anything is written, every member that
``lesionpaste.archive_members`` refuses, more members or bytes than ``dataset.json`` allows,
and data after the last member (a member holding more data than its header declares, or a
damaged archive). The second pass writes the members, each exactly its declared size, into a
hidden sibling of the output, which is checked (nothing unlisted, ``verify``) and only then
swapped in: on any failure nothing is left at the output.

``dataset_directory`` gives a dataset given either way (a directory, or an archive file
unpacked into a temporary directory for the time of a block): what ``lp-synth verify`` and
``lp-train`` read.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lesionpaste.archive_members import ArchiveLimits, MemberNames, limits_for, member_kind
from lesionpaste.dataset_format import check_dataset_meta, listed_files, verify
from lesionpaste.errors import LesionPasteError
from lesionpaste.file_names import DATASET_RECORD
from lesionpaste.files import atomic_output, building_folder, is_temp_file
from lesionpaste.jsonfiles import MAX_JSON_BYTES, parse_json
from lesionpaste.outputs import check_output, real
from lesionpaste.tar_archives import Recorder, open_tar

#: the archive's name ends in one of these: how ``pack`` writes it
WRITE_MODES = {".tar": "w", ".tar.gz": "w:gz", ".tgz": "w:gz"}
#: the most bytes after the last member (its end marker and padding: 2 blocks, then zeros up
#: to a 10 KiB record; other tar writers pad to larger records)
MAX_TRAILING_BYTES = 1 << 20
_BLOCK = tarfile.BLOCKSIZE
_CHUNK = 1 << 20
#: what reading a damaged or foreign archive raises

#: ``progress(done, total)``: files written so far, of how many
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Member:
    """One member of a checked archive: its name, ``"file"`` or ``"dir"``, declared size."""

    name: str
    kind: str
    size: int


@dataclass(frozen=True)
class ArchivePlan:
    """An archive checked on its headers: what ``unpack`` will write.

    Attributes:
        meta: its ``dataset.json``.
        members: every member, in archive order (``dataset.json`` first).
        limits: the bounds its ``dataset.json`` set.
        total_bytes: the bytes its members declare.
    """

    meta: dict
    members: tuple[Member, ...]
    limits: ArchiveLimits
    total_bytes: int


def write_mode(out: Path) -> str:
    """The ``tarfile`` mode an archive named ``out`` is written with.

    Args:
        out: the archive to write.

    Returns:
        ``"w"`` for ``.tar``, ``"w:gz"`` for ``.tar.gz`` and ``.tgz``.

    Raises:
        LesionPasteError: another name (``.tar.zst`` included: the standard library has no
            zstd before Python 3.14, and ``zstandard`` is not a dependency).
    """
    name = Path(out).name.lower()
    for suffix, mode in WRITE_MODES.items():
        if name.endswith(suffix) and len(name) > len(suffix):
            return mode
    raise LesionPasteError(
        f"{out}: name the archive NAME.tar or NAME.tar.gz (also .tgz); .tar.zst is not offered "
        "(no zstd in this Python's standard library), so nothing was written"
    )


def pack(
    dataset: Path, out: Path, overwrite: bool = False, progress: Progress | None = None
) -> tuple[list[str], list[str]]:
    """Write every file that ``dataset`` lists into one archive, ``dataset.json`` first.

    Args:
        dataset: the dataset directory (checked whole first: ``verify``).
        out: the archive (``.tar``, ``.tar.gz`` or ``.tgz``), written atomically.
        overwrite: replace an earlier archive written by ``pack`` there.
        progress: called with (files written, files to write).

    Returns:
        ``(names, left_out)``: the members written, in order, and the files under
        ``dataset`` that it does not list (not packed).

    Raises:
        LesionPasteError: ``dataset`` is not a whole dataset; ``out`` has another name, is,
            lies inside or contains the dataset, exists (without ``overwrite``) or is not an
            earlier archive; a listed file is a link or lies under one.
    """
    dataset, out = Path(dataset), Path(out)
    mode = write_mode(out)
    check_output(out, "archive", [("dataset", dataset)], overwrite)
    problems = verify(dataset)
    if problems:
        raise LesionPasteError(
            f"{dataset} is not a whole dataset ({problems[0]}); see lp-synth verify {dataset}; "
            "nothing was packed"
        )
    names = listed_files(dataset)
    for name in names:
        _refuse_links(dataset, name)
    with (
        atomic_output(out, overwrite=overwrite, fsync=True) as tmp,
        tarfile.open(tmp, mode, format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in names:
            _add(tar, dataset, name)
            if progress:
                progress(1, len(names))
    return names, _left_out(dataset, set(names))


def _refuse_links(root: Path, name: str) -> None:
    """A listed file must be a regular file reached through real folders (no link at all)."""
    path = root
    parts = name.split("/")
    for i, part in enumerate(parts):
        path = path / part
        mode = os.lstat(path).st_mode
        last = i == len(parts) - 1
        if stat.S_ISLNK(mode) or not (stat.S_ISREG(mode) if last else stat.S_ISDIR(mode)):
            what = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file or folder"
            raise LesionPasteError(
                f"{root}: {'/'.join(parts[: i + 1])} is {what}; pack stores only regular files "
                "and never follows links, so nothing was packed"
            )


def _add(tar: tarfile.TarFile, root: Path, name: str) -> None:
    fd = os.open(root / name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = st.st_size, int(st.st_mtime), 0o644
        tar.addfile(info, fh)


def _left_out(root: Path, packed: set[str]) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for file in sorted(files):
            relative = (Path(folder) / file).relative_to(root).as_posix()
            if relative not in packed and not is_temp_file(Path(file)):
                found.append(relative)
    return found


def read_plan(archive: Path) -> ArchivePlan:
    """Check an archive on its headers and ``dataset.json``, writing nothing.

    Args:
        archive: the archive file.

    Returns:
        What it holds, every member checked.

    Raises:
        LesionPasteError: not a readable tar archive; a first member that is not
            ``dataset.json`` or a ``dataset.json`` that is not a dataset's; a member that
            ``member_kind`` or ``MemberNames`` refuses; more members or bytes than
            ``dataset.json`` allows; data after the last member.
    """
    where = str(archive)
    with open_tar(archive) as (tar, stream):
        first = tar.next()
        if first is None:
            raise LesionPasteError(f"{where}: an empty archive; nothing was written")
        kind = member_kind(first, where)
        if first.name != DATASET_RECORD or kind != "file":
            raise LesionPasteError(
                f"{where}: the first member is {first.name!r}, not dataset.json; a dataset "
                "archive (lp-synth pack) starts with it, so nothing was written"
            )
        if first.size > MAX_JSON_BYTES:
            raise LesionPasteError(f"{where}: dataset.json declares {first.size:,} bytes, more "
                                   f"than a dataset.json may hold ({MAX_JSON_BYTES:,})")  # fmt: skip
        source = f"{where}: dataset.json"
        meta = check_dataset_meta(parse_json(tar.extractfile(first).read(), source), source)
        limits = limits_for(meta, where)
        names = MemberNames()
        names.add(first.name, kind, where)
        members = [Member(first.name, kind, first.size)]
        total = first.size
        while (info := tar.next()) is not None:
            kind = member_kind(info, where)
            names.add(info.name, kind, where)
            if len(members) >= limits.members:
                raise LesionPasteError(
                    f"{where}: more members than dataset.json declares (at most "
                    f"{limits.members:,} for {limits.images:,} images); nothing was written"
                )
            size = info.size if kind == "file" else 0
            if size > limits.member_bytes(info.name):
                raise LesionPasteError(
                    f"{where}: member {info.name!r} declares {size:,} bytes, more than "
                    f"dataset.json allows for it ({limits.member_bytes(info.name):,}); nothing "
                    "was written"
                )
            total += size
            if total > limits.total_bytes:
                raise LesionPasteError(
                    f"{where}: the members declare more bytes than dataset.json allows "
                    f"({limits.total_bytes:,}); nothing was written"
                )
            members.append(Member(info.name, kind, size))
        _refuse_trailing_data(tar, stream, where, members[-1])
    return ArchivePlan(meta, tuple(members), limits, total)


def _refuse_trailing_data(tar: tarfile.TarFile, stream: Recorder, where: str, last: Member) -> None:
    """After the last member only the end marker (zero blocks) may follow: other bytes are a
    member's data beyond its declared size (read as a bad header, which ends ``tarfile``'s
    listing silently) or a damaged archive."""
    at, block = stream.last  # tarfile's last read: the header at which it stopped
    if at != tar.offset:
        stream.seek(tar.offset)
        block = b""
    rest = block + stream.read(MAX_TRAILING_BYTES + 1 - len(block))
    if rest.strip(b"\0") or len(rest) > MAX_TRAILING_BYTES:
        raise LesionPasteError(
            f"{where}: data follows member {last.name!r} beyond its declared size "
            f"({last.size:,} bytes): a member holds more data than its header declares, or the "
            "archive is damaged; nothing was written"
        )
    if len(rest) < _BLOCK:
        raise LesionPasteError(
            f"{where}: the archive ends without its end marker (truncated?); nothing was written"
        )


def unpack(
    archive: Path,
    out: Path,
    overwrite: bool = False,
    check: bool = True,
    progress: Progress | None = None,
) -> dict:
    """Unpack a dataset archive into the directory ``out``, safely (see the module's text).

    Args:
        archive: the archive file.
        out: the dataset directory to write (absent, or with ``overwrite`` an earlier dataset).
        overwrite: replace an earlier dataset at ``out`` (kept whole until the new one is in).
        check: refuse a dataset that holds files it does not list, or that ``verify`` finds
            damaged (every sha256); without it only the archive's members are checked.
        progress: called with (files written, files to write).

    Returns:
        The dataset's ``dataset.json``.

    Raises:
        LesionPasteError: ``out`` is a link, overlaps the archive, exists (without
            ``overwrite``) or is not an earlier dataset; a hostile or damaged archive
            (``read_plan``); too little free space; with ``check``, an unlisted file or a
            problem ``verify`` reports. Nothing is left at ``out`` (or the earlier dataset).
    """
    archive, out = Path(archive), Path(out)
    check_output(out, "dataset", [("archive", archive)], overwrite)
    if os.path.lexists(out) and not overwrite:
        raise LesionPasteError(f"{out} already exists; pass --overwrite to replace it")
    plan = read_plan(archive)
    target = real(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target.parent).free
    if plan.total_bytes > free:
        raise LesionPasteError(
            f"{archive}: its members take {plan.total_bytes:,} bytes, and {target.parent} has "
            f"{free:,} free; free some space; nothing was written"
        )
    with building_folder(target, "lp-synth unpack", "unpack", out, overwrite) as work:
        _extract(archive, plan, work, progress)
        if check:
            problems = extra_files(work) + verify(work)
            if problems:
                raise LesionPasteError(
                    f"{archive}: {problems[0]}"
                    + (f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else "")
                    + "; nothing was unpacked"
                )
    return plan.meta


def _extract(archive: Path, plan: ArchivePlan, work: Path, progress: Progress | None) -> None:
    """Write the planned members under ``work`` (new), each exactly its declared size."""
    where = str(archive)
    work.mkdir()
    files = sum(1 for m in plan.members if m.kind == "file")
    with open_tar(archive) as (tar, _stream):
        for expected in plan.members:
            info = tar.next()
            found = None if info is None else Member(info.name, member_kind(info, where),
                                                     info.size if info.isreg() else 0)  # fmt: skip
            if found != expected:
                raise LesionPasteError(f"{where}: the archive changed while it was read; "
                                       "nothing was written")  # fmt: skip
            path = work.joinpath(*expected.name.split("/"))
            if expected.kind == "dir":
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_member(tar.extractfile(info), path, expected, where)
            if progress:
                progress(1, files)
        if tar.next() is not None:
            raise LesionPasteError(f"{where}: the archive changed while it was read")


def _write_member(source, path: Path, member: Member, where: str) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    written = 0
    with os.fdopen(os.open(path, flags, 0o644), "wb") as fh:
        while block := source.read(min(_CHUNK, member.size - written)):
            fh.write(block)
            written += len(block)
            if written >= member.size:
                break
    if written != member.size:
        raise LesionPasteError(
            f"{where}: member {member.name!r} holds {written:,} bytes, not the {member.size:,} "
            "its header declares (truncated?)"
        )


def extra_files(root: Path) -> list[str]:
    """A problem line for each file under ``root`` that the dataset does not list.

    Args:
        root: an unpacked dataset directory.

    Returns:
        ``"NAME: in the archive but not listed by the dataset"`` per such file, sorted; one
        line saying why the listing failed when it cannot be read (``verify`` says more).
    """
    try:
        listed = set(listed_files(root))
    except LesionPasteError as exc:
        return [str(exc).removeprefix(f"{root}: ")]
    found = sorted(
        path.relative_to(root).as_posix() for path in Path(root).rglob("*") if path.is_file()
    )
    return [f"{name}: in the archive but not listed by the dataset" for name in found
            if name not in listed]  # fmt: skip


@contextlib.contextmanager
def unpacked(archive: Path, check: bool = True) -> Iterator[Path]:
    """An archive unpacked (``unpack``) into a new temporary directory for the time of the
    block, removed afterwards.

    Args:
        archive: the archive file.
        check: as for ``unpack``.

    Yields:
        The unpacked dataset directory.

    Raises:
        LesionPasteError: what ``unpack`` refuses.
    """
    temp = Path(tempfile.mkdtemp(prefix="lesionpaste-unpack-"))
    try:
        root = temp / "dataset"
        unpack(archive, root, check=check)
        yield root
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def is_archive(path: Path) -> bool:
    """Whether a dataset given as ``path`` is an archive: a file (a dataset is a directory).

    Args:
        path: what the user gave as a dataset.

    Returns:
        Whether it is a file (links followed).
    """
    return Path(path).is_file()


@contextlib.contextmanager
def dataset_directory(path: Path, check: bool = True) -> Iterator[Path]:
    """A dataset given as a directory or as an archive, as a directory.

    Args:
        path: the dataset directory, or an archive of one (``pack``).
        check: for an archive, as for ``unpack``.

    Yields:
        ``path`` itself, or the archive unpacked into a temporary directory (removed after).

    Raises:
        LesionPasteError: what ``unpack`` refuses.
    """
    if not is_archive(path):
        yield Path(path)
        return
    with unpacked(path, check) as root:
        yield root
