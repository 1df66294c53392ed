"""An ``lp-export`` folder read back (train/deploy/exported.py): ``model.json`` is checked value by
value (a valid one first, then one value damaged at a time, each refusal compared whole), and
``load_export`` builds the detector from it, refusing a model whose input is not its contract's.

The model runners are stand-ins recording how they were made (the TorchScript side is put in
``sys.modules``: the real modules import torch, seconds); one test reaches the real ONNX runner
for a missing or altered model file. A real export read back is in test_predict.py."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import ClassVar

import numpy as np
import pytest

from lesionpaste.train.deploy import onnx_runner
from lesionpaste.train.deploy.detector import Detector
from lesionpaste.train.deploy.exported import check_model_json, load_export
from tests.conftest import DELETE, damaged, refusal
from tests.test_contract import CT, contract

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate

WHERE = Path("sent", "model.json")
DIGEST = hashlib.sha256(b"the model's bytes").hexdigest()
FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}


def model_json(kind: str = "onnx", **changes) -> dict:
    """A valid ``model.json`` as lp-export writes it, of the contract ``contract(**changes)``."""
    return {
        "format": "lesionpaste-model",
        "schema_version": 1,
        "model_format": kind,
        "model_file": FILES[kind],
        "model_sha256": DIGEST,
        "inputs": "images: (batch, S, S, C) uint8, prepared by the contract",
        "outputs": "probability: (batch,) class-1 probability; map: (batch, h, w) with maps",
        "tool_version": "0.0.0",
        "contract": contract(**changes).to_dict(),
        "training": {"arch": "resnet18", "epochs": 3},
        "evaluation": None,
    }


# ---- check_model_json


@pytest.mark.parametrize("kind", ["onnx", "torchscript"])
def test_a_valid_description_is_returned_as_it_is(kind):
    data = model_json(kind)
    assert check_model_json(data, WHERE) is data
    assert data == model_json(kind)  # untouched
    upper = damaged(data, ("model_sha256",), DIGEST.upper())
    assert check_model_json(upper, WHERE) is upper


@pytest.mark.parametrize("data", [[], None, "lesionpaste-model", 1, [model_json()]])
def test_what_is_not_a_json_object_is_not_a_description(data):
    assert refusal(check_model_json, data, WHERE) == (
        "sent/model.json: not an lp-export model description"
    )


def _unknown_version(shown: str) -> str:
    return (
        f"sent/model.json: schema version {shown} is not known to this version (it reads 1); "
        "update LesionPaste"
    )


def _other_file(shown: str, kind: str) -> str:
    return (
        f"sent/model.json: model_file {shown}; the {kind} format's model file is {FILES[kind]}, "
        "beside model.json"
    )


NOT_A_DIGEST = "sent/model.json: model_sha256 is not a sha256 digest"


@pytest.mark.parametrize(
    "kind, path, value, expected",
    [
        ("onnx", ("format",), DELETE, "sent/model.json: not an lp-export model description"),
        ("onnx", ("format",), "lesionpaste-input-contract",
         "sent/model.json: not an lp-export model description"),
        ("onnx", ("format",), "lesionpaste-model ",
         "sent/model.json: not an lp-export model description"),
        ("onnx", ("schema_version",), 2, _unknown_version("2")),
        ("onnx", ("schema_version",), 0, _unknown_version("0")),
        ("onnx", ("schema_version",), "1", _unknown_version("'1'")),
        ("torchscript", ("schema_version",), DELETE, _unknown_version("None")),
        ("onnx", ("model_format",), "pytorch",
         "sent/model.json: unknown model_format 'pytorch' (onnx or torchscript)"),
        ("onnx", ("model_format",), "ONNX",
         "sent/model.json: unknown model_format 'ONNX' (onnx or torchscript)"),
        ("onnx", ("model_format",), DELETE,
         "sent/model.json: unknown model_format None (onnx or torchscript)"),
        ("onnx", ("model_file",), "model.pt", _other_file("'model.pt'", "onnx")),
        ("torchscript", ("model_file",), "model.onnx", _other_file("'model.onnx'", "torchscript")),
        ("onnx", ("model_file",), "../model.onnx", _other_file("'../model.onnx'", "onnx")),
        ("torchscript", ("model_file",), "sub/model.pt",
         _other_file("'sub/model.pt'", "torchscript")),
        ("onnx", ("model_file",), DELETE, _other_file("None", "onnx")),
        ("onnx", ("model_sha256",), DIGEST[:63], NOT_A_DIGEST),
        ("torchscript", ("model_sha256",), DIGEST + "0", NOT_A_DIGEST),
        ("onnx", ("model_sha256",), "", NOT_A_DIGEST),
        ("onnx", ("model_sha256",), int(DIGEST[:15], 16), NOT_A_DIGEST),
        ("onnx", ("model_sha256",), list(DIGEST), NOT_A_DIGEST),  # 64 items, not a string
        ("onnx", ("model_sha256",), None, NOT_A_DIGEST),
        ("torchscript", ("model_sha256",), DELETE, NOT_A_DIGEST),
    ],
)  # fmt: skip
def test_each_damaged_value_is_refused_naming_the_file(kind, path, value, expected):
    assert refusal(check_model_json, damaged(model_json(kind), path, value), WHERE) == expected


def test_each_format_takes_its_own_file_name_only():
    onnx = model_json("onnx")
    assert check_model_json({**onnx, "model_format": "torchscript", "model_file": "model.pt"},
                            WHERE)["model_file"] == "model.pt"  # fmt: skip
    assert refusal(check_model_json, {**onnx, "model_format": "torchscript"}, WHERE) == (
        _other_file("'model.onnx'", "torchscript")
    )


@pytest.mark.parametrize("value", [["onnx"], {"onnx": 1}])
def test_an_unhashable_model_format_is_refused_in_one_line(value):
    assert refusal(check_model_json, damaged(model_json(), ("model_format",), value), WHERE) == (
        f"sent/model.json: unknown model_format {value!r} (onnx or torchscript)"
    )


def test_a_schema_version_of_true_is_not_version_1():
    refusal(check_model_json, damaged(model_json(), ("schema_version",), True), WHERE)


def test_a_digest_that_is_not_hex_is_refused():
    assert refusal(check_model_json, damaged(model_json(), ("model_sha256",), "g" * 64), WHERE) == (
        NOT_A_DIGEST
    )


# ---- load_export, with stand-in runners


class FakeRunner:
    """A stand-in model runner: records its arguments in ``made``; its input side, channels and
    map are the class's; it scores image ``i`` (every pixel ``i``) ``i / 100``."""

    kind = ""
    side, channels, has_map = 512, 3, True
    made: ClassVar[list] = []

    def __init__(self, *args, **kwargs):
        self.made.append((self.kind, args, kwargs))
        self.batches: list = []

    def score(self, images: np.ndarray):
        self.batches.append(len(images))
        i = images[:, 0, 0, 0].astype(np.float64)
        return i / 100, np.broadcast_to((i / 200)[:, None, None], (len(images), 2, 2)).copy()


