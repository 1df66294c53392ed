"""``lp-synth export``: the mvtec and imagefolder layouts, read with the readers they are for
(torchvision's ``ImageFolder``; Hugging Face ``datasets`` when installed) and checked against
their documented conventions; pixel-identical copies; provenance; output safety."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from lesionpaste.dataset_format import manifest_text
from lesionpaste.synth.inputs.normals import in_training_split, patient_of
from tests.conftest import Result
from tests.synth_fixtures import (
    make_fundus_bank,
    make_normals,
    synthetic_fundus,
    tree_bytes,
    write_rgb,
)
from tests.train_fixtures import graded, synthetic

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate

PROVENANCE = {"lesionpaste-dataset.json", "lesionpaste-export.json"}


def lp_synth(*args) -> Result:
    from lesionpaste.synth.cli import cli

    r = CliRunner().invoke(cli, [str(a) for a in args], prog_name="lp-synth")
    if r.exception and not isinstance(r.exception, SystemExit):
        raise r.exception
    return Result(r.exit_code, r.stdout, r.stderr)


def one_error(r: Result, expected: str) -> None:
    assert r.code != 0
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lp-synth: error:"), r.stderr
    assert expected in lines[0], lines[0]


def rows(root: Path) -> list[dict]:
    with open(root / "manifest.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def eyes(tmp_path_factory) -> Path:
    """Twelve pairs of six patients, both eyes each (``p00_left``, ``p00_right``...)."""
    root = synthetic(tmp_path_factory.mktemp("eyes") / "d", pairs=12, masks=True)
    table = rows(root)
    for row in table:
        k = int(row["twin_id"][1:])
        row["twin_id"] = f"p{k // 2:02d}_{'left' if k % 2 == 0 else 'right'}"
    (root / "manifest.csv").write_text(manifest_text(table), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A dataset made by lp-synth itself (with its card)."""
    base = tmp_path_factory.mktemp("made")
    bank = make_fundus_bank(base / "bank.h5")
    out = base / "ds"
    r = lp_synth("--bank", bank, "--normals", make_normals(base / "normals", 4), "-o", out,
                 "--size", "64", "-q")  # fmt: skip
    assert r.code == 0, r.stderr
    return out


def test_mvtec_follows_the_layout_and_never_splits_a_pair(eyes, tmp_path):
    out = tmp_path / "mvtec"
    r = lp_synth("export", eyes, "--to", "mvtec", "-o", out, "--train-fraction", "0.5", "-q")
    assert r.code == 0, r.stderr
    manifest = {row["path"]: row for row in rows(eyes)}
    record = json.loads((out / "lesionpaste-export.json").read_text())
    assert record["format"] == "lesionpaste-export" and record["layout"] == "mvtec"
    assert record["split"]["train_fraction"] == 0.5 and record["split"]["seed"] == 0
    found = files_under(out)
    assert PROVENANCE <= found
    folders = {name.rsplit("/", 1)[0] for name in found - PROVENANCE}
    assert folders == {"train/good", "test/good", "test/lesion", "ground_truth/lesion"}
    side: dict[str, set[str]] = {}
    for entry in record["files"]:
        source = manifest.get(entry["source"])
        exported = out / entry["path"]
        assert entry["sha256"] == sha(exported) == sha(eyes / entry["source"])  # byte copies
        if source is not None:  # an image
            assert exported.name == Path(entry["source"]).name
            side.setdefault(source["twin_id"], set()).add(entry["path"].split("/")[0])
    for twin, sides in side.items():
        train = in_training_split(patient_of(twin), 0.5, 0)  # the documented rule
        assert sides == ({"train"} if train else {"test"}), twin
    patients = {patient_of(t): in_training_split(patient_of(t), 0.5, 0) for t in side}
    assert set(patients.values()) == {True, False}  # both sides are used here
    lesions = sorted((out / "test" / "lesion").iterdir())
    masks = sorted((out / "ground_truth" / "lesion").iterdir())
    assert [m.name for m in masks] == [p.name for p in lesions]
    for image, mask in zip(lesions, masks):
        values = cv2.imread(str(mask), cv2.IMREAD_UNCHANGED)
        assert values.ndim == 2 and set(np.unique(values)) <= {0, 255} and values.max() == 255
        assert values.shape == cv2.imread(str(image)).shape[:2]
    trained = {twin for twin, sides in side.items() if sides == {"train"}}
    anomalous = {manifest[e["source"]]["twin_id"] for e in record["files"]
                 if e["path"].startswith("test/lesion/")}  # fmt: skip
    assert not trained & anomalous  # a training pair's anomalous twin is left out
    assert len(list((out / "train" / "good").iterdir())) == len(trained)
    assert (out / "lesionpaste-dataset.json").read_bytes() == (eyes / "dataset.json").read_bytes()
    again = tmp_path / "again"
    r = lp_synth("export", eyes, "--to", "mvtec", "-o", again, "--train-fraction", "0.5", "-q")
    assert r.code == 0 and tree_bytes(again) == tree_bytes(out)  # deterministic


