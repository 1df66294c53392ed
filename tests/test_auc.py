"""The evaluation's files: scores.csv round trips any path and refuses another form with one
line; metrics JSON is sorted, indented and ends with a newline."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from lesionpaste.errors import LesionPasteError
from lesionpaste.train.metrics.auc import (
    compare,
    comparisons,
    metrics,
    read_scores,
    write_metrics,
    write_scores,
)

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate


def test_a_path_with_a_line_break_round_trips(tmp_path):
    paths = ["images/two\nlines.png", "images/cr\r.png", "images/plain.png"]
    write_scores(tmp_path / "s.csv", paths, np.array([0, 1, 0]), np.array([0.5, 0.75, 0.125]))
    back, labels, scores = read_scores(tmp_path / "s.csv")
    assert back == paths and labels.tolist() == [0, 1, 0] and scores.tolist() == [0.5, 0.75, 0.125]
    assert labels.dtype.kind == "i" and scores.dtype == np.float64


def test_scores_keep_eight_significant_digits(tmp_path):
    write_scores(tmp_path / "s.csv", ["a.png"], np.array([1]), np.array([0.123456789012]))
    assert (tmp_path / "s.csv").read_text(encoding="utf-8").splitlines() == [
        "path,label,score",
        "a.png,1,0.12345679",
    ]


def test_another_form_of_scores_file_is_refused_with_its_columns(tmp_path):
    (tmp_path / "bad.csv").write_text("path,score\na.png,0.5\n", encoding="utf-8")
    with pytest.raises(ValueError) as err:
        read_scores(tmp_path / "bad.csv")
    assert (
        str(err.value)
        == f"{tmp_path / 'bad.csv'}: columns ['path', 'score'] are not path,label,score"
    )
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(LesionPasteError) as err:
        read_scores(tmp_path / "dir.csv")
    assert str(err.value).endswith("a directory, where a scores file was expected")


@pytest.mark.parametrize("score", ["nan", "inf", "-inf", "NaN"])
def test_a_score_that_is_not_finite_is_refused(tmp_path, score):
    (tmp_path / "s.csv").write_text(f"path,label,score\na.png,0,0.5\nb.png,1,{score}\n")
    with pytest.raises(ValueError) as err:
        read_scores(tmp_path / "s.csv")
    assert str(err.value) == f"{tmp_path / 's.csv'}: a score that is not a finite number"


def test_metrics_are_written_sorted_indented_and_newline_terminated(tmp_path):
    result = {"b": {"z": 1, "a": 0.5}, "a": [1, 2]}
    out = tmp_path / "out"
    out.mkdir()
    write_metrics(out / "m.json", result)
    text = (out / "m.json").read_text(encoding="utf-8")
    assert json.loads(text) == result
    assert text.endswith("}\n") and text.index('"a"') < text.index('"b"')
    assert '\n  "a": [\n    1,' in text  # two-space indent
    assert [p.name for p in out.iterdir()] == ["m.json"]  # no temporary file left


def test_per_grade_comparisons_take_grade_zero_against_each_grade():
    labels = np.array([0, 0, 0, 1, 1, 2, 4])
    chosen = comparisons(labels)
    assert sorted(chosen) == ["0v1", "0v2", "0v4", "0vall"]
    np.testing.assert_array_equal(chosen["0v2"], [1, 1, 1, 0, 0, 1, 0])
    assert chosen["0vall"].all()
    assert sorted(comparisons(np.array([0, 1, 0, 1]))) == ["0v1"]


def test_per_grade_aucs_see_which_grade_is_detected():
    labels = np.array([0] * 20 + [1] * 10 + [2] * 10)
    rng = np.random.default_rng(6)
    scores = rng.normal(0, 1, 40) + 3.0 * (labels == 2)  # only grade 2 is detectable
    auc = metrics(scores, labels)["auc"]
    assert auc["0v2"]["auc"] > 0.9 and auc["0v1"]["auc"] < 0.75
    assert auc["0v1"]["n_pos"] == 10 and auc["0v1"]["n_neg"] == 20
    assert auc["0vall"]["n_pos"] == 20
    assert auc["0v2"]["auc"] == pytest.approx(roc_auc_score(labels[labels != 1] == 2,
                                                            scores[labels != 1]))  # fmt: skip
    pairs = compare(scores, -scores, labels)
    assert set(pairs) == set(auc) == {"0v1", "0v2", "0vall"}
    assert pairs["0v1"]["auc_a"] == pytest.approx(auc["0v1"]["auc"])
    assert pairs["0v2"]["z"] > 0 and pairs["0v2"]["auc_a"] == pytest.approx(auc["0v2"]["auc"])
