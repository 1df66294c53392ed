"""Benchmark: building a bank from one full-size IDRiD image vs merely decoding its files.

Target (issue 2): the whole build takes at most 2x the time to decode the image and its masks.
Both are measured in the same run, medians of --repeat runs, on ../shared/data/idrid.

    python bench/bench_bank.py [--root ../shared/data/idrid] [--id idrid_03] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from lesionpaste.bank_builder import idrid
from lesionpaste.bank_builder.annotated import FUNDUS_TYPES
from lesionpaste.bank_builder.build import build_bank
from lesionpaste.bank_builder.loaders import load_fundus
from lesionpaste.recipes import GrahamRecipe

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "idrid"


def decode_only(image: Path, masks: dict[str, Path]) -> None:
    """The floor: read and decode the image and every mask, nothing else."""
    cv2.imdecode(np.frombuffer(image.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    for path in masks.values():
        cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_GRAYSCALE)


def full_build(root: Path, name: str, image: Path, masks: dict[str, Path], out: Path) -> None:
    """Everything lp-bank build does: read, hash, preprocess, extract, write the HDF5 file."""
    source = load_fundus(name, image, masks, GrahamRecipe(), base=root)
    build_bank(
        [source],
        out,
        modality="fundus",
        lesion_types=FUNDUS_TYPES,
        recipe=GrahamRecipe(),
        command="bench",
        overwrite=True,
    )


def median_seconds(fn, repeat: int) -> float:
    fn()  # warm-up: page cache, library initialisation
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--id", default="idrid_03")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    name = idrid.normalise_id(args.id)
    image, masks = idrid.locate(args.root, name, warn=lambda m: None)
    h, w = cv2.imread(str(image)).shape[:2]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bank.h5"
        decode = median_seconds(lambda: decode_only(image, masks), args.repeat)
        build = median_seconds(lambda: full_build(args.root, name, image, masks, out), args.repeat)
        size = out.stat().st_size
    print(
        f"bank build benchmark: {name} ({w}x{h}, masks {', '.join(masks)}), "
        f"median of {args.repeat}, bank {size / 1e6:.1f} MB"
    )
    print(f"| {'step':<32} | {'seconds':>8} | {'x decode':>8} |")
    print(f"|{'-' * 34}|{'-' * 10}|{'-' * 10}|")
    print(f"| {'decode image + masks (baseline)':<32} | {decode:>8.3f} | {1.0:>8.2f} |")
    print(f"| {'lp-bank build (everything)':<32} | {build:>8.3f} | {build / decode:>8.2f} |")
    verdict = "met" if build <= 2 * decode else "NOT met"
    print(f"target: build <= 2.00 x decode -> {verdict}")


if __name__ == "__main__":
    main()
