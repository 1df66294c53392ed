"""Small datasets in the LesionPaste format, written directly (the trainer reads only files)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from lesionpaste.dataset_format import dataset_json_text, manifest_text
from lesionpaste.digests import sha256_bytes


def write_dataset(
    root: Path, labels: list[int], kind: str, size: int = 32, seed: int = 0, signal: float = 1.0
) -> Path:
    """Images whose label shows as a bright square (``signal`` scales its contrast), so a
    model can learn them; label 0 is plain noise."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, label in enumerate(labels):
        image = rng.integers(60, 120, (size, size, 3), dtype=np.uint8)
        if label:
            y, x = rng.integers(2, size - 10, 2)
            image[y : y + 8, x : x + 8] = np.clip(
                image[y : y + 8, x : x + 8] + 120 * signal, 0, 255
            )
        _ok, data = cv2.imencode(".png", image)
        rel = f"images/{i:04d}.png"
        (root / rel).write_bytes(data.tobytes())
        twin = f"t{i // 2:04d}" if kind == "synthetic" else f"e{i:04d}"
        rows.append({"path": rel, "label": label, "twin_id": twin, "sha256": sha256_bytes(data)})
    (root / "manifest.csv").write_text(manifest_text(rows), encoding="utf-8")
    counts = {"images": len(labels)}
    if kind == "synthetic":
        counts.update(normal=labels.count(0), anomalous=labels.count(1))
    meta = {"kind": kind, "counts": counts, "config": {"size": size}}
    (root / "dataset.json").write_text(dataset_json_text(meta), encoding="utf-8")
    return root


def synthetic(root: Path, pairs: int = 32, **kw) -> Path:
    return write_dataset(root, [0, 1] * pairs, "synthetic", **kw)


def graded(root: Path, per_grade: int = 12, **kw) -> Path:
    labels = [g for g in (0, 0, 1, 2, 3, 4) for _ in range(per_grade)]
    return write_dataset(root, labels, "evaluation", **kw)
