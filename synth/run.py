"""Run a synthesis: prepare the work, fan images out with joblib, resume, and publish.

Work happens in a hidden sibling directory ``.NAME.partial`` of the output ``NAME``; each image's
files are written atomically and its record last, so a rerun after any interruption (SIGKILL
included) redoes only what is missing and ends with exactly the files an uninterrupted run
writes. The finished directory is renamed to ``NAME`` in one step, ``dataset.json`` written
last inside it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed, parallel_config

from lesionpaste import __version__
from lesionpaste.bank_format import Bank, read_bank
from lesionpaste.dataset_format import (
    FORMAT,
    SCHEMA_VERSION,
    dataset_json_text,
    manifest_text,
    pastes_text,
)
from lesionpaste.digests import sha256_file
from lesionpaste.errors import LesionPasteError
from lesionpaste.files import output_lock, remove_temp_files, swap_in, write_atomic
from lesionpaste.images import encode_png, jpeg_size
from lesionpaste.jsonfiles import saved_json
from synth.cutpaste import cutpaste_twin
from synth.load_normal import normals_recipe, prepare_normal
from synth.normals import NormalImage
from synth.tiers import Tier
from synth.twin import PasteConfig, image_generators, synthesize_twin


@dataclass(frozen=True)
class Job:
    """Everything a worker needs (picklable): the run's full, resolved configuration."""

    bank_path: Path
    bank_sha256: str
    tiers: tuple[Tier, ...] = ()
    paste: PasteConfig = field(default_factory=PasteConfig)
    kind: str = "synthetic"  # or "evaluation": prepared images only, labelled
    method: str = "lesionpaste"  # or "cutpaste": the baseline, no lesion bank
    seed: int = 0
    size: int = 256
    preprocess: str = "bank"  # or "none": the normals were normalised elsewhere
    strict: bool = False
    colour_luts: np.ndarray | None = field(default=None, repr=False)
    colour_sample: int = 0
    window: tuple[float, float] | None = None  # CT: HU normals windowed at (level, width)

    def describe(self) -> dict:
        """The configuration recorded in ``dataset.json`` (and compared on resume)."""
        window = {"normals_window": list(self.window)} if self.window else {}
        if self.kind == "evaluation":
            return {"size": self.size, "normals_preprocess": self.preprocess, **window}
        return {
            **window,
            "method": self.method,
            "seed": self.seed,
            "size": self.size,
            "tiers": [{"types": list(t.types), "ratio": t.ratio} for t in self.tiers],
            "normals_preprocess": self.preprocess,
            "match_colour": None
            if self.colour_luts is None
            else {
                "method": "per-channel histogram matching of each bank source's field of view "
                "to the pooled field-of-view histogram of a sample of the normals",
                "sample": self.colour_sample,
            },
            **self.paste.to_dict(),
        }


# ---------------------------------------------------------------- in the workers

#: a worker's banks and tier pools, read once per worker process (not per image), keyed by the
#: bank file's path and digest: never by id(), which a collected object's successor may reuse
_BANKS: dict[tuple[str, str], Bank] = {}
_POOLS: dict[tuple[str, str, tuple[Tier, ...]], list[np.ndarray]] = {}


def _bank_key(job: Job) -> tuple[str, str]:
    return str(job.bank_path), job.bank_sha256


def _bank(job: Job) -> Bank:
    key = _bank_key(job)
    if key not in _BANKS:
        bank = read_bank(job.bank_path)
        if bank.sha256 != job.bank_sha256:
            raise LesionPasteError(f"{job.bank_path} changed while the run was going on")
        _BANKS[key] = bank
    return _BANKS[key]


def _tier_pools(job: Job) -> list[np.ndarray]:
    """Per tier, the bank indices of its lesions: computed once per worker, not per image."""
    key = (*_bank_key(job), job.tiers)
    if key not in _POOLS:
        _POOLS[key] = [_bank(job).indices_of(list(t.types)) for t in job.tiers]
    return _POOLS[key]


def _relative(kind: str, image_id: str) -> str:
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


def make_one(item: NormalImage, job: Job, work: Path) -> dict:
    """Make one normal/anomalous pair in ``work``; returns its record (also saved there)."""
    bank = _bank(job)
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
        files = _save(work, [("image", prepared.image)], item.image_id)
        record = {"id": item.image_id, "status": "ok", "files": files, "label": item.label}
    else:
        pools = _tier_pools(job)
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
    """A joblib task: several images, so each task is long enough to be worth sending."""
    return [make_one(item, job, work) for item in items]


# ---------------------------------------------------------------- in the parent


