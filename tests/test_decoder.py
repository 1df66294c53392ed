"""The dense decoder (train/models/decoder.py): its map's shape for every backbone, its loss, and that
it learns a trivially separable map."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from lesionpaste.train.metrics.image_scores import upsample_maps
from lesionpaste.train.models.build import ARCHS, build_model
from lesionpaste.train.models.decoder import MapModel, map_loss, map_outputs, probability_maps
from lesionpaste.train.models.on_device import Normalizer

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate


@pytest.mark.parametrize("arch", ARCHS)
def test_the_map_is_at_stride_4_for_every_arch_and_the_logits_are_unchanged(arch):
    torch.manual_seed(0)
    backbone, _ = build_model(arch, "none")
    model = MapModel(backbone, arch).eval()
    x = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        logits, maps = model(x, with_map=True)
        plain = model(x)
        bare = backbone(x)
    assert model.map_stride == 4
    assert maps.shape == (2, 1, 24, 16)
    assert logits.shape == (2, 2)
    assert torch.equal(plain, logits) and torch.equal(bare, logits)  # the head is untouched


def test_the_decoder_taps_each_stride_once_finest_first():
    backbone, _ = build_model("resnet18", "none")
    strides = MapModel(backbone, "resnet18").strides
    assert strides == [4, 8, 16, 32] and all(type(s) is int for s in strides)  # sizes divide by it
    small, _ = build_model("smallcnn", "none")
    assert MapModel(small, "smallcnn").strides == [4, 8, 16]  # it has no stride-32 stage


def test_the_pyramid_merges_top_down_then_smooths_as_written_out_by_hand():
    """Coarsest lateral, upsampled (bilinear, pixel centres) and added to each finer lateral,
    then a 3x3 convolution, batch norm, ReLU and the 1x1 output: with functional calls."""
    import torch.nn.functional as F

    from lesionpaste.train.models.decoder import PyramidDecoder

    torch.manual_seed(0)
    decoder = PyramidDecoder([8, 16, 32], width=6)
    conv, norm, _ = decoder.smooth
    norm.running_mean.uniform_(-1, 1)
    norm.running_var.uniform_(0.5, 2)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
        norm.bias.uniform_(-1, 1)
    decoder.eval()
    features = [torch.randn(2, c, s, s + 1) for c, s in ((8, 12), (16, 6), (32, 3))]

    def lateral(k):
        return F.conv2d(features[k], decoder.lateral[k].weight, decoder.lateral[k].bias)

    x = lateral(2)
    for k in (1, 0):
        up = F.interpolate(x, size=features[k].shape[-2:], mode="bilinear", align_corners=False)
        x = up + lateral(k)
    x = F.conv2d(x, conv.weight, conv.bias, padding=1)
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    x = (x - norm.running_mean[:, None, None]) * scale[:, None, None] + norm.bias[:, None, None]
    x = torch.relu(x)
    expected = F.conv2d(x, decoder.out.weight, decoder.out.bias)
    with torch.no_grad():
        got = decoder(features)
    assert got.shape == (2, 1, 12, 13)
    torch.testing.assert_close(got, expected)


def test_an_untrained_map_starts_at_a_small_lesion_prior():
    """The output bias starts at -4: every pixel about sigmoid(-4) = 1.8% "lesion", since most
    pixels are normal (the decoder's 1x1 output starts from there, not from 50%)."""
    from lesionpaste.train.models.decoder import PyramidDecoder

    decoder = PyramidDecoder([8, 16])
    assert torch.equal(decoder.out.bias, torch.tensor([-4.0]))


def test_the_pixel_loss_is_small_for_a_right_map_and_large_for_a_wrong_one():
    masks = torch.zeros(2, 16, 16)
    masks[0, 4:8, 4:8] = 1  # image 1 is normal: an empty mask
    right = torch.where(masks[:, None] > 0, 12.0, -12.0)
    wrong = -right
    assert torch.all(map_loss(right, masks) < 1e-2)
    assert torch.all(map_loss(wrong, masks) > 1.0)
    # a normal image is pushed towards an empty map: predicting a lesion there costs
    empty = torch.zeros(1, 16, 16)
    assert map_loss(torch.full((1, 1, 16, 16), 3.0), empty) > map_loss(
        torch.full((1, 1, 16, 16), -3.0), empty
    )


def _squares(n: int, size: int, rng: np.random.Generator):
    images = rng.integers(60, 120, (n, size, size, 3), dtype=np.uint8)
    masks = np.zeros((n, size, size), np.uint8)
    for i in range(0, n, 2):  # every other image has a bright square
        y, x = rng.integers(0, size - 8, 2)
        images[i, y : y + 8, x : x + 8] = 250
        masks[i, y : y + 8, x : x + 8] = 1
    return images, masks


def test_the_map_loss_falls_and_the_map_finds_the_squares():
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    images, masks = _squares(16, 32, rng)
    backbone, _ = build_model("smallcnn", "none")
    model = MapModel(backbone, "smallcnn")
    normalizer = Normalizer(32, channels_last=False, arch="smallcnn")
    optimizer = torch.optim.Adam(model.decoder.parameters(), lr=1e-2)
    x, m = normalizer(torch.from_numpy(images)), torch.from_numpy(masks)
    losses = []
    for _ in range(60):
        _, maps = model(x, with_map=True)
        loss = map_loss(maps, m).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    _, probabilities = map_outputs(model, normalizer, torch.from_numpy(images), torch.device("cpu"))
    full = np.stack(upsample_maps(probabilities, (32, 32)))
    assert roc_auc_score(masks.ravel(), full.ravel()) > 0.95
    with torch.no_grad():
        _, logits = model(x, with_map=True)
    np.testing.assert_allclose(probability_maps(logits, (8, 8)).numpy(), probabilities, atol=1e-5)


def test_map_outputs_of_no_image_are_empty():
    backbone, _ = build_model("smallcnn", "none")
    model = MapModel(backbone, "smallcnn")
    normalizer = Normalizer(32, channels_last=False, arch="smallcnn")
    probabilities, maps = map_outputs(
        model, normalizer, torch.zeros(0, 32, 32, 3, dtype=torch.uint8), torch.device("cpu")
    )
    assert probabilities.shape == (0,) and len(maps) == 0
    assert probabilities.dtype == maps.dtype == np.float32 and maps.shape == (0, 1, 1)


def test_outputs_of_no_batch_are_empty_float32_and_no_map_unless_asked():
    from lesionpaste.train.models.decoder import collect_outputs

    backbone, _ = build_model("smallcnn", "none")
    probabilities, maps = collect_outputs(backbone, [], torch.device("cpu"), maps=False)
    assert probabilities.shape == (0,) and probabilities.dtype == np.float32 and maps is None


def test_the_wrapped_backbone_still_runs_on_its_own():
    """A tool given ``model.backbone`` (a Grad-CAM target, say) calls it directly: the taps'
    hooks must not break it, from the moment the map model is built."""
    torch.manual_seed(0)
    backbone, _ = build_model("smallcnn", "none")
    model = MapModel(backbone, "smallcnn").eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.backbone(x), model(x))


