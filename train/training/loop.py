"""The training loop: the whole uint8 dataset on the device, no per-image Python work.

One process, or several under ``torchrun`` (DistributedDataParallel: each rank takes its share
of every global batch, so the result matches one process on the same global batch).
"""

from __future__ import annotations

import functools
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn
from tqdm import tqdm

from lesionpaste.errors import LesionPasteError
from lesionpaste.file_names import BEST, CHECKPOINT, LOG, MAPS_RECORD, THRESHOLDS, WEIGHTS_SOURCE
from lesionpaste.files import write_text_atomic
from lesionpaste.train.metrics.auc import write_metrics
from lesionpaste.train.metrics.image_scores import image_scores, map_summary, validation_aucs
from lesionpaste.train.metrics.operating_points import validation_thresholds
from lesionpaste.train.metrics.validation_bins import (
    FEWEST_BIN,
    aucs_by_lesion_count,
    aucs_by_tier,
)
from lesionpaste.train.models.build import build_model
from lesionpaste.train.models.decoder import MapModel, collect_outputs, map_loss, map_outputs
from lesionpaste.train.models.on_device import Normalizer, pick_device, place_images, scores_of
from lesionpaste.train.training.checkpoints import (
    load_checkpoint,
    save_checkpoint,
    truncate_log,
    unwrapped,
)
from lesionpaste.train.training.config import TrainConfig, with_defaults
from lesionpaste.train.training.dataset import LoadedDataset
from lesionpaste.train.training.frozen import Activations, Tail, cache_activations
from lesionpaste.train.training.heldout import HeldoutPairs
from lesionpaste.train.training.schedule import (
    batches,
    epoch_order,
    optimizer_and_schedule,
    rank_share,
    split_by_twin,
    steps_per_epoch,
)
from lesionpaste.train.training.selection import best_entry, best_epoch, logged_epochs


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    rank = torch.distributed.get_rank() if world > 1 else 0
    if world > 1:  # rank 0 has prepared the run directory (and holds its lock) before this
        torch.distributed.barrier()
    return rank, world


@dataclass
class _Session:
    """What one training process holds: where it runs, the data placed, the model and its
    optimizer, and the epoch it starts from."""

    rank: int
    world: int
    device: torch.device
    images: torch.Tensor
    targets: torch.Tensor
    train_idx: torch.Tensor
    val_idx: np.ndarray
    model: nn.Module
    trained: nn.Module  # the model as stepped: wrapped for DDP or compiled
    normalizer: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    source: str
    start_epoch: int = 0
    masks: torch.Tensor | None = None  # (N, H, W) uint8, with --maps
    tail: Tail | None = None  # with --freeze: the trainable part, fed the frozen activations
    cache: Activations | None = None  # the frozen activations (None: recomputed each step)
    val_normalised: torch.Tensor | None = None  # the validation images, normalised once
    val_outputs: tuple | None = None  # the last validation's (probabilities, maps)
    heldout: HeldoutPairs | None = None  # with --heldout-val: the validation normals' other twins
    heldout_cache: Activations | None = None  # with --freeze: their frozen activations
    val_lesions: np.ndarray | None = None  # the validation images' pasted-lesion counts
    val_tiers: np.ndarray | None = None  # and their tiers (0: a normal twin)


