"""The project's layering, checked: the bank builder and the synthesizer never load torch, and
plain ``pytest`` runs from the repository root."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import make_tiny_idrid
from tests.synth_fixtures import make_normals

ROOT = Path(__file__).resolve().parent.parent

#: runs a console script in this process, then says whether torch was ever imported
RUN_SCRIPT = """
import atexit, sys
from importlib.metadata import entry_points
atexit.register(lambda: print("torch loaded" if "torch" in sys.modules else "no torch"))
name, *args = sys.argv[1:]
main = entry_points(group="console_scripts")[name].load()
sys.argv = [name, *args]
main()
"""


def _run_script(cwd: Path, *args: str) -> str:
    r = subprocess.run(
        [sys.executable, "-c", RUN_SCRIPT, *args],
        cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1]


def test_the_bank_builder_and_the_synthesizer_never_load_torch(tmp_path):
    make_tiny_idrid(tmp_path / "IDRiD")
    make_normals(tmp_path / "normals", 2)
    runs = [
        ("lp-bank", "build", "idrid_07", "--root", "IDRiD", "-o", "bank.h5", "-q"),
        ("lp-bank", "info", "bank.h5"),
        ("lp-synth", "--bank", "bank.h5", "--normals", "normals", "-o", "ds", "--size", "64",
         "--ratios", "0.8,0.2,0,0", "-q"),
        ("lp-synth", "verify", "ds"),
        ("lp-synth", "prep", "--images", "normals", "--label", "0", "--bank", "bank.h5",
         "--size", "64", "-o", "ev", "-q"),
    ]  # fmt: skip
    for args in runs:
        assert _run_script(tmp_path, *args) == "no torch", args
    assert (tmp_path / "ds" / "manifest.csv").is_file() and (tmp_path / "ev").is_dir()


def test_plain_pytest_collects_from_the_repository_root():
    pytest = Path(sys.executable).with_name("pytest")
    r = subprocess.run(
        [str(pytest), "--collect-only", "-q", "-p", "no:cacheprovider",
         "tests/test_tiers_directed.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "tests collected" in r.stdout
