"""What a twin records and how its scale and random streams are derived, checked directly."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import numpy as np
import pytest

from synth.augment import AugmentConfig, AugmentDraw
from synth.prepare import Prepared
from synth.twin import STREAMS, PasteConfig, base_scales, image_generators, paste_record

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate


def _bank(*sources: dict):
    return SimpleNamespace(meta=SimpleNamespace(sources=list(sources)))


def test_scales_come_from_fundus_radii_or_ct_spacings_else_one():
    bank = _bank({"fov": {"radius": 100.0}}, {"pixel_spacing": [0.5, 0.7]}, {"fov": None})
    fundus = Prepared(np.zeros((4, 4, 3), np.uint8), np.ones((4, 4), bool), fov_radius=50.0)
    np.testing.assert_allclose(base_scales(bank, fundus), [0.5, 1.0, 1.0])
    ct = Prepared(np.zeros((4, 4, 1), np.uint8), np.ones((4, 4), bool), pixel_spacing=[0.9, 1.4])
    scales = base_scales(bank, ct)
    np.testing.assert_allclose(scales, [1.0, 0.5, 1.0])  # 0.7 mm source pixels onto 1.4 mm
    assert scales.dtype == np.float64
    bare = Prepared(np.zeros((4, 4, 1), np.uint8), np.ones((4, 4), bool))
    np.testing.assert_allclose(base_scales(bank, bare), [1.0, 1.0, 1.0])


def test_each_image_has_its_own_streams_seeded_from_the_run_seed_and_its_id():
    rngs = image_generators(3, "10007_left")
    assert list(rngs) == list(STREAMS)
    key = int.from_bytes(hashlib.sha256(b"10007_left").digest()[:8], "little")
    children = np.random.SeedSequence([3, key]).spawn(len(STREAMS))
    for name, child in zip(STREAMS, children):
        expected = np.random.Generator(np.random.PCG64(child)).random(4)
        np.testing.assert_array_equal(rngs[name].random(4), expected)
    again, other = image_generators(3, "10007_left"), image_generators(4, "10007_left")
    assert again["select"].random() == image_generators(3, "10007_left")["select"].random()
    assert again["mix"].random() != other["mix"].random()
    assert image_generators(3, "é")["place"].random() != image_generators(3, "e")["place"].random()


def test_a_paste_record_holds_every_documented_field_rounded_to_six_places():
    draw = AugmentDraw(True, False, 12.34567891, 1.1234567, 0.91234567, 1.05555555, 0.0123456789,
                       0.98765432)  # fmt: skip
    mask = np.zeros((3, 5), bool)
    mask[1, 1:4] = True
    record = paste_record(7, "HE", "idrid_03", 10, 20, mask, 0.123456789, draw, 0.654321987)
    assert record == {
        "lesion": 7, "type": "HE", "source": "idrid_03", "y": 10, "x": 20, "h": 3, "w": 5,
        "area": 3, "scale": 0.123457, "angle": 12.345679, "flip_h": True, "flip_v": False,
        "contrast": 0.912346, "brightness": 1.055556, "hue": 0.012346, "saturation": 0.987654,
        "lambda": 0.654322,
    }  # fmt: skip


def test_the_paste_configuration_is_recorded_as_given():
    config = PasteConfig(lam=(0.5, 0.8), augment=AugmentConfig(colour=True), tries=7)
    recorded = config.to_dict()
    assert recorded == {
        "lambda": [0.5, 0.8],
        "augment": AugmentConfig(colour=True).to_dict(),
        "placement_tries": 7,
    }
    assert recorded["augment"]["colour"] is True and recorded["augment"]["flip"] is True
    assert PasteConfig(lam=None).to_dict()["lambda"] is None
