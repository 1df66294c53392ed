"""Small datasets in the LesionPaste format, written directly (the trainer reads only files)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np

from lesionpaste.dataset_format import FORMAT, MANIFEST_COLUMNS, SCHEMA_VERSION

COLUMNS = ",".join(MANIFEST_COLUMNS)


def write_dataset(
    root: Path, labels: list[int], kind: str, size: int = 32, seed: int = 0, signal: float = 1.0
) -> Path:
    """Images whose label shows as a bright square (``signal`` scales its contrast), so a
    model can learn them; label 0 is plain noise."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    lines = [COLUMNS]
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
        lines.append(f"{rel},{label},{twin},,,,{hashlib.sha256(data.tobytes()).hexdigest()}")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    counts = {"images": len(labels)}
    if kind == "synthetic":
        counts.update(normal=labels.count(0), anomalous=labels.count(1))
    (root / "dataset.json").write_text(
        json.dumps(
            {
                "format": FORMAT,
                "schema_version": SCHEMA_VERSION,
                "kind": kind,
                "counts": counts,
                "config": {"size": size},
            }
        )
    )
    return root


def synthetic(root: Path, pairs: int = 32, **kw) -> Path:
    return write_dataset(root, [0, 1] * pairs, "synthetic", **kw)


def graded(root: Path, per_grade: int = 12, **kw) -> Path:
    labels = [g for g in (0, 0, 1, 2, 3, 4) for _ in range(per_grade)]
    return write_dataset(root, labels, "evaluation", **kw)
