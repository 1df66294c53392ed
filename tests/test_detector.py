"""A trained detector (train/deploy/detector.py) around a stand-in scorer: the batches the scorer
is given, the image score the contract chose, the flag at each synthetic threshold at its exact
edge, the refusal of images the contract does not take, the digest computed once when asked, and
``predict`` preparing and scoring a batch of files at a time. No model is trained or loaded:
image ``i`` is a uniform image of pixel value ``i`` and the scorer looks its outputs up in tables.
End to end (a real run and an export) is in test_predict.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from lesionpaste.contract import InputContract, Preparation
from lesionpaste.errors import LesionPasteError
from lesionpaste.train.deploy.detector import Detector, Scored
from tests.conftest import refusal, synthetic_fundus, write_rgb
from tests.test_contract import CT, contract

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate

SOURCE = Path("runs", "r1")


def tagged(n: int, channels: int = 3, side: int = 2) -> np.ndarray:
    """``n`` prepared images, image ``i`` all of pixel value ``i``."""
    return np.broadcast_to(
        np.arange(n, dtype=np.uint8)[:, None, None, None], (n, side, side, channels)
    ).copy()


class TableScorer:
    """A stand-in model: image ``i`` has probability ``probs[i]`` and map ``maps[i]`` (or no
    map); it records the images of each batch it is given."""

    def __init__(self, probs, maps=None):
        self.probs, self.maps = np.asarray(probs), maps
        self.batches: list[np.ndarray] = []

    def __call__(self, images: np.ndarray):
        self.batches.append(images.copy())
        tags = images[:, 0, 0, 0].astype(int)
        return self.probs[tags], None if self.maps is None else self.maps[tags]


def detector(scorer, **changes) -> Detector:
    return Detector(contract(**changes), scorer, SOURCE, "run", "ab" * 32)


def classifier(**changes) -> dict:
    """A contract without maps, scored by the classifier's probability."""
    return {"image_score": "classifier", "maps": False, "map_threshold": None, **changes}


# ---- score: batches


@pytest.mark.parametrize(
    "n, sizes",
    [(0, []), (1, [1]), (31, [31]), (32, [32]), (33, [32, 1]), (64, [32, 32]),
     (65, [32, 32, 1])],
)  # fmt: skip
def test_images_are_scored_32_at_a_time_in_order(n, sizes):
    probs = np.random.default_rng(0).uniform(0, 1, 256)
    scorer = TableScorer(probs)
    images = tagged(n)
    got = detector(scorer, **classifier()).score(images)
    assert [len(b) for b in scorer.batches] == sizes
    starts = np.cumsum([0, *sizes])
    for batch, start, size in zip(scorer.batches, starts, sizes):
        assert batch.dtype == np.uint8 and np.array_equal(batch, images[start : start + size])
    assert np.array_equal(got.probabilities, probs[:n]) and np.array_equal(got.scores, probs[:n])
    assert got.maps is None
    assert set(got.flagged) == {"pass_95", "pass_90"}
    assert np.array_equal(got.flagged["pass_95"], probs[:n] > 0.8)
    assert np.array_equal(got.flagged["pass_90"], probs[:n] > 0.6)


def test_no_image_scores_to_empty_arrays_without_calling_the_scorer():
    scorer = TableScorer(np.zeros(1), np.zeros((1, 3, 3)))
    got = detector(scorer).score(np.zeros((0, 5, 5, 3), np.uint8))  # a contract with maps
    assert scorer.batches == []
    assert got.scores.shape == got.probabilities.shape == (0,)
    assert got.probabilities.dtype == np.float32 and got.maps is None
    assert {k: (v.shape, v.dtype) for k, v in got.flagged.items()} == {
        "pass_95": ((0,), np.bool_),
        "pass_90": ((0,), np.bool_),
    }


def test_a_list_of_images_is_scored_as_their_array():
    probs = np.array([0.1, 0.9, 0.7])
    scorer = TableScorer(probs)
    got = detector(scorer, **classifier()).score(list(tagged(3)))
    assert np.array_equal(scorer.batches[0], tagged(3))
    assert np.array_equal(got.scores, probs)


