"""CT sources: a MosMed study in the exact NIfTI layout, and CT slices through --source folder."""

import shutil

import numpy as np
import pytest
from scipy import ndimage

from lesionpaste.bank_format import read_bank
from lesionpaste.images import read_gray
from lesionpaste.recipes import WindowRecipe, window_hu
from tests.conftest import shared, write_mask

nib = pytest.importorskip("nibabel")
pydicom = pytest.importorskip("pydicom")

LESION_HU, TISSUE_HU = 300, -900


@pytest.fixture
def mosmed_root(tmp_path):
    """A MosMed tree whose mask is the real study_0255 mask and whose volume is generated:
    LESION_HU under the mask, TISSUE_HU elsewhere (int16 with a rescale, as MosMed stores HU)."""
    real_mask = shared("ct", "mosmed_masks", "study_0255_mask.nii.gz")
    root = tmp_path / "MosMed"
    (root / "masks").mkdir(parents=True)
    shutil.copy(real_mask, root / "masks" / "study_0255_mask.nii.gz")
    mask_img = nib.load(real_mask)
    lesion = np.asarray(mask_img.dataobj) > 0
    stored = np.where(lesion, LESION_HU + 1024, TISSUE_HU + 1024).astype(np.int16)
    volume = nib.Nifti1Image(stored, mask_img.affine)
    volume.header.set_slope_inter(1.0, -1024.0)
    (root / "studies" / "CT-1").mkdir(parents=True)
    nib.save(volume, root / "studies" / "CT-1" / "study_0255.nii.gz")
    return root, lesion


def _axial_counts(lesion: np.ndarray) -> tuple[int, int]:
    slices = [z for z in range(lesion.shape[2]) if lesion[:, :, z].any()]
    count = sum(ndimage.label(lesion[:, :, z], np.ones((3, 3)))[1] for z in slices)
    return len(slices), count


def test_mosmed_study_gives_one_source_per_lesion_slice_and_aligned_patches(
    mosmed_root, lp_bank, tmp_path
):
    root, lesion = mosmed_root
    r = lp_bank("build", "study_0255", "-o", tmp_path / "m.h5", env={"LP_MOSMED_ROOT": str(root)})
    assert r.code == 0, r.stderr
    bank = read_bank(tmp_path / "m.h5")
    n_slices, n_components = _axial_counts(lesion)
    assert len(bank.meta.sources) == n_slices
    assert bank.counts() == {"COVID": n_components}
    assert bank.meta.modality == "ct" and bank.meta.channels == 1
    assert bank.meta.preprocess == {"name": "window", "level": -300.0, "width": 1400.0}
    zooms = nib.load(root / "masks" / "study_0255_mask.nii.gz").header.get_zooms()
    assert bank.meta.sources[0]["pixel_spacing"] == pytest.approx([zooms[1], zooms[0]])
    assert bank.meta.sources[0]["licence"] == "CC BY-NC-ND 3.0"
    # The volume holds LESION_HU exactly under the mask: every patch must show it, windowed,
    # under its own mask, whatever orientation the reader chose for both.
    lesion_value = window_hu(np.array([LESION_HU]), WindowRecipe())[0]
    for i in range(len(bank)):
        got = bank.lesion(i)
        assert (got.patch[..., 0][got.mask] == lesion_value).all()


def test_mosmed_slices_option_and_a_slice_without_lesion(mosmed_root, lp_bank, tmp_path):
    root, lesion = mosmed_root
    with_lesion = [z for z in range(lesion.shape[2]) if lesion[:, :, z].any()]
    z = with_lesion[0]
    r = lp_bank("build", "study_0255", "--root", root, "--slices", str(z), "-o", tmp_path / "m.h5")
    assert r.code == 0, r.stderr
    assert [s["id"] for s in read_bank(tmp_path / "m.h5").meta.sources] == [f"study_0255:z{z:03d}"]
    empty = next(k for k in range(lesion.shape[2]) if k not in with_lesion)
    r = lp_bank(
        "build", "study_0255", "--root", root, "--slices", str(empty), "-o", tmp_path / "n.h5"
    )
    assert r.code != 0 and "have no lesion" in r.stderr
    assert not (tmp_path / "n.h5").exists()


