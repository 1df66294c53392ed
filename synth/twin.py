"""One anomalous twin: tier, lesion count and lesions drawn, augmented, placed and pasted."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from lesionpaste.bank_format import Bank
from synth.augment import AugmentConfig, augment_lesion, draw_augmentations, one_pixel_lesion
from synth.paste import blend_pixels, find_position, mixup_paste
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


@dataclass(frozen=True)
class LesionTable:
    """What the one-pixel path needs of every bank lesion, computed once per bank and colour
    tables rather than per pasted lesion.

    Attributes:
        heights: ``(N,)`` each lesion's box height, in pixels.
        widths: ``(N,)`` its width.
        means: ``(N, C)`` ``float64`` mean of each (colour-mapped) patch over its whole box:
            the pixel that area resampling gives a lesion shrunk to one pixel.
        types: each lesion's type name.
        sources: ``(N,)`` each lesion's source index.
    """

    heights: np.ndarray
    widths: np.ndarray
    means: np.ndarray
    types: list[str]
    sources: np.ndarray


def _mapped_patch(bank: Bank, index: int, colour_luts: np.ndarray | None) -> np.ndarray:
    """A lesion's patch through its source's colour table (when colour matching is on)."""
    lesion = bank.lesion(index)
    if colour_luts is None:
        return lesion.patch
    table = np.ascontiguousarray(colour_luts[lesion.source].T[:, None, :])  # (256, 1, C)
    return cv2.LUT(lesion.patch, table).reshape(lesion.patch.shape)


def lesion_table(bank: Bank, colour_luts: np.ndarray | None = None) -> LesionTable:
    """Every lesion's box size and mean pixel (through the colour tables), for the one-pixel
    path of ``synthesize_twin``.

    Args:
        bank: the lesion bank.
        colour_luts: the per-source colour tables of ``--match-colour``, or None.

    Returns:
        The table.
    """
    c = bank.meta.channels
    means = np.stack(
        [
            _mapped_patch(bank, i, colour_luts).reshape(-1, c).mean(axis=0, dtype=np.float64)
            for i in range(len(bank.types))
        ]
    ) if len(bank.types) else np.zeros((0, c))  # fmt: skip
    return LesionTable(
        heights=bank.bbox[:, 2].astype(np.int64),
        widths=bank.bbox[:, 3].astype(np.int64),
        means=means,
        types=[bank.meta.lesion_types[int(t)] for t in bank.types],
        sources=bank.sources.astype(np.int64),
    )


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
    table: LesionTable | None = None,
) -> Twin:
    """Make the anomalous twin of ``prepared`` (which is left untouched).

    Lesions are drawn, augmented, placed and pasted in order. A lesion that the draw shrinks to
    one pixel (most microaneurysms at 256x256) takes a short path: its pixel comes from
    ``table`` and its paste waits to be blended with the other one-pixel lesions in one
    vectorised step (``blend_pixels``) before the next larger lesion is pasted, which gives
    the same image as pasting each in turn.

    Args:
        prepared: the prepared normal image.
        bank: the lesion bank.
        tiers: the tiers to draw from.
        pools: per tier, the bank indices of its lesions.
        config: λ range, augmentation and placement tries.
        rngs: the image's generators (``image_generators``).
        colour_luts: optional ``(S, C, 256)`` per-source lookup tables applied to lesion pixels.
        table: ``lesion_table(bank, colour_luts)``, made once for many twins (made here when
            None).

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
    table = table if table is not None else lesion_table(bank, colour_luts)
    scales = base_scales(bank, prepared)
    source_ids = [s["id"] for s in bank.meta.sources]
    image = prepared.image.copy()
    union = np.zeros(image.shape[:2], bool)
    region_pixels = np.argwhere(prepared.region)
    pastes: list[dict] = []
    pending: list[tuple[int, int, np.ndarray, float]] = []  # one-pixel pastes not yet blended
    draws = draw_augmentations(rngs["augment"], config.augment, n)
    lams = mix.uniform(*config.lam, n) if config.lam else np.ones(n)
    factors = scales[table.sources[chosen]] * np.array([d.scale for d in draws])
    small = (np.maximum(1, np.round(table.widths[chosen] * factors)) == 1) & (
        np.maximum(1, np.round(table.heights[chosen] * factors)) == 1
    )
    for k, (index, draw, lam) in enumerate(zip(chosen.tolist(), draws, lams.tolist())):
        source = int(table.sources[index])
        if small[k] and len(region_pixels):
            y, x = region_pixels[int(rngs["place"].integers(len(region_pixels)))].tolist()
            pending.append((y, x, one_pixel_lesion(table.means[index], draw).reshape(-1), lam))
            union[y, x] = True
            mask = _ONE
        else:
            patch = _mapped_patch(bank, index, colour_luts)
            patch, mask = augment_lesion(patch, bank.lesion(index).mask, draw, scales[source])
            position = find_position(
                rngs["place"], mask, prepared.region, config.tries, region_pixels
            )
            if position is None:
                continue
            y, x = position
            _blend_pending(image, pending, (y, x, mask))
            mixup_paste(image, patch, mask, y, x, lam)
            union[y : y + mask.shape[0], x : x + mask.shape[1]] |= mask
        pastes.append(
            paste_record(
                index,
                table.types[index],
                source_ids[source],
                y,
                x,
                mask,
                scales[source] * draw.scale,
                draw,
                lam,
            )
        )
    _blend_pending(image, pending)
    return Twin(image=image, mask=union, tier=tier, n_drawn=n, pastes=pastes)


_ONE = np.ones((1, 1), bool)


def _blend_pending(image: np.ndarray, pending: list, under: tuple | None = None) -> None:
    """Blend waiting one-pixel pastes into ``image``, in order, and forget them: all of them,
    or with ``under = (y, x, mask)`` those that a larger paste there is about to cover (it
    must land over them; the others touch other pixels, so their order with it is moot)."""
    if under is not None:
        y0, x0, mask = under
        h, w = mask.shape
        hit = [
            0 <= p[0] - y0 < h and 0 <= p[1] - x0 < w and bool(mask[p[0] - y0, p[1] - x0])
            for p in pending
        ]
        now = [p for p, inside in zip(pending, hit) if inside]
        if not now:
            return
        pending[:] = [p for p, inside in zip(pending, hit) if not inside]
    else:
        now = list(pending)
        pending.clear()
    if now:
        ys, xs, values, lams = zip(*now)
        blend_pixels(image, np.array(ys), np.array(xs), np.stack(values), np.array(lams))
