"""``lp-synth``: synthesize anomalous twins; prepare, verify and preview datasets."""

from __future__ import annotations

import functools
import shlex
from pathlib import Path

import click
from tqdm import tqdm

from lesionpaste import __version__
from lesionpaste.bank_format import read_bank
from lesionpaste.cli import Group, warn_to_stderr
from lesionpaste.config import config_value
from lesionpaste.contract import preparation_of
from lesionpaste.dataset_archive import dataset_directory, extra_files, is_archive, pack, unpack
from lesionpaste.dataset_format import (
    bank_source_ids,
    ids_of_sources,
    read_dataset_json,
    verify,
)
from lesionpaste.errors import LesionPasteError
from lesionpaste.outputs import check_output
from lesionpaste.recipes import parse_window
from lesionpaste.synth.inputs.evaluation_set import evaluation_images, leave_out_sources
from lesionpaste.synth.inputs.ground_truth import check_mask_headers
from lesionpaste.synth.inputs.locations import (
    bank_studies,
    normals_inputs,
    refuse_volumes_for_fundus,
    resolve_bank,
    resolve_normals,
    select,
    setting,
)
from lesionpaste.synth.inputs.normals import SPLIT_GROUP, patients_with_disease
from lesionpaste.synth.pasting.augment import AugmentConfig
from lesionpaste.synth.pasting.colour import colour_luts, pooled_normals_histogram
from lesionpaste.synth.pasting.tiers import Tier, make_tiers
from lesionpaste.synth.pasting.twin import COUNT_DISTRIBUTIONS, PasteConfig
from lesionpaste.synth.run.job import Job
from lesionpaste.synth.run.runner import chunk_size_for, run_synthesis
from lesionpaste.synth.sharing.card import count_table, dataset_card
from lesionpaste.synth.sharing.export import export_dataset
from lesionpaste.synth.sharing.export_layouts import LAYOUTS, Split
from lesionpaste.synth.sharing.preview import lesion_counts, twin_grid

PROG = "lp-synth"
#: Options that change how a run executes, not what it writes: left out of the recorded
#: command, so that datasets made with any -j or backend are byte-identical.
EXECUTION_OPTIONS = {
    "-j": 1,
    "--jobs": 1,
    "--backend": 1,
    "--scheduler": 1,
    "-o": 1,
    "--out": 1,
    "--overwrite": 0,
    "-q": 0,
    "--quiet": 0,
}


def provenance_command() -> str:
    """The command line as typed, less the execution-only options.

    Returns:
        The shell-quoted command recorded in ``dataset.json``.
    """
    argv = click.get_current_context().meta["lesionpaste.argv"]
    kept, skip = [], 0
    for arg in argv:
        if skip:
            skip -= 1
            continue
        name = arg.split("=", 1)[0]
        if name in EXECUTION_OPTIONS:
            skip = EXECUTION_OPTIONS[name] if "=" not in arg else 0
            continue
        kept.append(arg)
    return shlex.join(kept)


def _lambda(text: str) -> tuple[float, float] | None:
    if text.lower() == "none":
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) == 1:
        values *= 2
    if len(values) != 2:  # the range itself is PasteConfig's to check
        raise LesionPasteError(
            f"--lambda {text!r}: expected LOW,HIGH or one value in [0, 1], or none"
        )
    return values[0], values[1]


