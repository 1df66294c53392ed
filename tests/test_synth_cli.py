"""lp-synth end to end: datasets, determinism, resume, safety, prep, verify, preview."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from lesionpaste.files import output_lock
from tests.conftest import Result, shared
from tests.synth_fixtures import make_fundus_bank, make_normals, tree_bytes


@pytest.fixture
def lp_synth(monkeypatch):
    from lesionpaste.synth.cli import cli

    for name in ("LP_BANK", "LP_NORMALS", "LP_CONFIG"):
        monkeypatch.delenv(name, raising=False)

    def run(*args, env=None) -> Result:
        r = CliRunner().invoke(cli, [str(a) for a in args], prog_name="lp-synth", env=env)
        if r.exception and not isinstance(r.exception, SystemExit):
            raise r.exception
        return Result(r.exit_code, r.stdout, r.stderr)

    return run


@pytest.fixture(scope="module")
def bank(tmp_path_factory) -> Path:
    return make_fundus_bank(tmp_path_factory.mktemp("bank") / "fundus.h5")


@pytest.fixture(scope="module")
def normals(tmp_path_factory) -> Path:
    return make_normals(tmp_path_factory.mktemp("normals"), 24)


def synth_args(bank, normals, out, *extra):
    return ["--bank", bank, "--normals", normals, "--out", out, "--size", "64", "-q", *extra]


def rows(dataset: Path) -> list[dict]:
    with open(dataset / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_a_synthetic_dataset_is_complete_and_verifiable(lp_synth, bank, normals, tmp_path):
    out = tmp_path / "ds"
    r = lp_synth(*synth_args(bank, normals, out, "--ratios", "0.8,0.1,0.05,0.05"))
    assert r.code == 0, r.stderr
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["kind"] == "synthetic" and meta["schema_version"] == 1
    assert meta["counts"]["normal"] == meta["counts"]["anomalous"] == 24
    assert meta["config"]["lambda"] == [0.5, 0.8] and meta["config"]["size"] == 64
    assert meta["bank"]["sha256"] and meta["bank"]["lesion_types"] == ["MA", "HE", "EX", "SE"]
    assert "--out" not in meta["command"] and "--ratios 0.8,0.1,0.05,0.05" in meta["command"]
    manifest = rows(out)
    assert list(manifest[0]) == [
        "path",
        "label",
        "twin_id",
        "tier",
        "n_lesions",
        "mask_path",
        "sha256",
    ]
    assert len(manifest) == 48 and {r["label"] for r in manifest} == {"0", "1"}
    pastes = [json.loads(line) for line in (out / "pastes.jsonl").read_text().splitlines()]
    assert len(pastes) == 24 and all(p["pastes"] for p in pastes)
    assert {"lesion", "y", "x", "scale", "angle", "lambda"} <= set(pastes[0]["pastes"][0])
    for normal, twin in zip(manifest[::2], manifest[1::2]):
        assert normal["twin_id"] == twin["twin_id"]
        a, b = read_rgb(out / normal["path"]), read_rgb(out / twin["path"])
        mask = cv2.imread(str(out / twin["mask_path"]), cv2.IMREAD_GRAYSCALE) > 0
        assert a.shape == (64, 64, 3)
        np.testing.assert_array_equal(a[~mask], b[~mask])
        assert int(twin["n_lesions"]) >= 1
    assert "CC0" in (out / "README.md").read_text()
    assert lp_synth("verify", out).code == 0
    assert not list(tmp_path.glob(".ds*"))  # no work directory or lock left behind


def test_any_number_of_workers_and_the_dask_backend_give_identical_bytes(
    lp_synth, bank, normals, tmp_path
):
    one, two = tmp_path / "j1", tmp_path / "j2"
    assert lp_synth(*synth_args(bank, normals, one, "-j", "1")).code == 0
    assert lp_synth(*synth_args(bank, normals, two, "-j", "2")).code == 0
    assert tree_bytes(one) == tree_bytes(two)
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        r = lp_synth(
            *synth_args(
                bank,
                normals,
                tmp_path / "dask",
                "--backend",
                "dask",
                "--scheduler",
                cluster.scheduler_address,
            )
        )
    assert r.code == 0, r.stderr
    assert tree_bytes(tmp_path / "dask") == tree_bytes(one)


def test_a_killed_run_resumes_to_exactly_the_uninterrupted_dataset(bank, tmp_path):
    normals = make_normals(tmp_path / "many", 48)
    args = [
        sys.executable,
        "-c",
        "from lesionpaste.synth.cli import main; main()",
        *map(str, synth_args(bank, normals, tmp_path / "killed", "--size", "160")),
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    records = tmp_path / ".killed.partial" / "records"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(records.glob("*.json"))) < 8:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(records.glob("*.json")))
    assert 8 <= done_before < 48, "the run must be killed part-way"
    assert not (tmp_path / "killed").exists()  # nothing under the final name
    # a file being written at the kill stays behind under its temporary name, never a final one
    (records.parent / "masks").mkdir(exist_ok=True)
    (records.parent / "masks" / ".n047.png.999999.tmp").write_bytes(b"")
    again = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    clean = subprocess.run(
        [*args[:3], *map(str, synth_args(bank, normals, tmp_path / "clean", "--size", "160"))],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert clean.returncode == 0, clean.stderr
    assert tree_bytes(tmp_path / "killed") == tree_bytes(tmp_path / "clean")


def test_a_second_run_on_the_same_output_is_refused_while_one_runs(
    lp_synth, bank, normals, tmp_path
):
    out = tmp_path / "ds"
    with output_lock(out, "lp-synth"):
        r = lp_synth(*synth_args(bank, normals, out))
    assert r.code != 0 and "another lp-synth run" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()
    assert lp_synth(*synth_args(bank, normals, out)).code == 0  # the lock died with its holder


def test_an_existing_dataset_needs_overwrite(lp_synth, bank, normals, tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    r = lp_synth(*synth_args(bank, normals, out))
    assert r.code != 0 and "already exists" in r.stderr
    assert (out / "mine.txt").read_text() == "keep me"
    r = lp_synth(*synth_args(bank, normals, out, "--overwrite"))  # not an earlier dataset
    assert r.code != 0 and "only an earlier output" in r.stderr
    assert (out / "mine.txt").read_text() == "keep me" and not (out / "dataset.json").exists()
    (out / "mine.txt").unlink()  # an empty folder may be written into
    assert lp_synth(*synth_args(bank, normals, out, "--overwrite")).code == 0
    assert lp_synth(*synth_args(bank, normals, out, "--overwrite", "--seed", "2")).code == 0
    assert (out / "dataset.json").exists()


def test_an_unreadable_normal_is_skipped_and_listed_unless_strict(lp_synth, bank, tmp_path):
    normals = make_normals(tmp_path / "n", 5)
    (normals / "n002.png").write_bytes(b"not a png")
    r = lp_synth(*synth_args(bank, normals, tmp_path / "ds"))
    assert r.code == 0, r.stderr
    meta = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert meta["counts"]["normal"] == 4
    assert [s["id"] for s in meta["skipped"]] == ["n002"] and "n002.png" in meta["skipped"][0][
        "reason"
    ]
    assert "skipped n002" in r.stderr
    strict = lp_synth(*synth_args(bank, normals, tmp_path / "strict", "--strict"))
    assert strict.code != 0 and "n002.png" in strict.stderr and "Traceback" not in strict.stderr
    assert not (tmp_path / "strict").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--ratios", "0.9,0.2,0,0"], "sum to 1"),
        (["--ratios", "1"], "1 value(s) given"),
        (["--lambda", "1.5"], "--lambda"),
        (["--size", "-3"], "--size"),
        (["--lesion-scale", "0"], "--lesion-scale"),
        (["--edge-blur", "-1"], "--edge-blur"),
    ],
)
def test_bad_options_get_one_clear_line(lp_synth, bank, normals, tmp_path, extra, message):
    r = lp_synth(*synth_args(bank, normals, tmp_path / "ds", *extra))
    assert r.code != 0 and "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and message in errors[0]
    assert not (tmp_path / "ds").exists()


def test_bank_from_the_banks_folder_or_a_clear_error(lp_synth, bank, normals, tmp_path):
    r = lp_synth("--normals", normals, "-q", "--size", "64")
    assert r.code != 0 and "no bank given" in r.stderr
    Path("banks").mkdir()
    Path("banks/only.h5").write_bytes(bank.read_bytes())
    r = lp_synth("--normals", normals, "-q", "--size", "64")  # after lp-bank build, as a user would
    assert r.code == 0, r.stderr
    assert Path("datasets/only-synth/dataset.json").exists()
    Path("banks/other.h5").write_bytes(bank.read_bytes())
    r = lp_synth("--normals", normals, "-q", "--size", "64", "--out", tmp_path / "x")
    assert r.code != 0 and "several banks" in r.stderr
    Path("notabank.h5").write_text("hello")
    r = lp_synth("--bank", "notabank.h5", "--normals", normals, "--out", tmp_path / "y")
    assert r.code != 0 and "not a lesion bank" in r.stderr


def test_a_tier_whose_types_the_bank_lacks_is_named(lp_synth, tiny_idrid, normals, tmp_path):
    from lesionpaste.bank_builder.cli import cli as bank_cli

    out = tmp_path / "b.h5"
    assert (
        CliRunner()
        .invoke(bank_cli, ["build", "idrid_07", "--root", str(tiny_idrid), "-o", str(out), "-q"])
        .exit_code
        == 0
    )
    r = lp_synth(*synth_args(out, normals, tmp_path / "ds"))
    assert r.code != 0 and "SE" in r.stderr and "tier MA+HE+SE" in r.stderr
    assert lp_synth(*synth_args(out, normals, tmp_path / "ds", "--ratios", "0.5,0.5,0,0")).code == 0


def test_verify_catches_tampering_and_hostile_paths(lp_synth, bank, normals, tmp_path):
    out = tmp_path / "ds"
    assert lp_synth(*synth_args(bank, normals, out)).code == 0
    first = rows(out)[1]["path"]
    data = bytearray((out / first).read_bytes())
    data[-20] ^= 0xFF
    (out / first).write_bytes(bytes(data))
    r = lp_synth("verify", out)
    assert r.code != 0 and first in r.stderr and "sha256" in r.stderr
    for hostile in ("/etc/passwd", "../outside.png", "images/../../x.png"):
        text = (out / "manifest.csv").read_text().replace(first, hostile, 1)
        (out / "manifest.csv").write_text(text)
        r = lp_synth("verify", out)
        assert r.code != 0 and "unsafe path" in r.stderr
        (out / "manifest.csv").write_text(text.replace(hostile, first, 1))
    os.symlink("/etc/hostname", out / "images" / "link.png")
    text = (out / "manifest.csv").read_text().replace(first, "images/link.png", 1)
    (out / "manifest.csv").write_text(text)
    r = lp_synth("verify", out)
    assert r.code != 0 and "outside" in r.stderr


def test_verify_refuses_what_is_not_a_dataset(lp_synth, tmp_path):
    (tmp_path / "d").mkdir()
    r = lp_synth("verify", tmp_path / "d")
    assert r.code != 0 and "no dataset.json" in r.stderr
    (tmp_path / "d" / "dataset.json").write_text(
        '{"format": "lesionpaste-dataset", "schema_version": 9}'
    )
    assert "schema version 9" in lp_synth("verify", tmp_path / "d").stderr


def test_verify_names_the_dataset_once(lp_synth, bank, normals, tmp_path):
    out = tmp_path / "ds"
    assert lp_synth(*synth_args(bank, normals, out)).code == 0
    (out / "manifest.csv").unlink()
    r = lp_synth("verify", out)
    assert r.code == 1 and r.stderr.strip() == f"lp-synth: {out}: no manifest.csv"


@pytest.mark.parametrize(
    "before, sub, named",
    [
        (["--ratios", "garbage"], ["verify", "D"], "--ratios is an option"),
        (["--seed", "2", "--size", "64"], ["verify", "D"], "--size, --seed are options"),
        (["-o", "x"], ["prep", "--images", "D", "-o", "y"], "--out is an option"),
        (["--no-flip"], ["preview", "D", "-o", "p.png"], "--flip/--no-flip is an option"),
    ],
)
def test_dataset_options_before_a_subcommand_are_refused_not_ignored(
    lp_synth, tmp_path, before, sub, named
):
    sub = [str(tmp_path) if a == "D" else a for a in sub]
    r = lp_synth(*before, *sub)
    assert r.code == 1 and r.stderr.count("\n") == 1
    assert named in r.stderr and f"not for {sub[0]}" in r.stderr
    assert list((tmp_path / "cwd").iterdir()) == []  # nothing was written


def test_prep_makes_an_evaluation_set_preprocessed_like_the_twins(lp_synth, bank, tmp_path):
    images = shared("eyepacs256", "images")
    labels = shared("eyepacs256", "labels.csv")
    train = tmp_path / "train"
    r = lp_synth(
        "--bank",
        bank,
        "--normals",
        labels,
        "--grade",
        "0",
        "--limit",
        "6",
        "--out",
        train,
        "--size",
        "128",
        "-q",
    )
    assert r.code == 0, r.stderr
    evalset = tmp_path / "eval"
    r = lp_synth(
        "prep",
        "--images",
        images,
        "--labels",
        labels,
        "--bank",
        bank,
        "--like",
        train,
        "--limit",
        "40",
        "--out",
        evalset,
        "-q",
    )
    assert r.code == 0, r.stderr
    meta = json.loads((evalset / "dataset.json").read_text())
    assert meta["kind"] == "evaluation" and meta["config"]["size"] == 128
    with open(labels) as fh:
        grades = {row["image"]: int(row["level"]) for row in csv.DictReader(fh)}
    manifest = rows(evalset)
    assert len(manifest) == 40
    assert all(int(row["label"]) == grades[row["twin_id"]] for row in manifest)
    shared_ids = {r["twin_id"] for r in rows(train)} & {r["twin_id"] for r in manifest}
    assert shared_ids
    for image_id in shared_ids:  # the same image, prepared for training or for evaluation
        assert (evalset / f"images/{image_id}.png").read_bytes() == (
            train / f"images/normal/{image_id}.png"
        ).read_bytes()
    assert lp_synth("verify", evalset).code == 0


def test_preview_draws_the_twins(lp_synth, bank, normals, tmp_path):
    out = tmp_path / "ds"
    assert lp_synth(*synth_args(bank, normals, out)).code == 0
    r = lp_synth("preview", out, "-o", tmp_path / "grid.png", "--count", "4")
    assert r.code == 0, r.stderr
    grid = cv2.imread(str(tmp_path / "grid.png"))
    assert grid.shape[0] >= 2 * 512 and grid.shape[1] >= 2 * (2 * 512)
    assert (grid == (0, 255, 0)).all(axis=2).any()  # the pasted masks are outlined


def _counts_by_tier(dataset: Path) -> dict[str, list[int]]:
    meta = json.loads((dataset / "dataset.json").read_text())
    names = ["+".join(t["types"]) for t in meta["config"]["tiers"]]
    out: dict[str, list[int]] = {}
    for row in rows(dataset):
        if row["label"] == "1":
            out.setdefault(names[int(row["tier"]) - 1], []).append(int(row["n_lesions"]))
    return out


def test_loguniform_counts_are_recorded_and_tabled_in_the_card_and_preview(
    lp_synth, bank, normals, tmp_path
):
    """--count loguniform --count-range: every twin within the range, the choice in
    dataset.json, and each tier's count table (by the bins, and the median) in the card and
    printed by lp-synth preview, equal to the manifest's counts."""
    from lesionpaste.lesion_bins import count_histogram

    out = tmp_path / "ds"
    r = lp_synth(*synth_args(bank, normals, out, "--count", "loguniform", "--count-range",
                             "1,30", "--ratios", "0.5,0.5,0,0"))  # fmt: skip
    assert r.code == 0, r.stderr
    config = json.loads((out / "dataset.json").read_text())["config"]
    assert config["lesion_count"] == {"distribution": "loguniform", "range": [1, 30]}
    counts = _counts_by_tier(out)
    assert all(1 <= n <= 30 for c in counts.values() for n in c) and len(counts) == 2
    card = (out / "README.md").read_text()
    preview = lp_synth("preview", out, "-o", tmp_path / "grid.png")
    assert preview.code == 0, preview.stderr
    for tier, found in counts.items():
        bins = count_histogram(found)
        row = (f"| {tier} | {bins['1-5']} | {bins['6-20']} | {bins['21-50']} | {bins['>50']} "
               f"| {np.median(found):g} |")  # fmt: skip
        assert row in card.splitlines() and row in preview.stdout.splitlines()
    assert "| tier | 1-5 lesions | 6-20 lesions | 21-50 lesions | >50 lesions | median |" in card