def test_mvtec_refuses_a_split_with_an_empty_side(eyes, tmp_path):
    patients = {patient_of(row["twin_id"]) for row in rows(eyes)}
    seed = next(s for s in range(100) if all(in_training_split(p, 0.9, s) for p in patients))
    r = lp_synth("export", eyes, "--to", "mvtec", "-o", tmp_path / "x", "--train-fraction",
                 "0.9", "--split-seed", seed)  # fmt: skip
    one_error(r, "puts no pair in test")
    assert not (tmp_path / "x").exists()
    r = lp_synth("export", eyes, "--to", "mvtec", "-o", tmp_path / "x", "--train-fraction", "1")
    one_error(r, "--train-fraction must lie strictly between 0 and 1")


def test_mvtec_puts_an_evaluation_set_in_test(tmp_path):
    root = graded(tmp_path / "ev", per_grade=1, masks=True)
    out = tmp_path / "mvtec"
    assert lp_synth("export", root, "--to", "mvtec", "-o", out, "-q").code == 0
    labels = {Path(r["path"]).name: int(r["label"]) for r in rows(root)}
    good = {p.name for p in (out / "test" / "good").iterdir()}
    lesion = {p.name for p in (out / "test" / "lesion").iterdir()}
    assert good == {n for n, g in labels.items() if g == 0}
    assert lesion == {n for n, g in labels.items() if g > 0}
    assert {p.name for p in (out / "ground_truth" / "lesion").iterdir()} == lesion
    assert not (out / "train").exists() and "split" not in json.loads(
        (out / "lesionpaste-export.json").read_text()
    )


