"""The export layouts as pure functions (synth/sharing/export_layouts.py): the Hugging Face
card's declared features, metadata.jsonl's typed fields, the mvtec split and name clashes."""

from __future__ import annotations

import json

import pytest
import yaml

from lesionpaste.errors import LesionPasteError
from lesionpaste.synth.inputs.normals import in_training_split
from lesionpaste.synth.sharing.export_layouts import (
    Split,
    hugging_face_card,
    imagefolder_files,
    metadata_jsonl,
    mvtec_files,
)

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate


def _row(twin: str, label: int, folder: str, tier: str = "", lesions: str = "0") -> dict:
    return {"path": f"images/{folder}/{twin}.png", "label": str(label), "twin_id": twin,
            "tier": tier, "n_lesions": lesions, "mask_path": f"masks/{twin}.png" if label else "",
            "sha256": "ab" * 32}  # fmt: skip


def test_the_card_declares_the_features_datasets_reads():
    text = hugging_face_card()
    assert text.startswith("---\n")
    front = yaml.safe_load(text.split("---\n")[1])
    (config,) = front["configs"]
    assert config["config_name"] == "default"
    assert config["data_files"] == [
        {"split": "train", "path": ["normal/*.png", "anomalous/*.png", "metadata.jsonl"]}
    ]
    assert config["features"] == [
        {"name": "image", "dtype": "image"},
        {"name": "label", "dtype": {"class_label": {"names": {"0": "normal", "1": "anomalous"}}}},
        {"name": "dataset_label", "dtype": "int32"},
        {"name": "twin_id", "dtype": "string"},
        {"name": "tier", "dtype": "int32"},
        {"name": "n_lesions", "dtype": "int32"},
        {"name": "source_path", "dtype": "string"},
        {"name": "sha256", "dtype": "string"},
    ]
    body = text.split("---\n", 2)[2]
    assert body == (  # what a reader of the card on the Hub is told, as documented
        "\n# LesionPaste imagefolder export\n\n"
        "Images in `normal/` and `anomalous/`; `metadata.jsonl` gives each its label (0 normal,\n"
        "1 anomalous), the dataset's own label (`dataset_label`: the grade of an evaluation set),\n"
        "its twin, tier and lesion count (null where it has none), its source and sha256.\n"
        '`datasets.load_dataset("PATH")` reads the features declared above. The dataset\'s own card\n'
        "is `LESIONPASTE_CARD.md`; `lesionpaste-export.json` lists every file with its source.\n"
    )


def test_metadata_lines_are_typed_json_in_utf8():
    rows = [_row("é1", 0, "normal"), _row("é1", 1, "anomalous", "2", "17"), _row("g", 3, "x")]
    lines = metadata_jsonl(imagefolder_files(rows)).splitlines()
    assert "é1" in lines[0]  # kept as UTF-8, not escaped
    records = [json.loads(line) for line in lines]
    assert [list(r) for r in records] == [["file_name", "label", "dataset_label", "twin_id",
                                            "tier", "n_lesions", "source_path", "sha256"]] * 3  # fmt: skip
    assert records[0] == {"file_name": "normal/é1.png", "label": 0, "dataset_label": 0,
                          "twin_id": "é1", "tier": None, "n_lesions": 0,
                          "source_path": "images/normal/é1.png", "sha256": "ab" * 32}  # fmt: skip
    assert (records[1]["label"], records[1]["tier"], records[1]["n_lesions"]) == (1, 2, 17)
    assert (records[2]["label"], records[2]["dataset_label"]) == (1, 3)  # a grade: anomalous


def test_each_exported_file_says_whether_it_is_a_mask_and_keeps_its_row():
    rows = [_row("a", 0, "normal"), _row("a", 1, "anomalous", "1", "3")]
    files = mvtec_files("evaluation", rows, Split())
    assert [(f.path, f.source, f.mask) for f in files] == [
        ("test/good/a.png", "images/normal/a.png", False),
        ("test/lesion/a.png", "images/anomalous/a.png", False),
        ("ground_truth/lesion/a.png", "masks/a.png", True),
    ]
    assert all(f.row is row for f, row in zip(files, [rows[0], rows[1], rows[1]]))
    assert [f.mask for f in imagefolder_files(rows)] == [False, False]


def _pairs(ids: list[str]) -> list[dict]:
    return [r for t in ids for r in (_row(t, 0, "normal"), _row(t, 1, "anomalous", "1", "2"))]


def test_a_split_with_an_empty_side_names_that_side():
    ids = [f"p{i}_left" for i in range(6)]
    seed = next(s for s in range(200) if not any(in_training_split(f"p{i}", 0.01, s)
                                                 for i in range(6)))  # fmt: skip
    with pytest.raises(LesionPasteError) as caught:
        mvtec_files("synthetic", _pairs(ids), Split(0.01, seed))
    assert str(caught.value) == (
        f"the split (--train-fraction 0.01, --split-seed {seed}) puts no pair in training; "
        "change them, or export more pairs"
    )
    seed = next(s for s in range(200) if all(in_training_split(f"p{i}", 0.99, s)
                                             for i in range(6)))  # fmt: skip
    with pytest.raises(LesionPasteError, match="puts no pair in test;"):
        mvtec_files("synthetic", _pairs(ids), Split(0.99, seed))


def test_anomalous_twins_without_masks_export_without_ground_truth():
    ids = [f"p{i}_left" for i in range(8)]
    rows = [{**r, "mask_path": ""} for r in _pairs(ids)]
    seed = next(s for s in range(200) if 0 < sum(in_training_split(f"p{i}", 0.5, s)
                                                 for i in range(8)) < 8)  # fmt: skip
    files = mvtec_files("synthetic", rows, Split(0.5, seed))
    assert {f.path.split("/")[0] for f in files} == {"train", "test"}  # both sides, no masks
    assert not any(f.mask for f in files)


def test_the_split_groups_by_the_given_pattern():
    split = Split(0.5, 0, r"^(\w)")  # every id starting with one letter is one patient
    assert split.in_training("a_1") == split.in_training("a_2") == in_training_split("a", 0.5, 0)
    ids = [
        c for c in "abcdefghij" if split.in_training(c + "x") != in_training_split(c + "x", 0.5, 0)
    ]
    assert ids  # the default pattern would put some of these ids on the other side


def test_two_files_with_one_name_are_refused_naming_both():
    rows = [_row("a", 0, "normal"), {**_row("A", 0, "normal"), "path": "images/other/A.png"}]
    with pytest.raises(LesionPasteError) as caught:
        imagefolder_files(rows)
    assert str(caught.value) == (
        "images/other/A.png and images/normal/a.png would both be exported as normal/A.png; "
        "rename one"
    )
