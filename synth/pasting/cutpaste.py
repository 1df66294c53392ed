"""The CutPaste-style baseline (Li et al., CVPR 2021): no lesion bank, a rectangle cut from the
normal image itself is pasted elsewhere in it (paper Table 3's comparison in this harness)."""

from __future__ import annotations

import math

import numpy as np

from lesionpaste.preparation import Prepared
from lesionpaste.synth.pasting.paste import find_position, mixup_paste
from lesionpaste.synth.pasting.twin import Twin

AREA_RATIO = (0.02, 0.15)
ASPECT_RATIO = (0.3, 1 / 0.3)


def cutpaste_twin(
    prepared: Prepared, rngs: dict[str, np.random.Generator], lam: tuple[float, float] | None = None
) -> Twin:
    """One rectangle of 2-15% of the field of view, aspect 0.3-3.3, cut from inside the field of
    view and pasted (hard by default, or by eq. (1) with λ drawn from ``lam``) elsewhere in it.

    Args:
        prepared: the prepared normal image (left untouched).
        rngs: the image's generators (``image_generators``).
        lam: the λ range for eq. (1), or None for a hard paste.

    Returns:
        The anomalous twin: ``(H, W, C)`` ``uint8`` image, ``(H, W)`` boolean mask and the
        paste's record (none when no position fits).
    """
    select = rngs["select"]
    area = float(select.uniform(*AREA_RATIO)) * prepared.region.sum()
    aspect = math.exp(float(select.uniform(math.log(ASPECT_RATIO[0]), math.log(ASPECT_RATIO[1]))))
    h = max(1, round(math.sqrt(area / aspect)))
    w = max(1, round(math.sqrt(area * aspect)))
    lam_value = float(rngs["mix"].uniform(*lam)) if lam else 1.0
    mask = np.ones((h, w), bool)
    source = find_position(rngs["place"], mask, prepared.region)
    target = find_position(rngs["place"], mask, prepared.region)
    image = prepared.image.copy()
    union = np.zeros(image.shape[:2], bool)
    pastes = []
    if source is not None and target is not None:
        (sy, sx), (y, x) = source, target
        patch = prepared.image[sy : sy + h, sx : sx + w].astype(np.float32)
        mixup_paste(image, patch, mask, y, x, lam_value)
        union[y : y + h, x : x + w] = True
        pastes.append(
            {
                "type": "CUTPASTE",
                "from_y": sy,
                "from_x": sx,
                "y": y,
                "x": x,
                "h": h,
                "w": w,
                "area": h * w,
                "lambda": round(lam_value, 6),
            }
        )
    return Twin(image=image, mask=union, tier=0, n_drawn=1, pastes=pastes)
