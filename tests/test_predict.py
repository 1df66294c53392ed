"""lp-predict and the input contract on real data: the scores of raw images prepared by a run's
contract equal lp-eval's on the same images made by lp-synth prep (a Graham-recipe fundus run
on full-resolution EyePACS photographs, a --preprocess none run on eyepacs256, a CT run on DICOM
slices); the predictions file, resume, the report, the Python API, the model card, and every
refusal of bad input in one line."""

from __future__ import annotations

import csv
import json
import os
import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from tests.conftest import Result, shared

SMALL = ["--arch", "smallcnn", "--weights", "none", "--epochs", "1", "--batch-size", "8"]
SMALL += ["--device", "cpu", "--val-fraction", "0.3", "-q"]


def invoke(command, *args, prog: str) -> Result:
    r = CliRunner().invoke(command, [str(a) for a in args], prog_name=prog)
    if r.exception and not isinstance(r.exception, SystemExit):
        raise r.exception
    return Result(r.exit_code, r.stdout, r.stderr)


def lp_bank(*args) -> Result:
    from lesionpaste.bank_builder.cli import cli

    return invoke(cli, *args, prog="lp-bank")


def lp_synth(*args) -> Result:
    from lesionpaste.synth.cli import cli

    return invoke(cli, *args, prog="lp-synth")


def lp_train(*args) -> Result:
    from lesionpaste.train.cli import train_command

    return invoke(train_command, *args, prog="lp-train")


def lp_eval(*args) -> Result:
    from lesionpaste.train.cli import eval_command

    return invoke(eval_command, *args, prog="lp-eval")


def lp_predict(*args) -> Result:
    from lesionpaste.train.predict_cli import predict_command

    return invoke(predict_command, *args, prog="lp-predict")


def ok(r: Result) -> Result:
    assert r.code == 0, r.stderr
    return r


def one_error(r: Result, expected: str) -> None:
    assert r.code != 0
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "error:" in lines[0], r.stderr
    assert expected in lines[0], lines[0]
    assert "Traceback" not in r.stderr


