"""Checks that need a CUDA device (``make gpu-check`` runs them); skipped without one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.test_train_cli import invoke
from tests.train_fixtures import graded, synthetic

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

CUDA = ["--arch", "smallcnn", "--weights", "none", "--device", "cuda", "--batch-size", "16",
        "--lr", "0.05", "-q"]  # fmt: skip


def test_the_images_are_placed_on_the_gpu():
    from lesionpaste.train.models.on_device import place_images

    tensor, on_device = place_images(np.zeros((4, 8, 8, 3), np.uint8), torch.device("cuda"))
    assert on_device and tensor.is_cuda


def test_training_on_cuda_learns_and_evaluates(tmp_path):
    from lesionpaste.train.cli import eval_command, train_command

    data = synthetic(tmp_path / "train", pairs=48)
    run = tmp_path / "run"
    assert invoke(train_command, data, "--out", run, "--epochs", "6", *CUDA).code == 0
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert log[-1]["loss"] < log[0]["loss"] and log[-1]["val_auc"] > 0.9
    ev = graded(tmp_path / "eval", seed=1)
    r = invoke(eval_command, run, ev, "--out", tmp_path / "ev", "--device", "cuda")
    assert r.code == 0, r.stderr
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["auc"]["0vall"]["auc"] > 0.8


def test_frozen_training_with_maps_on_cuda_matches_recomputing(tmp_path):
    from lesionpaste.train.training.config import TrainConfig
    from lesionpaste.train.training.dataset import load_dataset
    from lesionpaste.train.training.loop import train

    data = load_dataset(synthetic(tmp_path / "d", pairs=12, masks=True), masks=True)
    states = []
    for cache in (True, False):
        config = TrainConfig(dataset="d", arch="resnet18", weights="none", epochs=1,
                             batch_size=8, size=32, device="cuda", freeze=3, maps=True)  # fmt: skip
        run = tmp_path / f"run-{cache}"
        run.mkdir()
        train(data, run, config, quiet=True, cache=cache)
        states.append(torch.load(run / "checkpoint.pt", weights_only=True)["model"])
    for key, value in states[0].items():
        torch.testing.assert_close(value, states[1][key], rtol=2e-2, atol=2e-3)  # bf16
