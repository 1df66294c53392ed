"""``lp-bank``: build a lesion bank, summarise it, and preview it as a contact sheet."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
from tqdm import tqdm

from lesionpaste import __version__, mosmed_files
from lesionpaste.bank_builder import idrid, mosmed
from lesionpaste.bank_builder.annotated import FUNDUS_TYPES
from lesionpaste.bank_builder.build import build_bank
from lesionpaste.bank_builder.loaders import load_ct_slice, load_fundus
from lesionpaste.bank_builder.sheet import contact_sheet
from lesionpaste.bank_format import read_bank
from lesionpaste.cli import Group, command_line, warn_to_stderr
from lesionpaste.config import resolve_root
from lesionpaste.ct_files import is_dicom
from lesionpaste.errors import LesionPasteError
from lesionpaste.files import refuse_existing
from lesionpaste.images import write_png
from lesionpaste.outputs import check_output
from lesionpaste.recipes import GrahamRecipe, NoRecipe, Recipe, WindowRecipe, parse_window

PROG = "lp-bank"


@click.group(cls=Group)
@click.version_option(__version__, prog_name="lesionpaste")
def cli() -> None:
    """Build and inspect lesion banks (HDF5) from pixel-annotated images."""


def _recipe(name: str | None, default: str, window: str) -> Recipe:
    name = name or default
    return {"graham": GrahamRecipe, "none": NoRecipe}.get(name, lambda: parse_window(window))()


def _mask_specs(specs: tuple[str, ...]) -> dict[str, Path]:
    masks: dict[str, Path] = {}
    for spec in specs:
        lesion_type, sep, path = spec.partition("=")
        lesion_type = lesion_type.strip().upper()
        if not sep or not lesion_type.replace("_", "").isalnum() or not path:
            raise LesionPasteError(f"--mask {spec!r}: expected TYPE=PATH, e.g. MA=masks/ma.png")
        if lesion_type == "OD":
            raise LesionPasteError("--mask OD=...: the optic disc is anatomy, not a lesion")
        if lesion_type in masks:
            raise LesionPasteError(f"--mask: lesion type {lesion_type} given twice")
        masks[lesion_type] = Path(path)
    if not masks:
        raise LesionPasteError("--source folder needs at least one --mask TYPE=PATH")
    return masks


def _infer_source(source: str | None, ids: tuple[str, ...], image: Path | None) -> str:
    if source:
        return source
    if image is not None:
        return "folder"
    if ids and all(i.lower().startswith("study") for i in ids):
        return "mosmed"
    return "idrid"


@cli.command()
@click.argument("ids", nargs=-1)
@click.option(
    "--source",
    type=click.Choice(["idrid", "mosmed", "folder"]),
    help="Where the annotations come from (default: from the ids, idrid_NN or study_NNNN).",
)
@click.option(
    "--root", help="Dataset root (else $LP_IDRID_ROOT / $LP_MOSMED_ROOT or lesionpaste.toml)."
)
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    help="Bank file to write (default banks/<ids>.h5).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing bank file.")
@click.option(
    "--preprocess",
    type=click.Choice(["graham", "window", "none"]),
    help="Recipe applied to the source (default: graham for fundus, window for HU CT).",
)
@click.option(
    "--window",
    "window_spec",
    default="-300,1400",
    show_default=True,
    help="CT window LEVEL,WIDTH in HU.",
)
@click.option(
    "--slices", help="MosMed: axial slices to use, e.g. 12,14-16 (default: all with lesions)."
)
@click.option(
    "--image", type=click.Path(path_type=Path), help="Folder source: the annotated image."
)
@click.option(
    "--mask",
    "mask_specs",
    multiple=True,
    metavar="TYPE=PATH",
    help="Folder source: a lesion mask, repeatable (e.g. --mask HE=he.png).",
)
@click.option(
    "--modality",
    type=click.Choice(["fundus", "ct"]),
    help="Folder source: image kind (default: ct for DICOM, else fundus).",
)
@click.option("--pixel-spacing", type=float, help="Folder source: pixel size in mm (CT).")
@click.option("--licence", default="unknown", help="Folder source: the image's licence.")
@click.option("--attribution", default="unknown", help="Folder source: whom to credit.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
def build(
    ids,
    source,
    root,
    out,
    overwrite,
    preprocess,
    window_spec,
    slices,
    image,
    mask_specs,
    modality,
    pixel_spacing,
    licence,
    attribution,
    quiet,
) -> None:
    """Build a lesion bank from IDS (e.g. idrid_48, or several) or from --image/--mask."""
    started = time.perf_counter()
    warn = warn_to_stderr(PROG)
    source = _infer_source(source, ids, image)
    if source == "idrid":
        plan = _idrid_plan(ids, root, preprocess, window_spec, warn)
    elif source == "mosmed":
        plan = _mosmed_plan(ids, root, preprocess, window_spec, slices)
    else:
        plan = _folder_plan(
            ids, image, mask_specs, modality, preprocess, window_spec, pixel_spacing, licence,
            attribution,
        )  # fmt: skip
    names, sources, recipe = plan.names, plan.sources, plan.recipe
    out = _default_out(out, names)
    several = source == "mosmed" or len(names) > 1
    progress = tqdm(
        sources,
        desc="sources",
        unit="image",
        leave=False,
        disable=True if quiet or not several else None,  # None: only on a terminal
        delay=1.0,  # not drawn at all when build_bank refuses the output at once
    )
    result = build_bank(
        progress,
        out,
        modality=plan.modality,
        lesion_types=plan.lesion_types,
        recipe=recipe,
        command=command_line(),
        inputs=plan.inputs,
        overwrite=overwrite,
        warn=warn,
    )
    if not quiet:
        counts = ", ".join(f"{t} {n}" for t, n in result.counts.items())
        click.echo(
            f"wrote {result.path}: {sum(result.counts.values())} lesions ({counts}) from "
            f"{', '.join(result.sources)} in {time.perf_counter() - started:.1f} s"
        )


@dataclass
class _Plan:
    """What a build reads: the sources' names, the sources (read lazily), the recipe, the
    bank's modality and lesion types, and the inputs an output must not overlap."""

    names: list[str]
    sources: Iterable
    recipe: Recipe
    modality: str
    lesion_types: list[str]
    inputs: list[tuple[str, Path]]


