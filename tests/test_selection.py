"""lp-select: runs ranked by a synthetic validation AUC, and each criterion's rank correlation
with the real AUC (train/training/selection.py)."""

from __future__ import annotations

import json

import pytest

from lesionpaste.train.training.selection import criteria_against_real, rank_correlation, run_row
from tests.test_train_cli import invoke


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


def test_a_keep_best_run_is_read_at_its_kept_epoch(tmp_path):
    run = _run(tmp_path, "a", 0.4, 0.3, 0.6)  # epoch 1 logs 0.5 / 0.5, epoch 2 0.4 / 0.3
    (run / "config.json").write_text(json.dumps({"dataset": "d", "keep_best": "val"}))
    row = run_row(run, "eval", "0vall")
    assert (row.epoch, row.val, row.heldout) == (1, 0.5, 0.5)
