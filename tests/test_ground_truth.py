"""Ground-truth masks of an evaluation set (synth/inputs/ground_truth.py): finding them (an IDRiD tree,
a --masks folder), refusing bad ones with one line, and preparing them like their image, also
when the JPEG decoder read the image at a fraction of its size."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from lesionpaste.bank_format import read_bank
from lesionpaste.errors import LesionPasteError
from lesionpaste.synth.inputs.ground_truth import (
    attach_folder_masks,
    check_mask_headers,
    folder_masks,
    idrid_images,
    prepared_masks,
)
from lesionpaste.synth.inputs.load_normal import normals_recipe, prepare_normal
from lesionpaste.synth.inputs.normals import NormalImage
from tests.conftest import write_mask
from tests.synth_fixtures import make_fundus_bank


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    return read_bank(make_fundus_bank(tmp_path_factory.mktemp("bank") / "fundus.h5"))


def _items(folder: Path, *names: str) -> list[NormalImage]:
    items = []
    for name in names:
        path = folder / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), np.zeros((20, 30), np.uint8))
        items.append(NormalImage(name, path, 1))
    return items


def test_an_idrid_tree_gives_every_image_with_its_lesion_masks(tiny_idrid):
    (item,) = idrid_images(tiny_idrid)
    assert item.image_id == "IDRiD_07" and item.label == 1 and item.union_mask is None
    assert [t for t, _ in item.type_masks] == ["MA", "HE", "EX"]  # no SE file, never OD
    assert all(p.name == f"IDRiD_07_{t}.tif" for t, p in item.type_masks)
    assert idrid_images(tiny_idrid, label=3)[0].label == 3


def test_a_masks_folder_gives_union_or_per_type_masks(tmp_path):
    items = _items(tmp_path / "img", "a", "b", "c", "é")
    masks = tmp_path / "masks"
    write_mask(masks / "a.png", np.zeros((20, 30), bool))
    write_mask(masks / "MA" / "b.png", np.zeros((20, 30), bool))
    write_mask(masks / "HE" / "b.tif", np.zeros((20, 30), bool))
    write_mask(masks / "e\u0301.png", np.zeros((20, 30), bool))  # NFD name, NFC id
    (masks / "notes.txt").write_text("not a mask")
    union, types = folder_masks(masks)
    assert set(union) == {"a", "é"} and list(types) == ["HE", "MA"]
    found, without = attach_folder_masks(items, masks)
    assert without == 1 and found[2].union_mask is None and not found[2].has_masks
    assert found[0].union_mask == masks / "a.png" and found[0].type_masks == ()
    assert dict(found[1].type_masks) == {"HE": masks / "HE" / "b.tif", "MA": masks / "MA" / "b.png"}
    assert found[3].union_mask is not None


@pytest.mark.parametrize(
    "layout, message",
    [
        ({}, "no such folder of masks"),
        ({"OD/a.png": 1}, "the optic disc is anatomy, not a lesion"),
        ({"M A/a.png": 1}, "a lesion type folder is named with letters, digits and _"),
        ({"a.png": 1, "a.tif": 1}, "two masks for 'a' (a.png, a.tif); keep one"),
        ({"a.png": 1, "MA/a.png": 1}, "'a' has both a.png and per-type masks (MA)"),
        ({"x.png": 1}, "no mask matches an image (expected <id>.png or <TYPE>/<id>.png, e.g. a.png)"),
    ],
)  # fmt: skip
def test_a_masks_folder_that_cannot_be_used_is_refused_with_one_line(tmp_path, layout, message):
    items = _items(tmp_path / "img", "a")
    masks = tmp_path / "masks"
    for name in layout:
        write_mask(masks / name, np.zeros((20, 30), bool))
    with pytest.raises(LesionPasteError) as err:
        attach_folder_masks(items, masks)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_mask_files_are_refused_before_any_work(tmp_path):
    (item,) = _items(tmp_path / "img", "a")
    fine = write_mask(tmp_path / "fine.png", np.zeros((20, 30), bool))
    check_mask_headers([NormalImage("a", item.path, 1, union_mask=fine)])
    wrong = write_mask(tmp_path / "wrong.png", np.zeros((20, 31), bool))
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image at all")
    cases = {
        wrong: f"{wrong}: mask is 31x20 but its image a.png is 30x20; masks must have",
        junk: f"mask of a: {junk}: not a readable image",
        tmp_path / "gone.png": f"mask of a: {tmp_path / 'gone.png'}: no such file",
        tmp_path: "a directory, where a image file was expected",
    }
    for path, message in cases.items():
        with pytest.raises(LesionPasteError) as err:
            check_mask_headers([NormalImage("a", item.path, 1, type_masks=(("MA", path),))])
        assert message in str(err.value) and "\n" not in str(err.value)


def test_a_truncated_mask_is_refused_before_the_work_and_when_read(tmp_path, bank):
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), np.full((40, 50, 3), 90, np.uint8))
    data = cv2.imencode(".png", np.zeros((40, 50), np.uint8))[1].tobytes()
    (tmp_path / "cut.png").write_bytes(data[:-20])  # no IEND: truncated
    item = NormalImage("a", path, 1, union_mask=tmp_path / "cut.png")
    with pytest.raises(LesionPasteError, match=r"^mask of a: .*cut.png: truncated PNG"):
        check_mask_headers([item])  # before any work
    prepared = prepare_normal(path, bank, normals_recipe(bank, "none"), 32)
    with pytest.raises(LesionPasteError, match=r"^mask of a: .*cut.png: truncated PNG"):
        prepared_masks(item, prepared)  # and when read, should it have changed since


def test_the_union_of_type_masks_holds_each_of_them(tmp_path, bank):
    raw = np.zeros((300, 400, 3), np.uint8)
    cv2.circle(raw, (200, 150), 130, (120, 80, 60), -1)
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), raw)
    ma, he = np.zeros((300, 400), bool), np.zeros((300, 400), bool)
    ma[150, 200] = ma[151, 202] = True  # two microaneurysms in one output pixel
    he[100:110, 150:190] = True
    files = (
        ("MA", write_mask(tmp_path / "ma.png", ma)),
        ("HE", write_mask(tmp_path / "he.png", he)),
    )
    prepared = prepare_normal(path, bank, normals_recipe(bank, "bank"), 64)
    union, types = prepared_masks(NormalImage("photo", path, 1, type_masks=files), prepared)
    assert list(types) == ["MA", "HE"] and types["MA"].sum() >= 1
    assert (union >= types["MA"]).all() and (union >= types["HE"]).all()
    assert not (union & ~prepared.region).any()  # Graham's disc: nothing outside it


def test_a_mask_lands_on_its_square_when_the_jpeg_was_decoded_at_an_eighth(tmp_path, bank):
    """512x640 JPEG prepared at 32 px: decoded at 1/8 scale (64x80), the mask at full size."""
    raw = np.zeros((512, 640, 3), np.uint8)
    cv2.circle(raw, (320, 256), 250, (100, 100, 100), -1)
    raw[128:192, 336:432] = 200  # on the 8x8 blocks of the JPEG: decoded without blur
    mask = (raw == 200).all(axis=2)
    path = tmp_path / "photo.jpg"
    cv2.imwrite(str(path), raw, [cv2.IMWRITE_JPEG_QUALITY, 100])
    masks = (("EX", write_mask(tmp_path / "ex.png", mask)),)
    prepared = prepare_normal(path, bank, normals_recipe(bank, "none"), 32)
    assert prepared.geometry.source_shape == (512, 640) and prepared.geometry.height % 8 == 0
    union, types = prepared_masks(NormalImage("photo", path, 1, type_masks=masks), prepared)
    cover = (prepared.image[:, :, 0].astype(float) - 100) / 100
    clear = np.abs(cover - 0.5) > 0.05
    assert union.any() and clear.mean() > 0.9
    np.testing.assert_array_equal(union[clear], (cover >= 0.5)[clear])
    np.testing.assert_array_equal(types["EX"], union)
    too_small = (("EX", write_mask(tmp_path / "small.png", mask[::8, ::8])),)
    with pytest.raises(LesionPasteError, match="mask is 80x64 but its image photo.jpg is 640x512"):
        prepared_masks(NormalImage("photo", path, 1, type_masks=too_small), prepared)
