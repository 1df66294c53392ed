"""Publish a finished run: the manifest, pastes, card and ``dataset.json``, then swap it in."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from lesionpaste import __version__
from lesionpaste.dataset_format import (
    FORMAT,
    dataset_json_text,
    manifest_text,
    masks_text,
    pastes_text,
    schema_version_of,
)
from lesionpaste.digests import sha256_file
from lesionpaste.errors import LesionPasteError
from lesionpaste.file_names import CARD, DATASET_RECORD, JOB_CONFIG, MANIFEST, MASKS_RECORD, PASTES
from lesionpaste.files import swap_in, write_atomic
from lesionpaste.synth.run.job import Job
from lesionpaste.synth.run.worker import job_bank


def _manifest_rows(records: list[dict], kind: str) -> list[dict]:
    """The manifest's rows: an evaluation image each, or a synthetic pair's two twins."""
    rows = []
    for r in records:
        f = r["files"]
        if kind == "evaluation":
            mask = f["mask"]["path"] if "mask" in f else ""
            rows.append({"path": f["image"]["path"], "label": r["label"], "twin_id": r["id"],
                         "mask_path": mask, "sha256": f["image"]["sha256"]})  # fmt: skip
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


def _mask_records(records: list[dict]) -> list[dict]:
    """``masks.jsonl``'s records: every evaluation image with a mask, its union mask and each
    lesion type's mask with their digests."""
    out = []
    for r in records:
        files = r["files"]
        if "mask" not in files:
            continue
        types = {
            kind.removeprefix("mask:"): {"path": entry["path"], "sha256": entry["sha256"]}
            for kind, entry in files.items()
            if kind.startswith("mask:")
        }
        out.append({"id": r["id"], "mask_path": files["mask"]["path"],
                    "mask_sha256": files["mask"]["sha256"], "types": types})  # fmt: skip
    return out


def _masks_summary(records: list[dict], ok: list[dict], job: Job) -> dict:
    """``dataset.json["masks"]``: the lesion types (in the order first met), how many images
    have masks and how many have none, and where the masks came from."""
    types = list(dict.fromkeys(t for r in records for t in r["types"]))
    return {"types": types, "images_with_masks": len(records),
            "images_without_masks": len(ok) - len(records), "source": job.masks}  # fmt: skip


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


def _lesion_counts(ok: list[dict], job: Job) -> dict[str, list[int]]:
    """Each tier's twins' pasted-lesion counts, for the card."""
    return {
        "+".join(t.types): [len(r["pastes"]) for r in ok if r["tier"] == i]
        for i, t in enumerate(job.tiers)
    }


def _bank_summary(job: Job) -> dict:
    """What ``dataset.json`` records of the bank the twins came from."""
    bank = job_bank(job)
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


def publish(
    out: Path,
    work: Path,
    ordered: list[dict],
    skipped: list[dict],
    job: Job,
    command: str,
    write_card: Callable[[dict, dict | None], str] | None,
) -> None:
    """Write the metadata files into ``work`` (``dataset.json`` last) and swap it in at ``out``.

    Args:
        out: the dataset folder to publish (replaced in one step if it exists).
        work: the run's work folder, holding every image's files and record.
        ordered: every image's record, in the order of the normals given.
        skipped: the records of images left out (with their reasons), listed in ``dataset.json``.
        job: the run's configuration.
        command: the command line recorded in ``dataset.json``.
        write_card: makes the dataset card (``README.md``) from the metadata and, for twins,
            each tier's pasted-lesion counts; none writes it empty.

    Raises:
        LesionPasteError: no image could be made, so nothing is published.
    """
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
    names = [MANIFEST, CARD]
    write_atomic(work / MANIFEST, manifest_text(_manifest_rows(ok, job.kind)).encode())
    if job.kind == "synthetic":
        write_atomic(work / PASTES, pastes_text(_paste_records(ok)).encode())
        names.append(PASTES)
    if job.kind == "evaluation" and job.masks:
        records = _mask_records(ok)
        write_atomic(work / MASKS_RECORD, masks_text(records).encode())
        names.append(MASKS_RECORD)
        meta["masks"] = _masks_summary(records, ok, job)
    described = {**meta, "format": FORMAT, "schema_version": schema_version_of(meta)}
    counts = _lesion_counts(ok, job) if job.kind == "synthetic" else None
    card = write_card(described, counts) if write_card else ""
    write_atomic(work / CARD, card.encode())
    meta["files"] = {name: sha256_file(work / name) for name in sorted(names)}
    shutil.rmtree(work / "records")
    # dataset.json before the job's configuration goes: a kill between them leaves a work
    # folder that resumes (remaking the images); after it, one that a rerun starts afresh
    write_atomic(work / DATASET_RECORD, dataset_json_text(meta).encode(), fsync=True)
    (work / JOB_CONFIG).unlink()
    swap_in(work, out)
