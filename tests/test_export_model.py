"""The exported model files (TorchScript, ONNX) score as the trained model does, and their
runners refuse what is not theirs with one line.

Small networks at 32 pixels (``smallcnn``, and ``efficientnet_lite0`` for its TensorFlow-style
padding), as classifiers and as ``MapModel`` (whose decoder is fed by forward hooks), with
randomised batch-norm statistics so that eval mode matters. The reference is the trainer's own
``collect_outputs`` on the CPU.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lesionpaste.errors import LesionPasteError
from lesionpaste.train.deploy import export_model, onnx_runner
from lesionpaste.train.deploy.export_model import (
    InferenceGraph,
    TorchScriptScorer,
    export_onnx,
    export_torchscript,
)
from lesionpaste.train.deploy.onnx_runner import OnnxScorer
from lesionpaste.train.models.build import build_model
from lesionpaste.train.models.decoder import MapModel, collect_outputs
from lesionpaste.train.models.on_device import Normalizer

ROOT = Path(__file__).resolve().parents[1]
SIDE = 32
CASES = [("smallcnn", False), ("smallcnn", True), ("efficientnet_lite0", False),
         ("efficientnet_lite0", True), ("convnext_tiny", True)]  # fmt: skip


def _onnx_available() -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")


def images(count: int, channels: int = 3, seed: int = 7) -> np.ndarray:
    """Images that differ in level, gradient and noise, so that the network tells them apart."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(20, 235, (count, 1, 1, channels))
    ramp = np.linspace(-1, 1, SIDE)[None, :, None, None] * rng.uniform(-80, 80, (count, 1, 1, 1))
    noise = rng.normal(0, 40, (count, SIDE, SIDE, channels))
    return np.clip(level + ramp + noise, 0, 255).astype(np.uint8)


