"""lp-select: runs ranked by a synthetic validation AUC, and each criterion's rank correlation
with the real AUC (train/training/selection.py)."""

from __future__ import annotations

import json

import pytest

from lesionpaste.errors import LesionPasteError
from lesionpaste.train.training.selection import (
    best_entry,
    best_epoch,
    criteria_against_real,
    logged_epochs,
    rank_correlation,
    run_row,
)
from tests.test_train_cli import invoke

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate


def _run(root, name, val, heldout, real=None, extra_lines=()):
    run = root / name
    run.mkdir()
    lines = [json.dumps({"epoch": 1, "loss": 0.7, "val_auc": 0.5, "heldout_val_auc": 0.5})]
    last = {"epoch": 2, "loss": 0.5}
    if val is not None:
        last["val_auc"] = val
    if heldout is not None:
        last["heldout_val_auc"] = heldout
    lines += [json.dumps(last), *extra_lines]
    (run / "log.jsonl").write_text("\n".join(lines) + "\n")
    if real is not None:
        (run / "eval").mkdir()
        auc = {"0vall": {"auc": real, "ci_low": real - 0.03, "ci_high": real + 0.03}}
        (run / "eval" / "metrics.json").write_text(json.dumps({"auc": auc}))
    return run


def test_spearman_against_values_counted_by_hand():
    # ranks differ by -1, 1, -1, 1, 0: rho = 1 - 6 * 4 / (5 * 24) = 0.8
    assert rank_correlation([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])["rho"] == pytest.approx(0.8)
    assert rank_correlation([0.9, 0.8, 0.7], [0.6, 0.65, 0.7])["rho"] == pytest.approx(-1.0)
    assert rank_correlation([0.9, 0.8], [0.6, 0.7]) is None  # too few runs
    assert rank_correlation([0.9, 0.9, 0.9], [0.6, 0.7, 0.8]) is None  # a constant criterion
    assert rank_correlation([0.6, 0.7, 0.8], [0.9, 0.9, 0.9]) is None  # a constant real AUC


def test_the_p_value_and_run_count_are_spearmans():
    # rho = 0.8 over 5 runs: t = 0.8 * sqrt(3 / 0.36) = 2.309 on 3 degrees of freedom, p = 0.1041
    result = rank_correlation([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])
    assert result["p"] == pytest.approx(0.1041, abs=5e-4) and result["runs"] == 5
    # three runs and two distinct real AUCs are enough: ranks 1, 2, 3 against 1.5, 1.5, 3
    assert rank_correlation([0.1, 0.2, 0.3], [0.5, 0.5, 0.9])["rho"] == pytest.approx(
        0.866, abs=1e-3
    )
    assert rank_correlation([0.5, 0.5, 0.9], [0.1, 0.2, 0.3])["rho"] == pytest.approx(
        0.866, abs=1e-3
    )  # and two distinct criterion values


def test_the_best_epoch_is_the_first_of_the_highest_and_skips_what_is_not_an_auc():
    log = [
        {"epoch": 1, "val_auc": 0.7, "heldout_val_auc": 0.9},
        {"epoch": 2, "val_auc": 0.8},
        {"epoch": 3, "val_auc": 0.8, "heldout_val_auc": 1.5},  # a tie: the first is kept
        {"epoch": 4, "val_auc": None, "heldout_val_auc": float("nan")},
    ]
    assert best_epoch(log, "val") == (2, 0.8) and best_entry(log, "val") is log[1]
    assert best_epoch(log, "heldout") == (1, 0.9)  # 1.5 and NaN are not AUCs
    assert best_epoch(log, "few") is None and best_entry(log, "few") is None
    assert best_epoch([], "val") is None
    assert isinstance(best_epoch([{"epoch": 5, "val_auc": 1}], "val")[1], float)


def test_logged_epochs_pass_over_damaged_lines_anywhere(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"epoch": 1, "val_auc": 0.6}\n{broken\n{"epoch": 0}\n[1]\n'
                   '{"epoch": 2, "val_auc": 0.7}\n')  # fmt: skip
    assert [e["epoch"] for e in logged_epochs(log)] == [1, 2]
    assert logged_epochs(tmp_path / "missing.jsonl") == []


def test_a_run_whose_log_holds_no_epoch_is_refused_naming_the_log(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "log.jsonl").write_text('{not json\n{"epoch": null}\n')
    with pytest.raises(LesionPasteError) as caught:
        run_row(run, "eval", "0vall")
    assert str(caught.value) == f"{run / 'log.jsonl'}: no epoch logged"
    with pytest.raises(LesionPasteError, match="no log.jsonl; not a trained lp-train run"):
        run_row(tmp_path, "eval", "0vall")


def test_the_last_epoch_is_read_and_damaged_lines_are_passed_over(tmp_path):
    odd = ["{not json", '{"epoch": null}', '{"epoch": true, "val_auc": 1}', '{"epoch": "4"}']
    run = _run(tmp_path, "a", 0.91, 0.72, 0.66, extra_lines=odd)
    row = run_row(run, "eval", "0vall")
    assert (row.epoch, row.val, row.heldout, row.real) == (2, 0.91, 0.72, 0.66)
    rows = [row, run_row(_run(tmp_path, "b", 0.95, 0.70, 0.62), "eval", "0vall"),
            run_row(_run(tmp_path, "c", 0.85, 0.74, 0.70), "eval", "0vall"),
            run_row(_run(tmp_path, "d", 0.80, 0.60), "eval", "0vall")]  # fmt: skip
    result = criteria_against_real(rows)  # d has no real AUC: left out of both
    assert result["heldout"]["runs"] == 3 and result["heldout"]["rho"] == pytest.approx(1.0)
    assert result["val"]["rho"] == pytest.approx(-1.0)