def finished_record(work: Path, image_id: str) -> dict | None:
    """The record of an image an earlier run finished, if its files are all intact."""
    path = work / "records" / f"{image_id}.json"
    record = saved_json(path)
    try:
        for entry in record["files"].values():
            if sha256_file(work / entry["path"]) != entry["sha256"]:
                return None
        return record
    except (LesionPasteError, KeyError, TypeError):  # a file gone or replaced: make it again
        return None


def chunks(items: list, size: int) -> list[list]:
    """``items`` in consecutive lists of ``size`` (the last shorter): one joblib task each."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def _parallel(jobs: int, backend: str, scheduler: str | None):
    if backend == "dask":
        try:
            from distributed import Client
        except ImportError:
            raise LesionPasteError(
                "--backend dask needs: pip install 'lesionpaste[dask]'"
            ) from None
        if not scheduler:
            raise LesionPasteError(
                "--backend dask needs --scheduler ADDRESS (e.g. tcp://host:8786)"
            )
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise LesionPasteError(
                f"cannot reach the Dask scheduler at {scheduler} ({exc})"
            ) from None
        return client, parallel_config(backend="dask")
    return None, parallel_config(backend="loky", n_jobs=jobs)


@dataclass
class Summary:
    """What a run did: images written, skipped (with reasons), resumed, and its seconds."""

    written: int
    skipped: list[dict]
    resumed: int
    seconds: float


def _prepare_work(work: Path, job: Job, normals: list[NormalImage], overwrite: bool) -> None:
    """Make (or keep, to resume) the hidden work folder of this job; called holding the lock.

    A work folder of another job is refused, or removed with ``overwrite``."""
    config = {
        "job": job.describe(),
        "bank_sha256": job.bank_sha256,
        "normals": [[n.image_id, str(n.path)] for n in normals],
    }
    config = json.loads(json.dumps(config, sort_keys=True))  # as it reads back from disk
    config_path = work / "config.json"
    if work.exists():
        previous = saved_json(config_path)
        if previous != config:
            if not overwrite:
                raise LesionPasteError(
                    f"{work} holds an interrupted run with other settings or images; rerun "
                    "it with the same ones to resume, or pass --overwrite to start afresh"
                )
            shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    remove_temp_files(work, recursive=True)  # left by a killed run; we hold the lock
    write_atomic(config_path, json.dumps(config, sort_keys=True).encode(), fsync=True)


def _finished_records(work: Path, normals: list[NormalImage]) -> tuple[dict[str, dict], int]:
    """The records an interrupted run finished (by image id), and how many."""
    records = {}
    for item in normals:
        done = finished_record(work, item.image_id)
        if done is not None:
            records[item.image_id] = done
    return records, len(records)


def _make(todo, job, work, jobs, backend, scheduler, chunk_size, progress, total):
    """Make the images of ``todo`` in parallel chunks; yields each record as it comes."""
    client, config_ctx = _parallel(jobs, backend, scheduler)
    try:
        with config_ctx:
            tasks = (delayed(make_chunk)(c, job, work) for c in chunks(todo, chunk_size))
            for batch in Parallel(return_as="generator_unordered")(tasks):
                yield from batch
                if progress:
                    progress(len(batch), total)
    finally:
        if client is not None:
            client.close()


def run_synthesis(
    normals: list[NormalImage],
    job: Job,
    out: Path,
    *,
    command: str,
    listed_missing: list[dict] | None = None,
    jobs: int = 1,
    backend: str = "loky",
    scheduler: str | None = None,
    overwrite: bool = False,
    chunk_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
    write_card: Callable[[dict], str] | None = None,
) -> Summary:
    """Write the dataset (synthetic twins, or an evaluation set) for ``normals`` to ``out``."""
    started = time.perf_counter()
    out = Path(out).resolve()  # one work folder whatever the spelling (., links)
    work = out.with_name(f".{out.name}.partial")
    with output_lock(out, "lp-synth"):
        if out.exists() and not overwrite:
            raise LesionPasteError(f"{out} already exists; pass --overwrite to replace it")
        _prepare_work(work, job, normals, overwrite)
        records, resumed = _finished_records(work, normals)
        if progress:
            progress(resumed, len(normals))
        todo = [item for item in normals if item.image_id not in records]
        if todo:
            for record in _make(todo, job, work, jobs, backend, scheduler, chunk_size, progress,
                                len(normals)):  # fmt: skip
                records[record["id"]] = record
        ordered = [records[n.image_id] for n in normals]
        skipped = [r for r in ordered if r["status"] != "ok"] + list(listed_missing or [])
        _publish(out, work, ordered, skipped, job, command, overwrite, write_card)
    return Summary(
        written=len(ordered) - len([r for r in ordered if r["status"] != "ok"]),
        skipped=skipped,
        resumed=resumed,
        seconds=time.perf_counter() - started,
    )


def _manifest_rows(records: list[dict], kind: str) -> list[dict]:
    """The manifest's rows: an evaluation image each, or a synthetic pair's two twins."""
    rows = []
    for r in records:
        f = r["files"]
        if kind == "evaluation":
            rows.append({"path": f["image"]["path"], "label": r["label"], "twin_id": r["id"],
                         "sha256": f["image"]["sha256"]})  # fmt: skip
            continue
        rows.append({"path": f["normal"]["path"], "label": 0, "twin_id": r["id"],
                     "n_lesions": 0, "sha256": f["normal"]["sha256"]})  # fmt: skip
        rows.append({"path": f["anomalous"]["path"], "label": 1, "twin_id": r["id"],
                     "tier": r["tier"] + 1, "n_lesions": len(r["pastes"]),
                     "mask_path": f["mask"]["path"], "sha256": f["anomalous"]["sha256"]})  # fmt: skip
    return rows


def _paste_records(records: list[dict]) -> list[dict]:
    """``pastes.jsonl``'s records: every anomalous twin's mask and pastes."""
    return [
        {
            "twin_id": r["id"],
            "path": r["files"]["anomalous"]["path"],
            "mask_path": r["files"]["mask"]["path"],
            "mask_sha256": r["files"]["mask"]["sha256"],
            "tier": r["tier"] + 1,
            "tier_types": r["tier_types"],
            "n_drawn": r["n_drawn"],
            "pastes": r["pastes"],
        }
        for r in records
    ]


def _counts(ok: list[dict], skipped: list[dict], job: Job) -> dict:
    if job.kind == "evaluation":
        labels = [r["label"] for r in ok]
        by_label = {str(v): labels.count(v) for v in sorted(set(labels))}
        return {"images": len(ok), "skipped": len(skipped), "by_label": by_label}
    by_tier = {
        "+".join(t.types): sum(1 for r in ok if r["tier"] == i) for i, t in enumerate(job.tiers)
    }
    return {"images": 2 * len(ok), "normal": len(ok), "anomalous": len(ok),
            "skipped": len(skipped), "by_tier": by_tier}  # fmt: skip


def _bank_summary(job: Job) -> dict:
    """What ``dataset.json`` records of the bank the twins came from."""
    bank = _bank(job)
    return {
        "file": Path(job.bank_path).name,
        "sha256": job.bank_sha256,
        "schema_version": bank.meta.schema_version,
        "modality": bank.meta.modality,
        "lesion_types": bank.meta.lesion_types,
        "counts": bank.counts(),
        "preprocess": bank.meta.preprocess,
        "sources": bank.meta.sources,
        "tool_version": bank.meta.tool_version,
        "command": bank.meta.command,
    }


def _publish(out, work, ordered, skipped, job, command, overwrite, write_card) -> None:
    """Write the metadata files into ``work`` (``dataset.json`` last) and swap it in at ``out``."""
    ok = [r for r in ordered if r["status"] == "ok"]
    if not ok:
        raise LesionPasteError("no normal image could be used; nothing was written")
    meta = {
        "kind": job.kind,
        "counts": _counts(ok, skipped, job),
        "config": job.describe(),
        "bank": _bank_summary(job),
        "skipped": [{"id": s["id"], "reason": s["reason"]} for s in skipped],
        "tool_version": __version__,
        "command": command,
    }
    names = ["manifest.csv", "README.md"]
    write_atomic(work / "manifest.csv", manifest_text(_manifest_rows(ok, job.kind)).encode())
    if job.kind == "synthetic":
        write_atomic(work / "pastes.jsonl", pastes_text(_paste_records(ok)).encode())
        names.append("pastes.jsonl")
    card = (
        write_card({**meta, "format": FORMAT, "schema_version": SCHEMA_VERSION})
        if write_card
        else ""
    )
    write_atomic(work / "README.md", card.encode())
    meta["files"] = {name: sha256_file(work / name) for name in sorted(names)}
    shutil.rmtree(work / "records")
    (work / "config.json").unlink()
    write_atomic(work / "dataset.json", dataset_json_text(meta).encode(), fsync=True)
    swap_in(work, out)


def chunk_size_for(items: list[NormalImage]) -> int:
    """Images per joblib task: about a tenth of a second of work each."""
    try:
        with open(items[0].path, "rb") as fh:
            size = jpeg_size(fh.read(1 << 16))
    except OSError:
        size = None
    if size is None or size[0] * size[1] <= 1_000_000:
        return 16
    return 2