def _device_of(config: TrainConfig, world: int) -> torch.device:
    device = pick_device(config.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return device


def refuse_maps_without_masks(data: LoadedDataset) -> None:
    """``--maps`` learns the pasted masks: refuse a dataset whose anomalous images have none
    (the one place of this rule; ``train_run`` asks before the run folder is made).

    Args:
        data: the training images, read with their masks.

    Raises:
        LesionPasteError: no anomalous image has a mask.
    """
    if data.masks is None or not data.masks[data.labels == 1].any():
        raise LesionPasteError(
            f"{data.root}: --maps learns the pasted masks, and its anomalous images have none"
        )


def validation_mask(data: LoadedDataset, config: TrainConfig) -> np.ndarray:
    """The run's validation images: whole pairs, chosen by its seed.

    Args:
        data: the training dataset.
        config: the run's configuration (``val_fraction``, ``seed``).

    Returns:
        ``(N,)`` boolean, True for a validation image.
    """
    return split_by_twin(data.twin_ids, config.val_fraction, config.seed)


def _set_up(
    data: LoadedDataset, config: TrainConfig, heldout: HeldoutPairs | None = None
) -> _Session:
    """Place the data, build the model, its optimizer and schedule (nothing read from a run);
    ``heldout``: the held-out-lesion pairs of the validation normals (train/training/heldout.py)."""
    rank, world = _distributed()
    device = _device_of(config, world)
    torch.manual_seed(config.seed)
    if set(np.unique(data.labels)) - {0, 1}:
        raise LesionPasteError(f"{data.root}: training needs labels 0/1 (a synthetic dataset)")
    val = validation_mask(data, config)
    images, on_device = place_images(data.images, device)
    model, source = build_model(config.arch, config.weights)
    masks = None
    if config.maps:
        refuse_maps_without_masks(data)
        model = MapModel(model, config.arch)
        masks = torch.from_numpy(data.masks).to(device if on_device else "cpu")
    model = model.to(device, memory_format=torch.channels_last)
    tail = Tail(model, config.arch, config.freeze) if config.freeze else None
    optimizer, scheduler = optimizer_and_schedule(
        model.parameters(), config.lr, config.momentum, config.weight_decay, config.epochs
    )
    return _Session(
        rank=rank,
        world=world,
        device=device,
        images=images,
        targets=torch.from_numpy(data.labels).to(device if on_device else "cpu"),
        train_idx=torch.from_numpy(np.flatnonzero(~val)),
        val_idx=np.flatnonzero(val),
        model=model,
        trained=model,
        normalizer=Normalizer(config.size, channels_last=True, arch=config.arch).to(device),
        optimizer=optimizer,
        scheduler=scheduler,
        source=source,
        masks=masks,
        tail=tail,
        heldout=heldout,
        val_lesions=None if data.n_lesions is None else data.n_lesions[val],
        val_tiers=None if data.tiers is None else data.tiers[val],
    )


def _resume(s: _Session, run: Path, config: TrainConfig, quiet: bool) -> None:
    """Continue from the run's checkpoint when it has one (of this configuration)."""
    checkpoint_path = run / CHECKPOINT
    if checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path)
        if with_defaults(state["config"]) != asdict(config):
            raise LesionPasteError(
                f"{run} holds a run with another configuration; use another --out or --overwrite"
            )
        s.model.load_state_dict(state["model"])
        s.optimizer.load_state_dict(state["optimizer"])
        s.scheduler.load_state_dict(state["scheduler"])
        s.start_epoch = state["epoch"] + 1
        if s.rank == 0 and s.start_epoch >= config.epochs and not quiet:
            tqdm.write(
                f"{run} is already trained ({config.epochs} epochs); "
                "pass --overwrite to train it again"
            )
    if s.rank == 0:  # lines past the checkpoint (or any, without one) belong to lost epochs
        truncate_log(run / LOG, s.start_epoch)
        if config.keep_best and s.start_epoch:
            _mend_best(s, run, config)


def _mend_best(s: _Session, run: Path, config: TrainConfig) -> None:
    """On resume with ``--keep-best``: a kill between an epoch's checkpoint and its
    ``best.pt`` leaves that epoch (the checkpoint's) best in the log but not saved; save it."""
    best = best_epoch(logged_epochs(run / LOG), config.keep_best)
    if best is None:
        return
    saved = load_checkpoint(run / BEST)["epoch"] + 1 if (run / BEST).exists() else None
    if saved == best[0]:
        return
    if best[0] != s.start_epoch:
        raise LesionPasteError(
            f"{run}/{BEST} does not hold the best epoch ({best[0]}); use --overwrite"
        )
    save_checkpoint(run / BEST, s.model, s.optimizer, s.scheduler, best[0] - 1, config)


def _wrap(s: _Session, config: TrainConfig, cache: bool = True) -> None:
    """Make the module that is stepped: the tail on cached activations with ``--freeze``,
    wrapped for DDP and compiled as asked."""
    if s.tail is not None:
        s.trained = s.tail
        if cache:
            s.cache = cache_activations(s.tail, s.normalizer, s.images, s.device)
            if s.heldout is not None:  # computed once, not every epoch
                images = torch.from_numpy(s.heldout.images)
                s.heldout_cache = cache_activations(s.tail, s.normalizer, images, s.device)
    if s.world > 1:
        s.trained = nn.parallel.DistributedDataParallel(
            s.trained, device_ids=[s.device.index] if s.device.type == "cuda" else None
        )
    if config.compile:
        s.trained = torch.compile(s.trained)


