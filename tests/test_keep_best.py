"""lp-train --keep-best: early stopping on synthetic validation only. The epoch of the best
validation AUC is kept (best.pt) and is the model lp-eval scores and the thresholds come from;
checkpoint.pt stays the last epoch, for resuming."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lesionpaste.dataset_format import dataset_json_text, read_dataset_json
from lesionpaste.train.training.selection import best_epoch
from tests.test_train_cli import FAST, invoke
from tests.train_fixtures import graded, synthetic


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("keep")
    return synthetic(root / "train", pairs=24), graded(root / "eval", per_grade=4)


def _falling_validation(monkeypatch, aucs):
    """Make the logged validation AUCs follow ``aucs``, epoch by epoch, so that the best
    epoch is known in advance (the model still trains and is validated as usual)."""
    from lesionpaste.train.training import loop

    real, calls = loop._validate, []

    def validate(s, labels):
        entry = real(s, labels)
        entry["val_auc"] = aucs[len(calls)]
        calls.append(1)
        return entry

    monkeypatch.setattr(loop, "_validate", validate)


def _model_scores(path, loaded):
    from lesionpaste.train.models.build import build_model
    from lesionpaste.train.models.on_device import Normalizer, scores_of
    from lesionpaste.train.training.config import TrainConfig

    state = torch.load(path, weights_only=True)
    config = TrainConfig(**state["config"])
    model, _ = build_model(config.arch, "none")
    model.load_state_dict(state["model"])
    normalizer = Normalizer(config.size, True, config.arch)
    images = torch.from_numpy(loaded.images)
    return state["epoch"], scores_of(model, normalizer, images, torch.device("cpu"))


def test_the_best_epoch_is_kept_and_is_what_lp_eval_scores(data, tmp_path, monkeypatch):
    from lesionpaste.train.cli import eval_command, train_command
    from lesionpaste.train.metrics.auc import read_scores
    from lesionpaste.train.training.dataset import load_dataset

    train_set, eval_set = data
    _falling_validation(monkeypatch, [0.7, 0.9, 0.8])
    run = tmp_path / "run"
    r = invoke(train_command, train_set, "--out", run, "--epochs", "3", "--val-fraction",
               "0.25", "--keep-best", "val", *FAST[:-1])  # fmt: skip
    assert r.code == 0, r.stderr
    assert "epoch 2 kept (best val)" in r.stdout
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert best_epoch(log, "val") == (2, 0.9)
    evaluation = load_dataset(eval_set)
    kept_epoch, kept = _model_scores(run / "best.pt", evaluation)
    last_epoch, last = _model_scores(run / "checkpoint.pt", evaluation)
    assert (kept_epoch, last_epoch) == (1, 2)
    assert not np.allclose(kept, last, atol=1e-4)  # the two models differ
    r = invoke(eval_command, run, eval_set, "--out", tmp_path / "ev", "--device", "cpu", "-q")
    assert r.code == 0, r.stderr
    _, _, scored = read_scores(tmp_path / "ev" / "scores.csv")
    assert np.allclose(scored, kept, atol=1e-6)


def test_the_thresholds_come_from_the_kept_epoch(data, tmp_path, monkeypatch):
    from lesionpaste.train.cli import train_command
    from lesionpaste.train.metrics.operating_points import normal_quantile
    from lesionpaste.train.training.dataset import load_dataset
    from lesionpaste.train.training.schedule import split_by_twin

    train_set, _ = data
    _falling_validation(monkeypatch, [0.9, 0.6])
    run = tmp_path / "run"
    r = invoke(train_command, train_set, "--out", run, "--epochs", "2", "--val-fraction",
               "0.25", "--keep-best", "val", *FAST)  # fmt: skip
    assert r.code == 0, r.stderr
    loaded = load_dataset(train_set)
    normals = split_by_twin(loaded.twin_ids, 0.25, 0) & (loaded.labels == 0)
    epoch, scores = _model_scores(run / "best.pt", loaded)
    assert epoch == 0
    saved = json.loads((run / "thresholds.json").read_text())
    assert saved["pass_95"] == pytest.approx(normal_quantile(scores[normals], 0.95), abs=1e-6)


def test_a_kill_between_the_checkpoint_and_best_pt_is_mended_on_resume(data, tmp_path, monkeypatch):
    from lesionpaste.train.cli import train_command

    train_set, _ = data
    args = [train_set, "--out", tmp_path / "run", "--val-fraction", "0.25", "--keep-best", "val"]
    _falling_validation(monkeypatch, [0.6, 0.8, 0.7])
    r = invoke(train_command, *args, "--epochs", "2", *FAST)
    assert r.code == 0, r.stderr
    (tmp_path / "run" / "best.pt").unlink()  # as if killed before it was written
    # resuming the same run (already trained) restores best.pt from the checkpoint: epoch 2
    r = invoke(train_command, *args, "--epochs", "2", *FAST)
    assert r.code == 0, r.stderr
    assert torch.load(tmp_path / "run" / "best.pt", weights_only=True)["epoch"] == 1


def test_a_kill_in_mid_training_before_best_pt_is_mended_when_resumed(data, tmp_path, monkeypatch):
    from lesionpaste.train.cli import train_command
    from lesionpaste.train.training import loop

    train_set, _ = data
    args = [train_set, "--out", tmp_path / "run", "--val-fraction", "0.25", "--keep-best", "val"]
    _falling_validation(monkeypatch, [0.6, 0.8, 0.7])
    save, saved = loop.save_checkpoint, []

    def killed_at_epoch_2s_best(path, *rest):
        if path.name == "best.pt" and rest[-2] == 1:
            raise RuntimeError("killed")  # after epoch 2's checkpoint.pt, before its best.pt
        saved.append((path.name, rest[-2]))
        save(path, *rest)

    monkeypatch.setattr(loop, "save_checkpoint", killed_at_epoch_2s_best)
    with pytest.raises(RuntimeError, match="killed"):
        invoke(train_command, *args, "--epochs", "3", *FAST)
    assert saved[-1] == ("checkpoint.pt", 1)  # epoch 2 checkpointed; best.pt still epoch 1
    assert torch.load(tmp_path / "run" / "best.pt", weights_only=True)["epoch"] == 0
    monkeypatch.setattr(loop, "save_checkpoint", save)
    r = invoke(train_command, *args, "--epochs", "3", *FAST)  # resumes at epoch 3 (0.7)
    assert r.code == 0, r.stderr
    assert torch.load(tmp_path / "run" / "best.pt", weights_only=True)["epoch"] == 1
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == [1, 2, 3] and best_epoch(log, "val") == (2, 0.8)


def test_keep_best_heldout_keeps_the_epoch_of_the_best_heldout_auc(tmp_path, monkeypatch):
    from lesionpaste.train.cli import train_command
    from lesionpaste.train.training import loop
    from tests.test_heldout import _with_other_twins

    train_set = synthetic(tmp_path / "train", pairs=24)
    meta = read_dataset_json(train_set)
    meta["bank"] = {"sources": [{"id": "IDRiD_03"}]}
    (train_set / "dataset.json").write_text(dataset_json_text(meta), encoding="utf-8")
    other = _with_other_twins(train_set, tmp_path / "other", "IDRiD_19", 5)
    real, aucs = loop._validate_heldout, iter([0.6, 0.9, 0.5])

    def heldout(s):  # scored as usual, the logged value forced: epoch 2 is best
        return {**real(s), "heldout_val_auc": next(aucs)}

    monkeypatch.setattr(loop, "_validate_heldout", heldout)
    r = invoke(train_command, train_set, "--out", tmp_path / "run", "--epochs", "3",
               "--val-fraction", "0.25", "--heldout-val", other, "--keep-best", "heldout",
               *FAST)  # fmt: skip
    assert r.code == 0, r.stderr
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert best_epoch(log, "heldout") == (2, 0.9)
    assert torch.load(tmp_path / "run" / "best.pt", weights_only=True)["epoch"] == 1


def test_a_lost_best_pt_of_an_earlier_epoch_is_refused_not_replaced(data, tmp_path, monkeypatch):
    from lesionpaste.train.cli import train_command

    train_set, _ = data
    args = [train_set, "--out", tmp_path / "run", "--val-fraction", "0.25", "--keep-best", "val"]
    _falling_validation(monkeypatch, [0.9, 0.6])
    assert invoke(train_command, *args, "--epochs", "2", *FAST).code == 0
    (tmp_path / "run" / "best.pt").unlink()  # epoch 1's weights are gone
    r = invoke(train_command, *args, "--epochs", "2", *FAST)
    assert r.code != 0 and "does not hold the best epoch (1)" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "run" / "best.pt").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--keep-best", "heldout"], "--keep-best heldout needs --heldout-val"),
        (["--keep-best", "val", "--val-fraction", "0"], "not both classes"),
        (["--keep-best", "val", "--val-fraction", "0.01"], "hold 0 image(s)"),  # round(0.24)
        (["--keep-best", "val", "--folds", "2"], "not with --folds"),
    ],
)
def test_keep_best_without_its_pairs_is_refused_in_one_line(data, tmp_path, extra, message):
    from lesionpaste.train.cli import train_command

    train_set, _ = data
    r = invoke(train_command, train_set, "--out", tmp_path / "run", "--epochs", "1", *extra, *FAST)
    assert r.code != 0 and message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()
