"""A received dataset whose manifest is hostile or damaged is refused by every reader.

Each case is tried on ``lp-synth verify``, ``lp-train`` (its training set) and ``lp-eval`` (its
evaluation set): one error line naming the problem, a non-zero exit, nothing read outside the
dataset and nothing written.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.train_fixtures import graded, synthetic

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate

FAST = ["--arch", "smallcnn", "--weights", "none", "--device", "cpu", "--epochs", "1", "-q"]


def _rows(root: Path) -> list[dict]:
    with open(root / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _write_rows(root: Path, rows: list[dict]) -> None:
    with open(root / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def absolute(root, rows):
    rows[0]["path"] = "/etc/passwd"
    return "unsafe path"


def dot_dot(root, rows):
    shutil.copy(root / rows[0]["path"], root.parent / "outside.png")
    rows[0]["path"] = "../outside.png"
    return "unsafe path"


def link_out(root, rows):
    shutil.copy(root / rows[0]["path"], root.parent / "target.png")
    os.symlink(root.parent / "target.png", root / "images" / "link.png")
    rows[0]["path"] = "images/link.png"
    return "outside"


def same_path_twice(root, rows):
    rows[2]["path"] = rows[0]["path"]
    rows[2]["sha256"] = rows[0]["sha256"]
    return "listed twice"


def same_id_twice(root, rows):
    rows[4]["twin_id"] = rows[2]["twin_id"]
    rows[4]["label"] = rows[2]["label"]
    return "listed more than once"


def wrong_checksum(root, rows):
    rows[1]["sha256"] = "0" * 64
    return "sha256"


CASES = [absolute, dot_dot, link_out, same_path_twice, same_id_twice, wrong_checksum]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    from lesionpaste.train.cli import train_command

    base = tmp_path_factory.mktemp("hostile")
    out = base / "run"
    r = CliRunner().invoke(
        train_command, [str(synthetic(base / "d", pairs=4)), "--out", str(out), *FAST]
    )
    assert r.exit_code == 0, r.stderr
    return out


def _damaged(tmp_path: Path, make, case) -> tuple[Path, str]:
    root = make(tmp_path / "set" / "d")
    rows = _rows(root)
    expected = case(root, rows)
    _write_rows(root, rows)
    return root, expected


def _one_error(result, prog: str, expected: str) -> None:
    assert result.exit_code != 0
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith(f"{prog}: error:"), result.stderr
    assert expected in errors[0], errors[0]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_lp_synth_verify_refuses(tmp_path, case):
    from lesionpaste.synth.cli import cli

    root, expected = _damaged(tmp_path, lambda p: graded(p, per_grade=2), case)
    r = CliRunner().invoke(cli, ["verify", str(root)], prog_name="lp-synth")
    assert r.exit_code != 0 and expected in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_lp_train_refuses(tmp_path, case):
    from lesionpaste.train.cli import train_command

    root, expected = _damaged(tmp_path, lambda p: synthetic(p, pairs=4), case)
    out = tmp_path / "run"
    r = CliRunner().invoke(
        train_command, [str(root), "--out", str(out), *FAST], prog_name="lp-train"
    )
    _one_error(r, "lp-train", expected)
    assert not out.exists()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_lp_eval_refuses(tmp_path, run, case):
    from lesionpaste.train.cli import eval_command

    root, expected = _damaged(tmp_path, lambda p: graded(p, per_grade=2), case)
    out = tmp_path / "eval"
    r = CliRunner().invoke(
        eval_command, [str(run), str(root), "--out", str(out), "-q"], prog_name="lp-eval"
    )
    _one_error(r, "lp-eval", expected)
    assert not out.exists()
