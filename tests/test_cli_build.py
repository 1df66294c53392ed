"""lp-bank build / info / preview on the real IDRiD subset and on a generated tree."""

import json

import cv2
import numpy as np
import pytest
from scipy import ndimage

from lesionpaste.bank_format import read_bank
from lesionpaste.images import read_mask, read_rgb
from lesionpaste.recipes import disc_mask, estimate_fundus_disc, graham
from tests.conftest import IDRID_ROOT, idrid_image, idrid_mask, no_temp_files

EIGHT = np.ones((3, 3))


@pytest.fixture(scope="module")
def idrid_03_bank(tmp_path_factory):
    """lp-bank build idrid_03 with the root from $LP_IDRID_ROOT, run once for the module."""
    from click.testing import CliRunner

    from lesionpaste.bank_builder.cli import cli

    idrid_image(3)  # skips when the real data is absent
    out = tmp_path_factory.mktemp("bank") / "idrid_03.h5"
    result = CliRunner().invoke(
        cli,
        ["build", "idrid_03", "--out", str(out)],
        env={"LP_IDRID_ROOT": str(IDRID_ROOT)},
        prog_name="lp-bank",
    )
    assert result.exit_code == 0, result.stderr
    return out, result


def test_real_idrid_bank_has_one_lesion_per_component_inside_the_kept_disc(idrid_03_bank):
    out, result = idrid_03_bank
    bank = read_bank(out)
    raw, _ = read_rgb(idrid_image(3))
    region = disc_mask(raw.shape[:2], estimate_fundus_disc(raw), 0.9)
    left_out = bank.meta.sources[0]["left_out_outside_fov"]
    for lesion_type in ("MA", "HE", "EX", "SE"):
        mask, _ = read_mask(idrid_mask(3, lesion_type))
        labels, n = ndimage.label(mask, structure=EIGHT)
        outside = len(set(np.unique(labels[~region])) - {0})
        assert bank.counts()[lesion_type] == n - outside
        assert left_out.get(lesion_type, 0) == outside
    assert bank.counts()["MA"] > 20 and bank.counts()["EX"] > 100
    assert "left out" in result.stderr


def test_real_idrid_patches_and_masks_are_exact_crops_of_the_preprocessed_source(idrid_03_bank):
    bank = read_bank(idrid_03_bank[0])
    raw, _ = read_rgb(idrid_image(3))
    source = graham(raw, estimate_fundus_disc(raw))
    labels = {}
    for lesion_type in ("MA", "HE", "EX", "SE"):
        labels[lesion_type] = ndimage.label(read_mask(idrid_mask(3, lesion_type))[0], EIGHT)[0]
    for i in range(len(bank)):
        lesion = bank.lesion(i)
        y, x, h, w = lesion.bbox
        np.testing.assert_array_equal(lesion.patch, source[y : y + h, x : x + w])
        crop = labels[lesion.lesion_type][y : y + h, x : x + w]
        component = crop[lesion.mask][0]
        np.testing.assert_array_equal(lesion.mask, crop == component)
        assert lesion.area == lesion.mask.sum()


def test_real_idrid_bank_records_provenance_and_recipe(idrid_03_bank):
    bank = read_bank(idrid_03_bank[0])
    meta = bank.meta
    assert meta.modality == "fundus" and meta.channels == 3
    assert meta.preprocess["name"] == "graham"
    assert meta.preprocess["sigma_fraction"] == pytest.approx(1 / 30)
    assert meta.preprocess["disc_fraction"] == 0.9
    (source,) = meta.sources
    assert source["id"] == "IDRiD_03" and source["licence"] == "CC BY 4.0"
    assert 1600 < source["fov"]["radius"] < 1800
    import hashlib

    files = {f["role"]: f for f in source["files"]}
    assert set(files) == {"image", "mask:MA", "mask:HE", "mask:EX", "mask:SE"}
    assert files["image"]["sha256"] == hashlib.sha256(idrid_image(3).read_bytes()).hexdigest()
    assert not files["image"]["path"].startswith("/")
    assert meta.command.startswith("lp-bank build idrid_03")
    assert bank.histograms.shape == (1, 3, 256)
    # the histogram counts exactly the kept disc's pixels
    raw, _ = read_rgb(idrid_image(3))
    assert (
        bank.histograms[0, 0].sum()
        == disc_mask(raw.shape[:2], estimate_fundus_disc(raw), 0.9).sum()
    )


