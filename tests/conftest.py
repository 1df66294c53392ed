"""Shared fixtures: the real data under ../shared/data and small generated fundus trees."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.mutmut_names import install_under_mutmut

install_under_mutmut()  # before any test module imports lesionpaste.train, .synth or .bank_builder

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from lesionpaste.errors import LesionPasteError

#: ../shared/data beside the checkout; $LP_SHARED_DATA names it for runs from a copy of the
#: tree elsewhere (make mutate runs the tests inside mutants/).
SHARED_DATA = Path(
    os.environ.get("LP_SHARED_DATA")
    or Path(__file__).resolve().parents[1].parent / "shared" / "data"
)
IDRID_ROOT = SHARED_DATA / "idrid"
SEG = IDRID_ROOT / "A. Segmentation"
GT = SEG / "2. All Segmentation Groundtruths" / "a. Training Set"
TYPE_DIRS = {
    "MA": "1. Microaneurysms",
    "HE": "2. Haemorrhages",
    "EX": "3. Hard Exudates",
    "SE": "4. Soft Exudates",
}


def shared(*parts: str) -> Path:
    """A path under ../shared/data; the test is skipped when the folder is not there."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path}")
    return path


def idrid_image(n: int) -> Path:
    return shared(
        "idrid", "A. Segmentation", "1. Original Images", "a. Training Set", f"IDRiD_{n:02d}.jpg"
    )


def idrid_mask(n: int, lesion_type: str) -> Path:
    return GT / TYPE_DIRS[lesion_type] / f"IDRiD_{n:02d}_{lesion_type}.tif"


class Result:
    def __init__(self, code: int, stdout: str, stderr: str):
        self.code, self.stdout, self.stderr = code, stdout, stderr


@pytest.fixture
def lp_bank(monkeypatch):
    """Run ``lp-bank`` in-process; returns exit code, stdout and stderr."""
    from lesionpaste.bank_builder.cli import cli

    monkeypatch.delenv("LP_IDRID_ROOT", raising=False)
    monkeypatch.delenv("LP_MOSMED_ROOT", raising=False)
    monkeypatch.delenv("LP_CONFIG", raising=False)

    def run(*args: str, env: dict | None = None) -> Result:
        result = CliRunner().invoke(cli, [str(a) for a in args], prog_name="lp-bank", env=env)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Result(result.exit_code, result.stdout, result.stderr)

    return run


def synthetic_fundus(h: int = 240, w: int = 320, radius: int = 110, seed: int = 0) -> np.ndarray:
    """An RGB fundus-like picture: a textured orange disc on black."""
    rng = np.random.default_rng(seed)
    image = np.zeros((h, w, 3), np.uint8)
    cv2.circle(image, (w // 2, h // 2), radius, (200, 90, 40), -1)
    noise = rng.integers(0, 30, (h, w, 3), dtype=np.uint8)
    inside = image.any(axis=2)
    image[inside] = image[inside] + noise[inside]
    return image


def write_rgb(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def write_mask(path: Path, mask: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), mask.astype(np.uint8) * 255)
    return path


@pytest.fixture
def tiny_idrid(tmp_path) -> Path:
    """An IDRiD-layout tree with one small image IDRiD_07 and MA/HE/EX masks (no SE)."""
    return make_tiny_idrid(tmp_path / "IDRiD")


def make_tiny_idrid(root: Path) -> Path:
    """Write the ``tiny_idrid`` tree at ``root``.

    MA: three single pixels, two of them diagonal neighbours (one 8-connected component),
    so MA has 2 components; HE: one ring around a separate dot (2 components); EX: 1 blob.
    """
    seg = root / "A. Segmentation"
    image = synthetic_fundus()
    write_rgb(seg / "1. Original Images" / "b. Testing Set" / "IDRiD_07.jpg", image)
    shape = image.shape[:2]
    ma = np.zeros(shape, bool)
    ma[100, 150] = ma[101, 151] = ma[130, 170] = True
    he = np.zeros(shape, np.uint8)
    cv2.circle(he, (140, 120), 12, 1, 2)
    he[120, 140] = 1
    ex = np.zeros(shape, np.uint8)
    cv2.ellipse(ex, (180, 110), (9, 5), 30, 0, 360, 1, -1)
    gt = seg / "2. All Segmentation Groundtruths" / "b. Testing Set"
    write_mask(gt / TYPE_DIRS["MA"] / "IDRiD_07_MA.tif", ma)
    write_mask(gt / TYPE_DIRS["HE"] / "IDRiD_07_HE.tif", he.astype(bool))
    write_mask(gt / TYPE_DIRS["EX"] / "IDRiD_07_EX.tif", ex.astype(bool))
    return root


def no_temp_files(folder: Path) -> bool:
    """True when no temporary output was left behind in ``folder``."""
    return not [p for p in Path(folder).rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture(autouse=True)
def _quiet_cwd(tmp_path, monkeypatch):
    """Every test runs in its own empty working directory (default outputs land there)."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    os.makedirs(tmp_path / "home", exist_ok=True)


#: ``damaged``'s value that deletes the key instead of replacing it
DELETE = object()


def damaged(data, path: tuple, value):
    """A deep copy of JSON ``data`` with the value at ``path`` (keys or indices) replaced by
    ``value``, or deleted when ``value`` is ``DELETE``."""
    data = json.loads(json.dumps(data))
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


def refusal(call, *args) -> str:
    """The message of the LesionPasteError ``call(*args)`` raises (the test fails if none)."""
    with pytest.raises(LesionPasteError) as caught:
        call(*args)
    return str(caught.value)