@pytest.fixture
def runners(monkeypatch):
    """Both runners replaced by stand-ins; returns ``(made, set_input)``: the list of runners
    made, and a function setting the input side, channels and map they report."""
    made: ClassVar[list] = []

    class Onnx(FakeRunner):
        kind = "onnx"

    class TorchScript(FakeRunner):
        kind = "torchscript"

    for cls in (Onnx, TorchScript):
        cls.made = made
    monkeypatch.setattr(onnx_runner, "OnnxScorer", Onnx)
    export_model = ModuleType("lesionpaste.train.deploy.export_model")
    export_model.TorchScriptScorer = TorchScript
    on_device = ModuleType("lesionpaste.train.models.on_device")
    on_device.pick_device = lambda name: ("device", name)
    monkeypatch.setitem(sys.modules, export_model.__name__, export_model)
    monkeypatch.setitem(sys.modules, on_device.__name__, on_device)

    def set_input(side: int, channels: int, has_map: bool) -> None:
        for cls in (Onnx, TorchScript):
            cls.side, cls.channels, cls.has_map = side, channels, has_map

    return made, set_input


def export_folder(tmp_path: Path, data: dict | str) -> Path:
    folder = tmp_path / "export"
    folder.mkdir(exist_ok=True)
    (folder / "model.json").write_text(data if isinstance(data, str) else json.dumps(data))
    return folder


def test_an_onnx_export_is_loaded_as_its_contract_and_model(tmp_path, runners):
    made, _ = runners
    folder = export_folder(tmp_path, model_json("onnx"))
    found = load_export(str(folder))
    assert isinstance(found, Detector)
    assert made == [("onnx", (folder / "model.onnx",), {"sha256": DIGEST})]
    assert found.contract == contract()
    assert (found.source, found.kind, found.model_sha256) == (folder, "onnx", DIGEST)
    scored = found.score(np.full((3, 2, 2, 3), [[[[10]]], [[[20]]], [[[30]]]], np.uint8))
    assert np.allclose(scored.probabilities, [0.1, 0.2, 0.3])
    assert np.allclose(scored.scores, [0.05, 0.1, 0.15])  # the contract's map_max