def _count_range(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    parts = text.split(",")
    if len(parts) != 2 or not all(p.strip().isascii() and p.strip().isdigit() for p in parts):
        raise LesionPasteError(
            f"--count-range {text!r}: expected LOW,HIGH whole numbers, e.g. 1,60"
        )
    return int(parts[0]), int(parts[1])  # the bounds themselves are PasteConfig's to check


def _refuse_options_before(ctx: click.Context) -> None:
    """The dataset options given before a subcommand would be ignored by it: refuse them."""
    given = [
        "/".join([param.opts[-1], *param.secondary_opts])
        for param in ctx.command.params
        if ctx.get_parameter_source(param.name) is click.core.ParameterSource.COMMANDLINE
    ]
    if given:
        sub = ctx.invoked_subcommand
        raise LesionPasteError(
            f"{', '.join(given)} {'is an option' if len(given) == 1 else 'are options'} for "
            f"making a dataset, not for {sub}; give {sub}'s own options after it "
            f"(see {PROG} {sub} --help)"
        )


class _Progress:
    def __init__(self, quiet: bool, desc: str):
        # disable=None: a bar on a terminal, none in logs and CI
        self.bar = None if quiet else tqdm(desc=desc, unit="img", leave=False, disable=None)

    def __call__(self, n: int, total: int) -> None:
        if self.bar is not None:
            self.bar.total = total
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _report(summary, out: Path, quiet: bool, what: str) -> None:
    warn = warn_to_stderr(PROG)
    skipped = [s for s in summary.skipped if not s.get("left_out")]  # named once already
    for s in skipped[:10]:
        warn(f"skipped {s['id']}: {s['reason']}")
    if len(skipped) > 10:
        warn(f"... and {len(skipped) - 10} more skipped (listed in dataset.json)")
    if not quiet:
        made = summary.written - summary.resumed
        rate = made / summary.seconds if summary.seconds > 0 else 0.0
        click.echo(
            f"wrote {out}: {summary.written} {what}, {len(summary.skipped)} skipped, "
            f"{summary.resumed} resumed from an earlier run; {summary.seconds:.1f} s "
            f"({rate:.1f} images/s)"
        )


RUN_OPTION_NAMES = (
    "jobs",
    "backend",
    "scheduler",
    "overwrite",
    "strict",
    "quiet",
    "limit",
    "split_part",
    "split_fraction",
    "split_seed",
    "group_pattern",
    "per_study",
)


def _run_options(f):
    """Add the options every run shares, handed to the command as one ``run`` dict."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        run = {name: kwargs.pop(name) for name in RUN_OPTION_NAMES}
        return f(*args, run=run, **kwargs)

    decorated = wrapper
    for option in reversed(
        [
            click.option("-j", "--jobs", default=1, show_default=True, help="Worker processes."),
            click.option(
                "--backend",
                type=click.Choice(["loky", "dask"]),
                default="loky",
                show_default=True,
                help="joblib backend; dask runs on a Dask cluster.",
            ),
            click.option("--scheduler", help="Dask scheduler address (with --backend dask)."),
            click.option("--overwrite", is_flag=True, help="Replace an existing output directory."),
            click.option("--strict", is_flag=True, help="Stop at the first unreadable image."),
            click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary."),
            click.option("--limit", type=int, help="Use only the first N images (a quick trial)."),
            click.option(
                "--split",
                "split_part",
                type=click.Choice(["train", "rest"]),
                help="train: the normals of a fixed training fraction; rest: all others.",
            ),
            click.option(
                "--split-fraction",
                default=0.8,
                show_default=True,
                help="Share of the normal images in the training split.",
            ),
            click.option("--split-seed", default=0, show_default=True),
            click.option(
                "--group-pattern",
                default=SPLIT_GROUP,
                help="Regex whose first group is an image id's patient, for --split (default: "
                "10007_left/10007_right and Image_01L/Image_01R are one patient each).",
            ),
            click.option(
                "--per-study",
                default=8,
                show_default=True,
                help="MosMed folder: normal slices taken from each CT-0 study.",
            ),
        ]
    ):
        decorated = option(decorated)
    return decorated


@click.group(cls=Group, invoke_without_command=True)
@click.version_option(__version__, prog_name="lesionpaste")
@click.option("--bank", help="Lesion bank (else $LP_BANK, lesionpaste.toml, or the one in banks/).")
@click.option(
    "--normals",
    help="Folder of normal images, an EyeQ/EyePACS label CSV, or a MosMed folder (CT-0 "
    "slices) (else $LP_NORMALS or lesionpaste.toml).",
)
@click.option("--images", help="With a label CSV: the image folder (default: images/ beside it).")
@click.option(
    "--grade", type=int, multiple=True, help="Keep these DR grades (label file; default 0)."
)
@click.option(
    "--quality",
    type=click.Choice(["good", "usable", "reject"]),
    help="EyeQ: keep images of this quality (default good).",
)
@click.option("-o", "--out", help="Output directory (default datasets/<bank>-synth).")
@click.option(
    "--ratios",
    help="Tier ratios, e.g. 0.8,0.1,0.05,0.05 (fundus: MA / MA+HE / MA+HE+SE / MA+HE+SE+EX).",
)
@click.option(
    "--lambda",
    "lam",
    default=None,
    help="MixUp λ range, a fixed value (0.7), or none for a hard paste "
    "(default 0.5,0.8; cutpaste: none).",
)
@click.option("--flip/--no-flip", default=True, show_default=True)
@click.option("--rotation/--no-rotation", default=True, show_default=True)
@click.option("--resize/--no-resize", default=True, show_default=True)
@click.option("--contrast/--no-contrast", default=True, show_default=True)
@click.option("--brightness/--no-brightness", default=True, show_default=True)
@click.option(
    "--colour/--no-colour",
    default=False,
    show_default=True,
    help="Hue/saturation distortion (off in the paper's best setting).",
)
@click.option(
    "--lesion-scale",
    default=1.0,
    show_default=True,
    help="Multiply the matched lesion scale (1: the paper's; 2 makes a 256-pixel "
    "microaneurysm about two pixels wide).",
)
@click.option(
    "--edge-blur",
    default=0.0,
    show_default=True,
    help="Feather each lesion's edge inside its mask: a Gaussian of this sigma, in output "
    "pixels (0: MixUp's hard edge, the paper's).",
)
@click.option(
    "--count",
    "count_distribution",
    type=click.Choice(COUNT_DISTRIBUTIONS),
    default="uniform",
    show_default=True,
    help="How each twin's lesion count is drawn: uniform (the paper's N ~ U(1, 1.5 N_L)) or "
    "loguniform (each doubling about equally likely: few-lesion twins, like early disease, "
    "are common).",
)
@click.option(
    "--count-range",
    metavar="LOW,HIGH",
    help="Bounds of the lesion count, e.g. 1,60 (default: the paper's 1 to 1.5 N_L, N_L the "
    "lesions of the twin's tier in the bank).",
)
@click.option("--size", default=256, show_default=True, help="Output side in pixels (0 = keep).")
@click.option(
    "--preprocess",
    type=click.Choice(["bank", "none"]),
    default="bank",
    show_default=True,
    help="Apply the bank's recipe to the normals, or use them as they "
    "are (already normalised elsewhere, e.g. eyepacs256).",
)
@click.option(
    "--window",
    "window_spec",
    help="CT: window HU normals (DICOM, NIfTI) at LEVEL,WIDTH, e.g. -300,1400, when the bank "
    "was cut from 8-bit slices (default: the bank's own window).",
)
@click.option(
    "--match-colour", is_flag=True, help="Map lesion colours onto the normals' colour distribution."
)
@click.option(
    "--colour-sample", default=200, show_default=True, help="Normals sampled for --match-colour."
)
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--method",
    type=click.Choice(["lesionpaste", "cutpaste"]),
    default="lesionpaste",
    show_default=True,
    help="cutpaste: the baseline pasting a rectangle cut from the "
    "normal image itself (the bank then only gives the preprocessing recipe).",
)
@_run_options
@click.pass_context
def cli(
    ctx,
    bank,
    normals,
    images,
    grade,
    quality,
    out,
    ratios,
    lam,
    flip,
    rotation,
    resize,
    contrast,
    brightness,
    colour,
    lesion_scale,
    edge_blur,
    count_distribution,
    count_range,
    size,
    preprocess,
    window_spec,
    match_colour,
    colour_sample,
    seed,
    method,
    run,
) -> None:
    """Write one MixUp-pasted anomalous twin per normal image, as a shareable dataset.

    Subcommands prepare an evaluation set, verify, preview, pack or unpack a dataset, or
    export it into a layout other tools read.
    """
    if ctx.invoked_subcommand is not None:
        _refuse_options_before(ctx)
        return
    if size < 0:
        raise LesionPasteError("--size must be 0 (keep) or a positive number of pixels")
    bank_path = resolve_bank(bank)
    lesion_bank = read_bank(bank_path)
    tiers = _tiers(method, lesion_bank, ratios, match_colour)
    if lam is None:
        lam = "none" if method == "cutpaste" else "0.5,0.8"
    augment = AugmentConfig(flip=flip, rotation=rotation, resize=resize, contrast=contrast,
                            brightness=brightness, colour=colour)  # fmt: skip
    if method == "cutpaste" and (count_distribution != "uniform" or count_range):
        raise LesionPasteError("--count and --count-range apply to --method lesionpaste only")
    paste = PasteConfig(  # it checks its own values
        lam=_lambda(lam), augment=augment, lesion_scale=lesion_scale, edge_blur=edge_blur,
        count=count_distribution, count_range=_count_range(count_range),
    )  # fmt: skip
    suffix = "cutpaste" if method == "cutpaste" else "synth"
    out_dir = Path(out or config_value("synth", "out") or f"datasets/{bank_path.stem}-{suffix}")
    normals = setting(normals, "LP_NORMALS", "normals")  # resolved once, for both uses
    items, missing = resolve_normals(
        normals, images, grade, quality, run["per_study"], bank_studies(lesion_bank)
    )
    inputs = [("bank", bank_path), *normals_inputs(normals, images)]
    refuse_volumes_for_fundus(items, lesion_bank)
    if run["split_part"] and normals and Path(normals).is_file():  # a label file
        run["diseased"] = patients_with_disease(Path(normals), run["group_pattern"])
    items = select(items, missing, run)
    window = _ct_window(window_spec, lesion_bank)
    luts = None
    if match_colour:
        target = pooled_normals_histogram(
            items, lesion_bank, preprocess, size, colour_sample, seed, window
        )
        luts = colour_luts(lesion_bank.histograms, target)
    job = Job(
        bank_path=bank_path.resolve(),
        bank_sha256=lesion_bank.sha256,
        tiers=tuple(tiers),
        paste=paste,
        method=method,
        seed=seed,
        size=size,
        preprocess=preprocess,
        strict=run["strict"],
        colour_luts=luts,
        colour_sample=min(colour_sample, len(items)) if match_colour else 0,
        window=window,
    )
    _run(items, missing, job, out_dir, inputs, run, "normal/anomalous pairs")


def _tiers(method: str, bank, ratios: str | None, match_colour: bool) -> list[Tier]:
    """The grade-mix tiers: the bank's (with ``--ratios``), or cutpaste's single one."""
    if method != "cutpaste":
        return make_tiers(bank.meta.modality, bank.counts(), ratios)
    if ratios or match_colour:
        raise LesionPasteError("--ratios and --match-colour apply to lesions, not to cutpaste")
    return [Tier(("CUTPASTE",), 1.0)]


def _ct_window(spec: str | None, bank) -> tuple[float, float] | None:
    """``--window LEVEL,WIDTH`` as (level, width); only for CT banks."""
    if spec is None:
        return None
    if bank.meta.modality == "fundus":
        raise LesionPasteError("--window applies to CT (HU) normals; this bank is a fundus bank")
    recipe = parse_window(spec)
    return recipe.level, recipe.width


def _run(items, missing, job: Job, out: Path, inputs: list, options: dict, what: str) -> None:
    """Run a synthesis or preparation with the shared run options, and report it (``inputs``:
    what it reads, for the output guard)."""
    progress = _Progress(options["quiet"], what.split()[-1])
    try:
        summary = run_synthesis(
            items,
            job,
            out,
            command=provenance_command(),
            inputs=inputs,
            listed_missing=missing,
            jobs=options["jobs"],
            backend=options["backend"],
            scheduler=options["scheduler"],
            overwrite=options["overwrite"],
            chunk_size=chunk_size_for(items),
            progress=progress,
            write_card=dataset_card,
        )
    finally:
        progress.close()
    _report(summary, out, options["quiet"], what)


@cli.command()
@click.option(
    "--images",
    required=True,
    help="Folder of the evaluation images, an IDRiD tree (its images with their lesion masks) "
    "or a MosMed folder (CT-0 slices 0, lesion slices 1).",
)
@click.option("--labels", help="EyeQ/EyePACS label CSV giving each image's grade.")
@click.option(
    "--label", type=int, help="Without --labels: one label for every image (IDRiD tree: 1)."
)
@click.option("--grade", type=int, multiple=True, help="Keep only these grades.")
@click.option("--quality", type=click.Choice(["good", "usable", "reject"]))
@click.option(
    "--masks",
    "masks_dir",
    type=click.Path(path_type=Path),
    help="Ground-truth masks of the images: <id>.png (union) or <TYPE>/<id>.png, prepared "
    "exactly like the images.",
)
@click.option("--bank", help="The bank whose recipe the images get (as for lp-synth).")
@click.option(
    "--like",
    "like",
    type=click.Path(path_type=Path),
    help="A synthetic dataset whose size and preprocessing to copy.",
)
@click.option("--size", default=None, type=int, help="Output side (default 256, or --like's).")
@click.option("--preprocess", type=click.Choice(["bank", "none"]), default=None)
@click.option("--window", "window_spec", help="CT: window HU images at LEVEL,WIDTH (or --like's).")
@click.option("-o", "--out", required=True, help="Output directory.")
@_run_options
def prep(
    images,
    labels,
    label,
    grade,
    quality,
    masks_dir,
    bank,
    like,
    size,
    preprocess,
    window_spec,
    out,
    run,
) -> None:
    """Write a labelled evaluation set, preprocessed exactly as the training images.

    The images the bank's lesions were cut from (and those of --like's bank) are left out.
    """
    bank_path = resolve_bank(bank)
    inputs = [("image folder", Path(images)), ("label file", labels and Path(labels))]
    inputs += [("mask folder", masks_dir), ("bank", bank_path), ("dataset given to --like", like)]
    like_meta = read_dataset_json(like) if like is not None else None
    if like_meta is not None:  # its recorded size, recipe and window, checked before use
        preparation_of(like_meta, like)
    settings = {"size": 256, "normals_preprocess": "bank", **(like_meta or {}).get("config", {})}
    size = settings["size"] if size is None else size
    preprocess = preprocess or settings["normals_preprocess"]
    lesion_bank = read_bank(bank_path)
    found = evaluation_images(Path(images), labels and Path(labels), label,
                              set(grade) if grade else None, quality, masks_dir,
                              run["per_study"], lesion_bank)  # fmt: skip
    sources = ids_of_sources(lesion_bank.meta.sources, str(bank_path))
    sources |= bank_source_ids(like_meta) if like_meta else set()
    items, left_out = leave_out_sources(found.items, sources)
    _warn_prep(found, left_out, masks_dir)
    if run["split_part"] and labels:
        run["diseased"] = patients_with_disease(Path(labels), run["group_pattern"])
    items = select(items, found.missing, run)
    check_mask_headers(items)
    like_window = settings.get("normals_window")
    window = _ct_window(window_spec, lesion_bank) or (tuple(like_window) if like_window else None)
    job = Job(
        bank_path=bank_path.resolve(),
        bank_sha256=lesion_bank.sha256,
        kind="evaluation",
        size=size,
        preprocess=preprocess,
        strict=run["strict"],
        window=window,
        masks=found.masks,
    )
    _run(items, found.missing + left_out, job, Path(out), inputs, run, "labelled images")


def _warn_prep(found, left_out: list[dict], masks_dir: Path | None) -> None:
    """One line naming the bank sources left out, one counting the images without a mask."""
    warn = warn_to_stderr(PROG)
    if left_out:
        names = [r["id"] for r in left_out]
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        warn(
            f"left out {shown}: {'a source' if len(names) == 1 else 'sources'} of the lesion "
            "bank, which an evaluation set must not hold (listed in dataset.json's skipped)"
        )
    if found.masks and found.without_masks:
        where = masks_dir if masks_dir is not None else "the IDRiD tree"
        warn(
            f"{found.without_masks} of {len(found.items)} images have no mask in {where}; they "
            "get none (counted in dataset.json's masks)"
        )


@cli.command(name="verify")
@click.argument("dataset", type=click.Path(path_type=Path))
def verify_command(dataset: Path) -> None:
    """Check a dataset: schema, counts, safe paths and every sha256.

    DATASET is a dataset directory, or an archive of one (lp-synth pack, .tar or .tar.gz):
    its members are checked first, then it is unpacked into a temporary directory, verified
    there, and removed.
    """
    with dataset_directory(dataset, check=False) as root:
        problems = (extra_files(root) if is_archive(dataset) else []) + verify(root)
        meta = None if problems else read_dataset_json(root)
    if problems:
        for problem in problems[:20]:
            click.echo(f"{PROG}: {dataset}: {problem}", err=True)
        if len(problems) > 20:
            click.echo(f"{PROG}: ... {len(problems) - 20} more problems", err=True)
        raise click.exceptions.Exit(1)
    click.echo(
        f"{dataset}: OK ({meta['kind']}, {meta['counts']['images']} images, every sha256 matches)"
    )


@cli.command(name="pack")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Archive to write: NAME.tar, or NAME.tar.gz / NAME.tgz (gzip). .tar.zst is not "
    "offered: this Python's standard library has no zstd, and zstandard is not a dependency.",
)
@click.option("--overwrite", is_flag=True, help="Replace an earlier archive written by pack.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
def pack_command(dataset: Path, out: Path, overwrite: bool, quiet: bool) -> None:
    """Write DATASET as one archive, dataset.json first: every file the dataset lists.

    The dataset is verified first; links are never followed; the archive is written under a
    temporary name and renamed when complete.
    """
    progress = _Progress(quiet, "files")
    try:
        names, left_out = pack(dataset, out, overwrite, progress)
    finally:
        progress.close()
    if left_out:
        shown = ", ".join(left_out[:5]) + (
            f" and {len(left_out) - 5} more" if len(left_out) > 5 else ""
        )
        warn_to_stderr(PROG)(f"left out {shown}: not listed by the dataset")
    if not quiet:
        click.echo(f"wrote {out}: {len(names)} files")


@cli.command(name="unpack")
@click.argument("archive", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True,
              help="Dataset directory to write.")  # fmt: skip
@click.option("--overwrite", is_flag=True, help="Replace an earlier dataset there.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
def unpack_command(archive: Path, out: Path, overwrite: bool, quiet: bool) -> None:
    """Unpack a dataset archive (lp-synth pack) into a dataset directory, safely.

    Refused before anything is written: absolute names, '..', links, devices and FIFOs,
    duplicate names, a first member other than dataset.json, and more members or bytes than
    its dataset.json allows. The dataset is written beside OUT, verified, then swapped in; on
    any failure nothing is left at OUT.
    """
    progress = _Progress(quiet, "files")
    try:
        meta = unpack(archive, out, overwrite, progress=progress)
    finally:
        progress.close()
    if not quiet:
        click.echo(f"wrote {out}: {meta['kind']}, {meta['counts']['images']} images, verified")


@cli.command(name="export")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--to", "layout", type=click.Choice(LAYOUTS), required=True,
              help="mvtec: train/good, test/good, test/lesion, ground_truth/lesion; "
              "imagefolder: normal/, anomalous/, metadata.jsonl, README.md (no masks).")  # fmt: skip
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True,
              help="Folder to write.")  # fmt: skip
@click.option("--train-fraction", default=0.8, show_default=True,
              help="mvtec, synthetic set: share of patients whose pairs go to train/.")  # fmt: skip
@click.option("--split-seed", default=0, show_default=True)
@click.option("--group-pattern", default=SPLIT_GROUP,
              help="Regex whose first group is a twin id's patient (mvtec split).")  # fmt: skip
@click.option("--overwrite", is_flag=True, help="Replace an earlier export there.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
def export_command(dataset, layout, out, train_fraction, split_seed, group_pattern, overwrite,
                   quiet) -> None:  # fmt: skip
    """Copy DATASET (a directory or archive) into a layout other tools read.

    Pixel-identical copies, with the dataset's card, dataset.json and a record of every file
    (lesionpaste-export.json). mvtec splits pairs by patient, never a pair across train and
    test; a training pair's anomalous twin is left out.
    """
    if not 0 < train_fraction < 1:
        raise LesionPasteError("--train-fraction must lie strictly between 0 and 1")
    split = Split(train_fraction, split_seed, group_pattern)
    progress = _Progress(quiet, "files")
    try:
        record = export_dataset(dataset, out, layout, command=provenance_command(), split=split,
                                overwrite=overwrite, progress=progress)  # fmt: skip
    finally:
        progress.close()
    if not quiet:
        counts = ", ".join(f"{n} in {folder}/" for folder, n in record["counts"].items())
        click.echo(f"wrote {out} ({layout}): {counts}")


@cli.command()
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True, help="PNG to write.")
@click.option("--count", default=8, show_default=True, help="Twin pairs shown.")
@click.option("--overwrite", is_flag=True)
def preview(dataset: Path, out: Path, count: int, overwrite: bool) -> None:
    """Normal / anomalous twins side by side, pasted masks outlined; prints the twins'
    pasted-lesion counts per tier."""
    from lesionpaste.files import refuse_existing
    from lesionpaste.images import write_png

    if out.suffix.lower() != ".png":
        raise LesionPasteError(f"{out}: the preview is written as PNG; name it *.png")
    check_output(out, "picture", [("dataset", dataset)], overwrite)
    refuse_existing(out, overwrite)
    write_png(out, twin_grid(dataset, count), overwrite, "the preview")
    click.echo(f"wrote {out}")
    click.echo("pasted lesions per twin, by tier:")
    for line in count_table(lesion_counts(dataset)):
        click.echo(line)


def main() -> None:
    """Console entry point."""
    cli(prog_name=PROG)
