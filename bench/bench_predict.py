"""Benchmark: scoring new images (issue 24), each figure against a baseline measured in the same
run.

1. ``lp-predict`` on raw images against ``lp-synth prep`` + ``lp-eval`` on the same images
   (target: at least as fast), whole processes, alternately, ``--rounds`` times (medians).
2. The forward pass, images/s: PyTorch as ``lp-eval`` runs it, and the run's ONNX export
   through ONNX Runtime, on the same prepared images (the same scores within 1e-4).
3. ``lp-predict``'s peak memory for ``--small`` against ten times as many images (target: flat),
   each process's own peak (``VmHWM``), with a small model: the point is the streaming.

The run is EfficientNet-Lite0 (ImageNet weights, ``--freeze 6``, one epoch) on twins of
eyepacs256 normals at 256x256 (``--preprocess none``), made once into ``--work``::

    python bench/bench_predict.py                       # 512 images, 3 rounds
    python bench/bench_predict.py --images 2044 --rounds 1 --small 1000
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SHARED_DATA = Path(
    os.environ.get("LP_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
)
BIN = Path(sys.executable).parent


def _peak_kib(pid: int) -> int:
    """The process's own peak resident memory (``VmHWM``, KiB), 0 once it has ended. Not
    ``ru_maxrss``: on Linux a child keeps the peak of the process it was forked from."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            return next((int(line.split()[1]) for line in fh if line.startswith("VmHWM")), 0)
    except (OSError, ValueError):
        return 0


def run(*args, quiet: bool = True) -> tuple[float, float]:
    """Run a console script; its wall seconds and its own peak memory (MiB, ``VmHWM`` read
    every 20 ms while it runs)."""
    command = [str(BIN / args[0]), *map(str, args[1:])]
    t0 = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL if quiet else None, stderr=subprocess.PIPE
    )
    peak = 0
    while process.poll() is None:
        peak = max(peak, _peak_kib(process.pid))
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed: {process.stderr.read().decode()[-2000:]}")
    return wall, peak / 1024