@pytest.mark.parametrize(
    "args, words",
    [
        (["--count", "normal"], "Invalid value for '--count'"),
        (["--count-range", "5"], "--count-range '5': expected LOW,HIGH whole numbers"),
        (["--count-range", "a,b"], "--count-range 'a,b': expected LOW,HIGH whole numbers"),
        (["--count-range", "9,3"], "--count-range 9,3: expected LOW,HIGH whole numbers"),
        (["--count-range", "0,3"], "1 <= LOW <= HIGH"),
        (["--method", "cutpaste", "--count", "loguniform"], "apply to --method lesionpaste"),
    ],
)
def test_bad_count_options_are_one_line_and_write_nothing(
    lp_synth, bank, normals, tmp_path, args, words
):
    r = lp_synth(*synth_args(bank, normals, tmp_path / "ds", *args))
    assert r.code != 0 and "Traceback" not in r.stderr and words in r.stderr, r.stderr
    assert not (tmp_path / "ds").exists()


def test_real_full_resolution_and_chase_normals(lp_synth, bank, tmp_path):
    labels = shared("eyepacs_fullres", "labels.csv")
    r = lp_synth(
        "--bank",
        bank,
        "--normals",
        labels,
        "--grade",
        "0",
        "--limit",
        "3",
        "--out",
        tmp_path / "full",
        "--size",
        "256",
        "-q",
    )
    assert r.code == 0, r.stderr
    pastes = [
        json.loads(line) for line in (tmp_path / "full/pastes.jsonl").read_text().splitlines()
    ]
    source_radius = json.loads((tmp_path / "full/dataset.json").read_text())["bank"]["sources"][0][
        "fov"
    ]["radius"]
    for record in pastes:  # output radius 128 px: lesions scaled by 128 / source radius
        for paste in record["pastes"]:
            assert 0.74 * 128 / source_radius <= paste["scale"] <= 1.26 * 128 / source_radius
    r = lp_synth(
        "--bank",
        bank,
        "--normals",
        shared("chase_db1"),
        "--limit",
        "4",
        "--out",
        tmp_path / "chase",
        "--size",
        "128",
        "-q",
        "--match-colour",
    )
    assert r.code == 0, r.stderr
    assert (
        json.loads((tmp_path / "chase/dataset.json").read_text())["config"]["match_colour"][
            "sample"
        ]
        == 4
    )


