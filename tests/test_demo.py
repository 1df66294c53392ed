"""``make demo``'s steps at reduced scale (a small CNN, two epochs): the summary and the report
must say what the run's own files say, with no number typed by hand."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SMALL = "--arch smallcnn --weights none --epochs 2 --batch-size 8 --maps --val-fraction 0.25 --device cpu"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    root = tmp_path_factory.mktemp("demo")
    out, report = root / "out", root / "report.html"
    done = subprocess.run(  # noqa: PLW1510 (the return code is asserted with the output)
        [
            "make", "-o", ".venv/.installed", "demo",  # this environment, installed or not
            f"BIN={Path(sys.executable).parent}", f"DEMO_OUT={out}", f"DEMO_REPORT={report}",
            f"DEMO_TRAIN={SMALL}",
        ],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out, report, done.stdout


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_the_summary_holds_the_evaluations_own_figures(demo):
    out, _, _ = demo
    s = _json(out / "summary.json")
    pixel = _json(out / "run" / "eval-where" / "metrics.json")["pixel"]
    assert s["localisation"]["auroc"] == pixel["maps"]["auroc"]
    assert s["localisation"]["ci_low"] == pixel["maps"]["auroc_ci_low"]
    assert s["localisation"]["ci_high"] == pixel["maps"]["auroc_ci_high"]
    assert s["localisation"]["aupro"] == pixel["maps"]["aupro"]
    assert s["localisation"]["gradcam_auroc"] == pixel["gradcam"]["auroc"]
    assert s["localisation"]["n_images"] == pixel["n_images"] > 0
    where = (out / "where" / "manifest.csv").read_text().splitlines()[1:]
    assert s["localisation"]["n_images"] == len(where)  # every held-out IDRiD image
    detection = _json(out / "run" / "eval-whether" / "metrics.json")["auc"]["0v1"]
    for key in ("auc", "ci_low", "ci_high", "n_pos", "n_neg"):
        assert s["detection"][key] == detection[key]
    unseen = _json(out / "unseen" / "dataset.json")
    assert s["detection"]["n_neg"] == s["detection"]["n_pos"] == unseen["counts"]["normal"]
    assert s["wall_seconds"] > 0


def test_the_unseen_twins_come_from_another_bank_and_other_children(demo):
    out, _, _ = demo
    train = _json(out / "twins" / "dataset.json")
    unseen = _json(out / "unseen" / "dataset.json")
    assert train["bank"]["sha256"] != unseen["bank"]["sha256"]
    sources = {s["id"] for s in train["bank"]["sources"]}
    assert sources.isdisjoint({s["id"] for s in unseen["bank"]["sources"]})

    def children(folder: Path) -> set[str]:
        rows = (folder / "manifest.csv").read_text().splitlines()[1:]
        return {
            re.sub(r"[LR]$", "", r.split(",")[0].split("/")[-1].rsplit(".", 1)[0]) for r in rows
        }

    assert children(out / "twins").isdisjoint(children(out / "unseen"))


def test_the_report_prints_the_summarys_figures_and_shows_the_runs_pictures(demo):
    out, report, stdout = demo
    s = _json(out / "summary.json")
    page = report.read_text()
    loc, det = s["localisation"], s["detection"]
    assert f"Pixel AUROC {loc['auroc']:.3f} [{loc['ci_low']:.3f}, {loc['ci_high']:.3f}]" in page
    assert f"AUC {det['auc']:.3f} [{det['ci_low']:.3f}, {det['ci_high']:.3f}]" in page
    assert f"({s['wall_seconds']:.0f} s)" in page
    for line in (out / "run" / "log.jsonl").read_text().splitlines():  # the training curve
        entry = json.loads(line)
        assert f"<td>{entry['epoch']}</td><td>{entry['loss']:.4f}</td>" in page
    pictures = re.findall(r'<img src="([^"]+)"', page)
    assert len(pictures) >= 4
    assert all((report.parent / p).is_file() for p in pictures)
    assert f"{loc['auroc']:.3f}" in stdout  # the last line of make demo says it too


def test_the_demo_scores_the_photographs_and_its_onnx_export_agrees(demo):
    import csv

    out, _, stdout = demo

    def scores(folder: str) -> dict[str, float]:
        with open(out / folder / "predictions.csv", encoding="utf-8", newline="") as fh:
            return {r["id"]: float(r["score"]) for r in csv.DictReader(fh)}

    run, onnx = scores("predictions"), scores("predictions-onnx")
    photos = REPO / "demo" / "data" / "idrid" / "A. Segmentation" / "1. Original Images"
    assert set(run) == {p.stem for p in (photos / "a. Training Set").iterdir()}
    assert all(abs(run[k] - onnx[k]) <= 1e-4 for k in run)
    assert (out / "predictions" / "predictions.html").is_file()
    assert "scored 11 image(s)" in stdout


def _readme_block(language: str, marker: str) -> str:
    """The README's fenced block of ``language`` that holds ``marker``."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)
    return next(b for b in blocks if marker in b)


def test_the_readme_examples_of_scoring_run_as_written(demo, tmp_path):
    import shlex

    out, _, stdout = demo
    bin_dir = Path(sys.executable).parent
    # make echoed each step it ran (and stopped at any that failed): every README command is
    # one of them as written, with at most the demo's --device cpu or -q added
    lines = stdout.replace("\\\n", " ").splitlines()
    ran = [shlex.split(line) for line in lines if line.startswith(str(bin_dir))]
    block = _readme_block("sh", ".venv/bin/lp-predict demo/out/run")
    for line in block.strip().splitlines():
        words = [w.replace("demo/out", str(out)) for w in shlex.split(line)]
        words[0] = str(bin_dir / Path(words[0]).name)
        assert any(
            step[: len(words)] == words and set(step[len(words) :]) <= {"--device", "cpu", "-q"}
            for step in ran
        ), line
    code = _readme_block("python", "load_detector").replace("demo/out", str(out))
    done = subprocess.run(  # noqa: PLW1510
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert "[" in done.stdout  # the scores and flags were printed
