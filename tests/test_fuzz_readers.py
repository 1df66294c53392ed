"""Readers of files that come from other people end in one clear error, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bank_builder.bank_file import read_bank
from bank_builder.errors import LesionPasteError
from lesionpaste.dataset_format import read_dataset_json, verify
from synth.normals import read_label_file
from tests.conftest import SHARED_DATA
from tests.synth_fixtures import make_fundus_bank
from tests.train_fixtures import synthetic
from train.data import load_dataset
from train.errors import TrainError

# LP_FUZZ_EXAMPLES raises the count for a longer run (make fuzz); CI keeps it short
FUZZ = settings(
    max_examples=int(os.environ.get("LP_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
csv_text = st.text(alphabet=st.sampled_from(list("ab,0123\n\r\"'./\\-_ é\x00")), max_size=300)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return synthetic(tmp_path_factory.mktemp("fuzz") / "d", pairs=3)


def _copy(dataset: Path, tmp: Path) -> Path:
    target = tmp / "copy"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(dataset, target)
    return target


@FUZZ
@given(manifest=csv_text)
def test_any_manifest_is_verified_or_refused_cleanly(dataset, tmp_path, manifest):
    root = _copy(dataset, tmp_path)
    (root / "manifest.csv").write_text(manifest, encoding="utf-8")
    problems = verify(root)  # reports problems as lines; must not raise
    assert isinstance(problems, list) and problems
    with pytest.raises(TrainError):
        load_dataset(root)
    assert not (tmp_path / "etc").exists()


@FUZZ
@given(
    meta=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=10,
    )
)
def test_any_dataset_json_is_read_or_refused_cleanly(dataset, tmp_path, meta):
    root = _copy(dataset, tmp_path)
    (root / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")
    try:
        read_dataset_json(root)
    except LesionPasteError:
        pass
    with pytest.raises(TrainError):
        load_dataset(root)


@FUZZ
@given(labels=csv_text)
def test_any_label_file_is_read_or_refused_cleanly(tmp_path, labels):
    (tmp_path / "images").mkdir(exist_ok=True)
    (tmp_path / "labels.csv").write_text(labels, encoding="utf-8")
    try:
        found, _ = read_label_file(tmp_path / "labels.csv", tmp_path / "images", {0})
    except LesionPasteError:
        return
    assert not found  # no image exists, so nothing can be found


@pytest.fixture(scope="module")
def bank_file(tmp_path_factory) -> Path:
    return make_fundus_bank(tmp_path_factory.mktemp("fuzzbank") / "b.h5")


@FUZZ
@given(
    name=st.sampled_from(
        [
            "schema_version",
            "modality",
            "channels",
            "lesion_types",
            "preprocess",
            "sources",
            "format",
        ]
    ),
    value=st.one_of(
        st.integers(-5, 10),
        st.text(
            st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=20
        ),
        st.sampled_from(["[]", "{}", "[1", '"x"', "null"]),
    ),
)
def test_any_bank_attribute_damage_is_refused_cleanly(bank_file, tmp_path, name, value):
    path = tmp_path / "b.h5"
    shutil.copy(bank_file, path)
    with h5py.File(path, "a") as f:
        f.attrs[name] = value
    try:
        read_bank(path)
    except LesionPasteError:
        pass


@FUZZ
@given(
    column=st.integers(0, 3),
    value=st.integers(-(2**31), 2**31 - 1),
)
def test_any_bank_table_damage_is_refused_cleanly(bank_file, tmp_path, column, value):
    path = tmp_path / "b.h5"
    shutil.copy(bank_file, path)
    with h5py.File(path, "a") as f:
        bbox = f["lesions/bbox"][()]
        bbox[0, column] = value
        del f["lesions/bbox"]
        f["lesions/bbox"] = bbox
    try:
        bank = read_bank(path)
    except LesionPasteError:
        return
    for i in range(len(bank)):  # whatever was accepted must be readable
        lesion = bank.lesion(i)
        assert lesion.patch.shape[:2] == lesion.mask.shape
        assert np.isfinite(lesion.patch).all()


def _mask_files() -> dict[str, bytes]:
    """Valid masks in the forms users send: IDRiD's official 1-bit palette TIFF (the genuine
    file when ../shared is there), a plain 1-bit TIFF, 8-bit PNG, 16-bit PNG."""
    import io

    from PIL import Image

    truth = np.zeros((24, 32), np.uint8)
    truth[5:11, 7:19] = 1
    files = {}
    for name, image, kind in (
        ("tif", Image.fromarray(truth * 255).convert("1"), "TIFF"),
        ("png", Image.fromarray(truth * 255), "PNG"),
        ("png16", Image.fromarray(truth.astype(np.uint16)), "PNG"),
    ):
        buffer = io.BytesIO()
        image.save(buffer, format=kind)
        files[name] = buffer.getvalue()
    official = shared_path("idrid_official_ex_sample", "masks", "IDRiD_55_EX.tif")
    if official.is_file():
        files["tif_official"] = official.read_bytes()
    return files


def shared_path(*parts: str) -> Path:
    return SHARED_DATA.joinpath(*parts)


MASKS = _mask_files()


@FUZZ
@given(
    form=st.sampled_from(sorted(MASKS)),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
    cut=st.integers(0, 10_000),
)
def test_any_damaged_mask_is_read_or_refused_cleanly(tmp_path, form, edits, cut):
    from bank_builder.image_files import read_mask

    data = bytearray(MASKS[form])
    for offset, value in edits:
        data[offset % len(data)] = value
    path = tmp_path / f"mask.{form[:3]}"
    path.write_bytes(bytes(data[: max(cut, 1)] if cut < len(data) else data))
    try:
        mask, _ = read_mask(path)
    except LesionPasteError:
        return
    assert mask.dtype == bool and mask.ndim == 2  # accepted: a boolean 2-D mask, nothing else
