"""A dataset as one archive: ``lp-synth pack`` / ``unpack``, and ``lp-synth verify`` and
``lp-train`` reading the archive.

Every hostile archive is built here, member by member; each is refused with its own message,
one error line, a non-zero exit, and nothing written (not even the output's parent folder).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tarfile
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from lesionpaste.dataset_format import listed_files, manifest_text
from lesionpaste.digests import sha256_file
from tests.conftest import Result
from tests.synth_fixtures import make_fundus_bank, make_normals, tree_bytes
from tests.train_fixtures import graded, synthetic

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate

FAST = ["--arch", "smallcnn", "--weights", "none", "--device", "cpu", "--epochs", "1", "-q"]


def invoke(command, *args, prog: str = "lp-synth") -> Result:
    r = CliRunner().invoke(command, [str(a) for a in args], prog_name=prog)
    if r.exception and not isinstance(r.exception, SystemExit):
        raise r.exception
    return Result(r.exit_code, r.stdout, r.stderr)


def lp_synth(*args) -> Result:
    from lesionpaste.synth.cli import cli

    return invoke(cli, *args)


def lp_train(*args) -> Result:
    from lesionpaste.train.cli import train_command

    return invoke(train_command, *args, prog="lp-train")


def one_error(r: Result, prog: str, expected: str) -> None:
    assert r.code != 0
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error:"), r.stderr
    assert expected in lines[0], lines[0]
    assert "Traceback" not in r.stderr


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A dataset made by lp-synth itself: card, pastes.jsonl, masks, dataset.json's files."""
    base = tmp_path_factory.mktemp("made")
    bank = make_fundus_bank(base / "bank.h5")
    normals = make_normals(base / "normals", 4)
    out = base / "ds"
    r = lp_synth("--bank", bank, "--normals", normals, "-o", out, "--size", "64", "-q")
    assert r.code == 0, r.stderr
    return out


@pytest.fixture
def small(tmp_path) -> Path:
    """Two pairs with masks (``config.size`` 32, ``counts.images`` 4)."""
    return synthetic(tmp_path / "src" / "d", pairs=2, masks=True)


