"""One anomalous twin: tier, lesion count and lesions drawn, augmented, placed and pasted."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from lesionpaste.bank_format import Bank
from lesionpaste.errors import LesionPasteError
from lesionpaste.preparation import Prepared
from lesionpaste.synth.pasting.augment import (
    AugmentConfig,
    AugmentDraw,
    DrawTable,
    augment_inside,
    draw_table,
    one_pixel_lesions,
    stack_lesion,
)
from lesionpaste.synth.pasting.paste import (
    blend_inside,
    blend_pixels,
    feathered_weights,
    find_position,
)
from lesionpaste.synth.pasting.tiers import Tier

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


#: how a twin's lesion count is drawn between its bounds (``draw_count``)
COUNT_DISTRIBUTIONS = ("uniform", "loguniform")
#: the most lesions ``--count-range`` lets a twin hold
MAX_COUNT = 10_000


@dataclass(frozen=True)
class PasteConfig:
    """How lesions are pasted. ``lam``: λ range for eq. (1); equal ends fix λ; None = hard
    paste (λ = 1, the paper's "w.o. MixUp")."""

    lam: tuple[float, float] | None = (0.5, 0.8)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    tries: int = 100
    lesion_scale: float = 1.0  # times the matched scale (1: the paper's)
    edge_blur: float = 0.0  # feathered edge, sigma in output pixels (0: MixUp's hard edge)
    count: str = "uniform"  # how a twin's lesion count is drawn: COUNT_DISTRIBUTIONS
    count_range: tuple[int, int] | None = None  # its bounds (None: the paper's, per tier)

    def __post_init__(self) -> None:
        """Refuse values the method cannot use, with the command line's one-line messages
        (the one place these rules live: ``lp-synth`` builds this and lets it say no).

        Raises:
            LesionPasteError: a λ range outside [0, 1] or reversed, a lesion scale that is not
                above 0, an edge blur below 0, or fewer than one placement try.
        """
        if self.lam is not None:
            low, high = self.lam
            if not 0 <= low <= high <= 1:  # False for NaN
                raise LesionPasteError(
                    f"--lambda {low:g},{high:g}: expected LOW,HIGH or one value in [0, 1], or none"
                )
        if not self.lesion_scale > 0 or not self.edge_blur >= 0:  # NaN fails both
            raise LesionPasteError("--lesion-scale must be above 0 and --edge-blur at least 0")
        if not math.isfinite(self.lesion_scale) or not math.isfinite(self.edge_blur):
            raise LesionPasteError("--lesion-scale and --edge-blur must be finite")
        if self.tries < 1:
            raise LesionPasteError("placement tries must be at least 1")
        if self.count not in COUNT_DISTRIBUTIONS:
            raise LesionPasteError(
                f"--count {self.count!r}: expected {' or '.join(COUNT_DISTRIBUTIONS)}"
            )
        if self.count_range is not None:
            low, high = self.count_range
            valid = all(type(v) is int for v in (low, high)) and 1 <= low <= high <= MAX_COUNT
            if not valid:
                raise LesionPasteError(
                    f"--count-range {low},{high}: expected LOW,HIGH whole numbers with "
                    f"1 <= LOW <= HIGH <= {MAX_COUNT:,}"
                )

    def to_dict(self) -> dict:
        """The configuration as a JSON-ready dict (recorded in ``dataset.json``).

        Returns:
            ``{"lambda", "augment", "placement_tries"}``, and ``lesion_scale``, ``edge_blur``
            and ``lesion_count`` when they differ from the paper's (1, 0, and uniform over the
            paper's range), so that a dataset made with the paper's settings records exactly
            what it did before they existed.
        """
        out = {
            "lambda": list(self.lam) if self.lam else None,
            "augment": self.augment.to_dict(),
            "placement_tries": self.tries,
        }
        if self.lesion_scale != 1.0:
            out["lesion_scale"] = self.lesion_scale
        if self.edge_blur != 0.0:
            out["edge_blur"] = self.edge_blur
        if self.count != "uniform" or self.count_range is not None:
            bounds = list(self.count_range) if self.count_range else "1 to 1.5 N_L per tier"
            out["lesion_count"] = {"distribution": self.count, "range": bounds}
        return out


@dataclass
class Twin:
    """What was made for one normal image."""

    image: np.ndarray
    mask: np.ndarray
    tier: int
    n_drawn: int
    pastes: list[dict]


STACK_CACHE_BYTES = 256 * 2**20  # float32 stacks kept per process; beyond, made per paste


class _Stacks:
    """Bank lesions stacked for ``augment_stacked`` (colour-mapped patch and mask, float32),
    made on first use and kept up to ``STACK_CACHE_BYTES``."""

    def __init__(self) -> None:
        self.kept: dict[int, np.ndarray] = {}
        self.nbytes = 0


@dataclass(frozen=True)
class LesionTable:
    """What the hot path needs of every bank lesion, computed once per bank and colour
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
    stacks: _Stacks = field(default_factory=_Stacks, compare=False, repr=False)


def lesion_stack(
    table: LesionTable, bank: Bank, index: int, colour_luts: np.ndarray | None
) -> np.ndarray:
    """A bank lesion as ``augment_inside`` takes it: its patch through its source's colour
    table, and its mask, as one float32 image; kept in ``table`` for the next paste of it while
    the kept stacks stay under ``STACK_CACHE_BYTES``. Treat it as read-only.

    Args:
        table: ``lesion_table(bank, colour_luts)``.
        bank: the lesion bank.
        index: the lesion's index in the bank.
        colour_luts: the colour tables ``table`` was made with, or None.

    Returns:
        ``(h, w, C + 1)`` ``float32`` stack.
    """
    stack = table.stacks.kept.get(index)
    if stack is None:
        stack = stack_lesion(_mapped_patch(bank, index, colour_luts), bank.lesion(index).mask)
        if table.stacks.nbytes + stack.nbytes <= STACK_CACHE_BYTES:
            table.stacks.kept[index] = stack
            table.stacks.nbytes += stack.nbytes
    return stack


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


def draw_count(rng: np.random.Generator, low: int, high: int, distribution: str) -> int:
    """A twin's lesion count in ``[low, high]``.

    ``uniform`` is the paper's: each count equally likely (one ``integers`` draw, so a dataset
    made before this option has the same bytes). ``loguniform`` is ``floor(exp(U))`` with ``U``
    uniform on ``[log low, log(high + 1))``: count ``n`` has probability
    ``log((n + 1) / n) / log((high + 1) / low)``, so each doubling of the count is about equally
    likely and few-lesion twins, like early disease, are common.

    Args:
        rng: the twin's ``select`` generator.
        low: the fewest lesions (at least 1).
        high: the most.
        distribution: ``"uniform"`` or ``"loguniform"``.

    Returns:
        The count.
    """
    if distribution == "uniform":
        return int(rng.integers(low, high + 1))
    return min(high, int(math.exp(rng.uniform(math.log(low), math.log(high + 1)))))


RECORD_FIELDS = (
    "lesion", "type", "source", "y", "x", "h", "w", "area", "scale", "angle", "flip_h",
    "flip_v", "contrast", "brightness", "hue", "saturation", "lambda",
)  # fmt: skip
"""The keys of a ``pastes.jsonl`` record of one lesion, in the order written."""


def paste_record(
    index: int,
    lesion_type: str,
    source: str,
    y: int,
    x: int,
    mask: np.ndarray,
    scale: float,
    draw: AugmentDraw,
    lam: float,
) -> dict:
    """What ``pastes.jsonl`` records of one pasted lesion (``paste_records`` of one).

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
    columns = DrawTable.of([draw])
    placed = [(index, lesion_type, source, y, x, *mask.shape, int(mask.sum()))]
    return paste_records(placed, np.array([scale]), columns, np.array([lam]))[0]


