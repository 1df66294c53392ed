"""A trained model as one file that scores raw prepared images: TorchScript or ONNX.

``InferenceGraph`` puts the run's ``Normalizer`` and its network in one module whose input is
the prepared ``(N, S, S, C)`` ``uint8`` images and whose outputs are the numbers
``train.models.decoder.collect_outputs`` gives (on the CPU, in fp32): the probability of class 1 and,
for a ``MapModel``, the map probabilities at the map's stride. Both exporters trace that module
on the CPU with an example batch, so ``MapModel``'s forward hooks run and their features flow
into the decoder as in eager mode; the batch dimension stays dynamic, the image side and
channels are fixed. Every written file is checked against the eager module on a batch of
another size before it is renamed into place.

ONNX goes through torch's ``torch.export``-based exporter (``dynamo=True``) at opset
``OPSET``: the TorchScript-based one cannot express VGG16's adaptive pooling at 256 pixels
(8 to 7 cells) nor the antialiased resize of a side other than the run's. ONNX models are
scored without torch by ``train.deploy.onnx_runner.OnnxScorer``; TorchScript ones by
``TorchScriptScorer`` here.
"""

from __future__ import annotations

import contextlib
import copy
import io
import itertools
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lesionpaste.errors import LesionPasteError
from lesionpaste.files import atomic_output
from lesionpaste.jsonfiles import parse_json
from lesionpaste.train.deploy.onnx_runner import (
    INPUT,
    MAP,
    PROBABILITY,
    OnnxScorer,
    first_line,
    in_batches,
    read_model_file,
)
from lesionpaste.train.models.decoder import MapModel

#: the ONNX opset written: the first with antialiased Resize (torch writes IR version 10 with it)
OPSET = 18
#: the largest difference from the eager scores that a written file may show
TOLERANCE = 1e-3
#: the TorchScript archive's own description (side, channels, maps), next to the code
METADATA = "lesionpaste.json"
_EXAMPLE_BATCH = 2  # traced with 2 images (1 would fix the batch), checked with 3
_CHECK_BATCH = 3


class InferenceGraph(nn.Module):
    """The run's normalizer and network as one module: prepared ``uint8`` images in,
    probabilities out.

    Args:
        model: the network (a backbone of ``train.models.build`` or a ``MapModel``).
        normalizer: the run's ``train.models.on_device.Normalizer``.
    """

    def __init__(self, model: nn.Module, normalizer: nn.Module):
        super().__init__()
        self.model = model
        self.normalizer = normalizer
        self.has_map = isinstance(model, MapModel)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Probabilities of class 1, and the map probabilities for a ``MapModel``.

        Args:
            images: ``(N, S, S, C)`` ``uint8`` prepared images.

        Returns:
            ``(probability,)`` ``(N,)`` ``float32``, or for a ``MapModel``
            ``(probability, map)`` with ``map`` ``(N, h, w)`` ``float32`` at the map's stride.
        """
        x = self.normalizer(images)
        if not self.has_map:
            return (torch.softmax(self.model(x).float(), dim=1)[:, 1],)
        logits, map_logits = self.model(x, with_map=True)
        probability = torch.softmax(logits.float(), dim=1)[:, 1]
        return probability, torch.sigmoid(map_logits.float())[:, 0]


def _check_input(side: int, channels: int) -> None:
    if isinstance(side, bool) or not isinstance(side, int) or side < 1:
        raise LesionPasteError(f"image side {side!r}: expected a positive number of pixels")
    if channels not in (1, 3):
        raise LesionPasteError(f"{channels!r} channels: expected 3 (RGB) or 1 (grey)")


def _examples(side: int, channels: int, count: int) -> np.ndarray:
    """Images of different levels, gradients and noise (plain noise may saturate a model)."""
    rng = np.random.default_rng(count)
    level = rng.uniform(20, 235, (count, 1, 1, channels))
    ramp = np.linspace(-1, 1, side)[None, :, None, None] * rng.uniform(-80, 80, (count, 1, 1, 1))
    noise = rng.normal(0, 40, (count, side, side, channels))
    return np.clip(level + ramp + noise, 0, 255).astype(np.uint8)


@contextlib.contextmanager
def _on_cpu_in_eval(graph: InferenceGraph) -> Iterator[InferenceGraph]:
    """The graph in eval mode on the CPU (a copy when it is elsewhere); its mode is restored."""
    if any(t.device.type != "cpu" for t in itertools.chain(graph.parameters(), graph.buffers())):
        graph = copy.deepcopy(graph).cpu()  # the copy's hooks are bound to the copy
    training = graph.training
    graph.eval()
    try:
        with torch.no_grad():
            yield graph
    finally:
        graph.train(training)


def _quietly():
    """Torch's deprecation and tracer warnings (and the exporter's chatter) kept off screen."""
    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    return stack


def _checked_outputs(
    graph: InferenceGraph, side: int, channels: int, path: Path
) -> tuple[np.ndarray, tuple[torch.Tensor, ...]]:
    """The check images and the eager graph's outputs for them (which the file must match)."""
    images = _examples(side, channels, _CHECK_BATCH)
    try:
        return images, graph(torch.from_numpy(images))
    except Exception as exc:  # noqa: BLE001 - any failure of the network itself
        raise LesionPasteError(
            f"{path}: the model does not run on {side}x{side}x{channels} images ({first_line(exc)})"
        ) from None


