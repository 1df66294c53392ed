"""``lp-train`` as one Python call: a request that checks its own options, and the run made
from it, with the same output guard, the same refusals and the same files as the command line
(which only parses, builds a ``TrainRequest`` and calls ``train_run``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lesionpaste.contract import Preparation, preparation_of
from lesionpaste.dataset_archive import dataset_directory
from lesionpaste.dataset_format import bank_source_ids, read_dataset_json
from lesionpaste.errors import LesionPasteError
from lesionpaste.outputs import check_output
from lesionpaste.train.runs.card import write_card
from lesionpaste.train.runs.contract import write_run_contract
from lesionpaste.train.runs.crossval import cross_validate
from lesionpaste.train.runs.folder import (
    dataset_digest,
    eval_inputs,
    locked,
    prepare_run,
    rank,
    refuse_a_folder_that_is_not_a_run,
    replacing,
    train_inputs,
    work_dir,
)
from lesionpaste.train.runs.folds import DEFAULT_GROUP
from lesionpaste.train.training.config import TrainConfig
from lesionpaste.train.training.dataset import LoadedDataset, load_dataset
from lesionpaste.train.training.heldout import HeldoutPairs, heldout_pairs
from lesionpaste.train.training.loop import refuse_maps_without_masks, train, validation_mask


@dataclass
class TrainRequest:
    """Everything ``lp-train`` is asked: the training configuration, what it reads, where it
    writes, and how. Built, it has checked the rules between options (each lives here once;
    the configuration's own values are ``TrainConfig``'s to check).

    Args:
        dataset: the synthetic dataset (a directory or an ``lp-synth pack`` archive), or an
            evaluation set with ``config.supervised``.
        run: the run directory to write.
        config: the training configuration.
        eval_set: the evaluation set: split into folds with ``folds``; otherwise the command
            line evaluates on it after training, into ``RUN/eval`` (checked before training).
        heldout_val: ``--heldout-val``, the held-out-lesion validation dataset, or None.
        folds: k-fold cross-validation on ``eval_set`` (the MosMed protocol); 0 = off.
        group_pattern: the regular expression whose first group is an image's patient or
            study, for ``folds`` (None: the default).
        verify: check every image's sha256 while reading.
        overwrite: replace an earlier run at ``run`` (kept whole until the new one is done).
        size_from_dataset: train at the dataset's image side, not ``config.size``
            (``lp-train`` without ``--size``).

    Raises:
        LesionPasteError: ``--keep-best`` with ``--folds``, ``--heldout-val`` with
            ``--supervised`` or ``--folds``, or ``--folds`` without an evaluation set.
    """

    dataset: Path
    run: Path
    config: TrainConfig
    eval_set: Path | None = None
    heldout_val: Path | None = None
    folds: int = 0
    group_pattern: str | None = None
    verify: bool = True
    overwrite: bool = False
    size_from_dataset: bool = False

    def __post_init__(self) -> None:
        if self.config.keep_best and self.folds:
            raise LesionPasteError("--keep-best keeps one run's epoch; not with --folds")
        if self.heldout_val is not None and (self.config.supervised or self.folds):
            raise LesionPasteError(
                "--heldout-val validates a synthetic run; not with --supervised or --folds"
            )
        if self.folds and self.eval_set is None:
            raise LesionPasteError("--folds needs --eval EVALSET (the images to split into folds)")


def train_run(
    request: TrainRequest, quiet: bool = False, warn: Callable[[str], None] = lambda m: None
) -> dict | None:
    """Make the run a request asks for: its output checked before any work, the dataset read,
    trained (or cross-validated) in a work folder swapped in when done, with its input
    contract and model card.

    Args:
        request: what to train, from what, into where.
        quiet: no progress bars.
        warn: called with a message when the dataset records no input contract.

    Returns:
        The last (or kept) epoch's log entry; None for a cross-validation, or on a
        distributed rank other than 0.

    Raises:
        LesionPasteError: an unsafe output (``lesionpaste.outputs.check_output``), a folder
            that is not a run, an unreadable or unsuitable dataset, a validation share
            without both classes for ``--keep-best`` or ``--heldout-val``, or any refusal of
            the training itself.
    """
    r = request
    check_output(r.run, "run", train_inputs(r.dataset, r.eval_set, r.config.weights,
                                            r.heldout_val), r.overwrite)  # fmt: skip
    refuse_a_folder_that_is_not_a_run(r.run)
    if r.eval_set is not None and not r.folds:  # RUN/eval is written after training: check now
        check_output(r.run / "eval", "evaluation", eval_inputs(r.run, r.eval_set, None), True)
    data, preparation, config = _read_dataset(r, warn)
    heldout = _heldout(r, data, config) if config.keep_best or r.heldout_val else None
    work = work_dir(r.run, r.overwrite)
    if r.folds:
        evaluation = load_dataset(r.eval_set, verify=r.verify)
        with locked(r.run), replacing(work, r.run):
            cross_validate(data, evaluation, work, config, r.folds,
                           r.group_pattern or DEFAULT_GROUP, quiet)  # fmt: skip
        return None
    with locked(r.run), replacing(work, r.run):
        prepare_run(work, config)
        entry = train(data, work, config, quiet=quiet, heldout=heldout)
        if rank() == 0:  # how a raw image becomes its input, and the model card
            contract = write_run_contract(work, preparation) if preparation else None
            write_card(work, contract, data.meta)
    return entry if rank() == 0 else None


def _read_dataset(
    r: TrainRequest, warn: Callable[[str], None]
) -> tuple[LoadedDataset, Preparation | None, TrainConfig]:
    """The training images (an archive is unpacked safely into a temporary folder, read and
    removed), their preparation, and the configuration completed from them."""
    supervised, maps = r.config.supervised, r.config.maps
    with dataset_directory(r.dataset, check=r.verify) as root:
        if read_dataset_json(root)["kind"] != "synthetic" and not supervised:
            raise LesionPasteError(
                f"{r.dataset} is an evaluation set; train on a synthetic dataset, or pass "
                "--supervised to train on its real labels (the supervised baseline)"
            )
        data = load_dataset(root, verify=r.verify, masks=maps)
        manifest_sha256 = dataset_digest(root)
    data.root = Path(r.dataset)
    try:
        preparation = preparation_of(data.meta, r.dataset)
    except LesionPasteError as exc:
        warn(
            f"{exc}: the run records no input contract, so lp-predict and lp-export will "
            "need --like DATASET (a dataset prepared as its images were)"
        )
        preparation = None
    if maps:
        refuse_maps_without_masks(data)
    if supervised:  # normal (grade 0) against every abnormal grade
        data.labels = (data.labels > 0).astype(np.int64)
    config = dataclasses.replace(
        r.config,
        size=int(data.images.shape[1]) if r.size_from_dataset else r.config.size,
        dataset_sha256=manifest_sha256,
        bank_sources=sorted(bank_source_ids(data.meta)),
    )
    return data, preparation, config


def _heldout(r: TrainRequest, data: LoadedDataset, config: TrainConfig) -> HeldoutPairs | None:
    """With ``--keep-best`` or ``--heldout-val``: the validation share holds both classes; with
    ``--heldout-val``, its held-out pairs (only the validation normals' twins are read).
    ``config`` records the held-out dataset's digest."""
    validation = validation_mask(data, config)
    if len(set(data.labels[validation].tolist())) != 2:
        raise LesionPasteError(
            f"--val-fraction {config.val_fraction}: the validation images hold "
            f"{int(validation.sum())} image(s), not both classes; --keep-best and "
            "--heldout-val choose on them"
        )
    if r.heldout_val is None:
        return None
    wanted = {data.twin_ids[i] for i in np.flatnonzero(validation)}
    with dataset_directory(r.heldout_val, check=r.verify) as root:
        other = load_dataset(root, verify=r.verify, twins=wanted)
        config.heldout_val_sha256 = dataset_digest(root)
    other.root = Path(r.heldout_val)
    return heldout_pairs(data, other, validation)
