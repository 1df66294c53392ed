"""A run's schedule: which twin pairs validate, the order and batches of every epoch, and the
learning rate of every epoch. Pure functions of the configuration and the seed, so a resumed run
and a distributed run follow the same schedule as one uninterrupted process."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np
import torch


def split_by_twin(twin_ids: list[str], fraction: float, seed: int) -> np.ndarray:
    """Boolean validation mask: whole twin pairs, ``round(fraction * pairs)`` of them, chosen
    by ``seed`` (a normal and its anomalous twin are never on different sides).

    Args:
        twin_ids: each image's twin id.
        fraction: the share of pairs that validate.
        seed: the seed of the choice.

    Returns:
        ``(N,)`` boolean array, True for validation images.
    """
    unique = sorted(set(twin_ids))
    rng = np.random.default_rng(seed)
    chosen = set(rng.permutation(unique)[: round(fraction * len(unique))].tolist())
    return np.array([t in chosen for t in twin_ids], dtype=bool)


def epoch_order(train_idx: torch.Tensor, seed: int, epoch: int) -> torch.Tensor:
    """The training images of ``epoch`` in their shuffled order, drawn from ``(seed, epoch)``
    alone: a resumed run sees the same order as one that never stopped.

    Args:
        train_idx: ``(M,)`` integer indices of the training images.
        seed: the run's seed.
        epoch: the epoch, 0-based.

    Returns:
        ``(M,)`` the same indices, shuffled.
    """
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return train_idx[torch.randperm(len(train_idx), generator=generator)]


def batches(order: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    """The global batches of one epoch: consecutive slices of ``batch_size``, the last shorter.

    Args:
        order: ``(M,)`` the epoch's image indices, in order.
        batch_size: the global batch size.

    Yields:
        ``(B,)`` index tensors, ``B = batch_size`` except maybe the last.
    """
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """How many global batches an epoch of ``n_train`` images has.

    Args:
        n_train: training images.
        batch_size: the global batch size.

    Returns:
        ``ceil(n_train / batch_size)``.
    """
    return math.ceil(n_train / batch_size)


def rank_share(batch: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """The images of a global batch that ``rank`` of ``world`` processes computes.

    Args:
        batch: ``(B,)`` the global batch's indices.
        rank: this process's rank.
        world: the number of processes.

    Returns:
        Every ``world``-th index from position ``rank`` (maybe empty).
    """
    return batch[rank::world]


def optimizer_and_schedule(
    parameters: Iterable[torch.nn.Parameter],
    lr: float,
    momentum: float,
    weight_decay: float,
    epochs: int,
) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.CosineAnnealingLR]:
    """SGD with momentum, its rate decayed by a cosine over ``epochs`` (stepped once per
    epoch): after epoch ``e`` the rate is ``lr * (1 + cos(pi * e / epochs)) / 2``.

    Args:
        parameters: the parameters to optimise.
        lr: the initial learning rate.
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        epochs: the length of the cosine schedule.

    Returns:
        ``(optimizer, scheduler)``.
    """
    optimizer = torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