def _verify(images: np.ndarray, expected: tuple[torch.Tensor, ...], scorer, path: Path) -> None:
    """Refuse a written model whose scores (or maps) differ from the eager graph's."""
    probabilities, maps = scorer.score(images)
    got = (probabilities,) if maps is None else (probabilities, maps)
    if len(got) != len(expected) or any(g.shape != e.shape for g, e in zip(got, expected)):
        raise LesionPasteError(
            f"{path}: the exported model's outputs have other shapes; not written"
        )
    worst = max(float(np.abs(g - e.numpy()).max(initial=0.0)) for g, e in zip(got, expected))
    if not worst <= TOLERANCE:
        raise LesionPasteError(
            f"{path}: the exported model's scores differ from the trained model's by {worst:.3g}"
            f" (more than {TOLERANCE}); not written"
        )


def export_torchscript(
    graph: InferenceGraph, side: int, channels: int, path: Path, overwrite: bool = False
) -> None:
    """Write the graph as a traced TorchScript archive, atomically, and check it.

    The archive holds ``METADATA`` (side, channels, maps, map size) for ``TorchScriptScorer``.

    Args:
        graph: the model and its normalizer.
        side: the prepared images' side, in pixels (fixed in the file).
        channels: their channels, 3 (RGB) or 1 (grey).
        path: the ``.pt`` file to write.
        overwrite: replace an existing file.

    Raises:
        LesionPasteError: a bad side or channel count, ``path`` exists (without
            ``overwrite``), tracing failed, or the traced module's scores differ from the
            eager ones.
    """
    _check_input(side, channels)
    path = Path(path)
    with _on_cpu_in_eval(graph) as cpu, atomic_output(path, overwrite) as tmp:
        images, expected = _checked_outputs(cpu, side, channels, path)
        example = torch.from_numpy(_examples(side, channels, _EXAMPLE_BATCH))
        try:
            with _quietly():
                traced = torch.jit.trace(cpu, (example,), check_trace=False)
        except Exception as exc:  # noqa: BLE001 - the tracer raises many types
            raise LesionPasteError(
                f"{path}: could not trace the model ({first_line(exc)})"
            ) from None
        metadata = {
            "format": 1,
            "side": side,
            "channels": channels,
            "has_map": cpu.has_map,
            "map_size": list(expected[1].shape[1:]) if cpu.has_map else None,
        }
        with _quietly():
            torch.jit.save(traced, str(tmp), _extra_files={METADATA: json.dumps(metadata)})
        _verify(images, expected, TorchScriptScorer(tmp), path)


def export_onnx(
    graph: InferenceGraph, side: int, channels: int, path: Path, overwrite: bool = False
) -> None:
    """Write the graph as one ONNX file (opset ``OPSET``, weights inside), atomically, and
    check it with ONNX Runtime.

    Input ``images`` ``(batch, side, side, channels)`` ``uint8``; outputs ``probability``
    ``(batch,)`` and, for a ``MapModel``, ``map`` ``(batch, h, w)``, ``float32``.

    Args:
        graph: the model and its normalizer.
        side: the prepared images' side, in pixels (fixed in the file).
        channels: their channels, 3 (RGB) or 1 (grey).
        path: the ``.onnx`` file to write.
        overwrite: replace an existing file.

    Raises:
        LesionPasteError: the ``onnx`` extra is not installed, a bad side or channel count,
            ``path`` exists (without ``overwrite``), the export failed, or the exported
            model's scores differ from the eager ones.
    """
    _check_input(side, channels)
    path = Path(path)
    try:
        import onnxruntime  # noqa: F401 - needed to check the file
        import onnxscript  # noqa: F401 - torch's exporter needs it
    except ImportError:
        raise LesionPasteError(
            "ONNX export needs the onnx extra: pip install 'lesionpaste[onnx]'"
        ) from None
    with _on_cpu_in_eval(graph) as cpu, atomic_output(path, overwrite) as tmp:
        images, expected = _checked_outputs(cpu, side, channels, path)
        example = torch.from_numpy(_examples(side, channels, _EXAMPLE_BATCH))
        names = [PROBABILITY, MAP] if cpu.has_map else [PROBABILITY]
        try:
            with _quietly():
                program = torch.onnx.export(
                    cpu,
                    (example,),
                    dynamo=True,
                    opset_version=OPSET,
                    input_names=[INPUT],
                    output_names=names,
                    dynamic_shapes={"images": {0: torch.export.Dim("batch", min=1)}},
                    external_data=False,
                    verbose=False,
                )
                program.save(str(tmp), external_data=False)
        except Exception as exc:  # noqa: BLE001 - torch.export and the exporter raise many types
            raise LesionPasteError(
                f"{path}: could not export the model to ONNX ({first_line(exc)})"
            ) from None
        _verify(images, expected, OnnxScorer(tmp), path)


