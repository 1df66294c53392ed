"""A run's configuration (``config.json``, and in every checkpoint): what ``lp-train`` was asked
to do, checked when built, and a saved one read back with the fields added since at their
defaults."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from lesionpaste.errors import LesionPasteError
from lesionpaste.jsonfiles import read_json_file


@dataclass
class TrainConfig:
    """The resolved configuration of a run (saved as ``config.json`` and in checkpoints)."""

    dataset: str
    arch: str = "vgg16"
    weights: str = "imagenet"
    epochs: int = 50
    batch_size: int = 64
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    size: int = 256
    seed: int = 0
    val_fraction: float = 0.1
    device: str = "auto"
    compile: bool = False
    dataset_sha256: str = ""
    supervised: bool = False
    #: a dense decoder learns the pasted masks (train/models/decoder.py)
    maps: bool = False
    #: the pixel loss's weight next to the image loss of eq. (2)
    map_weight: float = 1.0
    #: with maps: one of train/metrics/image_scores.py's IMAGE_SCORES, or auto
    image_score: str = "auto"
    #: the bank's source images: never evaluated on (lp-eval)
    bank_sources: list[str] = field(default_factory=list)
    #: the first stages kept frozen, their activations cached (train/training/frozen.py)
    freeze: int = 0
    #: twins of the validation normals with other lesions (train/training/heldout.py)
    heldout_val: str = ""
    #: that dataset's digest: a resume with another one is refused
    heldout_val_sha256: str = ""
    #: "", or the criterion (train/training/selection.py) whose best epoch is kept
    keep_best: str = ""

    def __post_init__(self) -> None:
        """Refuse a configuration that cannot train, with ``lp-train``'s one-line messages
        (the one place these rules live: the command line builds this and lets it say no).

        Raises:
            LesionPasteError: an unknown architecture or image score, epochs, batch size or
                learning rate that are not positive, a ``freeze`` outside the architecture's
                stages, a validation share outside [0, 1), ``maps`` with ``supervised``, or ``keep_best`` with an unknown
                criterion or ``heldout`` without a held-out set.
        """
        self._check_types()
        from lesionpaste.train.metrics.image_scores import IMAGE_SCORES
        from lesionpaste.train.models.backbones import backbone
        from lesionpaste.train.training.selection import CRITERIA

        stages = backbone(self.arch).n_stages
        if self.epochs < 1 or self.batch_size < 1 or not 0 < self.lr < float("inf"):
            raise LesionPasteError("--epochs, --batch-size and --lr must be positive")
        if self.freeze < 0:
            raise LesionPasteError("--freeze must be 0 (none) or a number of stages")
        if self.freeze >= stages:
            raise LesionPasteError(
                f"--freeze {self.freeze}: {self.arch} has {stages} stages; freeze 1 to "
                f"{stages - 1} of them (0: none)"
            )
        if self.size < 1:
            raise LesionPasteError("--size must be a positive number of pixels")
        if not 0 <= self.val_fraction < 1:
            raise LesionPasteError("--val-fraction must be at least 0 and below 1")
        if self.image_score not in ("auto", *IMAGE_SCORES):
            raise LesionPasteError(f"--image-score {self.image_score!r}: unknown")
        if self.maps and self.supervised:
            raise LesionPasteError("--maps learns the pasted masks: it needs a synthetic dataset")
        if self.keep_best not in ("", *CRITERIA):
            raise LesionPasteError(f"--keep-best {self.keep_best!r}: unknown criterion")
        if self.keep_best == "heldout" and not self.heldout_val:
            raise LesionPasteError("--keep-best heldout needs --heldout-val (the held-out pairs)")
        for name in ("momentum", "weight_decay", "map_weight"):
            if not 0 <= getattr(self, name) < math.inf:  # False for NaN
                raise LesionPasteError(f"--{name.replace('_', '-')} must be 0 or more")

    def _check_types(self) -> None:
        """Each field holds its declared type (a configuration read back from a file may not;
        the command line's options always do): ints are not bools, floats are numbers (their
        ranges, which NaN fails, are checked after), ``bank_sources`` is a list of strings."""
        for f in fields(self):
            value, kind = getattr(self, f.name), _TYPES[f.type]
            fine = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
            if f.type == "list[str]":
                fine = fine and all(isinstance(v, str) for v in value)
            if not fine:
                raise LesionPasteError(f"{f.name} is {str(value)[:40]!r}, not of type {f.type}")


#: what each field's declared type admits
_TYPES = {"str": str, "int": int, "float": (int, float), "bool": bool, "list[str]": list}


def with_defaults(saved: dict) -> dict | None:
    """A saved configuration with the fields added since it was saved at their defaults.

    Args:
        saved: a run's configuration as saved (``config.json`` or a checkpoint's).

    Returns:
        It as this version's ``TrainConfig`` dict, or None when it is not one (an unknown
        field, a missing dataset, a damaged value).
    """
    try:
        return asdict(saved_config(saved, "the saved configuration"))
    except LesionPasteError:
        return None


def saved_config(saved: object, where: object) -> TrainConfig:
    """A configuration as saved (parsed JSON), checked as one built from the command line is,
    with the fields added since it was saved at their defaults: the one place that turns a
    saved configuration back into a ``TrainConfig``.

    Args:
        saved: the parsed ``config.json`` (or a checkpoint's configuration).
        where: what it came from, named in the message.

    Returns:
        The configuration.

    Raises:
        LesionPasteError: naming ``where``: not an object, a field this version does not
            know, or a value of the wrong type or out of range.
    """
    if not isinstance(saved, dict):
        raise LesionPasteError(f"{where}: not a run configuration (a JSON object)")
    try:
        return TrainConfig(**saved)
    except TypeError as exc:  # an unknown field, or no dataset
        raise LesionPasteError(f"{where}: not a configuration of this version ({exc})") from None
    except LesionPasteError as exc:
        raise LesionPasteError(f"{where}: damaged: {exc}") from None


def read_config(path: Path) -> TrainConfig:
    """A run's ``config.json``, read through the core's safe JSON reader (size and depth
    limits) and checked (``saved_config``).

    Args:
        path: the ``config.json``.

    Returns:
        The configuration.

    Raises:
        LesionPasteError: naming the file: missing, not JSON, or not a configuration
            (``saved_config``).
    """
    return saved_config(read_json_file(path, 1 << 20), path)