def _ids(ids: tuple[str, ...], normalise, example: str) -> list[str]:
    if not ids:
        raise LesionPasteError(f"give at least one {example}")
    return list(dict.fromkeys(normalise(i) for i in ids))


def _idrid_plan(ids, root, preprocess, window_spec, warn) -> _Plan:
    names = _ids(ids, idrid.normalise_id, "IDRiD id, e.g. lp-bank build idrid_48")
    data_root = resolve_root(root, "LP_IDRID_ROOT", "idrid_root", "IDRiD")
    recipe = _recipe(preprocess, "graham", window_spec)
    located = [(n, *idrid.locate(data_root, n, warn)) for n in names]
    sources = (
        load_fundus(n, img, masks, recipe, base=data_root, licence=idrid.LICENCE,
                    attribution=idrid.ATTRIBUTION)
        for n, img, masks in located
    )  # fmt: skip
    return _Plan(names, sources, recipe, "fundus", FUNDUS_TYPES, [("IDRiD root", data_root)])


def _mosmed_plan(ids, root, preprocess, window_spec, slices) -> _Plan:
    names = _ids(ids, mosmed_files.normalise_id, "MosMed study, e.g. lp-bank build study_0255")
    data_root = resolve_root(root, "LP_MOSMED_ROOT", "mosmed_root", "MosMed")
    recipe = _recipe(preprocess, "window", window_spec)
    if not isinstance(recipe, WindowRecipe):
        raise LesionPasteError("MosMed volumes are in HU and need --preprocess window")
    for n in names:
        mosmed_files.locate(data_root, n)
    sources = (s for n in names for s in mosmed.load_study(data_root, n, recipe, slices))
    return _Plan(names, sources, recipe, "ct", [mosmed.LESION_TYPE], [("MosMed root", data_root)])