def _one_epoch(s: _Session, config: TrainConfig, epoch: int, quiet: bool) -> dict:
    """Train one epoch; its log entry (loss, learning rate after the step, speed)."""
    s.trained.train()
    order = epoch_order(s.train_idx, config.seed, epoch)
    started, total_loss, seen = time.perf_counter(), 0.0, 0
    bar = tqdm(
        batches(order, config.batch_size),
        total=steps_per_epoch(len(s.train_idx), config.batch_size),
        desc=f"epoch {epoch + 1}/{config.epochs}",
        leave=False,
        disable=True if quiet or s.rank != 0 else None,  # None: only on a terminal
    )
    data_seconds = 0.0
    for step, batch in enumerate(bar):
        mine = rank_share(batch, s.rank, s.world)  # every rank runs every step, even with no image
        fetched = time.perf_counter()
        inputs = _inputs(s, mine)
        y = s.targets[mine.to(s.targets.device)].to(s.device, non_blocking=True)
        data_seconds += time.perf_counter() - fetched
        with torch.autocast(s.device.type, dtype=torch.bfloat16, enabled=s.device.type == "cuda"):
            out = s.trained(inputs, with_map=True) if s.masks is not None else None
            logits = out[0] if out is not None else s.trained(inputs)
        # the mean over the global batch: each rank's sum over the global batch size,
        # summed by DDP's gradient averaging times world
        loss = F.cross_entropy(logits.float(), y, reduction="sum")
        if out is not None:  # eq. (2) plus the weighted pixel loss on the pasted masks
            masks = s.masks[mine.to(s.masks.device)].to(s.device, non_blocking=True)
            loss = loss + config.map_weight * map_loss(out[1], masks).sum()
        loss = loss * s.world / len(batch)
        s.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        s.optimizer.step()
        total_loss = total_loss + loss.detach().double() * (len(batch) / s.world)  # no sync
        seen += len(batch)
        if not quiet and s.rank == 0 and step % 20 == 0 and not bar.disable:
            bar.set_postfix(
                loss=f"{float(total_loss) / max(seen, 1):.4f}",
                img_s=f"{seen / (time.perf_counter() - started):.0f}",
            )
    s.scheduler.step()
    seconds = time.perf_counter() - started
    return {
        "epoch": epoch + 1,
        "loss": float(total_loss) / max(seen, 1),
        "lr": s.scheduler.get_last_lr()[0],
        "images_per_s": seen / seconds if seconds > 0 else 0.0,
        "seconds": seconds,
        "seconds_data": data_seconds,
        "seconds_step": seconds - data_seconds,
    }