def members(root: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """A dataset's files as archive members, in the order ``pack`` writes them."""
    out = []
    for name in listed_files(root):
        data = (root / name).read_bytes()
        out.append(regular(name, data))
    return out


def regular(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def special(name: str, kind: bytes, link: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info, None


def write_tar(path: Path, entries, mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


# --- the hostile cases: each edits the member list, and says what the refusal must say ---


def absolute(entries):
    return entries + [regular("/tmp/evil.png", b"x")], "has an absolute name"


def dot_dot(entries):
    return entries + [regular("images/../../evil.png", b"x")], "has a '..' component"


def symlink(entries):
    return entries + [special("images/link.png", tarfile.SYMTYPE, "/etc/passwd")], (
        "is a symbolic link"
    )


def hardlink(entries):
    return entries + [special("images/hard.png", tarfile.LNKTYPE, "dataset.json")], (
        "is a hard link"
    )


def device(entries):
    return entries + [special("images/dev.png", tarfile.CHRTYPE)], "is a character device"


def fifo(entries):
    return entries + [special("images/fifo.png", tarfile.FIFOTYPE)], "is a FIFO"


def duplicate(entries):
    return entries + [regular(entries[3][0].name, b"again")], "appears twice"


def duplicate_but_for_case(entries):
    name = entries[3][0].name
    return entries + [regular(name[:-4] + ".PNG", b"x")], f"collides with {name!r}"


def file_and_folder(entries):
    return entries + [regular(entries[3][0].name + "/x.png", b"x")], "both a file and a folder"


def not_a_dataset_file(entries):
    return entries + [regular("notes.txt", b"hello")], "is not a file a LesionPaste dataset holds"


def too_many_members(entries):
    extra = [regular(f"images/extra{i:02d}.png", b"x") for i in range(12)]
    return entries + extra, "more members than dataset.json declares (at most 17 for 4 images)"


def too_many_bytes(entries):
    return entries + [regular("images/big.png", bytes(80_000))], (
        "declares 80,000 bytes, more than dataset.json allows for it (73,728)"
    )


def dataset_json_not_first(entries):
    return [entries[1], entries[0], *entries[2:]], (
        "the first member is 'manifest.csv', not dataset.json"
    )


CASES = [absolute, dot_dot, symlink, hardlink, device, fifo, duplicate, duplicate_but_for_case,
         file_and_folder, not_a_dataset_file, too_many_members, too_many_bytes,
         dataset_json_not_first]  # fmt: skip


def bigger_than_declared(path: Path, root: Path) -> Path:
    """An archive whose member holds more data than its header says: its header's size is
    patched down to 100 bytes (checksum fixed), so the rest of its data follows unannounced."""
    write_tar(path, members(root))
    with tarfile.open(path) as tar:
        victim = next(m for m in tar.getmembers() if m.size > 2 * tarfile.BLOCKSIZE)
    data = bytearray(path.read_bytes())
    header = victim.offset
    data[header + 124 : header + 136] = b"%011o\0" % 100
    data[header + 148 : header + 156] = b" " * 8
    checksum = sum(data[header : header + tarfile.BLOCKSIZE])
    data[header + 148 : header + 156] = b"%06o\0 " % checksum
    path.write_bytes(bytes(data))
    return path


def _nothing_written(out: Path) -> None:
    assert not out.parent.exists(), list(out.parent.iterdir())


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_unpack_refuses_a_hostile_member_before_writing_anything(tmp_path, small, case):
    entries, expected = case(members(small))
    archive = write_tar(tmp_path / "hostile.tar", entries)
    out = tmp_path / "new" / "out"
    one_error(lp_synth("unpack", archive, "-o", out), "lp-synth", expected)
    _nothing_written(out)


def test_unpack_refuses_data_beyond_a_members_declared_size(tmp_path, small):
    archive = bigger_than_declared(tmp_path / "bigger.tar", small)
    out = tmp_path / "new" / "out"
    one_error(lp_synth("unpack", archive, "-o", out), "lp-synth", "beyond its declared size")
    _nothing_written(out)


@pytest.mark.parametrize("case", [absolute, symlink, too_many_members], ids=lambda c: c.__name__)
def test_verify_and_lp_train_refuse_a_hostile_archive_too(tmp_path, small, case):
    entries, expected = case(members(small))
    archive = write_tar(tmp_path / "hostile.tar.gz", entries, "w:gz")
    r = lp_synth("verify", archive)
    assert r.code != 0 and expected in r.stderr and "Traceback" not in r.stderr, r.stderr
    run = tmp_path / "run"
    one_error(lp_train(archive, "-o", run, *FAST), "lp-train", expected)
    assert not run.exists()


def test_a_damaged_or_padded_archive_leaves_nothing_at_the_output(tmp_path, small):
    entries = members(small)
    unlisted = write_tar(tmp_path / "unlisted.tar", entries + [regular("images/extra.png", b"x")])
    out = tmp_path / "out"
    r = lp_synth("unpack", unlisted, "-o", out)
    one_error(r, "lp-synth", "images/extra.png: in the archive but not listed by the dataset")
    assert not out.exists() and not list(tmp_path.glob(".out*"))
    info, data = entries[4]
    entries[4] = regular(info.name, data[:-20] + bytes(20))  # same size, altered content
    altered = write_tar(tmp_path / "altered.tar", entries)
    one_error(lp_synth("unpack", altered, "-o", out), "lp-synth", "sha256 differs")
    assert not out.exists() and not list(tmp_path.glob(".out*"))
    r = lp_synth("verify", altered)
    assert r.code == 1 and f"{altered}: {info.name}: sha256 differs" in r.stderr, r.stderr
    whole = write_tar(tmp_path / "whole.tar", members(small)).read_bytes()
    (tmp_path / "cut.tar").write_bytes(whole[: len(whole) // 2])
    r = lp_synth("unpack", tmp_path / "cut.tar", "-o", out)
    assert r.code != 0 and "Traceback" not in r.stderr and not out.exists(), r.stderr
    (tmp_path / "junk.tar").write_bytes(b"not a tar file at all" * 100)
    one_error(lp_synth("unpack", tmp_path / "junk.tar", "-o", out), "lp-synth", "not a readable")
    (tmp_path / "empty.tar").write_bytes(bytes(10240))
    one_error(lp_synth("unpack", tmp_path / "empty.tar", "-o", out), "lp-synth", "empty archive")
    assert not out.exists()


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".tgz"])
def test_pack_then_unpack_gives_the_same_bytes(tmp_path, made, suffix):
    archive = tmp_path / f"ds{suffix}"
    r = lp_synth("pack", made, "-o", archive, "-q")
    assert r.code == 0, r.stderr
    with tarfile.open(archive) as tar:
        infos = tar.getmembers()
    names = [m.name for m in infos]
    assert names[0] == "dataset.json" and names[1] == "manifest.csv"
    assert sorted(names) == sorted(tree_bytes(made)) and all(m.isreg() for m in infos)
    assert {"README.md", "pastes.jsonl"} <= set(names)
    r = lp_synth("unpack", archive, "-o", tmp_path / "back")
    assert r.code == 0, r.stderr
    assert tree_bytes(tmp_path / "back") == tree_bytes(made)
    assert lp_synth("verify", tmp_path / "back").code == 0
    r = lp_synth("verify", archive)
    assert r.code == 0 and "OK (synthetic, 8 images" in r.stdout, r.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp, no lock


def test_an_evaluation_set_with_masks_round_trips(tmp_path):
    root = graded(tmp_path / "ev", per_grade=1, masks=True)
    archive = tmp_path / "ev.tar.gz"
    assert lp_synth("pack", root, "-o", archive, "-q").code == 0
    with tarfile.open(archive) as tar:
        assert "masks/EX/e0000.png" in tar.getnames()
    assert lp_synth("unpack", archive, "-o", tmp_path / "back", "-q").code == 0
    assert tree_bytes(tmp_path / "back") == tree_bytes(root)


def test_pack_writes_only_listed_files_and_follows_no_link(tmp_path, small):
    (small / "notes.txt").write_text("mine")
    r = lp_synth("pack", small, "-o", tmp_path / "a.tar")
    assert r.code == 0, r.stderr
    assert "left out notes.txt: not listed by the dataset" in r.stderr
    with tarfile.open(tmp_path / "a.tar") as tar:
        assert "notes.txt" not in tar.getnames()
    image = small / "images" / "0000.png"
    (small / "images" / "real.png").write_bytes(image.read_bytes())
    image.unlink()
    os.symlink("real.png", image)  # inside the dataset: verify accepts it, pack does not
    r = lp_synth("pack", small, "-o", tmp_path / "b.tar")
    one_error(r, "lp-synth", "images/0000.png is a symbolic link")
    image.unlink()
    os.symlink(tmp_path / "a.tar", image)  # out of it: not a whole dataset
    one_error(lp_synth("pack", small, "-o", tmp_path / "b.tar"), "lp-synth", "leads outside")
    assert not (tmp_path / "b.tar").exists()


def test_pack_refuses_unsafe_outputs_and_what_is_not_a_dataset(tmp_path, small):
    folder = tmp_path / "folder"
    folder.mkdir()
    one_error(lp_synth("pack", folder, "-o", tmp_path / "x.tar"), "lp-synth", "no dataset.json")
    one_error(lp_synth("pack", small, "-o", small / "in.tar"), "lp-synth", "lies inside")
    one_error(lp_synth("pack", small, "-o", tmp_path / "x.zip"), "lp-synth", "NAME.tar")
    one_error(lp_synth("pack", small, "-o", tmp_path / "x.tar.zst"), "lp-synth", ".tar.zst")
    assert lp_synth("pack", small, "-o", tmp_path / "x.tar", "-q").code == 0
    one_error(lp_synth("pack", small, "-o", tmp_path / "x.tar"), "lp-synth", "already exists")
    assert lp_synth("pack", small, "-o", tmp_path / "x.tar", "--overwrite", "-q").code == 0
    (tmp_path / "mine.tar").write_bytes(b"my own file")
    r = lp_synth("pack", small, "-o", tmp_path / "mine.tar", "--overwrite")
    one_error(r, "lp-synth", "not a dataset archive")
    assert (tmp_path / "mine.tar").read_bytes() == b"my own file"
    (small / "images" / "0001.png").write_bytes(b"damaged")
    one_error(lp_synth("pack", small, "-o", tmp_path / "y.tar"), "lp-synth", "not a whole")
    assert not (tmp_path / "y.tar").exists()


def test_a_failed_pack_leaves_no_partial_archive(tmp_path, small, monkeypatch):
    import lesionpaste.dataset_archive as archive

    real_add, calls = archive._add, []

    def failing(tar, root, name):
        calls.append(name)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_add(tar, root, name)

    monkeypatch.setattr(archive, "_add", failing)
    folder = tmp_path / "out"
    folder.mkdir()
    one_error(lp_synth("pack", small, "-o", folder / "x.tar"), "lp-synth", "disk")
    assert calls and list(folder.iterdir()) == []  # no archive, no temporary file


def test_unpack_refuses_unsafe_outputs_and_keeps_an_earlier_dataset(tmp_path, small):
    archive = tmp_path / "a.tar"
    assert lp_synth("pack", small, "-o", archive, "-q").code == 0
    one_error(lp_synth("unpack", archive, "-o", small), "lp-synth", "already exists")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "photo.jpg").write_bytes(b"mine")
    r = lp_synth("unpack", archive, "-o", mine, "--overwrite")
    one_error(r, "lp-synth", "no readable dataset.json")
    assert (mine / "photo.jpg").read_bytes() == b"mine"
    out = tmp_path / "out"
    assert lp_synth("unpack", archive, "-o", out, "-q").code == 0
    before = tree_bytes(out)
    bad = write_tar(tmp_path / "bad.tar", absolute(members(small))[0])
    assert lp_synth("unpack", bad, "-o", out, "--overwrite").code != 0
    assert tree_bytes(out) == before  # the earlier dataset stays whole
    assert lp_synth("unpack", archive, "-o", out, "--overwrite", "-q").code == 0
    os.symlink(out, tmp_path / "link")
    r = lp_synth("unpack", archive, "-o", tmp_path / "link", "--overwrite")
    one_error(r, "lp-synth", "symbolic link")


def test_lp_train_trains_on_an_archive_and_removes_what_it_unpacked(tmp_path, monkeypatch):
    root = synthetic(tmp_path / "d", pairs=4, masks=True)
    archive = tmp_path / "d.tar.gz"
    assert lp_synth("pack", root, "-o", archive, "-q").code == 0
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    r = lp_train(archive, "-o", tmp_path / "run", *FAST)
    assert r.code == 0, r.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["dataset"] == str(archive.resolve())
    assert config["dataset_sha256"] == sha256_file(root / "manifest.csv")
    assert not list(temp.glob("lesionpaste-*"))  # the unpacked copy is gone
    r = lp_train(archive, "-o", tmp_path / "run", *FAST)  # resumes: the same configuration
    assert r.code == 0, r.stderr


def test_unpack_accepts_folder_members(tmp_path, small):
    entries = members(small)
    folders = [special(name, tarfile.DIRTYPE) for name in ("images", "masks")]
    archive = write_tar(tmp_path / "folders.tar", [entries[0], *folders, *entries[1:]])
    assert lp_synth("unpack", archive, "-o", tmp_path / "out", "-q").code == 0
    assert tree_bytes(tmp_path / "out") == tree_bytes(small)


def test_names_as_users_name_them_round_trip(tmp_path, small):
    with open(small / "manifest.csv", newline="", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    name = "images/Bild (1), é #2.png"
    os.rename(small / table[0]["path"], small / name)
    table[0]["path"] = name
    (small / "manifest.csv").write_text(manifest_text(table), encoding="utf-8")
    archive = tmp_path / "names.tar.gz"
    assert lp_synth("pack", small, "-o", archive, "-q").code == 0
    assert lp_synth("unpack", archive, "-o", tmp_path / "back", "-q").code == 0
    assert tree_bytes(tmp_path / "back") == tree_bytes(small)
    for bad, expected in [("images/bad-\udcff.png", "is not named in UTF-8"),
                          ("images/a\nb.png", "has control characters")]:  # fmt: skip
        entries = members(small) + [regular(bad, b"x")]
        r = lp_synth("unpack", write_tar(tmp_path / "bad.tar", entries), "-o", tmp_path / "x")
        one_error(r, "lp-synth", expected)
        assert not (tmp_path / "x").exists()


# --- the second pass (writing) on its own: what it writes, and an archive changed between passes


def test_unpack_reports_each_file_and_writes_them_readable_not_executable(tmp_path, small):
    from lesionpaste.dataset_archive import unpack

    archive = write_tar(tmp_path / "a.tar", members(small))
    calls = []
    old = os.umask(0o022)
    try:
        unpack(archive, tmp_path / "out", progress=lambda done, total: calls.append((done, total)))
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert calls == [(1, len(files))] * len(files) and len(files) == len(members(small))
    assert {p.stat().st_mode & 0o777 for p in files} == {0o644}


def test_folder_members_may_come_without_their_parents_or_after_their_files(tmp_path, small):
    entries = members(small)
    nested = special("masks/deep/er", tarfile.DIRTYPE)  # no masks/ or masks/deep/ before it
    late = special("images", tarfile.DIRTYPE)  # after the files in images/
    late[0].size = 5  # a folder's header may declare a size: it holds no data all the same
    archive = write_tar(tmp_path / "f.tar", [*entries, nested, late])
    assert lp_synth("unpack", archive, "-o", tmp_path / "out", "-q").code == 0
    assert (tmp_path / "out" / "masks" / "deep" / "er").is_dir()


def test_an_archive_changed_between_its_check_and_its_writing_is_refused(tmp_path, small):
    from lesionpaste.dataset_archive import _extract, read_plan
    from lesionpaste.errors import LesionPasteError

    entries = members(small)
    checked = write_tar(tmp_path / "checked.tar", entries)
    longer = write_tar(tmp_path / "longer.tar", [*entries, regular("images/extra.png", b"x")])
    linked = write_tar(tmp_path / "linked.tar", [*entries[:-1],
                                                 special(entries[-1][0].name, tarfile.SYMTYPE,
                                                         "/etc/passwd")])  # fmt: skip
    for archive, plan, expected in (
        (checked, read_plan(longer), (f"{checked}: the archive changed while it was read; "
         "nothing was written")),
        (longer, read_plan(checked), f"{longer}: the archive changed while it was read"),
        (linked, read_plan(checked), f"{linked}: member {entries[-1][0].name!r} is a symbolic link"),
    ):  # fmt: skip
        work = tmp_path / f"work-{archive.stem}"
        with pytest.raises(LesionPasteError) as caught:
            _extract(archive, plan, work, None)
        assert str(caught.value).startswith(expected), str(caught.value)


def test_a_member_is_written_to_exactly_its_declared_size(tmp_path):
    from lesionpaste.dataset_archive import _CHUNK, Member, _write_member
    from lesionpaste.errors import LesionPasteError

    size = _CHUNK + _CHUNK // 2  # two reads
    data = os.urandom(size + 100)
    member = Member("images/big.png", "file", size)
    _write_member(io.BytesIO(data), tmp_path / "big.png", member, "a.tar")
    assert (tmp_path / "big.png").read_bytes() == data[:size]  # no more than it declares
    with pytest.raises(LesionPasteError) as caught:
        _write_member(io.BytesIO(data[: size - 1]), tmp_path / "short.png", member, "a.tar")
    assert str(caught.value) == (
        f"a.tar: member 'images/big.png' holds {size - 1:,} bytes, not the {size:,} its header "
        "declares (truncated?)"
    )
    with pytest.raises(FileExistsError):  # never over a file already there (or a link)
        _write_member(io.BytesIO(data), tmp_path / "big.png", member, "a.tar")
    os.symlink(tmp_path / "elsewhere", tmp_path / "link.png")
    with pytest.raises(FileExistsError):
        _write_member(io.BytesIO(data), tmp_path / "link.png", member, "a.tar")
    assert not (tmp_path / "elsewhere").exists()


def test_extra_files_names_each_unlisted_file_and_why_a_listing_failed(tmp_path, small):
    from lesionpaste.dataset_archive import extra_files

    assert extra_files(small) == []
    (small / "images" / "stray.png").write_bytes(b"x")
    assert extra_files(small) == ["images/stray.png: in the archive but not listed by the dataset"]
    (small / "manifest.csv").unlink()
    problems = extra_files(small)
    assert len(problems) == 1 and not problems[0].startswith(str(small)), problems
    assert "manifest.csv" in problems[0]


# --- pack's refusals and what it records, read whole


def test_write_mode_needs_a_name_before_the_suffix(tmp_path, small):
    """A bare suffix (``.tar``, ``.tgz``, ``.tar.gz``) is no archive name: the refusal whole,
    and pack writes nothing."""
    from lesionpaste.dataset_archive import pack, write_mode
    from lesionpaste.errors import LesionPasteError

    assert write_mode(tmp_path / "d.TAR") == "w" and write_mode(tmp_path / "d.tgz") == "w:gz"
    for bare in (".tar", ".tgz", ".tar.gz"):
        with pytest.raises(LesionPasteError) as caught:
            write_mode(tmp_path / bare)
        assert str(caught.value) == (
            f"{tmp_path / bare}: name the archive NAME.tar or NAME.tar.gz (also .tgz); .tar.zst "
            "is not offered (no zstd in this Python's standard library), so nothing was written"
        )
    with pytest.raises(LesionPasteError, match="name the archive NAME.tar"):
        pack(small, tmp_path / "out" / ".tar")
    assert not (tmp_path / "out").exists()


def test_pack_refuses_an_existing_archive_unless_told_to_overwrite(tmp_path, small):
    """``pack``'s default is not to overwrite: even an earlier archive of its own stays."""
    from lesionpaste.dataset_archive import pack
    from lesionpaste.errors import LesionPasteError

    out = tmp_path / "a.tar"
    pack(small, out)
    before = out.read_bytes()
    (small / "notes.txt").write_text("changes what pack reports, not what it packs")
    with pytest.raises(LesionPasteError) as caught:
        pack(small, out)
    assert str(caught.value) == f"{out} already exists; pass --overwrite to replace it"
    assert out.read_bytes() == before
    names, left_out = pack(small, out, overwrite=True)
    assert left_out == ["notes.txt"] and names == listed_files(small)


def test_pack_refusals_name_the_dataset_and_say_nothing_was_packed(tmp_path, small):
    """The messages for an output inside the dataset and for a damaged dataset, read whole."""
    from lesionpaste.dataset_archive import pack
    from lesionpaste.dataset_format import verify
    from lesionpaste.errors import LesionPasteError

    inside = small / "in.tar"
    with pytest.raises(LesionPasteError) as caught:
        pack(small, inside)
    assert str(caught.value) == (
        f"the output {inside} lies inside the dataset ({small}); inputs are never written to, "
        "so nothing was touched: choose an output outside every input"
    )
    (small / "images" / "0001.png").write_bytes(b"damaged")
    problem = verify(small)[0]
    with pytest.raises(LesionPasteError) as caught:
        pack(small, tmp_path / "a.tar")
    assert str(caught.value) == (
        f"{small} is not a whole dataset ({problem}); see lp-synth verify {small}; "
        "nothing was packed"
    )
    assert not (tmp_path / "a.tar").exists() and not inside.exists()


def test_pack_records_every_member_0644_whatever_the_files_mode(tmp_path, small):
    """Members are stored readable, not executable, even from an executable file."""
    (small / "images" / "0000.png").chmod(0o755)
    (small / "manifest.csv").chmod(0o600)
    out = tmp_path / "a.tar.gz"
    assert lp_synth("pack", small, "-o", out, "-q").code == 0
    with tarfile.open(out) as tar:
        modes = {m.name: m.mode for m in tar.getmembers()}
    assert sorted(modes) == sorted(listed_files(small))
    assert set(modes.values()) == {0o644}, modes


def test_pack_refuses_a_folder_on_the_way_that_is_a_link(tmp_path, small):
    """A listed file reached through a linked folder (inside the dataset: verify accepts it)."""
    os.rename(small / "images", small / "real_images")
    os.symlink("real_images", small / "images")
    r = lp_synth("pack", small, "-o", tmp_path / "a.tar")
    one_error(r, "lp-synth", (
        f"{small}: images is a symbolic link; pack stores only regular files and never follows "
        "links, so nothing was packed"
    ))  # fmt: skip
    assert not (tmp_path / "a.tar").exists()


def test_refuse_links_refuses_what_is_neither_a_regular_file_nor_a_folder(tmp_path):
    """A FIFO where a file is listed, a file where a folder must be: named up to that part."""
    from lesionpaste.dataset_archive import _refuse_links
    from lesionpaste.errors import LesionPasteError

    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "file.png").write_bytes(b"x")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "ok.png").write_bytes(b"x")
    _refuse_links(tmp_path, "folder/ok.png")  # a regular file in a real folder: accepted
    for name, part in (("pipe.png", "pipe.png"), ("file.png/x.png", "file.png"),
                       ("folder", "folder")):  # fmt: skip
        with pytest.raises(LesionPasteError) as caught:
            _refuse_links(tmp_path, name)
        assert str(caught.value) == (
            f"{tmp_path}: {part} is not a regular file or folder; pack stores only regular "
            "files and never follows links, so nothing was packed"
        )


def test_pack_does_not_follow_a_file_swapped_for_a_link_while_it_packs(tmp_path, small):
    """A listed file replaced by a link after the check (a race) is opened without following
    it: pack fails (ELOOP) and leaves no archive, instead of packing the link's target."""
    import errno

    from lesionpaste.dataset_archive import pack

    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not part of the dataset")
    names = listed_files(small)
    last = small / names[-1]
    calls = []

    def swap(done, total):
        calls.append(done)
        if len(calls) == 1:  # the first file is packed, the last one not yet
            last.unlink()
            os.symlink(secret, last)

    out = tmp_path / "a.tar"
    with pytest.raises(OSError) as caught:
        pack(small, out, progress=swap)
    assert caught.value.errno == errno.ELOOP
    assert len(calls) == len(names) - 1 and not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file


# --- what may follow the last member: the end marker and zero padding, within bounds


def _tail(tmp_path: Path, root: Path, name: str, tail: bytes) -> Path:
    """The dataset's archive cut right after its last member's data, then ``tail``."""
    whole = write_tar(tmp_path / "whole.tar", members(root))
    with tarfile.open(whole) as tar:
        tar.getmembers()
        end = tar.offset  # after the last member's (padded) data
    path = tmp_path / name
    path.write_bytes(whole.read_bytes()[:end] + tail)
    return path


def test_trailing_zeros_are_accepted_up_to_exactly_the_bound(tmp_path, small):
    """One zero block, or MAX_TRAILING_BYTES of zeros, may follow; one byte more may not."""
    from lesionpaste.dataset_archive import MAX_TRAILING_BYTES, read_plan
    from lesionpaste.errors import LesionPasteError

    expected = listed_files(small)
    for size in (tarfile.BLOCKSIZE, MAX_TRAILING_BYTES):
        plan = read_plan(_tail(tmp_path, small, f"pad{size}.tar", bytes(size)))
        assert [m.name for m in plan.members] == expected
    last = members(small)[-1][0]
    for name, tail in (("over.tar", bytes(MAX_TRAILING_BYTES + 1)),
                       ("x.tar", bytes(1024) + b"XXXX" + bytes(1020))):  # fmt: skip
        archive = _tail(tmp_path, small, name, tail)
        with pytest.raises(LesionPasteError) as caught:
            read_plan(archive)
        assert str(caught.value) == (
            f"{archive}: data follows member {last.name!r} beyond its declared size "
            f"({last.size:,} bytes): a member holds more data than its header declares, or the "
            "archive is damaged; nothing was written"
        )


def test_an_archive_without_its_end_marker_is_refused(tmp_path, small):
    """Less than one block after the last member: truncated, with its own message."""
    from lesionpaste.dataset_archive import read_plan
    from lesionpaste.errors import LesionPasteError

    for tail in (b"", bytes(tarfile.BLOCKSIZE - 1)):
        archive = _tail(tmp_path, small, f"cut{len(tail)}.tar", tail)
        with pytest.raises(LesionPasteError) as caught:
            read_plan(archive)
        assert str(caught.value) == (
            f"{archive}: the archive ends without its end marker (truncated?); nothing was written"
        )


def test_the_tail_is_read_from_the_end_of_the_members_and_no_further_than_needed(tmp_path, small):
    """``_refuse_trailing_data`` reads from ``tar.offset`` again when the stream's last read
    was elsewhere, and reads at most one byte more than may follow (not a huge tail whole)."""
    from lesionpaste.dataset_archive import MAX_TRAILING_BYTES, Member, _refuse_trailing_data
    from lesionpaste.errors import LesionPasteError
    from lesionpaste.tar_archives import open_tar

    info = members(small)[-1][0]
    last = Member(info.name, "file", info.size)  # for the message
    good = _tail(tmp_path, small, "good.tar", bytes(2 * tarfile.BLOCKSIZE))
    with open_tar(good) as (tar, stream):
        while tar.next() is not None:
            pass
        stream.seek(0)
        assert stream.read(tarfile.BLOCKSIZE).strip(b"\0")  # dataset.json's header: not zeros
        _refuse_trailing_data(tar, stream, "good.tar", last)  # the zeros at tar.offset: accepted
    huge = _tail(tmp_path, small, "huge.tar", bytes(3 * MAX_TRAILING_BYTES))
    with open_tar(huge) as (tar, stream):
        while tar.next() is not None:
            pass
        with pytest.raises(LesionPasteError):
            _refuse_trailing_data(tar, stream, "huge.tar", last)
        assert tar.offset < stream.tell() <= tar.offset + MAX_TRAILING_BYTES + 1