def link(paths: list[Path], folder: Path) -> Path:
    """Symbolic links to ``paths`` in a new ``folder`` (distinct names: a repeat gets a
    suffix)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i, p in enumerate(paths):
        os.symlink(p, folder / f"{p.stem}_{i}{p.suffix}")
    return folder


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512, help="images scored in rows 1-2")
    parser.add_argument("--normals", type=int, default=200, help="twins the run trains on")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--small", type=int, default=1000, help="row 3: this and 10x as many")
    parser.add_argument("--work", type=Path, default=Path("work/bench_predict"))
    parser.add_argument("--jobs", type=int, default=2, help="lp-predict -j in row 1")
    return parser.parse_args()


def _setup(args) -> tuple[Path, Path, list[Path]]:
    """The bank, the run (EfficientNet-Lite0) and the images scored."""
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    everything = sorted((SHARED_DATA / "eyepacs256").rglob("*.jpeg"))
    normals, rest = everything[: args.normals], everything[args.normals :]
    bank = work / "bank.h5"
    if not bank.exists():
        run("lp-bank", "build", "idrid_03", "--root", SHARED_DATA / "idrid", "-o", bank, "-q")
    if not (work / "run" / "contract.json").exists():
        folder = link(normals, work / "normals")
        run(
            "lp-synth",
            "--bank",
            bank,
            "--normals",
            folder,
            "--size",
            "256",
            "--preprocess",
            "none",
            "--match-colour",
            "-o",
            work / "twins",
            "--overwrite",
            "-q",
            "-j",
            "2",
        )
        run("lp-train", work / "twins", "-o", work / "run", "--arch", "efficientnet_lite0",
            "--freeze", "6", "--epochs", "1", "--batch-size", "32", "--lr", "0.01", "--device",
            "cpu", "--overwrite", "-q")  # fmt: skip
    return bank, work / "run", rest[: args.images]


def _end_to_end(args, bank: Path, run_dir: Path, images: list[Path]) -> dict:
    """Row 1: lp-predict against lp-synth prep + lp-eval, alternately."""
    work = args.work
    folder = link(images, work / "images")
    times: dict[str, list[float]] = {"prep+eval": [], "predict -j 1": [], "predict -j N": []}
    for _ in range(args.rounds):
        a, _ = run("lp-synth", "prep", "--images", folder, "--label", "0", "--bank", bank,
                   "--like", work / "twins", "-o", work / "ev", "--overwrite", "-q", "-j", "1")  # fmt: skip
        b, _ = run("lp-eval", run_dir, work / "ev", "-o", work / "eval", "--device", "cpu",
                   "--overwrite", "-q")  # fmt: skip
        times["prep+eval"].append(a + b)
        for key, jobs in (("predict -j 1", 1), ("predict -j N", args.jobs)):
            t, _ = run("lp-predict", run_dir, folder, "-o", work / "pred", "--overwrite",
                       "--device", "cpu", "-q", "-j", jobs)  # fmt: skip
            times[key].append(t)
    return {k: statistics.median(v) for k, v in times.items()}


def _forward(args, run_dir: Path, images: list[Path]) -> dict:
    """Row 2: PyTorch against ONNX Runtime on the same prepared images."""
    from lesionpaste.train.deploy.loading import load_detector

    export = args.work / "onnx"
    if not (export / "model.json").exists():
        run("lp-export", run_dir, "--format", "onnx", "-o", export, "--overwrite", "-q")
    torch_detector = load_detector(run_dir, device="cpu")
    onnx_detector = load_detector(export)
    prepared = np.stack([torch_detector.contract.preparation.prepare(p).image for p in images])
    out: dict = {"torch": [], "onnx": []}
    scores = {}
    for _ in range(args.rounds):
        for name, detector in (("torch", torch_detector), ("onnx", onnx_detector)):
            t0 = time.perf_counter()
            scores[name] = detector.score(prepared).scores
            out[name].append(len(prepared) / (time.perf_counter() - t0))
    result = {k: statistics.median(v) for k, v in out.items()}
    result["max_diff"] = float(np.abs(scores["torch"] - scores["onnx"]).max())
    return result


def _memory(args) -> dict:
    """Row 3: lp-predict's peak memory for N and 10 N images (a small model)."""
    work = args.work
    small = work / "small"
    if not (small / "run" / "contract.json").exists():
        normals = sorted((SHARED_DATA / "eyepacs256").rglob("*.jpeg"))[:40]
        run(
            "lp-synth",
            "--bank",
            work / "bank.h5",
            "--normals",
            link(normals, small / "n"),
            "--size",
            "64",
            "--preprocess",
            "none",
            "-o",
            small / "twins",
            "--overwrite",
            "-q",
        )
        run("lp-train", small / "twins", "-o", small / "run", "--arch", "smallcnn", "--weights",
            "none", "--epochs", "1", "--device", "cpu", "--overwrite", "-q")  # fmt: skip
    everything = sorted((SHARED_DATA / "eyepacs256").rglob("*.jpeg"))
    out = {}
    for n in (args.small, 10 * args.small):
        folder = link([everything[i % len(everything)] for i in range(n)], small / f"in{n}")
        wall, peak = run("lp-predict", small / "run", folder, "-o", small / f"p{n}",
                         "--overwrite", "--device", "cpu", "-q")  # fmt: skip
        out[n] = (wall, peak)
    return out


def main() -> None:
    """Print the three tables."""
    args = _arguments()
    bank, run_dir, images = _setup(args)
    n = len(images)
    e2e = _end_to_end(args, bank, run_dir, images)
    base = e2e["prep+eval"]
    print(f"\n1. {n} eyepacs256 images, EfficientNet-Lite0 at 256, medians of {args.rounds}")
    print(f"{'command':<34} {'wall s':>8} {'images/s':>9} {'vs prep+eval':>13}")
    for key, t in e2e.items():
        label = key.replace("-j N", f"-j {args.jobs}")
        print(f"{label:<34} {t:8.1f} {n / t:9.1f} {base / t:12.2f}x")
    fwd = _forward(args, run_dir, images)
    print(f"\n2. forward pass on {n} prepared images (images/s, medians of {args.rounds})")
    print(f"{'PyTorch (lp-eval path)':<34} {fwd['torch']:9.1f}")
    print(f"{'ONNX Runtime (lp-export onnx)':<34} {fwd['onnx']:9.1f} "
          f"{fwd['onnx'] / fwd['torch']:6.2f}x   max score difference {fwd['max_diff']:.2e}")  # fmt: skip
    memory = _memory(args)
    print("\n3. lp-predict peak memory (smallcnn at 64; the streaming, not the model)")
    (n1, (w1, m1)), (n2, (w2, m2)) = memory.items()
    print(f"{n1:>6} images: {m1:7.1f} MiB, {w1:6.1f} s")
    print(f"{n2:>6} images: {m2:7.1f} MiB, {w2:6.1f} s   ({m2 / m1:.2f}x the memory)")


if __name__ == "__main__":
    main()
