"""Benchmark: lp-synth throughput against the I/O floor and a naive PIL loop, same run.

For 256x256 inputs (eyepacs256, grade 0) and full-resolution photographs (eyepacs_fullres),
output 256x256, bank from IDRiD_03:
- floor: read and decode each input and encode its three outputs (normal, twin, mask PNGs),
  nothing else, one core;
- floor + preparation: the same plus what every twin needs before any paste (disc, crop,
  resize, Graham's recipe): the ceiling lp-synth could reach if pasting cost nothing;
- naive: a straightforward PIL loop (open, resize, crop-and-paste the same number of lesions
  with the mask, save), one core;
- lp-synth -j 1 and -j 2 (the real runner: preprocessing, augmentation, MixUp, records).
Then the peak memory of one worker making one twin of the 4928x3264 photograph.

Targets (issue 14): at 256x256, -j 1 at least 0.7x "floor + preparation"; -j 2 at least
1.8x -j 1 (on 1000+ images: --n256 1000); at full resolution, -j 1 at least 0.9x the floor.
Peak memory per worker under 1 GB at 4928x3264 (issue 3).

    python bench/bench_synth.py [--n256 1000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from bench_bank import full_build  # bench/ is the script's folder: first on sys.path

from lesionpaste.bank_builder import idrid
from lesionpaste.bank_format import read_bank
from lesionpaste.recipes import GrahamRecipe
from lesionpaste.synth.inputs.normals import list_folder, read_label_file
from lesionpaste.synth.pasting.tiers import make_tiers
from lesionpaste.synth.pasting.twin import PasteConfig
from lesionpaste.synth.run.job import Job
from lesionpaste.synth.run.runner import run_synthesis

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def make_bank(path: Path) -> Path:
    image, masks = idrid.locate(DATA / "idrid", "IDRiD_03", warn=lambda m: None)
    full_build(DATA / "idrid", "IDRiD_03", image, masks, path)
    return path


def ours(items, bank_path, out: Path, jobs: int) -> float:
    bank = read_bank(bank_path)
    job = Job(
        bank_path=bank_path,
        bank_sha256=bank.sha256,
        tiers=tuple(make_tiers("fundus", bank.counts())),
        paste=PasteConfig(),
        size=256,
    )
    chunk = 16 if items[0].path.stat().st_size < 200_000 else 2
    t0 = time.perf_counter()
    run_synthesis(items, job, out, command="bench", jobs=jobs, chunk_size=chunk)
    return len(items) / (time.perf_counter() - t0)


def floor(items, out: Path) -> float:
    """Decode every input, encode the three outputs lp-synth wrote for it (arrays preloaded)."""
    outputs = {}
    for item in items:
        outputs[item.image_id] = [
            cv2.imread(str(out / f"images/normal/{item.image_id}.png")),
            cv2.imread(str(out / f"images/anomalous/{item.image_id}.png")),
            cv2.imread(str(out / f"masks/{item.image_id}.png"), cv2.IMREAD_GRAYSCALE),
        ]
    t0 = time.perf_counter()
    for item in items:
        cv2.imdecode(np.frombuffer(item.path.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
        for array in outputs[item.image_id]:
            cv2.imencode(".png", array)
    return len(items) / (time.perf_counter() - t0)


def preparation_only(items, out: Path) -> float:
    """The floor plus the preparation every twin needs before any lesion is pasted (disc
    estimate, crop, resize, Graham's recipe): what lp-synth would reach with free pasting."""
    from lesionpaste.images import read_rgb_at_least
    from lesionpaste.preparation import prepare_fundus

    outputs = {}
    for item in items:
        outputs[item.image_id] = [
            cv2.imread(str(out / f"images/anomalous/{item.image_id}.png")),
            cv2.imread(str(out / f"masks/{item.image_id}.png"), cv2.IMREAD_GRAYSCALE),
        ]
    t0 = time.perf_counter()
    for item in items:
        raw, _ = read_rgb_at_least(item.path, 256)
        prepared = prepare_fundus(raw, GrahamRecipe(), 256)
        cv2.imencode(".png", prepared.image)
        for array in outputs[item.image_id]:
            cv2.imencode(".png", array)
    return len(items) / (time.perf_counter() - t0)


def naive(items, bank_path, out: Path, tmp: Path) -> float:
    """A straightforward PIL crop-and-paste loop making as many pastes as lp-synth did."""
    from PIL import Image

    bank = read_bank(bank_path)
    counts = {
        json.loads(line)["twin_id"]: len(json.loads(line)["pastes"])
        for line in (out / "pastes.jsonl").read_text().splitlines()
    }
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for item in items:
        image = Image.open(item.path).convert("RGB").resize((256, 256))
        twin = image.copy()
        mask = Image.new("L", (256, 256))
        for _ in range(counts.get(item.image_id, 0)):
            lesion = bank.lesion(int(rng.integers(len(bank))))
            scale = 0.075 * rng.uniform(0.75, 1.25)
            w = max(1, round(lesion.patch.shape[1] * scale))
            h = max(1, round(lesion.patch.shape[0] * scale))
            patch = Image.fromarray(lesion.patch).resize((w, h))
            pmask = Image.fromarray(lesion.mask.astype(np.uint8) * 255).resize((w, h))
            angle = rng.uniform(0, 360)
            patch, pmask = patch.rotate(angle, expand=True), pmask.rotate(angle, expand=True)
            x, y = (
                int(rng.integers(0, 256 - patch.width + 1)),
                int(rng.integers(0, 256 - patch.height + 1)),
            )
            twin.paste(
                Image.blend(twin.crop((x, y, x + patch.width, y + patch.height)), patch, 0.65),
                (x, y),
                pmask,
            )
            mask.paste(255, (x, y), pmask)
        image.save(tmp / "n.png")
        twin.save(tmp / "a.png")
        mask.save(tmp / "m.png")
    return len(items) / (time.perf_counter() - t0)


PEAK = """
import resource, sys, tempfile
from pathlib import Path
from lesionpaste.bank_format import read_bank
from lesionpaste.synth.inputs.normals import NormalImage
from lesionpaste.synth.run.job import Job
from lesionpaste.synth.run.worker import make_one
from lesionpaste.synth.pasting.tiers import make_tiers
from lesionpaste.synth.pasting.twin import PasteConfig
bank = read_bank(sys.argv[1])
job = Job(bank_path=Path(sys.argv[1]), bank_sha256=bank.sha256, size=int(sys.argv[3]),
          tiers=tuple(make_tiers("fundus", bank.counts())), paste=PasteConfig())
make_one(NormalImage("big", Path(sys.argv[2])), job, Path(tempfile.mkdtemp()))
# VmHWM: this process's own peak; ru_maxrss would include the benchmark's own size, which a
# child inherits on Linux at fork
try:
    status = Path("/proc/self/status").read_text().splitlines()
    print(next(int(l.split()[1]) for l in status if l.startswith("VmHWM:")) / 1024)
except (OSError, StopIteration):
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def peak_mb(bank_path: Path, image: Path, size: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", PEAK, str(bank_path), str(image), str(size)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n256", type=int, default=300)
    parser.add_argument(
        "--rounds", type=int, default=3, help="each method this many times, in turn; medians"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        bank_path = make_bank(tmp / "bank.h5")
        small, _ = read_label_file(DATA / "eyepacs256/labels.csv", DATA / "eyepacs256/images", {0})
        full = list_folder(DATA / "eyepacs_fullres/images")
        print(
            f"lp-synth benchmark, output 256x256, bank IDRiD_03; {resource.getpagesize()} B pages"
        )
        print(f"| {'input':<26} | {'method':<22} | {'images/s':>9} | {'x floor':>8} |")
        print(f"|{'-' * 28}|{'-' * 24}|{'-' * 11}|{'-' * 10}|")
        results = {}
        for name, items in (
            ("eyepacs256 (256x256)", small[: args.n256]),
            ("eyepacs_fullres (full)", full),
        ):
            rates = []
            for r in range(args.rounds):  # in turn, so that a drift of the machine hits each
                out = tmp / f"{len(results)}-{r}-j1"
                rates.append(
                    (
                        ours(items, bank_path, out, 1),
                        ours(items, bank_path, tmp / f"{len(results)}-{r}-j2", 2),
                        floor(items, out),
                        preparation_only(items, out),
                    )
                )
            one, two, base, prepared = (float(np.median(r)) for r in zip(*rates))
            pil = naive(items, bank_path, out, tmp)
            results[name] = (one, two, base, prepared)
            for method, rate in (
                ("floor: decode + encode", base),
                ("floor + preparation", prepared),
                ("naive PIL loop", pil),
                ("lp-synth -j 1", one),
                ("lp-synth -j 2", two),
            ):
                print(f"| {name:<26} | {method:<22} | {rate:>9.1f} | {rate / base:>8.2f} |")
        big = DATA / "eyepacs_fullres/images/15_left.jpeg"
        mem = {size: peak_mb(bank_path, big, size) for size in (256, 0)}
        print()
        (one, two, _, prepared), (full_one, _, full_base, _) = results.values()
        print(
            f"256x256: -j 1 = {one / prepared:.2f}x floor + preparation (target >= 0.70: "
            f"{'met' if one >= 0.7 * prepared else 'NOT met'}); -j 2 = {two / one:.2f}x -j 1 "
            f"(target >= 1.80 on {args.n256} images: {'met' if two >= 1.8 * one else 'NOT met'})"
        )
        print(
            f"full resolution: -j 1 = {full_one / full_base:.2f}x floor (target >= 0.90: "
            f"{'met' if full_one >= 0.9 * full_base else 'NOT met'})"
        )
        for size, mb in mem.items():
            print(
                f"peak memory of one worker, 4928x3264 input, --size {size}: {mb:.0f} MB "
                f"(target < 1024: {'met' if mb < 1024 else 'NOT met'})"
            )


if __name__ == "__main__":
    main()
