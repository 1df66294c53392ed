"""A trained detector's model card, ``RUN/README.md``: what it detects and from what, how its
inputs are prepared, how it was trained, its synthetic validation, its thresholds and what they
mean, the real evaluation when there is one, its limits, and how to cite it.

``lp-train`` writes it; ``lp-eval`` rewrites its evaluation section (and records the figures in
``RUN/evaluation.json``, which ``lp-export`` copies into ``model.json``); ``lp-export`` ships it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

from lesionpaste.citation import METHOD
from lesionpaste.contract import InputContract
from lesionpaste.file_names import CARD, EVALUATION_RECORD, LOG, RUN_CONFIG, WEIGHTS_SOURCE
from lesionpaste.files import write_text_atomic
from lesionpaste.jsonfiles import finite_json, read_json_file
from lesionpaste.train.training.config import read_config
from lesionpaste.train.training.selection import is_auc, logged_epochs

#: the heading of the section lp-eval rewrites
EVALUATION_HEADING = "## Evaluation on real images"


def _training_lines(config: dict, meta: dict, source: str) -> list[str]:
    counts = meta.get("counts", {}) if isinstance(meta, dict) else {}
    bank = meta.get("bank", {}) if isinstance(meta, dict) else {}
    sources = ", ".join(config.get("bank_sources") or []) or "not recorded"
    return [
        "## What it detects, and from what",
        "",
        f"A two-class detector ({config.get('arch')}): class 0 normal, class 1 anomalous. It "
        "was trained on one anomalous *twin* per normal image, made by pasting lesions cut "
        f"from one annotated image ({sources}) into the normal image (LesionPaste). It has "
        "seen no real diseased image unless it was trained with --supervised"
        + (" (this one was)." if config.get("supervised") else "."),
        "",
        (
            f"- training dataset: `{config.get('dataset')}`, manifest sha256 "
            f"`{config.get('dataset_sha256')}`"
        ),
        (
            f"- images: {counts.get('normal', '?')} normal and {counts.get('anomalous', '?')} "
            f"anomalous twins ({counts.get('images', '?')} in all); bank modality "
            f"{bank.get('modality', '?')}, bank sha256 `{bank.get('sha256', '?')}`"
        ),
        f"- weights started from: {source or 'not recorded'}",
        "- the dataset's own card (`README.md` in the dataset) names its sources and licences",
        "",
    ]


def _contract_lines(contract: InputContract | None) -> list[str]:
    lines = ["## How its inputs are prepared (the input contract, `contract.json`)", ""]
    if contract is None:
        return lines + [
            (
                "Not recorded (the training dataset did not say how its images were prepared): "
                "`lp-predict` and `lp-export` need `--like DATASET`."
            ),
            "",
        ]
    p = contract.preparation.describe()
    return lines + [
        f"- modality: {p['modality']}; colour: {p['colour']}",
        f"- recipe: `{json.dumps(p['recipe'], sort_keys=True)}`",
        f"- field of view: {p['field_of_view']}",
        (
            f"- prepared size: {p['size'] or 'the source resolution'} pixels square; network input "
            f"{contract.input_size} pixels, mean {list(contract.mean)}, std {list(contract.std)}"
        ),
        f"- image score: {contract.image_score}"
        + (" (with an anomaly map)" if contract.maps else ""),
        "",
        (
            "`lp-predict RUN IMAGES -o OUT` prepares raw images this way; so does `lp-synth prep "
            "--like` for an evaluation set."
        ),
        "",
    ]


def _training_run_lines(config: dict, run: Path) -> list[str]:
    entries = logged_epochs(run / LOG)
    kept = config.get("keep_best")
    last = entries[-1] if entries else {}
    if kept:
        from lesionpaste.train.training.selection import best_entry

        last = best_entry(entries, kept) or last
    lines = [
        "## How it was trained",
        "",
        f"{config.get('epochs')} epochs, batch {config.get('batch_size')}, SGD lr "
        f"{config.get('lr')} (cosine), momentum {config.get('momentum')}, input "
        f"{config.get('size')} px, first {config.get('freeze')} stage(s) frozen, seed "
        f"{config.get('seed')}"
        + (", with the --maps decoder" if config.get("maps") else "")
        + (f"; the epoch of the best {kept} validation AUC is kept" if kept else "")
        + ".",
        "",
        "## Synthetic validation",
        "",
    ]
    if last.get("val_auc") is not None:  # checked by logged_epochs: an AUC, or null
        lines.append(
            f"AUC {last['val_auc']:.4f} at epoch {last.get('epoch')} on the held-out twin pairs "
            f"({config.get('val_fraction')} of the pairs): how well it tells these pasted "
            "lesions from normal images, not how well it finds real disease."
        )
        lines += _by_content_lines(last)
    else:
        lines.append("No validation AUC was logged.")
    return lines + [""]


def _by_content_lines(entry: dict) -> list[str]:
    """The validation AUC by the twins' lesion count and tier, where the epoch logged them."""
    lines = []
    for key, what in (("val_auc_by_lesions", "pasted lesions"), ("val_auc_by_tier", "tier")):
        bins = entry.get(key)
        if not isinstance(bins, dict) or not bins:
            continue
        cells = [  # a received log: a value that is not an AUC shows as "-"
            f"{name}: {format(b['auc'], '.4f') if is_auc(b.get('auc')) else '-'} "
            f"({b.get('anomalous')} twins)"
            for name, b in bins.items()
            if isinstance(b, dict)
        ]
        lines += ["", f"By {what}, the normals against those twins: " + "; ".join(cells) + "."]
    return lines


