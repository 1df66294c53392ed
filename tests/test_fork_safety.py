"""Importing LesionPaste runs no torch computation: a process that imports it and then forks
(a DataLoader worker, joblib, a test runner's fork server) can still compute in the child.

A convolution run at import time (the check of oneDNN's fused call did) starts torch's CPU
thread pool, and a child forked after that deadlocks at its first parallel operation."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import importlib, os, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
pid = os.fork()
if pid == 0:
    import torch
    from torch import nn
    conv = nn.Sequential(nn.Conv2d(3, 32, 3), nn.Conv2d(32, 32, 3))
    conv(torch.rand(4, 3, 48, 48))
    os._exit(0)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


#: every command's entry modules and the inference modules (one child: each import is the cost)
MODULES = [
    "lesionpaste.train.cli", "lesionpaste.train.predict_cli", "lesionpaste.train.export_cli",
    "lesionpaste.synth.cli", "lesionpaste.bank_builder.cli", "lesionpaste.train.models.fused",
    "lesionpaste.train.deploy.predict",
]  # fmt: skip


def test_a_process_that_imports_lesionpaste_can_fork_and_compute():
    done = subprocess.run(  # a deadlock shows as the timeout
        [sys.executable, "-c", CHILD, *MODULES], check=False, capture_output=True, text=True,
        timeout=90,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
