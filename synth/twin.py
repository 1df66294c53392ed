"""One anomalous twin: tier, lesion count and lesions drawn, augmented, placed and pasted."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from lesionpaste.bank_format import Bank
from synth.augment import AugmentConfig, augment_lesion, draw_augmentations
from synth.paste import find_position, mixup_paste
from synth.prepare import Prepared
from synth.tiers import Tier

STREAMS = ("select", "augment", "place", "mix")


def image_generators(seed: int, image_id: str) -> dict[str, np.random.Generator]:
    """Independent generators for one image, seeded from (run seed, image id) only.

    Separate streams keep ablations paired: switching an augmentation off changes neither
    which lesions are drawn nor their λ nor (as far as they still fit) their positions.

    Args:
        seed: the run's seed.
        image_id: the normal image's id.

    Returns:
        ``{"select", "augment", "place", "mix"}`` -> a PCG64 generator each.
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
        """The configuration as a JSON-ready dict (recorded in ``dataset.json``).

        Returns:
            ``{"lambda", "augment", "placement_tries"}``.
        """
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
    the ratio of fundus radii, or of CT pixel spacings (1 when a spacing is unknown).

    Args:
        bank: the lesion bank.
        prepared: the prepared target image.

    Returns:
        ``(S,)`` ``float64`` scale factors, one per bank source.
    """
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
    """The paper's N ~ U(1, 1.5 N_L), as inclusive integer bounds.

    Args:
        n_lesions: ``N_L``, the lesions in the tier's pool.

    Returns:
        ``(1, max(1, floor(1.5 * n_lesions)))``.
    """
    return 1, max(1, math.floor(1.5 * n_lesions))


def paste_record(
    index: int,
    lesion_type: str,
    source: str,
    y: int,
    x: int,
    mask: np.ndarray,
    scale: float,
    draw,
    lam: float,
) -> dict:
    """What ``pastes.jsonl`` records of one pasted lesion.

    Args:
        index: the lesion's index in the bank.
        lesion_type: its type name.
        source: its source's id.
        y: the top row where it was pasted, in pixels.
        x: the left column where it was pasted, in pixels.
        mask: ``(h, w)`` boolean mask as pasted.
        scale: the total scale factor applied.
        draw: its ``AugmentDraw``.
        lam: its λ.

    Returns:
        The JSON-ready record (floats rounded to 6 decimals).
    """
    return {
        "lesion": index,
        "type": lesion_type,
        "source": source,
        "y": y,
        "x": x,
        "h": int(mask.shape[0]),
        "w": int(mask.shape[1]),
        "area": int(mask.sum()),
        "scale": round(float(scale), 6),
        "angle": round(draw.angle, 6),
        "flip_h": draw.flip_h,
        "flip_v": draw.flip_v,
        "contrast": round(draw.contrast, 6),
        "brightness": round(draw.brightness, 6),
        "hue": round(draw.hue, 6),
        "saturation": round(draw.saturation, 6),
        "lambda": round(lam, 6),
    }


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
        prepared: the prepared normal image.
        bank: the lesion bank.
        tiers: the tiers to draw from.
        pools: per tier, the bank indices of its lesions.
        config: λ range, augmentation and placement tries.
        rngs: the image's generators (``image_generators``).
        colour_luts: optional ``(S, C, 256)`` per-source lookup tables applied to lesion pixels.

    Returns:
        The twin: ``(H, W, C)`` ``uint8`` image, ``(H, W)`` boolean union of pasted masks, its
        tier, the number of lesions drawn and one record per lesion pasted.
    """
    select, mix = rngs["select"], rngs["mix"]
    tier = int(select.choice(len(tiers), p=[t.ratio for t in tiers]))
    pool = pools[tier]
    low, high = count_range(len(pool))
    n = int(select.integers(low, high + 1))
    chosen = select.choice(pool, size=n, replace=True)
    scales = base_scales(bank, prepared)
    source_ids = [s["id"] for s in bank.meta.sources]
    image = prepared.image.copy()
    union = np.zeros(image.shape[:2], bool)
    region_pixels = np.argwhere(prepared.region)
    pastes = []
    draws = draw_augmentations(rngs["augment"], config.augment, n)
    lams = mix.uniform(*config.lam, n) if config.lam else np.ones(n)
    for index, draw, lam in zip(chosen, draws, lams):
        lesion = bank.lesion(int(index))
        lam = float(lam)
        patch = lesion.patch
        if colour_luts is not None:
            table = np.ascontiguousarray(colour_luts[lesion.source].T[:, None, :])  # (256,1,C)
            patch = cv2.LUT(patch, table).reshape(patch.shape)
        patch, mask = augment_lesion(patch, lesion.mask, draw, scales[lesion.source])
        position = find_position(rngs["place"], mask, prepared.region, config.tries, region_pixels)
        if position is None:
            continue
        y, x = position
        mixup_paste(image, patch, mask, y, x, lam)
        union[y : y + mask.shape[0], x : x + mask.shape[1]] |= mask
        pastes.append(
            paste_record(
                int(index),
                lesion.lesion_type,
                source_ids[lesion.source],
                y,
                x,
                mask,
                scales[lesion.source] * draw.scale,
                draw,
                lam,
            )
        )
    return Twin(image=image, mask=union, tier=tier, n_drawn=n, pastes=pastes)