def predictions(out: Path) -> list[dict]:
    with open(out / "predictions.csv", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def eval_scores(folder: Path) -> dict[str, float]:
    """lp-eval's scores by image id (the file name without its suffix)."""
    with open(folder / "scores.csv", encoding="utf-8", newline="") as fh:
        return {Path(r["path"]).stem: float(r["score"]) for r in csv.DictReader(fh)}


def link_all(paths: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True)
    for p in paths:
        os.symlink(p, folder / p.name)
    return folder


@pytest.fixture(scope="module")
def fundus(tmp_path_factory) -> dict:
    """A Graham-recipe run on twins of full-resolution EyePACS photographs, and lp-eval of the
    other photographs made by lp-synth prep --like."""
    root = tmp_path_factory.mktemp("fundus")
    full = shared("eyepacs_fullres", "images")
    photos = sorted(full.glob("*.jpeg"))
    ok(lp_bank("build", "idrid_03", "--root", shared("idrid"), "-o", root / "bank.h5", "-q"))
    normals = link_all(photos[:10], root / "normals")
    tests = link_all(photos[10:], root / "tests")
    ok(lp_synth("--bank", root / "bank.h5", "--normals", normals, "--size", "64",
                "-o", root / "twins", "-q"))  # fmt: skip
    ok(lp_train(root / "twins", "-o", root / "run", *SMALL))
    ok(lp_synth("prep", "--images", tests, "--labels", shared("eyepacs_fullres", "labels.csv"),
                "--bank", root / "bank.h5", "--like", root / "twins", "-o", root / "evalset",
                "-q"))  # fmt: skip
    ok(lp_eval(root / "run", root / "evalset", "-o", root / "eval", "--device", "cpu", "-q"))
    return {"root": root, "run": root / "run", "tests": tests, "twins": root / "twins",
            "bank": root / "bank.h5"}  # fmt: skip


def _parity(run: Path, images: Path, eval_folder: Path, out: Path) -> float:
    ok(lp_predict(run, images, "-o", out, "--device", "cpu", "-q"))
    rows = predictions(out)
    expected = eval_scores(eval_folder)
    assert {r["id"] for r in rows} == set(expected)
    assert all(r["status"] == "scored" for r in rows)
    worst = max(abs(float(r["score"]) - expected[r["id"]]) for r in rows)
    print(f"\nparity {run}: {len(rows)} images, largest difference {worst:.3g}")  # pytest -s
    return worst


def test_a_run_records_its_input_contract(fundus):
    contract = json.loads((fundus["run"] / "contract.json").read_text())
    assert contract["preparation"]["modality"] == "fundus"
    assert contract["preparation"]["recipe"]["name"] == "graham"
    assert contract["preparation"]["size"] == 64
    assert contract["network_input"]["mean"] == [0.485, 0.456, 0.406]
    saved = json.loads((fundus["run"] / "thresholds.json").read_text())
    assert contract["thresholds"] == {k: saved[k] for k in ("pass_95", "pass_90")}
    assert contract["n_normals"] == saved["n_normals"]


def test_parity_on_full_resolution_photographs_with_graham(fundus, tmp_path):
    assert _parity(fundus["run"], fundus["tests"], fundus["root"] / "eval", tmp_path / "p") <= 1e-6


def test_parity_with_preprocess_none_on_eyepacs256(tmp_path, fundus):
    images = sorted(shared("eyepacs256").rglob("*.jpeg"))[:24]
    normals = link_all(images[:14], tmp_path / "normals")
    tests = link_all(images[14:], tmp_path / "tests")
    ok(lp_synth("--bank", fundus["bank"], "--normals", normals, "--size", "64", "--preprocess",
                "none", "--match-colour", "-o", tmp_path / "twins", "-q"))  # fmt: skip
    ok(lp_train(tmp_path / "twins", "-o", tmp_path / "run", *SMALL))
    contract = json.loads((tmp_path / "run" / "contract.json").read_text())
    assert contract["preparation"]["recipe"] == {"name": "none"}
    ok(lp_synth("prep", "--images", tests, "--label", "0", "--bank", fundus["bank"],
                "--like", tmp_path / "twins", "-o", tmp_path / "ev", "-q"))  # fmt: skip
    ok(lp_eval(tmp_path / "run", tmp_path / "ev", "-o", tmp_path / "eval", "--device", "cpu"))
    assert _parity(tmp_path / "run", tests, tmp_path / "eval", tmp_path / "p") <= 1e-6


@pytest.fixture(scope="module")
def ct(tmp_path_factory) -> dict:
    """A CT run: a bank cut from a DICOM slice (HU, windowed), twins of other DICOM slices."""
    root = tmp_path_factory.mktemp("ct")
    dicoms = sorted(shared("ct", "tcia_dicom").glob("*.dcm"))
    mask = np.zeros((512, 512), np.uint8)
    mask[250:262, 120:134] = 255
    cv2.imwrite(str(root / "m.png"), mask)
    ok(lp_bank("build", "--image", dicoms[0], "--mask", f"COVID={root / 'm.png'}",
               "-o", root / "ct.h5", "-q"))  # fmt: skip
    normals = link_all(dicoms[1:9], root / "normals")
    tests = link_all(dicoms[9:15], root / "tests")
    ok(lp_synth("--bank", root / "ct.h5", "--normals", normals, "--size", "64",
                "-o", root / "twins", "-q"))  # fmt: skip
    ok(lp_train(root / "twins", "-o", root / "run", *SMALL))
    return {"root": root, "run": root / "run", "tests": tests, "bank": root / "ct.h5"}


def test_parity_on_dicom_slices(ct, tmp_path):
    contract = json.loads((ct["run"] / "contract.json").read_text())
    assert contract["preparation"]["modality"] == "ct"
    assert contract["preparation"]["recipe"]["name"] == "window"
    assert contract["preparation"]["channels"] == 1
    ok(lp_synth("prep", "--images", ct["tests"], "--label", "0", "--bank", ct["bank"],
                "--like", ct["root"] / "twins", "-o", tmp_path / "ev", "-q"))  # fmt: skip
    ok(lp_eval(ct["run"], tmp_path / "ev", "-o", tmp_path / "eval", "--device", "cpu", "-q"))
    assert _parity(ct["run"], ct["tests"], tmp_path / "eval", tmp_path / "p") <= 1e-6


def test_the_wrong_modality_is_recorded_and_skipped(fundus, ct, tmp_path):
    photo = min(fundus["tests"].iterdir())
    grey = tmp_path / "grey.png"
    cv2.imwrite(str(grey), cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE))
    ok(lp_predict(ct["run"], photo, "-o", tmp_path / "a", "--device", "cpu", "-q"))
    (row,) = predictions(tmp_path / "a")
    assert row["status"] == "skipped" and "colour image" in row["reason"]
    dicom = min(ct["tests"].iterdir())
    ok(lp_predict(fundus["run"], dicom, grey, "-o", tmp_path / "b", "--device", "cpu", "-q"))
    reasons = [r["reason"] for r in predictions(tmp_path / "b")]
    assert "a CT file" in reasons[0] and "a grey image" in reasons[1]
    one_error(
        lp_predict(fundus["run"], grey, "-o", tmp_path / "c", "--strict", "--device", "cpu"),
        "a grey image",
    )


