"""The backbone registry (train/models/backbones.py): each architecture described once, and what the
rest of the trainer asks of it (stages and head: tests/test_frozen.py; decoder taps:
tests/test_decoder.py; folding: tests/test_fused.py) working for every one of them, ResNet50
and EfficientNet-B0 included, end to end through lp-train --freeze --maps and lp-eval --cam."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from lesionpaste.train.evaluation.cam import target_layer
from lesionpaste.train.models.backbones import BACKBONES, backbone
from lesionpaste.train.models.build import ARCHS, build_model, input_normalization
from tests.train_fixtures import graded, synthetic

ROOT = Path(__file__).resolve().parents[1]


def test_the_registry_is_the_only_place_that_names_an_architecture():
    pattern = re.compile(r"arch (==|!=|in \()")  # a branch on the name (defaults may name one)
    quoted = "|".join(rf'"{name}"' for name in ARCHS)
    names = re.compile(rf"(==|!=)\s*({quoted})|({quoted})\s*(==|!=|:)|in \(\s*({quoted})")
    found = []
    for path in sorted((ROOT / "train").glob("*.py")):
        if path.name == "backbones.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#")[0]
            if pattern.search(code) or names.search(code):
                found.append(f"{path.name}:{number}: {line.strip()}")
    assert not found, found
    assert ARCHS == tuple(BACKBONES)


@pytest.mark.parametrize("arch", ARCHS)
def test_each_backbone_gives_a_cam_layer_and_pooled_features(arch):
    torch.manual_seed(0)
    model, _ = build_model(arch, "none")
    model.eval()
    seen = []
    layer = target_layer(model, arch)
    handle = layer.register_forward_hook(lambda _m, _i, out: seen.append(out.shape))
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 2)
    handle.remove()
    assert len(seen) == 1 and len(seen[0]) == 4  # a convolutional stage's activations
    backbone(arch).pooled(model)
    with torch.no_grad():
        features = model(torch.randn(2, 3, 64, 64))
    assert features.ndim == 2 and features.shape[1] >= 32  # not the two-class logits
    mean, std = input_normalization(arch)
    assert len(mean) == len(std) == 3 and all(s > 0 for s in std)


@pytest.mark.mutation
@pytest.mark.parametrize("arch", ARCHS)
def test_each_backbone_declares_the_stages_it_splits_into(arch):
    """``n_stages`` (what ``TrainConfig`` bounds ``--freeze`` by, before any model is built) is
    the number of stages the built model splits into."""
    model, _ = build_model(arch, "none")
    assert len(backbone(arch).stages(model)) == backbone(arch).n_stages


def test_an_unknown_architecture_is_one_line():
    from lesionpaste.errors import LesionPasteError

    with pytest.raises(LesionPasteError, match="unknown --arch 'alexnet'"):
        backbone("alexnet")


@pytest.mark.parametrize("arch", ["resnet50", "efficientnet_b0", "convnext_tiny"])
def test_freeze_maps_and_cam_run_end_to_end(arch, tmp_path):
    pytest.importorskip("pytorch_grad_cam")
    from lesionpaste.train.cli import eval_command, train_command

    data = synthetic(tmp_path / "d", pairs=6, size=32, masks=True)
    test = graded(tmp_path / "t", per_grade=2, size=32)
    r = CliRunner().invoke(
        train_command,
        [str(data), "-o", str(tmp_path / "run"), "--arch", arch, "--weights", "none",
         "--epochs", "1", "--batch-size", "6", "--freeze", "3", "--maps", "--size", "64",
         "--val-fraction", "0.34", "--device", "cpu", "-q"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(
        eval_command,
        [str(tmp_path / "run"), str(test), "-o", str(tmp_path / "e"), "--cam", "2",
         "--device", "cpu", "-q"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (tmp_path / "e" / "cam.png").is_file()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["arch"] == arch
    assert "0vall" in json.loads((tmp_path / "e" / "metrics.json").read_text())["auc"]


def test_a_diverged_run_stops_in_one_line(tmp_path):
    """ResNet50 from scratch at 32 pixels, batches of 6 and 2: its outputs become NaN in the
    first epoch; the run says so instead of a scikit-learn traceback."""
    from lesionpaste.train.cli import train_command

    data = synthetic(tmp_path / "d", pairs=6, size=32)
    r = CliRunner().invoke(
        train_command,
        [str(data), "-o", str(tmp_path / "run"), "--arch", "resnet50", "--weights", "none",
         "--epochs", "1", "--batch-size", "6", "--size", "32", "--val-fraction", "0.34",
         "--device", "cpu", "-q"],
    )  # fmt: skip
    assert r.exit_code != 0
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "training diverged" in lines[0], r.stderr
    assert "Traceback" not in r.stderr