def test_lp_select_ranks_by_the_heldout_auc_and_reports_both_correlations(tmp_path):
    from lesionpaste.train.cli import select_command

    runs = [_run(tmp_path, "a", 0.91, 0.72, 0.66), _run(tmp_path, "b", 0.95, 0.70, 0.62),
            _run(tmp_path, "c", 0.85, 0.74, 0.70), _run(tmp_path, "d", 0.80, None)]  # fmt: skip
    r = invoke(select_command, *runs)
    assert r.code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:5]] == [str(runs[i]) for i in (2, 0, 1, 3)]
    assert "heldout against the real 0vall AUC: Spearman rho +1.000" in r.stdout
    assert "val against the real 0vall AUC: Spearman rho -1.000" in r.stdout
    r = invoke(select_command, "--by", "val", *runs)
    assert [line.split()[0] for line in r.stdout.splitlines()[1:5]] == [
        str(runs[i]) for i in (1, 0, 2, 3)
    ]


@pytest.mark.parametrize("case", ["no log", "no heldout", "damaged metrics"])
def test_lp_select_refuses_in_one_line(tmp_path, case):
    from lesionpaste.train.cli import select_command

    if case == "no log":
        (tmp_path / "x").mkdir()
        runs, expected = [tmp_path / "x"], "no log.jsonl"
    elif case == "no heldout":
        runs, expected = [_run(tmp_path, "a", 0.9, None)], "train with --heldout-val"
    else:
        run = _run(tmp_path, "a", 0.9, 0.7, 0.6)
        (run / "eval" / "metrics.json").write_text('{"auc": {}}')
        runs, expected = [run], "no 0vall AUC"
    r = invoke(select_command, *runs)
    assert r.code != 0 and expected in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0


@pytest.mark.parametrize(
    "file, damaged, words",
    [
        ("eval/metrics.json", '{"auc": {"0vall": {"auc": 1.5}}}', "AUC is 1.5, not a number in"),
        ("eval/metrics.json", '{"auc": {"0vall": {"auc": -0.1}}}', "AUC is -0.1, not a number"),
        ("eval/metrics.json", '{"auc": {"0vall": {"auc": "0.7"}}}', "AUC is '0.7', not a number"),
        ("eval/metrics.json", '{"auc": {"0vall": {"auc": 1e400}}}', "AUC is inf, not a number"),
        ("eval/metrics.json", '{"auc": {"0vall": {"auc": true}}}', "AUC is True, not a number"),
        ("eval/metrics.json", '{"auc": {"0vall": {"auc": NaN}}}', "AUC is nan, not a number"),
        ("eval/metrics.json", '{"auc": [0.7]}', "no 0vall AUC"),
        ("eval/metrics.json", "[" * 200_000, "nested too deeply"),
        ("log.jsonl", '{"epoch": 3, "val_auc": 7}', "line 3: val_auc is 7, not an AUC in [0, 1]"),
        ("log.jsonl", '{"epoch": 3, "heldout_val_auc": "0.9"}', "heldout_val_auc is '0.9'"),
        ("log.jsonl", '{"epoch": 3, "val_auc": -1e400}', "val_auc is -inf, not an AUC"),
    ],
)
def test_a_received_runs_damaged_metrics_or_log_is_one_line(tmp_path, file, damaged, words):
    """Built valid (lp-select reads it), then one value damaged: refused in one line naming
    the file, never ranked on a value that is not an AUC."""
    from lesionpaste.train.cli import select_command

    run = _run(tmp_path, "a", 0.9, 0.7, 0.6)
    assert invoke(select_command, run).code == 0
    path = run / file
    if file == "log.jsonl":
        path.write_text(path.read_text() + damaged + "\n")
    else:
        path.write_text(damaged)
    r = invoke(select_command, run)
    assert r.code != 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0 and words in r.stderr, r.stderr
    assert str(path) in r.stderr


def test_a_run_whose_last_epoch_logged_no_auc_has_a_model_card(tmp_path):
    """A validation AUC logged as null (not computable, one class) is not a damaged log."""
    from lesionpaste.train.runs.card import _training_run_lines

    run = _run(tmp_path, "a", None, None)
    with (run / "log.jsonl").open("a") as fh:
        fh.write('{"epoch": 3, "val_auc": null}\n')
    lines = _training_run_lines({"epochs": 3}, run)
    assert "No validation AUC was logged." in lines


def test_a_keep_best_run_is_read_at_its_kept_epoch(tmp_path):
    run = _run(tmp_path, "a", 0.4, 0.3, 0.6)  # epoch 1 logs 0.5 / 0.5, epoch 2 0.4 / 0.3
    (run / "config.json").write_text(json.dumps({"dataset": "d", "keep_best": "val"}))
    row = run_row(run, "eval", "0vall")
    assert (row.epoch, row.val, row.heldout) == (1, 0.5, 0.5)
