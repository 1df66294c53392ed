"""lp-train --heldout-val: the run's validation normals with twins pasted from another bank's
lesions (train/training/heldout.py), scored every epoch."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from lesionpaste.dataset_format import dataset_json_text, manifest_text, read_dataset_json
from lesionpaste.digests import sha256_bytes
from lesionpaste.errors import LesionPasteError
from lesionpaste.train.training.dataset import LoadedDataset
from lesionpaste.train.training.heldout import heldout_pairs
from tests.test_train_cli import FAST, invoke
from tests.train_fixtures import synthetic

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate


def _loaded(
    twins: list[str], labels: list[int], images: np.ndarray, sources=(), root: str = "d"
) -> LoadedDataset:
    meta = {"kind": "synthetic", "bank": {"sources": [{"id": s} for s in sources]}}
    paths = [f"images/{i}.png" for i in range(len(twins))]
    return LoadedDataset(Path(root), meta, images, np.array(labels), twins, paths)


def _pairs(n: int, rng: np.random.Generator) -> tuple[list[str], list[int], np.ndarray]:
    twins = [f"t{i // 2}" for i in range(2 * n)]
    return twins, [0, 1] * n, rng.integers(0, 255, (2 * n, 4, 4, 3), dtype=np.uint8)


def test_the_pairs_of_exactly_the_validation_normals_are_taken_from_the_heldout_set():
    rng = np.random.default_rng(0)
    twins, labels, images = _pairs(6, rng)
    data = _loaded(twins, labels, images, ["IDRiD_03"])
    # the held-out set: the same normals with other twins, in another order (t2 twin
    # first), and a pair of a normal the training set does not hold
    normal = {twins[i]: images[i] for i in range(0, 12, 2)}
    other = {t: rng.integers(0, 255, (4, 4, 3), dtype=np.uint8) for t in [*normal, "t9"]}
    normal["t9"] = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
    rows = [("t2", 1), ("t2", 0), ("t0", 0), ("t0", 1), ("t9", 0), ("t9", 1),
            ("t1", 0), ("t1", 1), ("t5", 0), ("t5", 1), ("t3", 0), ("t3", 1),
            ("t4", 0), ("t4", 1)]  # fmt: skip
    heldout = _loaded(
        [t for t, _ in rows],
        [y for _, y in rows],
        np.stack([other[t] if y else normal[t] for t, y in rows]),
        ["IDRiD_19"],
    )
    val = np.isin(np.array(twins), ["t1", "t2"])
    pairs = heldout_pairs(data, heldout, val)
    assert pairs.labels.tolist() == [0, 1, 0, 1]
    assert np.array_equal(pairs.images[0], images[2]) and np.array_equal(pairs.images[2], images[4])
    assert np.array_equal(pairs.images[1], other["t1"]) and np.array_equal(
        pairs.images[3], other["t2"]
    )
    assert not np.array_equal(pairs.images[1], images[3])  # not the training bank's twin


REFUSED = {
    "same source": "held: its bank shares IDRiD_03 with the training bank; held-out validation "
    "needs lesions of another annotated image",
    "same source, another case": "held: its bank shares idrid_03 with the training bank; "
    "held-out validation needs lesions of another annotated image",
    "same volume": "held: its bank shares study_0255:z040, study_0255:z041 with the training "
    "bank; held-out validation needs lesions of another annotated image",
    "no source recorded": "held: its dataset.json records no bank source, so held-out lesions "
    "cannot be told from the training ones",
    "training set records no source": "train: its dataset.json records no bank source, so "
    "held-out lesions cannot be told from the training ones",
    "no twin": "held: no pair for the validation normal t1; make it with lp-synth from the same "
    "normal images as the training dataset",
    "other pixels": "held: its normal t1 differs from the training dataset's; make it with the "
    "same --size and preparation",
    "evaluation set": "held: --heldout-val takes a synthetic dataset (lp-synth)",
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_heldout_set_that_cannot_serve_is_refused(case):
    rng = np.random.default_rng(1)
    twins, labels, images = _pairs(4, rng)
    data = _loaded(twins, labels, images, ["IDRiD_03"], root="train")
    heldout = _loaded(list(twins), list(labels), images.copy(), ["IDRiD_19"], root="held")
    if case == "same source":
        heldout.meta["bank"]["sources"].append({"id": "IDRiD_03"})
    elif case == "same source, another case":
        heldout.meta["bank"]["sources"] = [{"id": "idrid_03"}]
    elif case == "same volume":  # other slices of a training source's volume: one patient
        data.meta["bank"]["sources"] = [{"id": "study_0255:z012"}]
        heldout.meta["bank"]["sources"] = [{"id": "study_0255:z041"}, {"id": "study_0255:z040"}]
    elif case == "no source recorded":
        heldout.meta["bank"]["sources"] = []
    elif case == "training set records no source":
        data.meta["bank"]["sources"] = []
    elif case == "no twin":
        heldout.labels[3] = 0  # t1 has no anomalous twin any more
    elif case == "other pixels":
        heldout.images[2, 0, 0, 0] ^= 1
    else:
        heldout.meta["kind"] = "evaluation"
    with pytest.raises(LesionPasteError) as caught:
        heldout_pairs(data, heldout, np.isin(np.array(twins), ["t1"]))
    assert str(caught.value) == REFUSED[case]


def test_a_run_without_validation_normals_has_no_heldout_pairs():
    rng = np.random.default_rng(2)
    twins, labels, images = _pairs(3, rng)
    data = _loaded(twins, labels, images, ["IDRiD_03"])
    heldout = _loaded(list(twins), list(labels), images.copy(), ["IDRiD_19"])
    pairs = heldout_pairs(data, heldout, np.zeros(len(twins), bool))
    assert pairs.images.shape == (0, 4, 4, 3) and pairs.labels.shape == (0,)


def _with_other_twins(source: Path, out: Path, bank_id: str, seed: int) -> Path:
    """A copy of a synthetic dataset whose anomalous images are re-pasted (a bright square
    elsewhere on their normal), as if made from another bank's lesions."""
    shutil.copytree(source, out)
    rng = np.random.default_rng(seed)
    with open(out / "manifest.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    normals = {r["twin_id"]: r["path"] for r in rows if r["label"] == "0"}
    for row in rows:
        if row["label"] != "1":
            continue
        image = cv2.imread(str(out / normals[row["twin_id"]]))
        y, x = rng.integers(2, image.shape[0] - 8, 2)
        image[y : y + 6, x : x + 6] = 250
        _ok, encoded = cv2.imencode(".png", image)
        (out / row["path"]).write_bytes(encoded.tobytes())
        row["sha256"] = sha256_bytes(encoded)
    (out / "manifest.csv").write_text(manifest_text(rows), encoding="utf-8")
    meta = read_dataset_json(out)
    meta["bank"] = {"sources": [{"id": bank_id}]}
    (out / "dataset.json").write_text(dataset_json_text(meta), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("heldout")
    data = synthetic(root / "train", pairs=24)
    meta = read_dataset_json(data)
    meta["bank"] = {"sources": [{"id": "IDRiD_03"}]}
    (data / "dataset.json").write_text(dataset_json_text(meta), encoding="utf-8")
    return data, _with_other_twins(data, root / "other", "IDRiD_19", 5)


@pytest.mark.parametrize("freeze", [[], ["--freeze", "2"]], ids=["full", "frozen, cached"])
def test_lp_train_logs_the_heldout_auc_of_every_epoch_as_the_model_scores_them(
    datasets, tmp_path, freeze
):
    from lesionpaste.train.cli import train_command
    from lesionpaste.train.runs.restore import score
    from lesionpaste.train.training.dataset import load_dataset
    from lesionpaste.train.training.schedule import split_by_twin

    data, other = datasets
    run = tmp_path / "run"
    r = invoke(train_command, data, "--out", run, "--epochs", "2", "--val-fraction", "0.25",
               "--heldout-val", other, *freeze, *FAST)  # fmt: skip
    assert r.code == 0, r.stderr
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and all("heldout_val_auc" in e for e in log)
    assert json.loads((run / "config.json").read_text())["heldout_val"] == str(other.resolve())
    loaded, held = load_dataset(data), load_dataset(other)
    chosen = {loaded.twin_ids[i] for i in np.flatnonzero(split_by_twin(loaded.twin_ids, 0.25, 0))}
    mine = np.array([t in chosen for t in held.twin_ids])
    scores = score(run, held, "cpu")
    expected = roc_auc_score(held.labels[mine], scores[mine])
    assert log[-1]["heldout_val_auc"] == pytest.approx(expected, abs=1e-6)
    assert log[-1]["heldout_val_auc"] != pytest.approx(log[-1]["val_auc"], abs=1e-9)


def test_lp_train_refuses_a_heldout_set_of_the_same_bank_in_one_line(datasets, tmp_path):
    from lesionpaste.train.cli import train_command

    data, _ = datasets
    same = _with_other_twins(data, tmp_path / "same", "IDRiD_03", 6)
    run = tmp_path / "run"
    r = invoke(train_command, data, "--out", run, "--epochs", "1", "--heldout-val", same, *FAST)
    assert r.code != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "shares IDRiD_03" in r.stderr
    assert not run.exists()


def test_lp_train_refuses_a_heldout_set_of_other_normals(datasets, tmp_path):
    from lesionpaste.train.cli import train_command

    data, _ = datasets
    others = synthetic(tmp_path / "others", pairs=24, seed=3)  # other normal images
    meta = read_dataset_json(others)
    meta["bank"] = {"sources": [{"id": "IDRiD_19"}]}
    (others / "dataset.json").write_text(dataset_json_text(meta), encoding="utf-8")
    r = invoke(train_command, data, "--out", tmp_path / "run", "--epochs", "1",
               "--heldout-val", others, *FAST)  # fmt: skip
    assert r.code != 0 and "differs from the training dataset's" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "run").exists()


def test_a_run_is_not_resumed_with_another_heldout_set_of_the_same_name(datasets, tmp_path):
    from lesionpaste.train.cli import train_command

    data, other = datasets
    held = shutil.copytree(other, tmp_path / "held")
    args = [data, "--out", tmp_path / "run", "--epochs", "2", "--heldout-val", held, *FAST]
    assert invoke(train_command, *args).code == 0
    shutil.rmtree(held)
    _with_other_twins(data, held, "IDRiD_19", 9)  # remade: other twins, same path
    r = invoke(train_command, *args)
    assert r.code != 0 and "another configuration" in r.stderr and "Traceback" not in r.stderr


def test_lp_train_refuses_a_heldout_set_without_the_validation_normals(datasets, tmp_path):
    from lesionpaste.train.cli import train_command

    data, other = datasets
    renamed = shutil.copytree(other, tmp_path / "renamed")
    with open(renamed / "manifest.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["twin_id"] = "x" + row["twin_id"]  # none of the training set's normals
    (renamed / "manifest.csv").write_text(manifest_text(rows), encoding="utf-8")
    r = invoke(train_command, data, "--out", tmp_path / "run", "--epochs", "1",
               "--heldout-val", renamed, *FAST)  # fmt: skip
    assert r.code != 0 and "holds none of the" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()
