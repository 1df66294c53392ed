"""``make mutate`` with one import namespace: mutmut names each mutant after its file's path
(``train/metrics/delong.py`` -> ``train.metrics.delong``) and matches it against the module a function was
imported as at run time. The tests import ``lesionpaste.train.metrics.delong``; under mutmut, each
``lesionpaste.<part>.<module>`` is therefore the module ``<part>.<module>`` itself (mutmut's
mutated copy, in ``mutants/``), imported under its own name and entered under both. Outside
mutmut nothing changes."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from pathlib import Path

PARTS = ("bank_builder", "synth", "train")


class _Existing(importlib.abc.Loader):
    """A loader that hands out a module already imported under another name."""

    def __init__(self, module):
        self.module = module

    def create_module(self, spec):
        return self.module

    def exec_module(self, module) -> None:
        return None


class _PartsByTheirFileNames(importlib.abc.MetaPathFinder):
    """``lesionpaste.<part>[.x]`` as the module ``<part>[.x]``."""

    def find_spec(self, name, path=None, target=None):
        for part in PARTS:
            prefix = f"lesionpaste.{part}"
            if name == prefix or name.startswith(prefix + "."):
                module = importlib.import_module(name.removeprefix("lesionpaste."))
                return importlib.util.spec_from_loader(name, _Existing(module))
        return None


def install_under_mutmut() -> bool:
    """Install the finder when the tests run under mutmut (inside its ``mutants/`` copy).

    Returns:
        Whether it was installed.
    """
    if "mutmut" not in sys.modules or Path.cwd().name != "mutants":
        return False
    if not any(isinstance(f, _PartsByTheirFileNames) for f in sys.meta_path):
        sys.meta_path.insert(0, _PartsByTheirFileNames())
    return True
