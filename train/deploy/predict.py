"""``lp-predict``: score new, unlabelled images with a trained detector, streaming.

Images are prepared by the detector's input contract in chunks (``-j`` workers), scored, and
their rows appended to ``OUT/predictions.csv`` as each chunk finishes, so memory stays flat
whatever the number of images and a rerun after an interruption scores only what is missing.
Each image also gets a small thumbnail (and, for a detector with maps, its map overlaid,
``maps/``) for ``OUT/predictions.html``, written at the end: the images sorted most suspicious
first, each synthetic threshold marked.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from joblib import Parallel, delayed
from tqdm import tqdm

from lesionpaste.contract import Preparation
from lesionpaste.errors import LesionPasteError
from lesionpaste.file_names import (
    MAPS_DIR,
    PREDICTION_RECORD,
    PREDICTIONS_CSV,
    PREDICTIONS_HTML,
    THUMBS_DIR,
)
from lesionpaste.files import entries, output_lock, write_atomic, write_text_atomic
from lesionpaste.images import encode_png
from lesionpaste.jsonfiles import read_json_file
from lesionpaste.outputs import check_output, foreign
from lesionpaste.train.deploy.detector import Detector
from lesionpaste.train.deploy.loading import load_detector
from lesionpaste.train.deploy.predict_inputs import Item, list_inputs, row_key
from lesionpaste.train.evaluation.overlays import as_rgb, map_overlay

#: images prepared and scored together: the most held in memory at once
CHUNK = 64
#: the thumbnails' side in the report, in pixels
THUMB_SIDE = 160
#: the columns every predictions.csv starts with (then a flag per threshold, then CSV columns)
COLUMNS = ("input", "slice", "id", "sha256", "score", "status", "reason", "thumbnail", "map")


@dataclass(frozen=True)
class Outcome:
    """One image's preparation: the prepared image, or why it was skipped."""

    image: np.ndarray | None
    sha256: str
    reason: str


def prepare_item(preparation: Preparation, item: Item) -> Outcome:
    """Prepare one listed image by the contract (run in a worker).

    Args:
        preparation: the detector's preparation.
        item: the image.

    Returns:
        The prepared image and its file's sha256, or the reason it cannot be used.
    """
    if item.missing:
        return Outcome(None, "", item.missing)
    try:
        prepared = preparation.prepare(item.path, item.slice_index)
    except LesionPasteError as exc:
        return Outcome(None, "", str(exc))
    return Outcome(prepared.image, prepared.source_sha256 or "", "")


def columns_of(detector: Detector, carried: list[str]) -> list[str]:
    """The columns of ``predictions.csv``: the fixed ones, a flag per synthetic threshold
    (``flagged_pass_95``: 1 when the score is above that threshold), then a CSV listing's own
    columns (renamed ``input_NAME`` where they clash).

    Args:
        detector: the detector.
        carried: the CSV listing's other columns.

    Returns:
        The header.
    """
    own = [*COLUMNS, *(f"flagged_{name}" for name in detector.contract.thresholds)]
    return own + [c if c not in own else f"input_{c}" for c in carried]


def record_of(detector: Detector, items: list[Item], columns: list[str]) -> dict:
    """What a rerun must match to resume into the same output: the detector (its source,
    model digest and contract) and the images listed.

    Args:
        detector: the detector.
        items: the images listed.
        columns: the CSV header.

    Returns:
        A JSON-ready dict (``OUT/prediction.json``).
    """
    return {
        "format": "lesionpaste-predictions",
        "detector": str(detector.source),
        "kind": detector.kind,
        "model_sha256": detector.model_sha256,
        "contract": detector.contract.to_dict(),
        "columns": columns,
        "inputs": [item.key for item in items],
    }


def finished_keys(out: Path) -> set[str]:
    """The items ``OUT/predictions.csv`` already holds; a last line cut short by a kill is
    removed first.

    Args:
        out: the output folder.

    Returns:
        The keys (``Item.key``) of the rows written.
    """
    path = out / PREDICTIONS_CSV
    if not path.exists():
        return set()
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):  # a kill in mid-line: drop the partial row
        data = data[: data.rfind(b"\n") + 1]
        with open(path, "r+b") as fh:
            fh.truncate(len(data))
    rows = csv.DictReader(io.StringIO(data.decode("utf-8")))
    return {row_key(r["input"], int(r["slice"]) if r["slice"] else None) for r in rows}


def _thumbnail(image: np.ndarray) -> bytes:
    side = THUMB_SIDE
    small = cv2.resize(as_rgb(image), (side, side), interpolation=cv2.INTER_AREA)
    return encode_png(small, what="a thumbnail")