def test_ct_twins_land_in_the_lungs(lp_synth, tmp_path):
    from lesionpaste.bank_builder.cli import cli as bank_cli
    from lesionpaste.preparation import ct_region
    from lesionpaste.recipes import WindowRecipe

    dicoms = sorted(shared("ct", "tcia_dicom").glob("*.dcm"))
    mask = np.zeros((512, 512), bool)
    mask[250:262, 120:134] = True
    cv2.imwrite(str(tmp_path / "m.png"), mask.astype(np.uint8) * 255)
    r = CliRunner().invoke(
        bank_cli,
        [
            "build",
            "--image",
            str(dicoms[0]),
            "--mask",
            f"COVID={tmp_path / 'm.png'}",
            "-o",
            str(tmp_path / "ct.h5"),
        ],
    )
    assert r.exit_code == 0, r.stderr
    normals = tmp_path / "normals"
    normals.mkdir()
    for path in dicoms[1:5]:
        os.symlink(path, normals / path.name)
    out = tmp_path / "ct"
    r = lp_synth(
        "--bank", tmp_path / "ct.h5", "--normals", normals, "--out", out, "--size", "128", "-q"
    )
    assert r.code == 0, r.stderr
    for row in rows(out)[1::2]:
        twin = cv2.imread(str(out / row["path"]), cv2.IMREAD_GRAYSCALE)
        normal = cv2.imread(
            str(out / row["path"].replace("anomalous", "normal")), cv2.IMREAD_GRAYSCALE
        )
        pasted = cv2.imread(str(out / row["mask_path"]), cv2.IMREAD_GRAYSCALE) > 0
        assert twin.shape == (128, 128)
        assert not (pasted & ~ct_region(normal, WindowRecipe())).any()


