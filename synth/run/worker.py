"""What a worker process does: make one image's pair (or evaluation image) and its record.

A worker reads the bank and its tier pools once, not per image: both are cached per process,
keyed by the bank file's path and digest (never by ``id()``, which a collected object's successor
may reuse), in bounded caches that are empty until the first image asks.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from lesionpaste.bank_format import Bank, read_bank
from lesionpaste.errors import LesionPasteError
from lesionpaste.files import write_atomic
from lesionpaste.images import encode_png
from lesionpaste.preparation import Prepared
from lesionpaste.synth.inputs.ground_truth import prepared_masks
from lesionpaste.synth.inputs.load_normal import normals_recipe, prepare_normal
from lesionpaste.synth.inputs.normals import NormalImage
from lesionpaste.synth.pasting.cutpaste import cutpaste_twin
from lesionpaste.synth.pasting.tiers import Tier
from lesionpaste.synth.pasting.twin import (
    LesionTable,
    image_generators,
    lesion_table,
    synthesize_twin,
)
from lesionpaste.synth.run.job import Job


@lru_cache(maxsize=4)
def _read_bank_once(path: Path, sha256: str) -> Bank:
    bank = read_bank(path)
    if bank.sha256 != sha256:
        raise LesionPasteError(f"{path} changed while the run was going on")
    return bank


@lru_cache(maxsize=16)
def _pools_once(path: Path, sha256: str, tiers: tuple[Tier, ...]) -> tuple[np.ndarray, ...]:
    bank = _read_bank_once(path, sha256)
    return tuple(bank.indices_of(list(t.types)) for t in tiers)


def job_bank(job: Job) -> Bank:
    """The job's lesion bank, read once per process and checked against the job's digest.

    Args:
        job: the run's configuration (bank path and the digest it was started with).

    Returns:
        The bank.

    Raises:
        LesionPasteError: the bank file no longer has the digest the run started with.
    """
    return _read_bank_once(Path(job.bank_path), job.bank_sha256)


@lru_cache(maxsize=4)
def _table_once(path: Path, sha256: str, luts: bytes | None, shape: tuple) -> LesionTable:
    colour = None if luts is None else np.frombuffer(luts, np.uint8).reshape(shape)
    return lesion_table(_read_bank_once(path, sha256), colour)


def job_lesion_table(job: Job) -> LesionTable:
    """The job's lesion table (box sizes and mean pixels through its colour tables), made once
    per process.

    Args:
        job: the run's configuration (bank and colour tables).

    Returns:
        ``synth.pasting.twin.lesion_table`` of the job's bank and colour tables.
    """
    luts = job.colour_luts
    key = None if luts is None else np.ascontiguousarray(luts, np.uint8).tobytes()
    shape = () if luts is None else tuple(luts.shape)
    return _table_once(Path(job.bank_path), job.bank_sha256, key, shape)


def tier_pools(job: Job) -> list[np.ndarray]:
    """Per tier, the bank indices of its lesions: computed once per process, not per image.

    Args:
        job: the run's configuration (bank and tiers).

    Returns:
        One int array of bank indices per tier of ``job.tiers``, in order.
    """
    return list(_pools_once(Path(job.bank_path), job.bank_sha256, job.tiers))


def _relative(kind: str, image_id: str) -> str:
    if kind.startswith("mask:"):  # an evaluation image's mask of one lesion type
        return f"masks/{kind.removeprefix('mask:')}/{image_id}.png"
    return {
        "image": f"images/{image_id}.png",
        "normal": f"images/normal/{image_id}.png",
        "anomalous": f"images/anomalous/{image_id}.png",
        "mask": f"masks/{image_id}.png",
    }[kind]


def _save(work: Path, outputs: list[tuple[str, np.ndarray]], image_id: str) -> dict:
    files = {}
    for kind, array in outputs:
        data = encode_png(array)
        write_atomic(work / _relative(kind, image_id), data)
        files[kind] = {
            "path": _relative(kind, image_id),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    return files


def _evaluation_outputs(item: NormalImage, prepared: Prepared) -> list[tuple[str, np.ndarray]]:
    """An evaluation image's files: the image, and its masks prepared like it (the union as
    ``mask``, each lesion type's as ``mask:TYPE``). A bad mask is always fatal: it is the
    ground truth, not one image among many."""
    outputs = [("image", prepared.image)]
    if item.has_masks:
        union, types = prepared_masks(item, prepared)
        outputs.append(("mask", union))
        outputs += [(f"mask:{name}", mask) for name, mask in types.items()]
    return outputs


def make_one(item: NormalImage, job: Job, work: Path) -> dict:
    """Make one normal/anomalous pair (or one evaluation image) in ``work``.

    Args:
        item: the normal image (path, id, label, slice).
        job: the run's configuration.
        work: the run's work folder; the image's files and its record are written there.

    Returns:
        The image's record (also saved as ``records/<id>.json``): ``status`` ``ok`` with its
        files' paths and digests (and, for a twin, its tier and pastes), or ``skipped`` with the
        reason.

    Raises:
        LesionPasteError: the image cannot be read or prepared and ``job.strict`` is set.
    """
    bank = job_bank(job)
    try:
        prepared = prepare_normal(
            item.path, bank, normals_recipe(bank, job.preprocess, job.window), job.size, item.slice
        )
    except LesionPasteError as exc:
        if job.strict:
            raise
        return {
            "id": item.image_id,
            "status": "skipped",
            "path": str(item.path),
            "reason": str(exc),
        }
    if job.kind == "evaluation":
        files = _save(work, _evaluation_outputs(item, prepared), item.image_id)
        record = {"id": item.image_id, "status": "ok", "files": files, "label": item.label}
    else:
        pools = tier_pools(job)
        rngs = image_generators(job.seed, item.image_id)
        twin = (
            cutpaste_twin(prepared, rngs, job.paste.lam)
            if job.method == "cutpaste"
            else synthesize_twin(
                prepared,
                bank,
                list(job.tiers),
                pools,
                job.paste,
                rngs,
                job.colour_luts,
                job_lesion_table(job),
            )
        )
        if not twin.pastes:
            return {
                "id": item.image_id,
                "status": "skipped",
                "path": str(item.path),
                "reason": "no drawn lesion fits inside the field of view",
            }
        outputs = [("normal", prepared.image), ("anomalous", twin.image), ("mask", twin.mask)]
        record = {
            "id": item.image_id,
            "status": "ok",
            "files": _save(work, outputs, item.image_id),
            "tier": twin.tier,
            "tier_types": list(job.tiers[twin.tier].types),
            "n_drawn": twin.n_drawn,
            "pastes": twin.pastes,
        }
    write_atomic(work / "records" / f"{item.image_id}.json", json.dumps(record).encode())
    return record


def make_chunk(items: list[NormalImage], job: Job, work: Path) -> list[dict]:
    """A joblib task: several images, so each task is long enough to be worth sending.

    Args:
        items: the images of this task.
        job: the run's configuration.
        work: the run's work folder.

    Returns:
        Each image's record, in the order of ``items``.
    """
    return [make_one(item, job, work) for item in items]
