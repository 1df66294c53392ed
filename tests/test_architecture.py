"""The project's layering, checked: which part may import which (read from every module's
imports), the bank builder and the synthesizer never loading torch, and plain ``pytest``
running from the repository root."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_tiny_idrid
from tests.synth_fixtures import make_normals

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("lesionpaste", "bank_builder", "synth", "train")
#: what each part may import of the project: the core, and itself
ALLOWED = {
    "lesionpaste": {"lesionpaste"},
    "bank_builder": {"lesionpaste", "bank_builder"},
    "synth": {"lesionpaste", "synth"},
    "train": {"lesionpaste", "train"},
}
#: the parts' import names: one namespace (their folders stay at the top of the repository)
NAMESPACE = {f"lesionpaste.{part}": part for part in PARTS[1:]}


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside a function (absolute names)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            found.add(path.parent.name + "." + (node.module or ""))  # relative: within its part
    return found


def part_of(name: str) -> str | None:
    """The part a module name belongs to (``lesionpaste.train.x`` -> ``train``, any other
    ``lesionpaste.x`` -> ``lesionpaste``, a bare part name -> that part), or None."""
    for prefix, part in NAMESPACE.items():
        if name == prefix or name.startswith(prefix + "."):
            return part
    first = name.split(".")[0]
    return first if first in PARTS else None


def _modules(part: str) -> list[Path]:
    return sorted((ROOT / part).rglob("*.py"))


@pytest.mark.parametrize("part", PARTS)
def test_each_part_imports_only_the_core_and_itself(part):
    wrong = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _modules(part)
        for name in imports_of(path)
        if part_of(name) is not None
        and part_of(name) not in ALLOWED[part]
        and (str(path.relative_to(ROOT)), name) not in PUBLIC_API
    }
    assert not wrong, sorted(wrong)


#: the one exception: the package's public API hands out the detector (imported when used)
PUBLIC_API = {("lesionpaste/__init__.py", "lesionpaste.train.loading")}


@pytest.mark.parametrize("folder", [*PARTS, "tests", "bench", "demo"])
def test_every_import_of_a_part_goes_through_the_namespace(folder):
    """``import train.x`` would load a second copy of a module (and, installed, fails: only
    ``lesionpaste`` goes into site-packages)."""
    wrong = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / folder).rglob("*.py"))
        for name in imports_of(path)
        if name.split(".")[0] in PARTS[1:]
    }
    assert not wrong, sorted(wrong)


@pytest.mark.parametrize("part", ["lesionpaste", "bank_builder", "synth"])
def test_nothing_outside_the_trainer_imports_torch(part):
    wrong = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _modules(part)
        for name in imports_of(path)
        if name.split(".")[0] in ("torch", "torchvision")
    }
    assert not wrong, sorted(wrong)


def test_the_core_uses_click_only_in_its_command_line_wrapper():
    users = {
        p.name
        for p in _modules("lesionpaste")
        if "click" in {n.split(".")[0] for n in imports_of(p)}
    }
    assert users == {"cli.py"}


def test_the_rules_see_a_forbidden_import(tmp_path):
    module = tmp_path / "synth" / "x.py"
    module.parent.mkdir()
    module.write_text(
        "import os\nfrom lesionpaste.bank_builder.build import build_bank\ndef f():\n"
        "    import torch\n"
    )
    assert imports_of(module) == {"os", "lesionpaste.bank_builder.build", "torch"}
    assert part_of("lesionpaste.bank_builder.build") == "bank_builder"
    assert part_of("lesionpaste.files") == "lesionpaste" and part_of("train.cli") == "train"


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
         "tests/test_tiers.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "tests collected" in r.stdout
