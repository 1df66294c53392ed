"""The MosMed protocol end to end on a generated tree in MosMed's exact layout (the real CT
volumes are not available here; the layout, file format and orientation are MosMed's)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from lesionpaste.bank_format import read_bank
from lesionpaste.ct_files import axial
from lesionpaste.recipes import WindowRecipe, window_hu

nib = pytest.importorskip("nibabel")

SHAPE = (96, 96, 20)  # x, y, z as MosMed stores them (512 x 512 x Z there)
AFFINE = np.diag([-0.8, -0.8, 5.0, 1.0])  # LAS-like storage, as MosMed's: canonicalised on read
LESION_HU = -150


def _volume(seed: int) -> np.ndarray:
    """HU: air outside an elliptic body, soft tissue, two air-filled lungs."""
    rng = np.random.default_rng(seed)
    x, y = np.mgrid[: SHAPE[0], : SHAPE[1]]
    body = ((x - 48) / 44) ** 2 + ((y - 48) / 36) ** 2 < 1
    lungs = (((x - 28) / 14) ** 2 + ((y - 46) / 22) ** 2 < 1) | (
        ((x - 68) / 14) ** 2 + ((y - 46) / 22) ** 2 < 1
    )
    plane = np.where(body, 40.0, -1000.0)
    plane[lungs] = -850.0
    volume = np.repeat(plane[:, :, None], SHAPE[2], axis=2)
    return volume + rng.normal(0, 10, SHAPE)


def _lesion_mask(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros(SHAPE, np.uint8)
    x, y, z = np.mgrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    for _ in range(3):
        cx, cy, cz = rng.integers(22, 34), rng.integers(35, 58), rng.integers(6, 14)
        mask |= (((x - cx) / 4) ** 2 + ((y - cy) / 4) ** 2 + ((z - cz) / 1.2) ** 2 < 1).astype(
            np.uint8
        )
    return mask


def _save(array: np.ndarray, path: Path, hu: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if hu:  # int16 with a rescale, as MosMed stores HU
        image = nib.Nifti1Image(np.round(array + 1024).astype(np.int16), AFFINE)
        image.header.set_slope_inter(1.0, -1024.0)
    else:
        image = nib.Nifti1Image(array.astype(np.uint8), AFFINE)
    image.header.set_zooms((0.8, 0.8, 5.0))
    nib.save(image, path)


@pytest.fixture(scope="module")
def mosmed(tmp_path_factory) -> Path:
    """3 CT-0 studies; 2 annotated CT-1 studies (study_0300 for the bank, study_0301)."""
    root = tmp_path_factory.mktemp("mosmed") / "COVID19_1110"
    for k in range(1, 4):
        _save(_volume(k), root / "studies" / "CT-0" / f"study_{k:04d}.nii.gz", hu=True)
    for k in (300, 301):
        mask = _lesion_mask(k)
        volume = np.where(mask > 0, LESION_HU, _volume(k))
        _save(volume, root / "studies" / "CT-1" / f"study_{k:04d}.nii.gz", hu=True)
        _save(mask, root / "masks" / f"study_{k:04d}_mask.nii.gz", hu=False)
    return root


@pytest.fixture(scope="module")
def bank(mosmed, tmp_path_factory) -> Path:
    from lesionpaste.bank_builder.cli import cli

    out = tmp_path_factory.mktemp("bank") / "ct.h5"
    r = CliRunner().invoke(
        cli, ["build", "study_0300", "--root", str(mosmed), "-o", str(out), "-q"]
    )
    assert r.exit_code == 0, r.stderr
    return out


def _synth(*args) -> None:
    from lesionpaste.synth.cli import cli

    r = CliRunner().invoke(cli, [str(a) for a in args], prog_name="lp-synth")
    assert r.exit_code == 0, r.stderr


def _rows(dataset: Path) -> list[dict]:
    with open(dataset / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _canonical_slice(path: Path, z: int) -> np.ndarray:
    volume = nib.as_closest_canonical(nib.load(path)).get_fdata(dtype=np.float32)
    return axial(volume, z)


def test_twins_are_made_from_central_ct0_slices_with_lesions_in_the_lungs(mosmed, bank, tmp_path):
    out = tmp_path / "synth"
    _synth("--bank", bank, "--normals", mosmed, "--per-study", 4, "--size", 64, "--out", out, "-q")
    rows = _rows(out)
    normals = sorted(r["twin_id"] for r in rows if r["label"] == "0")
    # 4 slices of each CT-0 study, spread over the central 60% of its 20 slices
    assert normals == [f"study_{k:04d}_z{z:03d}" for k in (1, 2, 3) for z in (5, 8, 11, 14)]
    recipe = WindowRecipe(
        **{k: v for k, v in read_bank(bank).meta.preprocess.items() if k != "name"}
    )
    row = next(r for r in rows if r["twin_id"] == "study_0002_z008" and r["label"] == "0")
    expected = window_hu(_canonical_slice(mosmed / "studies/CT-0/study_0002.nii.gz", 8), recipe)
    expected = cv2.resize(expected, (64, 64), interpolation=cv2.INTER_AREA)
    got = cv2.imread(str(out / row["path"]), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(got, expected)  # the slice windowed like the bank's study
    for line in (out / "pastes.jsonl").read_text().splitlines():
        record = json.loads(line)
        mask = cv2.imread(str(out / record["mask_path"]), cv2.IMREAD_GRAYSCALE) > 0
        twin_id = record["twin_id"]
        study, z = twin_id.rsplit("_z", 1)
        hu = _canonical_slice(mosmed / f"studies/CT-0/{study}.nii.gz", int(z))
        lungs = cv2.resize((hu < -500).astype(np.uint8), (64, 64), interpolation=cv2.INTER_NEAREST)
        assert lungs[mask].mean() > 0.9, twin_id  # pasted into the lungs


def test_the_evaluation_set_holds_ct0_slices_and_lesion_slices_but_not_the_banks_study(
    mosmed, bank, tmp_path
):
    synth, evaluation = tmp_path / "synth", tmp_path / "eval"
    _synth(
        "--bank", bank, "--normals", mosmed, "--per-study", 2, "--size", 64, "--out", synth, "-q"
    )
    _synth(
        "prep",
        "--images",
        mosmed,
        "--per-study",
        2,
        "--bank",
        bank,
        "--like",
        synth,
        "--out",
        evaluation,
        "-q",
    )
    rows = _rows(evaluation)
    mask = np.asarray(
        nib.as_closest_canonical(nib.load(mosmed / "masks/study_0301_mask.nii.gz")).dataobj
    )
    lesion_z = [int(z) for z in np.flatnonzero(mask.any(axis=(0, 1)))]
    assert sorted(r["twin_id"] for r in rows if r["label"] == "1") == [
        f"study_0301_z{z:03d}" for z in lesion_z
    ]
    assert len([r for r in rows if r["label"] == "0"]) == 6
    assert not any(r["twin_id"].startswith("study_0300") for r in rows)  # the bank's own study


def test_volumes_stored_in_another_axis_order_and_damaged_ones(mosmed, bank, tmp_path):
    """A CT-0 study stored (z, x, y) with an affine saying so gives the same axial slices as
    one stored (x, y, z); a damaged volume is skipped and listed, or refused with --strict."""
    import shutil

    root = tmp_path / "tree"
    shutil.copytree(mosmed, root)
    volume = _volume(9)  # x, y, z
    stored = np.transpose(np.round(volume + 1024).astype(np.int16), (2, 0, 1))  # z, x, y
    affine = np.zeros((4, 4))
    affine[0, 1], affine[1, 2], affine[2, 0], affine[3, 3] = -0.8, -0.8, 5.0, 1.0
    image = nib.Nifti1Image(stored, affine)
    image.header.set_slope_inter(1.0, -1024.0)
    nib.save(image, root / "studies/CT-0/study_0009.nii.gz")
    _save(volume, root / "studies/CT-0/study_0011.nii.gz", hu=True)  # the same, stored x, y, z
    (root / "studies/CT-0/study_0010.nii.gz").write_bytes(b"\x1f\x8b not a volume")
    out = tmp_path / "synth"
    _synth("--bank", bank, "--normals", root, "--per-study", 2, "--size", 64, "--out", out, "-q")
    rows = _rows(out)
    ids = {r["twin_id"] for r in rows}
    assert {"study_0009_z007", "study_0009_z012"} <= ids  # 20 axial slices, not 96
    for z in (7, 12):
        a, b = (
            cv2.imread(str(out / f"images/normal/study_{k:04d}_z{z:03d}.png"), 0) for k in (9, 11)
        )
        np.testing.assert_array_equal(a, b)
    skipped = json.loads((out / "dataset.json").read_text())["skipped"]
    assert [s["id"] for s in skipped] == ["study_0010"]
    from lesionpaste.synth.cli import cli

    r = CliRunner().invoke(
        cli,
        [
            "--bank",
            str(bank),
            "--normals",
            str(root),
            "--out",
            str(tmp_path / "strict"),
            "--strict",
            "-q",
        ],
        prog_name="lp-synth",
    )
    assert r.exit_code != 0 and "study_0010" in r.stderr and "NIfTI" in r.stderr


def test_a_mosmed_folder_refuses_labels_and_a_fundus_bank(mosmed, tmp_path):
    from lesionpaste.synth.cli import cli
    from tests.synth_fixtures import make_fundus_bank

    fundus = make_fundus_bank(tmp_path / "f.h5")
    r = CliRunner().invoke(
        cli,
        [
            "prep",
            "--images",
            str(mosmed),
            "--label",
            "0",
            "--bank",
            str(fundus),
            "--out",
            str(tmp_path / "e"),
        ],
        prog_name="lp-synth",
    )
    assert r.exit_code != 0 and "labelled by its layout" in r.stderr
    r = CliRunner().invoke(
        cli,
        [
            "--bank",
            str(fundus),
            "--normals",
            str(mosmed),
            "--out",
            str(tmp_path / "d"),
            "--strict",
            "-q",
        ],
        prog_name="lp-synth",
    )
    assert r.exit_code != 0 and "this is a fundus bank" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "d").exists()


def test_make_train_mosmed_runs_the_protocol_with_folds_by_study(mosmed, tmp_path):
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "lp-train").exists() or not shutil_which("make"):
        pytest.skip("needs the installed console scripts and make")
    stamp = tmp_path / "stamp"
    stamp.touch()
    work = tmp_path / "work"
    repo = Path(__file__).resolve().parents[1]
    command = [
        "make",
        "-C",
        str(repo),
        "train-mosmed",
        f"BIN={bin_dir}",
        f"STAMP={stamp}",
        f"MOSMED_ROOT={mosmed}",
        "MOSMED_ID=study_0300",
        f"MOSMED_WORK={work}",
        "FOLDS=2",
        "CT_EPOCHS=1",
        "PER_STUDY=2",
        "SIZE=32",
        "ARCH=smallcnn",
        "BATCH=8",
        "DEVICE=cpu",
        "JOBS=1",
        "SYNTH_OPTS=-q",
        "TRAIN_OPTS=--weights none -q",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((work / "run" / "cv.json").read_text())
    assert summary["folds"] == 2 and summary["auc"]["0v1"]["folds"] >= 1  # a binary set
    studies = [
        {ident.rsplit("_z", 1)[0] for ident in fold["test_ids"]} for fold in summary["per_fold"]
    ]
    assert not studies[0] & studies[1]  # no study in two test folds
    assert set().union(*studies) == {"study_0001", "study_0002", "study_0003", "study_0301"}
    again = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert again.returncode == 0 and "lp-train" not in again.stdout  # every step up to date


def shutil_which(name: str) -> str | None:
    import shutil

    return shutil.which(name)