def test_probability_maps_put_pixel_centres_where_a_resized_mask_has_them():
    """Bilinear upsampling on pixel centres (align_corners=False), as cv2.resize resizes the
    lesion masks and images the maps are compared with, then the sigmoid."""
    import cv2

    logits = torch.tensor([[[[-2.0, 1.0, 0.5], [3.0, -1.0, 2.0]]]])
    expected = 1 / (1 + np.exp(-cv2.resize(logits[0, 0].numpy(), (9, 4), cv2.INTER_LINEAR)))
    out = probability_maps(logits, (4, 9))
    assert out.shape == (1, 4, 9) and out.dtype == torch.float32
    np.testing.assert_allclose(out[0].numpy(), expected, atol=1e-6)


def test_map_loss_is_each_images_bce_plus_one_minus_its_smoothed_soft_dice():
    """Per image, computed by hand at the masks' resolution: the mean binary cross-entropy of
    its pixels plus 1 - (2 * sum(p * m) + 1) / (sum(p) + sum(m) + 1), p the sigmoid of the
    logits upsampled on pixel centres (as probability_maps and cv2.resize do)."""
    import cv2

    logits = torch.tensor([[[[2.0, -1.0], [0.5, -3.0]]], [[[-2.0, -2.0], [-2.0, -2.0]]]])
    masks = torch.zeros(2, 4, 4, dtype=torch.uint8)
    masks[0, :2, :2] = 1  # the second image is normal (an empty mask)
    loss = map_loss(logits, masks)
    assert loss.shape == (2,)
    for i in range(2):
        z = cv2.resize(logits[i, 0].numpy().astype(np.float64), (4, 4), cv2.INTER_LINEAR)
        m = masks[i].numpy().astype(np.float64)
        p = 1 / (1 + np.exp(-z))
        bce = np.mean(-(m * np.log(p) + (1 - m) * np.log(1 - p)))
        dice = (2 * (p * m).sum() + 1) / (p.sum() + m.sum() + 1)
        assert float(loss[i]) == pytest.approx(bce + 1 - dice, abs=1e-5)
