"""Scoring images with an ONNX model that ``lp-export`` wrote, without torch.

Only numpy, ONNX Runtime (the ``onnx`` extra) and the core are imported, so a deployment needs
neither torch nor the trainer. The model's contract is read from its own input and output
metadata: one input ``images``, ``(N, S, S, C)`` ``uint8`` (``C`` 3 for RGB, 1 for grey), and
the outputs ``probability`` ``(N,)`` and, for a run with maps, ``map`` ``(N, h, w)``, both
``float32`` probabilities. The model file is read whole (at most ``MAX_MODEL_BYTES``) and
handed to ONNX Runtime as bytes; anything else is refused with one line.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from lesionpaste.errors import LesionPasteError
from lesionpaste.files import open_regular

#: the largest model file read (ONNX's protobuf cannot hold more than 2 GiB in one file)
MAX_MODEL_BYTES = 2 * 1024**3
#: the names of the graph's input and outputs
INPUT, PROBABILITY, MAP = "images", "probability", "map"
_INSTALL = "pip install 'lesionpaste[onnx]'"


def read_model_file(
    path: Path, what: str, max_bytes: int | None = None, sha256: str | None = None
) -> bytes:
    """The bytes of a model file, its size checked before anything is read.

    Args:
        path: the model file.
        what: what it should be, for messages (e.g. ``"model file"``).
        max_bytes: the largest size accepted; None means ``MAX_MODEL_BYTES``.
        sha256: the digest the file must have (hex), e.g. from the export's ``model.json``;
            None checks nothing. Damage inside the weights is invisible to both formats'
            loaders, so a recorded digest is the only way to catch it.

    Returns:
        The file's bytes.

    Raises:
        LesionPasteError: missing, not a regular file, unreadable, empty, too large, or of
            another digest than ``sha256``.
    """
    limit = MAX_MODEL_BYTES if max_bytes is None else max_bytes
    with open_regular(Path(path), what) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > limit:
            raise LesionPasteError(
                f"{path}: {size:,} bytes, larger than a {what} may be ({limit:,}); refused unread"
            )
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise LesionPasteError(f"{path}: cannot read ({exc.strerror})") from None
    if len(data) > limit:  # it grew while being read
        raise LesionPasteError(f"{path}: larger than a {what} may be ({limit:,} bytes); refused")
    if not data:
        raise LesionPasteError(f"{path}: an empty file, where a {what} was expected")
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256.lower():
        raise LesionPasteError(
            f"{path}: its sha256 is not the one recorded at export ({sha256}); the file was "
            "changed or damaged: export the run again"
        )
    return data


def first_line(exc: BaseException, limit: int = 160) -> str:
    """An exception as one short line: its type and the first sentence of its message.

    Args:
        exc: the exception.
        limit: the longest message kept, in characters.

    Returns:
        ``"Type: first sentence"`` (or just the type when the message is empty).
    """
    lines = str(exc).strip().splitlines()
    text = lines[0].strip().split(". ")[0].rstrip(".") if lines else ""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check_images(images: np.ndarray, side: int, channels: int) -> np.ndarray:
    """The images as a C-contiguous ``(N, side, side, channels)`` ``uint8`` array, or a refusal.

    Args:
        images: the images to score.
        side: the model's input side, in pixels.
        channels: the model's input channels (3 or 1).

    Returns:
        The same images (copied only when not C-contiguous).

    Raises:
        LesionPasteError: not an array of that shape and dtype.
    """
    expected = f"(N, {side}, {side}, {channels}) uint8 images"
    if not isinstance(images, np.ndarray):
        raise LesionPasteError(f"{type(images).__name__} given where {expected} were expected")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (side, side, channels):
        raise LesionPasteError(
            f"images of shape {tuple(images.shape)} ({images.dtype}) do not fit the model, "
            f"which takes {expected}; prepare them as the run did"
        )
    return np.ascontiguousarray(images)


def check_batch_size(batch_size: int) -> int:
    """A batch size, refused unless it is a positive integer.

    Args:
        batch_size: images per forward pass.

    Returns:
        The batch size.

    Raises:
        LesionPasteError: not a positive integer.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise LesionPasteError(f"batch size {batch_size!r}: expected a positive integer")
    return batch_size


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise LesionPasteError(
            f"ONNX models need ONNX Runtime, which is not installed: {_INSTALL}"
        ) from None
    return onnxruntime


