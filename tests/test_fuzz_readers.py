"""Readers of files that come from other people end in one clear error, never a traceback."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lesionpaste.bank_format import read_bank
from lesionpaste.dataset_format import MANIFEST_COLUMNS, read_dataset_json, verify
from lesionpaste.errors import LesionPasteError
from lesionpaste.synth.inputs.normals import read_label_file
from lesionpaste.train.training.dataset import load_dataset
from tests.conftest import DELETE, SHARED_DATA, damaged
from tests.synth_fixtures import make_fundus_bank

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate

# LP_FUZZ_EXAMPLES raises the count for a longer run (make fuzz); CI keeps it short. Under make
# mutate (mutmut sets MUTANT_UNDER_TEST) the examples are the same for every mutant and a failure
# is not shrunk: the mutant is caught at its first failing example instead of many seconds later
UNDER_MUTATION = (
    {"phases": [Phase.explicit, Phase.generate], "database": None, "derandomize": True}
    if "MUTANT_UNDER_TEST" in os.environ
    else {}
)
FUZZ = settings(
    max_examples=int(os.environ.get("LP_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    **UNDER_MUTATION,
)
HOSTILE_TEXT = st.text(alphabet=st.sampled_from(list("ab,0123\n\r\"'./\\-_ é~\x00")), max_size=20)
FIELD_VALUES = st.one_of(
    st.sampled_from(
        ["", "0", "1", "2", "-1", "1.5", "x", "images/0000.png", "images/0001.png", "../x.png",
         "/etc/passwd", "images", "~/x.png", "images\\0000.png", "0" * 64, "t0000"]
    ),
    HOSTILE_TEXT,
)  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A real dataset made by lp-synth (3 twin pairs, masks and paste records)."""
    from tests.synth_fixtures import make_normals
    from tests.test_output_safety import invoke

    root = tmp_path_factory.mktemp("fuzz")
    bank = make_fundus_bank(root / "b.h5")
    normals = make_normals(root / "normals", 3)
    code, err = invoke("lp-synth", "--bank", bank, "--normals", normals, "--size", "48",
                       "--out", root / "d", "-q")  # fmt: skip
    assert code == 0 and verify(root / "d") == [], err
    return root / "d"


def _copy(dataset: Path, tmp: Path) -> Path:
    target = tmp / "copy"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(dataset, target)
    return target


def _rows(root: Path) -> list[dict]:
    with open(root / "manifest.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@FUZZ
@given(
    edits=st.lists(
        st.tuples(st.integers(0, 99), st.sampled_from(MANIFEST_COLUMNS), FIELD_VALUES),
        min_size=1,
        max_size=3,
    ),
    extra=st.sampled_from(["none", "duplicate", "drop", "short"]),
)
def test_any_damaged_manifest_row_is_verified_or_refused_cleanly(dataset, tmp_path, edits, extra):
    """A structurally valid manifest (the right header) with damaged rows and values."""
    root = _copy(dataset, tmp_path)
    original = _rows(root)
    rows = [dict(r) for r in original]
    for index, column, value in edits:
        rows[index % len(rows)][column] = value
    if extra == "duplicate":
        rows.append(dict(rows[0]))
    elif extra == "drop":
        rows.pop()
    with open(root / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        if extra == "short":
            fh.write("images/0000.png,0\n")
    problems = verify(root)  # the problems as lines: it never raises
    changed = [(o, r) for o, r in zip(original, rows) if o != r]
    try:
        data = load_dataset(root)
    except LesionPasteError as exc:
        assert str(exc) and "\n" not in str(exc) and problems
        return
    # accepted: exactly the rows written, nothing that a reader must refuse
    assert extra in ("none", "drop") and data.paths == [r["path"] for r in rows]
    assert data.labels.tolist() == [int(r["label"]) for r in rows]
    for before, after in changed:
        assert (before["path"], before["sha256"]) == (after["path"], after["sha256"])
    if not changed and extra == "none":
        assert problems == []
    elif extra == "drop" or any(o["label"] != r["label"] for o, r in changed):
        assert problems  # counts or pairs no longer agree with dataset.json


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=4),
    max_leaves=8,
) | st.just(DELETE)  # fmt: skip


