"""Which normal images a run uses: names, folders and label files, checked function by function
(the CLI tests go through them end to end)."""

from __future__ import annotations

import csv
import unicodedata
from pathlib import Path

import pytest

from lesionpaste.errors import LesionPasteError
from lesionpaste.synth.inputs.normals import (
    MAX_ID_BYTES,
    NormalImage,
    checked_id,
    in_training_split,
    is_eyeq,
    list_folder,
    name_problem,
    read_label_file,
    split,
)

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate


@pytest.mark.parametrize(
    "name, problem",
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("bad\udcff", "not valid UTF-8"),
        ("tab\there", "control character"),
        ("nul\x00", "control character"),
        ("del\x7f", "control character"),
        (".hidden", "starts with '.'"),
        ("..", "starts with '.'"),
        ("é" * (MAX_ID_BYTES // 2 + 1), "too long"),
    ],
)
def test_each_unportable_name_is_named_with_its_reason(name, problem):
    assert problem in name_problem(name)
    with pytest.raises(LesionPasteError, match="image name"):
        checked_id(name, "here")


@pytest.mark.parametrize(
    "name", ["patient 1", "scan (1)", "a#b", "x,y", "眼底", "a..b", "é" * (MAX_ID_BYTES // 2)]
)
def test_ordinary_names_pass_and_come_back_in_nfc(name):
    assert name_problem(name) is None
    nfd = unicodedata.normalize("NFD", name)
    assert checked_id(nfd, "here") == unicodedata.normalize("NFC", name)


def _touch(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"x")
    return folder


def test_a_folder_lists_its_images_sorted_skipping_hidden_and_other_files(tmp_path):
    folder = _touch(tmp_path / "f", "b.png", "a.JPG", "c.jpeg", "._a.png", "notes.txt", "d.tif")
    (folder / "sub.png").mkdir()  # a folder named like an image is not one
    images = list_folder(folder)
    assert [i.image_id for i in images] == ["a", "b", "c", "d"]
    assert [i.path.name for i in images] == ["a.JPG", "b.png", "c.jpeg", "d.tif"]
    assert all(i.label is None and i.slice is None for i in images)


@pytest.mark.parametrize(
    "names, message",
    [
        ((), "no images in it"),
        (("x.png", "x.jpg"), "map to one output name"),
        (("Ab.png", "ab.png"), "map to one output name"),
    ],
)
def test_a_folder_without_usable_images_is_refused(tmp_path, names, message):
    folder = _touch(tmp_path / "f", *names, "readme.md")
    with pytest.raises(LesionPasteError, match=message):
        list_folder(folder)
    with pytest.raises(LesionPasteError, match="no such folder"):
        list_folder(tmp_path / "nowhere")


def _labels(path: Path, rows: list[list]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    return path


def test_an_eyeq_file_in_its_published_form_is_read_with_its_filters(tmp_path):
    images = _touch(tmp_path / "images", "1_left.jpeg", "1_right.jpeg", "2_left.jpeg", "3.jpeg")
    labels = _labels(
        tmp_path / "Label_EyeQ_train.csv",
        [["", "image", "quality", "DR_grade"], [0, "1_left.jpeg", 0, 0], [1, "1_right.jpeg", 1, 0],
         [2, "2_left.jpeg", 0, 2], [3, "9_gone.jpeg", 0, 0], [4, "3.jpeg", 2, 0]],
    )  # fmt: skip
    assert is_eyeq(labels)
    found, missing = read_label_file(labels, images, {0}, "good")
    assert [(i.image_id, i.label) for i in found] == [("1_left", 0)]
    assert [m["id"] for m in missing] == ["9_gone"] and "not in" in missing[0]["reason"]
    found, _ = read_label_file(labels, images, {0}, "usable")
    assert [i.image_id for i in found] == ["1_right"]
    found, _ = read_label_file(labels, images, {0}, "reject")
    assert [i.image_id for i in found] == ["3"]
    found, missing = read_label_file(labels, images, None, None)
    assert [(i.image_id, i.label) for i in found] == [
        ("1_left", 0), ("1_right", 0), ("2_left", 2), ("3", 0)
    ]  # fmt: skip
    assert found[0].path == images / "1_left.jpeg"


def test_an_eyepacs_file_finds_images_with_or_without_their_extension(tmp_path):
    images = _touch(tmp_path / "images", "10_left.jpeg", "10_right.png")
    labels = _labels(tmp_path / "labels.csv", [["image", "level"], ["10_left", 0],
                                               ["10_right.png", 1], ["11_left", 0]])  # fmt: skip
    assert not is_eyeq(labels)
    found, missing = read_label_file(labels, images, {0, 1})
    assert [(i.image_id, i.path.name, i.label) for i in found] == [
        ("10_left", "10_left.jpeg", 0), ("10_right", "10_right.png", 1)
    ]  # fmt: skip
    assert [m["id"] for m in missing] == ["11_left"]
    found, _ = read_label_file(labels, images, {1})
    assert [i.image_id for i in found] == ["10_right"]


@pytest.mark.parametrize(
    "rows, message",
    [
        ([["file", "grade"], ["a", 0]], "unknown label file"),
        ([["image", "level"], ["a", "x"]], "is not a number"),
        ([["image", "level"], ["zzz", 0]], "no image matches"),
        ([["image", "level"], ["a", 3]], "no image matches"),
        ([["image", "level"], ["a", 0], ["a.png", 0]], "map to one output name"),
    ],
)
def test_bad_label_files_are_refused_with_the_reason(tmp_path, rows, message):
    images = _touch(tmp_path / "images", "a.png")
    labels = _labels(tmp_path / "labels.csv", rows)
    with pytest.raises(LesionPasteError, match=message):
        read_label_file(labels, images, {0})


def test_quality_needs_an_eyeq_file_and_missing_paths_are_named(tmp_path):
    images = _touch(tmp_path / "images", "a.png")
    labels = _labels(tmp_path / "labels.csv", [["image", "level"], ["a", 0]])
    with pytest.raises(LesionPasteError, match="--quality needs an EyeQ label file"):
        read_label_file(labels, images, {0}, "good")
    with pytest.raises(LesionPasteError, match="no such label file"):
        read_label_file(tmp_path / "none.csv", images, {0})
    with pytest.raises(LesionPasteError, match="no such folder of images"):
        read_label_file(labels, tmp_path / "none", {0})
    (tmp_path / "bad.csv").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(LesionPasteError):
        read_label_file(tmp_path / "bad.csv", images, {0})
    assert not is_eyeq(tmp_path / "bad.csv") and not is_eyeq(tmp_path / "none.csv")


def test_the_training_split_is_the_documented_hash_rule_and_keeps_its_members():
    import hashlib

    ids = [f"{n}_{eye}" for n in range(10, 60) for eye in ("left", "right")]
    for image_id in ids:
        digest = hashlib.sha256(f"7:{image_id}".encode()).digest()
        assert in_training_split(image_id, 0.8, 7) == (
            int.from_bytes(digest[:8], "big") / 2**64 < 0.8
        )
    images = [NormalImage(i, None, 0) for i in ids]
    train = split(images, "train", 0.8, 7)
    rest = split(images, "rest", 0.8, 7)
    assert {i.image_id for i in train}.isdisjoint({i.image_id for i in rest})
    assert len(train) + len(rest) == len(ids)
    assert [i.image_id for i in split(images[::-1], "train", 0.8, 7)] == [
        i.image_id for i in train[::-1]
    ]  # independent of order
    assert split(images, "train", 0.8, 8) != train  # and of the seed


def test_the_split_keeps_both_eyes_of_a_patient_on_one_side():
    from lesionpaste.synth.inputs.normals import patient_of

    ids = [f"{p}_{eye}" for p in range(1000, 1300) for eye in ("left", "right")]
    ids += [f"Image_{c:02d}{eye}" for c in range(1, 40) for eye in "LR"]
    images = [NormalImage(i, Path(f"{i}.jpeg"), 0) for i in ids]
    train = {n.image_id for n in split(images, "train", 0.8, seed=0)}
    rest = {n.image_id for n in split(images, "rest", 0.8, seed=0)}
    assert train | rest == set(ids) and not train & rest
    sides = {}
    for i in ids:
        sides.setdefault(patient_of(i), set()).add(i in train)
    assert all(len(s) == 1 for s in sides.values())  # no patient straddles the split
    assert len(sides) == 300 + 39
    assert 0.7 < len(train) / len(ids) < 0.9
    # the membership is the documented hash rule, applied to the patient
    assert {i for i in ids if in_training_split(patient_of(i), 0.8, 0)} == train


def test_a_group_pattern_chooses_the_patient():
    from lesionpaste.synth.inputs.normals import patient_of

    assert patient_of("10007_left") == "10007" and patient_of("Image_03R") == "Image_03"
    assert patient_of("IDRiD_03") == "IDRiD_03"  # a number is not an eye
    assert patient_of("site2-p17-a", r"^site\d-(p\d+)") == "p17"
    images = [NormalImage(f"site1-p{p}-{v}", Path("x"), 0) for p in range(50) for v in "abc"]
    train = split(images, "train", 0.5, 0, r"^site\d-(p\d+)")
    by_patient = {}
    for n in images:
        by_patient.setdefault(n.image_id.split("-")[1], set()).add(n in train)
    assert all(len(s) == 1 for s in by_patient.values())


def test_a_group_pattern_that_is_not_a_regular_expression_is_refused():
    from lesionpaste.errors import LesionPasteError
    from lesionpaste.synth.inputs.locations import select

    run = {"strict": False, "split_part": "train", "split_fraction": 0.8, "split_seed": 0,
           "group_pattern": "(", "limit": None}  # fmt: skip
    with pytest.raises(LesionPasteError, match="--group-pattern"):
        select([NormalImage("a_left", Path("a"), 0)], [], run)


def test_a_patient_with_an_abnormal_eye_is_never_in_training(tmp_path):
    """Both eyes of every patient on one side, abnormal ones included: the normal eye of a
    patient whose fellow eye is abnormal goes to the rest, whether the abnormal eye is among
    the images split (prep) or only in the label file (lp-synth's grade-0 normals)."""
    from lesionpaste.synth.inputs.normals import patient_of, patients_with_disease

    patients = [p for p in range(2000, 2400) if in_training_split(str(p), 0.8, 0)][:40]
    images, rows = [], ["image,level"]
    for k, p in enumerate(patients):
        right = 2 if k % 2 else 0  # every other patient: the right eye is abnormal
        images += [
            NormalImage(f"{p}_left", Path("x"), 0),
            NormalImage(f"{p}_right", Path("x"), right),
        ]
        rows += [f"{p}_left,0", f"{p}_right,{right}"]
    train = {n.image_id for n in split(images, "train", 0.8, 0)}
    rest = {n.image_id for n in split(images, "rest", 0.8, 0)}
    assert train | rest == {n.image_id for n in images} and not train & rest
    sides = {}
    for n in images:
        sides.setdefault(patient_of(n.image_id), set()).add(n.image_id in train)
    assert all(len(s) == 1 for s in sides.values())  # abnormal eyes included
    assert train == {f"{p}_{e}" for p in patients[::2] for e in ("left", "right")}
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    diseased = patients_with_disease(labels)
    assert diseased == {str(p) for p in patients[1::2]}
    normals_only = [n for n in images if n.label == 0]  # what lp-synth reads at grade 0
    assert {n.image_id for n in split(normals_only, "train", 0.8, 0)} != train  # without it
    assert {n.image_id for n in split(normals_only, "train", 0.8, 0, diseased=diseased)} == train


def test_the_images_of_a_folder_are_the_folder_or_its_images_subfolder(tmp_path):
    from lesionpaste.synth.inputs.normals import image_folder

    flat = tmp_path / "flat"
    (flat / "images").mkdir(parents=True)
    (flat / "A.PNG").write_bytes(b"x")  # an image of its own, any case: the folder itself
    assert image_folder(flat) == flat
    laid_out = tmp_path / "laid_out"  # images/ beside masks/, nothing else but a note
    (laid_out / "images").mkdir(parents=True)
    (laid_out / "masks").mkdir()
    (laid_out / "notes.txt").write_text("n")
    (laid_out / ".hidden.png").write_bytes(b"x")  # hidden: not an image of the folder
    (laid_out / "dir.png").mkdir()  # a folder named like an image: not one either
    assert image_folder(laid_out) == laid_out / "images"
    plain = tmp_path / "plain"  # no images/ at all: the folder, whatever it holds
    plain.mkdir()
    assert image_folder(plain) == plain
    assert image_folder(tmp_path / "missing") == tmp_path / "missing"
    assert image_folder(str(flat)) == flat  # a string path is taken as a Path
