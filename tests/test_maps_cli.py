"""lp-train --maps and lp-eval --maps end to end on the CPU with tiny settings."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from lesionpaste.train.metrics.image_scores import IMAGE_SCORES
from tests.test_train_cli import FAST, invoke
from tests.train_fixtures import graded, synthetic


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    """A run trained with --maps on squares whose masks are recorded, and a graded set."""
    from lesionpaste.train.cli import train_command

    root = tmp_path_factory.mktemp("maps")
    data = synthetic(root / "train", pairs=40, masks=True)
    run = root / "run"
    r = invoke(train_command, data, "--out", run, "--epochs", "6", "--maps", *FAST)
    assert r.code == 0, r.stderr
    return run, graded(root / "eval", per_grade=4, seed=1, masks=False)


def test_a_run_with_maps_records_its_choices_on_the_validation_pairs(mapped):
    run, _ = mapped
    choices = json.loads((run / "maps.json").read_text())
    assert choices["image_score"] in ("classifier", "map_max", "map_topk", "combined")
    best = max(choices["val_auc_by_score"].values())  # the best; ties go to the first listed
    first_best = next(k for k in IMAGE_SCORES if choices["val_auc_by_score"][k] == best)
    assert choices["image_score"] == first_best and choices["image_score_option"] == "auto"
    assert 0 < choices["pixel_threshold"] < 1
    assert choices["val_dice"] > 0.3  # the squares are easy: the map finds them
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert set(log[-1]["val_auc_by_score"]) == {"classifier", "map_max", "map_topk", "combined"}
    config = json.loads((run / "config.json").read_text())
    assert config["maps"] is True and config["map_weight"] == 1.0


def test_lp_eval_maps_writes_each_map_and_its_picture(mapped, tmp_path):
    from lesionpaste.train.cli import eval_command

    run, evaluation = mapped
    r = invoke(eval_command, run, evaluation, "--out", tmp_path / "ev", "--maps", "--device", "cpu")
    assert r.code == 0, r.stderr
    out = tmp_path / "ev"
    rows = (evaluation / "manifest.csv").read_text().splitlines()[1:]
    maps = sorted((out / "maps").glob("*_panel.png"))
    assert len(maps) == len(rows)
    level = cv2.imread(str(out / "maps" / "0000.png"), cv2.IMREAD_UNCHANGED)
    assert level.dtype == np.uint16 and level.shape == (32, 32)
    panel = cv2.imread(str(maps[0]))
    assert panel.shape == (32, 4 * 32, 3)
    assert (out / "maps.png").exists()
    result = json.loads((out / "metrics.json").read_text())
    assert "no lesion masks" in result["pixel"]["note"]
    # its own earlier output (maps/ included) is replaced with --overwrite
    again = invoke(eval_command, run, evaluation, "--out", out, "--maps", "--device", "cpu",
                   "--overwrite")  # fmt: skip
    assert again.code == 0, again.stderr
    (out / "maps" / "notes.txt").write_text("mine")  # but never a user's file in it
    refused = invoke(eval_command, run, evaluation, "--out", out, "--maps", "--device", "cpu",
                     "--overwrite")  # fmt: skip
    assert refused.code != 0 and "notes.txt" in refused.stderr
    assert (out / "maps" / "notes.txt").read_text() == "mine"


def test_a_bright_square_lights_up_the_written_map(mapped, tmp_path):
    from lesionpaste.train.cli import eval_command

    run, _ = mapped
    ev = graded(tmp_path / "sq", per_grade=2, seed=3)  # grades > 0 carry a bright square
    r = invoke(eval_command, run, ev, "--out", tmp_path / "ev", "--maps", "--device", "cpu")
    assert r.code == 0, r.stderr
    image = cv2.imread(str(ev / "images" / "0011.png"))
    square = image.max(axis=2) > 170
    level = cv2.imread(str(tmp_path / "ev" / "maps" / "0011.png"), cv2.IMREAD_UNCHANGED)
    assert level[square].mean() > 2 * level[~square].mean()


def test_lp_eval_maps_refuses_a_run_without_maps(tmp_path):
    from lesionpaste.train.cli import eval_command, train_command

    data = synthetic(tmp_path / "train", pairs=8)
    run = tmp_path / "run"
    assert invoke(train_command, data, "--out", run, "--epochs", "1", *FAST).code == 0
    ev = graded(tmp_path / "eval", per_grade=2)
    r = invoke(eval_command, run, ev, "--out", tmp_path / "ev", "--maps", "--device", "cpu")
    assert r.code != 0 and "trained without --maps" in r.stderr
    assert not (tmp_path / "ev").exists()


def test_lp_train_maps_needs_masks(tmp_path):
    from lesionpaste.train.cli import train_command

    data = synthetic(tmp_path / "train", pairs=4)  # no masks recorded
    r = invoke(train_command, data, "--out", tmp_path / "run", "--maps", *FAST)
    assert r.code != 0 and "have none" in r.stderr
    assert not (tmp_path / "run").exists()


def test_a_run_saved_before_maps_existed_still_evaluates(tmp_path):
    from lesionpaste.train.cli import eval_command, train_command

    data = synthetic(tmp_path / "train", pairs=8)
    run = tmp_path / "run"
    assert invoke(train_command, data, "--out", run, "--epochs", "1", *FAST).code == 0
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    for key in ("maps", "map_weight", "image_score", "bank_sources"):
        checkpoint["config"].pop(key)
    torch.save(checkpoint, run / "checkpoint.pt")
    config = json.loads((run / "config.json").read_text())
    for key in ("maps", "map_weight", "image_score", "bank_sources"):
        config.pop(key)
    (run / "config.json").write_text(json.dumps(config))
    ev = graded(tmp_path / "eval", per_grade=2)
    r = invoke(eval_command, run, ev, "--out", tmp_path / "ev", "--device", "cpu")
    assert r.code == 0, r.stderr
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["auc"]
    # and it resumes as the same configuration (nothing to train: it is finished)
    again = invoke(train_command, data, "--out", run, "--epochs", "1", *FAST)
    assert again.code == 0, again.stderr


def test_lp_eval_maps_scores_the_maps_against_the_masks_next_to_grad_cam(mapped, tmp_path):
    pytest.importorskip("pytorch_grad_cam")
    from lesionpaste.train.cli import eval_command

    run, _ = mapped
    ev = graded(tmp_path / "masked", per_grade=2, seed=5, masks=True)
    out = tmp_path / "ev"
    r = invoke(eval_command, run, ev, "--out", out, "--maps", "--boot", "50", "--device", "cpu")
    assert r.code == 0, r.stderr
    pixel = json.loads((out / "metrics.json").read_text())["pixel"]
    assert pixel["n_images"] == 12 and pixel["types"] == ["EX"]
    for kind in ("maps", "gradcam", "gradcam++"):
        entry = pixel[kind]
        for metric in ("auroc", "aupro", "dice", "iou"):
            assert entry[f"{metric}_ci_low"] <= entry[metric] <= entry[f"{metric}_ci_high"]
        assert entry["by_type"]["EX"]["auroc"] == pytest.approx(entry["auroc"])  # one type
    assert pixel["maps"]["auroc"] > 0.9  # the squares are found
    assert (
        pixel["thresholds"]["maps"]
        == json.loads((run / "maps.json").read_text())["pixel_threshold"]
    )
    difference = pixel["differences"]["maps - gradcam"]["auroc"]
    assert difference["difference"] == pytest.approx(
        pixel["maps"]["auroc"] - pixel["gradcam"]["auroc"]
    )
    assert difference["ci_low"] <= difference["difference"] <= difference["ci_high"]
    panel = cv2.imread(str(out / "maps" / "0011_panel.png"))
    outline = panel[:, 32:64]  # the second column: the true lesion outlined in green
    assert ((outline[:, :, 1] == 255) & (outline[:, :, 0] == 0)).sum() >= 28  # an 8x8 square


def test_lp_eval_refuses_an_evaluation_set_holding_a_bank_source(tmp_path):
    from lesionpaste.train.cli import eval_command, train_command

    data = synthetic(tmp_path / "train", pairs=8)
    meta = json.loads((data / "dataset.json").read_text())
    meta["bank"] = {"sources": [{"id": "e0003"}, {"id": "IDRiD_03"}]}
    (data / "dataset.json").write_text(json.dumps(meta))
    run = tmp_path / "run"
    assert invoke(train_command, data, "--out", run, "--epochs", "1", *FAST).code == 0
    assert json.loads((run / "config.json").read_text())["bank_sources"] == ["IDRiD_03", "e0003"]
    ev = graded(tmp_path / "eval", per_grade=2)  # holds e0000 ... e0011
    r = invoke(eval_command, run, ev, "--out", tmp_path / "ev", "--device", "cpu")
    assert r.code != 0 and "e0003" in r.stderr and "source image" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "ev").exists()
