import h5py
import numpy as np
import pytest

from bank_builder.extract import extract_lesions
from lesionpaste.bank_format import BankMeta, read_bank, read_meta, write_bank
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
