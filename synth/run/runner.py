"""Run a synthesis: prepare the work, fan images out with joblib, resume, and publish.

Work happens in a hidden sibling directory ``.NAME.partial`` of the output ``NAME``; each image's
files are written atomically and its record last, so a rerun after any interruption (SIGKILL
included) redoes only what is missing and ends with exactly the files an uninterrupted run
writes. The finished directory is renamed to ``NAME`` in one step, ``dataset.json`` written
last inside it. The job is in ``synth.run.job``, what a worker does in ``synth.run.worker``, and the
publishing in ``synth.run.publish``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from joblib import Parallel, delayed, parallel_config

from lesionpaste.digests import sha256_file
from lesionpaste.errors import LesionPasteError
from lesionpaste.file_names import JOB_CONFIG
from lesionpaste.files import output_lock, remove_temp_files, write_atomic
from lesionpaste.images import jpeg_size
from lesionpaste.jsonfiles import saved_json
from lesionpaste.outputs import check_output
from lesionpaste.synth.inputs.normals import NormalImage
from lesionpaste.synth.run.job import Job
from lesionpaste.synth.run.publish import publish
from lesionpaste.synth.run.worker import make_chunk


def finished_record(work: Path, image_id: str) -> dict | None:
    """The record of an image an earlier run finished, if its files are all intact.

    Args:
        work: the run's work folder.
        image_id: the image's id (its record is ``records/<id>.json``).

    Returns:
        The saved record, or None when there is none or one of its files is gone or changed.
    """
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
    """``items`` in consecutive lists of ``size`` (the last shorter): one joblib task each.

    Args:
        items: what to cut.
        size: the length of each list but the last.

    Returns:
        The lists, in order; their concatenation is ``items``.
    """
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
        "normals": [_normal_entry(n) for n in normals],
    }
    if job.masks:
        config["masks"] = job.masks
    config = json.loads(json.dumps(config, sort_keys=True))  # as it reads back from disk
    config_path = work / JOB_CONFIG
    if work.exists() and not _resumable(work):  # killed before its configuration was written,
        shutil.rmtree(work)  # or while publishing: nothing in it can be resumed
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


def _resumable(work: Path) -> bool:
    """Whether a work folder holds what a rerun could resume: its configuration (written
    before any image), or image records (which, without it, are refused rather than trusted)."""
    records = work / "records"
    return os.path.lexists(work / JOB_CONFIG) or (records.is_dir() and any(records.iterdir()))


def _normal_entry(item: NormalImage) -> list:
    """How the work folder's config records one image: id and path, and its mask files."""
    entry: list = [item.image_id, str(item.path)]
    if item.has_masks:
        union = str(item.union_mask) if item.union_mask is not None else None
        entry.append({"union": union, "types": {t: str(p) for t, p in item.type_masks}})
    return entry


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
    inputs: Iterable[tuple[str, Path | None]] = (),
    listed_missing: list[dict] | None = None,
    jobs: int = 1,
    backend: str = "loky",
    scheduler: str | None = None,
    overwrite: bool = False,
    chunk_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
    write_card: Callable[[dict, dict | None], str] | None = None,
) -> Summary:
    """Write the dataset (synthetic twins, or an evaluation set) for ``normals`` to ``out``.

    Args:
        normals: the images to make, in manifest order.
        job: the run's configuration.
        out: the dataset folder to write.
        command: the command line recorded in ``dataset.json``.
        inputs: ``(what, path)`` for every file or folder the run reads (the bank, the normals'
            folder or label file, a mask folder): ``out`` may not be, lie inside or hold one
            (``lesionpaste.outputs.check_output``, before any work).
        listed_missing: images listed by a label file but absent, recorded as skipped.
        jobs: worker processes (joblib's loky backend).
        backend: ``loky`` (this machine) or ``dask`` (a cluster at ``scheduler``).
        scheduler: the Dask scheduler's address, for ``backend="dask"``.
        overwrite: replace an existing ``out``, or an interrupted run of other settings.
        chunk_size: images per joblib task.
        progress: called with (images just done, total) as records come in.
        write_card: makes the dataset card (``README.md``) from the metadata and, for twins,
            each tier's pasted-lesion counts.

    Returns:
        What the run did: images written, skipped, resumed, and its seconds.

    Raises:
        LesionPasteError: ``out`` is unsafe (a link, one of the inputs, or not a dataset),
            exists (without ``overwrite``), another run holds it, an
            interrupted run of other settings is in the way, or no image could be made.
    """
    started = time.perf_counter()
    check_output(Path(out), "dataset", inputs, overwrite)
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
        publish(out, work, ordered, skipped, job, command, write_card)
    return Summary(
        written=len(ordered) - len([r for r in ordered if r["status"] != "ok"]),
        skipped=skipped,
        resumed=resumed,
        seconds=time.perf_counter() - started,
    )


def chunk_size_for(items: list[NormalImage]) -> int:
    """Images per joblib task: about a tenth of a second of work each.

    Args:
        items: the images to make; the first one's JPEG header gives their size.

    Returns:
        16 for images of up to a megapixel (or of unknown size), else 2.
    """
    try:
        with open(items[0].path, "rb") as fh:
            size = jpeg_size(fh.read(1 << 16))
    except OSError:
        size = None
    if size is None or size[0] * size[1] <= 1_000_000:
        return 16
    return 2
