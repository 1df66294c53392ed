"""The EyePACS protocol: settings chosen on tuning images, reported once on test images.

``eyepacs256`` (2,385 images, grades 0-4) is split by patient (both eyes on one side) into a
*tuning* part and a *test* part by a fixed hash of (seed, patient); the tuning part is split
again, the same way, into *tuning-train* (the normals whose twins are trained on) and
*tuning-val* (the labelled images a setting is chosen on). The lists are published in
``docs/protocol/`` in the label-file format (``image,level``) every tool reads.

    python bench/eyepacs_protocol.py split            # (re)write docs/protocol/*.csv
    python bench/eyepacs_protocol.py tune             # each candidate, seed 0: tuning-train -> tuning-val
    python bench/eyepacs_protocol.py test --setting NAME  # 3 seeds + supervised, on test, once
    python bench/eyepacs_protocol.py table3           # the paper's Table 3 rows beside them

``tune`` trains each candidate setting on the twins of the tuning-train normals and evaluates
it on tuning-val; the setting with the highest 0-vs-all AUC there is the one to report.
``test`` then makes the twins of *all* tuning normals, trains the chosen setting with three
seeds, trains the supervised baseline (same backbone, freeze, learning rate and epochs) on the
tuning part's real labels with the same three seeds, evaluates every run on the test part (the
same images for every row) and compares each seed's pair with paired DeLong. ``table3`` adds the
paper's other rows on the same test images: its defaults (full fine-tuning, lesions at scale 1),
CutPaste-style rectangles (``--method cutpaste``) and k-NN on ImageNet features of the same
normals (``lp-knn``, deterministic: one run). Each trained row has the same three seeds; each
seed is compared with paired DeLong against the recommended setting and the supervised
baseline of the same seed. Results go to ``WORK/protocol-{tune,test,table3}.json`` and a table
is printed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LP_SHARED_DATA", ROOT.parent / "shared" / "data"))
BIN = Path(sys.executable).parent
LISTS = ROOT / "docs" / "protocol"
#: the split's seeds and fractions: the share of patients in tuning, then in tuning-train
TUNING_SEED, TUNING_FRACTION = 2026, 0.6
TRAIN_SEED, TRAIN_FRACTION = 2027, 0.7
PARTS = ("tuning", "tuning-train", "tuning-val", "test")

#: the bank every setting pastes from (the paper's one annotated image, here IDRiD_03)
BANK = ["build", "idrid_03"]
#: the trainer shared by every row (the README's recommended backbone and schedule)
TRAINER = ["--arch", "efficientnet_lite0", "--freeze", "6", "--lr", "0.01", "--epochs", "3",
           "--batch-size", "32", "--device", "cpu", "-q"]  # fmt: skip
#: the candidate settings of the twins, compared on tuning-val
CANDIDATES = {
    "recommended": ["--preprocess", "none", "--match-colour", "--lesion-scale", "1.5"],
    "loguniform": ["--preprocess", "none", "--match-colour", "--lesion-scale", "1.5",
                   "--count", "loguniform"],
    "scale-1": ["--preprocess", "none", "--match-colour"],
}  # fmt: skip
SEEDS = (0, 1, 2)
#: Table 3's trained rows: the twins' setting and what the trainer changes (the rest is TRAINER)
TABLE3 = {
    "paper-defaults": (["--preprocess", "none", "--match-colour"], ["--freeze", "0"]),
    "cutpaste": (["--method", "cutpaste", "--preprocess", "none"], []),
}


def split_lists(labels: Path) -> dict[str, list[tuple[str, str]]]:
    """Each part's ``(image, level)`` rows, in the label file's order.

    Args:
        labels: ``eyepacs256/labels.csv``.

    Returns:
        ``{part: rows}`` for each of ``PARTS``.
    """
    from lesionpaste.synth.inputs.normals import in_training_split, patient_of

    parts: dict[str, list[tuple[str, str]]] = {name: [] for name in PARTS}
    with open(labels, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            item = (row["image"], row["level"])
            patient = patient_of(row["image"])
            if not in_training_split(patient, TUNING_FRACTION, TUNING_SEED):
                parts["test"].append(item)
                continue
            parts["tuning"].append(item)
            train = in_training_split(patient, TRAIN_FRACTION, TRAIN_SEED)
            parts["tuning-train" if train else "tuning-val"].append(item)
    return parts


def list_text(rows: list[tuple[str, str]]) -> str:
    """A part's label file: ``image,level`` then one line per image."""
    return "image,level\n" + "".join(f"{image},{level}\n" for image, level in rows)


