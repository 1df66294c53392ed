"""The input contract (lesionpaste/contract.py) value by value: a valid contract is read back
as written, then each field is damaged in turn and refused with the file and the field named.
End to end (lp-train writing it, lp-predict reading it) is in test_predict.py."""

from __future__ import annotations

import json
import math

import pytest

from lesionpaste.contract import (
    CLASSES,
    MAX_CONTRACT_BYTES,
    InputContract,
    Preparation,
    check_preparation,
    check_thresholds,
    contract_from_dict,
    preparation_of,
    read_contract,
)
from lesionpaste.errors import LesionPasteError
from lesionpaste.recipes import GrahamRecipe, NoRecipe, WindowRecipe, recipe_to_dict
from tests.conftest import DELETE, damaged

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate

FUNDUS = Preparation("fundus", recipe_to_dict(GrahamRecipe()), 512)
CT = Preparation("ct", recipe_to_dict(WindowRecipe()), 256)


def contract(**changes) -> InputContract:
    values = {
        "preparation": FUNDUS,
        "input_size": 224,
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "image_score": "map_max",
        "thresholds": {"pass_95": 0.8, "pass_90": 0.6},
        "n_normals": 40,
        "arch": "resnet18",
        "maps": True,
        "map_threshold": 0.3,
    }
    return InputContract(**{**values, **changes})


def test_a_preparation_describes_its_modality_channels_colour_and_field_of_view():
    fundus = FUNDUS.describe()
    assert fundus == {
        "modality": "fundus",
        "recipe": recipe_to_dict(GrahamRecipe()),
        "size": 512,
        "channels": 3,
        "colour": "RGB, 8 bits per channel",
        "field_of_view": "the square around the fundus disc found in the photograph (padded "
        "with black where it leaves the photograph), resized, pixels outside the disc blanked "
        "by Graham's recipe",
    }
    plain = Preparation("fundus", recipe_to_dict(NoRecipe()), 0).describe()
    assert plain["field_of_view"].endswith("leaves the photograph), resized")
    ct = CT.describe()
    assert (ct["channels"], ct["field_of_view"]) == (1, "the whole slice, resized to a square")
    assert ct["colour"] == "grey, 8 bits (HU windowed by the recipe, or an 8-bit export as it is)"
    assert CT.recipe_object() == WindowRecipe()
    # what describe gives is a copy: changing it leaves the (frozen) preparation as it was
    fundus["recipe"]["gain"] = 1.0
    assert (
        FUNDUS.recipe["gain"] == 4.0
        and contract().to_dict()["preparation"]["recipe"]["gain"] == 4.0
    )


def test_a_contract_is_read_back_as_written(tmp_path):
    for written in (contract(), contract(preparation=CT, image_score="classifier", maps=False,
                                         thresholds={}, n_normals=0, map_threshold=None)):  # fmt: skip
        data = written.to_dict()
        assert data["format"] == "lesionpaste-input-contract" and data["schema_version"] == 1
        assert data["flagged"] == "score > threshold" and data["classes"] == CLASSES
        assert data["network_input"]["mean"] == list(written.mean)
        assert data["network_input"]["scale"] == "pixels / 255, then (x - mean) / std"
        path = tmp_path / "contract.json"
        path.write_text(json.dumps(data))
        assert read_contract(path) == written
        assert contract_from_dict(json.loads(json.dumps(data)), "c.json") == written


def _damaged(path: tuple, value):
    return damaged(contract().to_dict(), path, value)