def test_info_json_has_the_documented_keys(idrid_03_bank, lp_bank):
    r = lp_bank("info", idrid_03_bank[0], "--json")
    assert r.code == 0
    summary = json.loads(r.stdout)
    for key in ("schema_version", "modality", "sources", "preprocess", "counts"):
        assert key in summary
    assert summary["schema_version"] == 1
    assert summary["counts"] == read_bank(idrid_03_bank[0]).counts()
    text = lp_bank("info", idrid_03_bank[0])
    assert text.code == 0 and "IDRiD_03" in text.stdout and "MA" in text.stdout


def test_preview_writes_a_contact_sheet_with_a_section_per_type(idrid_03_bank, lp_bank, tmp_path):
    sheet = tmp_path / "sheet.png"
    r = lp_bank("preview", idrid_03_bank[0], "-o", sheet, "--per-type", "16")
    assert r.code == 0, r.stderr
    image = cv2.imread(str(sheet))
    # title + 4 types, each a 30 px header and one row of 16 tiles of 64+4 px
    assert image.shape[0] == 36 + 4 * (30 + 68 + 4)
    assert image.shape[1] == 16 * 68 + 4


def test_tiny_tree_counts_match_the_drawn_components(tiny_idrid, lp_bank):
    r = lp_bank("build", "IDRID_7", "--root", tiny_idrid, "--preprocess", "none")
    assert r.code == 0, r.stderr
    assert "no soft exudates (SE) mask" in r.stderr
    bank = read_bank("banks/idrid_07.h5")  # default output, relative to the working directory
    assert bank.counts() == {"MA": 2, "HE": 2, "EX": 1, "SE": 0}
    assert bank.meta.sources[0]["files"][0]["path"].startswith("A. Segmentation/1. Original Images")


def test_several_ids_build_one_bank(tiny_idrid, lp_bank, tmp_path):
    import shutil

    seg = tiny_idrid / "A. Segmentation"
    shutil.copy(
        seg / "1. Original Images/b. Testing Set/IDRiD_07.jpg",
        seg / "1. Original Images/b. Testing Set/IDRiD_08.jpg",
    )
    ma = seg / "2. All Segmentation Groundtruths/b. Testing Set/1. Microaneurysms"
    shutil.copy(ma / "IDRiD_07_MA.tif", ma / "IDRiD_08_MA.tif")
    r = lp_bank("build", "idrid_07", "idrid_08", "--root", tiny_idrid, "-o", tmp_path / "two.h5")
    assert r.code == 0, r.stderr
    bank = read_bank(tmp_path / "two.h5")
    assert [s["id"] for s in bank.meta.sources] == ["IDRiD_07", "IDRiD_08"]
    assert bank.counts()["MA"] == 4
    assert sorted(set(bank.sources.tolist())) == [0, 1]


def test_root_from_the_config_file(tiny_idrid, lp_bank, tmp_path):
    (tmp_path / "cwd" / "lesionpaste.toml").write_text(f'[data]\nidrid_root = "{tiny_idrid}"\n')
    r = lp_bank("build", "idrid_07", "-o", tmp_path / "c.h5")
    assert r.code == 0, r.stderr
    assert read_bank(tmp_path / "c.h5").counts()["MA"] == 2


def test_overwrite_replaces_an_existing_bank(tiny_idrid, lp_bank, tmp_path):
    out = tmp_path / "b.h5"
    lp_bank("build", "idrid_07", "--root", tiny_idrid, "-o", out, "--preprocess", "none")
    before = read_bank(out).sha256
    r = lp_bank("build", "idrid_07", "--root", tiny_idrid, "-o", out, "--overwrite")
    assert r.code == 0, r.stderr
    assert len(read_bank(out)) == 5
    assert read_bank(out).sha256 != before
    assert no_temp_files(tmp_path)


def test_rebuilding_gives_a_byte_identical_bank(tiny_idrid, lp_bank, tmp_path):
    out = tmp_path / "b.h5"
    first = None
    for _ in range(2):
        r = lp_bank("build", "idrid_07", "--root", tiny_idrid, "-o", out, "--overwrite")
        assert r.code == 0, r.stderr
        first = first or out.read_bytes()
    assert out.read_bytes() == first