# ---- score: the image score and the maps


def _maps_case(n: int = 40):
    """Probabilities and 15x15 maps for ``n`` images (225 pixels: the top 1% is the 2 highest),
    with each map's two highest pixels placed by hand above a background below 0.5; returns
    them with each image's map maximum and the mean of its two highest pixels."""
    rng = np.random.default_rng(3)
    probs = rng.uniform(0, 1, n).astype(np.float32)
    maps = rng.uniform(0, 0.5, (n, 15, 15)).astype(np.float32)
    highest = rng.uniform(0.6, 1, n).astype(np.float32)
    second = (0.5 + (highest - 0.5) * rng.uniform(0.1, 0.9, n)).astype(np.float32)
    for i in range(n):
        maps[i, i % 15, 3] = highest[i]
        maps[i, 7, (i + 5) % 15] = second[i]
    highest, second = highest.astype(np.float64), second.astype(np.float64)
    return probs, maps, highest, (highest + second) / 2


@pytest.mark.parametrize("image_score", ["classifier", "map_max", "map_topk", "combined"])
def test_the_image_score_is_the_one_the_contract_chose(image_score):
    probs, maps, maximum, top = _maps_case()
    p64 = probs.astype(np.float64)
    expected = {"classifier": p64, "map_max": maximum, "map_topk": top,
                "combined": (p64 + top) / 2}[image_score]  # fmt: skip
    scorer = TableScorer(probs, maps)
    got = detector(scorer, image_score=image_score).score(tagged(40))
    assert [len(b) for b in scorer.batches] == [32, 8]
    assert np.array_equal(got.probabilities, probs)
    assert got.maps.shape == (40, 15, 15) and np.array_equal(got.maps, maps)
    assert np.allclose(got.scores, expected, rtol=0, atol=1e-12)
    for name, t in (("pass_95", 0.8), ("pass_90", 0.6)):  # the image score is flagged
        assert np.array_equal(got.flagged[name], expected > t)


def test_flags_are_on_the_map_score_when_the_probability_says_otherwise():
    probs = np.array([0.1, 0.95], np.float32)
    maps = np.array([np.full((2, 2), 0.9), np.full((2, 2), 0.2)], np.float32)
    got = detector(TableScorer(probs, maps), image_score="map_max").score(tagged(2))
    assert np.allclose(got.scores, [0.9, 0.2])
    assert got.flagged["pass_95"].tolist() == [True, False]
    assert got.flagged["pass_90"].tolist() == [True, False]


# ---- score: the flags at their thresholds


def test_a_score_equal_to_a_threshold_is_not_flagged_one_ulp_above_is():
    t95, t90 = 0.75, 0.5
    up, down = np.nextafter(t90, 1.0), np.nextafter(t90, 0.0)
    probs = np.array([t90, up, down, t95, np.nextafter(t95, 1.0), 0.6, 0.0, 1.0])
    thresholds = {"pass_95": t95, "pass_90": t90}
    got = detector(TableScorer(probs), **classifier(thresholds=thresholds)).score(tagged(8))
    assert got.flagged["pass_90"].tolist() == [False, True, False, True, True, True, False, True]
    assert got.flagged["pass_95"].tolist() == [False, False, False, False, True, False, False,
                                               True]  # fmt: skip
    assert all(v.dtype == np.bool_ for v in got.flagged.values())


def test_a_contract_without_thresholds_flags_nothing():
    got = detector(TableScorer([0.2, 0.9]), **classifier(thresholds={}, n_normals=0)).score(
        tagged(2)
    )
    assert got.flagged == {} and np.array_equal(got.scores, [0.2, 0.9])


# ---- score: refusals