def _map_picture(image: np.ndarray, low: np.ndarray) -> bytes:
    h, w = image.shape[:2]
    heat = cv2.resize(low.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    _, overlay = map_overlay(image, heat)
    return encode_png(overlay, what="an anomaly map")


def write_predictions(
    detector: Detector,
    items: list[Item],
    carried: list[str],
    out: Path,
    jobs: int = 1,
    strict: bool = False,
    quiet: bool = False,
) -> dict:
    """Score every listed image into ``out``, created or resumed (``predict`` checks it first).

    Args:
        detector: the detector.
        items: the images (``train.deploy.predict_inputs.list_inputs``).
        carried: a CSV listing's other columns.
        out: the output folder.
        jobs: worker processes preparing images (1: in this process).
        strict: stop at the first image that cannot be read or prepared.
        quiet: no progress bar.

    Returns:
        ``{"scored", "skipped", "resumed", "flagged": {name: count}}`` over the images
        written now.

    Raises:
        LesionPasteError: an output of another detector or other inputs (refused, nothing
            touched), or with ``strict`` an unusable image (the rows written so far stay, and
            a rerun resumes after them).
    """
    columns = columns_of(detector, carried)
    record = record_of(detector, items, columns)
    out.mkdir(parents=True, exist_ok=True)
    if (out / PREDICTION_RECORD).exists():
        if read_json_file(out / PREDICTION_RECORD) != json.loads(json.dumps(record)):
            raise LesionPasteError(
                f"{out} holds predictions of another detector or other inputs; use another -o, "
                "or pass --overwrite to replace them"
            )
    else:
        write_text_atomic(out / PREDICTION_RECORD, json.dumps(record, indent=1) + "\n")
    done = finished_keys(out)
    todo = [item for item in items if item.key not in done]
    counts = {"scored": 0, "skipped": 0, "resumed": len(items) - len(todo)}
    counts["flagged"] = {name: 0 for name in detector.contract.thresholds}
    index = {item.key: i for i, item in enumerate(items)}
    # no header yet: no file, or one whose header a kill cut short (finished_keys emptied it)
    new_file = not (out / PREDICTIONS_CSV).exists() or not (out / PREDICTIONS_CSV).stat().st_size
    with (
        open(out / PREDICTIONS_CSV, "a", encoding="utf-8", newline="") as fh,
        Parallel(n_jobs=jobs) as parallel,
        tqdm(
            total=len(items),
            initial=counts["resumed"],
            disable=True if quiet else None,
            unit="image",
        ) as bar,
    ):
        writer = csv.DictWriter(fh, columns, lineterminator="\n")
        if new_file:
            writer.writeheader()
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start : start + CHUNK]
            prep = detector.contract.preparation
            outcomes = parallel(delayed(prepare_item)(prep, item) for item in chunk)
            rows = _score_chunk(detector, chunk, outcomes, index, out, carried, strict)
            for row in rows:
                writer.writerow(row)
                counts["scored" if row["status"] == "scored" else "skipped"] += 1
                for name in counts["flagged"]:
                    counts["flagged"][name] += row.get(f"flagged_{name}") == 1
            fh.flush()
            os.fsync(fh.fileno())
            bar.update(len(chunk))
    write_report(out, detector)
    return counts


def predict(
    detector: Path,
    inputs: list[Path],
    out: Path,
    *,
    like: Path | None = None,
    jobs: int = 1,
    strict: bool = False,
    device: str = "auto",
    overwrite: bool = False,
    quiet: bool = False,
) -> dict:
    """``lp-predict`` as one call: score new images with a run or an export into ``out``,
    checked first by the output guard, written under a lock, resumed when interrupted.

    Args:
        detector: an ``lp-train`` run or an ``lp-export`` folder.
        inputs: image files, folders of them, CSV listings, DICOM slices or NIfTI volumes.
        out: the predictions folder to write.
        like: for a run without an input contract, a dataset prepared as its images were.
        jobs: worker processes preparing images (1: in this process).
        strict: stop at the first image that cannot be read or prepared.
        device: ``"auto"``, ``"cuda"`` or ``"cpu"``.
        overwrite: replace an earlier ``lp-predict`` output at ``out``.
        quiet: no progress bar.

    Returns:
        ``write_predictions``' counts.

    Raises:
        LesionPasteError: ``jobs`` below 1, an unsafe output or one that is not
            ``lp-predict``'s, unreadable inputs or detector, or ``write_predictions``' refusals.
    """
    if jobs < 1:
        raise LesionPasteError("-j/--jobs must be at least 1")
    check_output(
        out, "predictions", [("detector", detector), *(("input", p) for p in inputs)], overwrite
    )
    if os.path.lexists(out) and not overwrite and foreign(out, "predictions") is not None:
        raise LesionPasteError(
            f"{out} exists and is not an lp-predict output; choose another -o (nothing was touched)"
        )
    items, carried = list_inputs(list(inputs))
    loaded = load_detector(detector, like, device)
    with output_lock(out, "lp-predict"):
        if overwrite and os.path.lexists(out):
            for entry in entries(out):  # check_output found only lp-predict's own files
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        return write_predictions(loaded, items, carried, out, jobs, strict, quiet)