def test_a_csv_carries_its_columns_and_records_missing_images(fundus, tmp_path):
    photos = sorted(fundus["tests"].iterdir())[:3]
    listing = tmp_path / "list.csv"
    lines = ["image,clinic,score"] + [f"{p},north,{i}" for i, p in enumerate(photos)]
    lines.append("does_not_exist.jpeg,south,9")
    listing.write_text("\n".join(lines) + "\n")
    r = ok(lp_predict(fundus["run"], listing, "-o", tmp_path / "p", "--device", "cpu"))
    assert "scored 3 image(s), skipped 1" in r.stdout
    rows = predictions(tmp_path / "p")
    assert [r["clinic"] for r in rows] == ["north", "north", "north", "south"]
    assert [r["input_score"] for r in rows] == ["0", "1", "2", "9"]  # renamed: ours is score
    assert rows[3]["status"] == "skipped" and rows[3]["reason"] == "no file of that name"
    import hashlib

    assert rows[0]["sha256"] == hashlib.sha256(photos[0].read_bytes()).hexdigest()


def test_flags_follow_the_thresholds_and_the_report_is_sorted(fundus, tmp_path):
    ok(lp_predict(fundus["run"], fundus["tests"], "-o", tmp_path / "p", "--device", "cpu", "-q"))
    contract = json.loads((fundus["run"] / "contract.json").read_text())
    rows = predictions(tmp_path / "p")
    for name, t in contract["thresholds"].items():
        assert all(int(r[f"flagged_{name}"]) == (float(r["score"]) > t) for r in rows)
    report = (tmp_path / "p" / "predictions.html").read_text()
    order = sorted(rows, key=lambda r: -float(r["score"]))
    positions = [report.index(f"<td>{r['id']}</td>") for r in order]
    assert positions == sorted(positions)
    for name, t in contract["thresholds"].items():  # each mark where the scores cross it
        mark = report.index(f"threshold {name} (")
        assert all(p < mark for r, p in zip(order, positions) if float(r["score"]) > t)
        assert all(p > mark for r, p in zip(order, positions) if float(r["score"]) <= t)
    for r in rows:
        assert (tmp_path / "p" / r["thumbnail"]).is_file()


def test_a_rerun_scores_only_what_is_missing(fundus, tmp_path):
    out = tmp_path / "p"
    ok(lp_predict(fundus["run"], fundus["tests"], "-o", out, "--device", "cpu", "-q"))
    whole = predictions(out)
    lines = (out / "predictions.csv").read_text().splitlines(keepends=True)
    (out / "predictions.csv").write_text("".join(lines[:4]) + lines[4][:20])  # killed mid-line
    r = ok(lp_predict(fundus["run"], fundus["tests"], "-o", out, "--device", "cpu"))
    assert f"scored {len(whole) - 3} image(s)" in r.stdout and "3 already done" in r.stdout
    again = predictions(out)
    assert [(a["id"], a["score"]) for a in again] == [(w["id"], w["score"]) for w in whole]
    (out / "predictions.csv").write_text(lines[0][:9])  # killed while writing the header
    r = ok(lp_predict(fundus["run"], fundus["tests"], "-o", out, "--device", "cpu"))
    assert f"scored {len(whole)} image(s)" in r.stdout
    again = predictions(out)
    assert [(a["id"], a["score"]) for a in again] == [(w["id"], w["score"]) for w in whole]


