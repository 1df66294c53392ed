"""The audit's kinds of bugs, planted again by hand: one at a time in a copy of the tree, each
run against the tests aimed at it; prints whether the tests noticed (a failing test: killed).

    .venv/bin/python tests/plant_audit_bugs.py      (about a minute; exits 1 if one survives)
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent
PLANTS = [
    (
        "MixUp one-pixel: lambda and 1-lambda swapped",
        "synth/pasting/paste.py",
        "blended = (1.0 - lam) * image[y, x].astype(np.float32) + lam * patch[0, 0]",
        "blended = lam * image[y, x].astype(np.float32) + (1.0 - lam) * patch[0, 0]",
        "tests/test_paste.py",
    ),
    (
        "twin union mask: = instead of |=",
        "synth/pasting/twin.py",
        "union[y : y + mask.shape[0], x : x + mask.shape[1]] |= mask",
        "union[y : y + mask.shape[0], x : x + mask.shape[1]] = mask",
        "tests/test_paste.py",
    ),
    (
        "paired DeLong z: sign flipped",
        "train/metrics/delong.py",
        "z = diff / math.sqrt(var)",
        "z = -diff / math.sqrt(var)",
        "tests/test_delong.py tests/test_auc.py tests/test_normals.py tests/test_folds.py",
    ),
    (
        "scheduler.step() removed",
        "train/training/loop.py",
        "    s.scheduler.step()\n",
        "    pass\n",
        "tests/test_train_cli.py::test_the_learning_rate_follows_the_cosine_schedule_as_logged",
    ),
    (
        "scheduler.step() removed (the schedule's own test)",
        "train/training/schedule.py",
        "return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)",
        "return optimizer, torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0)",
        "tests/test_schedule.py",
    ),
    (
        "horizontal flip does nothing",
        "synth/pasting/augment.py",
        "patch, mask = patch[:, ::-1], mask[:, ::-1]",
        "pass",
        "tests/test_paste.py tests/test_augment.py",
    ),
    (
        "contrast inverted within its range",
        "synth/pasting/augment.py",
        "out = out * (contrast * brightness) + mean * (1.0 - contrast) * brightness",
        "out = out * ((2.0 - contrast) * brightness) + mean * (1.0 - (2.0 - contrast)) * brightness",
        "tests/test_paste.py tests/test_augment.py",
    ),
    (
        "hue shift does nothing",
        "synth/pasting/augment.py",
        "hsv[..., 0] = (hsv[..., 0] + hue * 360.0) % 360.0",
        "pass",
        "tests/test_paste.py tests/test_augment.py",
    ),
    (
        "every source given source 0's colour table",
        "synth/pasting/twin.py",
        "colour_luts[lesion.source]",
        "colour_luts[0]",
        "tests/test_paste.py",
    ),
    (
        "training split: same size, other members",
        "synth/inputs/normals.py",
        'return int.from_bytes(digest[:8], "big") / 2**64 < fraction',
        'return int.from_bytes(digest[:8], "big") / 2**64 >= 1 - fraction',
        "tests/test_delong.py tests/test_auc.py tests/test_normals.py tests/test_folds.py",
    ),
    (
        "validation split breaks twin pairs",
        "train/training/schedule.py",
        "return np.array([t in chosen for t in twin_ids], dtype=bool)",
        "return np.array([t in chosen and i % 2 == 0 for i, t in enumerate(twin_ids)], dtype=bool)",
        "tests/test_delong.py tests/test_auc.py tests/test_normals.py tests/test_folds.py tests/test_schedule.py",
    ),
    (
        "grade 0 against grades >= K instead of grade K",
        "train/metrics/auc.py",
        "(labels == 0) | (labels == k)",
        "(labels == 0) | (labels >= k)",
        "tests/test_delong.py tests/test_auc.py tests/test_normals.py tests/test_folds.py",
    ),
]
work = Path(tempfile.mkdtemp(prefix="lp-audit-")) / "tree"
survived = 0
for name, rel, old, new, tests in PLANTS:
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(
        SRC, work, ignore=shutil.ignore_patterns(".venv", "mutants", ".git", "__pycache__")
    )
    path = work / rel
    text = path.read_text()
    assert text.count(old) == 1, (name, text.count(old))
    path.write_text(text.replace(old, new))
    shared = os.environ.get("LP_SHARED_DATA", str(SRC.parent / "shared" / "data"))
    env = {**os.environ, "PYTHONPATH": str(work), "LP_SHARED_DATA": shared}
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests.split()],
        check=False,
        cwd=work,
        capture_output=True,
        text=True,
        env=env,
    )
    verdict = (
        "killed"
        if r.returncode == 1
        else ("SURVIVED" if r.returncode == 0 else f"rc {r.returncode}")
    )
    survived += verdict != "killed"
    print(f"{verdict:9} {name}  [{rel}; {tests}]", flush=True)
shutil.rmtree(work.parent)
sys.exit(1 if survived else 0)
