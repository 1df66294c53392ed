"""The outputs of a small fixed run, pinned: a restructuring must not change a bank, a dataset
or an evaluation set.

The commands run as a user runs them (the installed ``lp-bank`` and ``lp-synth`` scripts), on
real data: the bank from IDRiD_03, twins and an evaluation set from four EyePACS images. What is
pinned is each file's *content*: the decoded pixels of every image, the HDF5 datasets and
attributes of the bank, and the text files, with the sha256 fields left out (they digest the PNG
and HDF5 encoders' bytes, which a library upgrade may change without any change of behaviour).

The digests were recorded before the core was restructured (issue 12), with numpy, OpenCV and
h5py as installed by ``make venv`` on 2026-12-01. If this test fails, the outputs changed: find
out why before updating a digest.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import h5py
import numpy as np

from tests.conftest import shared

PINNED = {
    "bank": "d35ef7078fae3cfd227d10907da3f63be220eb5412cab83363d0b4aa71183c8c",
    "dataset": "30cc1791bfdc848f5e407793653a30d9088449816acc9790b415c357f5b22ecb",
    "evaluation": "6c8c7bbed1433629848615c48a01d6a30b07cac8ea8a4e1a0ad41a48fc76bdbd",
}
NORMALS = ["10007_left.jpeg", "10007_right.jpeg", "10028_left.jpeg", "10030_right.jpeg"]


def _script(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _run(*args: str, cwd: Path) -> None:
    r = subprocess.run(args, check=False, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def _kept(key: str, value) -> bool:
    if key.endswith("sha256"):
        return False
    return not (key == "files" and isinstance(value, dict))  # dataset.json's file digests


def _without_digests(value):
    """JSON with every sha256 field (and the dataset's table of file digests) left out."""
    if isinstance(value, dict):
        return {k: _without_digests(v) for k, v in value.items() if _kept(k, v)}
    if isinstance(value, list):
        return [_without_digests(v) for v in value]
    return value


def _h5_content(path: Path) -> bytes:
    out = io.BytesIO()
    with h5py.File(path, "r") as f:
        for name in sorted(f.attrs):
            value = f.attrs[name]
            value = value.decode() if isinstance(value, bytes) else value
            if isinstance(value, str) and value[:1] in "[{":
                value = json.dumps(_without_digests(json.loads(value)), sort_keys=True)
            out.write(f"{name}={value!r}\n".encode())

        def visit(name: str, obj) -> None:
            if isinstance(obj, h5py.Dataset):
                data = obj[()]
                out.write(f"{name} {data.dtype} {data.shape}\n".encode())
                out.write(np.ascontiguousarray(data).tobytes())

        f.visititems(visit)
    return out.getvalue()


def _file_content(path: Path) -> bytes:
    suffix = path.suffix.lower()
    if suffix in (".png", ".jpg", ".jpeg"):
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        return f"{image.dtype} {image.shape}\n".encode() + image.tobytes()
    if suffix == ".h5":
        return _h5_content(path)
    text = path.read_text(encoding="utf-8")
    if suffix == ".json":
        return json.dumps(_without_digests(json.loads(text)), sort_keys=True).encode()
    if suffix == ".jsonl":
        rows = [_without_digests(json.loads(line)) for line in text.splitlines()]
        return "\n".join(json.dumps(r, sort_keys=True) for r in rows).encode()
    if suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        return json.dumps([{k: v for k, v in r.items() if k != "sha256"} for r in rows]).encode()
    return text.encode()


def content_digests(root: Path) -> dict[str, str]:
    """Every file under ``root`` (or ``root`` itself) by relative path, with its content digest."""
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {
        (p.relative_to(root).as_posix() if p != root else p.name): hashlib.sha256(
            _file_content(p)
        ).hexdigest()
        for p in files
    }


def _combined(digests: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()


def test_a_small_fixed_run_gives_the_pinned_bank_dataset_and_evaluation_set(tmp_path):
    idrid = shared("idrid")
    images = shared("eyepacs256", "images")
    normals = tmp_path / "normals"
    normals.mkdir()
    for name in NORMALS:
        shutil.copyfile(images / name, normals / name)
    _run(_script("lp-bank"), "build", "idrid_03", "--root", str(idrid), "-o", "bank.h5", "-q",
         cwd=tmp_path)  # fmt: skip
    _run(_script("lp-synth"), "--bank", "bank.h5", "--normals", "normals", "-o", "dataset",
         "--seed", "3", "--size", "128", "-q", cwd=tmp_path)  # fmt: skip
    _run(_script("lp-synth"), "prep", "--images", "normals", "--label", "0", "--bank", "bank.h5",
         "--size", "128", "-o", "evaluation", "-q", cwd=tmp_path)  # fmt: skip
    found = {
        "bank": content_digests(tmp_path / "bank.h5"),
        "dataset": content_digests(tmp_path / "dataset"),
        "evaluation": content_digests(tmp_path / "evaluation"),
    }
    assert len(found["dataset"]) == 4 + 2 * len(NORMALS) + len(NORMALS)  # + masks
    got = {name: _combined(d) for name, d in found.items()}
    assert got == PINNED, json.dumps(found, indent=1)