def test_the_design_card_command_with_data_from_the_environment(lp_synth, bank, tmp_path):
    """After lp-bank build, `lp-synth --ratios 0.8,0.1,0.05,0.05` works as written, the normals
    from $LP_NORMALS (a label file: grade 0 by default), the output in datasets/."""
    labels = tmp_path / "labels.csv"
    images = tmp_path / "images"
    make_normals(images, 6)
    labels.write_text("image,level\n" + "".join(f"n{i:03d},{i % 2}\n" for i in range(6)))
    Path("banks").mkdir()
    Path("banks/idrid_48.h5").write_bytes(bank.read_bytes())
    r = lp_synth("--ratios", "0.8,0.1,0.05,0.05", env={"LP_NORMALS": str(labels)})
    assert r.code == 0, r.stderr
    meta = json.loads(Path("datasets/idrid_48-synth/dataset.json").read_text())
    assert meta["counts"]["normal"] == 3  # grade 0 only
    assert meta["command"] == "lp-synth --ratios 0.8,0.1,0.05,0.05"


def test_eyeq_label_files_default_to_good_quality_grade_0(tmp_path):
    from lesionpaste.synth.inputs.locations import resolve_normals

    make_normals(tmp_path / "images", 4)
    labels = tmp_path / "Label_EyeQ_train.csv"
    labels.write_text(
        ",image,quality,DR_grade\n0,n000.png,0,0\n1,n001.png,1,0\n2,n002.png,0,2\n3,n003.png,0,0\n"
    )
    items, _ = resolve_normals(str(labels), None, (), None)
    assert [i.image_id for i in items] == ["n000", "n003"]
    items, _ = resolve_normals(str(labels), None, (0, 2), "good")
    assert [i.image_id for i in items] == ["n000", "n002", "n003"]


@pytest.mark.parametrize(
    "normals_arg, message",
    [("nowhere", "no such folder"), ("labels.csv", "unknown label file"), ("empty", "no images")],
)
def test_bad_normals_get_one_clear_line(lp_synth, bank, tmp_path, normals_arg, message):
    (tmp_path / "labels.csv").write_text("file,grade\na.png,0\n")
    (tmp_path / "empty").mkdir()
    r = lp_synth("--bank", bank, "--normals", tmp_path / normals_arg, "--out", tmp_path / "ds")
    assert r.code != 0 and "Traceback" not in r.stderr and message in r.stderr
    assert len([line for line in r.stderr.splitlines() if "error" in line]) == 1
    assert not (tmp_path / "ds").exists()


