"""Operating points (train/metrics/operating_points.py): values counted by hand on small score sets,
checked against scikit-learn's ROC curve, their bootstrap intervals, the thresholds chosen on
synthetic validation normals only, and lp-train / lp-eval writing them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_curve

from lesionpaste.train.metrics.operating_points import (
    apply_thresholds,
    normal_quantile,
    operating_points,
    sensitivity_at_specificity,
    specificity_at_sensitivity,
    validation_thresholds,
)
from tests.test_train_cli import FAST, invoke
from tests.train_fixtures import graded, synthetic

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate

# 10 normals scored 1..10 and 10 anomalous images: counted by hand in each test
NORMALS = np.arange(1.0, 11.0)
ANOMALOUS = np.array([5.5, 6.5, 7.5, 8.5, 9.5, 10.5, 11.0, 12.0, 13.0, 14.0])
SCORES = np.concatenate([NORMALS, ANOMALOUS])
Y = np.array([0] * 10 + [1] * 10)


def test_sensitivity_at_specificity_counted_by_hand():
    # 90%: the 9th smallest normal (9) is the threshold; 9.5 ... 14 are above it: 6 of 10
    assert sensitivity_at_specificity(SCORES, Y, 0.90) == 0.6
    # 95%: ceil(9.5) = 10 normals must pass, so the threshold is 10; 10.5 ... 14: 5 of 10
    assert sensitivity_at_specificity(SCORES, Y, 0.95) == 0.5


def test_specificity_at_sensitivity_counted_by_hand():
    # 90%: 9 anomalous must be flagged: the threshold is below 6.5; normals 1..6 pass: 6 of 10
    assert specificity_at_sensitivity(SCORES, Y, 0.90) == 0.6
    # 95%: all 10: below 5.5; normals 1..5 pass
    assert specificity_at_sensitivity(SCORES, Y, 0.95) == 0.5


def test_the_operating_points_are_points_of_scikit_learns_roc_curve():
    rng = np.random.default_rng(0)
    for n_neg, n_pos in ((50, 40), (233, 71), (20, 300)):
        scores = np.concatenate([rng.normal(0, 1, n_neg), rng.normal(1, 1, n_pos)])
        y = np.array([0] * n_neg + [1] * n_pos)
        fpr, tpr, _ = roc_curve(y, scores, drop_intermediate=False)
        for target in (0.90, 0.95):
            best_sens = tpr[fpr <= 1 - target + 1e-12].max()
            assert sensitivity_at_specificity(scores, y, target) == pytest.approx(best_sens)
            best_spec = (1 - fpr[tpr >= target - 1e-12]).max()
            assert specificity_at_sensitivity(scores, y, target) == pytest.approx(best_spec)


def test_ties_at_the_threshold_pass():
    scores = np.array([1.0, 2.0, 2.0, 2.0, 3.0, 2.0, 2.5, 4.0])
    y = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    # 80% of 5 normals: the 4th smallest (2.0); the anomalous image at 2.0 is not above it
    assert normal_quantile(scores[y == 0], 0.8) == 2.0
    assert sensitivity_at_specificity(scores, y, 0.8) == pytest.approx(2 / 3)


def test_every_comparison_gets_intervals_that_hold_the_estimate_and_narrow_with_n():
    def width_and_check(n: int) -> float:
        rng = np.random.default_rng(n)
        labels = np.repeat([0, 1, 2], n)
        scores = rng.normal(labels * 0.8, 1.0)
        out = operating_points(scores, labels, 300, np.random.default_rng(1))
        assert set(out) == {"0v1", "0v2", "0vall"}
        assert out["0vall"]["n_pos"] == 2 * n and out["0vall"]["n_neg"] == n
        widths = []
        for name, entry in out.items():
            for key in ("sens_at_spec_90", "sens_at_spec_95", "spec_at_sens_90", "spec_at_sens_95"):
                e = entry[key]
                assert e["ci_low"] <= e["value"] <= e["ci_high"], (name, key, e)
                widths.append(e["ci_high"] - e["ci_low"])
        return float(np.mean(widths))

    assert width_and_check(1000) < 0.6 * width_and_check(100)


def test_the_bootstrap_is_seeded_and_refuses_no_resample():
    from lesionpaste.errors import LesionPasteError

    a = operating_points(SCORES, Y, 50, np.random.default_rng(3))
    b = operating_points(SCORES, Y, 50, np.random.default_rng(3))
    assert a == b
    with pytest.raises(LesionPasteError, match="positive whole number"):
        operating_points(SCORES, Y, 0, np.random.default_rng(3))


def test_validation_thresholds_come_from_the_normals_alone():
    normals = np.arange(1.0, 21.0)  # 20 normals: 19 pass at 19, 18 at 18
    labels = np.array([0] * 20 + [1] * 5)
    for anomalous in (np.zeros(5), np.full(5, 100.0)):
        t = validation_thresholds(np.concatenate([normals, anomalous]), labels)
        assert t == {"pass_95": 19.0, "pass_90": 18.0, "n_normals": 20}
    assert validation_thresholds(np.array([0.3, 0.4]), np.array([1, 1])) is None


def test_applied_thresholds_count_each_grade_by_hand():
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1, 2, 2])
    scores = np.array([0.1, 0.2, 0.35, 0.6, 0.2, 0.4, 0.55, 0.9, 0.1, 0.7])
    out = apply_thresholds(
        scores, labels, {"pass_95": 0.5, "pass_90": 0.3, "n_normals": 7}, 200,
        np.random.default_rng(0),
    )  # fmt: skip
    strict = out["pass_95"]  # flagged: score > 0.5
    assert {k: (v["n"], v["flagged"]) for k, v in strict["by_label"].items()} == {
        "0": (5, 1), "1": (3, 2), "2": (2, 1),
    }  # fmt: skip
    assert strict["sensitivity"]["value"] == 3 / 5 and strict["specificity"]["value"] == 4 / 5
    loose = out["pass_90"]  # flagged: score > 0.3
    assert {k: v["flagged"] for k, v in loose["by_label"].items()} == {"0": 2, "1": 3, "2": 1}
    assert loose["specificity"]["value"] == 3 / 5 and loose["sensitivity"]["value"] == 4 / 5
    for entry in (
        strict["sensitivity"],
        strict["specificity"],
        loose["by_label"]["1"]["flagged_share"],
    ):
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]
    assert out["n_validation_normals"] == 7


def test_a_normal_tied_with_the_bar_is_not_counted_as_passing():
    # flagging both anomalous images needs a threshold below 0.5: the normal at 0.5 is flagged
    scores, y = np.array([0.1, 0.5, 0.5, 0.9]), np.array([0, 0, 1, 1])
    assert specificity_at_sensitivity(scores, y, 1.0) == 0.5


def test_resamples_draw_every_image_of_each_class():
    # the first normal is the only one above the anomalous images: spec at 90% sensitivity
    # is 1 without it and falls in the resamples that draw it (about two thirds of them)
    scores = np.r_[0.95, np.full(19, 0.1), np.full(20, 0.5)]
    labels = np.r_[np.zeros(20, int), np.ones(20, int)]
    point = operating_points(scores, labels, 200, np.random.default_rng(5))["0v1"]
    assert point["spec_at_sens_90"]["value"] == 19 / 20
    assert point["spec_at_sens_90"]["ci_low"] < 0.95 and point["spec_at_sens_90"]["ci_high"] == 1.0


def test_a_score_equal_to_a_threshold_passes_and_float32_scores_are_compared_in_float64():
    labels = np.array([0, 0, 1, 1])
    thresholds = {"pass_95": 0.5, "pass_90": 0.1, "n_normals": 2}
    # 0.5 is exactly the strict threshold: it passes (flagged means above)
    out = apply_thresholds(
        np.array([0.5, 0.2, 0.5, 0.7]), labels, thresholds, 20, np.random.default_rng(0)
    )
    assert out["pass_95"]["by_label"]["0"]["flagged"] == 0
    assert out["pass_95"]["by_label"]["1"]["flagged"] == 1
    # float32 0.1 is 0.10000000149 > 0.1: flagged, as the float64 threshold says (a float32
    # comparison would round the threshold to the same float32 and pass it)
    out = apply_thresholds(
        np.array([0.1, 0.0, 0.1, 0.0], np.float32), labels, thresholds, 20,
        np.random.default_rng(0),
    )  # fmt: skip
    assert out["pass_90"]["by_label"]["0"]["flagged"] == 1
    assert out["pass_90"]["by_label"]["1"]["flagged"] == 1


def test_a_share_without_images_is_nan_and_its_interval_spans_the_resamples():
    labels = np.zeros(200, int)  # no anomalous image: sensitivity has nothing to count
    scores = np.r_[np.ones(100), np.zeros(100)]
    thresholds = {"pass_95": 0.5, "pass_90": 0.5, "n_normals": 200}
    out = apply_thresholds(scores, labels, thresholds, 300, np.random.default_rng(1))
    sensitivity = out["pass_95"]["sensitivity"]
    assert set(sensitivity) == {"value", "ci_low", "ci_high"}
    assert all(np.isnan(v) for v in sensitivity.values())
    # half of 200 flagged: resamples of all 200 images give about 0.5 +- 0.07, never a single
    # image's 0 or 1
    specificity = out["pass_95"]["specificity"]
    assert specificity["value"] == 0.5
    assert 0.4 < specificity["ci_low"] < 0.5 < specificity["ci_high"] < 0.6
    # one flagged image among 20, the first: resamples draw it often enough that the upper
    # bound is above 0 (a resample that never drew index 0 would give exactly 0)
    one = apply_thresholds(
        np.r_[1.0, np.zeros(19)], np.zeros(20, int), thresholds, 300, np.random.default_rng(2)
    )
    flagged = one["pass_95"]["by_label"]["0"]["flagged_share"]
    assert flagged["value"] == 1 / 20 and flagged["ci_low"] == 0.0 and flagged["ci_high"] > 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from lesionpaste.train.cli import train_command

    root = tmp_path_factory.mktemp("points")
    data = synthetic(root / "train", pairs=40)
    run = root / "run"
    r = invoke(train_command, data, "--out", run, "--epochs", "2", "--val-fraction", "0.25", *FAST)
    assert r.code == 0, r.stderr
    return data, run, graded(root / "eval", per_grade=6, seed=2)


def test_lp_train_records_thresholds_from_its_validation_normals(trained):
    from lesionpaste.train.runs.restore import score
    from lesionpaste.train.training.dataset import load_dataset
    from lesionpaste.train.training.schedule import split_by_twin

    data, run, _ = trained
    saved = json.loads((run / "thresholds.json").read_text())
    loaded = load_dataset(data)
    val = split_by_twin(loaded.twin_ids, 0.25, 0)
    normals = val & (loaded.labels == 0)
    scores = score(run, loaded, "cpu")
    assert saved["n_normals"] == int(normals.sum())
    assert saved["pass_95"] == pytest.approx(normal_quantile(scores[normals], 0.95), abs=1e-6)
    assert saved["pass_90"] == pytest.approx(normal_quantile(scores[normals], 0.90), abs=1e-6)
    assert saved["image_score"] == "classifier" and saved["flagged"] == "score > threshold"


def test_lp_eval_reports_operating_points_and_the_synthetic_thresholds(trained, tmp_path):
    from lesionpaste.train.cli import eval_command
    from lesionpaste.train.metrics.auc import read_scores

    _, run, evaluation = trained
    r = invoke(eval_command, run, evaluation, "--out", tmp_path / "ev", "--boot", "100",
               "--device", "cpu")  # fmt: skip
    assert r.code == 0, r.stderr
    assert "sensitivity at 95% specificity" in r.stdout and "synthetic validation" in r.stdout
    result = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    _, labels, scores = read_scores(tmp_path / "ev" / "scores.csv")
    assert set(result["operating_points"]) == set(result["auc"])  # every comparison
    y = (labels > 0).astype(int)
    expected = sensitivity_at_specificity(scores, y, 0.95)
    assert result["operating_points"]["0vall"]["sens_at_spec_95"]["value"] == pytest.approx(
        expected,
        abs=0.02,  # scores.csv keeps 8 digits
    )
    assert result["bootstrap"] == {
        "resamples": 100, "seed": 0,
        "by": "image, with replacement within each class; percentile 95% intervals",
    }  # fmt: skip
    applied = result["synthetic_thresholds"]
    t = json.loads((run / "thresholds.json").read_text())["pass_95"]
    assert applied["pass_95"]["threshold"] == t
    for label, entry in applied["pass_95"]["by_label"].items():
        chosen = labels == int(label)
        assert entry["n"] == int(chosen.sum())
        assert abs(entry["flagged"] - int((scores[chosen] > t).sum())) <= 1  # 8-digit scores


def test_a_run_without_thresholds_is_still_evaluated_and_a_damaged_file_is_refused(
    trained, tmp_path
):
    import shutil

    from lesionpaste.train.cli import eval_command

    _, run, evaluation = trained
    old = tmp_path / "old-run"
    shutil.copytree(run, old)
    (old / "thresholds.json").unlink()
    r = invoke(eval_command, old, evaluation, "--out", tmp_path / "ev", "--device", "cpu")
    assert r.code == 0, r.stderr
    result = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert "synthetic_thresholds" not in result and "operating_points" in result
    (old / "thresholds.json").write_text('{"pass_95": "high"}')
    r = invoke(eval_command, old, evaluation, "--out", tmp_path / "ev2", "--device", "cpu")
    assert r.code != 0 and "thresholds.json" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "ev2").exists()
