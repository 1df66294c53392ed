"""Files received from someone else fail cleanly: one line, a non-zero exit, no traceback, no
runaway memory and no hang.

A real dataset, evaluation set and run are made once; each case damages a copy: an image whose
header claims ten billion pixels, images of mixed sizes or channel counts, JSON nested
100,000 deep or longer than any real one, a manifest row whose image is a directory or a
FIFO (run in a subprocess with a time limit: a reader that opened it would block for ever).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from lesionpaste.dataset_format import read_manifest
from tests.conftest import make_tiny_idrid
from tests.synth_fixtures import make_normals
from tests.test_output_safety import invoke

REPO = Path(__file__).resolve().parents[1]
#: runs each ``[tool, *args]`` of argv[1] (JSON) in-process, prints their (code, stderr) as JSON
BATCH = """
import json, sys
from tests.test_output_safety import invoke
results = [invoke(*call) for call in json.loads(sys.argv[1])]
print("\\n" + json.dumps(results))
"""


def run_tools(*calls: list, timeout: float = 120) -> list[tuple[int, str]]:
    """Each ``[tool, *args]`` in one subprocess (one import of the tools), which is killed if a
    tool hangs (the test then fails); the (exit code, stderr) of each call."""
    done = subprocess.run(
        [sys.executable, "-c", BATCH, json.dumps([[str(a) for a in call] for call in calls])],
        capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [tuple(r) for r in json.loads(done.stdout.splitlines()[-1])]


def bomb_png() -> bytes:
    """A valid-looking PNG whose header claims 100000 x 100000 RGB pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("made")
    make_tiny_idrid(root / "idrid")
    make_normals(root / "normals", 6)
    steps = [
        ("lp-bank", "build", "idrid_07", "--root", root / "idrid", "-o", root / "bank.h5", "-q"),
        ("lp-synth", "--bank", root / "bank.h5", "--normals", root / "normals", "--size", "64",
         "--ratios", "0.8,0.2,0,0", "--out", root / "twins", "-q"),
        ("lp-synth", "prep", "--images", root / "normals", "--label", "0", "--bank",
         root / "bank.h5", "--like", root / "twins", "--out", root / "eval", "-q"),
        ("lp-train", root / "twins", "--out", root / "run", "--arch", "smallcnn", "--weights",
         "none", "--epochs", "1", "--batch-size", "4", "--device", "cpu", "-q"),
    ]  # fmt: skip
    for step in steps:
        code, err = invoke(*step)
        assert code == 0, err
    return root


def copy(made: Path, name: str, tmp_path: Path) -> Path:
    shutil.copytree(made / name, tmp_path / name)
    return tmp_path / name


