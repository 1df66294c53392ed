"""Choosing without real anomalies, by a synthetic validation AUC: the same-bank one, or the
held-out-lesion one (``lp-train --heldout-val``).

- Among a run's epochs (``lp-train --keep-best``): the epoch of the best criterion.
- Among runs (``lp-select``): each run's criteria next to its real AUC where it has been
  evaluated, and how well each criterion ranks the runs as the real AUC does (Spearman's rank
  correlation)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from lesionpaste.errors import LesionPasteError
from lesionpaste.file_names import LOG, METRICS, RUN_CONFIG
from lesionpaste.jsonfiles import json_lines, read_json_file
from lesionpaste.train.training.config import read_config

#: the synthetic criteria a run's log holds, as ``lp-select`` names them
CRITERIA = {"val": "val_auc", "heldout": "heldout_val_auc", "few": "val_auc_few_lesions"}


@dataclass
class RunRow:
    """One run: its last epoch's validation AUCs (None when not logged) and its real AUC
    (None when not evaluated)."""

    run: Path
    epoch: int
    val: float | None
    heldout: float | None
    real: float | None
    few: float | None = None  # the validation AUC of the twins with the fewest lesions


def logged_epochs(log: Path) -> list[dict]:
    """The valid epoch entries of a run's ``log.jsonl`` (a line that is not JSON is passed
    over), each criterion checked.

    Args:
        log: the log file.

    Returns:
        The entries with an ``epoch``, in order; empty when the file does not exist.

    Raises:
        LesionPasteError: an entry whose validation AUC is neither null (not computable) nor
            a number in [0, 1]: a damaged log, which would rank runs or epochs wrongly.
    """
    if not log.is_file():
        return []
    entries = []
    for number, value in json_lines(log):
        if not (isinstance(value, dict) and _is_count(value.get("epoch"))):
            continue
        for key in CRITERIA.values():
            if value.get(key) is not None and not is_auc(value[key]):
                raise LesionPasteError(
                    f"{log}, line {number}: {key} is {value[key]!r}, not an AUC in [0, 1]"
                )
        entries.append(value)
    return entries


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def is_auc(value: object) -> bool:
    """Whether a value read from a file is an AUC: a number in [0, 1] (not NaN, an infinity,
    a boolean or a string).

    Args:
        value: the value.

    Returns:
        Whether it is one.
    """
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1


def best_entry(entries: list[dict], criterion: str) -> dict | None:
    """The entry of the epoch whose criterion is highest (the first, on a tie).

    Args:
        entries: a run's log entries (``logged_epochs``).
        criterion: a key of ``CRITERIA``.

    Returns:
        That epoch's log entry; None when no entry holds the criterion.
    """
    key, best = CRITERIA[criterion], None
    for entry in entries:
        value = entry.get(key)
        if is_auc(value) and (best is None or value > best[key]):
            best = entry
    return best


def best_epoch(entries: list[dict], criterion: str) -> tuple[int, float] | None:
    """The epoch whose criterion is highest (the first, on a tie), and that value.

    Args:
        entries: a run's log entries (``logged_epochs``).
        criterion: a key of ``CRITERIA``.

    Returns:
        ``(epoch, value)``, the epoch 1-based as logged; None when no entry holds it.
    """
    best = best_entry(entries, criterion)
    return None if best is None else (best["epoch"], float(best[CRITERIA[criterion]]))


def real_auc(metrics_file: Path, comparison: str) -> float | None:
    """A comparison's AUC in an ``lp-eval`` ``metrics.json``.

    Args:
        metrics_file: the evaluation's ``metrics.json``.
        comparison: ``0vall``, ``0v1`` and so on.

    Returns:
        The AUC, or None when the file does not exist.

    Raises:
        LesionPasteError: the file exists but is damaged or lacks that comparison.
    """
    if not metrics_file.exists():
        return None
    metrics = read_json_file(metrics_file)
    try:
        value = metrics["auc"][comparison]["auc"]
    except (KeyError, TypeError):
        raise LesionPasteError(f"{metrics_file}: no {comparison} AUC") from None
    if not is_auc(value):
        raise LesionPasteError(
            f"{metrics_file}: its {comparison} AUC is {value!r}, not a number in [0, 1]"
        )
    return float(value)


def run_row(run: Path, evaluation: str, comparison: str) -> RunRow:
    """A run's row.

    Args:
        run: an ``lp-train`` run directory.
        evaluation: the name of its ``lp-eval`` folder inside it.
        comparison: the real AUC read from that evaluation.

    Returns:
        Its last epoch's criteria (with ``--keep-best``, the kept epoch's) and the real AUC
        (None where not evaluated).

    Raises:
        LesionPasteError: no log, or a damaged evaluation.
    """
    log = run / LOG
    if not log.is_file():
        raise LesionPasteError(f"{run}: no log.jsonl; not a trained lp-train run")
    entries = logged_epochs(log)
    if not entries:
        raise LesionPasteError(f"{log}: no epoch logged")
    # without a config.json no epoch was kept; a damaged one is refused, not guessed around
    kept = read_config(run / RUN_CONFIG).keep_best if (run / RUN_CONFIG).exists() else ""
    # lp-train --keep-best: the run's model is the kept epoch's
    entry = (best_entry(entries, kept) if kept in CRITERIA else None) or entries[-1]

    def value(key: str) -> float | None:  # logged_epochs checked it: an AUC, or None
        v = entry.get(key)
        return None if v is None else float(v)

    return RunRow(
        run=run,
        epoch=int(entry["epoch"]),
        val=value(CRITERIA["val"]),
        heldout=value(CRITERIA["heldout"]),
        real=real_auc(run / evaluation / METRICS, comparison),
        few=value(CRITERIA["few"]),
    )


def rank_correlation(criterion: list[float], real: list[float]) -> dict | None:
    """Spearman's rank correlation between a criterion and the real AUC over runs.

    Args:
        criterion: each run's synthetic validation AUC.
        real: the same runs' real AUCs.

    Returns:
        ``{"rho", "p", "runs"}``, or None with fewer than three runs or a constant column.
    """
    if len(criterion) < 3 or len(set(criterion)) < 2 or len(set(real)) < 2:
        return None
    result = spearmanr(np.asarray(criterion), np.asarray(real))
    return {"rho": float(result.statistic), "p": float(result.pvalue), "runs": len(criterion)}


def criteria_against_real(rows: list[RunRow]) -> dict:
    """Each criterion's rank correlation with the real AUC.

    Args:
        rows: the runs (``run_row``).

    Returns:
        ``{criterion: rank_correlation}``, over the runs that have both the criterion and a
        real AUC.
    """
    out = {}
    for name in CRITERIA:
        both = [(getattr(r, name), r.real) for r in rows]
        both = [(c, t) for c, t in both if c is not None and t is not None]
        out[name] = rank_correlation([c for c, _ in both], [t for _, t in both])
    return out