def test_train_and_rest_splits_partition_a_label_file(lp_synth, bank, tmp_path):
    """--split train takes a fixed fraction of the normals; prep --split rest takes everything
    else (held-out normals and every abnormal image); together they cover the file once."""
    labels = tmp_path / "labels.csv"
    images = make_normals(tmp_path / "images", 20)
    labels.write_text(
        "image,level\n" + "".join(f"n{i:03d},{0 if i < 14 else 2}\n" for i in range(20))
    )
    r = lp_synth(
        "--bank",
        bank,
        "--normals",
        labels,
        "--split",
        "train",
        "--split-fraction",
        "0.6",
        "--out",
        tmp_path / "train",
        "--size",
        "64",
        "-q",
    )
    assert r.code == 0, r.stderr
    r = lp_synth(
        "prep",
        "--images",
        images,
        "--labels",
        labels,
        "--bank",
        bank,
        "--split",
        "rest",
        "--split-fraction",
        "0.6",
        "--size",
        "64",
        "--out",
        tmp_path / "rest",
        "-q",
    )
    assert r.code == 0, r.stderr
    train_ids = {row["twin_id"] for row in rows(tmp_path / "train")}
    rest = {row["twin_id"]: int(row["label"]) for row in rows(tmp_path / "rest")}
    assert not train_ids & set(rest) and len(train_ids) + len(rest) == 20
    assert all(int(i[1:]) < 14 for i in train_ids)  # only normals are trained on
    assert sum(1 for label in rest.values() if label == 2) == 6  # every abnormal is held out
    from lesionpaste.synth.inputs.normals import in_training_split

    normals = {row["twin_id"] for row in rows(tmp_path / "train")} | {
        i for i, label in rest.items() if label == 0
    }
    assert train_ids == {i for i in normals if in_training_split(i, 0.6, 0)}  # the hash rule


def test_cutpaste_baseline_pastes_a_rectangle_of_the_image_itself(
    lp_synth, bank, normals, tmp_path
):
    out = tmp_path / "cp"
    r = lp_synth(*synth_args(bank, normals, out, "--method", "cutpaste"))
    assert r.code == 0, r.stderr
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["config"]["method"] == "cutpaste" and meta["config"]["lambda"] is None
    for line in (out / "pastes.jsonl").read_text().splitlines():
        record = json.loads(line)
        (paste,) = record["pastes"]
        normal = read_rgb(out / f"images/normal/{record['twin_id']}.png")
        twin = read_rgb(out / record["path"])
        y, x, h, w = paste["y"], paste["x"], paste["h"], paste["w"]
        sy, sx = paste["from_y"], paste["from_x"]
        np.testing.assert_array_equal(twin[y : y + h, x : x + w], normal[sy : sy + h, sx : sx + w])
        outside = np.ones(normal.shape[:2], bool)
        outside[y : y + h, x : x + w] = False
        np.testing.assert_array_equal(twin[outside], normal[outside])
        assert 0.02 * 0.5 <= h * w / (64 * 64) <= 0.15
    assert lp_synth("verify", out).code == 0


def test_hu_normals_with_a_bank_cut_from_8_bit_slices_need_a_window(lp_synth, tmp_path):
    """The COVID slices (8-bit, already windowed) as lesion source, DICOM slices in HU as
    normals: the normals' window is asked for, recorded, and reused by prep --like."""
    from lesionpaste.bank_builder.cli import cli as bank_cli
    from lesionpaste.ct_files import read_dicom_hu
    from lesionpaste.preparation import ct_region
    from lesionpaste.recipes import WindowRecipe, window_hu

    r = CliRunner().invoke(
        bank_cli,
        [
            "build",
            "--image",
            str(shared("ct", "covid_seg", "images", "50.jpg")),
            "--mask",
            f"COVID={shared('ct', 'covid_seg', 'masks', '50.png')}",
            "--pixel-spacing",
            "0.75",
            "--modality",
            "ct",
            "-o",
            str(tmp_path / "covid.h5"),
        ],
    )
    assert r.exit_code == 0, r.stderr
    dicoms = sorted(shared("ct", "tcia_dicom").glob("*.dcm"))[:3]
    normals = tmp_path / "normals"
    normals.mkdir()
    for path in dicoms:
        os.symlink(path, normals / path.name)
    args = ["--bank", tmp_path / "covid.h5", "--normals", normals, "--size", "128", "-q"]
    r = lp_synth(*args, "--out", tmp_path / "no-window", "--strict")
    assert r.code != 0 and "--window LEVEL,WIDTH" in r.stderr and "Traceback" not in r.stderr
    out = tmp_path / "ct"
    assert lp_synth(*args, "--out", out, "--window", "-300,1400").code == 0
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["config"]["normals_window"] == [-300.0, 1400.0]
    recipe = WindowRecipe(level=-300.0, width=1400.0)
    for row in rows(out)[::2]:
        hu, _, _ = read_dicom_hu(normals / (row["twin_id"] + ".dcm"))
        expected = cv2.resize(window_hu(hu, recipe), (128, 128), interpolation=cv2.INTER_AREA)
        normal = cv2.imread(str(out / row["path"]), cv2.IMREAD_GRAYSCALE)
        np.testing.assert_array_equal(normal, expected)
    for row in rows(out)[1::2]:
        pasted = cv2.imread(str(out / row["mask_path"]), cv2.IMREAD_GRAYSCALE) > 0
        normal = cv2.imread(str(out / row["path"].replace("anomalous", "normal")), 0)
        assert pasted.any() and not (pasted & ~ct_region(normal, recipe)).any()
    evaluation = tmp_path / "eval"
    r = lp_synth(
        "prep",
        "--images",
        normals,
        "--label",
        "0",
        "--bank",
        tmp_path / "covid.h5",
        "--like",
        out,
        "--out",
        evaluation,
        "-q",
    )
    assert r.code == 0, r.stderr
    first = rows(evaluation)[0]
    assert np.array_equal(
        cv2.imread(str(evaluation / first["path"]), 0),
        cv2.imread(str(out / f"images/normal/{first['twin_id']}.png"), 0),
    )
    r = lp_synth(
        "--bank",
        tmp_path / "covid.h5",
        "--normals",
        normals,
        "--window",
        "-300,0",
        "--out",
        tmp_path / "bad",
        "-q",
    )
    assert r.code != 0 and "width must be positive" in r.stderr