@pytest.mark.parametrize(
    "path, value, words",
    [
        (
            ("format",),
            "lesionpaste-dataset",
            "not an input contract (format 'lesionpaste-dataset')",
        ),
        (
            ("schema_version",),
            2,
            (
                "input contract schema version 2 is not known to this version "
                "(it reads 1); update LesionPaste"
            ),
        ),
        (("schema_version",), DELETE, "schema version None"),
        (("schema_version",), True, "schema version True"),  # equal to 1, but not a version
        (("preparation",), [], "the preparation is not a JSON object"),
        (("preparation", "modality"), "mri", "unknown modality 'mri' (known: fundus, ct)"),
        (("preparation", "recipe"), "graham", "the recipe is not a JSON object"),
        (("preparation", "recipe", "gain"), "4", "the recipe's gain is '4', not a number"),
        (("preparation", "recipe", "gain"), True, "the recipe's gain is True, not a number"),
        (
            ("preparation", "recipe", "gain"),
            1e300 * 1e300,
            ("the recipe's gain is inf, outside [-1000000.0, 1000000.0]"),
        ),
        (("preparation", "recipe", "gain"), 2e6, "the recipe's gain is 2000000.0, outside"),
        (
            ("preparation", "recipe"),
            recipe_to_dict(WindowRecipe()),
            ("a CT window for fundus photographs"),
        ),
        (("preparation", "size"), -1, "the prepared size is -1, not a whole number in [0, 8192]"),
        (("preparation", "size"), 8193, "the prepared size is 8193, not a whole number"),
        (("preparation", "size"), 5.0, "the prepared size is 5.0, not a whole number"),
        (("preparation", "size"), False, "the prepared size is False, not a whole number"),
        (("network_input",), None, "network_input is not a JSON object"),
        (
            ("network_input", "size"),
            7,
            ("the network's input size is 7, not a whole number in [8, 8192]"),
        ),
        (("network_input", "mean"), [0.5, 0.5], "network_input.mean is not three numbers"),
        (("network_input", "std"), "1,1,1", "network_input.std is not three numbers"),
        (
            ("network_input", "std"),
            [1.0, 0.0, 1.0],
            ("network_input.std is 0.0, outside [1e-06, 10.0]"),
        ),
        (
            ("network_input", "mean"),
            [0.5, -11.0, 0.5],
            ("network_input.mean is -11.0, outside [-10.0, 10.0]"),
        ),
        (("network_input", "mean"), [0.5, 10.5, 0.5], "network_input.mean is 10.5, outside"),
        (("image_score",), "mean", "unknown image_score 'mean'"),
        (("maps",), "yes", "maps is 'yes', not true or false"),
        (("maps",), False, "image_score map_max needs a detector with maps"),
        (("thresholds", "pass_95"), 1e300 * 1e300, "pass_95 is inf, outside [0.0, 1.0]"),
        (("thresholds", "pass_90"), -0.1, "pass_90 is -0.1, outside [0.0, 1.0]"),
        (
            ("thresholds", "pass_90"),
            0.9,
            (
                "pass_90 (0.9) is above pass_95 (0.8); letting fewer "
                "normals pass needs a higher threshold"
            ),
        ),
        (("thresholds",), [0.8, 0.6], "the thresholds are not a JSON object"),
        (("n_normals",), -3, "n_normals is -3, not a whole number in [1, 1000000000]"),
        (("n_normals",), 0, "n_normals is 0, not a whole number"),
        (("map_threshold",), 1.5, "map_threshold is 1.5, outside [0.0, 1.0]"),
        (("map_threshold",), "0.3", "map_threshold is '0.3', not a number"),
        (("arch",), 18, "arch is not a short name"),
        (("arch",), "r" * 65, "arch is not a short name"),
    ],
)
def test_each_damaged_value_is_refused_naming_the_file(path, value, words):
    data = _damaged(path, value)
    with pytest.raises(LesionPasteError) as caught:
        contract_from_dict(data, "sent/contract.json")
    message = str(caught.value)
    assert message.startswith("sent/contract.json: ") and words in message, message


