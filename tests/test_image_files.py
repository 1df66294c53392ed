import numpy as np
import pytest
from PIL import Image

from bank_builder.errors import LesionPasteError
from bank_builder.image_files import read_mask, read_rgb
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