@pytest.mark.parametrize(
    "images, shown",
    [
        (np.zeros((2, 4, 4, 3), np.float32), "(2, 4, 4, 3) (float32)"),
        (np.zeros((2, 4, 4, 3), np.int64), "(2, 4, 4, 3) (int64)"),
        (np.zeros((4, 4, 3), np.uint8), "(4, 4, 3) (uint8)"),
        (np.zeros((1, 2, 4, 4, 3), np.uint8), "(1, 2, 4, 4, 3) (uint8)"),
        (np.zeros((2, 4, 4, 1), np.uint8), "(2, 4, 4, 1) (uint8)"),
        (np.zeros((0, 4, 4, 4), np.uint8), "(0, 4, 4, 4) (uint8)"),
        ([[[[1.5, 2, 3]]]], "(1, 1, 1, 3) (float64)"),
    ],
)
def test_images_the_contract_does_not_take_are_refused_unscored(images, shown):
    scorer = TableScorer(np.zeros(256))
    message = refusal(detector(scorer).score, images)
    assert message == (
        f"images of shape {shown}: the detector takes (N, S, S, 3) uint8 images prepared by "
        "its contract"
    )
    assert scorer.batches == []


def test_a_grey_contract_takes_one_channel_and_refuses_three():
    scorer = TableScorer(np.array([0.25, 0.5, 0.75]))
    grey = detector(scorer, **classifier(preparation=CT))
    assert np.array_equal(grey.score(tagged(3, channels=1, side=3)).scores, [0.25, 0.5, 0.75])
    assert refusal(grey.score, tagged(3, channels=3, side=1)) == (
        "images of shape (3, 1, 1, 3) (uint8): the detector takes (N, S, S, 1) uint8 images "
        "prepared by its contract"
    )
    assert len(scorer.batches) == 1


# ---- the detector's record


def test_the_detector_keeps_its_contract_source_and_kind():
    made = contract()
    found = Detector(made, TableScorer([0.5]), SOURCE, "onnx", "cd" * 32)
    assert (found.contract, found.source, found.kind) == (made, SOURCE, "onnx")
    assert found.model_sha256 == "cd" * 32 and found.model_sha256 == "cd" * 32


def test_the_digest_is_computed_once_when_first_asked():
    calls = []

    def digest() -> str:
        calls.append(1)
        return "ef" * 32

    found = Detector(contract(), TableScorer([0.5]), SOURCE, "run", digest)
    found.score(tagged(1))
    assert calls == []  # not at construction, nor to score
    assert found.model_sha256 == "ef" * 32
    assert found.model_sha256 == "ef" * 32
    assert calls == [1]


# ---- predict


@dataclasses.dataclass(frozen=True)
class TaggedPreparation:
    """A stand-in preparation: the file ``.../<i>.png`` is prepared to image ``i``; each call
    is logged (with the scorer's batches) to show that a batch is prepared at a time."""

    channels: int
    log: list

    def prepare(self, path):
        assert isinstance(path, Path), path
        self.log.append(("prepare", int(path.stem)))
        return SimpleNamespace(image=np.full((2, 2, self.channels), int(path.stem), np.uint8))


class LoggingScorer(TableScorer):
    def __init__(self, log: list, probs, maps=None):
        super().__init__(probs, maps)
        self.log = log

    def __call__(self, images: np.ndarray):
        self.log.append(("score", images[:, 0, 0, 0].tolist()))
        return super().__call__(images)


def predicting(n_probs: int, with_maps: bool, channels: int = 3, **changes):
    """A detector over the stand-in preparation, its log, and the scorer's tables: probability
    ``i / 200`` and a 2x2 map whose highest pixel is ``(i + 100) / 400``."""
    log: list = []
    i = np.arange(n_probs)
    probs = i / 200
    low = np.zeros((n_probs, 2, 2))
    low[:, 1, 0] = (i + 100) / 400
    low[:, 0, 1] = (i + 50) / 400
    scorer = LoggingScorer(log, probs, low if with_maps else None)
    base = contract(**changes)
    made = dataclasses.replace(base, preparation=TaggedPreparation(channels, log))
    return Detector(made, scorer, SOURCE, "run", "ab" * 32), log, probs, low


def _prepared_then_scored(sizes: list[int]) -> list:
    log, start = [], 0
    for size in sizes:
        log += [("prepare", k) for k in range(start, start + size)]
        log.append(("score", list(range(start, start + size))))
        start += size
    return log


