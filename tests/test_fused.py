"""Models for scoring (train/models/fused.py): folded and fused, they give the trained model's
probabilities and maps for every backbone; the folding really happens (no batch norm, no
separate pad or clamp left in EfficientNet-Lite0's forward); hooks keep working."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from lesionpaste.train.models.build import ARCHS, build_model
from lesionpaste.train.models.decoder import MapModel, stage_modules
from lesionpaste.train.models.efficientnet_lite import SameConv2d
from lesionpaste.train.models.fused import FusedConv2d, fold_batch_norm, for_inference, pointwise_op
from lesionpaste.train.models.on_device import Normalizer


def _randomise_norms(model: nn.Module, seed: int) -> None:
    """Batch norms unlike a fresh one (mean 0, var 1, identity affine): random affine
    parameters, statistics moved by about half a standard deviation and scaled by 0.5-1.5."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            with torch.no_grad():
                std = module.running_var.sqrt()
                module.running_mean.add_(torch.randn(n, generator=gen) * 0.5 * std)
                module.running_var.mul_(torch.rand(n, generator=gen) + 0.5)
                module.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(n, generator=gen) * 0.3)


def _trained_norms(model: nn.Module, maps: bool) -> None:
    """Batch norms as training leaves them: random affine parameters, and the statistics of
    the activations (one pass over random images in training mode), then moved a little; so
    the activations stay of order one even in ResNet50."""
    _randomise_norms(model, seed=1)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a plain average over the pass
    model.train()
    with torch.no_grad():
        x = torch.randn(8, 3, 64, 64, generator=torch.Generator().manual_seed(2))
        model(x, with_map=True) if maps else model(x)
    gen = torch.Generator().manual_seed(3)
    for norm in norms:
        norm.momentum = 0.1
        n = norm.num_features
        with torch.no_grad():
            norm.running_mean.add_(torch.randn(n, generator=gen) * 0.1 * norm.running_var.sqrt())
            norm.running_var.mul_(torch.rand(n, generator=gen) * 0.4 + 0.8)


def _restored(arch: str, maps: bool, state: dict | None = None) -> nn.Module:
    """A model built as ``train.evaluation.evaluate_run.restore`` builds it, with ``state`` loaded (a fresh
    one with trained-like, randomised batch norms when None), in eval mode and channels-last."""
    torch.manual_seed(0)
    model, _ = build_model(arch, "none")
    if maps:
        model = MapModel(model, arch)
    if state is None:
        _trained_norms(model, maps)
    else:
        model.load_state_dict(state)
    return model.eval().to(memory_format=torch.channels_last)


def _outputs(model: nn.Module, x: torch.Tensor, maps: bool):
    """Logits, class-1 probabilities and (with ``maps``) map probabilities."""
    with torch.no_grad():
        out = model(x, with_map=True) if maps else model(x)
    logits = out[0] if maps else out
    map_p = torch.sigmoid(out[1])[:, 0] if maps else None
    return logits, torch.softmax(logits, dim=1)[:, 1], map_p


def _assert_same(before, after) -> None:
    (logits0, p0, m0), (logits1, p1, m1) = before, after
    assert torch.all(torch.isfinite(logits1))
    assert (p0 - p1).abs().max() <= 1e-5
    # float32 rounding alone (ResNet50's logits: 6e-5 from float64 unfused, 2.5e-5 fused)
    assert (logits0 - logits1).abs().max() <= 2e-4 * max(1.0, float(logits0.abs().max()))
    if m0 is not None:
        assert (m0 - m1).abs().max() <= 1e-5


#: backbones whose float32 rounding alone moves a random model's probabilities by more than
#: 1e-5 (EfficientNet-B0: SiLU and squeeze-excitation over 16 blocks, 3e-5 against float64)
_ROUNDING_BOUND = {"efficientnet_b0"}


def _assert_as_close_as_float32(before, after, x, maps) -> None:
    """The folded model is as close to the float64 computation as the unfolded float32 one
    (within twice its distance, or 1e-5): folding adds no error beyond float32 rounding."""
    exact = copy.deepcopy(before).double().to(memory_format=torch.contiguous_format)
    if maps:
        exact.decoder.float()  # the decoder computes in float32 (it casts its features)
    reference = _outputs(exact, x.double().contiguous(), maps)
    plain, folded = _outputs(before, x, maps), _outputs(after, x, maps)
    for k in (1, 2) if maps else (1,):  # probabilities, and maps
        bound = max(1e-5, 2 * float((plain[k].double() - reference[k]).abs().max()))
        assert float((folded[k].double() - reference[k]).abs().max()) <= bound