@pytest.mark.parametrize("device", [None, "cpu", "cuda"])
def test_a_torchscript_export_is_loaded_on_the_device_asked(tmp_path, runners, device):
    made, _ = runners
    folder = export_folder(tmp_path, model_json("torchscript"))
    found = load_export(folder) if device is None else load_export(folder, device)
    picked = ("device", "auto" if device is None else device)
    assert made == [("torchscript", (folder / "model.pt", picked), {"sha256": DIGEST})]
    assert found.contract == contract()
    assert (found.source, found.kind, found.model_sha256) == (folder, "torchscript", DIGEST)
    assert np.allclose(found.score(np.full((1, 2, 2, 3), 50, np.uint8)).probabilities, [0.5])


SAYS_MAP = "the contract says 512x512x3 with a map"


@pytest.mark.parametrize(
    "model_input, changes, expected",
    [
        ((256, 3, True), {}, f"the model takes 256x256x3 images and gives a map, {SAYS_MAP}"),
        ((512, 1, True), {}, f"the model takes 512x512x1 images and gives a map, {SAYS_MAP}"),
        ((512, 3, False), {},
         "the model takes 512x512x3 images, the contract says 512x512x3 with a map"),
        ((512, 3, True), {"image_score": "classifier", "maps": False},
         "the model takes 512x512x3 images and gives a map, the contract says 512x512x3"),
        ((256, 3, False), {"preparation": CT, "image_score": "classifier", "maps": False},
         "the model takes 256x256x3 images, the contract says 256x256x1"),
        ((255, 1, False), {"preparation": CT, "image_score": "classifier", "maps": False},
         "the model takes 255x255x1 images, the contract says 256x256x1"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("kind", ["onnx", "torchscript"])
def test_a_model_whose_input_is_not_the_contracts_is_refused(
    tmp_path, runners, kind, model_input, changes, expected
):
    made, set_input = runners
    set_input(*model_input)
    folder = export_folder(tmp_path, model_json(kind, **changes))
    assert (
        refusal(load_export, folder) == f"{folder}/model.json does not match its model: {expected}"
    )
    assert len(made) == 1


def test_a_model_matching_a_grey_contract_without_maps_is_loaded(tmp_path, runners):
    made, set_input = runners
    set_input(256, 1, False)
    changes = {"preparation": CT, "image_score": "classifier", "maps": False}
    found = load_export(export_folder(tmp_path, model_json("onnx", **changes)))
    assert found.contract == contract(**changes) and len(made) == 1


@pytest.mark.parametrize(
    "path, value, words",
    [
        (("model_format",), "pytorch", "unknown model_format 'pytorch' (onnx or torchscript)"),
        (("model_file",), "../model.onnx",
         "model_file '../model.onnx'; the onnx format's model file is model.onnx, beside model.json"),
        (("contract",), DELETE, "not a JSON object"),
        (("contract", "format"), "x", "not an input contract (format 'x')"),
        (("contract", "preparation", "size"), -1,
         "the prepared size is -1, not a whole number in [0, 8192]"),
    ],
)  # fmt: skip
def test_a_damaged_description_is_refused_before_any_model_is_read(
    tmp_path, runners, path, value, words
):
    made, _ = runners
    folder = export_folder(tmp_path, damaged(model_json(), path, value))
    assert refusal(load_export, folder) == f"{folder}/model.json: {words}"
    assert made == []


def test_a_folder_without_a_description_is_refused(tmp_path, runners):
    assert refusal(load_export, tmp_path / "none") == f"{tmp_path}/none/model.json: no such file"
    assert refusal(load_export, export_folder(tmp_path, "{")).startswith(
        f"{tmp_path}/export/model.json: not valid JSON ("
    )
    assert runners[0] == []


def test_the_description_may_be_one_mebibyte_and_no_more(tmp_path, runners):
    made, _ = runners
    base = model_json()
    pad = (1 << 20) - len(json.dumps({**base, "pad": ""}))
    text = json.dumps({**base, "pad": "x" * pad})
    assert len(text.encode()) == 1 << 20
    folder = export_folder(tmp_path, text)
    assert load_export(folder).contract == contract()
    export_folder(tmp_path, json.dumps({**base, "pad": "x" * (pad + 1)}))
    assert refusal(load_export, folder) == (
        f"{folder}/model.json: longer than a JSON file may be (1,048,576 bytes); refused unread"
    )
    assert len(made) == 1


# ---- load_export with the real ONNX runner: the file it names, checked by its digest


def test_the_real_onnx_runner_is_given_the_named_file_and_its_digest(tmp_path):
    pytest.importorskip("onnxruntime")
    folder = export_folder(tmp_path, model_json("onnx"))
    assert refusal(load_export, folder) == f"{folder}/model.onnx: no such file"
    (folder / "model.onnx").write_bytes(b"not the model's bytes")
    assert refusal(load_export, folder) == (
        f"{folder}/model.onnx: its sha256 is not the one recorded at export ({DIGEST}); the file "
        "was changed or damaged: export the run again"
    )
