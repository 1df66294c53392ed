"""Faults (issue 6): SIGKILL at random points, a full disk, concurrent runs.

Each tool is killed ``LP_KILL_ROUNDS`` times (default 3) at times drawn from a generator seeded
with ``LP_KILL_SEED`` (default 0), uniformly between the end of its imports and the length of an
uninterrupted run (a kill while Python imports tests nothing); after
every kill, what is visible under the final names is checked, and the last rerun must give
exactly the uninterrupted result. ``make faults`` runs the same tests with many more rounds.

A full disk is a real kernel error: the tools run under a file-size limit (RLIMIT_FSIZE;
Python ignores SIGXFSZ, so writes past it fail with EFBIG like ENOSPC), then again without it.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import IDRID_ROOT
from tests.synth_fixtures import make_fundus_bank, make_normals, tree_bytes
from tests.train_fixtures import synthetic

ROUNDS = int(os.environ.get("LP_KILL_ROUNDS", "3"))
SEED = int(os.environ.get("LP_KILL_SEED", "0"))
REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
for _name in ("LP_BANK", "LP_NORMALS", "LP_CONFIG", "LP_IDRID_ROOT"):
    ENV.pop(_name, None)

LP_BANK = [sys.executable, "-c", "from lesionpaste.bank_builder.cli import main; main()"]
LP_SYNTH = [sys.executable, "-c", "from lesionpaste.synth.cli import main; main()"]
LP_TRAIN = [sys.executable, "-c", "from lesionpaste.train.cli import main_train; main_train()"]
LP_PREDICT = [
    sys.executable,
    "-c",
    "from lesionpaste.train.predict_cli import main_predict; main_predict()",
]

BANK_ARGS = ["build", "idrid_03", "--root", str(IDRID_ROOT), "-o", "bank.h5", "-q"]
TRAIN_ARGS = ["--arch", "smallcnn", "--weights", "none", "--device", "cpu", "--epochs", "4"]
TRAIN_ARGS += ["--batch-size", "16", "--lr", "0.05", "-q"]


def run(argv: list, cwd: Path, fsize: int | None = None) -> subprocess.CompletedProcess:
    """Run a tool to its end in ``cwd`` (optionally under a file-size limit in bytes)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, resource.RLIM_INFINITY))

    return subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=limit if fsize else None,
    )


def train_here(argv: list) -> subprocess.CompletedProcess:
    """``lp-train`` (``argv`` as for ``run``: LP_TRAIN and its arguments) in this process, in the
    current directory; for the cases where nothing is killed."""
    from click.testing import CliRunner

    from lesionpaste.train.cli import train_command

    args = [str(a) for a in argv[len(LP_TRAIN) :]]
    result = CliRunner().invoke(train_command, args, prog_name="lp-train")
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def timed(argv: list, cwd: Path) -> float:
    """Run a tool uninterrupted; its wall time."""
    started = time.perf_counter()
    done = run(argv, cwd)
    assert done.returncode == 0, done.stderr
    return time.perf_counter() - started


def startup_seconds(argv: list) -> float:
    """How long the tool's interpreter takes to import it (its ``-c`` code up to the call)."""
    started = time.perf_counter()
    subprocess.run([argv[0], "-c", argv[2].split(";")[0]], env=ENV, check=True)
    return time.perf_counter() - started


