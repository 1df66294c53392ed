"""Benchmark: scoring throughput before and after ``train.models.fused.for_inference``.

Both models are restored the way ``lp-eval`` restores a run (``train.evaluation.evaluate_run.restore``: the
backbone, a ``MapModel`` with ``--maps``, the same state dict, channels-last on the device)
and score the same images through the same path (``train.models.on_device.scores_of``, or
``train.models.decoder.map_outputs`` with ``--maps``), alternately, ``--rounds`` times; the table gives
the medians, the ratio after/before and the largest score (and map) difference. The images are
the 256x256 EyePACS JPEGs of ``../shared/data/eyepacs256`` (random ones with ``--random``).
Target (issue: scoring on the CPU): EfficientNet-Lite0 at 256x256 >= 2x, e.g.:

    python bench/bench_inference.py
    python bench/bench_inference.py --arch resnet18 --size 128 --images 256
    python bench/bench_inference.py --maps --batch-size 32 --keep-memory

``--keep-memory`` applies to both rows (it is process-wide): compare two runs for its effect.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from lesionpaste.train.models.build import build_model
from lesionpaste.train.models.decoder import MapModel, map_outputs
from lesionpaste.train.models.fused import for_inference, keep_freed_memory
from lesionpaste.train.models.on_device import Normalizer, pick_device, place_images, scores_of

SHARED_DATA = Path(
    os.environ.get("LP_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="efficientnet_lite0")
    parser.add_argument(
        "--weights", default=None, help="default: imagenet for efficientnet_lite0, else none"
    )
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--batch-size", type=int, default=0, help="default: lp-eval's (128, 64 with --maps)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: as is)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--maps", action="store_true", help="a MapModel, scored with its maps")
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "eyepacs256" / "images")
    parser.add_argument("--random", action="store_true", help="random pixels, not EyePACS")
    parser.add_argument(
        "--keep-memory", action="store_true", help="train.models.fused.keep_freed_memory() first"
    )
    return parser.parse_args()


def _images(args) -> np.ndarray:
    """``(N, size, size, 3)`` uint8 RGB images: EyePACS JPEGs (resized if need be), or random."""
    if args.random:
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (args.images, args.size, args.size, 3), dtype=np.uint8)
    paths = sorted(args.data.glob("*.jp*g"))[: args.images]
    if len(paths) < args.images:
        raise SystemExit(f"{args.data}: {len(paths)} JPEGs, {args.images} wanted (or --random)")
    out = np.empty((len(paths), args.size, args.size, 3), np.uint8)
    for i, path in enumerate(paths):
        image = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        if image.shape[:2] != (args.size, args.size):
            image = cv2.resize(image, (args.size, args.size), interpolation=cv2.INTER_AREA)
        out[i] = image
    return out


def _restored(args, device: torch.device, state: dict | None):
    """A model as ``restore`` builds it: the backbone (a ``MapModel`` with ``--maps``) with
    ``state`` loaded, channels-last on the device; and its state dict."""
    if state is None:
        weights = args.weights or ("imagenet" if args.arch == "efficientnet_lite0" else "none")
        model, _ = build_model(args.arch, weights)
    else:
        model, _ = build_model(args.arch, "none")
    if args.maps:
        model = MapModel(model, args.arch)
    if state is not None:
        model.load_state_dict(state)
    model = model.to(device, memory_format=torch.channels_last)
    return model, model.state_dict()


def _scorer(args, model, normalizer, images, device):
    """The scoring call of ``lp-eval`` for this model: ``() -> (scores, maps or None)``."""
    if args.maps:
        return lambda: map_outputs(model, normalizer, images, device, args.batch_size)
    return lambda: (scores_of(model, normalizer, images, device, args.batch_size), None)


def main() -> None:
    args = _arguments()
    args.batch_size = args.batch_size or (64 if args.maps else 128)
    if args.keep_memory and not keep_freed_memory():
        raise SystemExit("--keep-memory: not glibc (mallopt refused)")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    images, _ = place_images(_images(args), device)
    normalizer = Normalizer(args.size, True, args.arch).to(device)
    before, state = _restored(args, device, None)
    after = for_inference(_restored(args, device, state)[0])
    runs = {
        "before": _scorer(args, before, normalizer, images, device),
        "for_inference": _scorer(args, after, normalizer, images, device),
    }
    small = images[: args.batch_size]
    scores_of(before, normalizer, small, device), scores_of(after, normalizer, small, device)
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    outputs = {}
    for _ in range(args.rounds):
        for name, run in runs.items():  # alternately, so that a busy machine hits both
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            outputs[name] = run()
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds[name].append(time.perf_counter() - t0)
    _print_table(args, device, seconds, outputs)


def _print_table(args, device, seconds: dict, outputs: dict) -> None:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    source = "random pixels" if args.random else str(args.data)
    print(
        f"scoring benchmark: {args.arch}{' + maps' if args.maps else ''} at "
        f"{args.size}x{args.size}, {args.images} images ({source}), batch {args.batch_size}, "
        f"{name} ({torch.get_num_threads()} threads), median of {args.rounds} rounds"
        + (", keep_freed_memory()" if args.keep_memory else "")
    )
    print(f"| {'model':<14} | {'images/s':>9} | {'s per pass':>10} | {'rounds (s)':<24} |")
    print(f"|{'-' * 16}|{'-' * 11}|{'-' * 12}|{'-' * 26}|")
    medians = {}
    for model, times in seconds.items():
        medians[model] = statistics.median(times)
        rounds = ", ".join(f"{t:.1f}" for t in times)
        print(
            f"| {model:<14} | {args.images / medians[model]:>9.1f} | "
            f"{medians[model]:>10.2f} | {rounds:<24} |"
        )
    (s0, m0), (s1, m1) = outputs["before"], outputs["for_inference"]
    line = (
        f"speed-up (for_inference / before): {medians['before'] / medians['for_inference']:.2f}x; "
        f"max |score difference| {np.abs(s0 - s1).max():.2e}"
    )
    if m0 is not None:
        line += f", max |map difference| {np.abs(m0 - m1).max():.2e}"
    print(line)


if __name__ == "__main__":
    main()
