"""A detector's input contract: everything needed to prepare a raw image exactly as its training
images were prepared, and to read its score, without the training dataset at hand.

``lp-train`` writes it into the run (``contract.json``), ``lp-export`` into ``model.json``;
``lp-predict`` and ``lesionpaste.load_detector`` read it. It holds the preparation (modality, the
recipe with its parameters, field of view, output size, colour), the network's input
(side and normalisation), the image-score rule and the synthetic thresholds. A contract read from
a file someone sent is checked value by value before use (types, finiteness, ranges).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from lesionpaste.errors import LesionPasteError
from lesionpaste.jsonfiles import read_json_file
from lesionpaste.preparation import Prepared, normals_recipe_from, prepare_file
from lesionpaste.recipes import GrahamRecipe, Recipe, WindowRecipe, recipe_from_dict, recipe_to_dict

CONTRACT_FORMAT = "lesionpaste-input-contract"
CONTRACT_VERSION = 1
#: a contract is a few kilobytes; a larger file is refused before parsing
MAX_CONTRACT_BYTES = 1 << 20
MODALITIES = ("fundus", "ct")
#: the image scores a detector may use (``train.metrics.image_scores.IMAGE_SCORES``)
IMAGE_SCORES = ("classifier", "map_max", "map_topk", "combined")
#: the synthetic thresholds, by the share of validation normals each lets pass
THRESHOLD_NAMES = ("pass_95", "pass_90")
#: the largest prepared or network side accepted from a file (a real one is 224 to 1024)
MAX_SIDE = 8192
#: what the two classes mean
CLASSES = {"0": "normal", "1": "anomalous (pasted lesions in training; disease in use)"}


@dataclass(frozen=True)
class Preparation:
    """How a raw image becomes what the detector was trained on (``lp-synth``'s preparation).

    Attributes:
        modality: ``"fundus"`` (colour photographs) or ``"ct"`` (axial slices).
        recipe: the recipe as ``recipe_to_dict`` records it (Graham's with its parameters, a
            CT window, or none).
        size: the prepared image's side in pixels (0: the source's own resolution).
    """

    modality: str
    recipe: dict
    size: int

    @property
    def channels(self) -> int:
        """Channels of a prepared image.

        Returns:
            3 (RGB) for fundus photographs, 1 for CT.
        """
        return 3 if self.modality == "fundus" else 1

    def recipe_object(self) -> Recipe:
        """The recipe as an object.

        Returns:
            The ``lesionpaste.recipes`` recipe.
        """
        return recipe_from_dict(self.recipe)

    def describe(self) -> dict:
        """The preparation in words and numbers, as contract files record it.

        Returns:
            ``{"modality", "recipe", "size", "channels", "colour", "field_of_view"}``.
        """
        return {
            "modality": self.modality,
            "recipe": dict(self.recipe),
            "size": self.size,
            "channels": self.channels,
            "colour": "RGB, 8 bits per channel"
            if self.modality == "fundus"
            else "grey, 8 bits (HU windowed by the recipe, or an 8-bit export as it is)",
            "field_of_view": _field_of_view(self),
        }

    def prepare(self, path: Path, slice_index: int | None = None) -> Prepared:
        """One raw file prepared by this contract (``lesionpaste.preparation.prepare_file``),
        refusing an image of the other modality.

        Args:
            path: an image file, a DICOM slice or a NIfTI volume.
            slice_index: the axial slice of a NIfTI volume, else None.

        Returns:
            The prepared image.

        Raises:
            LesionPasteError: an unreadable file, one of the other modality, or one that
                cannot be prepared this way.
        """
        return prepare_file(
            path, self.modality, self.recipe_object(), self.size, slice_index, strict_modality=True
        )


def _field_of_view(preparation: Preparation) -> str:
    if preparation.modality == "ct":
        return "the whole slice, resized to a square"
    blanked = isinstance(preparation.recipe_object(), GrahamRecipe)
    return (
        "the square around the fundus disc found in the photograph (padded with black where it "
        "leaves the photograph), resized"
        + (", pixels outside the disc blanked by Graham's recipe" if blanked else "")
    )


def preparation_of(meta: dict, where: object) -> Preparation:
    """The preparation a dataset's images had, from its ``dataset.json``.

    Args:
        meta: a parsed, checked ``dataset.json`` (synthetic or evaluation).
        where: the dataset, named in messages.

    Returns:
        The preparation.

    Raises:
        LesionPasteError: the dataset does not record its bank's modality and recipe, or its
            size.
    """
    bank, config = meta.get("bank"), meta.get("config")
    if not isinstance(bank, dict) or not isinstance(config, dict):
        raise LesionPasteError(f"{where}: dataset.json records no bank or configuration")
    window = config.get("normals_window")
    preprocess = config.get("normals_preprocess", "bank")
    bank_recipe = bank.get("preprocess") or {}
    odd_window = window and (not isinstance(window, list) or len(window) != 2)
    if odd_window or preprocess not in ("bank", "none") or not isinstance(bank_recipe, dict):
        raise LesionPasteError(f"{where}: dataset.json has a malformed recipe or window")
    try:
        recipe = normals_recipe_from(bank_recipe, preprocess, tuple(window) if window else None)
    except (TypeError, ValueError):
        raise LesionPasteError(f"{where}: dataset.json has a malformed recipe or window") from None
    except LesionPasteError as exc:
        raise LesionPasteError(f"{where}: dataset.json's bank recipe: {exc}") from None
    return check_preparation(
        {"modality": bank.get("modality"), "recipe": recipe_to_dict(recipe),
         "size": config.get("size")},
        where,
    )  # fmt: skip


def _number(value: object, what: str, where: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LesionPasteError(f"{where}: {what} is {value!r}, not a number")
    if not math.isfinite(value) or not low <= value <= high:
        raise LesionPasteError(f"{where}: {what} is {value!r}, outside [{low}, {high}]")
    return float(value)


def _count(value: object, what: str, where: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise LesionPasteError(
            f"{where}: {what} is {value!r}, not a whole number in [{low}, {high}]"
        )
    return value


def check_preparation(data: object, where: object) -> Preparation:
    """A preparation read from a file, checked before use.

    Args:
        data: ``{"modality", "recipe", "size", ...}`` as ``Preparation.describe`` writes it.
        where: the file, named in messages.

    Returns:
        The preparation.

    Raises:
        LesionPasteError: an unknown modality or recipe, a recipe value that is not a finite
            number, or a size out of range.
    """
    if not isinstance(data, dict):
        raise LesionPasteError(f"{where}: the preparation is not a JSON object")
    modality = data.get("modality")
    if modality not in MODALITIES:
        raise LesionPasteError(f"{where}: unknown modality {modality!r} (known: fundus, ct)")
    recipe = data.get("recipe")
    if not isinstance(recipe, dict):
        raise LesionPasteError(f"{where}: the recipe is not a JSON object")
    for key, value in recipe.items():
        if key != "name":
            _number(value, f"the recipe's {key}", where, -1e6, 1e6)
    parsed = recipe_from_dict(recipe)
    if modality == "fundus" and isinstance(parsed, WindowRecipe):
        raise LesionPasteError(f"{where}: a CT window for fundus photographs")
    size = _count(data.get("size"), "the prepared size", where, 0, MAX_SIDE)
    return Preparation(modality, recipe_to_dict(parsed), size)


@dataclass(frozen=True)
class InputContract:
    """What a detector takes and what its score means.

    Attributes:
        preparation: how a raw image is prepared.
        input_size: the network's input side (a prepared image of another side is resized,
            bilinear with antialiasing).
        mean: per-channel mean of ``[0, 1]`` pixels subtracted before the network (RGB).
        std: per-channel standard deviation they are divided by.
        image_score: the image score (``IMAGE_SCORES``): the classifier's probability, or a
            map-based score for a run trained with ``--maps``.
        thresholds: ``{"pass_95", "pass_90"}``: the scores letting 95% and 90% of the
            synthetic validation normals pass (an image is flagged when its score is above),
            or empty for a run without them.
        n_normals: how many validation normals the thresholds come from (0 without them).
        arch: the network's architecture.
        maps: whether the detector gives an anomaly map.
        map_threshold: the map's pixel threshold chosen on the validation pairs, or None.
    """

    preparation: Preparation
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    image_score: str = "classifier"
    thresholds: dict[str, float] = field(default_factory=dict)
    n_normals: int = 0
    arch: str = ""
    maps: bool = False
    map_threshold: float | None = None

    def to_dict(self) -> dict:
        """The contract as a file records it.

        Returns:
            The JSON-ready dict of ``contract.json`` (and of ``model.json``'s ``contract``).
        """
        return {
            "format": CONTRACT_FORMAT,
            "schema_version": CONTRACT_VERSION,
            "preparation": self.preparation.describe(),
            "network_input": {
                "size": self.input_size,
                "resize": "bilinear with antialiasing, when the prepared side differs",
                "layout": "RGB; a grey image's channel repeated three times",
                "mean": list(self.mean),
                "std": list(self.std),
                "scale": "pixels / 255, then (x - mean) / std",
            },
            "arch": self.arch,
            "classes": CLASSES,
            "image_score": self.image_score,
            "maps": self.maps,
            "map_threshold": self.map_threshold,
            "thresholds": dict(self.thresholds),
            "n_normals": self.n_normals,
            "flagged": "score > threshold",
        }


def check_thresholds(data: object, where: object) -> tuple[dict[str, float], int]:
    """Synthetic thresholds read from a file (``thresholds.json`` or a contract), checked.

    Args:
        data: ``{"pass_95", "pass_90", "n_normals", ...}``.
        where: the file, named in messages.

    Returns:
        ``({"pass_95": t95, "pass_90": t90}, n_normals)``.

    Raises:
        LesionPasteError: a threshold that is not a finite number in [0, 1] (scores are
            probabilities), ``pass_90`` above ``pass_95``, or a count of normals below 1.
    """
    if not isinstance(data, dict):
        raise LesionPasteError(f"{where}: the thresholds are not a JSON object")
    values = {name: _number(data.get(name), name, where, 0.0, 1.0) for name in THRESHOLD_NAMES}
    if values["pass_90"] > values["pass_95"]:
        raise LesionPasteError(
            f"{where}: pass_90 ({values['pass_90']}) is above pass_95 ({values['pass_95']}); "
            "letting fewer normals pass needs a higher threshold"
        )
    n = _count(data.get("n_normals"), "n_normals", where, 1, 10**9)
    return values, n


def contract_from_dict(data: object, where: object) -> InputContract:
    """A contract read from a file someone may have sent, checked value by value.

    Args:
        data: the parsed ``contract.json`` (or ``model.json``'s ``contract``).
        where: the file, named in messages.

    Returns:
        The contract.

    Raises:
        LesionPasteError: another format or schema version, or any value of the wrong type,
            not finite, or out of range.
    """
    if not isinstance(data, dict):
        raise LesionPasteError(f"{where}: not a JSON object")
    if data.get("format") != CONTRACT_FORMAT:
        raise LesionPasteError(f"{where}: not an input contract (format {data.get('format')!r})")
    version = data.get("schema_version")
    if isinstance(version, bool) or version != CONTRACT_VERSION:
        raise LesionPasteError(
            f"{where}: input contract schema version {version!r} is not "
            f"known to this version (it reads {CONTRACT_VERSION}); update LesionPaste"
        )
    preparation = check_preparation(data.get("preparation"), where)
    network = data.get("network_input")
    if not isinstance(network, dict):
        raise LesionPasteError(f"{where}: network_input is not a JSON object")
    size = _count(network.get("size"), "the network's input size", where, 8, MAX_SIDE)
    stats = []
    for name, low in (("mean", -10.0), ("std", 1e-6)):
        values = network.get(name)
        if not isinstance(values, list) or len(values) != 3:
            raise LesionPasteError(f"{where}: network_input.{name} is not three numbers")
        stats.append(tuple(_number(v, f"network_input.{name}", where, low, 10.0) for v in values))
    score = data.get("image_score")
    if score not in IMAGE_SCORES:
        raise LesionPasteError(f"{where}: unknown image_score {score!r}")
    maps = data.get("maps")
    if not isinstance(maps, bool):
        raise LesionPasteError(f"{where}: maps is {maps!r}, not true or false")
    if score != "classifier" and not maps:
        raise LesionPasteError(f"{where}: image_score {score} needs a detector with maps")
    thresholds, n_normals = {}, 0
    if data.get("thresholds"):
        thresholds, n_normals = check_thresholds(
            {**data["thresholds"], "n_normals": data.get("n_normals")}
            if isinstance(data["thresholds"], dict)
            else data["thresholds"],
            where,
        )
    map_threshold = data.get("map_threshold")
    if map_threshold is not None:
        map_threshold = _number(map_threshold, "map_threshold", where, 0.0, 1.0)
    arch = data.get("arch", "")
    if not isinstance(arch, str) or len(arch) > 64:
        raise LesionPasteError(f"{where}: arch is not a short name")
    return InputContract(
        preparation, size, stats[0], stats[1], score, thresholds, n_normals, arch, maps,
        map_threshold,
    )  # fmt: skip


def read_contract(path: Path) -> InputContract:
    """``contract.json`` (or a file holding one), through the safe JSON reader, checked.

    Args:
        path: the contract file.

    Returns:
        The contract.

    Raises:
        LesionPasteError: missing, oversized, not JSON, nested absurdly deep, or any value
            wrong (``contract_from_dict``).
    """
    return contract_from_dict(read_json_file(path, MAX_CONTRACT_BYTES), path)
