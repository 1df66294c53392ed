import hashlib
import json
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from lesionpaste.bank_builder.extract import extract_lesions
from lesionpaste.bank_format import BankMeta, Lesion, read_bank, read_meta, write_bank
from lesionpaste.errors import LesionPasteError

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate


def _meta(**kw):
    base = {
        "modality": "fundus",
        "channels": 3,
        "lesion_types": ["MA", "HE"],
        "command": "t",
        "preprocess": {"name": "none"},
        "sources": [{"id": "s0"}],
        "tool_version": "0.1.0",
    }
    return BankMeta(**{**base, **kw})


def _lesions():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    ma = rng.random((50, 70)) > 0.97
    he = np.zeros((50, 70), bool)
    he[10:20, 30:45] = True
    return image, extract_lesions(image, ma, "MA", 0)[0] + extract_lesions(image, he, "HE", 0)[0]


def _write(path, lesions, **kw):
    write_bank(path, _meta(**kw), lesions, np.zeros((1, 3, 256), np.uint64))


def test_round_trip_gives_back_every_lesion(tmp_path):
    _, lesions = _lesions()
    _write(tmp_path / "b.h5", lesions)
    bank = read_bank(tmp_path / "b.h5")
    assert len(bank) == len(lesions)
    assert bank.counts() == {"MA": len(lesions) - 1, "HE": 1}
    for i, original in enumerate(lesions):
        got = bank.lesion(i)
        np.testing.assert_array_equal(got.patch, original.patch)
        np.testing.assert_array_equal(got.mask, original.mask)
        assert (got.lesion_type, got.bbox, got.area) == (
            original.lesion_type,
            original.bbox,
            original.area,
        )
    assert list(bank.indices_of(["HE"])) == [len(lesions) - 1]


def test_writing_is_byte_reproducible(tmp_path):
    _, lesions = _lesions()
    _write(tmp_path / "a.h5", lesions)
    _write(tmp_path / "b.h5", lesions)
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


def test_other_schema_version_is_refused(tmp_path):
    _, lesions = _lesions()
    _write(tmp_path / "b.h5", lesions, schema_version=2)
    with pytest.raises(LesionPasteError, match="schema version 2 is not supported"):
        read_bank(tmp_path / "b.h5")
    with pytest.raises(LesionPasteError, match="schema version"):
        read_meta(tmp_path / "b.h5")