def write_lists(labels: Path, folder: Path = LISTS) -> dict[str, int]:
    """Write ``eyepacs256-PART.csv`` for each part; how many images each holds."""
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for part, rows in split_lists(labels).items():
        (folder / f"eyepacs256-{part}.csv").write_text(list_text(rows), encoding="utf-8")
        counts[part] = len(rows)
    return counts


def _run(command: list[str], log: dict, name: str) -> None:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    log[name] = round(time.perf_counter() - started, 1)
    print(f"[{name}] exit {done.returncode} in {log[name]} s", flush=True)
    if done.returncode:
        raise SystemExit(f"{name} failed:\n{done.stdout}\n{done.stderr}")


def _tool(name: str) -> str:
    return str(BIN / name)


def _synth(bank: Path, part: str, setting: list[str], out: Path, log: dict, jobs: str) -> None:
    if not out.exists():
        _run([_tool("lp-synth"), "--bank", str(bank), "--normals", str(LISTS / f"eyepacs256-{part}.csv"),
              "--images", str(DATA / "eyepacs256" / "images"), "--size", "256", "-j", jobs,
              *setting, "--out", str(out), "-q"], log, f"synth {out.name}")  # fmt: skip


def _prep(bank: Path, part: str, like: Path, out: Path, log: dict) -> None:
    if not out.exists():
        _run([_tool("lp-synth"), "prep", "--images", str(DATA / "eyepacs256" / "images"),
              "--labels", str(LISTS / f"eyepacs256-{part}.csv"), "--like", str(like),
              "--bank", str(bank), "--out", str(out), "-q"], log, f"prep {part}")  # fmt: skip


def _train(data: Path, out: Path, seed: int, log: dict, extra: list[str] = ()) -> None:
    if not (out / "checkpoint.pt").exists():
        _run([_tool("lp-train"), str(data), "--out", str(out), "--seed", str(seed), *TRAINER,
              *extra, "--overwrite"], log, f"train {out.name}")  # fmt: skip


def _evaluate(run: Path, test: Path, out: Path, log: dict, compare: Path | None = None) -> dict:
    if not (out / "metrics.json").exists():
        extra = ["--compare", str(compare)] if compare else []
        _run([_tool("lp-eval"), str(run), str(test), "--out", str(out), "--device", "cpu",
              *extra, "-q"], log, f"eval {run.name}")  # fmt: skip
    return json.loads((out / "metrics.json").read_text())


def _aucs(metrics: dict) -> dict:
    return {k: [round(v["auc"], 4), round(v["ci_low"], 4), round(v["ci_high"], 4)]
            for k, v in metrics["auc"].items() if v.get("auc") is not None}  # fmt: skip


def _bank(work: Path, log: dict) -> Path:
    """The lesion bank every setting pastes from, built once in ``work``."""
    bank = work / "bank.h5"
    if not bank.exists():
        _run([_tool("lp-bank"), *BANK, "--root", str(DATA / "idrid"), "-o", str(bank), "-q"],
             log, "bank")  # fmt: skip
    return bank


def tune(work: Path, jobs: str) -> dict:
    """Every candidate, seed 0, trained on the tuning-train twins, evaluated on tuning-val."""
    log: dict = {}
    bank = _bank(work, log)
    rows = {}
    for name, setting in CANDIDATES.items():
        twins = work / f"tune-{name}"
        _synth(bank, "tuning-train", setting, twins, log, jobs)
        _prep(bank, "tuning-val", twins, work / "tuning-val", log)
        run = work / "runs" / f"tune-{name}"
        _train(twins, run, 0, log)
        metrics = _evaluate(run, work / "tuning-val", run / "eval", log)
        rows[name] = {"auc": _aucs(metrics), "val": _last_log(run)}
    chosen = max(rows, key=lambda n: rows[n]["auc"]["0vall"][0])
    return {"stage": "tune", "rows": rows, "chosen": chosen, "seconds": log}


def _last_log(run: Path) -> dict:
    entry = json.loads((run / "log.jsonl").read_text().splitlines()[-1])
    keep = ("val_auc", "val_auc_few_lesions", "val_auc_by_lesions")
    return {k: entry.get(k) for k in keep}


