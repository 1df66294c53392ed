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
5. a ``--maps`` run (EfficientNet-Lite0) evaluated on the held-out IDRiD images' masks.

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
    args = parser.parse_args()
    out = args.out or Path(os.environ.get("OUT", ".")) / "gpu_check.json"
    s = _settings(args)
    results: dict = {"device": args.device, "tiny": args.tiny, "started": time.time()}
    bench = [sys.executable, "bench/bench_train.py", "--device", args.device, *s["bench"]]
    tests = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests/"]
    _run("cuda_tests", tests, results, 300)
    for name, extra in (("bench", []), ("bench_compile", ["--compile"])):
        text = _run(name, [*bench, *extra], results, 600)
        results[name].update(_bench_figures(text))
    maps_bench = [*bench[:4], "--arch", s["maps_arch"], *s["bench"][2:], "--maps"]
    text = _run("bench_maps", maps_bench, results, 600)
    results["bench_maps"].update(_bench_figures(text))
    work = Path(tempfile.mkdtemp(prefix="lp-gpu-check-"))
    try:
        _data_steps(args, s, work, results)
        _training_steps(args, s, work, results)
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