def test_python_api_scores_as_lp_predict(fundus, tmp_path):
    import lesionpaste

    ok(lp_predict(fundus["run"], fundus["tests"], "-o", tmp_path / "p", "--device", "cpu", "-q"))
    rows = predictions(tmp_path / "p")
    detector = lesionpaste.load_detector(fundus["run"], device="cpu")
    result = detector.predict([r["input"] for r in rows])
    assert np.abs(result.scores - np.array([float(r["score"]) for r in rows])).max() <= 1e-6
    prepared = np.stack([detector.contract.preparation.prepare(Path(r["input"])).image
                         for r in rows])  # fmt: skip
    assert np.array_equal(detector.score(prepared).scores, result.scores)


def test_a_run_without_a_contract_needs_like(fundus, tmp_path):
    run = tmp_path / "old"
    shutil.copytree(fundus["run"], run)
    (run / "contract.json").unlink()
    one_error(lp_predict(run, fundus["tests"], "-o", tmp_path / "p", "--device", "cpu"), "--like")
    ok(lp_predict(run, fundus["tests"], "-o", tmp_path / "p", "--like", fundus["twins"],
                  "--device", "cpu", "-q"))  # fmt: skip
    ok(lp_predict(fundus["run"], fundus["tests"], "-o", tmp_path / "q", "--device", "cpu", "-q"))
    assert [r["score"] for r in predictions(tmp_path / "p")] == [
        r["score"] for r in predictions(tmp_path / "q")
    ]


def _damaged(contract: dict, how: str) -> str:
    c = json.loads(json.dumps(contract))
    if how == "infinite threshold":
        return json.dumps(c).replace(f'"pass_95": {c["thresholds"]["pass_95"]}', '"pass_95": 1e400')
    if how == "negative count":
        c["n_normals"] = -3
    elif how == "size as text":
        c["preparation"]["size"] = "64"
    elif how == "recipe not a number":
        c["preparation"]["recipe"]["gain"] = "strong"
    elif how == "unknown modality":
        c["preparation"]["modality"] = "xray"
    elif how == "unknown version":
        c["schema_version"] = 99
    elif how == "unknown score":
        c["image_score"] = "best"
    elif how == "nested":
        return "[" * 200_000 + "]" * 200_000
    elif how == "enormous":
        return json.dumps({**c, "pad": "x" * (2 << 20)})
    return json.dumps(c)


@pytest.mark.parametrize(
    "how, expected",
    [
        ("infinite threshold", "pass_95 is inf"),
        ("negative count", "n_normals is -3"),
        ("size as text", "the prepared size is '64'"),
        ("recipe not a number", "the recipe's gain is 'strong'"),
        ("unknown modality", "unknown modality 'xray'"),
        ("unknown version", "schema version 99"),
        ("unknown score", "unknown image_score 'best'"),
        ("nested", "nested too deeply"),
        ("enormous", "contract.json"),
        ("pickle", "not valid JSON"),
    ],
)
def test_a_damaged_contract_is_refused_in_one_line(fundus, tmp_path, how, expected):
    run = tmp_path / "run"
    shutil.copytree(fundus["run"], run)
    contract = json.loads((run / "contract.json").read_text())
    if how == "pickle":
        (run / "contract.json").write_bytes(pickle.dumps(contract))
    else:
        (run / "contract.json").write_text(_damaged(contract, how))
    r = lp_predict(run, fundus["tests"], "-o", tmp_path / "p", "--device", "cpu")
    one_error(r, expected)
    assert "contract.json" in r.stderr
    assert not (tmp_path / "p").exists()


