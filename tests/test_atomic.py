import os
import subprocess
import sys

import pytest

from lesionpaste.errors import LesionPasteError
from lesionpaste.files import atomic_output


def test_output_appears_only_on_success(tmp_path):
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    out = tmp_path / "b.h5"
    with pytest.raises(RuntimeError), atomic_output(out) as tmp:
        tmp.write_bytes(b"partial")
        assert not out.exists()
        raise RuntimeError("crash")
    assert not out.exists() and os.listdir(tmp_path) == []
    with atomic_output(out) as tmp:
        tmp.write_bytes(b"whole")
    assert out.read_bytes() == b"whole" and os.listdir(tmp_path) == ["b.h5"]


def test_existing_output_needs_overwrite(tmp_path):
    out = tmp_path / "b.h5"
    out.write_bytes(b"mine")
    with pytest.raises(LesionPasteError, match="already exists"), atomic_output(out):
        pass
    with atomic_output(out, overwrite=True) as tmp:
        tmp.write_bytes(b"new")
    assert out.read_bytes() == b"new"


def test_temp_files_of_killed_runs_are_cleaned_but_live_ones_kept(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = tmp_path / f".b.h5.{dead.stdout.strip()}.tmp"
    stale.write_bytes(b"left by a SIGKILLed run")
    live = tmp_path / f".b.h5.{os.getppid()}.tmp"
    live.write_bytes(b"another run is writing")
    with atomic_output(tmp_path / "b.h5") as tmp:
        tmp.write_bytes(b"ok")
    assert not stale.exists() and live.exists()
