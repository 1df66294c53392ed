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
from tests.conftest import Result, refusal
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


def _members_only(path: Path, entries) -> bytes:
    """The archive of ``entries`` written at ``path``, cut right after the last member's
    (padded) data: no end marker."""
    write_tar(path, entries)
    with tarfile.open(path) as tar:
        tar.getmembers()
        end = tar.offset
    return path.read_bytes()[:end]


def _tail(tmp_path: Path, root: Path, name: str, tail: bytes) -> Path:
    """The dataset's archive cut right after its last member's data, then ``tail``."""
    path = tmp_path / name
    path.write_bytes(_members_only(tmp_path / "whole.tar", members(root)) + tail)
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


# --- pack's progress and durability, read_plan's refusals read whole, and its bounds exactly


def test_pack_reports_each_file_it_writes_one_at_a_time(tmp_path, small):
    """``progress`` is called once per packed file with (1, files to pack)."""
    from lesionpaste.dataset_archive import pack

    calls = []
    names, _ = pack(
        small, tmp_path / "a.tar", progress=lambda done, total: calls.append((done, total))
    )
    assert len(names) == len(listed_files(small)) > 1
    assert calls == [(1, len(names))] * len(names)


def test_pack_flushes_the_archive_to_disk_before_it_appears(tmp_path, small, monkeypatch):
    """The whole archive is fsync'ed while still under its temporary name (a crash right after
    the rename cannot leave an empty or partial archive under the final name)."""
    from lesionpaste.dataset_archive import pack

    out, real_fsync, synced = tmp_path / "a.tar", os.fsync, []

    def spy(fd):
        synced.append((os.fstat(fd).st_size, out.exists()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    pack(small, out)
    assert (out.stat().st_size, False) in synced, synced


def declaring(path: Path, entries, name: str, size: int) -> Path:
    """An archive of ``entries``, then a header of ``name`` declaring ``size`` bytes whose
    data is absent (two zero blocks follow): a large declaration without writing its bytes."""
    header = tarfile.TarInfo(name)
    header.size = size
    path.write_bytes(_members_only(path, entries) + header.tobuf() + bytes(2 * tarfile.BLOCKSIZE))
    return path


def _refusal(archive: Path) -> str:
    from lesionpaste.dataset_archive import read_plan

    return refusal(read_plan, archive)


def test_the_first_member_must_be_dataset_json_as_a_regular_file(tmp_path, small):
    """Another first member, and a first member named dataset.json that is a link: each
    refusal whole, naming the archive."""
    entries = members(small)
    other = write_tar(tmp_path / "other.tar", [entries[1], entries[0], *entries[2:]])
    assert _refusal(other) == (
        f"{other}: the first member is 'manifest.csv', not dataset.json; a dataset archive "
        "(lp-synth pack) starts with it, so nothing was written"
    )
    linked = special("dataset.json", tarfile.SYMTYPE, "/etc/x")
    link = write_tar(tmp_path / "link.tar", [linked, *entries[1:]])
    assert _refusal(link) == (
        f"{link}: member 'dataset.json' is a symbolic link; a dataset archive holds only "
        "regular files and folders, so nothing was written"
    )


def test_dataset_json_may_declare_up_to_max_json_bytes(tmp_path):
    """Declaring MAX_JSON_BYTES + 1 is refused on the header, with its message whole; declaring
    exactly MAX_JSON_BYTES is not refused for its size: its data is read (and, absent here,
    found missing)."""
    from lesionpaste.jsonfiles import MAX_JSON_BYTES

    over = declaring(tmp_path / "over.tar", [], "dataset.json", MAX_JSON_BYTES + 1)
    assert _refusal(over) == (
        f"{over}: dataset.json declares {MAX_JSON_BYTES + 1:,} bytes, more than a "
        f"dataset.json may hold ({MAX_JSON_BYTES:,})"
    )
    exact = declaring(tmp_path / "exact.tar", [], "dataset.json", MAX_JSON_BYTES)
    assert _refusal(exact).startswith(f"{exact}: not a readable tar or tar.gz archive (")


def test_a_damaged_dataset_json_is_named_as_the_archives(tmp_path, small):
    """Malformed JSON, JSON that is no dataset description, and one without an image count:
    each message names ``ARCHIVE: dataset.json`` (or the archive, for the missing count)."""
    entries = members(small)
    meta = json.loads((small / "dataset.json").read_text())
    del meta["counts"]["images"]
    cases = {"bad.tar": b"{", "list.tar": b"[]", "uncounted.tar": json.dumps(meta).encode()}
    refusals = {}
    for name, text in cases.items():
        archive = write_tar(tmp_path / name, [regular("dataset.json", text), *entries[1:]])
        refusals[name] = _refusal(archive)
    bad = tmp_path / "bad.tar"
    assert refusals["bad.tar"].startswith(f"{bad}: dataset.json: not valid JSON ("), refusals
    assert refusals["list.tar"] == (
        f"{tmp_path / 'list.tar'}: dataset.json: not a LesionPaste dataset description"
    )
    assert refusals["uncounted.tar"] == (
        f"{tmp_path / 'uncounted.tar'}: dataset.json declares no image count (counts.images), "
        "so the archive's size cannot be bounded; refused before writing anything"
    )


def test_hostile_members_and_duplicates_are_refused_naming_the_archive(tmp_path, small):
    """The refusals of a link member and of a name met twice, read whole."""
    entries = members(small)
    link = write_tar(tmp_path / "link.tar", symlink(entries)[0])
    assert _refusal(link) == (
        f"{link}: member 'images/link.png' is a symbolic link; a dataset archive holds only "
        "regular files and folders, so nothing was written"
    )
    twice = write_tar(tmp_path / "twice.tar", duplicate(entries)[0])
    assert _refusal(twice) == (
        f"{twice}: member {entries[3][0].name!r} appears twice (a duplicate name, on a file "
        "system that ignores case or Unicode form at least); nothing was written"
    )


def test_the_plan_keeps_the_limits_of_its_dataset_json_and_the_member_bound_is_exact(
    tmp_path, small
):
    """``plan.limits`` are ``limits_for`` its dataset.json; exactly ``limits.members`` members
    are accepted (folders fill the count), one more is refused with its message whole."""
    from lesionpaste.archive_members import limits_for
    from lesionpaste.dataset_archive import read_plan

    entries = members(small)
    meta = json.loads((small / "dataset.json").read_text())
    limits = limits_for(meta, "x")
    assert limits.members > len(entries)
    folders = [special(f"images/f{i:02d}", tarfile.DIRTYPE) for i in range(limits.members)]
    full = write_tar(tmp_path / "full.tar", entries + folders[: limits.members - len(entries)])
    plan = read_plan(full)
    assert plan.limits == limits and len(plan.members) == limits.members
    over = write_tar(tmp_path / "over.tar", entries + folders[: limits.members - len(entries) + 1])
    assert _refusal(over) == (
        f"{over}: more members than dataset.json declares (at most {limits.members:,} for "
        f"{limits.images:,} images); nothing was written"
    )


def test_each_member_may_declare_exactly_its_own_bound(tmp_path, small):
    """A PNG of exactly ``png_bytes`` and a metadata file over ``png_bytes`` (its bound is
    ``metadata_bytes``) are accepted; one byte more than a bound is refused, named whole."""
    from lesionpaste.archive_members import limits_for
    from lesionpaste.dataset_archive import read_plan

    entries = members(small)
    limits = limits_for(json.loads((small / "dataset.json").read_text()), "x")
    assert limits.png_bytes < limits.metadata_bytes
    manifest = regular("manifest.csv", bytes(limits.png_bytes + 1))
    fits = [entries[0], manifest, *entries[2:], regular("images/big.png", bytes(limits.png_bytes))]
    plan = read_plan(write_tar(tmp_path / "fits.tar", fits))
    assert plan.members[-1].size == limits.png_bytes
    too_big = regular("images/big.png", bytes(limits.png_bytes + 1))
    big = write_tar(tmp_path / "big.tar", [*entries, too_big])
    assert _refusal(big) == (
        f"{big}: member 'images/big.png' declares {limits.png_bytes + 1:,} bytes, more than "
        f"dataset.json allows for it ({limits.png_bytes:,}); nothing was written"
    )
    rest = [entries[0], *entries[2:]]
    meta_over = declaring(tmp_path / "meta.tar", rest, "manifest.csv", limits.metadata_bytes + 1)
    assert _refusal(meta_over) == (
        f"{meta_over}: member 'manifest.csv' declares {limits.metadata_bytes + 1:,} bytes, more "
        f"than dataset.json allows for it ({limits.metadata_bytes:,}); nothing was written"
    )


def test_the_plans_total_is_the_sum_of_its_files_sizes_and_folders_count_nothing(tmp_path, small):
    """``total_bytes`` adds every file's declared size; a folder's header may declare more
    than any member may hold, yet it counts as 0 bytes and is not refused."""
    from lesionpaste.dataset_archive import read_plan

    entries = members(small)
    folder = special("images", tarfile.DIRTYPE)
    folder[0].size = 10_000_000
    plan = read_plan(write_tar(tmp_path / "a.tar", [*entries, folder]))
    assert plan.total_bytes == sum(len(data) for _, data in entries)
    assert plan.members[-1].name == "images" and plan.members[-1].size == 0
    assert plan.limits.png_bytes < folder[0].size


def test_read_plan_refuses_more_bytes_in_all_than_the_limits_allow(tmp_path, small, monkeypatch):
    """With the total bound lowered (each member within its own bound): members adding up to
    exactly the bound are accepted, one byte more is refused with its message whole."""
    import dataclasses

    import lesionpaste.dataset_archive as archive_module

    entries = members(small)
    archive = write_tar(tmp_path / "a.tar", entries)
    total = sum(len(data) for _, data in entries)
    real_limits = archive_module.limits_for

    def bound_to(total_bytes):
        def limits_for(meta, where):
            return dataclasses.replace(real_limits(meta, where), total_bytes=total_bytes)

        monkeypatch.setattr(archive_module, "limits_for", limits_for)

    bound_to(total)
    assert archive_module.read_plan(archive).total_bytes == total
    bound_to(total - 1)
    assert _refusal(archive) == (
        f"{archive}: the members declare more bytes than dataset.json allows ({total - 1:,}); "
        "nothing was written"
    )


# --- unpack: its defaults, its output's checks, free space, its lock and work folder


def test_unpack_refuses_an_existing_dataset_unless_told_to_overwrite(tmp_path, small):
    """``unpack``'s default is not to overwrite, even an earlier dataset of its own."""
    from lesionpaste.dataset_archive import unpack
    from lesionpaste.errors import LesionPasteError

    archive = write_tar(tmp_path / "a.tar", members(small))
    out = tmp_path / "out"
    unpack(archive, out)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(LesionPasteError) as caught:
        unpack(archive, out)
    assert str(caught.value) == f"{out} already exists; pass --overwrite to replace it"
    assert (out / "notes.txt").read_text() == "mine"


def test_unpack_refuses_to_write_over_its_archive_naming_it(tmp_path, small):
    """The output being the archive itself: the refusal names it as ``the archive``."""
    from lesionpaste.dataset_archive import unpack
    from lesionpaste.errors import LesionPasteError

    archive = write_tar(tmp_path / "a.tar", members(small))
    with pytest.raises(LesionPasteError) as caught:
        unpack(archive, archive, overwrite=True)
    assert str(caught.value) == (
        f"the output {archive} is the archive ({archive}); inputs are never written to, so "
        "nothing was touched: choose an output outside every input"
    )
    assert archive.is_file()


def test_unpack_creates_the_missing_folders_above_its_output(tmp_path, small):
    """An output two folders below any existing one is written whole."""
    from lesionpaste.dataset_archive import unpack

    archive = write_tar(tmp_path / "a.tar", members(small))
    out = tmp_path / "a" / "b" / "out"
    unpack(archive, out)
    assert tree_bytes(out) == tree_bytes(small)


def test_unpack_needs_free_space_for_its_members_exactly(tmp_path, small, monkeypatch):
    """Free space equal to the members' bytes suffices; one byte less is refused, message
    whole, and nothing is written."""
    import shutil
    import types

    import lesionpaste.dataset_archive as archive_module
    from lesionpaste.errors import LesionPasteError

    archive = write_tar(tmp_path / "a.tar", members(small))
    total = archive_module.read_plan(archive).total_bytes

    def free_space(free):
        usage = types.SimpleNamespace(total=free, used=0, free=free)
        monkeypatch.setattr(shutil, "disk_usage", lambda path: usage)

    free_space(total)
    archive_module.unpack(archive, tmp_path / "fits" / "out")
    assert tree_bytes(tmp_path / "fits" / "out") == tree_bytes(small)
    free_space(total - 1)
    out = tmp_path / "short" / "out"
    with pytest.raises(LesionPasteError) as caught:
        archive_module.unpack(archive, out)
    assert str(caught.value) == (
        f"{archive}: its members take {total:,} bytes, and {out.parent} has {total - 1:,} free; "
        "free some space; nothing was written"
    )
    assert list(out.parent.iterdir()) == []


def test_unpack_holds_its_outputs_lock_under_its_own_name(tmp_path, small):
    """Another run holding the output's lock: unpack is refused, naming itself as
    ``lp-synth unpack`` and the holder's process id."""
    from lesionpaste.dataset_archive import unpack
    from lesionpaste.errors import LesionPasteError
    from lesionpaste.files import output_lock

    archive = write_tar(tmp_path / "a.tar", members(small))
    out = tmp_path / "out"
    with output_lock(out, "another tool"), pytest.raises(LesionPasteError) as caught:
        unpack(archive, out)
    assert str(caught.value) == (
        f"another lp-synth unpack run (pid {os.getpid()}) is writing this output; wait for it "
        "to end"
    )
    assert not out.exists()


def test_unpack_builds_in_its_hidden_sibling_after_clearing_a_killed_runs_one(tmp_path, small):
    """The files are written into ``.NAME.unpack.partial`` (what a killed run left there is
    removed first); afterwards only the output remains."""
    from lesionpaste.dataset_archive import unpack

    archive = write_tar(tmp_path / "a.tar", members(small))
    out, work = tmp_path / "out", tmp_path / ".out.unpack.partial"
    work.mkdir()
    (work / "left.png").write_bytes(b"a killed run's")
    seen = []

    def look(done, total):
        seen.append((work.is_dir(), (work / "left.png").exists()))

    unpack(archive, out, progress=look)
    assert seen and set(seen) == {(True, False)}, seen
    assert tree_bytes(out) == tree_bytes(small) and not work.exists()


def test_unpack_refuses_an_output_that_appeared_while_it_ran(tmp_path, small):
    """An output created meanwhile (without overwrite) is left as it is; the refusal names it
    as given."""
    from lesionpaste.dataset_archive import unpack
    from lesionpaste.errors import LesionPasteError

    archive = write_tar(tmp_path / "a.tar", members(small))
    out = tmp_path / "out"

    def appear(done, total):
        out.mkdir(exist_ok=True)

    with pytest.raises(LesionPasteError) as caught:
        unpack(archive, out, progress=appear)
    assert str(caught.value) == f"{out} already exists; pass --overwrite to replace it"
    assert list(out.iterdir()) == [] and not (tmp_path / ".out.unpack.partial").exists()


def test_unpack_check_names_the_first_problem_and_counts_the_others(tmp_path, small):
    """One problem is named alone; with more, ``(and N more problems)`` counts the others."""
    from lesionpaste.dataset_archive import unpack
    from lesionpaste.errors import LesionPasteError

    entries = members(small)
    first = "images/extra0.png: in the archive but not listed by the dataset"
    for extra, suffix in ((1, ""), (2, " (and 1 more problems)"), (3, " (and 2 more problems)")):
        added = [regular(f"images/extra{i}.png", b"x") for i in range(extra)]
        archive = write_tar(tmp_path / f"extra{extra}.tar", entries + added)
        with pytest.raises(LesionPasteError) as caught:
            unpack(archive, tmp_path / f"out{extra}")
        assert str(caught.value) == f"{archive}: {first}{suffix}; nothing was unpacked"
        assert not (tmp_path / f"out{extra}").exists()