def test_imagefolder_reads_with_torchvision(made, tmp_path):
    from PIL import Image
    from torchvision.datasets import ImageFolder

    out = tmp_path / "folder"
    r = lp_synth("export", made, "--to", "imagefolder", "-o", out)
    assert r.code == 0, r.stderr
    assert "4 in anomalous/, 4 in normal/" in r.stdout
    data = ImageFolder(str(out))
    assert data.classes == ["anomalous", "normal"] and len(data) == 8
    assert sorted(data.targets) == [0] * 4 + [1] * 4
    manifest = {Path(row["path"]).name + row["label"]: row for row in rows(made)}
    for path, target in data.samples:
        label = "1" if data.classes[target] == "anomalous" else "0"
        row = manifest[Path(path).name + label]
        source = cv2.cvtColor(cv2.imread(str(made / row["path"])), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(np.asarray(Image.open(path).convert("RGB")), source)
        assert sha(Path(path)) == row["sha256"]
    table = metadata(out)
    assert len(table) == 8
    by_path = {row["path"]: row for row in rows(made)}
    for line in table:
        assert next(iter(line)) == "file_name" and (out / line["file_name"]).is_file()
        assert line["file_name"].split("/")[0] == ("anomalous" if line["label"] == 1 else "normal")
        assert sha(out / line["file_name"]) == line["sha256"] == sha(made / line["source_path"])
        source = by_path[line["source_path"]]
        assert line["dataset_label"] == line["label"] == int(source["label"])
        assert line["tier"] == (int(source["tier"]) if line["label"] else None)  # not a float
        assert line["n_lesions"] == int(source["n_lesions"]) and type(line["n_lesions"]) is int
    card = (out / "LESIONPASTE_CARD.md").read_text(encoding="utf-8")
    assert card == (made / "README.md").read_text(encoding="utf-8")
    assert "## How to cite" in card and "LesionPaste: One-Shot Anomaly Detection" in card
    assert "lp-synth verify DIR.tar" in card


def metadata(out: Path) -> list[dict]:
    """An imagefolder export's ``metadata.jsonl``, one dict per line."""
    text = (out / "metadata.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def test_an_evaluation_sets_grades_travel_beside_the_normal_anomalous_label(tmp_path):
    root = graded(tmp_path / "ev", per_grade=1)
    out = tmp_path / "folder"
    assert lp_synth("export", root, "--to", "imagefolder", "-o", out, "-q").code == 0
    table = metadata(out)
    assert sorted(line["dataset_label"] for line in table) == [0, 0, 1, 2, 3, 4]
    for line in table:
        assert line["label"] == int(line["dataset_label"] > 0)
        assert line["file_name"].startswith("anomalous/" if line["label"] else "normal/")


def test_imagefolder_reads_with_hugging_face_datasets(made, tmp_path):
    """``datasets`` itself (extra ``hf``; skipped without it): ``load_dataset(OUT)`` applies
    the card's features (label names, integer tier with None for normal twins); the packaged
    ``imagefolder`` loader, which does not read the card, gets the same integers."""
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "folder"
    assert lp_synth("export", made, "--to", "imagefolder", "-o", out, "-q").code == 0
    cache = str(tmp_path / "hf-cache")
    data = datasets.load_dataset(str(out), split="train", cache_dir=cache)
    assert data.features["label"].names == ["normal", "anomalous"]
    assert data.features["tier"].dtype == "int32"
    assert len(data) == 8 and sorted(data["label"]) == [0] * 4 + [1] * 4
    expected = {line["sha256"]: line for line in metadata(out)}
    for example in data:
        line = expected[example["sha256"]]
        assert example["label"] == line["label"] and example["tier"] == line["tier"]
        assert example["tier"] is None if example["label"] == 0 else type(example["tier"]) is int
        source = cv2.cvtColor(cv2.imread(str(made / line["source_path"])), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(np.asarray(example["image"].convert("RGB")), source)
    plain = datasets.load_dataset("imagefolder", data_dir=str(out), split="train", cache_dir=cache)
    assert sorted(plain["label"]) == [0] * 4 + [1] * 4
    assert sorted(plain["tier"], key=str) == sorted((x["tier"] for x in data), key=str)


#: normal images whose ids sort awkwardly: ids that prefix one another, digits of different
#: lengths, a space, an accent, and an id that ends as a mask name would
AWKWARD = ["1", "10", "12", "2", "100", "1 0", "é1", "e", "1_mask", "3"]


@pytest.fixture(scope="module")
def awkward(tmp_path_factory) -> Path:
    """lp-synth's twins of normals with the awkward ids, exported to ``mvtec`` with a split
    seed that puts one patient in training and the rest in test."""
    base = tmp_path_factory.mktemp("awkward")
    for i, name in enumerate(AWKWARD):
        write_rgb(base / "normals" / f"{name}.png", synthetic_fundus(200, 260, 95, seed=100 + i))
    bank = make_fundus_bank(base / "bank.h5")
    r = lp_synth("--bank", bank, "--normals", base / "normals", "-o", base / "ds", "--size",
                 "64", "-q")  # fmt: skip
    assert r.code == 0, r.stderr
    patients = [patient_of(name) for name in AWKWARD]
    seed = next(s for s in range(200) if sum(in_training_split(p, 0.1, s) for p in patients) == 1)
    out = base / "export" / "fundus"  # anomalib's MVTecAD reads root/category
    r = lp_synth("export", base / "ds", "--to", "mvtec", "-o", out, "--train-fraction", "0.1",
                 "--split-seed", seed, "-q")  # fmt: skip
    assert r.code == 0, r.stderr
    return out


def _exported_sources(out: Path) -> dict[str, str]:
    """Each exported file's source in the dataset, from ``lesionpaste-export.json``."""
    record = json.loads((out / "lesionpaste-export.json").read_text(encoding="utf-8"))
    return {entry["path"]: entry["source"] for entry in record["files"]}


def _mask_source(awkward: Path, image_path: str) -> str:
    """The dataset's mask of the exported image at ``image_path`` (absolute)."""
    dataset = awkward.parent.parent / "ds"
    mask_of = {row["path"]: row["mask_path"] for row in rows(dataset)}
    return mask_of[_exported_sources(awkward)[Path(image_path).relative_to(awkward).as_posix()]]


def test_mvtec_images_and_masks_sort_alike_whatever_the_ids(awkward):
    """anomalib (and any tool that sorts images and masks separately and pairs them by
    position) needs both lists in the same order: each mask has its image's own name."""
    sources = _exported_sources(awkward)
    images = sorted((awkward / "test" / "lesion").iterdir())
    masks = sorted((awkward / "ground_truth" / "lesion").iterdir())
    assert len(images) == len(masks) == len(AWKWARD) - 1
    for image, mask in zip(images, masks):  # paired by position, as anomalib pairs them
        assert mask.name == image.name
        expected = _mask_source(awkward, str(image))
        assert sources[mask.relative_to(awkward).as_posix()] == expected
        assert sha(mask) == sha(awkward.parent.parent / "ds" / expected)


def test_anomalib_reads_the_mvtec_export_with_every_mask_on_its_image(awkward):
    """anomalib itself (the optional extra ``anomalib``; skipped without it): its MVTecAD and
    Folder datamodules load the export, and every anomalous image comes with its own mask."""
    pytest.importorskip("anomalib")
    from anomalib.data import Folder, MVTecAD

    sources = _exported_sources(awkward)
    modules = [
        MVTecAD(root=awkward.parent, category=awkward.name),
        Folder(
            name="lesionpaste",
            root=awkward,
            normal_dir="train/good",
            abnormal_dir="test/lesion",
            normal_test_dir="test/good",
            mask_dir="ground_truth/lesion",
            val_split_mode="same_as_test",
        ),
    ]  # fmt: skip  (Folder would otherwise move half of test/ to validation)
    for module in modules:
        module.setup()
        train, test = module.train_data.samples, module.test_data.samples
        assert len(train) == len(list((awkward / "train" / "good").iterdir())) == 1
        assert len(test) == 2 * (len(AWKWARD) - 1)  # the nine test pairs' two twins each
        assert (test.label_index == 1).sum() == len(AWKWARD) - 1
        for index in range(len(test)):
            row, item = test.iloc[index], module.test_data[index]
            shown = np.asarray(item.gt_mask) > 0  # the mask anomalib hands over with the image
            if row.label_index == 1:
                expected = _mask_source(awkward, row.image_path)
                assert sources[Path(row.mask_path).relative_to(awkward).as_posix()] == expected
                truth = cv2.imread(str(awkward.parent.parent / "ds" / expected), 0) > 0
                assert truth.any() and np.array_equal(shown, truth)
            else:
                assert not shown.any()


def test_export_reads_an_archive_like_its_directory(made, tmp_path):
    archive = tmp_path / "ds.tar.gz"
    assert lp_synth("pack", made, "-o", archive, "-q").code == 0
    a, b = tmp_path / "from_dir", tmp_path / "from_archive"
    assert lp_synth("export", made, "--to", "imagefolder", "-o", a, "-q").code == 0
    assert lp_synth("export", archive, "--to", "imagefolder", "-o", b, "-q").code == 0
    record = "lesionpaste-export.json"
    assert {k: v for k, v in tree_bytes(a).items() if k != record} == {
        k: v for k, v in tree_bytes(b).items() if k != record
    }


def test_export_output_safety(made, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert lp_synth("export", made, "--to", "imagefolder", "-o", out, "-q").code == 0
    one_error(lp_synth("export", made, "--to", "imagefolder", "-o", out), "already exists")
    r = lp_synth("export", made, "--to", "mvtec", "-o", out, "--overwrite", "-q")
    assert r.code == 0 and (out / "test").is_dir() and not (out / "normal").exists()
    one_error(lp_synth("export", made, "--to", "mvtec", "-o", made / "x"), "lies inside")
    one_error(
        lp_synth("export", made, "--to", "mvtec", "-o", made, "--overwrite"), "is the dataset"
    )
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "photo.jpg").write_bytes(b"mine")
    one_error(lp_synth("export", made, "--to", "mvtec", "-o", mine, "--overwrite"), "no readable")
    assert os.listdir(mine) == ["photo.jpg"]

    from lesionpaste.synth.sharing import export

    real_copy, calls = export._copy, []

    def failing(*args):
        calls.append(args)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real_copy(*args)

    monkeypatch.setattr(export, "_copy", failing)
    one_error(lp_synth("export", made, "--to", "mvtec", "-o", tmp_path / "new"), "disk")
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob(".new*"))
    before = tree_bytes(out)
    calls.clear()
    r = lp_synth("export", made, "--to", "imagefolder", "-o", out, "--overwrite")
    assert r.code != 0 and tree_bytes(out) == before  # the earlier export stays whole


@pytest.mark.parametrize(
    "record",
    ["[" * 200_000, "[]", '{"format": "something-else"}', '"lesionpaste-export"', "{"],
    ids=["deep", "list", "other-format", "string", "truncated"],
)
def test_a_damaged_export_record_is_not_taken_for_an_export(made, tmp_path, record):
    """lp-synth export --overwrite replaces only its own export: a folder whose
    lesionpaste-export.json is damaged is refused in one line, and nothing in it is touched."""
    out = tmp_path / "out"
    assert lp_synth("export", made, "--to", "imagefolder", "-o", out, "-q").code == 0
    (out / "lesionpaste-export.json").write_text(record)
    before = tree_bytes(out)
    r = lp_synth("export", made, "--to", "mvtec", "-o", out, "--overwrite")
    one_error(r, "lesionpaste-export.json")
    assert tree_bytes(out) == before


def test_export_refuses_a_damaged_dataset(tmp_path):
    root = synthetic(tmp_path / "d", pairs=2, masks=True)
    (root / "images" / "0001.png").write_bytes(b"damaged")
    one_error(lp_synth("export", root, "--to", "mvtec", "-o", tmp_path / "x"), "not a whole")
    assert not (tmp_path / "x").exists()