def test_values_at_the_edges_of_their_ranges_are_accepted():
    data = _damaged(("preparation", "size"), 0)  # 0: the source's own resolution
    data["network_input"]["size"] = 8
    data["network_input"]["std"] = [1e-6, 10.0, 1.0]
    data["network_input"]["mean"] = [-10.0, 10.0, 0]
    data["thresholds"] = {"pass_95": 1.0, "pass_90": 1.0}
    data["n_normals"] = 1
    data["map_threshold"] = 0.0
    data["arch"] = "r" * 64
    read = contract_from_dict(data, "c")
    assert (read.preparation.size, read.input_size, read.n_normals) == (0, 8, 1)
    assert read.std == (1e-6, 10.0, 1.0) and read.mean == (-10.0, 10.0, 0.0)
    assert all(isinstance(v, float) for v in read.mean)
    assert read.thresholds == {"pass_95": 1.0, "pass_90": 1.0} and read.map_threshold == 0.0
    data["preparation"]["size"] = 8192
    data["network_input"]["size"] = 8192
    data["thresholds"] = {"pass_95": 0.0, "pass_90": 0.0}
    assert contract_from_dict(data, "c").input_size == 8192
    # no thresholds and no map threshold: a run without them
    data.pop("thresholds")
    data.pop("map_threshold")
    data.pop("arch")
    read = contract_from_dict(data, "c")
    assert (read.thresholds, read.n_normals, read.map_threshold, read.arch) == ({}, 0, None, "")


def test_thresholds_are_checked_as_thresholds_json_is():
    assert check_thresholds({"pass_95": 0.9, "pass_90": 0.5, "n_normals": 10**9}, "t") == (
        {"pass_95": 0.9, "pass_90": 0.5},
        10**9,
    )
    for data, words in (
        ({"pass_95": 0.9, "pass_90": 0.5, "n_normals": 10**9 + 1}, "n_normals is 1000000001"),
        ({"pass_95": 0.9, "pass_90": 0.5, "n_normals": True}, "n_normals is True"),
        ({"pass_95": 0.9, "n_normals": 4}, "pass_90 is None, not a number"),
        ({"pass_95": math.nan, "pass_90": 0.5, "n_normals": 4}, "pass_95 is nan, outside"),
        ("0.9", "the thresholds are not a JSON object"),
    ):
        with pytest.raises(LesionPasteError, match=f"^t: {words}"):
            check_thresholds(data, "t")


def test_a_preparation_is_rebuilt_with_its_recipe_checked():
    graham = {**recipe_to_dict(GrahamRecipe()), "gain": 3.0}
    read = check_preparation({"modality": "fundus", "recipe": graham, "size": 64}, "p")
    assert read == Preparation("fundus", graham, 64)
    ct = check_preparation({"modality": "ct", "recipe": recipe_to_dict(WindowRecipe()),
                            "size": 256}, "p")  # fmt: skip
    assert ct.channels == 1 and ct.recipe_object() == WindowRecipe()
    with pytest.raises(LesionPasteError, match="^p: unknown modality None"):
        check_preparation({"recipe": graham, "size": 64}, "p")
    with pytest.raises(LesionPasteError, match="^p: the prepared size is None"):
        check_preparation({"modality": "fundus", "recipe": graham}, "p")


def test_a_datasets_preparation_comes_from_its_bank_and_configuration():
    graham = recipe_to_dict(GrahamRecipe())
    meta = {"bank": {"modality": "fundus", "preprocess": graham},
            "config": {"size": 512, "normals_preprocess": "bank"}}  # fmt: skip
    assert preparation_of(meta, "d") == FUNDUS
    meta["config"]["normals_preprocess"] = "none"
    assert preparation_of(meta, "d").recipe == recipe_to_dict(NoRecipe())
    ct = {"bank": {"modality": "ct", "preprocess": recipe_to_dict(WindowRecipe())},
          "config": {"size": 256, "normals_window": [-600, 1500]}}  # fmt: skip
    assert preparation_of(ct, "d").recipe == recipe_to_dict(WindowRecipe(-600.0, 1500.0))
    for case, words in (
        ({"config": meta["config"]}, "dataset.json records no bank or configuration"),
        ({"bank": meta["bank"], "config": "x"}, "dataset.json records no bank or configuration"),
        (
            {**ct, "config": {"size": 256, "normals_window": [1]}},
            ("dataset.json has a malformed recipe or window"),
        ),
        (
            {**ct, "config": {"size": 256, "normals_window": [1, 2, 3]}},
            ("dataset.json has a malformed recipe or window"),
        ),
        (
            {**ct, "config": {"size": 256, "normals_window": "-600,1500"}},
            ("dataset.json has a malformed recipe or window"),
        ),
        (
            {**ct, "config": {"size": 256, "normals_window": ["a", 1]}},
            ("the recipe's level is 'a', not a number"),
        ),
        (
            {**meta, "config": {**meta["config"], "normals_preprocess": "graham"}},
            ("dataset.json has a malformed recipe or window"),
        ),
        (
            {"bank": {"modality": "fundus", "preprocess": "graham"}, "config": {"size": 64}},
            "dataset.json has a malformed recipe or window",
        ),
        (
            {
                "bank": {"modality": "fundus", "preprocess": {"name": ["graham"]}},
                "config": {"size": 64},
            },
            "dataset.json has a malformed recipe or window",
        ),
        (
            {"bank": {"modality": "fundus", "preprocess": {"name": "zzz"}}, "config": {"size": 64}},
            (
                r"dataset.json's bank recipe: unknown preprocessing recipe 'zzz' \(known: graham, "
                r"window, none\)$"
            ),
        ),
    ):
        with pytest.raises(LesionPasteError, match=f"^d: {words}"):
            preparation_of(case, "d")


