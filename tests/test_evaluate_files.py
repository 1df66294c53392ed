"""The evaluation's files: scores.csv round trips any path and refuses another form with one
line; metrics JSON is sorted, indented and ends with a newline."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lesionpaste.errors import LesionPasteError
from train.evaluate import read_scores, write_metrics, write_scores

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
