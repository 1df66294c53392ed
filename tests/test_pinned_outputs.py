"""The outputs of a small fixed run, pinned: a restructuring must not change a bank, a dataset
or an evaluation set.

The commands run as a user runs them (the installed ``lp-bank`` and ``lp-synth`` scripts), on
real data: the bank from IDRiD_03, twins and an evaluation set from four EyePACS images. What is
pinned is each file's *content*: the decoded pixels of every image, the HDF5 datasets and
attributes of the bank, and the text files, with the sha256 fields left out (they digest the PNG
and HDF5 encoders' bytes, which a library upgrade may change without any change of behaviour).

The digests of every image, mask, manifest and ``pastes.jsonl`` were recorded before the core was
restructured (issue 12), with numpy, OpenCV and h5py as installed by ``make venv`` on 2026-12-01,
and are unchanged since. Those of ``bank.h5``, ``dataset.json`` and the evaluation set's
``dataset.json`` were recorded again once the bank's ``--root`` was made relative here: the bank
records its command, and the absolute path of the data differs between machines. Those of the
two cards (``README.md``) were recorded again when the card gained its citation and verification
sections (issue 17); nothing else changed then. The synthetic dataset's card was recorded
again when it gained the table of pasted-lesion counts per tier (issue 26): with that section
taken out, the new card gives the earlier digest (3aab30e8...), and no other file changed. If
this test fails, the outputs changed: find
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
    "bank": {
        "bank.h5": "608f23ce8dfe278a1e95d2c67d2fc89f284a70b85cc822ab928336ed2042dd80",
    },
    "dataset": {
        "README.md": "d23f32de2dcb9ef5ea3f2554b5bae300801eb9eb09257a021d6f6cab546568ce",
        "dataset.json": "987eb52bd9e5b93d8e68b9b18b2d4969af72030da385d47fb1c274b3b7f2d5e3",
        "images/anomalous/10007_left.png": "f31de4af9ee4f7893ee17b19300abe8545727425c8df259d9df1bbf5a983538d",
        "images/anomalous/10007_right.png": "cbb7a930f34f047730673d0e932f33237b9088e0670d7279ed3119380110f0f9",
        "images/anomalous/10028_left.png": "6b256ea15f7872c46b39fe051f454ff03dc15533c183fd59260511252965e21c",
        "images/anomalous/10030_right.png": "327801918f34951bec7fff924410f5f5979d6fab88ed8b4ea8228031f30782ae",
        "images/normal/10007_left.png": "0523a747dc2cb5a8d8ef436b19935bd0cb5b5b3bb826e095dd3dc36048af9661",
        "images/normal/10007_right.png": "04ee630a8bf7f7cf45ebee4b357fbb1ad027a5589f2b79f31cbd3b3866e9af29",
        "images/normal/10028_left.png": "40519ac28bd054333eac4458756f79c12edd6e3b2a7c4b93b61c8b3dc6125045",
        "images/normal/10030_right.png": "f4622ff9a5545046d62277988d0e40515ce03ae9b7801ffe9a60ab4782bd71e4",
        "manifest.csv": "dce1eee2fdf44372f877ccaad8a088f795c32eaaa4ec5c0b351decd5de85b824",
        "masks/10007_left.png": "1bcd6c7e89588b4770def728b43138379d8a2e81ab4723b994204d9a5fdef540",
        "masks/10007_right.png": "f68e6f55a4c761067133bfe75d263a8ee02633fa4da28ab79b0ac178d74703c2",
        "masks/10028_left.png": "c7ec2cdfffe358ff574265838c44e74a848f0c4fcf12c55c8f4aa69efd5e3acf",
        "masks/10030_right.png": "e53e2eddd11347238b083ec5818bd1433d479ccf373c4e83ff320b3c99eb7b63",
        "pastes.jsonl": "a5d3b8192f7d52981d1446acf61d9b018faba2aa63624dea2ddf0e1f0b3cff2b",
    },
    "evaluation": {
        "README.md": "15e9f269c81919927f51721dfbc00c69dcb8155dce1950dbd7011ce252baa815",
        "dataset.json": "24c4ed7d6c29f702b85d2f95e14d62c69384d177900563a7bf3cc6eccf362dfa",
        "images/10007_left.png": "0523a747dc2cb5a8d8ef436b19935bd0cb5b5b3bb826e095dd3dc36048af9661",
        "images/10007_right.png": "04ee630a8bf7f7cf45ebee4b357fbb1ad027a5589f2b79f31cbd3b3866e9af29",
        "images/10028_left.png": "40519ac28bd054333eac4458756f79c12edd6e3b2a7c4b93b61c8b3dc6125045",
        "images/10030_right.png": "f4622ff9a5545046d62277988d0e40515ce03ae9b7801ffe9a60ab4782bd71e4",
        "manifest.csv": "95c9b413ccce20ea3a190e2f07095e621ba3916a4d4cc14feb337fabf852b939",
    },
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


def test_a_small_fixed_run_gives_the_pinned_bank_dataset_and_evaluation_set(tmp_path):
    idrid = shared("idrid")
    images = shared("eyepacs256", "images")
    normals = tmp_path / "normals"
    normals.mkdir()
    for name in NORMALS:
        shutil.copyfile(images / name, normals / name)
    (tmp_path / "idrid").symlink_to(idrid)  # a relative --root: the bank records its command
    _run(_script("lp-bank"), "build", "idrid_03", "--root", "idrid", "-o", "bank.h5", "-q",
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
    assert found == PINNED, json.dumps(found, indent=1)