@FUZZ
@given(
    where=st.sampled_from(
        [("format",), ("schema_version",), ("kind",), ("counts",), ("counts", "images"),
         ("config",), ("config", "size"), ("files",)]
    ),
    value=JSON_VALUES,
)  # fmt: skip
def test_any_damaged_dataset_json_is_read_or_refused_cleanly(dataset, tmp_path, where, value):
    """A valid ``dataset.json`` (right format and schema) with one key damaged or deleted."""
    root = _copy(dataset, tmp_path)
    original = json.loads((root / "dataset.json").read_text())
    meta = damaged(original, where, value)
    (root / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")
    try:
        read = read_dataset_json(root)
    except LesionPasteError as exc:
        assert "\n" not in str(exc)
        assert meta.get("format") != original["format"] or where != ("format",)
        refused = True
    else:
        refused = False
        assert read == meta
        assert read["format"] == "lesionpaste-dataset" and read["schema_version"] == 1
        assert read["kind"] in ("synthetic", "evaluation")
    if where[0] in ("format", "schema_version", "kind") and meta.get(where[0]) != original.get(
        where[0]
    ):
        assert refused or (where == ("kind",) and meta["kind"] == "evaluation")
    problems = verify(root)
    if refused:
        assert len(problems) == 1
        with pytest.raises(LesionPasteError):
            load_dataset(root)
    elif meta.get("counts") != original.get("counts"):
        assert problems  # the counts no longer agree with the manifest
    elif meta == original:
        assert problems == []


@FUZZ
@given(
    eyeq=st.booleans(),
    rows=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c (1)", "d é", "missing", "../x", "sub/a", "", "a"])
            | HOSTILE_TEXT,
            st.sampled_from(["0", "1", "2", "4", "x", "", "-1"]),
            st.sampled_from(["0", "1", "2", "q"]),
            st.sampled_from([".jpeg", ".png", ""]),
        ),
        max_size=8,
    ),
)
def test_any_label_file_is_read_or_refused_cleanly(tmp_path, eyeq, rows):
    """EyePACS (``image,level``) and EyeQ (a leading index column, ``image,quality,DR_grade``)
    label files with hostile names and values; images a, b, 'c (1)' and 'd é' exist."""
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    for name in ("a", "b", "c (1)", "d é"):
        (images / f"{name}.png").write_bytes(b"")
    path = tmp_path / "labels.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["", "image", "quality", "DR_grade"] if eyeq else ["image", "level"])
        for i, (name, grade, quality, suffix) in enumerate(rows):
            cells = [name + suffix, grade] if not eyeq else [i, name + suffix, quality, grade]
            writer.writerow(cells)
    try:
        found, missing = read_label_file(path, images, {0, 1})
    except LesionPasteError as exc:
        assert "\n" not in str(exc)
        return
    for image in found:  # accepted: existing files, with a grade the filter kept
        assert image.path.is_file() and image.path.parent == images
        assert image.label in (0, 1) and image.image_id in ("a", "b", "c (1)", "d é")
    assert all(m["id"] not in {i.image_id for i in found} for m in missing)


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
        original = f.attrs[name]
        f.attrs[name] = value
    original = original.decode() if isinstance(original, bytes) else original
    try:
        bank = read_bank(path)
    except LesionPasteError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return
    # accepted: a value the reader takes for what it stands for, never a damaged one
    meta = bank.meta
    assert meta.schema_version == 1 and meta.modality in ("fundus", "ct")
    assert meta.channels in (1, 3) and isinstance(meta.lesion_types, list)
    assert isinstance(meta.preprocess, dict) and isinstance(meta.sources, list)
    if name in ("format", "schema_version", "modality"):
        assert str(value) == str(original)  # any other value is refused
    assert len(bank) > 0 and bank.lesion(0).patch.shape[:2] == bank.lesion(0).mask.shape


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
    from lesionpaste.images import read_mask

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
