"""The GPU check (``make gpu-check``): every CUDA figure the project needs, in one short run.

On one GPU it runs, in order, each step timed and its figures kept:

1. the CUDA-marked tests (``pytest -m cuda``);
2. ``bench/bench_train.py``: VGG16 at 256x256 in bf16 (target >= 2500 images/s on an H100 or
   H200, the input pipeline >= 5x faster than the model), then the same with ``--compile``, and
   EfficientNet-Lite0 with the ``--maps`` decoder;
3. a short real-data run: a bank from IDRiD_03, twins of the ``eyepacs256`` training split,
   VGG16 at 256x256 for 3 epochs, evaluated on the rest of ``eyepacs256`` (per-grade AUCs);
4. the same training under ``torchrun --nproc_per_node 1``, whose scores must equal the
   one-process run's;
5. a ``--maps`` run (EfficientNet-Lite0) evaluated on the held-out IDRiD images' masks;
6. the paper's protocol (``paper_protocol``; ``make paper-eyepacs`` runs it alone): VGG16 fully
   fine-tuned as the paper does (256, batch 64, SGD lr 1e-3 cosine, 50 epochs) on the twins of
   every normal of the protocol's tuning part (``docs/protocol/``), and the supervised baseline
   trained the same way on the tuning part's real labels, both evaluated per grade on the test
   part with paired DeLong. Its time is first estimated from the measured training throughput;
   it is skipped (and says so) when the estimate exceeds ``--paper-budget`` seconds.

Every figure goes into one JSON file (``--out``, default ``$OUT/gpu_check.json`` or
``gpu_check.json``) and a table is printed. ``--device cpu --tiny`` runs the same steps with
tiny settings (small CNN, a few images, 1 epoch) so the script itself is tested on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LP_SHARED_DATA", ROOT.parent / "shared" / "data"))
BIN = Path(sys.executable).parent


def _run(name: str, command: list[str], results: dict, timeout: float) -> str:
    """Run one step; record its seconds, exit status and last lines in ``results``."""
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
        output, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as exc:
        output, code = f"{exc.stdout or ''}{exc.stderr or ''}\ntimed out", 124
    results[name] = {
        "seconds": round(time.perf_counter() - started, 1),
        "exit": code,
        "tail": output.strip().splitlines()[-6:],
    }
    print(f"[{name}] exit {code} in {results[name]['seconds']} s", flush=True)
    return output if isinstance(output, str) else ""


def _bench_figures(output: str) -> dict:
    """images/s of the pipeline, the step and the step with the decoder, from bench_train."""
    figures = {}
    for key, label in (
        ("pipeline_images_per_s", "input pipeline alone"),
        ("step_images_per_s", "training step (all)"),
        ("maps_step_images_per_s", "training step + decoder"),
    ):
        match = re.search(rf"\| {re.escape(label)}\s*\|\s*([\d.]+)", output)
        if match:
            figures[key] = float(match.group(1))
    match = re.search(r"\| training step \(all\)\s*\|\s*[\d.]+\s*\|\s*([\d.]+)", output)
    if match:
        figures["tflops"] = float(match.group(1))
    return figures


def _metrics(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _settings(args) -> dict:
    if args.tiny:
        return {"arch": "smallcnn", "weights": "none", "size": 64, "epochs": 1, "batch": 16,
                "bench": ["--arch", "smallcnn", "--size", "64", "--images", "64",
                          "--batch-size", "16", "--steps", "2"],
                "maps_arch": "smallcnn", "normals": 24}  # fmt: skip
    return {"arch": "vgg16", "weights": "imagenet", "size": 256, "epochs": 3, "batch": 64,
            "bench": ["--arch", "vgg16", "--size", "256", "--batch-size", "64", "--steps", "30",
                      "--images", "2048"],
            "maps_arch": "efficientnet_lite0", "normals": 0}  # fmt: skip


def _data_steps(args, s: dict, work: Path, results: dict) -> None:
    """Bank, twins and evaluation sets of the real-data steps."""
    lp = lambda tool: str(BIN / tool)
    idrid, eyepacs = DATA / "idrid", DATA / "eyepacs256"
    _run("bank", [lp("lp-bank"), "build", "idrid_03", "--root", str(idrid),
                  "-o", str(work / "bank.h5")], results, 300)  # fmt: skip
    normals = ["--normals", str(eyepacs / "labels.csv"), "--split", "train"]
    if s["normals"]:  # tiny: a folder of a few grade-0 images
        folder = work / "normals"
        folder.mkdir()
        for line in (eyepacs / "labels.csv").read_text().splitlines()[1:]:
            name, grade = line.split(",")[:2]
            if grade.strip() == "0" and len(list(folder.iterdir())) < s["normals"]:
                (folder / f"{name}.jpeg").symlink_to(eyepacs / "images" / f"{name}.jpeg")
        normals = ["--normals", str(folder)]
    _run("synth", [lp("lp-synth"), "--bank", str(work / "bank.h5"), *normals, "--size",
                   str(s["size"]), "--preprocess", "none", "--match-colour", "-j", "8",
                   "--out", str(work / "synth")], results, 600)  # fmt: skip
    _run("prep", [lp("lp-synth"), "prep", "--images", str(eyepacs / "images"), "--labels",
                  str(eyepacs / "labels.csv"), "--split", "rest", "--like", str(work / "synth"),
                  "--bank", str(work / "bank.h5"), "--out", str(work / "test")], results, 600)  # fmt: skip
    _run("prep_masks", [lp("lp-synth"), "prep", "--images", str(idrid), "--like",
                        str(work / "synth"), "--bank", str(work / "bank.h5"),
                        "--out", str(work / "idrid")], results, 600)  # fmt: skip


def _training_steps(args, s: dict, work: Path, results: dict) -> None:
    """The real-data run, its torchrun twin, and the --maps run."""
    lp = lambda tool: str(BIN / tool)
    common = ["--arch", s["arch"], "--weights", s["weights"], "--epochs", str(s["epochs"]),
              "--batch-size", str(s["batch"]), "--device", args.device, "-q"]  # fmt: skip
    _run("train", [lp("lp-train"), str(work / "synth"), "--out", str(work / "run"), *common,
                   "--eval", str(work / "test")], results, 900)  # fmt: skip
    results["train"]["auc"] = _metrics(work / "run" / "eval" / "metrics.json").get("auc")
    log = (work / "run" / "log.jsonl").read_text().splitlines() if (work / "run").exists() else []
    results["train"]["log"] = [json.loads(line) for line in log]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1",
                lp("lp-train")]  # fmt: skip
    _run("torchrun", [*torchrun, str(work / "synth"), "--out", str(work / "run-ddp"), *common],
         results, 900)  # fmt: skip
    _run("eval_ddp", [lp("lp-eval"), str(work / "run-ddp"), str(work / "test"), "--out",
                      str(work / "eval-ddp"), "--device", args.device, "-q"], results, 600)  # fmt: skip
    results["torchrun"]["max_score_difference"] = _score_difference(
        work / "run" / "eval" / "scores.csv", work / "eval-ddp" / "scores.csv"
    )
    maps = ["--arch", s["maps_arch"], "--epochs", str(s["epochs"]), "--batch-size",
            str(s["batch"]), "--device", args.device, "--maps", "-q"]  # fmt: skip
    if args.tiny:
        maps += ["--weights", "none"]
    _run("maps", [lp("lp-train"), str(work / "synth"), "--out", str(work / "run-maps"), *maps],
         results, 900)  # fmt: skip
    _run("eval_maps", [lp("lp-eval"), str(work / "run-maps"), str(work / "idrid"), "--out",
                       str(work / "eval-maps"), "--maps", "--device", args.device, "-q"],
         results, 600)  # fmt: skip
    pixel = _metrics(work / "eval-maps" / "metrics.json").get("pixel", {})
    results["eval_maps"]["pixel"] = {
        kind: {k: pixel[kind].get(k) for k in ("auroc", "aupro", "dice")}
        for kind in ("maps", "gradcam")
        if isinstance(pixel.get(kind), dict)
    }


#: the paper's training (section 4): VGG16, fully fine-tuned, 256, batch 64, SGD lr 1e-3
#: with a cosine schedule, 50 epochs
PAPER = {"arch": "vgg16", "weights": "imagenet", "freeze": 0, "size": 256, "batch": 64,
         "lr": 0.001, "epochs": 50}  # fmt: skip
TINY_PAPER = {"arch": "smallcnn", "weights": "none", "freeze": 0, "size": 64, "batch": 16,
              "lr": 0.01, "epochs": 1}  # fmt: skip
PROTOCOL = ROOT / "docs" / "protocol"


def _tiny_list(part: str, work: Path, per_grade: int) -> Path:
    """The first ``per_grade`` images of each grade of a protocol list (``--tiny``)."""
    lines = (PROTOCOL / f"eyepacs256-{part}.csv").read_text().splitlines()
    kept, seen = [lines[0]], {}
    for line in lines[1:]:
        grade = line.rsplit(",", 1)[1]
        if seen.get(grade, 0) < per_grade:
            seen[grade] = seen.get(grade, 0) + 1
            kept.append(line)
    path = work / f"tiny-{part}.csv"
    path.write_text("\n".join(kept) + "\n")
    return path


def paper_protocol(
    work: Path,
    bank: Path,
    device: str,
    tiny: bool,
    results: dict,
    budget_s: float = 300.0,
    images_per_s: float | None = None,
) -> None:
    """The paper's protocol on the protocol's split, into ``results["paper_*"]``.

    Args:
        work: a scratch folder.
        bank: the lesion bank (IDRiD_03's).
        device: ``cuda`` or ``cpu``.
        tiny: tiny settings and a few images per grade (a CPU smoke test).
        results: the check's figures, added to.
        budget_s: the most seconds the two trainings may be estimated to take.
        images_per_s: the measured training throughput (``bench`` step), for the estimate.
    """
    lp = lambda tool: str(BIN / tool)
    s = TINY_PAPER if tiny else PAPER
    images = DATA / "eyepacs256" / "images"
    tuning = _tiny_list("tuning", work, 8) if tiny else PROTOCOL / "eyepacs256-tuning.csv"
    test = _tiny_list("test", work, 6) if tiny else PROTOCOL / "eyepacs256-test.csv"
    normals = sum(1 for line in tuning.read_text().splitlines()[1:] if line.endswith(",0"))
    labelled = len(tuning.read_text().splitlines()) - 1
    seen = (2 * normals + labelled) * s["epochs"]  # images each training sees, both runs
    estimate = round(seen / images_per_s, 1) if images_per_s else None
    results["paper_estimate"] = {"images_seen": seen, "images_per_s": images_per_s,
                                 "estimated_training_s": estimate, "budget_s": budget_s}  # fmt: skip
    if estimate is not None and estimate > budget_s:
        results["paper_estimate"]["skipped"] = "the estimate exceeds the budget"
        print(f"[paper] skipped: {estimate} s estimated > {budget_s} s", flush=True)
        return
    _run("paper_synth", [lp("lp-synth"), "--bank", str(bank), "--normals", str(tuning),
                         "--images", str(images), "--size", str(s["size"]), "--preprocess",
                         "none", "--match-colour", "-j", "8", "--out", str(work / "p-twins"),
                         "-q"], results, 900)  # fmt: skip
    for name, part in (("test", test), ("labelled", tuning)):
        _run(f"paper_prep_{name}", [lp("lp-synth"), "prep", "--images", str(images), "--labels",
                                    str(part), "--like", str(work / "p-twins"), "--bank",
                                    str(bank), "--out", str(work / f"p-{name}"), "-q"],
             results, 900)  # fmt: skip
    train = ["--arch", s["arch"], "--weights", s["weights"], "--freeze", str(s["freeze"]),
             "--epochs", str(s["epochs"]), "--batch-size", str(s["batch"]), "--lr", str(s["lr"]),
             "--device", device, "-q"]  # fmt: skip
    _run("paper_supervised", [lp("lp-train"), str(work / "p-labelled"), "--supervised", "--out",
                              str(work / "p-supervised"), *train, "--eval",
                              str(work / "p-test")], results, 1800)  # fmt: skip
    _run("paper_lesionpaste", [lp("lp-train"), str(work / "p-twins"), "--out",
                               str(work / "p-lesionpaste"), *train], results, 1800)  # fmt: skip
    _run("paper_eval", [lp("lp-eval"), str(work / "p-lesionpaste"), str(work / "p-test"),
                        "--out", str(work / "p-eval"), "--compare",
                        str(work / "p-supervised" / "eval"), "--device", device, "-q"],
         results, 900)  # fmt: skip
    mine = _metrics(work / "p-eval" / "metrics.json")
    theirs = _metrics(work / "p-supervised" / "eval" / "metrics.json")
    results["paper_eval"].update({
        "settings": s,
        "lesionpaste_auc": {k: v.get("auc") for k, v in mine.get("auc", {}).items()},
        "supervised_auc": {k: v.get("auc") for k, v in theirs.get("auc", {}).items()},
        "delong_lesionpaste_minus_supervised": {
            k: {"difference": v.get("difference"), "p": v.get("p")}
            for k, v in mine.get("compare", {}).get("delong", {}).items()
        },
    })  # fmt: skip


def _score_difference(a: Path, b: Path) -> float | None:
    """The largest difference between two scores.csv files' scores (None if one is missing)."""
    try:
        rows = [p.read_text().splitlines()[1:] for p in (a, b)]
    except OSError:
        return None
    scores = [[float(line.rsplit(",", 1)[1]) for line in r] for r in rows]
    if len(scores[0]) != len(scores[1]):
        return None
    return max((abs(x - y) for x, y in zip(*scores)), default=0.0)


def _table(results: dict) -> None:
    print(f"\n| {'step':<12} | {'exit':>4} | {'seconds':>8} | figures")
    print(f"|{'-' * 14}|{'-' * 6}|{'-' * 10}|{'-' * 40}")
    for name, r in results.items():
        if not isinstance(r, dict) or "exit" not in r:
            continue
        figures = {k: v for k, v in r.items() if k not in ("seconds", "exit", "tail", "log")}
        text = json.dumps(figures)[:120] if figures else ""
        print(f"| {name:<12} | {r['exit']:>4} | {r['seconds']:>8} | {text}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny settings (a CPU smoke test)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--only",
        choices=["all", "paper"],
        default="all",
        help="paper: only the paper's protocol (make paper-eyepacs)",
    )
    parser.add_argument(
        "--paper-budget",
        type=float,
        default=300.0,
        help="the most seconds the paper's two trainings may be estimated at",
    )
    args = parser.parse_args()
    out = args.out or Path(os.environ.get("OUT", ".")) / "gpu_check.json"
    s = _settings(args)
    results: dict = {"device": args.device, "tiny": args.tiny, "started": time.time()}
    bench = [sys.executable, "bench/bench_train.py", "--device", args.device, *s["bench"]]
    tests = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests/"]
    if args.only == "all":
        _run("cuda_tests", tests, results, 300)
    text = _run("bench", bench, results, 600)  # the throughput the paper's estimate uses
    results["bench"].update(_bench_figures(text))
    if args.only == "all":
        text = _run("bench_compile", [*bench, "--compile"], results, 600)
        results["bench_compile"].update(_bench_figures(text))
        maps_bench = [*bench[:4], "--arch", s["maps_arch"], *s["bench"][2:], "--maps"]
        text = _run("bench_maps", maps_bench, results, 600)
        results["bench_maps"].update(_bench_figures(text))
    work = Path(tempfile.mkdtemp(prefix="lp-gpu-check-"))
    try:
        if args.only == "all":
            _data_steps(args, s, work, results)
            _training_steps(args, s, work, results)
        else:
            _run("bank", [str(BIN / "lp-bank"), "build", "idrid_03", "--root",
                          str(DATA / "idrid"), "-o", str(work / "bank.h5")], results, 300)  # fmt: skip
        speed = results["bench"].get("step_images_per_s")
        paper_protocol(work, work / "bank.h5", args.device, args.tiny, results,
                       args.paper_budget, None if args.tiny else speed)  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["seconds"] = round(time.time() - results["started"], 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    _table(results)
    print(f"wrote {out} ({results['seconds']} s)")
    steps = [r for r in results.values() if isinstance(r, dict) and "exit" in r]
    return 0 if all(r["exit"] in (0, 5) for r in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
