"""A run's checkpoints (``checkpoint.pt``, the last epoch; ``best.pt`` with ``--keep-best``):
written atomically, state dicts and plain data only, read back refusing pickled objects; and the
training log cut back to the epochs a checkpoint holds when a run resumes."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from lesionpaste.errors import LesionPasteError
from lesionpaste.files import atomic_output, open_regular, write_text_atomic
from lesionpaste.jsonfiles import parse_json
from lesionpaste.train.training.config import TrainConfig


def save_checkpoint(
    path: Path, model: nn.Module, optimizer, scheduler, epoch: int, config: TrainConfig
) -> None:
    """Write a checkpoint atomically: state dicts and plain data only (weights_only loadable).

    Args:
        path: the checkpoint file (replaced).
        model: the network (unwrapped from DDP or ``torch.compile`` here).
        optimizer: its optimizer.
        scheduler: its learning-rate schedule.
        epoch: the last finished epoch, 0-based.
        config: the run's configuration.

    Raises:
        OSError: the write failed (e.g. a full disk), reported as itself rather than as
            torch's ``RuntimeError``.
    """
    state = {
        "model": {k: v.detach().cpu() for k, v in unwrapped(model).state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": epoch,
        "config": asdict(config),
    }
    with atomic_output(path, overwrite=True, clean=False) as tmp, open(tmp, "wb") as fh:
        writer = _RecordingWriter(fh)
        try:
            torch.save(state, writer)
        except RuntimeError:
            if writer.error is not None:  # e.g. a full disk: say so, not torch's wording
                raise writer.error from None
            raise


class _RecordingWriter:
    """A file wrapper that remembers the ``OSError`` of a failed write (``torch.save``
    reports one only as an opaque ``RuntimeError``)."""

    def __init__(self, fh):
        self.fh, self.error = fh, None

    def write(self, data) -> int:
        try:
            return self.fh.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.fh.flush()


def load_checkpoint(path: Path) -> dict:
    """A checkpoint, refusing pickled objects (``weights_only=True``).

    Args:
        path: the checkpoint file.

    Returns:
        ``{"model", "optimizer", "scheduler", "epoch", "config"}``, tensors on the CPU.

    Raises:
        LesionPasteError: no such file, not a regular file, or not a loadable checkpoint.
    """
    if not os.path.lexists(path):
        raise LesionPasteError(f"{path}: no checkpoint")
    try:
        with open_regular(path, "checkpoint") as fh:  # never a FIFO: it would block for ever
            return torch.load(fh, map_location="cpu", weights_only=True)
    except LesionPasteError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch raises many types for refused/corrupt files
        raise LesionPasteError(
            f"{path}: not a loadable checkpoint ({type(exc).__name__}; pickled objects are refused)"
        ) from None


def truncate_log(path: Path, epochs: int) -> None:
    """Keep the log lines of the first ``epochs`` epochs (those the checkpoint holds).

    A line cut short by a kill, or any line that is not a JSON record (nested absurdly deep
    included), is dropped.

    Args:
        path: the run's ``log.jsonl`` (nothing is done when there is none).
        epochs: how many epochs the checkpoint holds.
    """
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = parse_json(line, path)
        except LesionPasteError:  # cut short, not JSON, or nested absurdly deep: dropped
            continue
        epoch = entry.get("epoch") if isinstance(entry, dict) else None
        if isinstance(epoch, int) and epoch <= epochs:
            kept.append(line)
    write_text_atomic(path, "".join(line + "\n" for line in kept))


def unwrapped(model: nn.Module) -> nn.Module:
    """The network itself, out of its DistributedDataParallel or ``torch.compile`` wrapper.

    Args:
        model: the network, wrapped or not.

    Returns:
        The bare network (the module whose ``state_dict`` a checkpoint holds).
    """
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)