def replace_image(root: Path, row: int, data: bytes) -> None:
    """Put ``data`` in the manifest's ``row``-th image, with its sha256 updated to match (as a
    careful attacker or a broken exporter would)."""
    import csv
    import hashlib

    rows = read_manifest(root)
    (root / rows[row]["path"]).write_bytes(data)
    rows[row]["sha256"] = hashlib.sha256(data).hexdigest()
    with open(root / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def one_error(code: int, err: str, tool: str, words: str) -> None:
    lines = err.strip().splitlines()
    assert code == 1 and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith(f"{tool}: ") and words in lines[0], err


def test_a_decompression_bomb_in_a_dataset_is_refused_before_decoding(made, tmp_path):
    twins = copy(made, "twins", tmp_path)
    replace_image(twins, 1, bomb_png())
    args = ["--arch", "smallcnn", "--weights", "none", "--epochs", "1", "--device", "cpu"]
    code, err = invoke("lp-train", twins, "--out", tmp_path / "run", *args)
    one_error(code, err, "lp-train", "100000x100000 pixels is over the limit")
    code, err = invoke("lp-synth", "preview", twins, "-o", tmp_path / "p.png")
    one_error(code, err, "lp-synth", "over the limit")
    evaluation = copy(made, "eval", tmp_path)
    replace_image(evaluation, 0, bomb_png())
    code, err = invoke("lp-eval", made / "run", evaluation, "--out", tmp_path / "e", "--device",
                       "cpu")  # fmt: skip
    one_error(code, err, "lp-eval", "over the limit")
    assert not (tmp_path / "run").exists() and not (tmp_path / "e").exists()


@pytest.mark.parametrize("damage", ["size", "channels"])
def test_images_of_mixed_sizes_or_channel_counts_are_refused(made, tmp_path, damage):
    twins = copy(made, "twins", tmp_path)
    first = cv2.imread(str(twins / read_manifest(twins)[0]["path"]), cv2.IMREAD_UNCHANGED)
    other = cv2.resize(first, (32, 32)) if damage == "size" else first[:, :, 0]
    replace_image(twins, 0, cv2.imencode(".png", other)[1].tobytes())
    code, err = invoke("lp-train", twins, "--out", tmp_path / "run", "--arch", "smallcnn",
                       "--weights", "none", "--epochs", "1", "--device", "cpu")  # fmt: skip
    one_error(code, err, "lp-train", "several sizes or channel counts")


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("content", ["deep", "long"])
def test_dataset_json_nested_deep_or_megabytes_long_is_refused(made, tmp_path, content):
    twins = copy(made, "twins", tmp_path)
    if content == "deep":
        (twins / "dataset.json").write_text(DEEP)
        words = "nested too deeply"
    else:
        meta = json.loads((twins / "dataset.json").read_text())
        meta["padding"] = "x" * (65 << 20)
        (twins / "dataset.json").write_text(json.dumps(meta))
        words = "refused unread"
    code, err = invoke("lp-train", twins, "--out", tmp_path / "run", "--device", "cpu")
    one_error(code, err, "lp-train", words)
    code, err = invoke("lp-synth", "verify", twins)
    one_error(code, err, "lp-synth", words)
    code, err = invoke("lp-synth", "preview", twins, "-o", tmp_path / "p.png")
    one_error(code, err, "lp-synth", words)
    code, err = invoke("lp-synth", "prep", "--images", made / "normals", "--label", "0",
                       "--bank", made / "bank.h5", "--like", twins, "--out", tmp_path / "e")  # fmt: skip
    one_error(code, err, "lp-synth", words)
    code, err = invoke("lp-eval", made / "run", twins, "--out", tmp_path / "e", "--device", "cpu")
    one_error(code, err, "lp-eval", words)


def test_a_pastes_jsonl_line_nested_deep_is_reported_not_a_crash(made, tmp_path):
    twins = copy(made, "twins", tmp_path)
    lines = (twins / "pastes.jsonl").read_text().splitlines()
    (twins / "pastes.jsonl").write_text("\n".join([DEEP, *lines[1:]]) + "\n")
    code, err = invoke("lp-synth", "verify", twins)
    assert code == 1 and "Traceback" not in err
    assert "pastes.jsonl, line 1: a malformed line" in err


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_manifest_image_that_is_a_directory_or_fifo_is_refused(made, tmp_path, kind):
    twins = copy(made, "twins", tmp_path)
    evaluation = copy(made, "eval", tmp_path)
    for root in (twins, evaluation):
        image = root / read_manifest(root)[0]["path"]
        image.unlink()
        os.mkdir(image) if kind == "directory" else os.mkfifo(image)
    words = "a directory, where" if kind == "directory" else "a FIFO, device or socket"
    calls = [
        ["lp-train", twins, "--out", tmp_path / "run", "--arch", "smallcnn", "--weights", "none",
         "--epochs", "1", "--device", "cpu"],
        ["lp-eval", made / "run", evaluation, "--out", tmp_path / "e", "--device", "cpu"],
        ["lp-synth", "verify", twins],
        ["lp-synth", "preview", twins, "-o", tmp_path / "p.png", "--count", "8"],
    ]  # fmt: skip
    # a directory cannot block a reader; a FIFO can, so those calls run where a hang is killed
    results = [invoke(*call) for call in calls] if kind == "directory" else run_tools(*calls)
    train, evaluate, verify, preview = results
    one_error(*train, "lp-train", words)
    one_error(*evaluate, "lp-eval", words)
    code, err = verify
    assert code == 1 and words in err and "Traceback" not in err, err
    one_error(*preview, "lp-synth", words)  # all six twins are shown, the damaged one too
    assert not (tmp_path / "p.png").exists()


@pytest.mark.parametrize("name", ["dataset.json", "manifest.csv"])
def test_a_dataset_whose_metadata_is_a_fifo_is_refused(made, tmp_path, name):
    twins = copy(made, "twins", tmp_path)
    (twins / name).unlink()
    os.mkfifo(twins / name)
    verify, train = run_tools(
        ["lp-synth", "verify", twins],
        ["lp-train", twins, "--out", tmp_path / "run", "--device", "cpu"],
    )
    one_error(*verify, "lp-synth", "a FIFO, device or socket")
    one_error(*train, "lp-train", "a FIFO, device or socket")


def test_a_run_or_compared_scores_that_are_fifos_are_refused(made, tmp_path):
    run = copy(made, "run", tmp_path)
    (run / "checkpoint.pt").unlink()
    os.mkfifo(run / "checkpoint.pt")
    other = tmp_path / "other"
    other.mkdir()
    os.mkfifo(other / "scores.csv")
    for result in run_tools(
        ["lp-eval", run, made / "eval", "--out", tmp_path / "e", "--device", "cpu"],
        ["lp-eval", made / "run", made / "eval", "--out", tmp_path / "e", "--compare", other,
         "--device", "cpu"],
    ):  # fmt: skip
        one_error(*result, "lp-eval", "a FIFO, device or socket")


def test_a_bank_that_is_a_fifo_or_declares_gigabytes_is_refused(made, tmp_path):
    os.mkfifo(tmp_path / "bank.h5")
    hostile = tmp_path / "hostile.h5"
    shutil.copy(made / "bank.h5", hostile)
    with h5py.File(hostile, "a") as f:
        del f["lesions/pixels"]
        f.create_dataset("lesions/pixels", shape=(6 << 30,), dtype=np.uint8, chunks=(1 << 20,),
                         compression="gzip")  # fmt: skip
    assert hostile.stat().st_size < 50 << 20
    fifo, info = run_tools(
        ["lp-synth", "--bank", tmp_path / "bank.h5", "--normals", made / "normals", "--out",
         tmp_path / "d"],
        ["lp-bank", "info", hostile],
    )  # fmt: skip
    one_error(*fifo, "lp-synth", "no such bank file")
    one_error(*info, "lp-bank", "would take 6.0 GiB in memory")


def test_a_received_tree_with_a_link_to_a_fifo_outside_is_refused(made, tmp_path):
    twins = copy(made, "twins", tmp_path)
    os.mkfifo(tmp_path / "outside")
    image = twins / read_manifest(twins)[0]["path"]
    image.unlink()
    image.symlink_to(tmp_path / "outside")
    (result,) = run_tools(["lp-train", twins, "--out", tmp_path / "run", "--device", "cpu"])
    one_error(*result, "lp-train", "leads outside it")


@pytest.mark.mutation
def test_a_log_line_nested_absurdly_deep_is_dropped_on_resume_not_a_traceback(tmp_path):
    from lesionpaste.train.training.checkpoints import truncate_log

    log = tmp_path / "log.jsonl"
    kept = ['{"epoch": 1, "loss": 0.5}', '{"epoch": 2, "loss": 0.4}']
    deep = "[" * 200_000 + "]" * 200_000
    log.write_text("\n".join([kept[0], deep, kept[1], '{"epoch": 3, "loss": 0.3}']) + "\n")
    truncate_log(log, 2)  # the checkpoint holds two epochs
    assert log.read_text().splitlines() == kept


@pytest.mark.mutation
@pytest.mark.parametrize(
    "damage, words",
    [
        ([], "not a run configuration"),
        ({"lr": "fast"}, "damaged: lr is 'fast', not of type float"),
        ({"bank_sources": 5}, "damaged: bank_sources is '5', not of type list[str]"),
        ({"momentum": -1}, "damaged: --momentum must be 0 or more"),
        ({"epochs": 1e400}, "damaged: epochs is 'inf', not of type int"),
        ({"from_a_newer_version": 1}, "not a configuration of this version"),
        ("[" * 200_000, "nested too deeply"),
    ],
    ids=["list", "string-lr", "int-sources", "negative-momentum", "infinite", "unknown", "deep"],
)
def test_a_received_runs_damaged_config_json_is_one_line_for_each_reader(
    made, tmp_path, damage, words
):
    """Built as the dataset tests are: a valid run, then its ``config.json`` damaged once.
    lp-eval (the bank sources it must not evaluate on), lp-export (the model's description)
    and lp-select (the kept epoch) each refuse it in one line naming the file."""
    from click.testing import CliRunner

    from lesionpaste.train.cli import eval_command, select_command
    from lesionpaste.train.export_cli import export_command

    run = copy(made, "run", tmp_path)
    config = json.loads((run / "config.json").read_text())
    text = (
        damage
        if isinstance(damage, str)
        else json.dumps(damage if isinstance(damage, list) else {**config, **damage})
    )
    (run / "config.json").write_text(text)
    for tool, command, args in [  # in this process: these refusals come before any work
        ("lp-eval", eval_command, [run, made / "eval", "--out", tmp_path / "e", "--device", "cpu"]),
        ("lp-export", export_command, [run, "--format", "torchscript", "-o", tmp_path / "x"]),
        ("lp-select", select_command, [run]),
    ]:
        result = CliRunner().invoke(command, [str(a) for a in args], prog_name=tool)
        assert not isinstance(result.exception, Exception) or isinstance(
            result.exception, SystemExit
        ), result.exception
        one_error(result.exit_code, result.stderr, tool, words)
        assert "config.json" in result.stderr
    assert not (tmp_path / "e").exists() and not (tmp_path / "x").exists()