def test_outputs_are_guarded(fundus, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(fundus["tests"], images, symlinks=True)
    one_error(lp_predict(fundus["run"], images, "-o", images, "--device", "cpu"), "is the input")
    one_error(
        lp_predict(fundus["run"], images, "-o", images / "p", "--device", "cpu"),
        "lies inside the input",
    )
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    for extra in ([], ["--overwrite"]):
        r = lp_predict(fundus["run"], images, "-o", mine, "--device", "cpu", *extra)
        assert r.code != 0 and "Traceback" not in r.stderr
    assert (mine / "notes.txt").read_text() == "keep me"
    out = tmp_path / "p"
    ok(lp_predict(fundus["run"], images, "-o", out, "--device", "cpu", "-q"))
    one_error(
        lp_predict(fundus["run"], min(images.iterdir()), "-o", out, "--device", "cpu"),
        "another detector or other inputs",
    )
    ok(lp_predict(fundus["run"], min(images.iterdir()), "-o", out, "--overwrite",
                  "--device", "cpu", "-q"))  # fmt: skip
    assert len(predictions(out)) == 1


def test_the_model_card_says_what_the_run_is(fundus, tmp_path):
    card = (fundus["run"] / "README.md").read_text()
    contract = json.loads((fundus["run"] / "contract.json").read_text())
    assert "IDRiD_03" in card and '"name": "graham"' in card
    assert f"`pass_95` = {contract['thresholds']['pass_95']:.6g}" in card
    metrics = json.loads((fundus["root"] / "eval" / "metrics.json").read_text())
    auc = metrics["auc"]["0vall"]
    assert f"0vall: {auc['auc']:.4f} [{auc['ci_low']:.4f}, {auc['ci_high']:.4f}]" in card
    recorded = json.loads((fundus["run"] / "evaluation.json").read_text())
    assert recorded["auc"]["0vall"]["auc"] == auc["auc"]


# ---- lp-export: one model file with model.json; the same scores without this code's model


def lp_export(*args) -> Result:
    from lesionpaste.train.export_cli import export_command

    return invoke(export_command, *args, prog="lp-export")


@pytest.fixture(scope="module")
def mapped_run(fundus, tmp_path_factory) -> Path:
    """A run with the --maps decoder on the fundus twins (their pasted masks)."""
    run = tmp_path_factory.mktemp("maps") / "run"
    ok(lp_train(fundus["twins"], "-o", run, *SMALL, "--maps"))
    return run


@pytest.mark.parametrize("kind", ["onnx", "torchscript"])
@pytest.mark.parametrize("maps", [False, True])
def test_an_export_scores_as_its_run(fundus, mapped_run, tmp_path, kind, maps):
    from lesionpaste.train.deploy.loading import load_detector

    pytest.importorskip("onnxruntime")
    run = mapped_run if maps else fundus["run"]
    ok(lp_export(run, "--format", kind, "-o", tmp_path / "x", "-q"))
    described = json.loads((tmp_path / "x" / "model.json").read_text())
    assert described["contract"] == json.loads((run / "contract.json").read_text())
    assert (
        described["training"]["dataset_sha256"]
        == json.loads((run / "config.json").read_text())["dataset_sha256"]
    )
    assert (tmp_path / "x" / "README.md").read_text() == (run / "README.md").read_text()
    photos = sorted(fundus["tests"].iterdir())
    ours = load_detector(run, device="cpu").predict(photos)
    theirs = load_detector(tmp_path / "x", device="cpu").predict(photos)
    assert np.abs(ours.scores - theirs.scores).max() <= 1e-4
    assert (ours.maps is None) == (not maps) and (theirs.maps is None) == (not maps)
    if maps:
        assert np.abs(ours.maps - theirs.maps).max() <= 1e-4
    ok(lp_predict(tmp_path / "x", fundus["tests"], "-o", tmp_path / "p", "-q"))
    rows = predictions(tmp_path / "p")
    assert all(r["map"] for r in rows) == maps


def test_an_onnx_export_scores_without_torch(fundus, tmp_path):
    import subprocess
    import sys

    pytest.importorskip("onnxruntime")
    ok(lp_export(fundus["run"], "-o", tmp_path / "x", "-q"))
    script = (
        "import sys\n"
        "from lesionpaste.train.predict_cli import predict_command\n"
        "try:\n"
        f"    predict_command([{str(tmp_path / 'x')!r}, {str(fundus['tests'])!r}, '-o', "
        f"{str(tmp_path / 'p')!r}, '-q'])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print('torch loaded' if 'torch' in sys.modules else 'no torch')\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "no torch"
    assert len(predictions(tmp_path / "p")) == len(list(fundus["tests"].iterdir()))


class _Trap:
    """A pickle that, if ever unpickled, writes a file: proof that nothing unpickles it."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path(self.path).write_text, ("unpickled",))


@pytest.mark.parametrize(
    "damage, expected",
    [
        ("nested", "nested too deeply"),
        ("enormous", "model.json"),
        ("wrong size", "does not match its model"),
        ("other file name", "model_file '../model.onnx'"),
        ("altered model", "not the one recorded at export"),
        ("pickle", "not a TorchScript archive"),
    ],
)
def test_a_damaged_export_is_refused_in_one_line(fundus, tmp_path, damage, expected):
    from lesionpaste.digests import sha256_file

    kind = "torchscript" if damage == "pickle" else "onnx"
    if kind == "onnx":
        pytest.importorskip("onnxruntime")
    x = tmp_path / "x"
    ok(lp_export(fundus["run"], "--format", kind, "-o", x, "-q"))
    described = json.loads((x / "model.json").read_text())
    model = x / described["model_file"]
    if damage == "nested":
        (x / "model.json").write_text("{" * 0 + "[" * 100_000 + "]" * 100_000)
    elif damage == "enormous":
        (x / "model.json").write_text(json.dumps({**described, "pad": "x" * (2 << 20)}))
    elif damage == "wrong size":
        described["contract"]["preparation"]["size"] = 128
    elif damage == "other file name":
        described["model_file"] = "../model.onnx"
    elif damage == "altered model":
        model.write_bytes(model.read_bytes()[:-10] + b"0123456789")
    elif damage == "pickle":
        model.write_bytes(pickle.dumps(_Trap(str(tmp_path / "trap"))))
        described["model_sha256"] = sha256_file(model)
    if damage in ("wrong size", "other file name", "pickle"):
        (x / "model.json").write_text(json.dumps(described))
    r = lp_predict(x, fundus["tests"], "-o", tmp_path / "p", "--device", "cpu")
    one_error(r, expected)
    assert not (tmp_path / "trap").exists() and not (tmp_path / "p").exists()


def test_lp_export_guards_its_output(fundus, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    one_error(lp_export(fundus["run"], "-o", mine, "--overwrite"), "nothing was touched")
    one_error(lp_export(fundus["run"], "-o", fundus["run"] / "x"), "lies inside the run")
    assert (mine / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"pass_95": 1e400, "pass_90": 0.5, "n_normals": 3}', "pass_95 is inf"),
        ('{"pass_95": 0.9, "pass_90": -1e400, "n_normals": 3}', "pass_90 is -inf"),
        ('{"pass_95": 0.9, "pass_90": 0.5, "n_normals": -3}', "n_normals is -3"),
        ('{"pass_95": 0.5, "pass_90": 0.9, "n_normals": 3}', "pass_90 (0.9) is above pass_95"),
        ("[" * 200_000 + "]" * 200_000, "nested too deeply"),
    ],
)
def test_lp_eval_refuses_damaged_thresholds_in_one_line(fundus, tmp_path, text, expected):
    run = tmp_path / "run"
    shutil.copytree(fundus["run"], run)
    (run / "thresholds.json").write_text(text)
    r = lp_eval(run, fundus["root"] / "evalset", "-o", tmp_path / "e", "--device", "cpu")
    one_error(r, expected)
    assert "thresholds.json" in r.stderr and not (tmp_path / "e").exists()


def lesionpaste_contract(run: Path):
    from lesionpaste.contract import read_contract

    return read_contract(run / "contract.json")


def test_a_nifti_volume_is_scored_slice_by_slice_as_its_dicom_slices(ct, tmp_path):
    nib = pytest.importorskip("nibabel")
    from lesionpaste.ct_files import read_dicom_hu

    dicoms = sorted(ct["tests"].iterdir())[:3]
    slices = [read_dicom_hu(p)[0] for p in dicoms]
    # axial(volume, z) is flipud(volume[:, :, z].T): store each slice so that it reads back
    volume = np.stack([np.flipud(s).T for s in slices], axis=2).astype(np.float32)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / "vol.nii.gz")
    ok(lp_predict(ct["run"], tmp_path / "vol.nii.gz", "-o", tmp_path / "v", "--device", "cpu"))
    ok(lp_predict(ct["run"], *dicoms, "-o", tmp_path / "d", "--device", "cpu", "-q"))
    preparation = lesionpaste_contract(ct["run"]).preparation
    for z, dicom in enumerate(dicoms):  # slice z of the volume is the DICOM slice, to the pixel
        assert np.array_equal(
            preparation.prepare(tmp_path / "vol.nii.gz", z).image, preparation.prepare(dicom).image
        )
    volume_rows, dicom_rows = predictions(tmp_path / "v"), predictions(tmp_path / "d")
    assert [r["id"] for r in volume_rows] == ["vol_z000", "vol_z001", "vol_z002"]
    assert [r["slice"] for r in volume_rows] == ["0", "1", "2"]
    for v, d in zip(volume_rows, dicom_rows):
        assert abs(float(v["score"]) - float(d["score"])) <= 1e-6


def test_an_evaluation_without_a_figure_travels_as_null(ct, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(ct["run"], run)
    ok(lp_synth("prep", "--images", ct["tests"], "--label", "0", "--bank", ct["bank"],
                "--like", ct["root"] / "twins", "-o", tmp_path / "ev", "-q"))  # fmt: skip
    ok(lp_eval(run, tmp_path / "ev", "-o", tmp_path / "eval", "--device", "cpu", "-q"))
    recorded = json.loads((run / "evaluation.json").read_text())  # strict JSON: no NaN
    sensitivity = recorded["synthetic_thresholds"]["pass_95"]["sensitivity"]
    assert sensitivity is None  # no anomalous image: no sensitivity
    assert "sensitivity n/a" in (run / "README.md").read_text()
    pytest.importorskip("onnxruntime")
    ok(lp_export(run, "-o", tmp_path / "x", "-q"))
    assert json.loads((tmp_path / "x" / "model.json").read_text())["evaluation"] == recorded


@pytest.mark.mutation
def test_predict_in_batches_equals_scoring_everything_at_once(tmp_path):
    """Detector.predict prepares and scores a batch at a time; the result is the whole's."""
    from lesionpaste.contract import InputContract, Preparation
    from lesionpaste.train.deploy.detector import BATCH, Detector
    from tests.conftest import synthetic_fundus, write_rgb

    paths = [write_rgb(tmp_path / f"{i:03d}.png", synthetic_fundus(seed=i)) for i in range(70)]
    preparation = Preparation("fundus", {"name": "none"}, 32)

    def scorer(images: np.ndarray):  # a stand-in model: the mean brightness, in [0, 1]
        return images.reshape(len(images), -1).mean(axis=1) / 255, None

    means = scorer(np.stack([preparation.prepare(p).image for p in paths]))[0]
    thresholds = {"pass_95": float(np.quantile(means, 0.7)), "pass_90": float(np.median(means))}
    contract = InputContract(preparation, 32, (0.5,) * 3, (0.5,) * 3, thresholds=thresholds,
                             n_normals=10)  # fmt: skip

    detector = Detector(contract, scorer, tmp_path, "run", "0" * 64)
    result = detector.predict(paths)
    whole = detector.score(np.stack([preparation.prepare(p).image for p in paths]))
    assert len(paths) > 2 * BATCH and np.array_equal(result.scores, whole.scores)
    assert len(set(result.scores.round(6))) > 10  # the images do score differently
    for name, t in contract.thresholds.items():
        assert np.array_equal(result.flagged[name], whole.scores > t)
        assert 0 < result.flagged[name].sum() < len(paths)


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"image_score": "best"}', "no known image_score"),
        ('{"image_score": "map_max", "pixel_threshold": 1e400}', "pixel_threshold is inf"),
        ('{"image_score": "map_max", "pixel_threshold": "low"}', "pixel_threshold is 'low'"),
        ("[" * 200_000 + "]" * 200_000, "nested too deeply"),
    ],
)
def test_a_damaged_maps_json_is_refused_in_one_line(mapped_run, fundus, tmp_path, text, expected):
    run = tmp_path / "run"
    shutil.copytree(mapped_run, run)
    (run / "contract.json").unlink()  # the contract is then made from maps.json (with --like)
    (run / "maps.json").write_text(text)
    r = lp_predict(run, fundus["tests"], "-o", tmp_path / "p", "--like", fundus["twins"],
                   "--device", "cpu")  # fmt: skip
    one_error(r, expected)
    assert "maps.json" in r.stderr
    r = lp_eval(run, fundus["root"] / "evalset", "-o", tmp_path / "e", "--device", "cpu")
    one_error(r, expected)


