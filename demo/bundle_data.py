"""How the demo's bundled data (``demo/data``) was made from the project's shared data.

Run once by a maintainer (``python demo/bundle_data.py``); ``make demo`` only reads the result.
IDRiD and CHASE_DB1 are CC BY 4.0 (``demo/data/ATTRIBUTION.md``).

- ``chase_db1/``: all 28 CHASE_DB1 photographs (14 children, both eyes), unchanged copies.
- ``idrid/``: IDRiD_03 (the training bank's source) and IDRiD_13 (the second bank's, whose
  lesions the detector never sees in training) unchanged; and, for the localisation test,
  IDRiD_01, 02, 04-10 downscaled 4x (1072x712; JPEG quality 90, as the source is JPEG) with
  their lesion masks downscaled the same way by area (a pixel is lesion when half covered,
  and every lesion keeps at least one pixel: ``synth.inputs.mask_resize.resize_mask``), as PNG.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lesionpaste.idrid_files import lesion_masks, locate
from lesionpaste.synth.inputs.mask_resize import resize_mask

SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "demo" / "data"
TREE = Path("A. Segmentation")
IMAGES = TREE / "1. Original Images" / "a. Training Set"
MASKS = TREE / "2. All Segmentation Groundtruths" / "a. Training Set"
BANKS = ("IDRiD_03", "IDRiD_13")
LOCALISATION = ("IDRiD_01", "IDRiD_02", *(f"IDRiD_{n:02d}" for n in range(4, 11)))
FACTOR = 4


def main() -> None:
    source = SHARED / "idrid"
    for image_id in (*BANKS, *LOCALISATION):
        image, _ = locate(source, image_id)
        (OUT / "idrid" / IMAGES).mkdir(parents=True, exist_ok=True)
        if image_id in BANKS:
            shutil.copyfile(image, OUT / "idrid" / IMAGES / image.name)
        else:
            pixels = cv2.imread(str(image), cv2.IMREAD_COLOR)
            h, w = pixels.shape[0] // FACTOR, pixels.shape[1] // FACTOR
            small = cv2.resize(pixels, (w, h), interpolation=cv2.INTER_AREA)
            cv2.imwrite(
                str(OUT / "idrid" / IMAGES / image.name), small, [cv2.IMWRITE_JPEG_QUALITY, 90]
            )
        for kind, path in lesion_masks(source, image_id).items():
            folder = OUT / "idrid" / MASKS / path.parent.name
            folder.mkdir(parents=True, exist_ok=True)
            if image_id in BANKS:
                shutil.copyfile(path, folder / path.name)
                continue
            mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) > 0
            small = resize_mask(mask, (h, w))
            cv2.imwrite(str(folder / f"{image_id}_{kind}.png"), small.astype("uint8") * 255)
    (OUT / "chase_db1").mkdir(parents=True, exist_ok=True)
    for photo in sorted((SHARED / "chase_db1").glob("Image_*.jpg")):
        shutil.copyfile(photo, OUT / "chase_db1" / photo.name)


if __name__ == "__main__":
    main()
