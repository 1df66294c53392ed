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
PUBLIC_API = {("lesionpaste/__init__.py", "lesionpaste.train.deploy.loading")}


#: within the trainer and the synthesizer, which sub-package may import which: each stands on
#: those before it (the commands, ``cli*.py`` at the part's top, may import any)
LAYERS = {
    "train": {
        "models": {"models"},
        "metrics": {"metrics"},
        "training": {"models", "metrics", "training"},
        "runs": {"models", "metrics", "training", "runs"},
        "evaluation": {"models", "metrics", "training", "runs", "evaluation"},
        "deploy": {"models", "metrics", "training", "runs", "evaluation", "deploy"},
    },
    "synth": {
        "inputs": {"inputs"},
        "pasting": {"inputs", "pasting"},
        "run": {"inputs", "pasting", "run"},
        "sharing": {"inputs", "sharing"},
    },
}


def layer_of(name: str, part: str) -> str | None:
    """The sub-package of ``part`` a module name is in (``lesionpaste.train.models.build`` ->
    ``models``), or None outside it or at its top."""
    words = name.split(".")
    if words[:2] != ["lesionpaste", part] or len(words) < 4:
        return None
    return words[2]


@pytest.mark.parametrize("part", sorted(LAYERS))
def test_the_top_of_a_part_holds_only_its_commands_and_its_sub_packages(part):
    top = {p.name for p in (ROOT / part).iterdir() if p.name != "__pycache__"}
    modules = {name for name in top if name.endswith(".py")}
    assert modules == {"__init__.py"} | {m for m in modules if m.endswith("cli.py")}
    assert top - modules == set(LAYERS[part]), "a sub-package without its place in LAYERS"
    for sub in LAYERS[part]:
        assert (ROOT / part / sub / "__init__.py").is_file()
        assert not [
            p for p in (ROOT / part / sub).iterdir() if p.is_dir() and p.name != "__pycache__"
        ]


@pytest.mark.parametrize("part", sorted(LAYERS))
def test_each_sub_package_imports_only_those_below_it(part):
    wrong = set()
    for sub, allowed in LAYERS[part].items():
        for path in sorted((ROOT / part / sub).glob("*.py")):
            for name in imports_of(path):
                layer = layer_of(name, part)
                if layer is not None and layer not in allowed:
                    wrong.add(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, sorted(wrong)


def test_the_layer_rules_see_a_forbidden_import(tmp_path):
    module = tmp_path / "models" / "x.py"
    module.parent.mkdir()
    module.write_text("def f():\n    from lesionpaste.train.evaluation.maps import panel\n")
    (name,) = imports_of(module)
    assert layer_of(name, "train") == "evaluation"
    assert layer_of(name, "train") not in LAYERS["train"]["models"]
    assert layer_of("lesionpaste.train.cli", "train") is None
    assert layer_of("lesionpaste.synth.pasting.twin", "train") is None


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