def test_an_evaluation_set_may_mix_hu_slices_and_8_bit_slices(lp_synth, tmp_path):
    """prep with a window: DICOM slices are windowed, 8-bit slices taken as windowed already."""
    from lesionpaste.bank_builder.cli import cli as bank_cli

    jpeg = shared("ct", "covid_seg", "images", "50.jpg")
    r = CliRunner().invoke(
        bank_cli,
        [
            "build",
            "--image",
            str(jpeg),
            "--mask",
            f"COVID={shared('ct', 'covid_seg', 'masks', '50.png')}",
            "--modality",
            "ct",
            "-o",
            str(tmp_path / "covid.h5"),
        ],
    )
    assert r.exit_code == 0, r.stderr
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    dicom = min(shared("ct", "tcia_dicom").glob("*.dcm"))
    os.symlink(dicom, mixed / dicom.name)
    os.symlink(shared("ct", "covid_seg", "images", "20.jpg"), mixed / "20.jpg")
    (tmp_path / "labels.csv").write_text(f"image,level\n{dicom.stem},0\n20,1\n")
    out = tmp_path / "eval"

    def prep(*extra):
        return lp_synth(
            "prep",
            "--images",
            mixed,
            "--labels",
            tmp_path / "labels.csv",
            "--bank",
            tmp_path / "covid.h5",
            "--window",
            "-300,1400",
            "-q",
            *extra,
        )

    r = prep("--size", "64", "--out", out)
    assert r.code == 0, r.stderr
    by_label = {row["label"]: row for row in rows(out)}
    grey = cv2.imread(str(mixed / "20.jpg"), cv2.IMREAD_GRAYSCALE)
    expected = cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(cv2.imread(str(out / by_label["1"]["path"]), 0), expected)
    assert cv2.imread(str(out / by_label["0"]["path"]), 0).shape == (64, 64)
    # a 16-bit export (HU + 1024) is refused, not scaled into a near-black picture
    cv2.imwrite(str(mixed / "wide.png"), np.full((64, 64), 1024, np.uint16))
    (tmp_path / "labels.csv").write_text("image,level\nwide,0\n")
    r = prep("--out", tmp_path / "e2", "--strict")
    assert r.code != 0 and "16-bit slice" in r.stderr


def _bank_from(*args) -> None:
    from lesionpaste.bank_builder.cli import cli as bank_cli

    r = CliRunner().invoke(bank_cli, ["build", *[str(a) for a in args], "-q"])
    assert r.exit_code == 0, r.output


def _two_image_idrid(root: Path) -> Path:
    """The tiny IDRiD tree, with IDRiD_08 a copy of IDRiD_07 (image and masks)."""
    from tests.conftest import make_tiny_idrid

    make_tiny_idrid(root)
    for path in list(root.rglob("IDRiD_07*")):
        (path.parent / path.name.replace("07", "08")).write_bytes(path.read_bytes())
    return root


def test_prep_of_an_idrid_tree_attaches_its_masks_and_leaves_the_banks_source_out(
    lp_synth, tmp_path
):
    tree = _two_image_idrid(tmp_path / "IDRiD")
    _bank_from("idrid_07", "--root", tree, "-o", tmp_path / "b.h5")
    out = tmp_path / "ev"
    r = lp_synth("prep", "--images", tree, "--bank", tmp_path / "b.h5", "--size", "64", "-o", out)
    assert r.code == 0, r.stderr
    assert r.stderr.splitlines() == [
        (
            "lp-synth: warning: left out IDRiD_07: a source of the lesion bank, which an "
            "evaluation set must not hold (listed in dataset.json's skipped)"
        )
    ]
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["schema_version"] == 2 and meta["counts"]["images"] == 1
    assert meta["masks"] == {"types": ["MA", "HE", "EX"], "images_with_masks": 1,
                             "images_without_masks": 0, "source": "idrid"}  # fmt: skip
    assert [s["id"] for s in meta["skipped"]] == ["IDRiD_07"]
    assert "source of the lesion bank" in meta["skipped"][0]["reason"]
    assert set(meta["files"]) == {"README.md", "manifest.csv", "masks.jsonl"}
    (row,) = rows(out)
    assert (row["twin_id"], row["label"], row["mask_path"]) == (
        "IDRiD_08",
        "1",
        "masks/IDRiD_08.png",
    )
    (record,) = [json.loads(line) for line in (out / "masks.jsonl").read_text().splitlines()]
    assert record["mask_path"] == row["mask_path"] and sorted(record["types"]) == ["EX", "HE", "MA"]
    assert record["types"]["MA"]["path"] == "masks/MA/IDRiD_08.png"
    assert "ground-truth lesion masks" in (out / "README.md").read_text()
    assert lp_synth("verify", out).code == 0
    r = lp_synth("prep", "--images", tree, "--bank", tmp_path / "b.h5", "--size", "64",
                 "--label", "3", "-o", out, "--overwrite", "-q")  # fmt: skip
    assert r.code == 0, r.stderr
    assert rows(out)[0]["label"] == "3"


