"""Benchmark: training throughput and achieved TFLOP/s, next to the input pipeline alone.

The pipeline is what feeds each step (index the uint8 images held on the device, normalise,
resize); the training step adds the model's forward and backward and the optimiser. FLOPs are
3x the forward FLOPs counted by torch's FlopCounterMode. Target (issue 4, one H100): VGG16 at 256x256
in bf16 at >= 2500 images/s, the pipeline >= 5x faster than the model. On a CPU, run a small
arch, e.g.:

    python bench/bench_train.py --arch resnet18 --size 64 --device cpu
    python bench/bench_train.py --arch vgg16 --size 256 --device cuda --batch-size 64

``--freeze N`` adds a row for the step of ``lp-train --freeze N``: the trainable tail on the
cached activations of the first N stages (their one-off caching is timed and printed too).
``--maps`` adds a row for the same step with the dense decoder of ``lp-train --maps`` and its
pixel loss (train/models/decoder.py), measured in the same run, and the ratio to the plain step.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from lesionpaste.train.models.build import build_model
from lesionpaste.train.models.on_device import Normalizer, pick_device, place_images
from lesionpaste.train.training.schedule import optimizer_and_schedule


def timed(fn, steps: int, device: torch.device) -> float:
    fn()  # warm-up (cudnn autotuning, allocator)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--maps", action="store_true", help="also time the dense decoder")
    parser.add_argument("--freeze", type=int, default=0, help="also time --freeze N")
    return parser.parse_args()


def _print_table(
    args, device, amp: bool, flops: float, t_pipe: float, t_step: float, t_maps: float | None
) -> None:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    threads = torch.get_num_threads()
    print(
        f"training benchmark: {args.arch} at {args.size}x{args.size}, batch {args.batch_size}, "
        f"{'bf16 autocast' if amp else 'fp32'}, {name} ({threads} threads)"
    )
    print(f"| {'what':<28} | {'images/s':>10} | {'TFLOP/s':>8} |")
    print(f"|{'-' * 30}|{'-' * 12}|{'-' * 10}|")
    print(f"| {'input pipeline alone':<28} | {args.batch_size / t_pipe:>10.1f} | {'':>8} |")
    print(
        f"| {'training step (all)':<28} | {args.batch_size / t_step:>10.1f} | "
        f"{flops / t_step / 1e12:>8.3f} |"
    )
    if t_maps is not None:
        print(f"| {'training step + decoder':<28} | {args.batch_size / t_maps:>10.1f} | {'':>8} |")
        print(f"decoder cost: the step with maps takes {t_maps / t_step:.2f}x the plain step")
    print(
        f"pipeline / training speed: {t_step / t_pipe:.1f}x (target >= 5x); "
        f"{flops / args.batch_size / 1e9:.2f} GFLOP per image per step"
    )


def main() -> None:
    args = _arguments()
    device = pick_device(args.device)
    torch.backends.cudnn.benchmark = True
    rng = np.random.default_rng(0)
    images, _ = place_images(
        rng.integers(0, 256, (args.images, args.size, args.size, 3), dtype=np.uint8), device
    )
    labels = torch.from_numpy(rng.integers(0, 2, args.images)).to(images.device)
    model, _ = build_model(args.arch, "none")
    model = model.to(device, memory_format=torch.channels_last)
    if args.compile:
        model = torch.compile(model)
    normalizer = Normalizer(args.size, True, args.arch).to(device)
    optimizer, _ = optimizer_and_schedule(model.parameters(), 1e-3, 0.9, 0.0, epochs=1)
    gen = torch.Generator().manual_seed(0)
    amp = device.type == "cuda"

    def batch():
        idx = torch.randint(0, args.images, (args.batch_size,), generator=gen).to(images.device)
        return normalizer(images[idx].to(device, non_blocking=True)), labels[idx].to(device)

    def pipeline():
        batch()

    def step():
        x, y = batch()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    # FLOPs of a training step: 3x the counted forward (backward ~ 2x forward), because
    # torch's counter overcounts the backward of grouped (depthwise) convolutions
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        x, _ = batch()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            model(x)
    flops = 3 * counter.get_total_flops()
    t_pipe = timed(pipeline, args.steps, device)
    t_step = timed(step, args.steps, device)
    t_maps = _timed_with_maps(args, device, amp, images, labels, normalizer, gen)
    _print_table(args, device, amp, flops, t_pipe, t_step, t_maps)
    _frozen_rows(args, device, amp, images, labels, normalizer, gen, t_step)


def _frozen_rows(args, device, amp, images, labels, normalizer, gen, t_step: float) -> None:
    """With ``--freeze N``: the step on cached activations, and the caching itself."""
    if not args.freeze:
        return
    from lesionpaste.train.training.frozen import Tail, cache_activations

    model, _ = build_model(args.arch, "none")
    model = model.to(device, memory_format=torch.channels_last)
    tail = Tail(model, args.arch, args.freeze)
    started = time.perf_counter()
    cache = cache_activations(tail, normalizer, images, device)
    caching = time.perf_counter() - started
    optimizer, _ = optimizer_and_schedule(model.parameters(), 1e-3, 0.9, 0.0, epochs=1)

    def step():
        idx = torch.randint(0, args.images, (args.batch_size,), generator=gen)
        y = labels[idx.to(labels.device)].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = tail(cache.batch(idx, device))
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    t_frozen = timed(step, args.steps, device)
    cache.close()
    print(
        f"| {f'step, --freeze {args.freeze}':<28} | {args.batch_size / t_frozen:>10.1f} | {'':>8} |"
    )
    print(
        f"--freeze {args.freeze}: the step takes {t_frozen / t_step:.2f}x the full step; caching "
        f"{args.images} images took {caching:.1f} s ({args.images / caching:.0f} img/s, once)"
    )


def _timed_with_maps(args, device, amp, images, labels, normalizer, gen) -> float | None:
    """Seconds per training step of the same backbone with the dense decoder and pixel loss."""
    if not args.maps:
        return None
    from lesionpaste.train.models.decoder import MapModel, map_loss

    backbone, _ = build_model(args.arch, "none")
    model = MapModel(backbone, args.arch).to(device, memory_format=torch.channels_last)
    optimizer, _ = optimizer_and_schedule(model.parameters(), 1e-3, 0.9, 0.0, epochs=1)
    masks = torch.zeros(args.images, args.size, args.size, dtype=torch.uint8)
    masks[::2, : args.size // 8, : args.size // 8] = 1
    masks = masks.to(images.device)

    def step():
        idx = torch.randint(0, args.images, (args.batch_size,), generator=gen).to(images.device)
        x = normalizer(images[idx].to(device, non_blocking=True))
        y, m = labels[idx].to(device), masks[idx].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits, maps = model(x, with_map=True)
        loss = F.cross_entropy(logits.float(), y) + map_loss(maps, m).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return timed(step, args.steps, device)


if __name__ == "__main__":
    main()
