"""Grade-mix tiers: which lesion types an anomalous twin may receive, and how often.

Fundus (paper section 3.1): 80% of twins get MA only, 10% MA+HE, 5% MA+HE+SE and 5% all four.
A CT bank has a single tier holding every lesion type it has.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lesionpaste.errors import LesionPasteError

FUNDUS_TIERS = (("MA",), ("MA", "HE"), ("MA", "HE", "SE"), ("MA", "HE", "SE", "EX"))
FUNDUS_RATIOS = (0.8, 0.1, 0.05, 0.05)


@dataclass(frozen=True)
class Tier:
    """Lesion types a twin of this tier draws from, and the tier's share of the twins."""

    types: tuple[str, ...]
    ratio: float

    @property
    def name(self) -> str:
        """The tier's types joined by ``+``, e.g. ``MA+HE``.

        Returns:
            The tier's name.
        """
        return "+".join(self.types)


def default_tiers(
    modality: str, lesion_types: list[str]
) -> tuple[tuple[tuple[str, ...], ...], tuple[float, ...]]:
    """The paper's tiers and ratios for a bank of this modality.

    Args:
        modality: ``"fundus"`` or ``"ct"``.
        lesion_types: the types the bank holds (the single CT tier's types).

    Returns:
        ``(tiers, ratios)``: each tier's lesion types, and each tier's share of the twins.
    """
    if modality == "fundus":
        return FUNDUS_TIERS, FUNDUS_RATIOS
    return (tuple(lesion_types),), (1.0,)


def parse_ratios(text: str | None, n_tiers: int, default: tuple[float, ...]) -> tuple[float, ...]:
    """``"0.8,0.1,0.05,0.05"`` -> floats; they must match the tiers, be >= 0 and sum to 1.

    Args:
        text: the ``--ratios`` value, or None for ``default``.
        n_tiers: how many tiers there are.
        default: the ratios used when ``text`` is None.

    Returns:
        One ratio per tier.

    Raises:
        LesionPasteError: not numbers, the wrong count, a negative or infinite ratio, or
            ratios that do not sum to 1.
    """
    if text is None:
        return default
    try:
        ratios = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise LesionPasteError(f"--ratios {text!r}: expected comma-separated numbers") from None
    if len(ratios) != n_tiers:
        raise LesionPasteError(
            f"--ratios {text!r}: {len(ratios)} value(s) given but the bank has {n_tiers} tier(s)"
        )
    if any(not math.isfinite(r) or r < 0 for r in ratios):
        raise LesionPasteError(f"--ratios {text!r}: ratios must be finite and non-negative")
    if not math.isclose(sum(ratios), 1.0, abs_tol=1e-6):
        raise LesionPasteError(
            f"--ratios {text!r}: ratios must sum to 1 (they sum to {sum(ratios):g})"
        )
    return ratios


def make_tiers(modality: str, counts: dict[str, int], ratios_text: str | None = None) -> list[Tier]:
    """The tiers for a bank with these lesion ``counts``, checked against what it holds.

    A tier with a non-zero ratio whose types are missing from the bank is an error naming them.

    Args:
        modality: the bank's modality, ``"fundus"`` or ``"ct"``.
        counts: the bank's lesions per type (``Bank.counts``).
        ratios_text: the ``--ratios`` value, or None for the paper's ratios.

    Returns:
        The tiers, in order.

    Raises:
        LesionPasteError: malformed ratios, or a tier with a non-zero ratio needing a type
            the bank does not hold.
    """
    tier_types, default = default_tiers(modality, [t for t, n in counts.items() if n > 0])
    ratios = parse_ratios(ratios_text, len(tier_types), default)
    tiers = [Tier(types, ratio) for types, ratio in zip(tier_types, ratios)]
    for tier in tiers:
        missing = [t for t in tier.types if counts.get(t, 0) == 0]
        if missing and tier.ratio > 0:
            raise LesionPasteError(
                f"tier {tier.name} (ratio {tier.ratio:g}) needs lesion type(s) "
                f"{', '.join(missing)}, which the bank does not hold; give it ratio 0 with "
                "--ratios, or build the bank from an image that has them"
            )
    return tiers