def test_prep_like_leaves_out_the_sources_of_its_bank_too(lp_synth, bank, tmp_path):
    from tests.conftest import make_tiny_idrid

    tree = make_tiny_idrid(tmp_path / "IDRiD")
    _bank_from("idrid_07", "--root", tree, "-o", tmp_path / "b.h5")
    normals = make_normals(tmp_path / "normals", 2)
    assert lp_synth(*synth_args(tmp_path / "b.h5", normals, tmp_path / "D", "--ratios",
                                "0.5,0.5,0,0")).code == 0  # fmt: skip
    folder = tmp_path / "eval-images"
    folder.mkdir()
    (folder / "IDRiD_07.jpg").write_bytes(next(tree.rglob("IDRiD_07.jpg")).read_bytes())
    (folder / "n000.png").write_bytes((normals / "n000.png").read_bytes())
    r = lp_synth("prep", "--images", folder, "--label", "0", "--bank", bank, "--like",
                 tmp_path / "D", "-o", tmp_path / "ev")  # fmt: skip
    assert r.code == 0, r.stderr
    assert "left out IDRiD_07: a source of the lesion bank" in r.stderr
    meta = json.loads((tmp_path / "ev" / "dataset.json").read_text())
    assert meta["schema_version"] == 1 and "masks" not in meta  # no masks: schema 1 as before
    assert [s["id"] for s in meta["skipped"]] == ["IDRiD_07"]
    assert [row["twin_id"] for row in rows(tmp_path / "ev")] == ["n000"]
    r = lp_synth("prep", "--images", folder, "--label", "0", "--bank", tmp_path / "b.h5",
                 "--size", "64", "-o", tmp_path / "ev2", "-q")  # fmt: skip
    assert r.code == 0 and "left out IDRiD_07" in r.stderr  # the bank's own sources, any folder


@pytest.mark.parametrize(
    "change, words",
    [
        ({"size": "abc"}, "the prepared size is 'abc', not a whole number in [0, 8192]"),
        ({"size": -5}, "the prepared size is -5, not a whole number in [0, 8192]"),
        ({"normals_window": [1]}, "dataset.json has a malformed recipe or window"),
        ({"normals_window": "x"}, "dataset.json has a malformed recipe or window"),
        ({"normals_preprocess": 7}, "dataset.json has a malformed recipe or window"),
    ],
)
def test_prep_like_refuses_a_damaged_recorded_preparation(lp_synth, bank, normals, tmp_path,
                                                          change, words):  # fmt: skip
    """A received dataset given to --like: its size, window and recipe are checked before use
    (a one-element window was an IndexError, a size of -5 was used)."""
    assert lp_synth(*synth_args(bank, normals, tmp_path / "D", "--limit", "2")).code == 0
    meta_path = tmp_path / "D" / "dataset.json"
    meta = json.loads(meta_path.read_text())
    meta["config"].update(change)
    meta_path.write_text(json.dumps(meta))
    r = lp_synth("prep", "--images", normals, "--label", "0", "--bank", bank, "--like",
                 tmp_path / "D", "-o", tmp_path / "ev")  # fmt: skip
    assert r.code == 1 and f"{tmp_path / 'D'}: {words}" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "ev").exists()


def test_prep_of_the_real_idrid_tree_gives_every_lesion_type(lp_synth, bank, tmp_path):
    out = tmp_path / "ev"
    r = lp_synth("prep", "--images", shared("idrid"), "--bank", bank, "--size", "128",
                 "--limit", "2", "-o", out, "-q")  # fmt: skip
    assert r.code == 0, r.stderr
    import lesionpaste

    data = lesionpaste.open_dataset(out)
    assert [row["twin_id"] for row in data.rows] == ["IDRiD_01", "IDRiD_02"]
    assert data.mask_types[:3] == ["MA", "HE", "EX"] and data.labels.tolist() == [1, 1]
    for i in range(2):
        union, types = data.mask(i), data.type_masks(i)
        assert union.shape == (128, 128) and {"MA", "HE", "EX"} <= set(types)
        assert all(m.any() and (union >= m).all() for m in types.values())  # MA survive at 128


def test_prep_of_covid_seg_with_its_masks_folder(lp_synth, tmp_path):
    from lesionpaste.synth.inputs.mask_resize import resize_mask

    root = shared("ct", "covid_seg")
    _bank_from("--image", root / "images" / "0.jpg", "--mask", f"COVID={root / 'masks' / '0.png'}",
               "--modality", "ct", "--preprocess", "none", "-o", tmp_path / "c.h5")  # fmt: skip
    out = tmp_path / "ev"
    r = lp_synth("prep", "--images", root, "--masks", root / "masks", "--label", "1", "--bank",
                 tmp_path / "c.h5", "--size", "64", "--limit", "3", "-o", out)  # fmt: skip
    assert r.code == 0, r.stderr
    assert "left out 0: a source of the lesion bank" in r.stderr
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["masks"] == {"types": [], "images_with_masks": 3, "images_without_masks": 0,
                             "source": "folder"}  # fmt: skip
    for row in rows(out):
        raw = cv2.imread(str(root / "masks" / f"{row['twin_id']}.png"), cv2.IMREAD_GRAYSCALE) > 0
        got = cv2.imread(str(out / row["mask_path"]), cv2.IMREAD_UNCHANGED)
        assert got.dtype == np.uint8 and set(np.unique(got)) <= {0, 255}
        np.testing.assert_array_equal(got > 0, resize_mask(raw, (64, 64)))
    assert lp_synth("verify", out).code == 0


def _eval_folder(tmp_path: Path) -> tuple[Path, Path]:
    images, masks = tmp_path / "img", tmp_path / "masks"
    make_normals(images, 3, (60, 80, 28))
    for name in ("n000", "n001"):
        write = np.zeros((60, 80), np.uint8)
        write[20:30, 30:45] = 255
        masks.mkdir(exist_ok=True)
        cv2.imwrite(str(masks / f"{name}.png"), write)
    return images, masks


def test_an_image_without_a_mask_gets_none_and_is_counted(lp_synth, bank, tmp_path):
    images, masks = _eval_folder(tmp_path)
    out = tmp_path / "ev"
    r = lp_synth("prep", "--images", images, "--masks", masks, "--label", "1", "--bank", bank,
                 "--size", "32", "-o", out, "-q")  # fmt: skip
    assert r.code == 0, r.stderr
    assert "1 of 3 images have no mask in" in r.stderr
    assert [row["mask_path"] for row in rows(out)] == ["masks/n000.png", "masks/n001.png", ""]
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["masks"]["images_with_masks"] == 2 and meta["masks"]["images_without_masks"] == 1
    assert lp_synth("verify", out).code == 0


