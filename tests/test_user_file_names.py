"""Image files named as users name them: spaces, accents, other scripts, ``(1)``, ``#``, ``,``.

Their ids must round-trip through every file the tools write (``manifest.csv`` quoted as CSV
requires, ``pastes.jsonl``, ``scores.csv``) and every reader; names that cannot be one plain,
portable file name are refused with the reason.
"""

from __future__ import annotations

import csv
import json
import os
import unicodedata
from pathlib import Path

import pytest

from tests.conftest import make_tiny_idrid, synthetic_fundus
from tests.test_output_safety import invoke

NAMES = [
    "patient 1",
    "Ålesund_é",
    "眼底写真",
    "scan (1)",
    "a#b",
    "x,y",
    'say "hi"',
    "semi;colon 100%",
    "Cafe\u0301",  # NFD: its id is the NFC "Café"
    "глаз",
]


def write_png(path: Path, seed: int) -> Path:
    """A small fundus PNG written through Python (any file name the filesystem takes)."""
    import cv2

    image = synthetic_fundus(200, 260, 95, seed=seed)
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    path.write_bytes(data.tobytes())
    return path


def manifest(root: Path) -> list[dict]:
    with open(root / "manifest.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def bank(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bank")
    make_tiny_idrid(root / "idrid")
    code, err = invoke("lp-bank", "build", "idrid_07", "--root", root / "idrid", "-o",
                       root / "bank.h5", "-q")  # fmt: skip
    assert code == 0, err
    return root / "bank.h5"


def synth(bank: Path, normals: Path, out: Path, *extra) -> tuple[int, str]:
    return invoke("lp-synth", "--bank", bank, "--normals", normals, "--size", "64",
                  "--ratios", "0.8,0.2,0,0", "--out", out, "-q", *extra)  # fmt: skip


def test_real_file_names_round_trip_through_every_tool(bank, tmp_path):
    folder = tmp_path / "my photos"
    folder.mkdir()
    for i, name in enumerate(NAMES):
        write_png(folder / f"{name}.png", seed=400 + i)
    (folder / "._patient 1.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble junk")  # skipped
    ids = {unicodedata.normalize("NFC", n) for n in NAMES}

    code, err = synth(bank, folder, tmp_path / "twins")
    assert code == 0, err
    rows = manifest(tmp_path / "twins")
    assert {r["twin_id"] for r in rows} == ids and len(rows) == 2 * len(NAMES)
    assert {r["path"] for r in rows if r["label"] == "1"} == {
        f"images/anomalous/{i}.png" for i in ids
    }
    assert all((tmp_path / "twins" / r["path"]).is_file() for r in rows)
    pastes = (tmp_path / "twins" / "pastes.jsonl").read_text(encoding="utf-8").splitlines()
    assert {json.loads(line)["twin_id"] for line in pastes} == ids
    code, err = invoke("lp-synth", "verify", tmp_path / "twins")
    assert code == 0, err

    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="", encoding="utf-8") as fh:  # NFC names, even for NFD files
        csv.writer(fh).writerows(
            [("image", "level")]
            + [(unicodedata.normalize("NFC", n), i % 2) for i, n in enumerate(NAMES)]
        )
    code, err = invoke("lp-synth", "prep", "--images", folder, "--labels", labels, "--bank", bank,
                       "--like", tmp_path / "twins", "--out", tmp_path / "eval", "-q")  # fmt: skip
    assert code == 0, err
    graded = manifest(tmp_path / "eval")
    assert {r["twin_id"] for r in graded} == ids
    assert {r["twin_id"]: int(r["label"]) for r in graded} == {
        unicodedata.normalize("NFC", n): i % 2 for i, n in enumerate(NAMES)
    }

    code, err = invoke("lp-train", tmp_path / "twins", "--out", tmp_path / "run", "--arch",
                       "smallcnn", "--weights", "none", "--epochs", "1", "--batch-size", "4",
                       "--device", "cpu", "--eval", tmp_path / "eval", "-q")  # fmt: skip
    assert code == 0, err
    with open(tmp_path / "run" / "eval" / "scores.csv", newline="", encoding="utf-8") as fh:
        scored = [r["path"] for r in csv.DictReader(fh)]
    assert scored == [r["path"] for r in graded]
    code, err = invoke("lp-knn", tmp_path / "twins", tmp_path / "eval", "--out",
                       tmp_path / "knn", "--device", "cpu", "-q")  # fmt: skip
    assert code == 0, err
    code, err = invoke("lp-eval", tmp_path / "run", tmp_path / "eval", "--out",
                       tmp_path / "compared", "--compare", tmp_path / "knn", "--device", "cpu",
                       "-q")  # fmt: skip
    assert code == 0, err
    code, err = invoke("lp-synth", "preview", tmp_path / "twins", "-o", tmp_path / "p.png")
    assert code == 0, err


def make_bytes_named(folder: Path, name: bytes) -> None:
    fd = os.open(os.fsencode(folder) + b"/" + name, os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)


@pytest.mark.parametrize(
    "names, reason",
    [
        (["line\nbreak.png"], "a control character"),
        (["back\\slash.png"], "a path separator"),
        (["Ab.png", "ab.png"], "map to one output name"),
        (["Caf\u00e9.png", "Cafe\u0301.png"], "map to one output name"),
        ([("x" * 210) + ".png"], "too long"),
        ([b"not-utf8-\xff.png"], "not valid UTF-8"),
    ],
    ids=["control", "backslash", "case", "unicode-form", "long", "bytes"],
)
def test_names_that_cannot_be_one_portable_file_name_are_refused(bank, tmp_path, names, reason):
    folder = tmp_path / "normals"
    folder.mkdir()
    write_png(folder / "fine.png", seed=1)
    for name in names:
        if isinstance(name, bytes):
            make_bytes_named(folder, name)
        else:
            write_png(folder / name, seed=2)
    code, err = synth(bank, folder, tmp_path / "twins")
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and reason in lines[0], err
    assert not (tmp_path / "twins").exists()


@pytest.mark.parametrize(
    "entry, reason",
    [("sub/fine.png", "a path separator"), ("../fine.png", "a path separator"),
     ("..", "starts with '.'"), (".hidden.png", "starts with '.'"),
     ("nul\x00byte.png", "a control character")],
    ids=["subfolder", "dotdot", "dotdot-alone", "hidden", "nul"],
)  # fmt: skip
def test_label_file_names_with_paths_or_control_characters_are_refused(
    bank, tmp_path, entry, reason
):
    images = tmp_path / "images"
    images.mkdir()
    write_png(images / "fine.png", seed=1)
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("image", "level"), ("fine.png", 0), (entry, 0)])
    code, err = invoke("lp-synth", "prep", "--images", images, "--labels", labels, "--bank", bank,
                       "--out", tmp_path / "eval")  # fmt: skip
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and reason in lines[0], err
    assert "Traceback" not in err and not (tmp_path / "eval").exists()
