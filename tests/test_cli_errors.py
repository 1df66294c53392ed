"""Every bad input: one clear error line, a non-zero exit, and nothing written."""

import h5py
import numpy as np
import pytest

from tests.conftest import TYPE_DIRS, no_temp_files, write_mask

IMAGE = "A. Segmentation/1. Original Images/b. Testing Set/IDRiD_07.jpg"
GT = "A. Segmentation/2. All Segmentation Groundtruths/b. Testing Set"


def assert_refused(result, *fragments):
    assert result.code != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("lp-bank: error: ")
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def build(lp_bank, root, out, *extra):
    return lp_bank("build", "idrid_07", "--root", root, "-o", out, *extra)


def test_unknown_id(tiny_idrid, lp_bank, tmp_path):
    r = lp_bank("build", "idrid_48", "--root", tiny_idrid, "-o", tmp_path / "b.h5")
    assert_refused(r, "unknown IDRiD id IDRiD_48", "IDRiD_07")
    assert not (tmp_path / "b.h5").exists()


def test_not_an_idrid_id(lp_bank, tiny_idrid):
    assert_refused(lp_bank("build", "idrid_x", "--root", tiny_idrid), "not an IDRiD id")


def test_missing_root(lp_bank):
    assert_refused(lp_bank("build", "idrid_48"), "no IDRiD root given", "LP_IDRID_ROOT")


def test_root_that_does_not_exist(lp_bank, tmp_path):
    r = lp_bank("build", "idrid_48", env={"LP_IDRID_ROOT": str(tmp_path / "nowhere")})
    assert_refused(r, "does not exist")


def test_root_that_is_not_an_idrid_tree(lp_bank, tmp_path):
    assert_refused(
        lp_bank("build", "idrid_48", "--root", tmp_path), "does not look like the IDRiD tree"
    )


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b"garbage" * 100, "not a readable image"),
        (lambda b: b[: len(b) // 2], "truncated JPEG"),
        (lambda b: b"", "empty"),
    ],
)
def test_unreadable_or_truncated_image(tiny_idrid, lp_bank, tmp_path, damage, message):
    image = tiny_idrid / IMAGE
    image.write_bytes(damage(image.read_bytes()))
    r = build(lp_bank, tiny_idrid, tmp_path / "b.h5")
    assert_refused(r, message, "IDRiD_07.jpg")
    assert not (tmp_path / "b.h5").exists() and no_temp_files(tmp_path)


def test_corrupt_mask(tiny_idrid, lp_bank, tmp_path):
    (tiny_idrid / GT / TYPE_DIRS["HE"] / "IDRiD_07_HE.tif").write_bytes(b"II*\x00garbage")
    assert_refused(build(lp_bank, tiny_idrid, tmp_path / "b.h5"), "IDRiD_07_HE.tif")
    assert not (tmp_path / "b.h5").exists()


def test_mask_of_another_size(tiny_idrid, lp_bank, tmp_path):
    write_mask(tiny_idrid / GT / TYPE_DIRS["EX"] / "IDRiD_07_EX.tif", np.ones((100, 100), bool))
    r = build(lp_bank, tiny_idrid, tmp_path / "b.h5")
    assert_refused(r, "IDRiD_07_EX.tif", "100x100", "320x240")
    assert not (tmp_path / "b.h5").exists() and no_temp_files(tmp_path)


def test_every_mask_empty(tiny_idrid, lp_bank, tmp_path):
    for t in ("MA", "HE", "EX"):
        write_mask(tiny_idrid / GT / TYPE_DIRS[t] / f"IDRiD_07_{t}.tif", np.zeros((240, 320), bool))
    r = build(lp_bank, tiny_idrid, tmp_path / "b.h5")
    assert_refused(r, "every lesion mask is empty")
    assert not (tmp_path / "b.h5").exists() and no_temp_files(tmp_path)


def test_existing_output_is_kept_without_overwrite(tiny_idrid, lp_bank, tmp_path):
    out = tmp_path / "b.h5"
    out.write_bytes(b"precious")
    assert_refused(build(lp_bank, tiny_idrid, out), "already exists", "--overwrite")
    assert out.read_bytes() == b"precious"


def test_a_failure_while_writing_leaves_the_old_bank_and_no_partial_file(
    tiny_idrid, lp_bank, tmp_path, monkeypatch
):
    import lesionpaste.bank_builder.build as build_module

    out = tmp_path / "b.h5"
    assert build(lp_bank, tiny_idrid, out).code == 0
    precious = out.read_bytes()

    def failing_write(path, *args):
        path.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(build_module, "write_bank", failing_write)
    r = build(lp_bank, tiny_idrid, out, "--overwrite")
    assert_refused(r, "No space left on device: the disk (or a file size limit) is full")
    assert out.read_bytes() == precious
    assert no_temp_files(tmp_path)


def test_info_and_preview_refuse_a_file_that_is_not_a_bank(lp_bank, tmp_path):
    (tmp_path / "notes.h5").write_text("not hdf5")
    assert_refused(lp_bank("info", tmp_path / "notes.h5"), "not a lesion bank")
    r = lp_bank("preview", tmp_path / "notes.h5", "-o", tmp_path / "s.png")
    assert_refused(r, "not a lesion bank")
    assert not (tmp_path / "s.png").exists()
    assert_refused(lp_bank("info", tmp_path / "missing.h5"), "no such bank file")


def test_info_refuses_another_schema_version(tiny_idrid, lp_bank, tmp_path):
    out = tmp_path / "b.h5"
    assert build(lp_bank, tiny_idrid, out).code == 0
    with h5py.File(out, "a") as f:
        f.attrs["schema_version"] = 7
    assert_refused(lp_bank("info", out, "--json"), "schema version 7 is not supported")


def test_preview_keeps_an_existing_image(tiny_idrid, lp_bank, tmp_path):
    out = tmp_path / "b.h5"
    assert build(lp_bank, tiny_idrid, out).code == 0
    (tmp_path / "s.png").write_bytes(b"mine")
    assert_refused(lp_bank("preview", out, "-o", tmp_path / "s.png"), "already exists")
    assert (tmp_path / "s.png").read_bytes() == b"mine"


@pytest.mark.parametrize(
    "masks, message",
    [(["OD=od.png"], "optic disc"), (["MA"], "expected TYPE=PATH"), ([], "at least one --mask")],
)
def test_folder_source_refuses_bad_mask_options(lp_bank, tmp_path, masks, message):
    from tests.conftest import synthetic_fundus, write_rgb

    image = write_rgb(tmp_path / "f.png", synthetic_fundus())
    args = ["build", "--image", image]
    for m in masks:
        args += ["--mask", m]
    assert_refused(lp_bank(*args), message)


def test_a_blank_photograph_has_no_fundus(lp_bank, tmp_path):
    from tests.conftest import write_rgb

    image = write_rgb(tmp_path / "black.png", np.zeros((50, 60, 3), np.uint8))
    mask = write_mask(tmp_path / "m.png", np.ones((50, 60), bool))
    r = lp_bank("build", "--image", image, "--mask", f"HE={mask}", "-o", tmp_path / "b.h5")
    assert_refused(r, "black.png", "no fundus found")
    assert not (tmp_path / "b.h5").exists()
