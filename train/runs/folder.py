"""A run directory: checked against its configuration, locked while it trains, trained in a
hidden work folder when it replaces an earlier run, and swapped in only when done."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

from lesionpaste.digests import sha256_file
from lesionpaste.errors import LesionPasteError
from lesionpaste.file_names import CHECKPOINT, MANIFEST, RUN_CONFIG, SCORES
from lesionpaste.files import entries, output_lock, remove_temp_files, swap_in, write_text_atomic
from lesionpaste.jsonfiles import saved_json
from lesionpaste.outputs import is_run, real
from lesionpaste.train.training.checkpoints import load_checkpoint
from lesionpaste.train.training.config import TrainConfig, with_defaults


def dataset_digest(root: Path) -> str:
    """The sha256 of a dataset's manifest (which holds every image's sha256): what a run
    records of the dataset it trained on.

    Args:
        root: the dataset directory.

    Returns:
        The hex sha256 of its ``manifest.csv``.

    Raises:
        LesionPasteError: no manifest, or not a regular file.
    """
    return sha256_file(Path(root) / MANIFEST)


def prepare_run(run: Path, config: TrainConfig) -> None:
    """Check that ``run`` is this configuration's run (or new), then record the config.

    Called with the run's lock held: temporary files left by a killed run are removed.

    Args:
        run: the run directory (created when new).
        config: the run's configuration, written to ``config.json``.

    Raises:
        LesionPasteError: ``run`` holds a run of another configuration, or is a folder that
            is not a run.
    """
    if rank() != 0:
        return  # rank 0 prepares; the others wait for it (a barrier) before reading the run
    saved = run / RUN_CONFIG
    if saved.exists():
        previous = saved_json(saved)
        if previous is None and (run / CHECKPOINT).exists():
            # the checkpoint records its configuration too: judge by it, keep the training
            previous = load_checkpoint(run / CHECKPOINT).get("config")
        elif previous is None:
            previous = asdict(config)  # nothing trained yet: nothing to lose
        if with_defaults(previous) != asdict(config):
            raise LesionPasteError(
                f"{run} holds a run with another configuration; rerun it with the "
                "same options to resume, use another --out, or pass --overwrite"
            )
    elif entries(run):
        raise LesionPasteError(f"{run} exists and is not a run directory; use another --out")
    run.mkdir(parents=True, exist_ok=True)
    remove_temp_files(run)
    write_text_atomic(saved, json.dumps(asdict(config), indent=2) + "\n")


def work_dir(run: Path, overwrite: bool) -> Path:
    """Where this run trains: ``run`` itself, or, when ``--overwrite`` replaces an earlier
    run there, the hidden sibling ``.NAME.partial``, swapped in only once training is done
    (so a failed or killed replacement leaves the earlier run whole).

    Args:
        run: the run directory the user gave.
        overwrite: whether ``--overwrite`` was given.

    Returns:
        ``run``, or the hidden ``.NAME.partial`` beside its real path.
    """
    if overwrite and entries(run):
        resolved = real(run)
        return resolved.with_name(f".{resolved.name}.partial")
    return run


@contextlib.contextmanager
def replacing(work: Path, run: Path):
    """Around the training of ``work``: when it replaces the run at ``run``, start it afresh
    (removing what an interrupted replacement left), swap it in once done, and remove it on
    failure, so the earlier run stays whole either way (rank 0 only).

    Args:
        work: where the run trains (``work_dir``).
        run: the run directory the user gave.

    Yields:
        Nothing (None), while the run trains.
    """
    if work == run or rank() != 0:
        yield
        return
    shutil.rmtree(work, ignore_errors=True)
    try:
        yield
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    swap_in(work, run)


def train_inputs(
    dataset: Path, eval_set: Path | None, weights: str, heldout: Path | None = None
) -> list:
    """What ``lp-train`` reads (an output must not overlap them): the dataset, the
    evaluation set, a weights file and the held-out validation dataset.

    Args:
        dataset: the synthetic dataset directory.
        eval_set: the evaluation set, or None.
        weights: the ``--weights`` value (a path unless ``imagenet`` or ``none``).
        heldout: the ``--heldout-val`` dataset, or None.

    Returns:
        ``(what, path)`` pairs for ``check_output``; a path is None when not given.
    """
    weights_file = Path(weights) if weights not in ("imagenet", "none") else None
    return [
        ("dataset", dataset),
        ("evaluation set", eval_set),
        ("weights file", weights_file),
        ("held-out validation dataset", heldout),
    ]


def refuse_a_folder_that_is_not_a_run(run: Path) -> None:
    """A run (or cross-validation) goes into a new or empty folder, or resumes a run: never
    into another folder, where its files could replace ones of the same name.

    Args:
        run: the run (or cross-validation) directory.

    Raises:
        LesionPasteError: ``run`` holds files but is not a run.
    """
    found = entries(run)
    if found and not is_run(run, found):
        raise LesionPasteError(f"{run} exists and is not a run directory; use another --out")


def rank() -> int:
    """This process's rank under torchrun (0 alone).

    Returns:
        ``$RANK`` as an integer, 0 when it is not set.
    """
    return int(os.environ.get("RANK", "0"))


def locked(run: Path):
    """The run's lock (rank 0 only: the other ranks of a torchrun job share it).

    Args:
        run: the run directory.

    Returns:
        A context manager holding the lock (a no-op one on other ranks); entering it raises
        ``LesionPasteError`` when another live run holds the lock.
    """
    return output_lock(run, "lp-train") if rank() == 0 else contextlib.nullcontext()


def eval_inputs(run: Path, eval_set: Path, other: Path | None) -> list:
    """What lp-eval reads: the run's own files (an evaluation folder may lie inside the run,
    as RUN/eval does, but may not be or hold them), the evaluation set, the compared run.

    Args:
        run: the run directory.
        eval_set: the evaluation set directory.
        other: the compared run or scores folder, or None.

    Returns:
        ``(what, path)`` pairs for ``check_output``.
    """
    inputs = [("run's checkpoint", run / CHECKPOINT), ("evaluation set", eval_set)]
    if other is not None:
        inputs += [("compared run's checkpoint", other / CHECKPOINT)]
        inputs += [("compared scores", other / SCORES)]
    return inputs