def _score_chunk(detector, chunk, outcomes, index, out, carried, strict) -> list[dict]:
    """Score the prepared images of one chunk; a row per image, in order."""
    good = [k for k, o in enumerate(outcomes) if o.image is not None]
    if strict and len(good) < len(chunk):
        bad = next(k for k, o in enumerate(outcomes) if o.image is None)
        reason = outcomes[bad].reason
        where = "" if reason.startswith(chunk[bad].input) else f"{chunk[bad].input}: "
        raise LesionPasteError(f"{where}{reason} (--strict)")
    parts = detector.score_by_shape([outcomes[k].image for k in good])
    scored = [(part, i) for part in parts for i in range(len(part.scores))]  # one per good image
    rows = []
    for k, (item, outcome) in enumerate(zip(chunk, outcomes)):
        row = {
            "input": item.input,
            "slice": "" if item.slice_index is None else item.slice_index,
            "id": item.image_id,
            "sha256": outcome.sha256,
            "score": "",
            "status": "skipped",
            "reason": outcome.reason,
            "thumbnail": "",
            "map": "",
        }
        row.update({f"flagged_{name}": "" for name in detector.contract.thresholds})
        for c in carried:
            row[c if c not in row else f"input_{c}"] = item.extra.get(c, "")
        if outcome.image is not None:
            part, j = scored[good.index(k)]
            n = index[item.key]
            row.update(status="scored", score=repr(float(part.scores[j])))
            for name, flags in part.flagged.items():
                row[f"flagged_{name}"] = int(flags[j])
            row["thumbnail"] = f"{THUMBS_DIR}/{n:06d}.png"
            write_atomic(out / row["thumbnail"], _thumbnail(outcome.image))
            if part.maps is not None:
                row["map"] = f"{MAPS_DIR}/{n:06d}.png"
                write_atomic(out / row["map"], _map_picture(outcome.image, part.maps[j]))
        rows.append(row)
    return rows


def write_report(out: Path, detector: Detector) -> None:
    """``predictions.html``: every scored image, most suspicious first, each synthetic
    threshold marked where the scores cross it, then the skipped images with their reasons.

    Args:
        out: the output folder (its ``predictions.csv``).
        detector: the detector (its thresholds).
    """
    with open(out / PREDICTIONS_CSV, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    scored = sorted((r for r in rows if r["status"] == "scored"), key=lambda r: -float(r["score"]))
    skipped = [r for r in rows if r["status"] != "scored"]
    marks = sorted(detector.contract.thresholds.items(), key=lambda kv: -kv[1])
    e = html.escape
    parts = [
        "<!doctype html><meta charset='utf-8'><title>LesionPaste predictions</title>",
        "<style>body{font-family:sans-serif} td{padding:4px;vertical-align:middle} "
        ".mark td{background:#fde2e2;font-weight:bold} img{width:"
        + str(THUMB_SIDE)
        + "px}</style>",
        f"<h1>Predictions of {e(str(detector.source))}</h1>",
        (
            f"<p>{len(scored)} images scored, {len(skipped)} skipped; most suspicious first. "
            "An image is flagged when its score is above a threshold. The thresholds let 95% and "
            "90% of the synthetic validation normals pass; real normals from another camera or "
            "clinic may pass at another rate.</p><table>"
        ),
        "<tr><th>#</th><th>image</th><th>map</th><th>score</th><th>id</th><th>input</th></tr>",
    ]
    pending = list(marks)
    for rank_, r in enumerate(scored, start=1):
        while pending and float(r["score"]) <= pending[0][1]:
            name, value = pending.pop(0)
            parts.append(_mark_row(name, value))
        thumb = f"<img loading='lazy' src='{e(r['thumbnail'])}'>" if r["thumbnail"] else ""
        heat = f"<img loading='lazy' src='{e(r['map'])}'>" if r["map"] else ""
        parts.append(
            f"<tr><td>{rank_}</td><td>{thumb}</td><td>{heat}</td><td>{float(r['score']):.4f}"
            f"</td><td>{e(r['id'])}</td><td>{e(r['input'])}</td></tr>"
        )
    parts += [_mark_row(name, value) for name, value in pending]
    parts.append("</table>")
    if skipped:
        parts.append("<h2>Skipped</h2><ul>")
        parts += [f"<li>{e(r['input'])}: {e(r['reason'])}</li>" for r in skipped]
        parts.append("</ul>")
    write_text_atomic(out / PREDICTIONS_HTML, "\n".join(parts) + "\n")


def _mark_row(name: str, value: float) -> str:
    share = name.removeprefix("pass_")
    return (
        f"<tr class='mark'><td colspan='6'>threshold {html.escape(name)} ({value:.4g}): the "
        f"images above are flagged; it lets {share}% of the synthetic validation normals "
        "pass</td></tr>"
    )