def paste_records(
    placed: list[tuple], scales: np.ndarray, draws: DrawTable, lams: np.ndarray
) -> list[dict]:
    """What ``pastes.jsonl`` records of the lesions pasted into one twin.

    Args:
        placed: per lesion, ``(index, type, source id, y, x, h, w, area)``: its bank index,
            type name, source, top-left corner, box size and mask area as pasted.
        scales: ``(K,)`` the total scale factor applied to each.
        draws: their drawn augmentation parameters, one row each.
        lams: ``(K,)`` their λ.

    Returns:
        One JSON-ready record per lesion (floats rounded to 6 decimals).
    """

    def rounded(values: np.ndarray) -> list[float]:
        # numpy's round (rint of v * 1e6, then / 1e6): the double nearest to 6 decimals, as
        # Python's round gives but for values within an ulp of a half, in one vectorised step
        return np.round(np.asarray(values, np.float64), 6).tolist()

    columns = zip(
        rounded(scales),
        rounded(draws.angle),
        draws.flip_h.tolist(),
        draws.flip_v.tolist(),
        rounded(draws.contrast),
        rounded(draws.brightness),
        rounded(draws.hue),
        rounded(draws.saturation),
        rounded(lams),
    )
    return [dict(zip(RECORD_FIELDS, (*where, *drawn))) for where, drawn in zip(placed, columns)]


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
    select, mix, place = rngs["select"], rngs["mix"], rngs["place"]
    tier = int(select.choice(len(tiers), p=[t.ratio for t in tiers]))
    pool = pools[tier]
    low, high = config.count_range or count_range(len(pool))
    n = draw_count(select, low, high, config.count)
    chosen = select.choice(pool, size=n, replace=True)
    table = table if table is not None else lesion_table(bank, colour_luts)
    scales = base_scales(bank, prepared) * config.lesion_scale
    source_ids = [s["id"] for s in bank.meta.sources]
    image = prepared.image.copy()
    union = np.zeros(image.shape[:2], bool)
    region_flat = np.flatnonzero(prepared.region)  # the one-pixel lesions' places
    width = prepared.region.shape[1]
    draws = draw_table(rngs["augment"], config.augment, n)
    lams = mix.uniform(*config.lam, n) if config.lam else np.ones(n)
    sources = table.sources[chosen]
    factors = scales[sources] * draws.scale
    small = (np.maximum(1, np.round(table.widths[chosen] * factors)) == 1) & (
        np.maximum(1, np.round(table.heights[chosen] * factors)) == 1
    )
    small &= len(region_flat) > 0
    pending = _PendingPixels(
        image.shape[:2],
        one_pixel_lesions(
            table.means[chosen[small]],
            draws.brightness[small],
            draws.hue[small],
            draws.saturation[small],
        ),
        np.cumsum(small) - 1,
        lams,
    )
    kept: list[int] = []
    placed: list[tuple] = []
    for k, (index, source, one, factor) in enumerate(
        zip(chosen.tolist(), sources.tolist(), small.tolist(), factors.tolist())
    ):
        if one:
            y, x = divmod(int(region_flat[int(place.integers(len(region_flat)))]), width)
            pending.add(y, x, k)
            h = w = area = 1
        else:
            stack = lesion_stack(table, bank, index, colour_luts)
            values, mask = augment_inside(stack, draws.draw(k), factor)
            # never one pixel here (a rotation grows the canvas), so no region_pixels needed
            position = find_position(place, mask, prepared.region, config.tries)
            if position is None:
                continue
            y, x = position
            pending.blend_under(image, y, x, mask)
            weights = feathered_weights(mask, config.edge_blur) if config.edge_blur else None
            blend_inside(image, values, mask, y, x, float(lams[k]), weights)
            h, w = mask.shape
            union[y : y + h, x : x + w] |= mask
            area = len(values)
        kept.append(k)
        placed.append((index, table.types[index], source_ids[source], y, x, h, w, area))
    pending.blend_all(image, union)
    rows = np.array(kept, dtype=np.int64)
    pastes = paste_records(placed, factors[rows], draws.take(rows), lams[rows])
    return Twin(image=image, mask=union, tier=tier, n_drawn=n, pastes=pastes)


