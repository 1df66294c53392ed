"""Small datasets in the LesionPaste format, written directly (the trainer reads only files)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from lesionpaste.dataset_format import (
    dataset_json_text,
    manifest_text,
    masks_text,
    pastes_text,
)
from lesionpaste.digests import sha256_bytes


def write_dataset(
    root: Path,
    labels: list[int],
    kind: str,
    size: int = 32,
    seed: int = 0,
    signal: float = 1.0,
    masks: bool = False,
) -> Path:
    """Images whose label shows as a bright square (``signal`` scales its contrast), so a
    model can learn them; label 0 is plain noise. ``masks``: a synthetic set's anomalous
    images get the square's mask (``masks/``, recorded in ``pastes.jsonl``); an evaluation set
    gets every image's mask, its square typed ``EX`` (``masks.jsonl``, schema 2)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows, pastes, index = [], [], []
    for i, label in enumerate(labels):
        image = rng.integers(60, 120, (size, size, 3), dtype=np.uint8)
        mask = np.zeros((size, size), np.uint8)
        if label:
            y, x = rng.integers(2, size - 10, 2)
            image[y : y + 8, x : x + 8] = np.clip(
                image[y : y + 8, x : x + 8] + 120 * signal, 0, 255
            )
            mask[y : y + 8, x : x + 8] = 255
        _ok, data = cv2.imencode(".png", image)
        rel = f"images/{i:04d}.png"
        (root / rel).write_bytes(data.tobytes())
        twin = f"t{i // 2:04d}" if kind == "synthetic" else f"e{i:04d}"
        row = {"path": rel, "label": label, "twin_id": twin, "sha256": sha256_bytes(data)}
        if masks and label and kind == "synthetic":
            (root / "masks").mkdir(exist_ok=True)
            _ok, encoded = cv2.imencode(".png", mask)
            row["mask_path"] = f"masks/{twin}.png"
            (root / row["mask_path"]).write_bytes(encoded.tobytes())
            pastes.append({"twin_id": twin, "path": rel, "mask_path": row["mask_path"],
                           "mask_sha256": sha256_bytes(encoded), "pastes": []})  # fmt: skip
        if masks and kind == "evaluation":
            index.append(_evaluation_mask(root, row, twin, mask))
        rows.append(row)
    (root / "manifest.csv").write_text(manifest_text(rows), encoding="utf-8")
    if pastes:
        (root / "pastes.jsonl").write_text(pastes_text(pastes), encoding="utf-8")
    extra = {}
    if index:
        (root / "masks.jsonl").write_text(masks_text(index), encoding="utf-8")
        extra["masks"] = {"types": ["EX"], "images_with_masks": len(index), "source": "folder"}
        extra["files"] = {"masks.jsonl": sha256_bytes((root / "masks.jsonl").read_bytes())}
    counts = {"images": len(labels)}
    if kind == "synthetic":
        counts.update(normal=labels.count(0), anomalous=labels.count(1))
    meta = {"kind": kind, "counts": counts, "config": {"size": size}, **extra}
    (root / "dataset.json").write_text(dataset_json_text(meta), encoding="utf-8")
    return root


def synthetic(root: Path, pairs: int = 32, **kw) -> Path:
    return write_dataset(root, [0, 1] * pairs, "synthetic", **kw)


def graded(root: Path, per_grade: int = 12, **kw) -> Path:
    labels = [g for g in (0, 0, 1, 2, 3, 4) for _ in range(per_grade)]
    return write_dataset(root, labels, "evaluation", **kw)


def _evaluation_mask(root: Path, row: dict, image_id: str, mask: np.ndarray) -> dict:
    """Write an evaluation image's union and ``EX`` masks; its ``masks.jsonl`` record."""
    (root / "masks" / "EX").mkdir(parents=True, exist_ok=True)
    _ok, encoded = cv2.imencode(".png", mask)
    row["mask_path"] = f"masks/{image_id}.png"
    typed = f"masks/EX/{image_id}.png"
    for relative in (row["mask_path"], typed):
        (root / relative).write_bytes(encoded.tobytes())
    digest = sha256_bytes(encoded)
    return {"id": image_id, "mask_path": row["mask_path"], "mask_sha256": digest,
            "types": {"EX": {"path": typed, "sha256": digest}}}  # fmt: skip
