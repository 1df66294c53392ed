"""The generated dataset card (README.md) shipped inside every dataset."""

from __future__ import annotations

import statistics

from lesionpaste.citation import METHOD
from lesionpaste.lesion_bins import LESION_BINS, count_histogram


def count_table(lesion_counts: dict[str, list[int]]) -> list[str]:
    """A Markdown table of the twins' pasted-lesion counts: per tier, the twins in each
    lesion-count bin (``lesionpaste/lesion_bins.py``) and the median count.

    Args:
        lesion_counts: ``{tier name: each of its twins' pasted-lesion count}``.

    Returns:
        The table's lines.
    """
    names = [name for name, _, _ in LESION_BINS]
    lines = [
        "| tier | " + " | ".join(f"{n} lesions" for n in names) + " | median |",
        "|---|" + "---|" * (len(names) + 1),
    ]
    for tier, counts in lesion_counts.items():
        if counts:
            bins = count_histogram(counts)
            median = f"{statistics.median(counts):g}"
            lines.append(
                f"| {tier} | " + " | ".join(str(bins[n]) for n in names) + f" | {median} |"
            )
    return lines


def dataset_card(meta: dict, lesion_counts: dict[str, list[int]] | None = None) -> str:
    """Markdown describing a dataset from its ``dataset.json`` content.

    Args:
        meta: the dataset's ``dataset.json`` content (kind, counts, command, bank, config).
        lesion_counts: a synthetic dataset's ``{tier name: its twins' pasted-lesion counts}``,
            shown as a table (left out when None).

    Returns:
        The card's Markdown text.
    """
    counts = meta["counts"]
    bank = meta.get("bank", {})
    config = meta.get("config", {})
    lines = [
        f"# LesionPaste {meta['kind']} dataset",
        "",
        f"Made by lesionpaste {meta['tool_version']} with:",
        "",
        f"    {meta['command']}",
        "",
    ]
    if meta["kind"] == "synthetic":
        lines += [
            (
                f"{counts['normal']} normal images, each with one anomalous twin made by pasting "
                "lesions from a lesion bank with MixUp (LesionPaste, Huang, Huang and Tang)."
            ),
            (
                "Label 0 = normal, 1 = synthetic anomaly. See `dataset.json` for the full "
                "configuration and `pastes.jsonl` for every pasted lesion (id, position, scale, "
                "rotation, λ)."
            ),
            "",
            "| tier | twins |",
            "|---|---|",
            *[f"| {name} | {n} |" for name, n in counts.get("by_tier", {}).items()],
            "",
            *(
                [
                    (
                        "Pasted lesions per twin, by tier (what a detector trained on them learns "
                        "to find; real early disease has a handful):"
                    ),
                    "",
                    *count_table(lesion_counts),
                    "",
                ]
                if lesion_counts
                else []
            ),
            (
                f"Image size: {config.get('size') or 'as preprocessed'}; λ: {config.get('lambda')}; "
                f"seed: {config.get('seed')}."
            ),
        ]
    else:
        lines += [
            f"{counts['images']} labelled images for evaluation; labels by class in `dataset.json`."
        ]
        masks = meta.get("masks")
        if masks:
            types = ", ".join(masks["types"]) or "none"
            lines += [
                "",
                (
                    f"{masks['images_with_masks']} of them have ground-truth lesion masks, "
                    "prepared exactly like their images: the union in `masks/ID.png`, each "
                    f"lesion type's in `masks/TYPE/ID.png` (types: {types}); digests in "
                    "`masks.jsonl`."
                ),
            ]
    if counts.get("skipped"):
        lines += ["", f"{counts['skipped']} input image(s) were skipped; see `dataset.json`."]
    lines += ["", "## Sources, licences and attribution", ""]
    for source in bank.get("sources", []):
        lines.append(
            f"- Lesions from `{source['id']}`: {source.get('attribution', 'unknown')}. "
            f"Licence: {source.get('licence', 'unknown')}."
        )
    lines += [
        (
            "- Normal images: as supplied by the maker of this dataset; their licence applies to "
            "the images derived from them (e.g. EyePACS/Kaggle images are for research use only)."
        ),
        "",
        *CITATION,
        "",
        *VERIFYING,
        "",
    ]
    return "\n".join(lines)


#: how to cite the method and the sources (the paper's title and authors, as it gives them)
CITATION = [
    "## How to cite",
    "",
    "If you use this dataset, cite the method and the sources of its images:",
    "",
    f"- the method: {METHOD};",
    "- the lesions: each source listed above, as its attribution names it;",
    (
        "- the normal images: the collection they came from, e.g. EyeQ (Fu et al., Evaluation "
        "of retinal image quality assessment networks in different color-spaces, MICCAI 2019, "
        "https://doi.org/10.1007/978-3-030-32239-7_6), EyePACS (the Kaggle Diabetic Retinopathy "
        "Detection competition) or MosMedData (Morozov et al., arXiv:2005.06465, 2020)."
    ),
]
#: how a receiver checks the dataset, as a directory or as the archive ``lp-synth pack`` makes
VERIFYING = [
    "## Verifying",
    "",
    "    lp-synth verify DIR        # schema, counts, safe paths and every file's sha256",
    "    lp-synth verify DIR.tar    # the same on the archive (lp-synth pack), whose members are",
    "                               # checked before anything is unpacked (also .tar.gz)",
]