def test_files_that_are_not_banks_are_refused(tmp_path):
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(LesionPasteError, match="not an HDF5 file"):
        read_bank(tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(LesionPasteError, match="another kind"):
        read_bank(tmp_path / "other.h5")


def test_inconsistent_tables_are_refused(tmp_path):
    _, lesions = _lesions()
    _write(tmp_path / "b.h5", lesions)
    with h5py.File(tmp_path / "b.h5", "a") as f:
        del f["lesions/masks"]
        f["lesions/masks"] = np.zeros(5, np.uint8)
    with pytest.raises(LesionPasteError, match="inconsistent"):
        read_bank(tmp_path / "b.h5")


ATTRIBUTES = ["format", "schema_version", "modality", "channels", "lesion_types", "preprocess",
              "sources", "tool_version", "command"]  # fmt: skip


DATASETS = {"lesions/pixels": np.uint8, "lesions/masks": np.uint8, "lesions/type": np.uint8,
            "lesions/source": np.uint16, "lesions/bbox": np.int32, "lesions/area": np.int64,
            "sources/histogram": np.uint64}  # fmt: skip


def _lesion(h: int, w: int, kind: str, source: int, value: int) -> Lesion:
    mask = np.ones((h, w), bool)
    mask[0, 0] = h * w == 1
    patch = np.full((h, w, 3), value, np.uint8)
    return Lesion(patch, mask, kind, source, (value % 7, value % 5, h, w), int(mask.sum()))


LESIONS = [_lesion(2, 3, "MA", 0, 10), _lesion(3, 2, "EX", 1, 20), _lesion(1, 1, "MA", 1, 30)]


META = BankMeta(
    modality="fundus",
    channels=3,
    lesion_types=["MA", "HE", "EX"],
    preprocess={"name": "graham", "b": 2, "a": 1},
    sources=[{"id": "s0", "z": 1, "a": 2}, {"id": "s1"}],
    tool_version="9.9",
    command="lp-bank build x",
)


def _bank(tmp_path: Path, name: str = "b.h5") -> Path:
    path = tmp_path / name
    histograms = np.arange(2 * 3 * 256, dtype=np.uint64).reshape(2, 3, 256)
    write_bank(path, META, LESIONS, histograms)
    return path


def _refusal(path: Path) -> str:
    with pytest.raises(LesionPasteError) as err:
        read_bank(path)
    return str(err.value)


def _replace(path: Path, name: str, data: np.ndarray) -> None:
    with h5py.File(path, "a") as f:
        del f[name]
        f[name] = data


def test_the_layout_is_the_documented_one(tmp_path):
    path = _bank(tmp_path)
    with h5py.File(path, "r") as f:
        assert list(f.attrs) == ATTRIBUTES  # in the documented order
        assert f.attrs["preprocess"] == json.dumps(META.preprocess, sort_keys=True)
        assert f.attrs["sources"] == json.dumps(META.sources, sort_keys=True)
        assert json.loads(f.attrs["lesion_types"]) == META.lesion_types
        for name, dtype in DATASETS.items():
            assert f[name].dtype == dtype, name
        assert f["lesions/pixels"].shape == (6 * 3 + 6 * 3 + 3,)
        assert f["lesions/masks"][()].tolist() == [0, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1]
        assert f["lesions/type"][()].tolist() == [0, 2, 0]
        assert f["lesions/bbox"][()].tolist() == [[3, 0, 2, 3], [6, 0, 3, 2], [2, 0, 1, 1]]


def test_the_bytes_do_not_depend_on_when_the_bank_was_written(tmp_path):
    first = _bank(tmp_path, "a.h5").read_bytes()
    time.sleep(1.1)  # HDF5 times have a resolution of a second
    assert _bank(tmp_path, "b.h5").read_bytes() == first


def test_a_read_bank_gives_back_its_path_digest_metadata_and_lesions(tmp_path):
    path = _bank(tmp_path)
    bank = read_bank(path)
    assert bank.path == path and bank.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert bank.meta == META and read_meta(path) == META
    assert bank.counts() == {"MA": 2, "HE": 0, "EX": 1}
    assert bank.indices_of(["EX", "MA"]).tolist() == [0, 1, 2]
    assert bank.indices_of(["HE", "XX"]).tolist() == []
    for i, expected in enumerate(LESIONS):
        got = bank.lesion(i)
        assert got.mask.dtype == bool and got.patch.dtype == np.uint8
        np.testing.assert_array_equal(got.mask, expected.mask)
        np.testing.assert_array_equal(got.patch, expected.patch)
        assert (got.lesion_type, got.source, got.bbox, got.area) == (
            expected.lesion_type, expected.source, expected.bbox, expected.area)  # fmt: skip
        assert bank.lesion(i) is got  # built once, then kept
    assert bank.histograms.dtype == np.uint64 and bank.histograms[1, 2, 255] == 2 * 3 * 256 - 1


@pytest.mark.parametrize("name", ATTRIBUTES[2:])
def test_each_missing_attribute_is_named(tmp_path, name):
    path = _bank(tmp_path)
    with h5py.File(path, "a") as f:
        del f.attrs[name]
    problem = "is not an integer" if name == "channels" else "is missing"  # read as a number
    assert _refusal(path) == f"{path}: damaged bank, attribute {name!r} {problem}"


@pytest.mark.parametrize(
    "name, value, problem",
    [
        ("channels", 3.0, "is not an integer"),
        ("channels", "3", "is not an integer"),
        ("channels", b"3", "is not an integer"),
        ("lesion_types", "[MA", "is not JSON"),
        ("lesion_types", '{"MA": 1}', "has the wrong type"),
        ("preprocess", "[]", "has the wrong type"),
        ("sources", "{}", "has the wrong type"),
    ],
)
def test_each_malformed_attribute_is_named(tmp_path, name, value, problem):
    path = _bank(tmp_path)
    with h5py.File(path, "a") as f:
        f.attrs[name] = value
    assert _refusal(path) == f"{path}: damaged bank, attribute {name!r} {problem}"


def test_text_attributes_are_read_as_text_whether_stored_as_bytes_or_str(tmp_path):
    path = _bank(tmp_path)
    with h5py.File(path, "a") as f:
        f.attrs["command"] = np.bytes_(b"lp-bank build \xc3\xa9")  # UTF-8 bytes
        f.attrs["modality"] = np.bytes_(b"ct")
        f.attrs["channels"] = np.int64(1)
    meta = read_meta(path)
    assert meta.command == "lp-bank build é" and meta.modality == "ct"
    assert isinstance(meta.command, str) and meta.tool_version == "9.9"


@pytest.mark.parametrize("channels, modality", [(2, "fundus"), (1, "mri"), (4, "ct")])
def test_a_bad_modality_or_channel_count_is_refused(tmp_path, channels, modality):
    path = _bank(tmp_path)
    with h5py.File(path, "a") as f:
        f.attrs["channels"] = np.int64(channels)
        f.attrs["modality"] = modality
    assert _refusal(path) == f"{path}: damaged bank, bad modality or channel count"


def test_a_one_channel_ct_bank_reads(tmp_path):
    path = tmp_path / "ct.h5"
    lesion = Lesion(np.full((2, 2, 1), 9, np.uint8), np.ones((2, 2), bool), "COVID", 0,
                    (1, 1, 2, 2), 4)  # fmt: skip
    meta = BankMeta("ct", 1, ["COVID"], {"name": "none"}, [{"id": "s"}], "1", "c")
    write_bank(path, meta, [lesion], np.zeros((1, 1, 256), np.uint64))
    assert read_bank(path).lesion(0).patch.shape == (2, 2, 1)


@pytest.mark.parametrize("name", list(DATASETS))
def test_each_missing_or_misshapen_dataset_is_named(tmp_path, name):
    path = _bank(tmp_path)
    with h5py.File(path, "a") as f:
        del f[name]
    message = f"{path}: damaged bank, dataset {name!r} is missing or malformed"
    assert _refusal(path) == message
    with h5py.File(path, "a") as f:
        f[name] = np.zeros((1, 1, 1, 1), np.uint8)  # present, with the wrong number of axes
    assert _refusal(path) == message


@pytest.mark.parametrize(
    "name, data",
    [
        ("lesions/type", np.zeros(0, np.uint8)),  # no lesion at all
        ("lesions/bbox", np.zeros((3, 3), np.int32)),
        ("lesions/source", np.zeros(2, np.uint16)),
        ("lesions/area", np.zeros(4, np.int64)),
        ("lesions/type", np.array([0, 3, 0], np.uint8)),  # type index == number of types
        ("lesions/source", np.array([0, 2, 1], np.uint16)),  # source index == number of sources
        ("sources/histogram", np.zeros((1, 3, 256), np.uint64)),
        ("lesions/masks", np.zeros(12, np.uint8)),
        ("lesions/pixels", np.zeros(38, np.uint8)),
        # a box of zero height whose lost pixels another box takes: the sizes still add up
        ("lesions/bbox", np.array([[3, 0, 0, 3], [6, 0, 6, 2], [2, 0, 1, 1]], np.int32)),
        ("lesions/bbox", np.array([[3, 0, 3, 0], [6, 0, 3, 2], [2, 0, 2, 3]], np.int32)),
    ],
)
def test_each_inconsistency_alone_is_refused(tmp_path, name, data):
    path = _bank(tmp_path)
    _replace(path, name, data)
    assert _refusal(path) == f"{path}: damaged bank, its lesion tables are inconsistent"


def test_a_dataset_declaring_far_more_than_the_file_holds_is_refused_unread(tmp_path):
    path = _bank(tmp_path)
    n = (256 << 20) // 8 + 1  # int64: one element past 256 MiB
    with h5py.File(path, "a") as f:
        del f["lesions/area"]
        f.create_dataset("lesions/area", shape=(n,), dtype=np.int64)  # no storage written
    size = path.stat().st_size
    assert _refusal(path) == (
        f"{path}: dataset 'lesions/area' would take {n * 8 / 2**30:.1f} GiB in memory from a "
        f"{size:,}-byte file; refused unread (damaged or hostile bank)"
    )


def test_a_dataset_under_the_limit_is_read_and_then_judged(tmp_path):
    path = _bank(tmp_path)
    with h5py.File(path, "a") as f:
        del f["lesions/area"]
        f.create_dataset("lesions/area", shape=(2 << 20,), dtype=np.int64)  # 16 MiB, unwritten
    assert path.stat().st_size < (16 << 20) // 64  # over 64 times the file, under 256 MiB
    assert _refusal(path) == f"{path}: damaged bank, its lesion tables are inconsistent"


def test_what_is_not_a_bank_is_named(tmp_path):
    assert _refusal(tmp_path / "none.h5") == f"{tmp_path / 'none.h5'}: no such bank file"
    (tmp_path / "x.h5").write_bytes(b"not hdf5")
    assert (
        _refusal(tmp_path / "x.h5") == f"{tmp_path / 'x.h5'}: not a lesion bank (not an HDF5 file)"
    )
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.attrs["format"] = "something-else"
    assert _refusal(tmp_path / "other.h5") == (
        f"{tmp_path / 'other.h5'}: not a lesion bank (an HDF5 file of another kind)")  # fmt: skip
