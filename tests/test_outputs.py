"""The output guard (``lesionpaste.outputs``), tested directly on folders made by hand.

No tool runs here: every earlier output is built with pathlib, h5py, numpy and cv2, and every
refusal is checked by its exact phrase, so that a changed string, condition or constant in the
guard fails a test.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from lesionpaste import outputs
from lesionpaste.errors import LesionPasteError
from lesionpaste.images import write_png
from lesionpaste.outputs import check_output, foreign, is_run, relation

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate

DIR_KINDS = ["dataset", "run", "evaluation", "export", "predictions", "model"]
ALL_KINDS = ["bank", "picture", "archive", *DIR_KINDS]
TEMP = ".x.123.tmp"
#: KINDS, spelled out here (not read from the module) so that a changed word is caught
KIND_WORDS = {
    "dataset": "a LesionPaste dataset directory",
    "run": "an lp-train run directory",
    "evaluation": "an lp-eval / lp-knn evaluation folder",
    "bank": "a lesion bank file",
    "picture": "a PNG picture written by LesionPaste",
    "archive": "a dataset archive written by lp-synth pack",
    "export": "a folder written by lp-synth export",
    "predictions": "a folder written by lp-predict",
    "model": "a model folder written by lp-export",
}


# ---------------------------------------------------------------- helpers


def touch(root: Path, *names: str) -> Path:
    """Empty files (with their folders) under ``root``; returns ``root``."""
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return root


def folders(root: Path, *names: str) -> Path:
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
    return root


def write_json(path: Path, value) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))
    return path


def link(path: Path, target: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)
    return path


def holds(name: str, writer: str) -> str:
    return f"it holds {name!r}, which {writer} does not write"


def make_bank(path: Path, value) -> Path:
    with h5py.File(path, "w") as f:
        if value is not None:
            f.attrs["format"] = value
    return path


def make_tar(path: Path, first: str, compress: bool = False, directory: bool = False) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(first)
        if directory:
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        else:
            info.size = 2
            tar.addfile(info, io.BytesIO(b"{}"))
        more = tarfile.TarInfo("manifest.csv")
        more.size = 1
        tar.addfile(more, io.BytesIO(b"x"))
    data = gzip.compress(buf.getvalue()) if compress else buf.getvalue()
    path.write_bytes(data)
    return path


def tiny() -> np.ndarray:
    return np.full((4, 5, 3), 120, dtype=np.uint8)


# ---------------------------------------------------------------- relation


def test_relation_is_inside_contains_none(tmp_path):
    a = folders(tmp_path, "a/b/c") / "a"
    assert relation(a / "b", a / "b") == "is"
    assert relation(a / "b" / "c", a / "b") == "lies inside"
    assert relation(a / "b" / "c" / "new", a) == "lies inside"
    assert relation(a, a / "b" / "c") == "contains"
    assert relation(a / "b", a / "x") is None
    assert relation(a / "x", a / "b") is None


def test_relation_prefix_named_sibling_does_not_overlap(tmp_path):
    folders(tmp_path, "a/b", "a/bc")
    assert relation(tmp_path / "a" / "bc", tmp_path / "a" / "b") is None
    assert relation(tmp_path / "a" / "b", tmp_path / "a" / "bc") is None


def test_relation_sees_through_links_and_dotdot(tmp_path):
    data = folders(tmp_path, "data/x") / "data"
    lnk = link(tmp_path / "lnk", data)
    assert relation(lnk, data) == "is"
    assert relation(lnk / "sub", data) == "lies inside"
    assert relation(tmp_path, lnk) == "contains"
    assert relation(data / "x" / "..", data) == "is"
    assert relation(data / ".." / "data" / "x", data) == "lies inside"
    assert relation(Path(str(data / "x" / "..")), data / "x") == "contains"


# ---------------------------------------------------------------- check_output


def test_check_output_refuses_a_link(tmp_path):
    target = folders(tmp_path, "real") / "real"
    out = link(tmp_path / "out", target)
    with pytest.raises(LesionPasteError) as exc:
        check_output(out, "run", [], overwrite=False)
    assert str(exc.value) == (
        f"{out} is a symbolic link (to {target}); outputs are never written through a link, "
        "so nothing was touched: give the real path or a new name"
    )
    # a dangling link too, and the path given as a string
    dangling = link(tmp_path / "dangling", tmp_path / "nowhere")
    with pytest.raises(LesionPasteError, match="is a symbolic link \\(to "):
        check_output(str(dangling), "bank", [], overwrite=True)


@pytest.mark.parametrize(
    ("out_rel", "in_rel", "how"),
    [
        ("data", "data", "is"),
        ("data/sub/out", "data", "lies inside"),
        ("parent", "parent/data", "contains"),
    ],
)
def test_check_output_refuses_overlap_with_an_input(tmp_path, out_rel, in_rel, how):
    folders(tmp_path, in_rel)
    out, given = tmp_path / out_rel, tmp_path / in_rel
    with pytest.raises(LesionPasteError) as exc:
        check_output(out, "run", [("labels", None), ("dataset", given)], overwrite=False)
    assert str(exc.value) == (
        f"the output {out} {how} the dataset ({given}); inputs are never written to, "
        "so nothing was touched: choose an output outside every input"
    )


def test_check_output_none_inputs_are_skipped_not_the_end(tmp_path):
    data = folders(tmp_path, "data") / "data"
    assert check_output(tmp_path / "out", "run", [("bank", None)], overwrite=False) is None
    with pytest.raises(LesionPasteError, match="lies inside the normals"):
        check_output(
            str(data / "out"), "run", [("bank", None), ("normals", str(data))], overwrite=False
        )


def test_check_output_accepts_separate_inputs_and_a_new_output(tmp_path):
    folders(tmp_path, "a", "b")
    inputs = [("bank", tmp_path / "a"), ("normals", tmp_path / "b")]
    assert check_output(tmp_path / "out", "dataset", inputs, overwrite=False) is None
    assert check_output(tmp_path / "out", "dataset", inputs, overwrite=True) is None
    assert check_output(tmp_path / "out.h5", "bank", inputs, overwrite=True) is None


def test_check_output_without_overwrite_does_not_look_inside(tmp_path):
    out = touch(tmp_path / "out", "notes.txt")
    assert check_output(out, "run", [], overwrite=False) is None
    plain = touch(tmp_path, "plain.h5") / "plain.h5"
    assert check_output(plain, "bank", [], overwrite=False) is None


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_check_output_with_overwrite_refuses_a_foreign_output(tmp_path, kind):
    out = touch(tmp_path / "out", "notes.txt")
    found = foreign(out, kind)
    assert found is not None
    with pytest.raises(LesionPasteError) as exc:
        check_output(out, kind, [("dataset", tmp_path / "elsewhere")], overwrite=True)
    assert str(exc.value) == (
        f"{out}: {found}; --overwrite replaces only an earlier output of the same tool "
        f"({KIND_WORDS[kind]}), so nothing was touched: choose another output"
    )


def test_check_output_with_overwrite_accepts_an_earlier_output(tmp_path):
    run = touch(tmp_path / "run", "config.json", "checkpoint.pt")
    assert check_output(run, "run", [], overwrite=True) is None
    empty = folders(tmp_path, "empty") / "empty"
    assert check_output(empty, "evaluation", [], overwrite=True) is None


def test_kinds_in_words():
    assert outputs.KINDS == KIND_WORDS


# ---------------------------------------------------------------- bank


@pytest.mark.parametrize("value", ["lesionpaste-bank", np.bytes_(b"lesionpaste-bank")])
def test_bank_recognised(tmp_path, value):
    bank = make_bank(tmp_path / "bank.h5", value)
    assert foreign(bank, "bank") is None
    assert foreign(str(bank), "bank") is None
    # a link to a bank: the file behind it is a bank (check_output refuses links itself)
    assert foreign(link(tmp_path / "lnk.h5", bank), "bank") is None


@pytest.mark.parametrize(
    "value",
    ["lesionpaste-dataset", np.bytes_(b"other"), np.bytes_(b"\xfflesionpaste-bank"), None],
)
def test_bank_with_another_format_refused(tmp_path, value):
    bank = make_bank(tmp_path / "bank.h5", value)
    assert foreign(bank, "bank") == "it is a file that is not a lesion bank"


def test_bank_refusals(tmp_path):
    touch(tmp_path, "plain.h5")
    assert foreign(tmp_path / "plain.h5", "bank") == "it is a file that is not a lesion bank"
    folders(tmp_path, "dir.h5")
    assert foreign(tmp_path / "dir.h5", "bank") == "it is a directory, not a lesion bank"
    lnk = link(tmp_path / "lnk.h5", tmp_path / "plain.h5")
    assert foreign(lnk, "bank") == "it is a symbolic link, not a lesion bank"
    assert foreign(tmp_path / "missing.h5", "bank") == "it is a file that is not a lesion bank"


# ---------------------------------------------------------------- picture


def test_picture_marked_by_lesionpaste(tmp_path):
    pic = tmp_path / "roc.png"
    write_png(pic, tiny())
    assert foreign(pic, "picture") is None
    assert foreign(str(pic), "picture") is None
    assert foreign(link(tmp_path / "lnk.png", pic), "picture") is None


def test_picture_refusals(tmp_path):
    plain = tmp_path / "plain.png"
    assert cv2.imwrite(str(plain), tiny())
    wanted = "a PNG written by LesionPaste"
    assert foreign(plain, "picture") == f"it is a file that is not {wanted}"
    folders(tmp_path, "dir.png")
    assert foreign(tmp_path / "dir.png", "picture") == f"it is a directory, not {wanted}"
    lnk = link(tmp_path / "lnk.png", plain)
    assert foreign(lnk, "picture") == f"it is a symbolic link, not {wanted}"


# ---------------------------------------------------------------- archive


@pytest.mark.parametrize("compress", [False, True])
def test_archive_recognised(tmp_path, compress):
    archive = make_tar(tmp_path / "d.tar", "dataset.json", compress=compress)
    assert foreign(archive, "archive") is None
    assert foreign(str(archive), "archive") is None


def test_archive_refusals(tmp_path):
    wanted = "a dataset archive"
    good = make_tar(tmp_path / "good.tar", "dataset.json")
    lnk = link(tmp_path / "lnk.tar", good)
    assert foreign(lnk, "archive") == f"it is a symbolic link, not {wanted}"
    other = make_tar(tmp_path / "other.tar", "manifest.json")
    assert foreign(other, "archive") == f"it is a file that is not {wanted}"
    named_dir = make_tar(tmp_path / "dir.tar", "dataset.json", directory=True)
    assert foreign(named_dir, "archive") == f"it is a file that is not {wanted}"
    touch(tmp_path, "plain.tar")
    assert foreign(tmp_path / "plain.tar", "archive") == f"it is a file that is not {wanted}"
    folders(tmp_path, "folder.tar")
    assert foreign(tmp_path / "folder.tar", "archive") == f"it is a directory, not {wanted}"


# ---------------------------------------------------------------- directory kinds in general


@pytest.mark.parametrize("kind", DIR_KINDS)
def test_directory_kind_refuses_a_file_and_a_link_to_one(tmp_path, kind):
    touch(tmp_path, "file")
    assert foreign(tmp_path / "file", kind) == "it is a file that is not a directory"
    lnk = link(tmp_path / "lnk", tmp_path / "file")
    assert foreign(lnk, kind) == "it is a symbolic link, not a directory"


@pytest.mark.parametrize("kind", DIR_KINDS)
def test_directory_kind_accepts_an_empty_directory(tmp_path, kind):
    empty = folders(tmp_path, "empty") / "empty"
    assert foreign(empty, kind) is None
    assert foreign(str(empty), kind) is None
    touch(empty, TEMP)  # a killed run's leftover alone: still empty
    assert foreign(empty, kind) is None


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("dataset", "it has no readable dataset.json"),
        ("run", "it has no config.json"),
        ("evaluation", "it has no metrics.json"),
        ("export", "it has no readable lesionpaste-export.json"),
        ("predictions", "it has no prediction.json"),
        ("model", "it has no model.json"),
    ],
)
def test_directory_kind_without_its_record(tmp_path, kind, message):
    out = touch(tmp_path / "out", "notes.txt")
    assert foreign(out, kind) == message


# ---------------------------------------------------------------- predictions

PREDICTIONS = [
    "prediction.json",
    "predictions.csv",
    "predictions.html",
    "thumbs/a.png",
    "maps/a.png",
]


def test_predictions_recognised(tmp_path):
    out = touch(tmp_path / "out", *PREDICTIONS)
    assert foreign(out, "predictions") is None
    touch(out, TEMP, f"thumbs/{TEMP}", f"maps/{TEMP}")
    assert foreign(out, "predictions") is None
    only_record = touch(tmp_path / "rec", "prediction.json")
    assert foreign(only_record, "predictions") is None


def test_predictions_temp_file_among_found_entries(tmp_path):
    out = touch(tmp_path / "out", *PREDICTIONS, TEMP, "zz.txt")
    found = sorted(out.iterdir())
    assert found[0].name == TEMP
    assert outputs._foreign_predictions(out, [out / TEMP]) is None
    assert outputs._foreign_predictions(out, found) == holds("zz.txt", "lp-predict")


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        ("zz.txt", "zz.txt"),
        ("notes.txt", "notes.txt"),
        ("thumbs/a.txt", "thumbs/a.txt"),
        ("maps/a.jpg", "maps/a.jpg"),
        ("thumbs/sub/a.png", "thumbs/sub"),
        ("maps/sub/a.png", "maps/sub"),
        ("predictions.csv/a", "predictions.csv"),
        ("other/a.png", "other"),
    ],
)
def test_predictions_refusals(tmp_path, extra, name):
    out = tmp_path / "out"
    if extra.startswith("predictions.csv/"):
        touch(out, *(p for p in PREDICTIONS if p != "predictions.csv"))
    else:
        touch(out, *PREDICTIONS)
    touch(out, extra)
    assert foreign(out, "predictions") == holds(name, "lp-predict")


def test_predictions_thumbs_as_a_file_refused(tmp_path):
    out = touch(tmp_path / "out", "prediction.json", "thumbs")
    assert foreign(out, "predictions") == holds("thumbs", "lp-predict")


def test_predictions_links_refused(tmp_path):
    out = touch(tmp_path / "out", *PREDICTIONS)
    outside = touch(tmp_path, "outside.png", "outdir/a.png")
    link(out / "zz.png", outside / "outside.png")
    assert foreign(out, "predictions") == holds("zz.png", "lp-predict")
    os.remove(out / "zz.png")
    link(out / "thumbs" / "b.png", outside / "outside.png")
    assert foreign(out, "predictions") == holds("thumbs/b.png", "lp-predict")
    os.remove(out / "thumbs" / "b.png")
    link(out / "predictions.csv.lnk", outside / "outside.png")
    assert foreign(out, "predictions") == holds("predictions.csv.lnk", "lp-predict")
    os.remove(out / "predictions.csv.lnk")
    (out / "maps" / "a.png").unlink()
    (out / "maps").rmdir()
    link(out / "maps", outside / "outdir")
    assert foreign(out, "predictions") == holds("maps", "lp-predict")


def test_predictions_record_as_a_directory(tmp_path):
    out = folders(tmp_path, "out/prediction.json") / "out"
    assert foreign(out, "predictions") == "it has no prediction.json"


# ---------------------------------------------------------------- model


@pytest.mark.parametrize("model", ["model.onnx", "model.pt"])
def test_model_recognised(tmp_path, model):
    out = touch(tmp_path / "out", "model.json", model, "README.md")
    assert foreign(out, "model") is None
    touch(out, TEMP)
    assert foreign(out, "model") is None
    found = sorted(out.iterdir())
    assert found[0].name == TEMP
    assert outputs._foreign_model(out, found) is None


def test_model_refusals(tmp_path):
    out = touch(tmp_path / "out", "model.json", "model.onnx", "README.md")
    assert foreign(out, "model") is None
    touch(out, "zz.txt")
    assert foreign(out, "model") == holds("zz.txt", "lp-export")
    (out / "zz.txt").unlink()
    folders(out, "sub")
    assert foreign(out, "model") == holds("sub", "lp-export")
    (out / "sub").rmdir()
    link(out / "model.pt", out / "model.onnx")
    assert foreign(out, "model") == holds("model.pt", "lp-export")
    (out / "model.pt").unlink()
    touch(out, "model.bin")
    assert foreign(out, "model") == holds("model.bin", "lp-export")
    touch(out, ".hidden")
    assert foreign(out, "model") == holds(".hidden", "lp-export")


def test_model_record_as_a_directory(tmp_path):
    out = folders(tmp_path, "out/model.json") / "out"
    touch(out, "model.onnx")
    assert foreign(out, "model") == "it has no model.json"


# ---------------------------------------------------------------- evaluation

EVALUATION = ["metrics.json", "scores.csv", "roc.png", "cam.png", "maps.png", "maps/x.png"]


def test_evaluation_recognised(tmp_path):
    out = touch(tmp_path / "out", *EVALUATION)
    assert foreign(out, "evaluation") is None
    assert foreign(touch(tmp_path / "m", "metrics.json"), "evaluation") is None


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        ("zz.txt", "zz.txt"),
        ("maps/a.txt", "maps/a.txt"),
        ("maps/sub/a.png", "maps/sub"),
        ("roc.jpg", "roc.jpg"),
        ("other/a.png", "other"),
    ],
)
def test_evaluation_refusals(tmp_path, extra, name):
    out = touch(tmp_path / "out", *EVALUATION, extra)
    assert foreign(out, "evaluation") == holds(name, "lp-eval")


def test_evaluation_known_name_but_a_directory(tmp_path):
    out = touch(tmp_path / "out", "metrics.json", "roc.png/a.png")
    assert foreign(out, "evaluation") == holds("roc.png", "lp-eval")


def test_evaluation_maps_as_a_file(tmp_path):
    out = touch(tmp_path / "out", "metrics.json", "maps")
    assert foreign(out, "evaluation") == holds("maps", "lp-eval")


def test_evaluation_links_refused(tmp_path):
    out = touch(tmp_path / "out", *EVALUATION)
    outside = touch(tmp_path, "o.png", "odir/a.png")
    link(out / "zz.png", outside / "o.png")
    assert foreign(out, "evaluation") == holds("zz.png", "lp-eval")
    os.remove(out / "zz.png")
    link(out / "maps" / "y.png", outside / "o.png")
    assert foreign(out, "evaluation") == holds("maps/y.png", "lp-eval")
    os.remove(out / "maps" / "y.png")
    (out / "cam.png").unlink()
    link(out / "cam.png", outside / "o.png")
    assert foreign(out, "evaluation") == holds("cam.png", "lp-eval")
    (out / "cam.png").unlink()
    for inner in (out / "maps").iterdir():
        inner.unlink()
    (out / "maps").rmdir()
    link(out / "maps", outside / "odir")
    assert foreign(out, "evaluation") == holds("maps", "lp-eval")


def test_evaluation_metrics_as_a_directory(tmp_path):
    out = touch(tmp_path / "out", "metrics.json/a", "scores.csv")
    assert foreign(out, "evaluation") == "it has no metrics.json"


# ---------------------------------------------------------------- run

RUN_FILES = [
    "config.json",
    "checkpoint.pt",
    "best.pt",
    "log.jsonl",
    "weights_source.txt",
    "maps.json",
    "thresholds.json",
    "fold.json",
    "scores.csv",
    "cv.json",
    "contract.json",
    "README.md",
    "evaluation.json",
]


def test_run_recognised(tmp_path):
    out = touch(tmp_path / "out", *RUN_FILES)
    assert foreign(out, "run") is None
    assert set(RUN_FILES) == outputs._RUN_FILES


def test_run_of_folds_eval_and_empty_folders(tmp_path):
    out = touch(tmp_path / "out", "fold_0/config.json", "fold_0/checkpoint.pt")
    assert foreign(out, "run") is None
    folders(out, "fold_1", "aaa_empty", "fold_12")
    touch(out, "eval/metrics.json", "eval/scores.csv", "cv.json")
    assert foreign(out, "run") is None
    touch(out, "fold_12/fold_3/config.json", "fold_12/config.json")
    assert foreign(out, "run") is None


def test_run_without_its_record(tmp_path):
    out = touch(tmp_path / "out", "checkpoint.pt", "log.jsonl")
    assert foreign(out, "run") == "it has no config.json"
    out2 = touch(tmp_path / "out2", "fold_x/config.json", "fold_1a/config.json", "xfold_1")
    assert foreign(out2, "run") == "it has no config.json"


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        ("zz.txt", "zz.txt"),
        ("sub/notes.txt", "sub"),
        ("zz_sub/notes.txt", "zz_sub"),
        ("fold_2/notes.txt", "fold_2"),
        ("fold_2/config.json/a", "fold_2"),
        ("fold_x/config.json", "fold_x"),
        ("fold_1a/config.json", "fold_1a"),
        ("xfold_1/config.json", "xfold_1"),
        ("eval/notes.txt", "eval"),
        ("eval/maps/a.txt", "eval"),
    ],
)
def test_run_refusals(tmp_path, extra, name):
    out = touch(tmp_path / "out", *RUN_FILES, "fold_0/config.json", "eval/metrics.json", extra)
    folders(out, "aaa_empty", "fold_1")
    assert foreign(out, "run") == holds(name, "lp-train")


def test_run_known_name_as_a_directory(tmp_path):
    out = touch(tmp_path / "out", "config.json", "checkpoint.pt/notes.txt")
    assert foreign(out, "run") == holds("checkpoint.pt", "lp-train")


def test_run_links_refused(tmp_path):
    out = touch(tmp_path / "out", *RUN_FILES)
    outside = touch(tmp_path, "o.txt", "odir/config.json")
    link(out / "zz.pt", outside / "o.txt")
    assert foreign(out, "run") == holds("zz.pt", "lp-train")
    os.remove(out / "zz.pt")
    (out / "best.pt").unlink()
    link(out / "best.pt", outside / "o.txt")
    assert foreign(out, "run") == holds("best.pt", "lp-train")
    (out / "best.pt").unlink()
    link(out / "fold_0", outside / "odir")
    assert foreign(out, "run") == holds("fold_0", "lp-train")
    inner = touch(tmp_path / "inner", "config.json", "fold_0/config.json")
    link(inner / "fold_0" / "best.pt", outside / "o.txt")
    assert foreign(inner, "run") == holds("fold_0", "lp-train")


# ---------------------------------------------------------------- is_run


def test_is_run(tmp_path):
    assert is_run(touch(tmp_path / "a", "config.json")) is True
    assert is_run(folders(tmp_path, "b/fold_3") / "b") is True
    assert is_run(touch(tmp_path / "c", "fold_3")) is True
    assert is_run(touch(tmp_path / "d", "checkpoint.pt", "fold_x", "fold_3a", "afold_3")) is False
    assert is_run(folders(tmp_path, "e") / "e") is False
    assert is_run(tmp_path / "missing") is False


def test_is_run_uses_the_entries_given(tmp_path):
    marked = touch(tmp_path / "marked", "config.json")
    empty = folders(tmp_path, "empty") / "empty"
    assert is_run(marked, []) is False
    assert is_run(empty, [empty / "config.json"]) is True
    assert is_run(empty, [empty / "fold_10"]) is True
    assert is_run(empty, [empty / "fold_"]) is False
    assert is_run(marked, None) is True


# ---------------------------------------------------------------- dataset

DATASET = ["manifest.csv", "pastes.jsonl", "masks.jsonl", "README.md", "images/a.png"]


def make_dataset(root: Path, *extra: str, record=None) -> Path:
    write_json(
        root / "dataset.json", {"format": "lesionpaste-dataset"} if record is None else record
    )
    touch(root, *DATASET, "masks/a.png", *extra)
    return root


def test_dataset_recognised(tmp_path):
    out = make_dataset(tmp_path / "out")
    assert foreign(out, "dataset") is None
    touch(out, "images/train/b.png", f"images/{TEMP}", "masks/sub/deeper/c.png", f"masks/{TEMP}")
    folders(out, "images/empty")
    assert foreign(out, "dataset") is None
    only = write_json(tmp_path / "only" / "dataset.json", {"format": "lesionpaste-dataset"})
    assert foreign(only.parent, "dataset") is None


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (None, "it has no readable dataset.json"),
        ("{not json", "it has no readable dataset.json"),
        ({"format": "lesionpaste-export"}, "its dataset.json is not a LesionPaste dataset's"),
        ({"schema": 1}, "its dataset.json is not a LesionPaste dataset's"),
        (["lesionpaste-dataset"], "its dataset.json is not a LesionPaste dataset's"),
        ("dir", "it has no readable dataset.json"),
    ],
)
def test_dataset_record_refusals(tmp_path, record, message):
    out = touch(tmp_path / "out", *DATASET)
    if record == "dir":
        folders(out, "dataset.json")
    elif isinstance(record, str):
        (out / "dataset.json").write_text(record)
    elif record is not None:
        write_json(out / "dataset.json", record)
    assert foreign(out, "dataset") == message


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        ("zz.txt", "zz.txt"),
        ("other/a.png", "other"),
        ("images/a.txt", "images/a.txt"),
        ("masks/a.jpg", "masks/a.jpg"),
        ("images/sub/b.tif", "images/sub/b.tif"),
        ("masks/.hidden", "masks/.hidden"),
    ],
)
def test_dataset_refusals(tmp_path, extra, name):
    out = make_dataset(tmp_path / "out", extra)
    assert foreign(out, "dataset") == holds(name, "lp-synth")


@pytest.mark.parametrize("name", ["images", "masks"])
def test_dataset_image_folder_as_a_file(tmp_path, name):
    out = tmp_path / "out"
    write_json(out / "dataset.json", {"format": "lesionpaste-dataset"})
    touch(out, name)
    assert foreign(out, "dataset") == holds(name, "lp-synth")


def test_dataset_links_refused(tmp_path):
    out = make_dataset(tmp_path / "out")
    outside = touch(tmp_path, "o.png", "odir/a.png")
    (out / "manifest.csv").unlink()
    link(out / "manifest.csv", outside / "o.png")
    assert foreign(out, "dataset") == holds("manifest.csv", "lp-synth")
    (out / "manifest.csv").unlink()
    link(out / "images" / "b.png", outside / "o.png")
    assert foreign(out, "dataset") == holds("images/b.png", "lp-synth")
    (out / "images" / "b.png").unlink()
    link(out / "masks" / "sub", outside / "odir")
    assert foreign(out, "dataset") == holds("masks/sub", "lp-synth")
    (out / "masks" / "sub").unlink()
    assert foreign(out, "dataset") is None
    for inner in (out / "masks").iterdir():
        inner.unlink()
    (out / "masks").rmdir()
    link(out / "masks", outside / "odir")
    assert foreign(out, "dataset") == holds("masks", "lp-synth")


# ---------------------------------------------------------------- export

EXPORT = [
    "normal/a.png",
    "anomalous/b.png",
    "metadata.jsonl",
    "README.md",
    "LESIONPASTE_CARD.md",
    "lesionpaste-dataset.json",
]
MVTEC = [
    "train/good/x.png",
    "test/good/y.png",
    "test/lesion/z.png",
    "ground_truth/lesion/z_mask.png",
]


def make_export(root: Path, *files: str, record=None) -> Path:
    write_json(
        root / "lesionpaste-export.json",
        {"format": "lesionpaste-export"} if record is None else record,
    )
    touch(root, *files)
    return root


def test_export_recognised(tmp_path):
    assert foreign(make_export(tmp_path / "hf", *EXPORT), "export") is None
    assert foreign(make_export(tmp_path / "old", *EXPORT, "metadata.csv"), "export") is None
    mvtec = make_export(tmp_path / "mvtec", *MVTEC, "LESIONPASTE_CARD.md")
    folders(mvtec, "test/empty")
    assert foreign(mvtec, "export") is None
    assert foreign(make_export(tmp_path / "only"), "export") is None


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (None, "it has no readable lesionpaste-export.json"),
        ("{not json", "it has no readable lesionpaste-export.json"),
        ({"format": "lesionpaste-dataset"}, "its lesionpaste-export.json is not lp-synth export's"),
        ({"layout": "mvtec"}, "its lesionpaste-export.json is not lp-synth export's"),
        (["lesionpaste-export"], "its lesionpaste-export.json is not lp-synth export's"),
    ],
)
def test_export_record_refusals(tmp_path, record, message):
    out = touch(tmp_path / "out", *EXPORT)
    if isinstance(record, str):
        (out / "lesionpaste-export.json").write_text(record)
    elif record is not None:
        write_json(out / "lesionpaste-export.json", record)
    assert foreign(out, "export") == message


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        ("zz.txt", "zz.txt"),
        ("dataset.json", "dataset.json"),
        ("other/a.png", "other"),
        ("normal/a.txt", "normal/a.txt"),
        ("train/good/x.jpg", "train/good/x.jpg"),
        ("ground_truth/lesion/notes", "ground_truth/lesion/notes"),
    ],
)
def test_export_refusals(tmp_path, extra, name):
    out = make_export(tmp_path / "out", *EXPORT, *MVTEC, extra)
    assert foreign(out, "export") == holds(name, "lp-synth export")


def test_export_links_refused(tmp_path):
    out = make_export(tmp_path / "out", *EXPORT)
    outside = touch(tmp_path, "o.png", "odir/a.png")
    (out / "README.md").unlink()
    link(out / "README.md", outside / "o.png")
    assert foreign(out, "export") == holds("README.md", "lp-synth export")
    (out / "README.md").unlink()
    link(out / "normal" / "c.png", outside / "o.png")
    assert foreign(out, "export") == holds("normal/c.png", "lp-synth export")
    (out / "normal" / "c.png").unlink()
    assert foreign(out, "export") is None
    link(out / "train", outside / "odir")
    assert foreign(out, "export") == holds("train", "lp-synth export")


def test_writers_in_words():
    assert outputs._WRITER == {
        "dataset": "lp-synth",
        "run": "lp-train",
        "evaluation": "lp-eval",
        "export": "lp-synth export",
        "predictions": "lp-predict",
        "model": "lp-export",
    }
