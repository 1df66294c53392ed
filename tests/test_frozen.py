"""Training with frozen stages (train/training/frozen.py, train/models/stages.py): the stages compose to the
model, cached activations equal recomputed ones, and training on the cache equals training
that recomputes them every step."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import torch

from lesionpaste.errors import LesionPasteError
from lesionpaste.train.models.build import ARCHS, build_model
from lesionpaste.train.models.decoder import MapModel
from lesionpaste.train.models.on_device import Normalizer
from lesionpaste.train.models.stages import split
from lesionpaste.train.training.config import TrainConfig
from lesionpaste.train.training.dataset import load_dataset
from lesionpaste.train.training.frozen import Tail, cache_activations
from lesionpaste.train.training.loop import train
from tests.train_fixtures import synthetic

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate


@pytest.mark.parametrize("arch", ARCHS)
def test_the_stages_and_head_compose_to_the_model(arch):
    torch.manual_seed(0)
    model, _ = build_model(arch, "none")
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    stages, head = split(model, arch)
    h = x
    with torch.no_grad():
        for stage in stages:
            h = stage(h)
        assert torch.equal(head(h), model(x))


def _cache_setup(maps=False, count=6):
    torch.manual_seed(0)
    model, _ = build_model("resnet18", "none")
    model = MapModel(model, "resnet18") if maps else model
    tail = Tail(model, "resnet18", 2)
    normalizer = Normalizer(32, channels_last=False, arch="resnet18")
    images = torch.from_numpy(
        np.random.default_rng(1).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    )
    return model, tail, normalizer, images


@pytest.mark.parametrize("maps", [False, True])
def test_cached_activations_equal_recomputed_ones_in_memory_and_in_a_file(maps):
    model, tail, normalizer, images = _cache_setup(maps, count=10)
    with torch.no_grad():
        direct = tail.frozen_outputs(normalizer(images))
    assert len(direct) == (2 if maps else 1)  # with maps: layer1's stride-4 tap is frozen too
    for budget in (None, 0):
        cached = cache_activations(tail, normalizer, images, torch.device("cpu"), 4, budget)
        assert (cached.path is not None) == (budget == 0)
        for a, b in zip(cached.arrays, direct):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        path = cached.path
        cached.close()
        assert path is None or not os.path.exists(path)
    with torch.no_grad():  # the tail on the frozen outputs is the whole model
        whole = model(normalizer(images), with_map=True) if maps else model(normalizer(images))
        parts = tail(direct, with_map=True) if maps else tail(direct)
    for a, b in zip(whole if maps else [whole], parts if maps else [parts]):
        torch.testing.assert_close(a, b)


def test_freezing_is_refused_beyond_the_stages():
    """The bound lives in the configuration, checked before any model is built."""
    with pytest.raises(LesionPasteError, match="4 stages"):
        TrainConfig(dataset="d", arch="smallcnn", freeze=4)
    model, _ = build_model("smallcnn", "none")
    assert len(Tail(model, "smallcnn", 3).tail) == 1  # the last of the 4 stages trains


def test_the_tail_trains_while_its_frozen_stages_stay_in_eval_mode():
    model, _ = build_model("smallcnn", "none")
    tail = Tail(model, "smallcnn", 2)
    assert tail.train() is tail  # train() with no argument means training mode
    assert tail.training and all(m.training for m in tail.tail.modules())
    assert not any(m.training for m in tail.frozen.modules())
    tail.eval()
    assert not tail.training and not any(m.training for m in tail.tail.modules())


def _train(tmp_path, name, cache, maps=False):
    data = load_dataset(synthetic(tmp_path / "data", pairs=12, masks=maps), masks=maps)
    config = TrainConfig(dataset="d", arch="resnet18", weights="none", epochs=2, batch_size=8,
                         lr=0.01, size=32, device="cpu", freeze=3, maps=maps)  # fmt: skip
    run = tmp_path / name
    run.mkdir()
    train(data, run, config, quiet=True, cache=cache)
    return torch.load(run / "checkpoint.pt", weights_only=True)["model"]


@pytest.mark.parametrize("maps", [False, True])
def test_training_on_the_cache_equals_training_that_recomputes(tmp_path, maps):
    torch.manual_seed(0)
    reference = build_model("resnet18", "none")[0].state_dict()
    cached = _train(tmp_path, "cached", cache=True, maps=maps)
    recomputed = _train(tmp_path, "recomputed", cache=False, maps=maps)
    prefix = "backbone." if maps else ""
    for key, value in cached.items():
        torch.testing.assert_close(value, recomputed[key], rtol=1e-4, atol=1e-5)
    # the frozen stages (stem, layer1, layer2) did not move, batch-norm statistics included
    for key in ("conv1.weight", "bn1.running_mean", "layer2.0.bn1.running_var"):
        torch.testing.assert_close(cached[prefix + key], reference[key])
    assert not torch.equal(
        cached[prefix + "layer4.0.conv1.weight"], reference["layer4.0.conv1.weight"]
    )


@pytest.mark.parametrize("maps", [False, True])
def test_validation_on_images_normalised_once_equals_normalising_every_epoch(
    tmp_path, monkeypatch, maps
):
    import json

    from lesionpaste.train.training import loop

    data = load_dataset(synthetic(tmp_path / "data", pairs=20, masks=maps), masks=maps)
    logs, kept = [], []
    original = loop._normalised_validation

    def spy(s):
        out = original(s)
        kept.append(out is not None)
        return out

    monkeypatch.setattr(loop, "_normalised_validation", spy)
    for budget in (loop.VALIDATION_CACHE_BYTES, 0):  # kept for the run, or none kept
        monkeypatch.setattr(loop, "VALIDATION_CACHE_BYTES", budget)
        config = TrainConfig(dataset="d", arch="smallcnn", weights="none", epochs=3,
                             batch_size=8, lr=0.05, size=32, device="cpu", maps=maps,
                             val_fraction=0.3)  # fmt: skip
        run = tmp_path / f"run-{budget}"
        run.mkdir()
        torch.manual_seed(0)
        train(data, run, config, quiet=True)
        lines = (run / "log.jsonl").read_text().splitlines()
        logs.append([json.loads(line)["val_auc"] for line in lines])
    assert logs[0] == logs[1] and len(logs[0]) == 3
    assert kept[:3] == [True] * 3 and not any(kept[-3:])  # the first run used the kept images


def test_the_cache_goes_to_a_file_only_beyond_its_budget_and_names_the_file():
    _, tail, normalizer, images = _cache_setup(maps=True)
    with torch.no_grad():
        size = sum(4 * t.numel() for t in tail.frozen_outputs(normalizer(images)))
    cpu = torch.device("cpu")
    exactly = cache_activations(tail, normalizer, images, cpu, 4, size)  # float32: 4 bytes each
    assert exactly.path is None
    exactly.close()
    over = cache_activations(tail, normalizer, images, cpu, 4, size - 1)
    name = os.path.basename(over.path)
    assert name.startswith("lesionpaste-frozen-") and name.endswith(".f32")  # findable if left
    assert os.path.dirname(over.path) == tempfile.gettempdir()
    assert os.path.getsize(over.path) == size
    over.close()


def test_the_default_budget_is_a_share_of_the_machines_memory(monkeypatch):
    from lesionpaste.train.training import frozen

    _, tail, normalizer, images = _cache_setup()
    with torch.no_grad():
        size = sum(4 * t.numel() for t in tail.frozen_outputs(normalizer(images)))
    for memory, in_file in ((int(size / frozen.MEMORY_SHARE) + 8, False), (size, True)):
        monkeypatch.setattr(frozen, "_memory_bytes", lambda memory=memory: memory)
        cached = cache_activations(tail, normalizer, images, torch.device("cpu"), 4)
        assert (cached.path is not None) == in_file
        cached.close()


def test_the_machines_memory_is_read_from_the_system_with_a_fallback(monkeypatch):
    from lesionpaste.train.training import frozen

    pages = os.sysconf("SC_PHYS_PAGES")  # the physical memory, as the system reports it
    assert frozen._memory_bytes() == pages * os.sysconf("SC_PAGE_SIZE") != 8 * 2**30

    def unsupported(name):
        raise ValueError(f"unrecognized configuration name {name}")

    monkeypatch.setattr(os, "sysconf", unsupported)
    assert frozen._memory_bytes() == 8 * 2**30  # where the system cannot tell: 8 GiB


def test_the_cache_is_float32_whatever_torchs_default_type():
    _, tail, normalizer, images = _cache_setup()
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        cached = cache_activations(tail, normalizer, images, torch.device("cpu"), 4, None)
    finally:
        torch.set_default_dtype(default)
    assert [a.dtype for a in cached.arrays] == [torch.float32]
    cached.close()


def test_the_cache_batch_is_small_on_a_cpu_and_64_elsewhere(monkeypatch):
    from lesionpaste.train.training import frozen

    assert frozen.cache_batch_size(torch.device("cpu")) == 4
    assert frozen.cache_batch_size(torch.device("cuda")) == 64
    assert frozen.cache_batch_size(torch.device("mps")) == 64  # a device without its own entry
    _, tail, normalizer, images = _cache_setup(count=10)
    seen = []
    original = tail.frozen_outputs

    def spy(x):
        seen.append(len(x))
        return original(x)

    monkeypatch.setattr(tail, "frozen_outputs", spy)
    cache_activations(tail, normalizer, images, torch.device("cpu"), None, None).close()
    assert seen == [1, 4, 4, 2]  # one image to learn the shapes, then CACHE_BATCH["cpu"]


def test_cached_outputs_stay_on_a_gpu_only_in_memory_and_with_twice_their_size_free():
    from lesionpaste.train.training.frozen import stays_on_device

    asked = []

    def free(device):
        asked.append(device)
        return 1000

    gpu = torch.device("cuda", 1)
    assert stays_on_device(499, gpu, False, free) and asked == [gpu]
    assert not stays_on_device(500, gpu, False, free)  # not over twice its size free
    assert not stays_on_device(499, gpu, True, free)  # in a file: it stays there
    assert not stays_on_device(1, torch.device("cpu"), False, free)


def test_the_stay_on_device_decision_is_asked_with_the_caches_size_and_place(monkeypatch):
    """The move itself is a no-op on a CPU: ``make gpu-check`` runs it on a GPU."""
    from lesionpaste.train.training import frozen

    _, tail, normalizer, images = _cache_setup()
    moved = []
    monkeypatch.setattr(frozen, "stays_on_device", lambda *a: moved.append(a) or True)
    cached = cache_activations(tail, normalizer, images, torch.device("cpu"), 4, None)
    size = sum(4 * a.numel() for a in cached.arrays)
    assert moved == [(size, torch.device("cpu"), False)]
    assert len(cached.arrays) == 1 and cached.arrays[0].shape[0] == len(images)


def test_the_tail_returns_the_logits_alone_unless_the_map_is_asked_for():
    model, tail, normalizer, images = _cache_setup(maps=True)
    model.eval()
    tail.eval()
    with torch.no_grad():
        direct = tail.frozen_outputs(normalizer(images))
        logits = tail(direct)
        both = tail(direct, with_map=True)
    assert isinstance(logits, torch.Tensor) and logits.shape == (len(images), 2)
    assert isinstance(both, tuple) and torch.equal(both[0], logits)
