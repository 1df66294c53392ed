"""Lesion-count bins: how many lesions a twin holds, in the bins a user reads at a glance.

One place for the bins that the dataset card and ``lp-synth preview`` count twins in, and that
``lp-train`` splits its synthetic validation AUC by (``train/metrics/validation_bins.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

#: ``(name, fewest, most)``; ``most`` None: no upper bound
LESION_BINS = (("1-5", 1, 5), ("6-20", 6, 20), ("21-50", 21, 50), (">50", 51, None))


def in_bin(count, fewest: int, most: int | None):
    """Whether lesion counts fall in a bin.

    Args:
        count: the lesions of one twin, or an array of counts.
        fewest: the bin's lowest count.
        most: its highest count, or None for no bound.

    Returns:
        Whether ``fewest <= count <= most`` (a bool, or a boolean array for an array).
    """
    return (count >= fewest) & (count <= (math.inf if most is None else most))


def count_histogram(counts: Iterable[int]) -> dict[str, int]:
    """How many of the counts fall in each bin (a count of 0 falls in none).

    Args:
        counts: lesion counts, one per twin.

    Returns:
        ``{bin name: twins}``, in bin order.
    """
    counts = list(counts)
    return {
        name: sum(bool(in_bin(c, low, high)) for c in counts) for name, low, high in LESION_BINS
    }