def _cases():
    for arch in ARCHS:
        for maps in (False, True):
            yield pytest.param(arch, maps, id=f"{arch}-{'maps' if maps else 'plain'}")


@pytest.mark.parametrize(("arch", "maps"), list(_cases()))
def test_the_folded_model_gives_the_trained_models_probabilities_and_maps(arch, maps):
    before = _restored(arch, maps)
    after = for_inference(_restored(arch, maps, before.state_dict()))
    # 64x64: every stride-2 SAME padding of EfficientNet-Lite0 is asymmetric (one more pixel
    # after); 75x66: odd and even sides at every level, in both dimensions
    for shape in ((2, 3, 64, 64), (2, 3, 75, 66)):
        x = torch.randn(*shape).contiguous(memory_format=torch.channels_last)
        if arch in _ROUNDING_BOUND:
            _assert_as_close_as_float32(before, after, x, maps)
        else:
            _assert_same(_outputs(before, x, maps), _outputs(after, x, maps))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in after.modules())
    assert not after.training


@pytest.mark.parametrize("arch", ["efficientnet_lite0", "resnet18"])
def test_the_unfused_path_float64_and_contiguous_gives_the_same_outputs(arch):
    before = _restored(arch, False).double()  # (the decoder computes in float32)
    after = for_inference(_restored(arch, False, before.state_dict()).double())
    x = torch.randn(2, 3, 66, 75, dtype=torch.float64)  # NCHW, float64: plain F.conv2d
    _assert_same(_outputs(before, x, False), _outputs(after, x, False))


class _CountOps(TorchDispatchMode):
    """Counts the aten operations of a forward pass, by name."""

    def __init__(self):
        super().__init__()
        self.counts: dict[str, int] = {}
        self.activation_pads = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        self.counts[name] = self.counts.get(name, 0) + 1
        if name == "constant_pad_nd" and args[0].shape[0] == 5:  # the batch, not a weight
            self.activation_pads += 1
        return func(*args, **(kwargs or {}))


def _ops(model: nn.Module, x: torch.Tensor) -> _CountOps:
    with torch.no_grad(), _CountOps() as counter:
        model(x)
    return counter


