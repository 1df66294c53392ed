"""The Python API for a received dataset: ``lesionpaste.open_dataset`` and the trainer's
``TorchDataset`` over it."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

import lesionpaste
from lesionpaste.errors import LesionPasteError
from tests.synth_fixtures import make_fundus_bank, make_normals


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from lesionpaste.synth.cli import cli

    root = tmp_path_factory.mktemp("received")
    bank = make_fundus_bank(root / "bank.h5")
    normals = make_normals(root / "normals", 3)
    out = root / "ds"
    r = CliRunner().invoke(
        cli, ["--bank", str(bank), "--normals", str(normals), "-o", str(out), "--size", "48", "-q"]
    )
    assert r.exit_code == 0, r.output
    return out


def _manifest(root: Path) -> list[dict]:
    with open(root / "manifest.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_a_dataset_opens_with_its_metadata_labels_images_and_masks(dataset):
    data = lesionpaste.open_dataset(dataset)
    rows = _manifest(dataset)
    assert len(data) == len(rows) == 6 and data.meta["kind"] == "synthetic"
    assert data.labels.tolist() == [int(r["label"]) for r in rows]
    for i, sample in enumerate(data):
        on_disk = cv2.cvtColor(cv2.imread(str(dataset / rows[i]["path"])), cv2.COLOR_BGR2RGB)
        assert sample.image.dtype == np.uint8 and sample.image.shape == (48, 48, 3)
        np.testing.assert_array_equal(sample.image, on_disk)
        assert (sample.label, sample.path, sample.twin_id) == (
            int(rows[i]["label"]), rows[i]["path"], rows[i]["twin_id"])  # fmt: skip
        if rows[i]["mask_path"]:
            expected = cv2.imread(str(dataset / rows[i]["mask_path"]), cv2.IMREAD_GRAYSCALE) > 0
            np.testing.assert_array_equal(sample.mask, expected)
            assert sample.mask.any()
        else:
            assert sample.mask is None and sample.label == 0


def test_images_are_read_when_asked_and_a_changed_one_is_refused(dataset, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    path = copy / _manifest(copy)[1]["path"]
    image = cv2.imread(str(path))
    image[0, 0] = 255 - image[0, 0]
    cv2.imwrite(str(path), image)
    data = lesionpaste.open_dataset(copy)  # opening reads no image
    data[0]
    with pytest.raises(LesionPasteError, match="does not match its sha256"):
        data[1]
    assert data.image(1, check=False).shape == (48, 48, 3)


def test_what_is_not_a_dataset_is_refused_when_opened(tmp_path):
    with pytest.raises(LesionPasteError, match="no dataset.json"):
        lesionpaste.open_dataset(tmp_path)
    with pytest.raises(AttributeError):
        lesionpaste.no_such_thing  # noqa: B018


def test_the_torch_dataset_gives_channel_first_uint8_tensors_and_labels(dataset):
    import torch

    from lesionpaste.train.training.dataset import TorchDataset

    torch_data = TorchDataset(dataset)
    batches = list(torch.utils.data.DataLoader(torch_data, batch_size=4))
    images = torch.cat([b[0] for b in batches])
    labels = torch.cat([b[1] for b in batches])
    assert images.shape == (6, 3, 48, 48) and images.dtype == torch.uint8
    opened = lesionpaste.open_dataset(dataset)
    assert labels.tolist() == opened.labels.tolist()
    np.testing.assert_array_equal(images[2].permute(1, 2, 0).numpy(), opened[2].image)
    halved = TorchDataset(opened, transform=lambda x: x.float() / 2)
    assert torch.equal(halved[2][0], images[2].float() / 2) and halved[2][1] == labels[2]


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory) -> Path:
    """An evaluation set of three white 64x64 photographs prepared at 32 px (the disc is the
    whole picture): one with MA and HE masks, one with an HE mask only, one with none."""
    from lesionpaste.synth.cli import cli
    from tests.conftest import write_mask

    root = tmp_path_factory.mktemp("received-eval")
    bank = make_fundus_bank(root / "bank.h5")
    images = root / "images"
    for name in ("a", "b", "c"):
        write_mask(images / f"{name}.png", np.ones((64, 64), bool))  # plain white photographs
    square = np.zeros((64, 64), bool)
    square[16:32, 8:24] = True
    write_mask(root / "masks" / "MA" / "a.png", square)
    write_mask(root / "masks" / "HE" / "a.png", np.roll(square, 24, axis=1))
    write_mask(root / "masks" / "HE" / "b.png", square)
    out = root / "ev"
    args = ["prep", "--images", images, "--masks", root / "masks", "--label", "1", "--bank", bank,
            "--preprocess", "none", "--size", "32", "-o", out, "-q"]  # fmt: skip
    r = CliRunner().invoke(cli, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return out


def test_an_evaluation_set_gives_its_union_and_per_type_masks(evaluation, dataset):
    data = lesionpaste.open_dataset(evaluation)
    assert data.meta["schema_version"] == 2 and data.mask_types == ["HE", "MA"]
    square = np.zeros((32, 32), bool)
    square[8:16, 4:12] = True
    types = data.type_masks(0)
    assert list(types) == ["HE", "MA"]
    np.testing.assert_array_equal(types["MA"], square)
    np.testing.assert_array_equal(types["HE"], np.roll(square, 12, axis=1))
    np.testing.assert_array_equal(data.mask(0), types["MA"] | types["HE"])
    np.testing.assert_array_equal(data[0].mask, data.mask(0))
    assert list(data.type_masks(1)) == ["HE"]
    assert data.mask(2) is None and data.type_masks(2) == {} and data[2].mask is None
    synthetic = lesionpaste.open_dataset(dataset)
    assert synthetic.mask_types == [] and synthetic.type_masks(1) == {}


def test_an_altered_evaluation_mask_is_refused_when_read(evaluation, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(evaluation, copy)
    assert cv2.imwrite(str(copy / "masks" / "MA" / "a.png"), np.zeros((32, 32), np.uint8))
    data = lesionpaste.open_dataset(copy)
    data.mask(0)
    with pytest.raises(LesionPasteError, match="masks/MA/a.png does not match its sha256"):
        data.type_masks(0)
    (copy / "masks.jsonl").write_text('{"id": "a"}\n', encoding="utf-8")
    with pytest.raises(LesionPasteError, match="masks.jsonl, line 1: a malformed line"):
        lesionpaste.open_dataset(copy).mask(0)
