import numpy as np
import pytest
from PIL import Image

from lesionpaste.errors import LesionPasteError
from lesionpaste.images import read_mask, read_rgb
from tests.conftest import idrid_image, idrid_mask, shared, synthetic_fundus, write_rgb


def test_official_one_bit_tiff_mask_reads_as_its_palette_indices():
    official = shared("idrid_official_ex_sample", "masks", "IDRiD_01_EX.tif")
    mask, sha = read_mask(official)
    # Independent decoder: Pillow gives the raw 1-bit / palette indices.
    with Image.open(official) as im:
        assert im.mode in ("1", "P")
        expected = np.array(im) != 0
    assert mask.dtype == bool and mask.shape == (2848, 4288)
    assert mask.sum() > 1000
    np.testing.assert_array_equal(mask, expected)
    assert len(sha) == 64


def test_official_mask_equals_the_lossless_copy_in_the_idrid_subset():
    official, _ = read_mask(shared("idrid_official_ex_sample", "masks", "IDRiD_01_EX.tif"))
    copy, _ = read_mask(idrid_mask(1, "EX"))
    np.testing.assert_array_equal(official, copy)


def test_read_rgb_returns_rgb_order(tmp_path):
    image = synthetic_fundus()
    path = write_rgb(tmp_path / "f.png", image)  # PNG: lossless, so exact
    got, _ = read_rgb(path)
    np.testing.assert_array_equal(got, image)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda b: b[: len(b) // 2], "truncated JPEG"),
        (lambda b: b"", "empty"),
        (lambda b: b"not an image at all" * 10, "not a readable image"),
    ],
)
def test_bad_jpeg_bytes_are_refused(tmp_path, corrupt, message):
    data = idrid_image(3).read_bytes()
    path = tmp_path / "bad.jpg"
    path.write_bytes(corrupt(data))
    with pytest.raises(LesionPasteError, match=message):
        read_rgb(path)


def test_truncated_png_is_refused(tmp_path):
    path = write_rgb(tmp_path / "f.png", synthetic_fundus())
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(LesionPasteError, match="truncated PNG"):
        read_rgb(path)


def test_jpeg_with_trailing_bytes_after_the_end_marker_is_accepted(tmp_path):
    path = tmp_path / "padded.jpg"
    path.write_bytes(idrid_image(3).read_bytes() + b"\x00" * 64)
    image, _ = read_rgb(path)
    assert image.shape == (2848, 4288, 3)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(LesionPasteError, match="no such file"):
        read_mask(tmp_path / "nope.tif")


def test_a_png_header_claiming_100000x100000_pixels_is_refused_before_decoding(
    tmp_path, monkeypatch
):
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + chunk(b"IEND", b"")
    )
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    # refused from the header: decoding would first allocate 30 GB
    with pytest.raises(LesionPasteError, match="100000x100000 pixels is over the limit"):
        read_rgb(path)
    monkeypatch.setenv("LP_MAX_PIXELS", "1000")
    small = write_rgb(tmp_path / "ok.png", synthetic_fundus(40, 50, 15))
    with pytest.raises(LesionPasteError, match="over the limit of 1,000"):
        read_rgb(small)


def _rgb_pixels(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (12, 16, 3), dtype=np.uint8)


def test_a_zero_byte_image_or_mask_is_refused(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    for reader in (read_rgb, read_mask):
        with pytest.raises(LesionPasteError, match=r"empty \(0 bytes\)"):
            reader(path)


def test_an_image_is_read_by_its_content_whatever_its_extension(tmp_path):
    pixels = _rgb_pixels()
    path = tmp_path / "actually_a_png.jpg"
    Image.fromarray(pixels).save(path, format="PNG")
    np.testing.assert_array_equal(read_rgb(path)[0], pixels)  # lossless: not decoded as JPEG


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16", "RGB16"])
def test_grey_rgba_and_16_bit_images_become_8_bit_rgb(tmp_path, mode):
    rgb = _rgb_pixels(1)
    path = tmp_path / f"{mode.replace(';', '')}.png"
    if mode == "L":
        Image.fromarray(rgb[:, :, 0]).save(path)
        expected = np.repeat(rgb[:, :, :1], 3, axis=2)
    elif mode == "RGBA":
        Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])).save(path)
        expected = rgb  # alpha dropped, colour kept
    elif mode == "I;16":
        wide = rgb[:, :, 0].astype(np.uint16) * 257
        Image.fromarray(wide).save(path)
        expected = np.repeat(rgb[:, :, :1], 3, axis=2)  # the high byte of 257 * v is v
    else:
        import cv2

        cv2.imwrite(str(path), (rgb[:, :, ::-1].astype(np.uint16) * 257))
        expected = rgb
    image, _ = read_rgb(path)
    assert image.dtype == np.uint8 and image.shape == (12, 16, 3)
    np.testing.assert_array_equal(image, expected)


def test_masks_in_any_depth_or_colour_mark_every_non_zero_pixel(tmp_path):
    import cv2

    truth = np.zeros((12, 16), bool)
    truth[2:5, 3:9] = True
    truth[9, 14] = True
    forms = {
        "01.png": truth.astype(np.uint8),
        "0255.png": truth.astype(np.uint8) * 255,
        "mixed.png": truth.astype(np.uint8) * np.uint8(3),  # any non-zero value is lesion
        "01_16bit.png": truth.astype(np.uint16),  # 16-bit 0/1: must not scale down to 0
        "colour.png": np.dstack(
            [np.zeros_like(truth, np.uint8)] * 2 + [truth.astype(np.uint8) * 200]
        ),
    }
    for name, array in forms.items():
        cv2.imwrite(str(tmp_path / name), array)
        np.testing.assert_array_equal(read_mask(tmp_path / name)[0], truth, err_msg=name)
    # RGBA: white but transparent background, opaque red lesion
    rgba = np.full((12, 16, 4), 255, np.uint8)
    rgba[:, :, 3] = np.where(truth, 255, 0)
    rgba[truth, :3] = (0, 0, 255)
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    np.testing.assert_array_equal(read_mask(tmp_path / "rgba.png")[0], truth)