def test_efficientnet_lite0_has_no_batch_norm_pad_or_clamp_left_in_its_forward():
    before = _restored("efficientnet_lite0", False)
    after = for_inference(_restored("efficientnet_lite0", False, before.state_dict()))
    x = torch.randn(5, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    plain, fused = _ops(before, x), _ops(after, x)
    # the unfused forward: 49 convolutions, each with its batch norm; 33 ReLU6; 17 SAME pads
    assert (
        plain.counts.get("native_batch_norm", 0)
        + plain.counts.get("_native_batch_norm_legit_no_training", 0)
        == 49
    )
    assert plain.activation_pads == 17
    assert plain.counts.get("hardtanh", 0) + plain.counts.get("clamp", 0) >= 33
    assert not any("batch_norm" in name for name in fused.counts)
    assert fused.activation_pads == 0
    if pointwise_op() is not None:  # fused: one oneDNN call per convolution, nothing between
        assert fused.counts.get("_convolution_pointwise", 0) == 49
        assert fused.counts.get("hardtanh", 0) + fused.counts.get("clamp", 0) == 0
        assert fused.counts.get("add", 0) == 0  # the residual additions are fused too
    convs = [m for m in after.modules() if isinstance(m, (nn.Conv2d, FusedConv2d))]
    assert len(convs) == 49 and all(isinstance(m, FusedConv2d) for m in convs)


def test_the_stage_modules_stay_the_same_objects_and_their_hooks_fire():
    model = _restored("efficientnet_lite0", True)
    stages = stage_modules(model.backbone, "efficientnet_lite0")
    seen = []
    stages[2].register_forward_hook(lambda _m, _i, out: seen.append(out.shape))
    for_inference(model)
    assert stage_modules(model.backbone, "efficientnet_lite0") == stages
    assert all(a is b for a, b in zip(stage_modules(model.backbone, "efficientnet_lite0"), stages))
    with torch.no_grad():
        _, maps = model(torch.randn(1, 3, 64, 64), with_map=True)
    assert seen == [torch.Size([1, 24, 16, 16])]
    assert maps.shape == (1, 1, 16, 16)


def test_a_watched_norm_or_activation_is_left_in_place():
    before = _restored("smallcnn", True)
    after = _restored("smallcnn", True, before.state_dict())
    decoder_norm = after.decoder.smooth[1]
    calls = []
    decoder_norm.register_forward_hook(lambda *_: calls.append("norm"))
    first_relu = after.backbone.features[1]  # no decoder tap: free to be fused
    for_inference(after)
    assert after.decoder.smooth[1] is decoder_norm  # watched: not folded
    assert isinstance(after.backbone.features[0], FusedConv2d)
    assert after.backbone.features[1] is not first_relu
    # the decoder taps (strides 4, 8, 16) are ReLUs with hooks: they stay, unfused
    assert [type(m) for m in after.backbone.features[2:]] == [nn.Conv2d, nn.ReLU] * 3
    x = torch.randn(2, 3, 64, 64)
    _assert_same(_outputs(before, x, True), _outputs(after, x, True))
    assert calls == ["norm"]


def test_folding_twice_changes_nothing():
    model = for_inference(_restored("resnet18", True))
    x = torch.randn(2, 3, 64, 64)
    once = _outputs(model, x, True)
    _assert_same(once, _outputs(for_inference(model), x, True))


def test_the_model_stays_differentiable_with_respect_to_its_input():
    before = _restored("efficientnet_lite0", False)
    after = for_inference(_restored("efficientnet_lite0", False, before.state_dict()))
    grads = []
    for model in (before, after):
        x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        x.requires_grad_(True)
        model(x)[:, 1].sum().backward()
        grads.append(x.grad)
    # not equal to float rounding everywhere: where a ReLU6 input lies within rounding of 0
    # or 6 (about one in a million), the two models may take different sides of the kink
    assert torch.all(torch.isfinite(grads[1]))
    assert (grads[0] - grads[1]).norm() <= 0.02 * grads[0].norm()


@pytest.mark.parametrize(("arch", "maps"), [("efficientnet_lite0", False), ("smallcnn", True)])
def test_grad_cam_of_the_folded_model_is_the_trained_models(arch, maps):
    pytest.importorskip("pytorch_grad_cam")
    from lesionpaste.train.evaluation.cam import cam_maps

    before = _restored(arch, maps)
    after = for_inference(_restored(arch, maps, before.state_dict()))
    images = torch.randint(0, 256, (2, 64, 64, 3), generator=torch.Generator().manual_seed(0))
    normalizer = Normalizer(64, True, arch)
    expected = cam_maps(before, arch, normalizer, images.to(torch.uint8).numpy())
    got = cam_maps(after, arch, normalizer, images.to(torch.uint8).numpy())
    for name in ("gradcam", "gradcam++"):
        assert abs(got[name] - expected[name]).max() <= 1e-3


@pytest.mark.parametrize("kernel", [1, 3, 4, 5])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("dilation", [1, 2])
def test_a_fused_same_convolution_equals_same_padding_and_batch_norm(kernel, stride, dilation):
    torch.manual_seed(kernel * 10 + stride)
    conv = SameConv2d(4, 6, kernel, stride=stride, dilation=dilation, bias=True)
    norm = nn.BatchNorm2d(6, eps=1e-3)
    _randomise_norms(norm, seed=stride)
    norm.eval()
    fused = FusedConv2d(conv, norm, "relu6")
    sizes = [(9, 10), (12, 7), (16, 16)] + ([(1, 2)] if dilation == 1 else [])
    for height, width in sizes:  # (SameConv2d pads a dilated kernel too little for 1x2)
        x = torch.randn(3, 4, height, width)
        with torch.no_grad():
            expected = F.relu6(norm(conv(x)))
            got = fused(x)
            residual = torch.randn_like(expected)
            with_residual = fused(x, residual)
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, atol=1e-5)
        assert torch.allclose(with_residual, F.relu6(norm(conv(x)) + residual), atol=1e-5)


def test_folding_uses_the_running_statistics_and_the_affine_parameters():
    conv = nn.Conv2d(2, 3, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).view(3, 2, 1, 1))
    norm = nn.BatchNorm2d(3, eps=0.0)
    with torch.no_grad():
        norm.running_mean.copy_(torch.tensor([1.0, 0.0, -1.0]))
        norm.running_var.copy_(torch.tensor([4.0, 1.0, 0.25]))
        norm.weight.copy_(torch.tensor([1.0, 3.0, 1.0]))
        norm.bias.copy_(torch.tensor([0.0, 0.0, 2.0]))
    weight, bias = fold_batch_norm(conv, norm)
    assert torch.allclose(weight.flatten(), torch.tensor([0.5, 1.0, 9.0, 12.0, 10.0, 12.0]))
    assert torch.allclose(bias, torch.tensor([-0.5, 0.0, 4.0]))
    weight, bias = fold_batch_norm(conv, None)
    assert torch.equal(weight, conv.weight) and torch.equal(bias, torch.zeros(3))
