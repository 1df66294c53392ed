"""Cross-validation folds and the per-run summaries, checked on datasets built in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lesionpaste.errors import LesionPasteError
from lesionpaste.train.metrics.auc import read_scores, write_scores
from lesionpaste.train.runs.folds import (
    DEFAULT_GROUP,
    fold_plan,
    groups_of,
    subset,
    summarise,
)
from lesionpaste.train.training.dataset import LoadedDataset

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate


def _dataset(ids: list[str], labels: list[int]) -> LoadedDataset:
    n = len(ids)
    return LoadedDataset(
        root=Path("."),
        meta={},
        images=np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1),
        labels=np.array(labels),
        twin_ids=list(ids),
        paths=[f"images/{i}.png" for i in ids],
    )


def _studies(count: int = 6, per: int = 3):
    ids, labels = [], []
    for s in range(count):
        for z in range(per):
            ids.append(f"study_{s:04d}_z{z:03d}")
            labels.append(1 if s % 2 else 0)
    return ids, labels


def test_folds_keep_each_study_on_one_side_and_train_only_on_other_studies():
    ids, labels = _studies()
    evaluation = _dataset(ids, labels)
    normals = [i for i, label in zip(ids, labels) if label == 0]
    synthetic = _dataset([i for i in normals for _ in range(2)], [0, 1] * len(normals))
    plan = fold_plan(evaluation, synthetic, 3, seed=0)
    assert len(plan) == 3
    groups = groups_of(ids, DEFAULT_GROUP)
    synth_groups = groups_of(synthetic.twin_ids, DEFAULT_GROUP)
    tested = np.zeros(len(ids), int)
    for train_rows, test_rows in plan:
        tested += test_rows
        held_out = set(groups[test_rows])
        assert held_out.isdisjoint(groups[~test_rows])  # no study straddles the split
        assert set(synth_groups[train_rows]).isdisjoint(held_out)  # no twin of a test study
        assert set(synth_groups[~train_rows]) <= held_out
        assert set(np.asarray(labels)[test_rows]) == {0, 1}  # stratified: both classes
    assert (tested == 1).all()  # every image tested exactly once
    again = fold_plan(evaluation, synthetic, 3, seed=0)
    for (a, b), (c, d) in zip(plan, again):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)


@pytest.mark.parametrize(
    "folds, twins, message",
    [(1, True, "at least 2 folds"), (7, True, "only 6 groups"), (3, False, "no synthetic twin")],
)
def test_impossible_fold_plans_are_refused(folds, twins, message):
    ids, labels = _studies()
    synthetic = _dataset(ids if twins else ["other_1", "other_1"], labels if twins else [0, 1])
    with pytest.raises(LesionPasteError, match=message):
        fold_plan(_dataset(ids, labels), synthetic, folds, seed=0)


def test_groups_and_a_bad_pattern():
    assert groups_of(["a_z001", "a-3", "b:z12", "plain"], DEFAULT_GROUP).tolist() == [
        "a", "a", "b", "plain"
    ]  # fmt: skip
    assert groups_of(["x1y"], r"^x\dy$").tolist() == ["x1y"]  # no group: the id itself
    with pytest.raises(LesionPasteError, match="not a regular expression"):
        groups_of(["a"], "(")


def test_subset_keeps_rows_aligned():
    data = _dataset(["a", "b", "c", "d"], [0, 1, 0, 1])
    part = subset(data, np.array([False, True, False, True]))
    assert part.twin_ids == ["b", "d"] and part.labels.tolist() == [1, 1]
    assert part.paths == ["images/b.png", "images/d.png"] and part.images[:, 0, 0, 0].tolist() == [
        1,
        3,
    ]
    assert part.masks is None and part.n_lesions is None and part.tiers is None
    data.masks = np.arange(4, dtype=np.uint8).reshape(4, 1, 1)
    data.n_lesions, data.tiers = np.array([0, 7, 0, 60]), np.array([0, 1, 0, 3])
    part = subset(data, np.array([False, True, False, True]))
    assert part.masks[:, 0, 0].tolist() == [1, 3]
    assert part.n_lesions.tolist() == [7, 60] and part.tiers.tolist() == [1, 3]


def test_summarise_gives_mean_and_sample_spread_over_the_folds_that_have_each_auc():
    per_fold = [
        {"auc": {"0v1": {"auc": 0.6}, "0vall": {"auc": 0.7}}},
        {"auc": {"0v1": {"auc": 0.8}}},
        {"auc": {"0v1": {"auc": 0.7}, "0vall": {"auc": 0.9}}},
    ]
    s = summarise(per_fold)
    assert s["0v1"] == {"mean": pytest.approx(0.7), "std": pytest.approx(0.1), "folds": 3}
    assert s["0vall"]["folds"] == 2 and s["0vall"]["mean"] == pytest.approx(0.8)
    assert s["0vall"]["std"] == pytest.approx(np.std([0.7, 0.9], ddof=1))
    assert summarise([{"auc": {"0v1": {"auc": 0.5}}}])["0v1"]["std"] == 0.0


def test_scores_round_trip_with_any_path(tmp_path):
    paths = ["images/a,b.png", 'images/say "hi".png', "images/é.png"]
    write_scores(tmp_path / "s.csv", paths, np.array([0, 1, 2]), np.array([0.1, 0.25, 1 / 3]))
    back_paths, labels, scores = read_scores(tmp_path / "s.csv")
    assert back_paths == paths and labels.tolist() == [0, 1, 2]
    np.testing.assert_allclose(scores, [0.1, 0.25, 1 / 3], rtol=1e-7)
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError):
        read_scores(tmp_path / "bad.csv")


def test_groups_come_from_eyepacs_and_mosmed_ids():
    ids = ["10007_left", "10007_right", "study_0255_z012", "IDRiD_03", "patient 1 (1)"]
    assert groups_of(ids, r"^(.*?)(?:_(?:left|right))?$").tolist()[:2] == ["10007", "10007"]
    from lesionpaste.train.runs.folds import DEFAULT_GROUP

    assert groups_of(["study_0255_z012", "study_0255_z013"], DEFAULT_GROUP).tolist() == [
        "study_0255",
        "study_0255",
    ]
