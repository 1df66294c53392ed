"""A trained detector: its input contract and a scorer (``train.deploy.loading.load_detector`` gives
one for a run or an export).

``.score(images)`` scores images already prepared; ``.predict(paths)`` reads and prepares raw
files by the contract first. The scores are those ``lp-eval`` gives: one scoring path
(``train.evaluation.evaluate_run.model_outputs``), the image score the run chose, and a flag at each synthetic
threshold. This module imports no torch: an ONNX export is scored through ONNX Runtime alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import numpy as np

from lesionpaste.contract import InputContract
from lesionpaste.errors import LesionPasteError
from lesionpaste.train.metrics.image_scores import image_scores

#: a scorer: ``(N, S, S, C)`` prepared ``uint8`` images -> class-1 probabilities and maps
Scorer = Callable[[np.ndarray], tuple[np.ndarray, "np.ndarray | None"]]
#: the most images scored in one forward pass
BATCH = 32


@dataclass
class Scored:
    """What a detector says of a batch of images.

    Attributes:
        scores: ``(N,)`` image scores (the contract's image score).
        probabilities: ``(N,)`` the classifier's probability of the anomalous class.
        maps: ``(N, h, w)`` map probabilities at the map's stride, or None.
        flagged: per synthetic threshold name, ``(N,)`` booleans: score above it.
    """

    scores: np.ndarray
    probabilities: np.ndarray
    maps: np.ndarray | None
    flagged: dict[str, np.ndarray]


class Detector:
    """A trained detector: its input contract and a scorer.

    Args:
        contract: how images are prepared and what the score means.
        scorer: the model, as a function of prepared ``uint8`` images.
        source: the run or export it was loaded from.
        kind: ``"run"``, ``"torchscript"`` or ``"onnx"``.
        model_sha256: the digest of the model's file (the run's checkpoint, or the export's
            model), which ``lp-predict`` records; or a function computing it when asked.
    """

    def __init__(
        self,
        contract: InputContract,
        scorer: Scorer,
        source: Path,
        kind: str,
        model_sha256: str | Callable[[], str],
    ):
        self.contract, self._scorer, self.source, self.kind = contract, scorer, source, kind
        self._digest = model_sha256

    @property
    def model_sha256(self) -> str:
        """The digest of the model's file, computed when first asked (a run's checkpoint is
        hashed only for what records it: ``lp-predict``).

        Returns:
            The hex sha256.
        """
        if callable(self._digest):
            self._digest = self._digest()
        return self._digest

    def score(self, images: np.ndarray) -> Scored:
        """Score images already prepared by the contract.

        Args:
            images: ``(N, S, S, C)`` ``uint8`` prepared images (``S`` the contract's size,
                ``C`` its channels).

        Returns:
            The scores, probabilities, maps and flags.

        Raises:
            LesionPasteError: images of another shape than the contract's.
        """
        images = np.asarray(images)
        p = self.contract.preparation
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != p.channels:
            raise LesionPasteError(
                f"images of shape {images.shape} ({images.dtype}): the detector takes (N, S, S, "
                f"{p.channels}) uint8 images prepared by its contract"
            )
        probabilities, maps = [], []
        for start in range(0, len(images), BATCH):
            prob, low = self._scorer(images[start : start + BATCH])
            probabilities.append(np.asarray(prob))
            maps.append(low)
        prob = np.concatenate(probabilities) if probabilities else np.zeros(0, np.float32)
        low = np.concatenate(maps) if maps and maps[0] is not None else None
        scores = prob if low is None else image_scores(prob, low)[self.contract.image_score]
        flagged = {name: scores > t for name, t in self.contract.thresholds.items()}
        return Scored(scores, prob, low, flagged)

    def score_by_shape(self, images: list[np.ndarray]) -> list[Scored]:
        """Score prepared images that may differ in size (a ``--size 0`` contract keeps each
        file's own resolution): each run of consecutive images of one shape is one batch.

        Args:
            images: prepared ``(S, S, C)`` ``uint8`` images.

        Returns:
            One ``Scored`` per run, in the order of ``images`` (none for no image).

        Raises:
            LesionPasteError: images the contract does not take.
        """
        runs = groupby(images, key=lambda image: image.shape)
        return [self.score(np.stack(list(run))) for _, run in runs]

    def predict(self, paths: Iterable[str | Path]) -> Scored:
        """Read raw image files, prepare each by the contract, and score them.

        Args:
            paths: image files (or DICOM slices) of the detector's modality.

        Returns:
            The scores, in the order of ``paths``.

        Raises:
            LesionPasteError: a file that cannot be read or prepared (of the other modality,
                say); ``lp-predict`` records and skips such files instead. Maps of files of
                different sizes (a ``--size 0`` contract): predict them one at a time.
        """
        paths = [Path(p) for p in paths]
        if not paths:
            return self.score(np.zeros((0, 1, 1, self.contract.preparation.channels), np.uint8))
        parts = []
        for start in range(0, len(paths), BATCH):  # a batch prepared at a time: flat memory
            chunk = paths[start : start + BATCH]
            images = [self.contract.preparation.prepare(p).image for p in chunk]
            parts.extend(self.score_by_shape(images))
        return joined(parts)


def joined(parts: list[Scored]) -> Scored:
    """The scores of several batches as one, in order.

    Args:
        parts: at least one batch's scores.

    Returns:
        Their concatenation.

    Raises:
        LesionPasteError: maps of different sizes (images of different sizes under a
            ``--size 0`` contract), which no single array holds.
    """
    maps = None
    if parts[0].maps is not None:
        if len({p.maps.shape[1:] for p in parts}) > 1:
            raise LesionPasteError(
                "images of different sizes (the contract keeps each file's resolution) give "
                "maps of different sizes: predict them one at a time"
            )
        maps = np.concatenate([p.maps for p in parts])
    return Scored(
        np.concatenate([p.scores for p in parts]),
        np.concatenate([p.probabilities for p in parts]),
        maps,
        {k: np.concatenate([p.flagged[k] for p in parts]) for k in parts[0].flagged},
    )
