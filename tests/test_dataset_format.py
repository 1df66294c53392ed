"""Directed tests of the dataset format's reader and verifier (lesionpaste/dataset_format.py):
each refusal alone, with its exact one line, and each problem ``verify`` lists."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from lesionpaste.dataset_format import (
    bank_source_ids,
    count_cell,
    dataset_json_text,
    ids_of_sources,
    manifest_text,
    masks_text,
    pastes_text,
    read_dataset_json,
    read_image,
    read_manifest,
    read_mask_index,
    repeated_id,
    safe_path,
    schema_version_of,
    source_images_in,
    verify,
)
from lesionpaste.digests import sha256_bytes
from lesionpaste.errors import LesionPasteError
from tests.conftest import refusal

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate


def _png(value: int) -> bytes:
    return cv2.imencode(".png", np.full((4, 4), value, np.uint8))[1].tobytes()


def _dataset(root: Path) -> Path:
    """A whole synthetic dataset of one pair: normal, anomalous twin and its mask."""
    files = {"images/normal/a.png": _png(10), "images/anomalous/a.png": _png(20),
             "masks/a.png": _png(255)}  # fmt: skip
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    digest = {name: sha256_bytes(data) for name, data in files.items()}
    rows = [
        {"path": "images/normal/a.png", "label": 0, "twin_id": "a", "n_lesions": 0,
         "sha256": digest["images/normal/a.png"]},
        {"path": "images/anomalous/a.png", "label": 1, "twin_id": "a", "tier": 1, "n_lesions": 1,
         "mask_path": "masks/a.png", "sha256": digest["images/anomalous/a.png"]},
    ]  # fmt: skip
    (root / "manifest.csv").write_text(manifest_text(rows), encoding="utf-8")
    record = {"twin_id": "a", "mask_path": "masks/a.png", "mask_sha256": digest["masks/a.png"]}
    (root / "pastes.jsonl").write_text(pastes_text([record]), encoding="utf-8")
    meta = {"kind": "synthetic", "counts": {"images": 2, "normal": 1, "anomalous": 1},
            "config": {}, "files": {"pastes.jsonl": sha256_bytes((root / "pastes.jsonl").read_bytes())}}  # fmt: skip
    (root / "dataset.json").write_text(dataset_json_text(meta), encoding="utf-8")
    return root


@pytest.fixture
def dataset(tmp_path) -> Path:
    return _dataset(tmp_path / "ds")


def _meta(root: Path) -> dict:
    return json.loads((root / "dataset.json").read_text(encoding="utf-8"))


def _set_meta(root: Path, **changes) -> None:
    meta = {**_meta(root), **changes}
    (root / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")


def test_a_whole_dataset_reads_and_verifies(dataset):
    assert read_dataset_json(dataset)["kind"] == "synthetic"
    assert [r["path"] for r in read_manifest(dataset)] == ["images/normal/a.png",
                                                         "images/anomalous/a.png"]  # fmt: skip
    assert verify(dataset) == []


def test_each_dataset_json_refusal_names_its_problem(dataset, tmp_path):
    path = dataset / "dataset.json"
    assert (
        refusal(read_dataset_json, tmp_path / "none")
        == f"{tmp_path / 'none'}: no such dataset directory"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert refusal(read_dataset_json, empty) == (
        f"{empty}: no dataset.json (not a dataset, or an unfinished run)")  # fmt: skip
    _set_meta(dataset, format="other")
    assert refusal(read_dataset_json, dataset) == f"{path}: not a LesionPaste dataset description"
    _set_meta(dataset, format="lesionpaste-dataset", schema_version=2)
    assert refusal(read_dataset_json, dataset) == (
        f"{path}: dataset schema version 2 is not supported; this lesionpaste reads version 1"
    )
    _set_meta(dataset, schema_version=1, kind="real")
    assert refusal(read_dataset_json, dataset) == f"{path}: unknown dataset kind 'real'"
    for key in ("counts", "config", "files"):
        _set_meta(_dataset(tmp_path / key), **{key: [1]})
        assert refusal(read_dataset_json, tmp_path / key) == (
            f"{tmp_path / key / 'dataset.json'}: {key!r} is not a JSON object")  # fmt: skip
    path.write_text("[1, 2]", encoding="utf-8")
    assert refusal(read_dataset_json, dataset) == f"{path}: not a LesionPaste dataset description"


def _write_manifest(root: Path, text: str) -> Path:
    (root / "manifest.csv").write_text(text, encoding="utf-8", newline="")
    return root / "manifest.csv"


HEADER = "path,label,twin_id,tier,n_lesions,mask_path,sha256\n"


@pytest.mark.parametrize(
    "text, problem",
    [
        ("path,label\n", ("unexpected columns ['path', 'label']; expected "
                          "path,label,twin_id,tier,n_lesions,mask_path,sha256")),
        (HEADER + "a.png,0,a,,,,x\nb.png,0,b,,,\n", "line 3: wrong number of fields"),
        (HEADER + "a.png,0,a,,,,x,extra\n", "line 2: wrong number of fields"),
        (HEADER + "a.png,0,a,,,,x\na.png,1,a,,,,y\n", "line 3: a.png is listed twice"),
        (HEADER + "a.png,zero,a,,,,x\n", "line 2: label 'zero' is not an integer"),
        (HEADER + "a.png,1,a,one,3,,x\n", "line 2: tier 'one' is not a whole number"),
        (HEADER + "a.png,1,a,1,-3,,x\n", "line 2: n_lesions '-3' is not a whole number"),
        (HEADER + "a.png,1,a,1,2.5,,x\n", "line 2: n_lesions '2.5' is not a whole number"),
        (HEADER + "a.png,1,a,٣,3,,x\n", "line 2: tier '٣' is not a whole number"),
        (HEADER + "a.png,1,a,1,1234567890,,x\n", "line 2: n_lesions '1234567890' is not a whole number"),
        (HEADER, "the manifest lists no image"),
    ],
)  # fmt: skip
def test_each_manifest_refusal_names_its_line_and_problem(dataset, text, problem):
    path = _write_manifest(dataset, text)
    separator = ", " if problem.startswith("line") else ": "
    assert refusal(read_manifest, dataset) == f"{path}{separator}{problem}"


def test_the_count_cells_read_back_as_integers_or_none(dataset):
    _write_manifest(dataset, HEADER + "a.png,1,a,2,007,,x\nb.png,0,b,,,,y\n")
    rows = read_manifest(dataset)
    assert [(count_cell(r["tier"]), count_cell(r["n_lesions"])) for r in rows] == [
        (2, 7),
        (None, None),
    ]


def test_a_manifest_is_read_as_utf8_with_quoted_fields(dataset):
    name = 'images/é, "b".png'
    path = _write_manifest(dataset, HEADER + '"images/é, ""b"".png",0,"é\nz",,,,x\r\n')
    assert read_manifest(dataset)[0]["path"] == name
    assert read_manifest(dataset)[0]["twin_id"] == "é\nz"  # a quoted line break kept as it is
    path.write_bytes(HEADER.encode() + b"\xff.png,0,a,,,,x\n")
    assert refusal(read_manifest, dataset).startswith(f"{path}: not a readable CSV file (")
    path.unlink()
    assert refusal(read_manifest, dataset) == f"{dataset}: no manifest.csv"
    path.mkdir()
    assert refusal(read_manifest, dataset) == f"{path}: a directory, where a CSV file was expected"


@pytest.mark.parametrize("column", ["path", "mask_path"])
def test_an_unsafe_path_in_either_path_column_is_refused(dataset, column):
    row = {"path": "a.png", "mask_path": "m.png"}
    row[column] = "../escape.png"
    _write_manifest(dataset, HEADER + f"{row['path']},1,a,1,1,{row['mask_path']},x\n")
    assert refusal(read_manifest, dataset) == (
        f"unsafe path '../escape.png' in the dataset {dataset} (must be relative, no '..', no "
        "control characters)")  # fmt: skip


@pytest.mark.parametrize("text", ["a\\b.png", "~/x.png", "/etc/passwd", "", "a\x07.png", "x/../y"])
def test_unsafe_paths_are_refused(tmp_path, text):
    assert refusal(safe_path, tmp_path, text).startswith(f"unsafe path {text!r} in the dataset ")
    assert safe_path(tmp_path, "images/a~b.png") == tmp_path / "images/a~b.png"


def test_a_link_leading_out_of_the_dataset_is_refused(tmp_path):
    (tmp_path / "ds").mkdir()
    os.symlink(tmp_path, tmp_path / "ds" / "out")
    assert refusal(safe_path, tmp_path / "ds", "out/x.png") == (
        f"path 'out/x.png' in the dataset {tmp_path / 'ds'} leads outside it (a link?)")  # fmt: skip


def test_repeated_ids_depend_on_the_kind():
    pair = [{"twin_id": "a", "label": "0"}, {"twin_id": "a", "label": "1"}]
    assert repeated_id(pair, "synthetic") is None
    assert repeated_id(pair, "evaluation") == "a"
    assert repeated_id(pair + [{"twin_id": "a", "label": "1"}], "synthetic") == "a"


def test_an_image_is_read_checked_and_named_in_its_refusals(dataset):
    name = "images/normal/a.png"
    good = sha256_bytes((dataset / name).read_bytes())
    image = read_image(dataset, name, cv2.IMREAD_UNCHANGED, good)
    assert image.shape == (4, 4) and (image == 10).all()
    assert refusal(read_image, dataset, name, cv2.IMREAD_UNCHANGED, "0" * 64) == (
        f"{dataset}: {name} does not match its sha256 (damaged or altered)")  # fmt: skip
    (dataset / "images" / "dir.png").mkdir()
    assert refusal(read_image, dataset, "images/dir.png", 0) == (
        f"{dataset / 'images/dir.png'}: a directory, where a PNG image was expected")  # fmt: skip
    (dataset / "images" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nxxxxIEND\xaeB`\x82")
    assert refusal(read_image, dataset, "images/bad.png", 0).startswith(
        f"{dataset}: images/bad.png: "
    )
    colour = read_image(dataset, name, cv2.IMREAD_COLOR)
    assert colour.shape == (4, 4, 3)  # the flags reach the decoder


def test_verify_lists_each_problem_in_its_own_words(dataset):
    shutil.copyfile(dataset / "masks/a.png", dataset / "images/normal/a.png")  # another image
    (dataset / "masks/a.png").write_bytes(_png(254))  # another mask
    meta = _meta(dataset)
    meta["counts"] = {"images": 3, "normal": 2, "anomalous": 1}
    meta["files"]["README.md"] = "0" * 64
    (dataset / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")
    assert verify(dataset) == [
        "README.md: missing",
        "images/normal/a.png: sha256 differs from the manifest",
        "dataset.json counts 3 images, manifest has 2",
        "dataset.json normal/anomalous counts differ from the manifest",
        "masks/a.png: sha256 differs from pastes.jsonl",
    ]
    (dataset / "README.md").write_text("a card", encoding="utf-8")
    assert verify(dataset)[0] == "README.md: sha256 differs from dataset.json"


def test_verify_names_what_is_missing(dataset):
    (dataset / "pastes.jsonl").unlink()
    (dataset / "images/anomalous/a.png").unlink()
    meta = _meta(dataset)
    meta["files"] = {}
    (dataset / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")
    assert verify(dataset) == ["images/anomalous/a.png: missing", "pastes.jsonl: missing"]
    (dataset / "manifest.csv").unlink()
    assert verify(dataset) == ["no manifest.csv"]


def test_verify_names_a_malformed_or_missing_paste_record(dataset):
    (dataset / "pastes.jsonl").write_text('{"twin_id": "a"}\n', encoding="utf-8")
    meta = _meta(dataset)
    meta["files"] = {}
    (dataset / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")
    assert verify(dataset) == ["pastes.jsonl, line 1: a malformed line",
                               "masks/a.png: no paste record"]  # fmt: skip
    _set_meta(dataset, kind="synthetic")
    rows = read_manifest(dataset)
    rows[0]["label"] = "2"
    (dataset / "manifest.csv").write_text(manifest_text(rows), encoding="utf-8")
    assert "a synthetic dataset has labels other than 0 and 1" in verify(dataset)


def _evaluation_with_masks(root: Path) -> Path:
    """A whole evaluation set (schema 2) of two images, one with a union and an MA mask."""
    files = {"images/a.png": _png(10), "images/b.png": _png(20), "masks/a.png": _png(255),
             "masks/MA/a.png": _png(255)}  # fmt: skip
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    digest = {name: sha256_bytes(data) for name, data in files.items()}
    rows = [
        {"path": "images/a.png", "label": 1, "twin_id": "a", "mask_path": "masks/a.png",
         "sha256": digest["images/a.png"]},
        {"path": "images/b.png", "label": 0, "twin_id": "b", "sha256": digest["images/b.png"]},
    ]  # fmt: skip
    (root / "manifest.csv").write_text(manifest_text(rows), encoding="utf-8")
    record = {"id": "a", "mask_path": "masks/a.png", "mask_sha256": digest["masks/a.png"],
              "types": {"MA": {"path": "masks/MA/a.png", "sha256": digest["masks/MA/a.png"]}}}  # fmt: skip
    (root / "masks.jsonl").write_text(masks_text([record]), encoding="utf-8")
    meta = {"kind": "evaluation", "counts": {"images": 2}, "config": {},
            "files": {"masks.jsonl": sha256_bytes((root / "masks.jsonl").read_bytes())},
            "masks": {"types": ["MA"], "images_with_masks": 1, "source": "folder"}}  # fmt: skip
    (root / "dataset.json").write_text(dataset_json_text(meta), encoding="utf-8")
    return root


@pytest.fixture
def evaluation(tmp_path) -> Path:
    return _evaluation_with_masks(tmp_path / "ev")


def _set_record(root: Path, **changes) -> None:
    record = {**json.loads((root / "masks.jsonl").read_text(encoding="utf-8")), **changes}
    (root / "masks.jsonl").write_text(masks_text([record]), encoding="utf-8")


def test_an_evaluation_set_with_masks_is_schema_2_and_verifies(evaluation):
    meta = read_dataset_json(evaluation)
    assert meta["schema_version"] == 2 and schema_version_of(meta) == 2
    assert schema_version_of({"kind": "evaluation"}) == 1
    assert verify(evaluation) == []
    records, problems = read_mask_index(evaluation, read_manifest(evaluation))
    assert problems == [] and list(records) == ["a"]
    assert records["a"]["types"]["MA"]["path"] == "masks/MA/a.png"


def test_schema_2_is_only_for_evaluation_sets_with_masks(dataset, evaluation):
    path = evaluation / "dataset.json"
    _set_meta(evaluation, schema_version=3)
    assert refusal(read_dataset_json, evaluation) == (
        f"{path}: dataset schema version 3 is not supported; this lesionpaste reads versions "
        "1 and 2")  # fmt: skip
    _set_meta(evaluation, schema_version=True)
    assert "schema version True is not supported" in refusal(read_dataset_json, evaluation)
    _set_meta(evaluation, schema_version=2, masks=[1])
    assert refusal(read_dataset_json, evaluation) == (
        f"{path}: schema version 2 needs 'masks', a JSON object")  # fmt: skip
    _set_meta(dataset, schema_version=2)  # a synthetic set
    assert refusal(read_dataset_json, dataset).endswith("this lesionpaste reads version 1")


def test_verify_checks_every_mask_of_an_evaluation_set(evaluation):
    (evaluation / "masks/MA/a.png").write_bytes(_png(254))
    (evaluation / "masks/a.png").unlink()
    assert verify(evaluation) == [
        "masks/a.png: missing",
        "masks/MA/a.png: sha256 differs from masks.jsonl",
    ]
    _set_meta(evaluation, masks={"types": [], "images_with_masks": 2})
    assert verify(evaluation)[-2:] == [
        "dataset.json counts 2 images with masks, manifest has 1",
        "dataset.json: masks 'types' lacks ['MA']",
    ]


def test_verify_names_a_masks_jsonl_that_disagrees_with_the_manifest(evaluation):
    meta = _meta(evaluation)
    meta["files"] = {}
    (evaluation / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")
    _set_record(evaluation, mask_path="masks/MA/a.png")
    assert verify(evaluation) == [
        "dataset.json: 'files' does not list masks.jsonl",
        (
            "masks.jsonl, line 1: mask_path 'masks/MA/a.png' of 'a' differs from the "
            "manifest's ('masks/a.png')"
        ),
        "masks/a.png: no record in masks.jsonl",
    ]
    for record, problem in [
        ({"id": "z"}, "image 'z' is not in the manifest"),
        ({"types": {"MA": {"path": "x"}}}, "a malformed line (type 'MA' lacks its path or sha256)"),
        ({"mask_sha256": 7}, "a malformed line (no mask_sha256)"),
        ({"types": []}, "a malformed line ('types' is not a JSON object)"),
    ]:  # fmt: skip
        _evaluation_with_masks(evaluation)
        _set_record(evaluation, **record)
        assert f"masks.jsonl, line 1: {problem}" in verify(evaluation)
    (evaluation / "masks.jsonl").write_text("[1]\n[2]\n", encoding="utf-8")
    assert "masks.jsonl, line 2: a malformed line" in verify(evaluation)
    (evaluation / "masks.jsonl").unlink()
    assert "masks.jsonl: missing" in verify(evaluation)


@pytest.mark.parametrize(
    "unsafe", ["/etc/passwd", "../outside.png", "masks/../../x.png", "out/x.png"]
)
def test_an_unsafe_path_in_masks_jsonl_is_refused_as_in_the_manifest(evaluation, tmp_path, unsafe):
    os.symlink(tmp_path, evaluation / "out")
    _set_record(evaluation, types={"MA": {"path": unsafe, "sha256": "0" * 64}})
    with pytest.raises(LesionPasteError) as err:
        read_mask_index(evaluation, read_manifest(evaluation))
    assert str(err.value).startswith((f"unsafe path {unsafe!r}", f"path {unsafe!r}"))
    assert verify(evaluation) == ["masks.jsonl: sha256 differs from dataset.json", str(err.value)]


def test_a_schema_1_evaluation_set_giving_masks_is_a_problem(evaluation):
    meta = _meta(evaluation)
    del meta["masks"]
    meta["schema_version"] = 1
    (evaluation / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")
    assert verify(evaluation) == [
        "manifest.csv: rows give a mask_path, but dataset.json has no 'masks'"
    ]


def test_bank_source_ids_are_read_from_dataset_json():
    meta = {"bank": {"sources": [{"id": "IDRiD_03", "licence": "CC BY 4.0"}, {"id": "x"}]}}
    assert bank_source_ids(meta) == {"IDRiD_03", "x"}
    assert bank_source_ids({}) == set() and bank_source_ids({"bank": {}}) == set()
    for bad in ({"bank": []}, {"bank": {"sources": {}}}, {"bank": {"sources": [{"id": 3}]}}):
        with pytest.raises(LesionPasteError):
            bank_source_ids(bad)
    assert ids_of_sources([{"id": "study_0255:z012"}]) == {"study_0255:z012"}


def test_source_images_are_found_by_id_or_by_volume():
    rows = [{"twin_id": i} for i in ["IDRiD_01", "idrid_03", "IDRiD_03", "study_0255_z040",
                                     "study_02550_z001", "study_0256_z012", "e\u0301"]]  # fmt: skip
    found = source_images_in(rows, {"IDRiD_03", "study_0255:z012", "é"})
    assert found == ["idrid_03", "IDRiD_03", "study_0255_z040", "e\u0301"]
    assert source_images_in(rows, set()) == []
    assert source_images_in([{"twin_id": "a"}, {"twin_id": "a"}], ["a"]) == ["a"]


def test_a_dataset_lists_its_metadata_first_then_its_images_and_masks_in_manifest_order(
    dataset, evaluation
):
    from lesionpaste.dataset_format import listed_files

    # synthetic: dataset.json, manifest.csv, then the other metadata; the card only when there
    images = ["images/normal/a.png", "images/anomalous/a.png", "masks/a.png"]
    assert listed_files(dataset) == ["dataset.json", "manifest.csv", "pastes.jsonl", *images]
    (dataset / "README.md").write_text("a card", encoding="utf-8")
    (dataset / "notes.txt").write_text("not listed anywhere", encoding="utf-8")
    assert listed_files(dataset) == ["dataset.json", "manifest.csv", "README.md",
                                     "pastes.jsonl", *images]  # fmt: skip
    # an evaluation set with masks: masks.jsonl, each row's image and union mask, then the
    # per-type masks masks.jsonl names (each path once)
    assert listed_files(evaluation) == [
        "dataset.json", "manifest.csv", "masks.jsonl", "images/a.png", "masks/a.png",
        "images/b.png", "masks/MA/a.png",
    ]  # fmt: skip


def test_a_listed_file_with_an_unsafe_path_is_refused(dataset):
    from lesionpaste.dataset_format import listed_files

    meta = _meta(dataset)
    meta["files"]["../outside.txt"] = "0" * 64
    (dataset / "dataset.json").write_text(dataset_json_text(meta), encoding="utf-8")
    with pytest.raises(LesionPasteError, match="outside.txt"):
        listed_files(dataset)


def test_the_listed_metadata_follows_the_kind_not_only_the_files_record(dataset, evaluation):
    """``pastes.jsonl`` belongs to a synthetic set and ``masks.jsonl`` to an evaluation set with
    masks, whether or not ``dataset.json``'s ``files`` names them; an evaluation set without
    masks has neither, and lists no per-type mask."""
    from lesionpaste.dataset_format import listed_files

    meta = _meta(dataset)
    del meta["files"]
    (dataset / "dataset.json").write_text(dataset_json_text(meta), encoding="utf-8")
    assert listed_files(dataset)[:3] == ["dataset.json", "manifest.csv", "pastes.jsonl"]
    meta = _meta(evaluation)
    meta["files"] = {}
    (evaluation / "dataset.json").write_text(dataset_json_text(meta), encoding="utf-8")
    assert listed_files(evaluation)[:3] == ["dataset.json", "manifest.csv", "masks.jsonl"]
    del meta["masks"]
    (evaluation / "masks.jsonl").unlink()
    rows = [{"path": "images/a.png", "label": 1, "twin_id": "a", "sha256": "0" * 64}]
    (evaluation / "manifest.csv").write_text(manifest_text(rows), encoding="utf-8")
    meta["counts"] = {"images": 1}
    (evaluation / "dataset.json").write_text(dataset_json_text(meta), encoding="utf-8")
    assert listed_files(evaluation) == ["dataset.json", "manifest.csv", "images/a.png"]
