"""Directed tests of a run's schedule (train/training/schedule.py): the validation split by twin pair,
every epoch's order and batches, each rank's share and the cosine learning rate."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lesionpaste.train.training.schedule import (
    batches,
    epoch_order,
    optimizer_and_schedule,
    rank_share,
    split_by_twin,
    steps_per_epoch,
)

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate


def test_the_split_is_a_bool_mask_of_whole_pairs_of_the_rounded_size():
    twin_ids = [f"t{i:02d}" for i in range(7) for _ in range(2)]
    for fraction, pairs in [(0.0, 0), (0.1, 1), (0.3, 2), (0.5, 4), (1.0, 7)]:
        val = split_by_twin(twin_ids, fraction, seed=3)
        assert val.dtype == bool and val.shape == (14,)
        assert (val[::2] == val[1::2]).all()
        assert int(val.sum()) == 2 * pairs  # round(0.5 * 7) = 4 (round half to even: 3.5 -> 4)


def test_the_split_does_not_depend_on_the_order_of_the_ids():
    twin_ids = [f"t{i:02d}" for i in range(12) for _ in range(2)]
    val = split_by_twin(twin_ids, 0.25, seed=5)
    chosen = {t for t, v in zip(twin_ids, val) if v}
    shuffled = twin_ids[::-1]
    again = split_by_twin(shuffled, 0.25, seed=5)
    assert {t for t, v in zip(shuffled, again) if v} == chosen


def test_each_epoch_order_is_a_permutation_drawn_from_seed_and_epoch():
    train_idx = torch.arange(10, 30)
    first = epoch_order(train_idx, seed=2, epoch=0)
    assert sorted(first.tolist()) == train_idx.tolist()
    assert first.tolist() != train_idx.tolist()
    # the documented rule: torch.randperm seeded with seed * 100003 + epoch
    g = torch.Generator().manual_seed(2 * 100_003 + 0)
    assert first.tolist() == train_idx[torch.randperm(20, generator=g)].tolist()
    g = torch.Generator().manual_seed(2 * 100_003 + 3)
    assert (
        epoch_order(train_idx, 2, 3).tolist() == train_idx[torch.randperm(20, generator=g)].tolist()
    )
    assert epoch_order(train_idx, seed=2, epoch=0).tolist() == first.tolist()
    assert epoch_order(train_idx, seed=2, epoch=1).tolist() != first.tolist()
    assert epoch_order(train_idx, seed=3, epoch=0).tolist() != first.tolist()


def test_batches_cover_the_order_once_in_slices_of_the_batch_size():
    order = torch.tensor([5, 3, 8, 1, 9, 0, 7])
    got = [b.tolist() for b in batches(order, 3)]
    assert got == [[5, 3, 8], [1, 9, 0], [7]]
    assert len(got) == steps_per_epoch(7, 3) == 3
    assert steps_per_epoch(6, 3) == 2 and steps_per_epoch(1, 64) == 1
    assert [b.tolist() for b in batches(order, 7)] == [order.tolist()]


def test_the_ranks_share_a_global_batch_without_overlap():
    batch = torch.arange(7)
    shares = [rank_share(batch, r, 3).tolist() for r in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]
    assert rank_share(batch, 0, 1).tolist() == batch.tolist()


def test_the_learning_rate_decays_by_a_cosine_over_the_epochs():
    weight = torch.nn.Parameter(torch.ones(2))
    optimizer, schedule = optimizer_and_schedule([weight], 0.1, 0.9, 1e-4, epochs=5)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.1, 0.9, 1e-4)
    assert isinstance(optimizer, torch.optim.SGD)
    rates = []
    for _ in range(5):
        optimizer.step()
        schedule.step()
        rates.append(schedule.get_last_lr()[0])
    expected = [0.1 * (1 + math.cos(math.pi * e / 5)) / 2 for e in range(1, 6)]
    assert rates == pytest.approx(expected, abs=1e-12)
    assert rates[-1] == pytest.approx(0.0, abs=1e-12)


def test_momentum_and_weight_decay_reach_the_update():
    def one_step(momentum: float, weight_decay: float, steps: int = 2) -> np.ndarray:
        weight = torch.nn.Parameter(torch.tensor([1.0]))
        optimizer, _ = optimizer_and_schedule([weight], 0.5, momentum, weight_decay, epochs=3)
        for _ in range(steps):
            optimizer.zero_grad()
            (weight * 2.0).sum().backward()  # gradient 2
            optimizer.step()
        return weight.detach().numpy()

    # plain SGD: 1 - 0.5*2 - 0.5*2; with momentum 0.5 the second step is 0.5*(2 + 0.5*2)
    assert one_step(0.0, 0.0) == pytest.approx([-1.0])
    assert one_step(0.5, 0.0) == pytest.approx([1 - 1.0 - 1.5])
    # weight decay 0.1 adds 0.1 * w to the gradient: one step 1 - 0.5 * (2 + 0.1)
    assert one_step(0.0, 0.1, steps=1) == pytest.approx([1 - 0.5 * 2.1])


def test_the_validation_split_keeps_twin_pairs_together_and_is_pinned():
    from lesionpaste.train.training.schedule import split_by_twin

    twin_ids = [f"t{i:02d}" for i in range(20) for _ in range(2)]
    val = split_by_twin(twin_ids, 0.25, seed=0)
    for a, b in zip(val[::2], val[1::2]):
        assert a == b  # the normal and its anomalous twin on the same side
    assert val.sum() == 10  # 5 of 20 pairs
    chosen = sorted({t for t, v in zip(twin_ids, val) if v})
    rng = np.random.default_rng(0)
    assert chosen == sorted(rng.permutation(sorted(set(twin_ids)))[:5].tolist())
    assert chosen != sorted(
        {t for t, v in zip(twin_ids, split_by_twin(twin_ids, 0.25, seed=1)) if v}
    )