def _device(name: str | torch.device) -> torch.device:
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise LesionPasteError(f"device {name!r}: expected cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LesionPasteError(f"device {name!r}: no CUDA device is available (use cpu)")
    if device.type not in ("cpu", "cuda"):
        raise LesionPasteError(f"device {name!r}: expected cpu or cuda")
    return device


def _metadata(raw: bytes, path: Path) -> dict:
    try:
        meta = parse_json(raw, path)  # the safe parser: nested absurdly deep is one error
        side, channels, has_map = meta["side"], meta["channels"], meta["has_map"]
        size = meta["map_size"]
        valid = (
            meta["format"] == 1
            and type(side) is int
            and side >= 1
            and type(channels) is int
            and channels in (1, 3)
            and type(has_map) is bool
            and (
                not has_map
                or (
                    isinstance(size, list)
                    and len(size) == 2
                    and all(type(v) is int and v >= 1 for v in size)
                )
            )
        )
    except (LesionPasteError, ValueError, TypeError, KeyError):
        valid = False
    if not valid:
        raise LesionPasteError(
            f"{path}: a TorchScript archive, but not one lp-export wrote (no valid "
            f"{METADATA}); export the run again with lp-export"
        )
    return meta


class TorchScriptScorer:
    """An ``lp-export`` TorchScript model, ready to score ``(N, S, S, C)`` ``uint8`` images.

    Only TorchScript archives are loaded: a ``torch.save`` pickle, or any other file, is
    refused. A TorchScript archive is code: load only files you trust.

    Args:
        path: the ``.pt`` file.
        device: where to run it, ``"cpu"`` or ``"cuda"``.
        sha256: the digest the file must have (hex), as recorded at export; None checks
            nothing.

    Raises:
        LesionPasteError: a missing, too large or damaged file, not a TorchScript archive,
            not one ``lp-export`` wrote, of another digest than ``sha256``, or an unavailable
            device.
    """

    def __init__(self, path: Path, device: str | torch.device = "cpu", sha256: str | None = None):
        self.path = Path(path)
        self._device = _device(device)
        data = read_model_file(self.path, "model file", sha256=sha256)
        extra = {METADATA: ""}
        try:
            with _quietly():
                self._module = torch.jit.load(
                    io.BytesIO(data), map_location=self._device, _extra_files=extra
                )
        except Exception as exc:  # noqa: BLE001 - torch raises many types for other files
            raise LesionPasteError(
                f"{self.path}: not a TorchScript archive ({first_line(exc)}); pickles and "
                "other files are refused"
            ) from None
        meta = _metadata(extra[METADATA], self.path)
        self._module.eval()
        self.side: int = meta["side"]
        self.channels: int = meta["channels"]
        self.has_map: bool = meta["has_map"]
        self._map_size = tuple(meta["map_size"]) if self.has_map else (1, 1)

    def score(
        self, images: np.ndarray, batch_size: int = 32
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Every image's probability of being anomalous, and its map when the model has one.

        Args:
            images: ``(N, S, S, C)`` ``uint8`` images, prepared as the run prepares them.
            batch_size: images per forward pass.

        Returns:
            ``(probabilities, maps)``: ``(N,)`` ``float32``, and ``(N, h, w)`` ``float32`` map
            probabilities at the map's stride (None for a model without maps).

        Raises:
            LesionPasteError: images of another shape or dtype, or a bad batch size.
        """

        def run(batch: np.ndarray, _start: int) -> list:
            out = self._module(torch.tensor(batch, device=self._device))
            return [o.float().cpu().numpy() for o in out]

        with torch.inference_mode():
            return in_batches(self, run, images, batch_size)