def _threshold_lines(contract: InputContract | None) -> list[str]:
    lines = ["## Thresholds", ""]
    if contract is None or not contract.thresholds:
        return lines + ["None recorded.", ""]
    for name, value in contract.thresholds.items():
        share = name.removeprefix("pass_")
        lines.append(
            f"- `{name}` = {value:.6g}: an image scoring above it is flagged; it lets {share}% "
            f"of the {contract.n_normals} synthetic validation normals pass."
        )
    return lines + [
        "",
        (
            "They were chosen without any real anomaly. Real normal images from another camera, "
            "clinic or population may score higher or lower, so the share that passes can differ "
            "from the nominal one: check it on a few hundred real normals before relying on it."
        ),
        "",
    ]


def evaluation_lines(evaluation: dict | None) -> list[str]:
    """The evaluation section of the card, from ``RUN/evaluation.json`` (or none yet).

    Args:
        evaluation: ``{"evaluation_set", "out", "auc": {...}}`` as ``lp-eval`` records it, or
            None.

    Returns:
        The section's lines, heading included.
    """
    lines = [EVALUATION_HEADING, ""]
    if not evaluation:
        return lines + ["Not evaluated yet (`lp-eval RUN EVALSET -o OUT` fills this in).", ""]
    lines.append(
        f"`lp-eval` on `{evaluation.get('evaluation_set')}` (written to `{evaluation.get('out')}`"
        "), ROC AUC with DeLong 95% intervals:"
    )
    lines.append("")
    for name, e in (evaluation.get("auc") or {}).items():
        lines.append(
            f"- {name}: {_figure(e.get('auc'))} [{_figure(e.get('ci_low'))}, "
            f"{_figure(e.get('ci_high'))}] ({e.get('n_pos')} anomalous vs {e.get('n_neg')} normal)"
        )
    for name, t in (evaluation.get("synthetic_thresholds") or {}).items():
        lines.append(
            f"- at `{name}`: sensitivity {_figure(t.get('sensitivity'), 3)}, specificity "
            f"{_figure(t.get('specificity'), 3)}"
        )
    return lines + [""]


def _figure(value: object, digits: int = 4) -> str:
    """A figure of the card: the number, or ``n/a`` where it could not be computed."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return f"{value:.{digits}f}"
    return "n/a"


LIMITS = [
    "## Limits",
    "",
    (
        "- It learnt pasted lesions of the types in its bank. Real disease that looks otherwise, "
        "and early disease with only a few tiny lesions, may score low."
    ),
    (
        "- Images must be of the modality and kind it was trained on, prepared by its contract "
        "(lp-predict does this, and refuses images of the other modality)."
    ),
    "- It is a research tool, not a medical device.",
    "",
    "## How to cite",
    "",
    (
        f"The method: {METHOD}; and the sources of the lesion bank and the normal images, as the "
        "training dataset's card names them."
    ),
    "",
]


def card_text(run: Path, contract: InputContract | None, meta: dict) -> str:
    """The whole card of a run.

    Args:
        run: the run directory (its ``config.json``, ``log.jsonl``, ``weights_source.txt``
            and ``evaluation.json`` are read).
        contract: its input contract, or None.
        meta: the training dataset's ``dataset.json`` (counts and bank).

    Returns:
        The Markdown text.
    """
    config = asdict(read_config(run / RUN_CONFIG))
    source_file = run / WEIGHTS_SOURCE
    source = source_file.read_text(encoding="utf-8").strip() if source_file.is_file() else ""
    evaluation = None
    if (run / EVALUATION_RECORD).is_file():
        evaluation = read_json_file(run / EVALUATION_RECORD, 1 << 20)
    lines = [f"# Model card: LesionPaste detector `{run.name}`", ""]
    lines += _training_lines(config, meta, source)
    lines += _contract_lines(contract)
    lines += _training_run_lines(config, run)
    lines += _threshold_lines(contract)
    lines += evaluation_lines(evaluation)
    lines += LIMITS
    return "\n".join(lines)


def write_card(run: Path, contract: InputContract | None, meta: dict) -> None:
    """Write ``RUN/README.md`` (``card_text``).

    Args:
        run: the run directory.
        contract: its input contract, or None.
        meta: the training dataset's ``dataset.json``.
    """
    write_text_atomic(run / CARD, card_text(run, contract, meta))


def record_evaluation(run: Path, evaluation: dict) -> None:
    """Record an ``lp-eval`` result in the run (``evaluation.json``) and rewrite the card's
    evaluation section with it; a run that cannot be written to (received read-only) is
    left as it is.

    Args:
        run: the run directory.
        evaluation: ``{"evaluation_set", "out", "auc", "synthetic_thresholds"}``.
    """
    text = json.dumps(finite_json(evaluation), indent=1, allow_nan=False) + "\n"
    try:
        write_text_atomic(run / EVALUATION_RECORD, text)
        card = run / CARD
        if card.is_file():
            old = card.read_text(encoding="utf-8")
            write_text_atomic(card, _with_section(old, evaluation_lines(evaluation)))
    except OSError:
        return


def _with_section(card: str, section: list[str]) -> str:
    """The card with its evaluation section replaced."""
    lines = card.split("\n")
    if EVALUATION_HEADING not in lines:
        return card.rstrip("\n") + "\n\n" + "\n".join(section)
    start = lines.index(EVALUATION_HEADING)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[:start] + section + lines[end:])