def test_a_contract_file_goes_through_the_safe_reader(tmp_path):
    nested = tmp_path / "deep.json"
    nested.write_text("[" * 200_000 + "]" * 200_000)
    big = tmp_path / "big.json"
    big.write_text(" " * (MAX_CONTRACT_BYTES + 1))
    for path in (nested, big, tmp_path / "missing.json"):
        with pytest.raises(LesionPasteError, match=str(path.name)):
            read_contract(path)
    with pytest.raises(LesionPasteError, match="not a JSON object"):
        contract_from_dict([], "c")
    # a valid contract padded past 1 MiB is refused unread, by its size alone
    padded = tmp_path / "padded.json"
    padded.write_text(json.dumps(contract().to_dict()) + " " * MAX_CONTRACT_BYTES)
    with pytest.raises(LesionPasteError, match="longer than a JSON file may be"):
        read_contract(padded)
    # a damaged value is named with the file it came from
    sent = tmp_path / "damaged.json"
    sent.write_text(json.dumps(_damaged(("image_score",), "mean")))
    with pytest.raises(LesionPasteError, match=f"^{sent}: unknown image_score 'mean'$"):
        read_contract(sent)


def test_the_network_input_is_described_in_full():
    assert contract().to_dict()["network_input"] == {
        "size": 224,
        "resize": "bilinear with antialiasing, when the prepared side differs",
        "layout": "RGB; a grey image's channel repeated three times",
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "scale": "pixels / 255, then (x - mean) / std",
    }


def test_a_preparation_prepares_a_file_with_its_recipe_and_slice(tmp_path):
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    photo = np.zeros((120, 120, 3), np.uint8)
    cv2.circle(photo, (60, 60), 50, (90, 60, 30), -1)
    photo = np.clip(photo + rng.integers(0, 40, photo.shape), 0, 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "eye.png"), photo)
    graham = FUNDUS.prepare(tmp_path / "eye.png")
    plain = Preparation("fundus", recipe_to_dict(NoRecipe()), 512).prepare(tmp_path / "eye.png")
    assert graham.image.shape == plain.image.shape == (512, 512, 3)
    assert not np.array_equal(graham.image, plain.image)  # the recipe is applied
    nib = pytest.importorskip("nibabel")
    volume = rng.uniform(-1000, 400, (32, 32, 3)).astype(np.float32)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / "vol.nii.gz")
    slices = [CT.prepare(tmp_path / "vol.nii.gz", z).image for z in range(3)]
    assert not np.array_equal(slices[0], slices[2])  # the slice asked for, not another
    with pytest.raises(LesionPasteError, match="a CT file, where a colour fundus photograph"):
        FUNDUS.prepare(tmp_path / "vol.nii.gz", 0)  # strict: the other modality is refused
    grey = np.full((40, 40), 100, np.uint8)
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    with pytest.raises(LesionPasteError, match="a grey image"):
        FUNDUS.prepare(tmp_path / "grey.png")
