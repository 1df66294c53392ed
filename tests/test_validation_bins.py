"""The validation AUC by lesion count and tier (train/metrics/validation_bins.py), counted by
hand on a small set, and as lp-train logs it, lp-select ranks by it and the model card shows it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lesionpaste.train.metrics.validation_bins import (
    LESION_BINS,
    auc_against_normals,
    aucs_by_lesion_count,
    aucs_by_tier,
)

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate

# three normals, four anomalous twins holding 3, 10, 60 and 5 pasted lesions (tiers 1, 2, 3, 1)
LABELS = np.array([0, 0, 0, 1, 1, 1, 1])
SCORES = np.array([0.1, 0.4, 0.35, 0.3, 0.8, 0.9, 0.2])
LESIONS = np.array([0, 0, 0, 3, 10, 60, 5])
TIERS = np.array([0, 0, 0, 1, 2, 3, 1])


def test_each_bin_sets_every_normal_against_its_own_twins_counted_by_hand():
    # 1-5: 0.3 and 0.2 against 0.1, 0.4, 0.35: each beats only 0.1, so 2 of 6 pairs
    assert aucs_by_lesion_count(SCORES, LABELS, LESIONS) == {
        "1-5": {"auc": pytest.approx(2 / 6), "anomalous": 2},
        "6-20": {"auc": 1.0, "anomalous": 1},
        "21-50": {"auc": None, "anomalous": 0},
        ">50": {"auc": 1.0, "anomalous": 1},
    }
    assert aucs_by_tier(SCORES, LABELS, TIERS) == {
        "1": {"auc": pytest.approx(2 / 6), "anomalous": 2},
        "2": {"auc": 1.0, "anomalous": 1},
        "3": {"auc": 1.0, "anomalous": 1},
    }
    assert [name for name, _, _ in LESION_BINS] == ["1-5", "6-20", "21-50", ">50"]


@pytest.mark.parametrize(
    "count, expected",
    [(1, "1-5"), (5, "1-5"), (6, "6-20"), (20, "6-20"), (21, "21-50"), (50, "21-50"),
     (51, ">50"), (10_000, ">50")],
)  # fmt: skip
def test_a_twin_falls_in_one_bin_at_each_boundary(count, expected):
    labels, scores = np.array([0, 1]), np.array([0.2, 0.7])
    bins = aucs_by_lesion_count(scores, labels, np.array([0, count]))
    assert {name for name, b in bins.items() if b["anomalous"]} == {expected}
    assert bins[expected]["auc"] == 1.0


def test_a_normal_never_counts_as_a_twin_and_no_normal_gives_none():
    labels = np.array([0, 0, 1])
    scores = np.array([0.9, 0.1, 0.5])
    lesions = np.array([3, 0, 3])  # a normal row with a count is still a normal
    assert aucs_by_lesion_count(scores, labels, lesions)["1-5"] == {"auc": 0.5, "anomalous": 1}
    only_twins = auc_against_normals(np.array([0.5, 0.6]), np.array([1, 1]), np.array([1, 1]) > 0)
    assert only_twins == {"auc": None, "anomalous": 2}
    ties = auc_against_normals(np.array([0.5, 0.5]), np.array([0, 1]), np.array([0, 1]) > 0)
    assert ties == {"auc": 0.5, "anomalous": 1}


def test_lp_train_logs_the_bins_of_its_validation_twins(tmp_path):
    """Every epoch's log entry holds the bins and tiers; their twin counts are those of the
    validation pairs (the run's split, read back from the manifest)."""
    from lesionpaste.dataset_format import manifest_text, read_manifest
    from lesionpaste.train.cli import train_command
    from lesionpaste.train.training.config import TrainConfig
    from lesionpaste.train.training.dataset import load_dataset
    from lesionpaste.train.training.loop import validation_mask
    from tests.test_train_cli import FAST, invoke
    from tests.train_fixtures import synthetic

    root = synthetic(tmp_path / "d", pairs=24)
    rows = read_manifest(root)
    for i, row in enumerate(rows):  # lesion counts across every bin, tiers 1-3
        if row["label"] == "1":
            row["n_lesions"], row["tier"] = str([2, 9, 30, 80][i % 4]), str(1 + i % 3)
    (root / "manifest.csv").write_text(manifest_text(rows), encoding="utf-8")
    run = tmp_path / "run"
    r = invoke(train_command, root, "--out", run, "--epochs", "2", "--val-fraction", "0.5", *FAST)
    assert r.code == 0, r.stderr
    entries = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    data = load_dataset(root)
    val = validation_mask(data, TrainConfig(dataset=str(root), val_fraction=0.5))
    twins = val & (data.labels == 1)
    expected = {
        name: int((twins & (data.n_lesions >= low) & (data.n_lesions <= (high or 10**9))).sum())
        for name, low, high in LESION_BINS
    }
    assert sum(expected.values()) == twins.sum() > 0
    for entry in entries:
        by_lesions = entry["val_auc_by_lesions"]
        assert {k: b["anomalous"] for k, b in by_lesions.items()} == expected
        assert entry["val_auc_few_lesions"] == by_lesions["1-5"]["auc"]
        tiers = {k: b["anomalous"] for k, b in entry["val_auc_by_tier"].items()}
        assert tiers == {str(t): int((twins & (data.tiers == t)).sum()) for t in (1, 2, 3)}
        for b in [*by_lesions.values(), *entry["val_auc_by_tier"].values()]:
            assert b["auc"] is None or 0.0 <= b["auc"] <= 1.0
    card = _card(run)
    assert "By pasted lesions, the normals against those twins: 1-5:" in card
    assert "By tier, the normals against those twins: 1:" in card


def _card(run) -> str:
    from lesionpaste.train.runs.card import _training_run_lines

    config = json.loads((run / "config.json").read_text())
    return "\n".join(_training_run_lines(config, run))


def test_lp_select_ranks_by_the_fewest_lesion_bin(tmp_path):
    from lesionpaste.train.cli import select_command
    from tests.test_train_cli import invoke

    runs = []
    for name, val, few in [("a", 0.99, 0.60), ("b", 0.95, 0.70), ("c", 0.97, None)]:
        run = tmp_path / name
        run.mkdir()
        entry = {"epoch": 1, "val_auc": val, "val_auc_few_lesions": few}
        (run / "log.jsonl").write_text(json.dumps(entry) + "\n")
        runs.append(run)
    r = invoke(select_command, "--by", "few", *runs)
    assert r.code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["run", "epoch", "val", "heldout", "few", "0vall"]
    assert [line.split()[0] for line in lines[1:4]] == [str(runs[i]) for i in (1, 0, 2)]
    assert lines[1].split()[4] == "0.7000" and lines[3].split()[4] == "-"
