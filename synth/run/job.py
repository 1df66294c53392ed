"""A synthesis job: the run's full, resolved configuration, as every worker receives it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lesionpaste.synth.pasting.tiers import Tier
from lesionpaste.synth.pasting.twin import PasteConfig


@dataclass(frozen=True)
class Job:
    """Everything a worker needs (picklable): the run's full, resolved configuration."""

    bank_path: Path
    bank_sha256: str
    tiers: tuple[Tier, ...] = ()
    paste: PasteConfig = field(default_factory=PasteConfig)
    kind: str = "synthetic"  # or "evaluation": prepared images only, labelled
    method: str = "lesionpaste"  # or "cutpaste": the baseline, no lesion bank
    seed: int = 0
    size: int = 256
    preprocess: str = "bank"  # or "none": the normals were normalised elsewhere
    strict: bool = False
    colour_luts: np.ndarray | None = field(default=None, repr=False)
    colour_sample: int = 0
    window: tuple[float, float] | None = None  # CT: HU normals windowed at (level, width)
    masks: str | None = None  # evaluation: where the ground-truth masks come from (idrid, folder)

    def describe(self) -> dict:
        """The configuration recorded in ``dataset.json`` (and compared on resume).

        Returns:
            A JSON-ready dict: size and preprocessing, and for twins the method, seed, tiers,
            colour matching and paste settings.
        """
        window = {"normals_window": list(self.window)} if self.window else {}
        if self.kind == "evaluation":
            return {"size": self.size, "normals_preprocess": self.preprocess, **window}
        return {
            **window,
            "method": self.method,
            "seed": self.seed,
            "size": self.size,
            "tiers": [{"types": list(t.types), "ratio": t.ratio} for t in self.tiers],
            "normals_preprocess": self.preprocess,
            "match_colour": None
            if self.colour_luts is None
            else {
                "method": "per-channel histogram matching of each bank source's field of view "
                "to the pooled field-of-view histogram of a sample of the normals",
                "sample": self.colour_sample,
            },
            **self.paste.to_dict(),
        }