@pytest.mark.parametrize(
    "damage, message",
    [
        ("missing", "--masks {masks}x: no such folder of masks"),
        ("size", "{masks}/n001.png: mask is 81x60 but its image n001.png is 80x60; masks must"),
        ("junk", "mask of n001: {masks}/n001.png: not a readable image"),
        ("truncated", "mask of n001: {masks}/n001.png: truncated PNG"),
    ],
)
def test_bad_masks_get_one_clear_line_and_leave_nothing(lp_synth, bank, tmp_path, damage, message):
    images, masks = _eval_folder(tmp_path)
    given = masks
    if damage == "missing":
        given = Path(f"{masks}x")
    elif damage == "size":
        cv2.imwrite(str(masks / "n001.png"), np.zeros((60, 81), np.uint8))
    elif damage == "junk":
        (masks / "n001.png").write_bytes(b"this is not a PNG file")
    else:
        data = (masks / "n001.png").read_bytes()
        (masks / "n001.png").write_bytes(data[:-12])
    out = tmp_path / "ev"
    r = lp_synth("prep", "--images", images, "--masks", given, "--label", "1", "--bank", bank,
                 "--size", "32", "-o", out, "-q", "-j", "2")  # fmt: skip
    assert r.code == 1 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[-1].startswith(f"lp-synth: error: {message.format(masks=masks)}")
    assert len([line for line in r.stderr.splitlines() if "error" in line]) == 1
    assert not out.exists() and not (tmp_path / ".ev.partial").exists()  # before any work


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--masks", "M"], "an IDRiD tree brings its own lesion masks; drop --masks"),
        (["--labels", "L"], "an IDRiD tree is labelled with --label N (default 1"),
    ],
)
def test_an_idrid_tree_takes_neither_masks_nor_a_label_file(
    lp_synth, bank, tiny_idrid, tmp_path, extra, message
):
    (tmp_path / "M").mkdir()
    (tmp_path / "L").write_text("image,level\n")
    extra = [str(tmp_path / e) if e in ("M", "L") else e for e in extra]
    r = lp_synth("prep", "--images", tiny_idrid, *extra, "--bank", bank, "-o", tmp_path / "ev")
    assert r.code == 1 and message in r.stderr and r.stderr.count("\n") == 1


def test_the_normal_eye_of_a_patient_with_an_abnormal_eye_is_held_out(lp_synth, bank, tmp_path):
    """lp-synth reads only the grade-0 rows, yet keeps out of --split train every patient of
    the label file with an abnormal eye; prep --split rest then holds both of their eyes."""
    from lesionpaste.synth.inputs.normals import in_training_split

    patients = [p for p in range(3000, 3400) if in_training_split(str(p), 0.6, 0)][:6]
    made = make_normals(tmp_path / "made", 12)
    images = tmp_path / "images"
    images.mkdir()
    lines = ["image,level"]
    for k, p in enumerate(patients):
        right = 2 if k % 2 else 0
        (made / f"n{2 * k:03d}.png").rename(images / f"{p}_left.png")
        (made / f"n{2 * k + 1:03d}.png").rename(images / f"{p}_right.png")
        lines += [f"{p}_left,0", f"{p}_right,{right}"]
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(lines) + "\n")
    common = ["--bank", bank, "--split-fraction", "0.6", "--size", "64", "-q"]
    r = lp_synth("--normals", labels, "--images", images, "--split", "train",
                 "--out", tmp_path / "train", *common)  # fmt: skip
    assert r.code == 0, r.stderr
    r = lp_synth("prep", "--images", images, "--labels", labels, "--split", "rest",
                 "--out", tmp_path / "rest", *common)  # fmt: skip
    assert r.code == 0, r.stderr
    train = {row["twin_id"] for row in rows(tmp_path / "train")}
    rest = {row["twin_id"] for row in rows(tmp_path / "rest")}
    healthy, diseased = patients[::2], patients[1::2]
    assert train == {f"{p}_{e}" for p in healthy for e in ("left", "right")}
    assert rest == {f"{p}_{e}" for p in diseased for e in ("left", "right")}


def test_a_work_folder_killed_before_its_configuration_or_while_publishing_is_started_afresh(
    lp_synth, tmp_path
):
    bank = make_fundus_bank(tmp_path / "bank.h5")
    normals = make_normals(tmp_path / "normals", 4)
    work, out = tmp_path / ".ds.partial", tmp_path / "ds"
    for leftover in ({}, {"dataset.json": "{}", "manifest.csv": "path\n"}):  # start; publish
        shutil.rmtree(out, ignore_errors=True)
        work.mkdir()
        for name, text in leftover.items():
            (work / name).write_text(text, encoding="utf-8")
        r = lp_synth("--bank", bank, "--normals", normals, "--out", out, "--size", "64", "-q")
        assert r.code == 0, r.stderr
        assert not work.exists()
        assert json.loads((out / "dataset.json").read_text())["counts"]["images"] == 8


def test_a_work_folder_with_records_but_no_configuration_is_refused_not_trusted(lp_synth, tmp_path):
    bank = make_fundus_bank(tmp_path / "bank.h5")
    normals = make_normals(tmp_path / "normals", 4)
    records = tmp_path / ".ds.partial" / "records"
    records.mkdir(parents=True)
    (records / "a.json").write_text("{}", encoding="utf-8")
    r = lp_synth("--bank", bank, "--normals", normals, "--out", tmp_path / "ds", "--size", "64")
    assert r.code == 1
    assert "holds an interrupted run with other settings" in r.stderr
    assert (records / "a.json").is_file()  # nothing of it was removed