# ---- one chunk of lp-predict, with a stand-in scorer (fast: run against each mutant)


@pytest.mark.mutation
def test_lp_predict_scores_a_chunk_of_several_sizes_with_each_images_own_map(tmp_path):
    """``lp-predict``'s chunk under a ``--size 0`` map run: each run of one shape is one batch,
    and each row gets its own image's score, flags and map (maps of two sizes in one chunk)."""
    from lesionpaste.contract import InputContract, Preparation
    from lesionpaste.train.deploy.detector import Detector
    from lesionpaste.train.deploy.predict import Outcome, _score_chunk
    from lesionpaste.train.deploy.predict_inputs import Item
    from tests.test_detector import SOURCE

    made = InputContract(Preparation("fundus", {"name": "none"}, 0), 32, (0.5,) * 3, (0.5,) * 3,
                         thresholds={"pass_95": 0.5})  # fmt: skip
    sides = [8, 8, 12, None, 8]  # None: a file that could not be prepared
    images = [None if s is None else np.full((s, s, 3), 40 * k, np.uint8)
              for k, s in enumerate(sides)]  # fmt: skip
    seen = []

    def scorer(batch):
        seen.append(batch.shape[:2])
        prob = batch[:, 0, 0, 0] / 255.0
        return prob, np.repeat(prob[:, None, None], batch.shape[1] // 4, 1).repeat(2, 2)

    found = Detector(made, scorer, SOURCE, "run", "ab" * 32)
    chunk = [Item(f"{k}.png", tmp_path / f"{k}.png", str(k)) for k in range(len(sides))]
    outcomes = [Outcome(image, "", "" if image is not None else "unreadable") for image in images]
    index = {item.key: k for k, item in enumerate(chunk)}
    rows = _score_chunk(found, chunk, outcomes, index, tmp_path, [], strict=False)
    assert seen == [(2, 8), (1, 12), (1, 8)]
    assert [r["status"] for r in rows] == ["scored"] * 3 + ["skipped", "scored"]
    assert [r["score"] for r in rows] == [repr(40 * k / 255.0) if s else "" for k, s in
                                          enumerate(sides)]  # fmt: skip
    assert [r["flagged_pass_95"] for r in rows] == [0, 0, 0, "", 1]  # 160 / 255 > 0.5
    for k, row in enumerate(rows):
        assert bool(row["map"]) == (sides[k] is not None)
        assert row["map"] == "" or (tmp_path / row["map"]).is_file()


@pytest.mark.mutation
def test_a_chunk_where_no_image_could_be_prepared_scores_nothing(tmp_path):
    from lesionpaste.train.deploy.predict import Outcome, _score_chunk
    from lesionpaste.train.deploy.predict_inputs import Item
    from tests.test_detector import TableScorer, detector

    scorer = TableScorer([0.5])
    chunk = [Item(f"{k}.png", tmp_path / f"{k}.png", str(k)) for k in range(2)]
    outcomes = [Outcome(None, "", "unreadable")] * 2
    index = {item.key: k for k, item in enumerate(chunk)}
    rows = _score_chunk(detector(scorer), chunk, outcomes, index, tmp_path, [], strict=False)
    assert [(r["status"], r["reason"], r["score"]) for r in rows] == [
        ("skipped", "unreadable", "")
    ] * 2
    assert scorer.batches == [] and detector(scorer).score_by_shape([]) == []