class _PendingPixels:
    """One-pixel pastes that wait to be blended together (``blend_pixels``).

    A larger paste must land over the waiting ones that it covers, so those are blended just
    before it; the others touch other pixels, so their order with it is moot.
    """

    def __init__(
        self, shape: tuple[int, int], values: np.ndarray, row_of: np.ndarray, lams: np.ndarray
    ) -> None:
        self.waiting = np.zeros(shape, bool)  # pixels with a waiting paste
        self.values, self.row_of, self.lams = values, row_of, lams
        self.ys: list[int] = []
        self.xs: list[int] = []
        self.ks: list[int] = []

    def add(self, y: int, x: int, k: int) -> None:
        self.ys.append(y)
        self.xs.append(x)
        self.ks.append(k)
        self.waiting[y, x] = True

    def blend_under(self, image: np.ndarray, y0: int, x0: int, mask: np.ndarray) -> None:
        """Blend the waiting pastes that ``mask`` at ``(y0, x0)`` is about to cover."""
        h, w = mask.shape
        if not self.ks or not (self.waiting[y0 : y0 + h, x0 : x0 + w] & mask).any():
            return
        ys, xs, ks = np.array(self.ys), np.array(self.xs), np.array(self.ks)
        under = (ys >= y0) & (ys < y0 + h) & (xs >= x0) & (xs < x0 + w)
        under[under] = mask[ys[under] - y0, xs[under] - x0]
        self._blend(image, ys[under], xs[under], ks[under])
        self.waiting[ys[under], xs[under]] = False
        self.ys, self.xs, self.ks = ys[~under].tolist(), xs[~under].tolist(), ks[~under].tolist()

    def blend_all(self, image: np.ndarray, union: np.ndarray) -> None:
        """Blend every waiting paste, and add every one-pixel paste to ``union``."""
        ys, xs = np.array(self.ys, np.int64), np.array(self.xs, np.int64)
        self._blend(image, ys, xs, np.array(self.ks, np.int64))
        union |= self.waiting
        self.ys, self.xs, self.ks = [], [], []

    def _blend(self, image: np.ndarray, ys: np.ndarray, xs: np.ndarray, ks: np.ndarray) -> None:
        if len(ks):
            blend_pixels(image, ys, xs, self.values[self.row_of[ks]], self.lams[ks])
