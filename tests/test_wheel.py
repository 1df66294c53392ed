"""The distribution as users get it: the wheel puts one package, ``lesionpaste``, into
site-packages (the parts as ``lesionpaste.bank_builder``, ``.synth`` and ``.train``, never as
``train`` or ``synth``, which PyPI and users' own folders already use), its console scripts
work, and a folder holding its own ``train.py`` and ``synth/`` changes nothing."""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "lesionpaste", "bank_builder", "synth",
           "train")  # fmt: skip


def _run(args: list, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed (not editable, no dependencies);
    it sees this environment's packages (torch and the rest) through a path file."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(ROOT / name, source / name)
    done = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                 "-q", "-w", root / "dist", source], root)  # fmt: skip
    assert done.returncode == 0, done.stderr
    (wheel,) = (root / "dist").glob("lesionpaste-*.whl")
    venv = root / "venv"
    done = _run([sys.executable, "-m", "venv", "--without-pip", venv], root)
    assert done.returncode == 0, done.stderr
    python = venv / "bin" / "python"
    target = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                       root).stdout.strip())  # fmt: skip
    # this environment's packages, as plain directories: its editable LesionPaste finder (a
    # .pth file in them) is not processed, so only the wheel's copy can be imported
    (target / "test-env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    done = _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps",
                 "--no-index", "-q", wheel], root)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return venv


def test_the_wheel_installs_one_package(installed):
    python = installed / "bin" / "python"
    target = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                       installed).stdout.strip())  # fmt: skip
    ours = {p.name for p in target.iterdir()} - {"test-env.pth", "__pycache__"}
    ours = {n for n in ours if not n.startswith(("_distutils_hack", "distutils-precedence"))}
    assert {n for n in ours if not n.endswith(".dist-info")} == {"lesionpaste"}
    (record,) = target.glob("lesionpaste-*.dist-info/RECORD")
    tops = {line.split(",")[0].split("/")[0] for line in record.read_text().splitlines()}
    assert tops - {"../../../bin", "..", "../.."} <= {"lesionpaste", record.parent.name}
    for part in ("bank_builder", "synth", "train"):
        assert (target / "lesionpaste" / part / "cli.py").is_file()
        assert not (target / part).exists()
        # every module of the part, sub-packages included (setup.cfg lists each package)
        sources = {p.relative_to(ROOT / part) for p in (ROOT / part).rglob("*.py")}
        missing = {p for p in sources if not (target / "lesionpaste" / part / p).is_file()}
        assert not missing, sorted(map(str, missing))


def test_commands_and_imports_ignore_a_users_own_train_and_synth(installed, tmp_path):
    (tmp_path / "train.py").write_text("raise SystemExit('the user train.py was imported')\n")
    (tmp_path / "synth").mkdir()
    (tmp_path / "synth" / "__init__.py").write_text("raise SystemExit('the user synth/')\n")
    bin_dir = installed / "bin"
    commands = ("lp-bank", "lp-synth", "lp-train", "lp-eval", "lp-predict", "lp-export")
    helps = (  # each installed command's script, in one interpreter whose path starts at tmp_path
        "import runpy, sys\n"
        "for script in sys.argv[1:]:\n"
        "    sys.argv = [script, '--help']\n"
        "    try:\n"
        "        runpy.run_path(script, run_name='__main__')\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code in (0, None), (script, exc.code)\n"
        "    print('== ran', script, flush=True)\n"
    )
    done = _run([bin_dir / "python", "-c", helps, *(bin_dir / c for c in commands)], tmp_path)
    assert done.returncode == 0, done.stderr
    shown = done.stdout.split("== ran ")
    assert len(shown) == len(commands) + 1
    for command, text in zip(commands, shown):
        assert "Usage:" in text and f"Usage: {command}" in text, (command, text[-500:])
    code = (
        "import lesionpaste.train.cli, lesionpaste.synth.cli, lesionpaste.bank_builder.cli\n"
        "import lesionpaste\n"
        "print(lesionpaste.train.cli.__file__)\n"
        "print(len(lesionpaste.__path__))\n"
    )
    done = _run([bin_dir / "python", "-c", code], tmp_path)
    assert done.returncode == 0, done.stderr
    where, paths = done.stdout.split()
    assert Path(where).is_relative_to(installed) and paths == "1"  # the installed copy alone