def kill_loop(name: str, argv: list, cwd: Path, seconds: float, check, salt: int) -> dict:
    """Start the tool and SIGKILL it at a random time between its start-up (imports) and
    ``seconds``, the length of an uninterrupted run, ROUNDS times,
    calling ``check()`` after each. ``check`` asserts what the final names hold; when the
    result is complete (this round, or a chain of killed runs resumed to the end) it checks it
    against the uninterrupted one, removes it so the next round starts afresh, and returns
    True."""
    rng = np.random.default_rng([SEED, salt])
    startup = min(startup_seconds(argv), 0.9 * seconds)
    outcome = {
        "rounds": ROUNDS,
        "seed": SEED,
        "killed": 0,
        "ended_first": 0,
        "completed": 0,
        "window_s": [round(startup, 2), round(seconds, 2)],
    }
    for _ in range(ROUNDS):
        proc = subprocess.Popen(
            [str(a) for a in argv],
            cwd=cwd,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            proc.wait(timeout=float(rng.uniform(startup, seconds)))
            outcome["ended_first"] += 1
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            outcome["killed"] += 1
        outcome["completed"] += bool(check())
    print(f"\n{name} kill loop: {outcome}")
    return outcome


def one_error(stderr: str) -> str:
    """The single error line of a run (warnings may come before it; never a traceback)."""
    errors = [line for line in stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    return errors[0]


def temp_files(folder: Path) -> list[Path]:
    """Temporary files (``.NAME.PID.tmp``) under ``folder``."""
    return [p for p in folder.rglob(".*.tmp")]


# ------------------------------------------------------------------ SIGKILL, many times


def test_lp_bank_killed_at_random_points_ends_with_the_uninterrupted_bank(tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    clean.mkdir()
    killed.mkdir()
    seconds = timed([*LP_BANK, *BANK_ARGS], clean)
    expected = (clean / "bank.h5").read_bytes()

    def check() -> bool:  # the final name holds nothing, or the whole bank
        final = killed / "bank.h5"
        if not final.exists():
            return False
        assert final.read_bytes() == expected
        final.unlink()
        return True

    kill_loop("lp-bank build", [*LP_BANK, *BANK_ARGS], killed, seconds, check, salt=1)
    if not (killed / "bank.h5").exists():
        done = run([*LP_BANK, *BANK_ARGS], killed)
        assert done.returncode == 0, done.stderr
    assert (killed / "bank.h5").read_bytes() == expected
    assert temp_files(killed) == []


def test_lp_synth_killed_at_random_points_ends_with_the_uninterrupted_dataset(tmp_path):
    bank = make_fundus_bank(tmp_path / "bank.h5")
    normals = make_normals(tmp_path / "normals", 40)
    args = [*LP_SYNTH, "--bank", bank, "--normals", normals, "--out", "ds", "--size", "128", "-q"]
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    clean.mkdir()
    killed.mkdir()
    seconds = timed(args, clean)
    expected = tree_bytes(clean / "ds")

    def check() -> bool:  # the dataset is absent or whole; its work folder holds whole files
        work = killed / ".ds.partial"
        for record in (work / "records").glob("*.json"):
            for entry in json.loads(record.read_text())["files"].values():
                assert (work / entry["path"]).is_file()
        if not (killed / "ds").exists():
            return False
        assert tree_bytes(killed / "ds") == expected
        shutil.rmtree(killed / "ds")
        return True

    kill_loop("lp-synth", args, killed, seconds, check, salt=2)
    if not (killed / "ds").exists():
        done = run(args, killed)
        assert done.returncode == 0, done.stderr
    assert tree_bytes(killed / "ds") == expected
    assert temp_files(killed) == []
    assert run([*LP_SYNTH, "verify", "ds"], killed).returncode == 0


def test_pack_and_unpack_killed_at_random_points_leave_nothing_half_written(tmp_path):
    """A killed lp-synth pack leaves no archive or a whole one; a killed unpack leaves no
    dataset or a whole one, and never a temporary folder or file once rerun."""
    bank = make_fundus_bank(tmp_path / "bank.h5")
    normals = make_normals(tmp_path / "normals", 40)
    made = run([*LP_SYNTH, "--bank", bank, "--normals", normals, "--out", "ds", "--size", "128",
                "-q"], tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    pack = [*LP_SYNTH, "pack", tmp_path / "ds", "-o", "ds.tar"]
    unpack = [*LP_SYNTH, "unpack", tmp_path / "clean" / "ds.tar", "-o", "got"]
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    clean.mkdir()
    killed.mkdir()
    pack_seconds = timed(pack, clean)
    archive = (clean / "ds.tar").read_bytes()
    unpack_seconds = timed(unpack, clean)
    expected = tree_bytes(tmp_path / "ds")

    def packed() -> bool:
        if not (killed / "ds.tar").exists():
            return False
        assert (killed / "ds.tar").read_bytes() == archive
        (killed / "ds.tar").unlink()
        return True

    def unpacked() -> bool:
        if not (killed / "got").exists():
            return False
        assert tree_bytes(killed / "got") == expected
        shutil.rmtree(killed / "got")
        return True

    kill_loop("lp-synth pack", pack, killed, pack_seconds, packed, salt=5)
    kill_loop("lp-synth unpack", unpack, killed, unpack_seconds, unpacked, salt=6)
    for argv, name in ((pack, "ds.tar"), (unpack, "got")):
        if not (killed / name).exists():
            done = run([*argv, "--overwrite"], killed)
            assert done.returncode == 0, done.stderr
    assert (killed / "ds.tar").read_bytes() == archive
    assert tree_bytes(killed / "got") == expected
    assert temp_files(killed) == [] and sorted(p.name for p in killed.iterdir()) == [
        "ds.tar",
        "got",
    ]


def test_lp_train_killed_at_random_points_resumes_to_the_uninterrupted_weights(tmp_path):
    data = synthetic(tmp_path / "data", pairs=24)
    args = [*LP_TRAIN, data, "--out", "run", *TRAIN_ARGS]
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    clean.mkdir()
    killed.mkdir()
    seconds = timed(args, clean)

    expected = torch.load(clean / "run" / "checkpoint.pt", weights_only=True)["model"]

    def check() -> bool:  # whatever is there is whole: a loadable checkpoint, a JSON config
        run_dir = killed / "run"
        if (run_dir / "config.json").exists():
            json.loads((run_dir / "config.json").read_text())
        if not (run_dir / "checkpoint.pt").exists():
            return False
        state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
        if state["epoch"] < 3:
            return False
        assert all(torch.equal(expected[k], state["model"][k]) for k in expected)
        log = [json.loads(line)["epoch"] for line in (run_dir / "log.jsonl").open()]
        assert log == list(range(1, 5))
        shutil.rmtree(run_dir)
        return True

    kill_loop("lp-train", args, killed, seconds, check, salt=3)
    done = run(args, killed)  # resumes, or finds the run finished
    assert done.returncode == 0, done.stderr
    a = torch.load(clean / "run" / "checkpoint.pt", weights_only=True)
    b = torch.load(killed / "run" / "checkpoint.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 3
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    log = [json.loads(line)["epoch"] for line in (killed / "run" / "log.jsonl").open()]
    assert log == list(range(1, 5))
    assert temp_files(killed) == []


def test_lp_predict_killed_at_random_points_resumes_to_the_uninterrupted_predictions(tmp_path):
    from lesionpaste.contract import Preparation
    from lesionpaste.train.runs.contract import write_run_contract
    from tests.conftest import synthetic_fundus, write_rgb

    data = synthetic(tmp_path / "data", pairs=8)
    assert run([*LP_TRAIN, data, "--out", tmp_path / "run", *TRAIN_ARGS], tmp_path).returncode == 0
    write_run_contract(tmp_path / "run", Preparation("fundus", {"name": "none"}, 32))
    for i in range(200):
        write_rgb(tmp_path / "photos" / f"{i:03d}.png", synthetic_fundus(seed=i))
    args = [*LP_PREDICT, tmp_path / "run", tmp_path / "photos", "-o", "p", "--device", "cpu", "-q"]
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    clean.mkdir()
    killed.mkdir()
    seconds = timed(args, clean)
    expected = (clean / "p" / "predictions.csv").read_text().splitlines()

    def check() -> bool:  # the rows there are whole rows of the uninterrupted run, in order
        out = killed / "p"
        if not (out / "predictions.csv").exists():
            return False
        lines = (out / "predictions.csv").read_text().splitlines()
        whole = (
            lines if lines and (out / "predictions.csv").read_text().endswith("\n") else lines[:-1]
        )
        assert whole == expected[: len(whole)]
        if not (out / "predictions.html").exists():
            return False
        assert lines == expected
        shutil.rmtree(out)
        return True

    kill_loop("lp-predict", args, killed, seconds, check, salt=7)
    done = run(args, killed)  # resumes
    assert done.returncode == 0, done.stderr
    for name in ("predictions.csv", "predictions.html", "prediction.json"):
        assert (killed / "p" / name).read_bytes() == (clean / "p" / name).read_bytes(), name
    assert tree_bytes(killed / "p" / "thumbs") == tree_bytes(clean / "p" / "thumbs")
    assert temp_files(killed) == []


def test_a_log_line_cut_by_a_kill_is_dropped_on_resume(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no kill here: the runs are in-process
    data = synthetic(tmp_path / "data", pairs=16)
    args = [*LP_TRAIN, data, "--out", "run", *TRAIN_ARGS]
    assert train_here(args).returncode == 0
    log = tmp_path / "run" / "log.jsonl"
    with open(log, "a") as fh:  # as if killed while appending a line past the checkpoint
        fh.write('{"epoch": 5, "lo')
    again = train_here(args)
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr
    assert [json.loads(line)["epoch"] for line in log.open()] == list(range(1, 5))


def test_a_finished_run_says_so_and_a_damaged_config_defers_to_the_checkpoint(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # no kill here: the runs are in-process
    data = synthetic(tmp_path / "data", pairs=8)
    args = [*LP_TRAIN, data, "--out", "run", *TRAIN_ARGS[:-1]]  # not quiet
    assert train_here(args).returncode == 0
    weights = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    again = train_here(args)
    assert again.returncode == 0 and "already trained (4 epochs)" in again.stdout + again.stderr
    (tmp_path / "run" / "config.json").write_text('{"epochs": 4, "arch"')  # cut short
    again = train_here(args)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == weights  # training kept
    json.loads((tmp_path / "run" / "config.json").read_text())  # and the config rewritten
    other = train_here([*LP_TRAIN, data, "--out", "run", *TRAIN_ARGS[:-1], "--lr", "0.5"])
    assert other.returncode != 0 and "another configuration" in one_error(other.stderr)
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == weights


# ------------------------------------------------------------------ a full disk


def test_a_full_disk_while_building_a_bank_is_one_line_and_leaves_nothing(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    out = run([*LP_BANK, *BANK_ARGS], work, fsize=200_000)
    assert out.returncode != 0
    line = one_error(out.stderr)
    assert "File too large" in line and "free some space" in line
    assert list(work.iterdir()) == []  # no bank, no temp file
    assert run([*LP_BANK, *BANK_ARGS], work).returncode == 0  # space again: it builds


def test_a_full_disk_while_synthesizing_keeps_finished_twins_and_resumes(tmp_path):
    bank = make_fundus_bank(tmp_path / "bank.h5")
    normals = make_normals(tmp_path / "normals", 12)
    args = [*LP_SYNTH, "--bank", bank, "--normals", normals, "--out", "ds", "--size", "64", "-q"]
    clean = tmp_path / "clean"
    clean.mkdir()
    assert run(args, clean).returncode == 0
    limited = tmp_path / "limited"
    limited.mkdir()
    # a limit that every per-image file (PNGs, its record) fits under, the whole paste list not
    pngs = max(p.stat().st_size for p in (clean / "ds").rglob("*.png"))
    lines = (clean / "ds" / "pastes.jsonl").read_text().splitlines()
    limit = max(pngs, max(map(len, lines)) + 4000)
    assert limit < (clean / "ds" / "pastes.jsonl").stat().st_size
    out = run(args, limited, fsize=limit)
    assert out.returncode != 0
    assert "free some space" in one_error(out.stderr)
    assert not (limited / "ds").exists()
    assert temp_files(limited) == []
    finished = len(list((limited / ".ds.partial" / "records").glob("*.json")))
    assert finished == 12  # every twin was kept for the rerun
    again = run(args, limited)
    assert again.returncode == 0, again.stderr
    assert tree_bytes(limited / "ds") == tree_bytes(clean / "ds")
    assert temp_files(limited) == []


def test_a_full_disk_while_saving_a_checkpoint_is_one_line_and_resumes(tmp_path):
    data = synthetic(tmp_path / "data", pairs=16)
    args = [*LP_TRAIN, data, "--out", "run", *TRAIN_ARGS]
    clean = tmp_path / "clean"
    clean.mkdir()
    assert run(args, clean).returncode == 0
    size = (clean / "run" / "checkpoint.pt").stat().st_size
    limited = tmp_path / "limited"
    limited.mkdir()
    out = run(args, limited, fsize=size // 2)
    assert out.returncode != 0
    line = one_error(out.stderr)
    assert "File too large" in line and "free some space" in line
    assert not (limited / "run" / "checkpoint.pt").exists()
    assert temp_files(limited) == []
    assert run(args, limited).returncode == 0
    a = torch.load(clean / "run" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(limited / "run" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    log = (limited / "run" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in log] == list(range(1, 5))  # epoch 1 once


# ------------------------------------------------------------------ concurrent runs


def test_concurrent_lp_synth_runs_on_one_output_give_one_dataset(tmp_path):
    bank = make_fundus_bank(tmp_path / "bank.h5")
    normals = make_normals(tmp_path / "normals", 16)
    args = [*LP_SYNTH, "--bank", bank, "--normals", normals, "--out", "ds", "--size", "96", "-q"]
    procs = [
        subprocess.Popen(
            [str(a) for a in args],
            cwd=tmp_path,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = []
    for proc in procs:
        _, err = proc.communicate()  # reads stderr as it comes: no pipe can fill up
        results.append((proc.returncode, err))
    winners = [err for code, err in results if code == 0]
    losers = [err for code, err in results if code != 0]
    assert len(winners) >= 1
    for err in losers:  # refused while another runs, or after it finished: one clear line
        line = one_error(err)
        assert "another lp-synth run" in line or "already exists" in line, err
    # a late winner can only have resumed the same images: one whole, verified dataset
    assert run([*LP_SYNTH, "verify", "ds"], tmp_path).returncode == 0
    assert not (tmp_path / ".ds.partial").exists() and not (tmp_path / ".ds.lock").exists()


def test_a_second_lp_train_on_the_same_run_is_refused_while_one_runs(tmp_path):
    from lesionpaste.files import output_lock

    data = synthetic(tmp_path / "data", pairs=8)
    with output_lock(tmp_path / "run", "lp-train"):
        out = run([*LP_TRAIN, data, "--out", "run", *TRAIN_ARGS], tmp_path)
    assert out.returncode != 0 and "another lp-train run" in one_error(out.stderr)
    assert not (tmp_path / "run").exists()
    assert run([*LP_TRAIN, data, "--out", "run", *TRAIN_ARGS], tmp_path).returncode == 0


@pytest.mark.parametrize("processes", [2, 4])
def test_the_run_lock_admits_one_holder_at_a_time(tmp_path, processes):
    """Many processes racing for the lock, holders releasing (and removing the file) as
    others arrive: never two inside at once."""
    script = (
        "import os, sys, time\n"
        "from lesionpaste.errors import LesionPasteError\nfrom lesionpaste.files import run_lock\n"
        "inside = 0\n"
        "for _ in range(200):\n"
        "    try:\n"
        "        with run_lock(sys.argv[1], 'test'):\n"
        "            fd = os.open(sys.argv[2], os.O_CREAT | os.O_EXCL | os.O_WRONLY)\n"
        "            time.sleep(0.001)\n"
        "            os.close(fd); os.unlink(sys.argv[2]); inside += 1\n"
        "    except LesionPasteError:\n"
        "        pass\n"
        "print(inside)\n"
    )
    lock, marker = tmp_path / "x.lock", tmp_path / "inside"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(lock), str(marker)],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    outputs = [p.communicate() for p in procs]
    for out, err in outputs:
        assert err == "", err  # a second holder would fail O_EXCL on the marker
    assert sum(int(out) for out, _ in outputs) > 0