def _folder_plan(
    ids, image, mask_specs, modality, preprocess, window_spec, pixel_spacing, licence, attribution
) -> _Plan:
    if image is None:
        raise LesionPasteError("--source folder needs --image PATH and --mask TYPE=PATH")
    if ids:
        raise LesionPasteError("--source folder takes no ids; use --image and --mask")
    masks = _mask_specs(mask_specs)
    inputs = [("annotated image", image)] + [(f"{t} mask", m) for t, m in masks.items()]
    modality = modality or ("ct" if is_dicom(image) else "fundus")
    credit = {"licence": licence, "attribution": attribution}
    if modality == "fundus":
        recipe = _recipe(preprocess, "graham", window_spec)
        sources = _loaded_later(load_fundus, image.stem, image, masks, recipe, **credit)
    else:
        recipe = _recipe(preprocess, "window" if is_dicom(image) else "none", window_spec)
        spacing = [pixel_spacing, pixel_spacing] if pixel_spacing else None
        sources = _loaded_later(load_ct_slice, image.stem, image, masks, recipe, spacing, **credit)
    return _Plan([image.stem.lower()], sources, recipe, modality, list(masks), inputs)


def _loaded_later(load, *args, **kwargs):
    """The one source of a folder build, read when the build asks for it: after the output
    has been checked, as the IDRiD and MosMed sources are."""
    yield load(*args, **kwargs)


def _default_out(out: Path | None, names: list[str]) -> Path:
    return out or Path("banks") / f"{'_'.join(n.lower() for n in names)}.h5"


def bank_summary(path: Path) -> dict:
    """The JSON summary printed by ``lp-bank info --json``.

    Args:
        path: the bank file.

    Returns:
        Its path, sha256, metadata, lesion counts and area range per type, JSON-ready.
    """
    bank = read_bank(path)
    meta = bank.meta
    areas = {}
    for i, name in enumerate(meta.lesion_types):
        a = bank.area[bank.types == i]
        if a.size:
            areas[name] = {"min": int(a.min()), "median": float(np.median(a)), "max": int(a.max())}
    return {
        "path": str(path),
        "sha256": bank.sha256,
        "schema_version": meta.schema_version,
        "modality": meta.modality,
        "channels": meta.channels,
        "lesion_types": meta.lesion_types,
        "sources": meta.sources,
        "preprocess": meta.preprocess,
        "counts": bank.counts(),
        "n_lesions": len(bank),
        "area_px": areas,
        "tool_version": meta.tool_version,
        "command": meta.command,
    }


@cli.command()
@click.argument("bank", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(bank: Path, as_json: bool) -> None:
    """Summarise a bank: sources, recipe, lesion counts per type."""
    s = bank_summary(bank)
    if as_json:
        click.echo(json.dumps(s, indent=2))
        return
    click.echo(f"bank        {s['path']} (sha256 {s['sha256'][:16]}...)")
    click.echo(f"schema      {s['schema_version']}, made by lesionpaste {s['tool_version']}")
    click.echo(f"command     {s['command']}")
    click.echo(f"modality    {s['modality']} ({'RGB' if s['channels'] == 3 else 'grey'})")
    click.echo(f"preprocess  {json.dumps(s['preprocess'])}")
    for src in s["sources"]:
        h, w = src["shape"]
        where = (
            f"fundus radius {src['fov']['radius']:.0f} px"
            if src["fov"]
            else f"pixel spacing {src['pixel_spacing']} mm"
            if src["pixel_spacing"]
            else "no scale recorded"
        )
        click.echo(f"source      {src['id']}: {w}x{h}, {where}, {src['licence']}")
    click.echo(f"lesions     {s['n_lesions']}")
    for name, n in s["counts"].items():
        a = s["area_px"].get(name)
        sizes = f"  area {a['min']}..{a['max']} px, median {a['median']:.0f}" if a else ""
        click.echo(f"  {name:<9} {n:>6}{sizes}")


@cli.command()
@click.argument("bank", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    help="PNG to write (default: <bank>_sheet.png beside the bank).",
)
@click.option("--per-type", default=64, show_default=True, help="Lesions shown per type.")
@click.option("--overwrite", is_flag=True, help="Replace an existing image.")
def preview(bank: Path, out: Path | None, per_type: int, overwrite: bool) -> None:
    """Write a contact sheet of the bank's lesions, grouped by type, with counts."""
    out = out or bank.with_name(f"{bank.stem}_sheet.png")
    if out.suffix.lower() != ".png":
        raise LesionPasteError(f"{out}: the contact sheet is written as PNG; name it *.png")
    check_output(out, "picture", [("bank", bank)], overwrite)
    refuse_existing(out, overwrite)
    write_png(
        out, contact_sheet(read_bank(bank), per_type=per_type), overwrite, "the contact sheet"
    )
    click.echo(f"wrote {out}")


def main() -> None:
    """Console entry point."""
    cli(prog_name=PROG)