def test_mosmed_mask_of_another_shape_is_refused(mosmed_root, lp_bank, tmp_path):
    root, _ = mosmed_root
    small = nib.Nifti1Image(np.ones((64, 64, 5), np.uint8), np.eye(4))
    nib.save(small, root / "masks" / "study_0255_mask.nii.gz")
    r = lp_bank("build", "study_0255", "--root", root, "-o", tmp_path / "m.h5")
    assert r.code != 0 and "must match" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "m.h5").exists()


def test_mosmed_study_without_mask_is_refused(mosmed_root, lp_bank):
    root, _ = mosmed_root
    (root / "studies" / "CT-0").mkdir()
    shutil.copy(root / "studies/CT-1/study_0255.nii.gz", root / "studies/CT-0/study_0001.nii.gz")
    r = lp_bank("build", "study_0001", "--root", root)
    assert r.code != 0 and "has no lesion mask" in r.stderr


def test_covid_jpeg_slice_through_folder_source(lp_bank, tmp_path):
    image = shared("ct", "covid_seg", "images", "0.jpg")
    mask = shared("ct", "covid_seg", "masks", "0.png")
    r = lp_bank(
        "build",
        "--image",
        image,
        "--mask",
        f"COVID={mask}",
        "--modality",
        "ct",
        "--pixel-spacing",
        "0.7",
        "-o",
        tmp_path / "c.h5",
    )
    assert r.code == 0, r.stderr
    bank = read_bank(tmp_path / "c.h5")
    pixels, _ = read_gray(image)
    _, n = ndimage.label(read_gray(mask)[0] > 0, np.ones((3, 3)))
    assert bank.counts() == {"COVID": n} and n > 0
    assert bank.meta.preprocess == {"name": "none"}
    assert bank.meta.sources[0]["pixel_spacing"] == [0.7, 0.7]
    for i in range(len(bank)):
        got = bank.lesion(i)
        y, x, h, w = got.bbox
        np.testing.assert_array_equal(got.patch[..., 0], pixels[y : y + h, x : x + w])


def test_dicom_slice_in_hu_through_folder_source(lp_bank, tmp_path):
    dicom = shared("ct", "tcia_dicom", "ID_0000_AGE_0060_CONTRAST_1_CT.dcm")
    ds = pydicom.dcmread(dicom)
    hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    mask = np.zeros(hu.shape, bool)
    mask[200:230, 150:190] = True
    mask[300:310, 300:305] = True
    mask_path = write_mask(tmp_path / "m.png", mask)
    r = lp_bank("build", "--image", dicom, "--mask", f"nodule={mask_path}", "-o", tmp_path / "d.h5")
    assert r.code == 0, r.stderr
    bank = read_bank(tmp_path / "d.h5")
    assert bank.counts() == {"NODULE": 2}
    assert bank.meta.modality == "ct" and bank.meta.preprocess["name"] == "window"
    assert bank.meta.sources[0]["pixel_spacing"] == [float(v) for v in ds.PixelSpacing]
    expected = np.clip(np.rint((hu + 1000) * 255 / 1400), 0, 255)
    first = bank.lesion(0)
    np.testing.assert_array_equal(first.patch[..., 0], expected[200:230, 150:190])


def test_fundus_photograph_through_folder_source(lp_bank, tmp_path):
    image = shared("chase_db1", "Image_01L.jpg")
    mask = np.zeros((960, 999), bool)
    mask[400:420, 500:530] = True
    mask_path = write_mask(tmp_path / "he.png", mask)
    r = lp_bank(
        "build",
        "--image",
        image,
        "--mask",
        f"HE={mask_path}",
        "--licence",
        "CC BY 4.0",
        "-o",
        tmp_path / "f.h5",
    )
    assert r.code == 0, r.stderr
    bank = read_bank(tmp_path / "f.h5")
    assert bank.counts() == {"HE": 1}
    assert bank.meta.sources[0]["fov"]["radius"] == pytest.approx(459, abs=5)
    assert bank.meta.sources[0]["licence"] == "CC BY 4.0"