def _contract(session, path: Path) -> tuple[int, int, bool, tuple[int, int]]:
    """``(side, channels, has_map, map_size)`` from the session's metadata, or a refusal."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    names = [o.name for o in outputs]
    shape = inputs[0].shape if len(inputs) == 1 else []
    fits = (
        len(inputs) == 1
        and inputs[0].name == INPUT
        and inputs[0].type == "tensor(uint8)"
        and len(shape) == 4
        and all(isinstance(d, int) for d in shape[1:])
        and shape[1] == shape[2]
        and shape[1] >= 1
        and shape[3] in (1, 3)
        and names in ([PROBABILITY], [PROBABILITY, MAP])
    )
    if not fits:
        found = ", ".join(f"{i.name} {i.type} {i.shape}" for i in inputs) or "none"
        raise LesionPasteError(
            f"{path}: an ONNX model, but not one lp-export wrote (inputs: {found}; outputs: "
            f"{', '.join(names) or 'none'}); export the run again with lp-export"
        )
    map_size = (1, 1)
    if MAP in names:
        dims = outputs[1].shape
        if len(dims) == 3 and all(isinstance(d, int) for d in dims[1:]):
            map_size = (dims[1], dims[2])
    return shape[1], shape[3], MAP in names, map_size


def in_batches(scorer, run, images: np.ndarray, batch_size: int) -> tuple:
    """A scorer's outputs for every image, a batch at a time (both exported formats).

    Args:
        scorer: an ``OnnxScorer`` or ``train.deploy.export_model.TorchScriptScorer`` (its ``side``,
            ``channels``, ``has_map`` and map size).
        run: ``(batch, start) -> (probabilities, maps)`` as arrays, for one batch.
        images: ``(N, S, S, C)`` ``uint8`` images.
        batch_size: images per batch.

    Returns:
        ``(probabilities, maps)``: ``(N,)`` ``float32``, and ``(N, h, w)`` ``float32`` (None
        for a model without maps).

    Raises:
        LesionPasteError: images of another shape or dtype, or a bad batch size.
    """
    images = check_images(images, scorer.side, scorer.channels)
    batch_size = check_batch_size(batch_size)
    probabilities = [np.zeros(0, np.float32)]
    maps = [np.zeros((0, *scorer._map_size), np.float32)]
    for start in range(0, len(images), batch_size):
        out = run(images[start : start + batch_size], start)
        probabilities.append(np.asarray(out[0], np.float32))
        if scorer.has_map:
            maps.append(np.asarray(out[1], np.float32))
    if len(maps) > 1:
        maps = maps[1:]  # the empty placeholder only shapes a result for no image
    return np.concatenate(probabilities), (np.concatenate(maps) if scorer.has_map else None)


class OnnxScorer:
    """An ``lp-export`` ONNX model, ready to score ``(N, S, S, C)`` ``uint8`` images.

    Args:
        path: the ``.onnx`` file.
        providers: ONNX Runtime's execution providers, in order of preference; None means
            the CPU.
        sha256: the digest the file must have (hex), as recorded at export; None checks
            nothing.

    Raises:
        LesionPasteError: ONNX Runtime is not installed; the file is missing, too large, not
            an ONNX model (damaged, truncated, another format), not one ``lp-export`` wrote, or of
            another digest than ``sha256``.
    """

    def __init__(self, path: Path, providers: list[str] | None = None, sha256: str | None = None):
        ort = _onnxruntime()
        self.path = Path(path)
        data = read_model_file(self.path, "model file", sha256=sha256)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no warnings on the terminal
        options.add_session_config_entry("session.load_model_format", "ONNX")
        try:
            self._session = ort.InferenceSession(
                data, sess_options=options, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own types, not one base
            raise LesionPasteError(
                f"{self.path}: not a loadable ONNX model ({first_line(exc)})"
            ) from None
        self.side, self.channels, self.has_map, self._map_size = _contract(self._session, self.path)

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
            LesionPasteError: images of another shape or dtype, a bad batch size, or a failure
                inside ONNX Runtime.
        """

        def run(batch: np.ndarray, start: int) -> list:
            try:
                return self._session.run(None, {INPUT: batch})
            except Exception as exc:  # noqa: BLE001 - ONNX Runtime's own types
                raise LesionPasteError(
                    f"{self.path}: ONNX Runtime failed on images {start}.. ({first_line(exc)})"
                ) from None

        return in_batches(self, run, images, batch_size)