@pytest.mark.parametrize("n, sizes", [(1, [1]), (32, [32]), (33, [32, 1]), (70, [32, 32, 6])])
def test_predict_prepares_and_scores_a_batch_of_files_at_a_time(n, sizes):
    found, log, probs, low = predicting(70, with_maps=True, image_score="map_max",
                                        thresholds={"pass_95": 0.35, "pass_90": 0.3})  # fmt: skip
    paths = [str(Path("in", f"{k}.png")) for k in range(n)]
    got = found.predict(iter(paths))
    assert log == _prepared_then_scored(sizes)
    expected = (np.arange(n) + 100) / 400  # each image's map maximum
    assert isinstance(got, Scored)
    assert np.array_equal(got.scores, expected)
    assert np.array_equal(got.probabilities, probs[:n])
    assert np.array_equal(got.maps, low[:n])
    assert set(got.flagged) == {"pass_95", "pass_90"}
    assert np.array_equal(got.flagged["pass_95"], expected > 0.35)  # from image 41 on
    assert np.array_equal(got.flagged["pass_90"], expected > 0.3)  # from image 21 on


def test_predict_without_maps_gives_no_maps_and_the_probabilities_as_scores():
    thresholds = {"pass_95": 0.15, "pass_90": 0.1}  # image i scores i / 200
    found, log, probs, _ = predicting(40, with_maps=False, **classifier(thresholds=thresholds))
    got = found.predict([Path("in", f"{k}.png") for k in range(40)])
    assert log == _prepared_then_scored([32, 8])
    assert got.maps is None
    assert np.array_equal(got.scores, probs) and np.array_equal(got.probabilities, probs)
    assert got.flagged["pass_95"].tolist() == [False] * 31 + [True] * 9
    assert got.flagged["pass_90"].tolist() == [False] * 21 + [True] * 19


@pytest.mark.parametrize("channels", [3, 1])
def test_predict_of_no_file_is_empty_without_preparing_or_scoring(channels):
    found, log, _, _ = predicting(1, with_maps=True, channels=channels)
    got = found.predict([])
    assert log == []
    assert got.scores.shape == got.probabilities.shape == (0,) and got.maps is None
    assert {k: v.shape for k, v in got.flagged.items()} == {"pass_95": (0,), "pass_90": (0,)}


def test_a_file_that_cannot_be_prepared_stops_predict_with_its_error():
    class Refusing:
        channels = 3

        def prepare(self, path):
            raise LesionPasteError(f"{path}: not a fundus photograph")

    made = dataclasses.replace(contract(), preparation=Refusing())
    found = Detector(made, TableScorer([0.5]), SOURCE, "run", "ab" * 32)
    assert refusal(found.predict, ["a/0.png"]) == "a/0.png: not a fundus photograph"


def test_files_of_different_sizes_under_a_size_0_contract_are_scored_by_shape(tmp_path):
    """A ``--size 0`` contract keeps each file's resolution: each run of one shape is one batch,
    in order; maps of different sizes cannot be one array and are refused in one line."""
    sides = [(120, 160, 55), (120, 160, 55), (150, 200, 70), (120, 160, 55)]
    paths = [
        write_rgb(tmp_path / f"{k}.png", synthetic_fundus(*side)) for k, side in enumerate(sides)
    ]
    made = InputContract(Preparation("fundus", {"name": "none"}, 0), 32, (0.5,) * 3, (0.5,) * 3)
    seen = []

    def mean(images):
        seen.append(images.shape[:3])
        return images.reshape(len(images), -1).mean(axis=1) / 255, None

    got = Detector(made, mean, SOURCE, "run", "ab" * 32).predict(paths)
    prepared = [made.preparation.prepare(p).image for p in paths]
    assert [s[0] for s in seen] == [2, 1, 1] and seen[0][1:] != seen[1][1:]
    expected = [image.mean() / 255 for image in prepared]
    np.testing.assert_allclose(got.scores, expected)

    def with_maps(images):
        return mean(images)[0], np.zeros((len(images), *images.shape[1:3]), np.float32)

    assert refusal(Detector(made, with_maps, SOURCE, "run", "ab" * 32).predict, paths) == (
        "images of different sizes (the contract keeps each file's resolution) give maps of "
        "different sizes: predict them one at a time"
    )