def make_graph(arch: str, maps: bool, seed: int = 0) -> InferenceGraph:
    """A randomly initialised network (and its normalizer) as ``restore`` lays it out.

    Batch-norm statistics are measured on other images and then perturbed, so that eval mode
    matters and the outputs vary from image to image instead of saturating.
    """
    torch.manual_seed(seed)
    model, _ = build_model(arch, "none")
    if maps:
        model = MapModel(model, arch)
    normalizer = Normalizer(SIDE, True, arch)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        norm.momentum = None  # a plain average over the calibration batch
        norm.reset_running_stats()
    model.train()
    with torch.no_grad():
        x = normalizer(torch.from_numpy(images(16, seed=seed + 1)))
        model(x, with_map=True) if maps else model(x)
    for norm in norms:
        norm.running_mean += 0.2 * norm.running_var.sqrt() * torch.randn(norm.num_features)
        norm.running_var *= torch.empty(norm.num_features).uniform_(0.5, 2.0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                module.weight *= 10  # spread the probabilities away from 0.5
        if maps:
            model.decoder.out.weight *= 10
    model = model.to(memory_format=torch.channels_last)
    return InferenceGraph(model, normalizer)


def eager(graph: InferenceGraph, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The trainer's scores: ``collect_outputs`` over the normalised images, on the CPU."""
    inputs = [graph.normalizer(torch.from_numpy(batch))]
    return collect_outputs(graph.model, inputs, torch.device("cpu"), maps=graph.has_map)


EXPORTERS = {
    "torchscript": (export_torchscript, TorchScriptScorer),
    "onnx": (export_onnx, OnnxScorer),
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``exported(arch, maps, kind, channels)`` -> ``(graph, path)``, each file written once."""
    done: dict = {}
    graphs: dict = {}
    base = tmp_path_factory.mktemp("exported")

    def get(arch: str, maps: bool, kind: str, channels: int = 3):
        if kind == "onnx":
            _onnx_available()
        key = (arch, maps, kind, channels)
        if key not in done:
            if (arch, maps) not in graphs:
                graphs[arch, maps] = make_graph(arch, maps)
            graph = graphs[arch, maps]  # one network for both formats
            graph.train()  # the export uses eval mode and gives the mode back
            path = base / f"{arch}-{maps}-{channels}.{'onnx' if kind == 'onnx' else 'pt'}"
            EXPORTERS[kind][0](graph, SIDE, channels, path)
            assert graph.training
            done[key] = graph, path
        return done[key]

    return get


@pytest.mark.parametrize("kind", ["torchscript", "onnx"])
@pytest.mark.parametrize(("arch", "maps"), CASES)
def test_the_exported_model_scores_as_the_trained_one(exported, arch, maps, kind):
    graph, path = exported(arch, maps, kind)
    scorer = EXPORTERS[kind][1](path)
    assert (scorer.side, scorer.channels, scorer.has_map) == (SIDE, 3, maps)
    batch = images(5)  # neither the 2 images traced nor the 3 checked: the batch is dynamic
    expected, expected_maps = eager(graph, batch)
    probabilities, got_maps = scorer.score(batch, batch_size=2)  # batches of 2, 2 and 1
    assert probabilities.dtype == np.float32 and probabilities.shape == (5,)
    assert np.abs(probabilities - expected).max() < 1e-4
    assert np.ptp(expected) > 0.01  # the images are told apart, not one saturated value
    if maps:
        assert got_maps.dtype == np.float32 and got_maps.shape == (5, SIDE // 4, SIDE // 4)
        assert np.abs(got_maps - expected_maps).max() < 1e-4
        assert np.ptp(expected_maps) > 0.01
    else:
        assert got_maps is None
    empty, empty_maps = scorer.score(batch[:0])
    assert empty.shape == (0,)
    assert empty_maps is None if not maps else empty_maps.shape == (0, SIDE // 4, SIDE // 4)


@pytest.mark.parametrize("kind", ["torchscript", "onnx"])
def test_a_grey_model_takes_one_channel_and_refuses_three(exported, kind):
    graph, path = exported("smallcnn", True, kind, channels=1)
    scorer = EXPORTERS[kind][1](path)
    assert scorer.channels == 1
    batch = images(3, channels=1)
    probabilities, maps = scorer.score(batch)
    expected, expected_maps = eager(graph, batch)
    assert np.abs(probabilities - expected).max() < 1e-4
    assert np.abs(maps - expected_maps).max() < 1e-4
    with pytest.raises(LesionPasteError, match=rf"\(N, {SIDE}, {SIDE}, 1\) uint8"):
        scorer.score(images(3, channels=3))


@pytest.mark.parametrize("kind", ["torchscript", "onnx"])
def test_images_that_do_not_fit_the_model_are_refused(exported, kind):
    _, path = exported("smallcnn", False, kind)
    scorer = EXPORTERS[kind][1](path)
    wrong = [
        np.zeros((2, 2 * SIDE, 2 * SIDE, 3), np.uint8),  # another side
        np.zeros((2, SIDE, SIDE - 8, 3), np.uint8),  # not square
        np.zeros((2, SIDE, SIDE, 3), np.float32),  # not uint8
        np.zeros((SIDE, SIDE, 3), np.uint8),  # one image without its batch axis
        [[0]],  # not an array
    ]
    for bad in wrong:
        with pytest.raises(LesionPasteError) as caught:
            scorer.score(bad)
        assert "\n" not in str(caught.value)
    with pytest.raises(LesionPasteError, match="batch size"):
        scorer.score(images(2), batch_size=0)


def _bad_files(folder: Path, good: Path) -> dict[str, Path]:
    """Files that are not a model of this kind: damaged, truncated, another format."""
    folder.mkdir(exist_ok=True)
    data = good.read_bytes()
    made = {
        "random": np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes(),
        "truncated": data[: len(data) // 2],
        "damaged": data[:200] + bytes(b ^ 0x5A for b in data[200:400]) + data[400:],
        "pickle": pickle.dumps({"model": {"w": np.zeros(3)}}),
        "empty": b"",
        "text": b"ir_version: 8\ngraph { }\n",
    }
    paths = {}
    for name, content in made.items():
        paths[name] = folder / name
        paths[name].write_bytes(content)
    paths["torch.save"] = folder / "checkpoint.pt"
    torch.save({"model": nn.Linear(2, 2).state_dict()}, paths["torch.save"])
    return paths


def _one_line(scorer_type, path: Path, match: str = "") -> str:
    with pytest.raises(LesionPasteError) as caught:
        scorer_type(path)
    message = str(caught.value)
    assert "\n" not in message and message, message
    assert match in message, message
    return message


def test_the_onnx_runner_refuses_what_is_not_an_lp_export_model(exported, tmp_path):
    _, good = exported("smallcnn", False, "onnx")
    _one_line(OnnxScorer, tmp_path / "absent.onnx", "no such file")
    _one_line(OnnxScorer, tmp_path, "directory")
    for name, path in _bad_files(tmp_path / "bad", good).items():
        message = _one_line(OnnxScorer, path)
        assert str(path) in message, (name, message)
    _, torchscript = exported("smallcnn", False, "torchscript")
    _one_line(OnnxScorer, torchscript, "not a loadable ONNX model")
    import onnx
    from onnx import TensorProto, helper

    other = helper.make_model(  # a valid ONNX model, but another contract
        helper.make_graph(
            [helper.make_node("Relu", ["x"], ["y"])], "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        ),
        opset_imports=[helper.make_opsetid("", 18)],
    )  # fmt: skip
    onnx.save(other, tmp_path / "other.onnx")
    _one_line(OnnxScorer, tmp_path / "other.onnx", "not one lp-export wrote")


def test_the_torchscript_runner_refuses_pickles_and_damaged_files(exported, tmp_path):
    _, good = exported("smallcnn", False, "torchscript")
    _one_line(TorchScriptScorer, tmp_path / "absent.pt", "no such file")
    for name, path in _bad_files(tmp_path / "bad", good).items():
        message = _one_line(TorchScriptScorer, path)
        assert str(path) in message, (name, message)
    _one_line(TorchScriptScorer, tmp_path / "bad" / "checkpoint.pt", "not a TorchScript archive")
    with warnings.catch_warnings():  # torch 2.10+ deprecates TorchScript (FutureWarning)
        warnings.simplefilter("ignore")
        plain = torch.jit.trace(nn.Linear(2, 2), torch.zeros(1, 2))
        torch.jit.save(plain, str(tmp_path / "plain.pt"))
    _one_line(TorchScriptScorer, tmp_path / "plain.pt", "not one lp-export wrote")
    if not torch.cuda.is_available():
        with pytest.raises(LesionPasteError, match="no CUDA device"):
            TorchScriptScorer(good, device="cuda")


@pytest.mark.parametrize(
    "metadata",
    [
        "[" * 200_000,  # nested absurdly deep
        "[1, 2]",
        '{"format": 1, "side": "32", "channels": 3, "has_map": false, "map_size": null}',
        '{"format": 2, "side": 32, "channels": 3, "has_map": false, "map_size": null}',
        '{"format": 1, "side": 32, "channels": 3, "has_map": 1, "map_size": null}',
        '{"format": 1, "side": 32, "channels": 3, "has_map": true, "map_size": [8, 0]}',
    ],
    ids=["deep", "list", "string-side", "format-2", "int-has-map", "zero-map-size"],
)
def test_a_torchscript_archive_with_damaged_metadata_is_one_line(metadata, tmp_path):
    """Built valid, then its metadata damaged once: each is refused naming the archive."""
    with warnings.catch_warnings():  # torch 2.10+ deprecates TorchScript (FutureWarning)
        warnings.simplefilter("ignore")
        plain = torch.jit.trace(nn.Linear(2, 2), torch.zeros(1, 2))
        path = tmp_path / "model.pt"
        torch.jit.save(plain, str(path), _extra_files={export_model.METADATA: metadata})
    message = _one_line(TorchScriptScorer, path, "not one lp-export wrote")
    assert str(path) in message


@pytest.mark.parametrize("kind", ["torchscript", "onnx"])
def test_an_enormous_file_is_refused_unread(kind, tmp_path, monkeypatch):
    if kind == "onnx":
        _onnx_available()
    huge = tmp_path / "huge.bin"
    with open(huge, "wb") as fh:  # sparse: nothing is written, the size alone says too large
        fh.truncate(onnx_runner.MAX_MODEL_BYTES + 1)
    opened = onnx_runner.open_regular

    class Unread:
        """The opened file, minus reading: the refusal must come from its size alone."""

        def __init__(self, fh):
            self.fh = fh

        def fileno(self) -> int:
            return self.fh.fileno()

        def read(self, *_args):
            raise AssertionError("the file was read")

        def __enter__(self):
            return self

        def __exit__(self, *_exc):
            self.fh.close()

    monkeypatch.setattr(onnx_runner, "open_regular", lambda *a: Unread(opened(*a)))
    _one_line(EXPORTERS[kind][1], huge, "refused unread")


def test_a_missing_onnx_runtime_is_named_with_its_extra(exported, monkeypatch, tmp_path):
    _, good = exported("smallcnn", False, "onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now fails
    _one_line(OnnxScorer, good, "pip install 'lesionpaste[onnx]'")
    with pytest.raises(LesionPasteError, match=r"pip install 'lesionpaste\[onnx\]'"):
        export_onnx(make_graph("smallcnn", False), SIDE, 3, tmp_path / "m.onnx")


SCRIPT = """
import sys
import numpy as np
from lesionpaste.train.deploy.onnx_runner import OnnxScorer
scorer = OnnxScorer(sys.argv[1])
batch = np.load(sys.argv[2])
probabilities, maps = scorer.score(batch, batch_size=2)
np.save(sys.argv[3], probabilities)
np.save(sys.argv[4], maps)
assert "torch" not in sys.modules, "torch was imported"
print("torch-free")
"""


def test_the_onnx_runner_scores_without_importing_torch(exported, tmp_path):
    graph, path = exported("smallcnn", True, "onnx")
    batch = images(5)
    np.save(tmp_path / "images.npy", batch)
    out = [tmp_path / "p.npy", tmp_path / "m.npy"]
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(path), str(tmp_path / "images.npy"), *map(str, out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 0 and r.stdout.strip() == "torch-free", r.stderr
    expected, expected_maps = eager(graph, batch)
    assert np.abs(np.load(out[0]) - expected).max() < 1e-4
    assert np.abs(np.load(out[1]) - expected_maps).max() < 1e-4


@pytest.mark.parametrize("kind", ["torchscript", "onnx"])
def test_export_is_atomic_and_never_replaces_a_file_unasked(exported, kind, tmp_path, monkeypatch):
    graph, _ = exported("smallcnn", False, kind)
    export = EXPORTERS[kind][0]
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "model"
    target.write_bytes(b"earlier")
    with pytest.raises(LesionPasteError, match="already exists"):
        export(graph, SIDE, 3, target)
    assert target.read_bytes() == b"earlier"
    monkeypatch.setattr(export_model, "TOLERANCE", -1.0)  # every check now fails
    with pytest.raises(LesionPasteError, match="not written"):
        export(graph, SIDE, 3, target, overwrite=True)
    assert target.read_bytes() == b"earlier"
    assert os.listdir(tmp_path / "out") == ["model"]  # no temporary file left


@pytest.mark.parametrize(("side", "channels"), [(0, 3), (32, 2), (32.0, 3)])
def test_a_bad_input_contract_is_refused(side, channels, tmp_path):
    with pytest.raises(LesionPasteError):
        export_torchscript(make_graph("smallcnn", False), side, channels, tmp_path / "out" / "m.pt")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["torchscript", "onnx"])
def test_a_recorded_digest_catches_damage_the_loaders_cannot_see(exported, kind, tmp_path):
    _, good = exported("smallcnn", False, kind)
    digest = hashlib.sha256(good.read_bytes()).hexdigest()
    scorer_type = EXPORTERS[kind][1]
    assert scorer_type(good, sha256=digest).side == SIDE
    data = bytearray(good.read_bytes())
    middle = len(data) // 2  # inside the weights: both formats load it without complaint
    data[middle : middle + 64] = bytes(b ^ 0x5A for b in data[middle : middle + 64])
    damaged = tmp_path / good.name
    damaged.write_bytes(bytes(data))
    _one_line(lambda p: scorer_type(p, sha256=digest), damaged, "sha256")
