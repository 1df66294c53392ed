"""One anomalous twin: tier, lesion count and lesions drawn, augmented, placed and pasted."""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from bank_builder.bank_file import Bank
from synth.augment import AugmentConfig, augment_lesion, draw_augmentation
from synth.paste import find_position, mixup_paste
from synth.prepare import Prepared
from synth.tiers import Tier

STREAMS = ("select", "augment", "place", "mix")


def image_generators(seed: int, image_id: str) -> dict[str, np.random.Generator]:
    """Independent generators for one image, seeded from (run seed, image id) only.

    Separate streams keep ablations paired: switching an augmentation off changes neither
    which lesions are drawn nor their λ nor (as far as they still fit) their positions.
    """
    key = int.from_bytes(hashlib.sha256(image_id.encode("utf-8")).digest()[:8], "little")
    children = np.random.SeedSequence([seed, key]).spawn(len(STREAMS))
    return {name: np.random.Generator(np.random.PCG64(s)) for name, s in zip(STREAMS, children)}


@dataclass(frozen=True)
class PasteConfig:
    """How lesions are pasted. ``lam``: λ range for eq. (1); equal ends fix λ; None = hard
    paste (λ = 1, the paper's "w.o. MixUp")."""

    lam: tuple[float, float] | None = (0.5, 0.8)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    tries: int = 100

    def to_dict(self) -> dict:
        return {
            "lambda": list(self.lam) if self.lam else None,
            "augment": self.augment.to_dict(),
            "placement_tries": self.tries,
        }


@dataclass
class Twin:
    """What was made for one normal image."""

    image: np.ndarray
    mask: np.ndarray
    tier: int
    n_drawn: int
    pastes: list[dict]


def base_scales(bank: Bank, prepared: Prepared) -> np.ndarray:
    """Per bank source, the factor that gives its lesions the target image's scale:
    the ratio of fundus radii, or of CT pixel spacings (1 when a spacing is unknown)."""
    scales = []
    for source in bank.meta.sources:
        if source.get("fov") and prepared.fov_radius:
            scales.append(prepared.fov_radius / source["fov"]["radius"])
        elif source.get("pixel_spacing") and prepared.pixel_spacing:
            scales.append(source["pixel_spacing"][1] / prepared.pixel_spacing[1])
        else:
            scales.append(1.0)
    return np.asarray(scales, dtype=np.float64)


def count_range(n_lesions: int) -> tuple[int, int]:
    """The paper's N ~ U(1, 1.5 N_L), as inclusive integer bounds."""
    return 1, max(1, math.floor(1.5 * n_lesions))


def synthesize_twin(
    prepared: Prepared,
    bank: Bank,
    tiers: list[Tier],
    pools: list[np.ndarray],
    config: PasteConfig,
    rngs: dict[str, np.random.Generator],
    colour_luts: np.ndarray | None = None,
) -> Twin:
    """Make the anomalous twin of ``prepared`` (which is left untouched).

    Args:
        pools: per tier, the bank indices of its lesions.
        colour_luts: optional ``(S, C, 256)`` per-source lookup tables applied to lesion pixels.
    """
    select, mix = rngs["select"], rngs["mix"]
    tier = int(select.choice(len(tiers), p=[t.ratio for t in tiers]))
    pool = pools[tier]
    low, high = count_range(len(pool))
    n = int(select.integers(low, high + 1))
    chosen = select.choice(pool, size=n, replace=True)
    scales = base_scales(bank, prepared)
    image = prepared.image.copy()
    union = np.zeros(image.shape[:2], bool)
    pastes = []
    for index in chosen:
        lesion = bank.lesion(int(index))
        draw = draw_augmentation(rngs["augment"], config.augment)
        lam = float(mix.uniform(*config.lam)) if config.lam else 1.0
        patch = lesion.patch
        if colour_luts is not None:
            luts = colour_luts[lesion.source]
            patch = np.stack([luts[c][patch[..., c]] for c in range(patch.shape[2])], axis=2)
        patch, mask = augment_lesion(patch, lesion.mask, draw, scales[lesion.source])
        position = find_position(rngs["place"], mask, prepared.region, config.tries)
        if position is None:
            continue
        y, x = position
        mixup_paste(image, patch, mask, y, x, lam)
        union[y : y + mask.shape[0], x : x + mask.shape[1]] |= mask
        pastes.append(
            {
                "lesion": int(index),
                "type": lesion.lesion_type,
                "source": bank.meta.sources[lesion.source]["id"],
                "y": y,
                "x": x,
                "h": int(mask.shape[0]),
                "w": int(mask.shape[1]),
                "area": int(mask.sum()),
                "scale": round(float(scales[lesion.source] * draw.scale), 6),
                **{
                    k: (round(v, 6) if isinstance(v, float) else v)
                    for k, v in asdict(draw).items()
                    if k != "scale"
                },
                "lambda": round(lam, 6),
            }
        )
    return Twin(image=image, mask=union, tier=tier, n_drawn=n, pastes=pastes)