def test(work: Path, setting: str, jobs: str) -> dict:
    """The chosen setting and the supervised baseline, three seeds each, on the test part."""
    log: dict = {}
    bank = _bank(work, log)
    twins = work / f"test-{setting}"
    _synth(bank, "tuning", CANDIDATES[setting], twins, log, jobs)
    _prep(bank, "test", twins, work / "test", log)
    _prep(bank, "tuning", twins, work / "tuning-labelled", log)
    rows: dict = {"lesionpaste": {}, "supervised": {}}
    for seed in SEEDS:
        supervised = work / "runs" / f"supervised-s{seed}"
        _train(work / "tuning-labelled", supervised, seed, log, ["--supervised"])
        rows["supervised"][seed] = _aucs(
            _evaluate(supervised, work / "test", supervised / "eval", log)
        )
        run = work / "runs" / f"test-{setting}-s{seed}"
        _train(twins, run, seed, log)
        metrics = _evaluate(run, work / "test", run / "eval-vs-supervised", log,
                            compare=supervised / "eval")  # fmt: skip
        rows["lesionpaste"][seed] = {"auc": _aucs(metrics), "val": _last_log(run),
                                     "delong_vs_supervised": metrics["compare"]["delong"]}  # fmt: skip
    return {"stage": "test", "setting": setting, "rows": rows, "seconds": log}


def _paired(a: Path, b: Path) -> dict:
    """Paired DeLong of two evaluations' scores of the same images (``a`` minus ``b``)."""
    from lesionpaste.train.metrics.auc import compare, read_scores

    paths_a, labels, scores_a = read_scores(a / "scores.csv")
    paths_b, _, scores_b = read_scores(b / "scores.csv")
    if paths_a != paths_b:
        raise SystemExit(f"{a} and {b} scored different images")
    return {k: {"difference": round(v["difference"], 4), "p": float(f"{v['p']:.3g}")}
            for k, v in compare(scores_a, scores_b, labels).items()}  # fmt: skip


def table3(work: Path, jobs: str) -> dict:
    """The paper's Table 3 rows on the test part, beside the recommended and supervised rows."""
    done = test(work, "recommended", jobs)
    log = done["seconds"]
    bank, test_set = work / "bank.h5", work / "test"
    reference = {seed: (work / "runs" / f"test-recommended-s{seed}" / "eval-vs-supervised",
                        work / "runs" / f"supervised-s{seed}" / "eval") for seed in SEEDS}  # fmt: skip
    rows: dict = {
        "recommended": done["rows"]["lesionpaste"],
        "supervised": done["rows"]["supervised"],
    }
    for name, (setting, extra) in TABLE3.items():
        twins = work / f"test-{name}"
        _synth(bank, "tuning", setting, twins, log, jobs)
        rows[name] = {}
        for seed in SEEDS:
            run = work / "runs" / f"test-{name}-s{seed}"
            _train(twins, run, seed, log, extra)
            metrics = _evaluate(run, test_set, run / "eval", log)
            rows[name][seed] = {
                "auc": _aucs(metrics), "val": _last_log(run),
                "recommended_minus_it": _paired(reference[seed][0], run / "eval"),
                "it_minus_supervised": _paired(run / "eval", reference[seed][1]),
            }  # fmt: skip
    knn = work / "runs" / "knn"
    if not (knn / "metrics.json").exists():
        _run([_tool("lp-knn"), str(work / "test-recommended"), str(test_set), "--out", str(knn),
              "--device", "cpu", "-q", "--overwrite"], log, "knn")  # fmt: skip
    rows["knn"] = {"auc": _aucs(json.loads((knn / "metrics.json").read_text())),
                   "recommended_minus_it": {seed: _paired(reference[seed][0], knn) for seed in SEEDS},
                   "it_minus_supervised": {seed: _paired(knn, reference[seed][1]) for seed in SEEDS}}  # fmt: skip
    return {"stage": "table3", "rows": rows, "seconds": log}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["split", "tune", "test", "table3"])
    parser.add_argument("--setting", choices=sorted(CANDIDATES), default="recommended")
    parser.add_argument("--work", type=Path, default=ROOT / "work" / "protocol")
    parser.add_argument("-j", "--jobs", default="2")
    args = parser.parse_args()
    if args.stage == "split":
        print(json.dumps(write_lists(DATA / "eyepacs256" / "labels.csv")))
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    stages = {"tune": lambda: tune(args.work, args.jobs),
              "test": lambda: test(args.work, args.setting, args.jobs),
              "table3": lambda: table3(args.work, args.jobs)}  # fmt: skip
    result = stages[args.stage]()
    path = args.work / f"protocol-{args.stage}.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result["rows"], indent=1)[:4000])
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