def _inputs(s: _Session, idx: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
    """What the stepped module takes for some images: normalised images, or with
    ``--freeze`` their frozen activations (cached, or recomputed without a gradient)."""
    if s.cache is not None:
        return s.cache.batch(idx, s.device)
    x = s.normalizer(s.images[idx.to(s.images.device)].to(s.device, non_blocking=True))
    if s.tail is None:
        return x
    with torch.no_grad():
        return s.tail.frozen_outputs(x)


def _validation_outputs(s: _Session) -> tuple[np.ndarray, np.ndarray | None]:
    """Classifier probabilities (and map probabilities) of the validation images, as the
    model scores them: through the cached activations with ``--freeze``, else from the
    images normalised once for the run (when they fit ``VALIDATION_CACHE_BYTES``)."""
    idx, maps = s.val_idx, s.masks is not None
    step = 64 if maps else 128  # the batches of map_outputs and scores_of
    if s.tail is not None:
        return _tail_outputs(s, lambda batch: _inputs(s, batch), idx)
    normalised = _normalised_validation(s)
    if normalised is None:
        images = s.images[torch.from_numpy(idx).to(s.images.device)]
        if maps:
            return map_outputs(s.model, s.normalizer, images, s.device)
        return scores_of(s.model, s.normalizer, images, s.device), None
    inputs = (normalised[i : i + step].to(s.device) for i in range(0, len(idx), step))
    return collect_outputs(s.model, inputs, s.device, maps)


def _tail_outputs(s: _Session, inputs_of, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The tail's outputs (probabilities, and maps with ``--maps``) of some images, whose
    tail inputs ``inputs_of(batch indices)`` gives, in batches."""
    maps = s.masks is not None
    step = 64 if maps else 128  # the batches of map_outputs and scores_of
    batches = (inputs_of(torch.from_numpy(idx[i : i + step])) for i in range(0, len(idx), step))
    return collect_outputs(s.tail, batches, s.device, maps)


#: the most bytes of normalised validation images kept for the run
VALIDATION_CACHE_BYTES = 1 << 30


def _normalised_validation(s: _Session) -> torch.Tensor | None:
    """The validation images through the normalizer, computed at the first validation and
    kept (on the training device), or None when they would take more than the budget."""
    if s.val_normalised is None and len(s.val_idx):
        size = s.normalizer.size
        if 4 * 3 * size * size * len(s.val_idx) > VALIDATION_CACHE_BYTES:
            return None
        parts = []
        with torch.no_grad():
            for i in range(0, len(s.val_idx), 128):
                chunk = torch.from_numpy(s.val_idx[i : i + 128]).to(s.images.device)
                parts.append(s.normalizer(s.images[chunk].to(s.device)))
        s.val_normalised = torch.cat(parts)
    return s.val_normalised


def _validate(s: _Session, labels: np.ndarray) -> dict:
    """``{"val_auc": ...}`` on the validation pairs, or nothing when they hold one class."""
    if not len(s.val_idx) or len(set(labels[s.val_idx])) != 2:
        return {}
    started = time.perf_counter()
    probabilities, maps = s.val_outputs = _validation_outputs(s)
    _refuse_diverged(probabilities, maps)
    if maps is not None:
        aucs = validation_aucs(image_scores(probabilities, maps), labels[s.val_idx])
        entry = {"val_auc": aucs["classifier"], "val_auc_by_score": aucs}
    else:
        entry = {"val_auc": float(roc_auc_score(labels[s.val_idx], probabilities))}
    entry.update(_validate_by_content(s, probabilities, labels[s.val_idx]))
    if s.heldout is not None and len(set(s.heldout.labels)) == 2:
        entry.update(_validate_heldout(s))
    return {**entry, "seconds_val": time.perf_counter() - started}


def _validate_by_content(s: _Session, probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """The classifier's validation AUC by the twins' lesion count and tier
    (train/metrics/validation_bins.py), and the fewest-lesion bin's AUC on its own."""
    if s.val_lesions is None or s.val_tiers is None:
        return {}
    by_lesions = aucs_by_lesion_count(probabilities, labels, s.val_lesions)
    return {
        "val_auc_by_lesions": by_lesions,
        "val_auc_by_tier": aucs_by_tier(probabilities, labels, s.val_tiers),
        "val_auc_few_lesions": by_lesions[FEWEST_BIN]["auc"],
    }


def _refuse_diverged(probabilities: np.ndarray, maps: np.ndarray | None) -> None:
    """Stop, in one line, a run whose model gives non-finite outputs (training diverged)."""
    if not np.isfinite(probabilities).all() or (maps is not None and not np.isfinite(maps).all()):
        raise LesionPasteError(
            "training diverged: the model's outputs on the validation pairs are not finite "
            "(NaN); lower --lr, raise --batch-size or --size, or start from pretrained weights"
        )


def _validate_heldout(s: _Session) -> dict:
    """``{"heldout_val_auc": ...}``: the classifier's AUC on the held-out-lesion pairs (and
    with maps, each image score's, as ``heldout_val_auc_by_score``); through their cached
    frozen activations with ``--freeze``."""
    images = torch.from_numpy(s.heldout.images)
    if s.heldout_cache is not None:
        inputs_of = functools.partial(s.heldout_cache.batch, device=s.device)
        probabilities, maps = _tail_outputs(s, inputs_of, np.arange(len(images)))
    elif s.masks is None:
        probabilities, maps = scores_of(s.model, s.normalizer, images, s.device), None
    else:
        probabilities, maps = map_outputs(s.model, s.normalizer, images, s.device)
    _refuse_diverged(probabilities, maps)
    if maps is None:
        return {"heldout_val_auc": float(roc_auc_score(s.heldout.labels, probabilities))}
    aucs = validation_aucs(image_scores(probabilities, maps), s.heldout.labels)
    return {"heldout_val_auc": aucs["classifier"], "heldout_val_auc_by_score": aucs}


def validation_text(entry: dict) -> str:
    """How an epoch's validation AUCs are printed.

    Args:
        entry: the epoch's log entry.

    Returns:
        ``", validation AUC 0.9000 (1-5 lesions 0.6000), held-out lesions 0.8000"`` (each part
        only when logged).
    """
    text = f", validation AUC {entry['val_auc']:.4f}" if "val_auc" in entry else ""
    if entry.get("val_auc_few_lesions") is not None:
        text += f" ({FEWEST_BIN} lesions {entry['val_auc_few_lesions']:.4f})"
    if "heldout_val_auc" in entry:
        text += f", held-out lesions {entry['heldout_val_auc']:.4f}"
    return text


def _record(s: _Session, run: Path, config: TrainConfig, entry: dict, quiet: bool) -> None:
    """Print and log an epoch, then checkpoint it (rank 0 only)."""
    if s.rank != 0:
        return
    if not quiet:
        tqdm.write(
            f"epoch {entry['epoch']}/{config.epochs}: loss {entry['loss']:.4f}"
            f"{validation_text(entry)}, "
            f"{entry['images_per_s']:.1f} images/s, {entry['seconds']:.0f} s"
        )
    with open(run / LOG, "a", encoding="utf-8") as fh:  # the log line first: a resume
        fh.write(json.dumps(entry) + "\n")  # drops lines past the checkpoint
    epoch = entry["epoch"] - 1
    save_checkpoint(run / CHECKPOINT, s.model, s.optimizer, s.scheduler, epoch, config)
    if config.keep_best:  # after the checkpoint: a kill in between is mended on resume
        best = best_epoch(logged_epochs(run / LOG), config.keep_best)
        if best is not None and best[0] == entry["epoch"]:
            save_checkpoint(run / BEST, s.model, s.optimizer, s.scheduler, epoch, config)


def _restore_best(s: _Session, run: Path) -> None:
    """Put the kept epoch's weights (``best.pt``) into the model, for the validation
    choices written after training."""
    if not (run / BEST).exists():
        raise LesionPasteError(f"{run}: no epoch logged a validation AUC to keep ({BEST})")
    unwrapped(s.model).load_state_dict(load_checkpoint(run / BEST)["model"])
    s.val_outputs = None  # they were the last epoch's


def train(
    data: LoadedDataset,
    run: Path,
    config: TrainConfig,
    quiet: bool = False,
    cache: bool = True,
    heldout: HeldoutPairs | None = None,
) -> dict:
    """Train (or resume) a run in ``run``.

    Args:
        data: the synthetic dataset in memory (labels 0/1).
        run: the run directory (prepared, and locked, by the caller).
        config: the run's configuration; a checkpoint of another one is refused.
        quiet: no progress bar or per-epoch lines.
        cache: with ``config.freeze``, compute the frozen activations once (False: every
            step, the reference the cache is tested against).
        heldout: with ``config.heldout_val``, that dataset's pairs of the validation normals
            (``train.training.heldout.heldout_pairs`` of ``validation_mask``), scored every epoch too
            (``heldout_val_auc``).

    Returns:
        The last epoch's log entry, or with ``config.keep_best`` the kept epoch's (empty
        when the run was already trained).
    """
    s = _set_up(data, config, heldout)
    _resume(s, run, config, quiet)
    _wrap(s, config, cache and s.start_epoch < config.epochs)
    entry = {}
    try:
        for epoch in range(s.start_epoch, config.epochs):
            entry = _one_epoch(s, config, epoch, quiet)
            entry.update(_validate(s, data.labels))
            _record(s, run, config, entry, quiet)
        if s.rank == 0:
            write_text_atomic(run / WEIGHTS_SOURCE, s.source + "\n")
            if config.keep_best:
                _restore_best(s, run)
                if entry:  # trained now: say which epoch is kept
                    kept = best_entry(logged_epochs(run / LOG), config.keep_best)
                    entry = kept or entry
            if len(s.val_idx):
                _write_validation_choices(s, run, data, config)
    finally:
        for cached in (s.cache, s.heldout_cache):
            if cached is not None:
                cached.close()
    return entry


def _write_validation_choices(
    s: _Session, run: Path, data: LoadedDataset, config: TrainConfig
) -> None:
    """What the trained model's scores of the validation pairs decide: with maps, the image
    score and pixel threshold (``maps.json``); always, the thresholds that let 95% and 90% of
    the validation normals pass (``thresholds.json``), in that image score. The last epoch's
    validation outputs serve (computed here only for a run that trained no epoch now)."""
    probabilities, maps = s.val_outputs or _validation_outputs(s)
    labels = data.labels[s.val_idx]
    scores, score_name = probabilities, "classifier"
    if maps is not None:
        summary = map_summary(
            probabilities, maps, labels, data.masks[s.val_idx], config.image_score
        )
        summary["map_weight"] = config.map_weight
        summary["map_stride"] = s.model.map_stride
        write_metrics(run / MAPS_RECORD, summary)
        score_name = summary["image_score"]
        scores = image_scores(probabilities, maps)[score_name]
    thresholds = validation_thresholds(scores, labels)
    if thresholds is not None:
        thresholds["image_score"] = score_name
        thresholds["flagged"] = "score > threshold"
        write_metrics(run / THRESHOLDS, thresholds)
