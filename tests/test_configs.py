"""The option bundles check themselves when built, from Python as from the command line, with
the command line's one-line messages (one place for each rule)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from lesionpaste.errors import LesionPasteError
from lesionpaste.synth.pasting.augment import AugmentConfig
from lesionpaste.synth.pasting.twin import PasteConfig
from lesionpaste.train.training.config import TrainConfig
from tests.conftest import refusal


@pytest.mark.mutation
@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"lesion_scale": -1}, "--lesion-scale must be above 0"),
        ({"lesion_scale": 0}, "--lesion-scale must be above 0"),
        ({"lesion_scale": math.nan}, "--lesion-scale must be above 0"),
        ({"lesion_scale": math.inf}, "must be finite"),
        ({"edge_blur": -0.5}, "--edge-blur at least 0"),
        ({"lam": (0.8, 0.5)}, "--lambda 0.8,0.5"),
        ({"lam": (0.5, 1.5)}, "--lambda 0.5,1.5"),
        ({"lam": (-0.1, 0.5)}, "--lambda -0.1,0.5"),
        ({"tries": 0}, "placement tries"),
    ],
)
def test_a_paste_configuration_refuses_bad_values(kwargs, expected):
    with pytest.raises(LesionPasteError, match=expected.replace("(", r"\(")):
        PasteConfig(**kwargs)


@pytest.mark.mutation
def test_the_papers_paste_and_augment_settings_are_accepted():
    paste = PasteConfig()
    assert paste.lam == (0.5, 0.8) and paste.lesion_scale == 1.0
    assert PasteConfig(lam=None).lam is None and PasteConfig(lam=(0.6, 0.6)).lam == (0.6, 0.6)
    assert PasteConfig(lesion_scale=1.5, edge_blur=1.0).edge_blur == 1.0


@pytest.mark.mutation
@pytest.mark.parametrize(
    "kwargs",
    [
        {"resize_range": (1.25, 0.75)},
        {"contrast_range": (0.0, 1.0)},
        {"brightness_range": (0.8, math.inf)},
        {"saturation_range": (math.nan, 1.0)},
        {"hue_shift": -0.1},
        {"hue_shift": 0.6},
    ],
)
def test_an_augment_configuration_refuses_bad_ranges(kwargs):
    with pytest.raises(LesionPasteError, match="augmentation"):
        AugmentConfig(**kwargs)


@pytest.mark.mutation
@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"arch": "alexnet"}, "unknown --arch 'alexnet'"),
        ({"epochs": 0}, "--epochs, --batch-size and --lr must be positive"),
        ({"batch_size": 0}, "--epochs, --batch-size and --lr must be positive"),
        ({"lr": 0.0}, "--epochs, --batch-size and --lr must be positive"),
        ({"lr": math.nan}, "--epochs, --batch-size and --lr must be positive"),
        ({"freeze": -1}, "--freeze must be 0"),
        ({"freeze": 5}, "--freeze 5: vgg16 has 5 stages; freeze 1 to 4 of them (0: none)"),
        ({"arch": "smallcnn", "freeze": 4}, "--freeze 4: smallcnn has 4 stages; freeze 1 to 3"),
        ({"size": 0}, "--size must be a positive"),
        ({"val_fraction": 1.0}, "--val-fraction"),
        ({"image_score": "best"}, "--image-score 'best'"),
        ({"maps": True, "supervised": True}, "--maps learns the pasted masks"),
        ({"keep_best": "last"}, "--keep-best 'last'"),
        ({"keep_best": "heldout"}, "--keep-best heldout needs --heldout-val"),
    ],
)
def test_a_training_configuration_refuses_bad_values(kwargs, expected):
    with pytest.raises(LesionPasteError, match=re.escape(expected)):
        TrainConfig(dataset="d", **kwargs)


POSITIVE = "--epochs, --batch-size and --lr must be positive"


@pytest.mark.mutation
@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"epochs": 0}, POSITIVE),
        ({"batch_size": 0}, POSITIVE),
        ({"lr": -1e-3}, POSITIVE),
        ({"lr": math.inf}, POSITIVE),
        ({"freeze": -1}, "--freeze must be 0 (none) or a number of stages"),
        ({"size": 0}, "--size must be a positive number of pixels"),
        ({"val_fraction": -0.01}, "--val-fraction must be at least 0 and below 1"),
        ({"momentum": math.inf}, "--momentum must be 0 or more"),
        ({"weight_decay": -1e-9}, "--weight-decay must be 0 or more"),
        ({"map_weight": math.nan}, "--map-weight must be 0 or more"),
        (
            {"maps": True, "supervised": True},
            "--maps learns the pasted masks: it needs a synthetic dataset",
        ),
        ({"keep_best": "heldout"}, "--keep-best heldout needs --heldout-val (the held-out pairs)"),
        ({"bank_sources": ["a", 3]}, "bank_sources is \"['a', 3]\", not of type list[str]"),
        (  # a long value is cut at 40 characters
            {"bank_sources": ["a" * 60, 3]},
            "bank_sources is \"['" + "a" * 38 + '", not of type list[str]',
        ),
    ],
)
def test_each_training_refusal_is_its_whole_message(kwargs, expected):
    assert refusal(lambda: TrainConfig(dataset="d", **kwargs)) == expected


@pytest.mark.mutation
def test_a_training_configuration_takes_each_bound_at_its_edge():
    """The smallest values that can train, and the largest finite learning rate."""
    edge = TrainConfig(dataset="d", epochs=1, batch_size=1, size=1, val_fraction=0.0, lr=5e-324,
                       momentum=0.0, weight_decay=0.0, map_weight=0.0)  # fmt: skip
    assert (edge.epochs, edge.batch_size, edge.size, edge.val_fraction) == (1, 1, 1, 0.0)
    assert TrainConfig(dataset="d", lr=1.7e308, val_fraction=0.999).lr == 1.7e308


@pytest.mark.mutation
def test_the_papers_training_settings_are_accepted():
    config = TrainConfig(dataset="d")
    assert (config.arch, config.epochs, config.batch_size, config.lr) == ("vgg16", 50, 64, 1e-3)
    assert TrainConfig(dataset="d", keep_best="heldout", heldout_val="v").keep_best == "heldout"
    assert TrainConfig(dataset="d", freeze=4).freeze == 4  # VGG16's last stage stays trained


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"folds": 5, "eval_set": Path("e"), "keep_best": "val"}, "--keep-best keeps one run's"),
        ({"heldout_val": Path("h"), "supervised": True}, "--heldout-val validates a synthetic"),
        ({"heldout_val": Path("h"), "folds": 5, "eval_set": Path("e")}, "--heldout-val validates"),
        ({"folds": 5}, "--folds needs --eval EVALSET"),
    ],
)
def test_a_training_request_refuses_options_that_do_not_go_together(kwargs, expected):
    from lesionpaste.train.runs.train_run import TrainRequest

    settings = {k: kwargs.pop(k) for k in ("keep_best", "supervised") if k in kwargs}
    config = TrainConfig(dataset="d", **settings)
    with pytest.raises(LesionPasteError, match=re.escape(expected)):
        TrainRequest(Path("d"), Path("r"), config, **kwargs)


def test_a_training_request_accepts_what_goes_together():
    from lesionpaste.train.runs.train_run import TrainRequest

    config = TrainConfig(dataset="d", keep_best="val")
    assert TrainRequest(Path("d"), Path("r"), config, eval_set=Path("e")).folds == 0
    folds = TrainRequest(Path("d"), Path("r"), TrainConfig(dataset="d"), Path("e"), folds=5)
    assert folds.folds == 5
    heldout = TrainRequest(Path("d"), Path("r"), config, heldout_val=Path("h"))
    assert heldout.heldout_val == Path("h")


@pytest.mark.mutation
def test_a_saved_configuration_is_read_up_to_one_mebibyte(tmp_path):
    """config.json through the safe reader: a configuration padded to exactly 1 MiB is read,
    one byte more is refused unread (a real one is a few hundred bytes)."""
    import json
    from dataclasses import asdict

    from lesionpaste.train.training.config import read_config

    saved = asdict(TrainConfig(dataset="d"))
    text = json.dumps(saved)
    path = tmp_path / "config.json"
    path.write_text(text + " " * ((1 << 20) - len(text)))
    assert read_config(path) == TrainConfig(dataset="d")
    path.write_text(text + " " * ((1 << 20) - len(text) + 1))
    with pytest.raises(LesionPasteError) as caught:
        read_config(path)
    assert str(caught.value) == (
        f"{path}: longer than a JSON file may be (1,048,576 bytes); refused unread"
    )
