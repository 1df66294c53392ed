"""Models for scoring only: batch norm folded into the convolutions, and each convolution's
activation, TensorFlow ``SAME`` padding and residual addition fused into one call.

``for_inference(model)`` changes a trained network in place, module by module, so the
module objects that carry hooks (``train.models.decoder.MapModel``'s feature taps, Grad-CAM's target
layer) stay: a batch norm becomes ``nn.Identity`` and the convolution before it a
``FusedConv2d``; an activation folded into a convolution inside an ``nn.Sequential`` becomes
``nn.Identity``; EfficientNet-Lite0, its blocks and the ResNet blocks keep their objects and
change only their forward to the fused one. Under ``torch.no_grad`` on the CPU a
``FusedConv2d`` is one oneDNN call (``mkldnn::_convolution_pointwise``, the primitive that
``torch.compile`` uses for the same fusion); elsewhere, or when a gradient is wanted
(Grad-CAM), it is a plain ``F.conv2d`` followed by in-place operations.

Measured on the 2-core CPU (``bench/bench_inference.py``, 512 EyePACS images, medians of 3):
EfficientNet-Lite0 at 256x256 scores 70 images/s instead of 25 at ``scores_of``'s batch of
128 (2.8x), 85 instead of 32 at a batch of 32, and 135 with ``keep_freed_memory()``; scores
within 1e-6 of the unfused model's.
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from contextlib import contextmanager
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from lesionpaste.train.models.efficientnet_lite import EfficientNetLite0, MBConv, SameConv2d

#: the side of the probe image whose forward pass shows which convolution feeds which norm
_PROBE = 64
#: activations a convolution can absorb: their oneDNN post-op and its scalars
_ACTIVATIONS = {"relu": ("relu", []), "relu6": ("hardtanh", [0.0, 6.0])}


@functools.cache
def pointwise_op():
    """oneDNN's fused convolution (``mkldnn::_convolution_pointwise``, private to torch), or
    None where it is missing or does not compute what ``FusedConv2d`` expects of it.

    Checked on first use, not when the module is imported: the check runs convolutions, which
    start torch's CPU thread pool, and a process that forks after that (a ``DataLoader``
    worker, a test runner's fork server) deadlocks at its first parallel operation.

    Returns:
        The operator, or None.
    """
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        op = torch.ops.mkldnn._convolution_pointwise
        gen = torch.Generator().manual_seed(0)
        x, w, b, residual = (
            torch.randn(shape, generator=gen)
            for shape in ((1, 2, 5, 5), (2, 1, 3, 3), 2, (1, 2, 3, 3))
        )
        conv = F.conv2d(x, w, b, 2, 1, 1, 2)
        fused = op(x, w, b, [1, 1], [2, 2], [1, 1], 2, "hardtanh", [0.0, 6.0], "")
        added = op.binary(x, residual, w, b, [1, 1], [2, 2], [1, 1], 2, "add", 1.0, "relu", [], "")
    except (AttributeError, RuntimeError, TypeError):
        return None
    ok = torch.allclose(fused, conv.clamp(0, 6), atol=1e-5)
    ok = ok and torch.allclose(added, (conv + residual).relu(), atol=1e-5)
    return op if ok else None


def fold_batch_norm(
    conv: nn.Conv2d, bn: nn.BatchNorm2d | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight and bias of one convolution that computes ``bn(conv(x))`` in eval mode.

    The arithmetic is done in float64 and the result cast back to the convolution's dtype.

    Args:
        conv: the convolution.
        bn: the batch norm that follows it (its running statistics are used), or None.

    Returns:
        ``(weight, bias)`` on the convolution's device, in its dtype and memory layout.
    """
    weight = conv.weight.detach()
    w = weight.to("cpu", torch.float64)
    b = (
        conv.bias.detach().to("cpu", torch.float64)
        if conv.bias is not None
        else torch.zeros(w.shape[0], dtype=torch.float64)
    )
    if bn is not None:
        mean = bn.running_mean.detach().to("cpu", torch.float64)
        var = bn.running_var.detach().to("cpu", torch.float64)
        scale = 1.0 / torch.sqrt(var + bn.eps)
        shift = torch.zeros_like(mean)
        if bn.affine:
            scale = scale * bn.weight.detach().to("cpu", torch.float64)
            shift = bn.bias.detach().to("cpu", torch.float64)
        w = w * scale.view(-1, 1, 1, 1)
        b = (b - mean) * scale + shift
    return w.to(weight.device, weight.dtype), b.to(weight.device, weight.dtype)


class FusedConv2d(nn.Module):
    """A convolution with its batch norm folded in, and optionally its activation (applied
    last) and a residual addition fused: ``act(conv(x) + residual)``.

    EfficientNet-Lite's ``SameConv2d`` keeps its TensorFlow ``SAME`` padding without a
    separate pad: symmetric padding goes into the convolution, and where ``SAME`` pads one
    pixel more after than before, the kernel gains a zero first row (column) and both sides
    the larger padding, which computes the same windows.

    Args:
        conv: the convolution (``nn.Conv2d`` with numeric zero padding, or ``SameConv2d``).
        bn: the batch norm that follows it, or None.
        activation: ``"relu"``, ``"relu6"`` or None.
    """

    def __init__(
        self, conv: nn.Conv2d, bn: nn.BatchNorm2d | None = None, activation: str | None = None
    ):
        super().__init__()
        weight, bias = fold_batch_norm(conv, bn)
        wanted = conv.weight.requires_grad  # Grad-CAM needs the activations in a graph
        self.weight = nn.Parameter(weight, requires_grad=wanted)
        self.bias = nn.Parameter(bias, requires_grad=wanted)
        self.stride = tuple(conv.stride)
        self.dilation = tuple(conv.dilation)
        self.groups = conv.groups
        self.padding = tuple(conv.padding)
        self.same = isinstance(conv, SameConv2d)
        self.activation = activation

    def extra_repr(self) -> str:
        """The layer's shape and what is fused, for ``print(model)``.

        Returns:
            A one-line description.
        """
        out, cin, kh, kw = self.weight.shape
        padding = "same" if self.same else self.padding
        return (
            f"{cin * self.groups}, {out}, kernel_size=({kh}, {kw}), stride={self.stride}, "
            f"padding={padding}, groups={self.groups}, activation={self.activation}"
        )

    def _geometry(self, x: torch.Tensor) -> tuple[torch.Tensor, list[int]] | None:
        """The weight and symmetric padding for this input, or None when ``SAME`` needs a
        separate pad (a dilated kernel)."""
        if not self.same:
            return self.weight, list(self.padding)
        weight, padding, extend = self.weight, [], []
        for size, k, s, d in zip(x.shape[-2:], self.weight.shape[-2:], self.stride, self.dilation):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            if total % 2 and d != 1:
                return None
            padding.append((total + 1) // 2)
            extend.append(total % 2)
        if any(extend):
            weight = F.pad(weight, [extend[1], 0, extend[0], 0])
        return weight, padding

    def _same_pad(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` padded as ``SameConv2d`` pads it (the general, slower path)."""
        pads = []
        for size, k, s in zip(x.shape[-1:-3:-1], self.weight.shape[-1:-3:-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads)

    def _fast(self, x: torch.Tensor, residual: torch.Tensor | None) -> bool:
        """Whether oneDNN's fused call applies: float32 on the CPU, and no gradient wanted."""
        tensors = (x, self.weight) if residual is None else (x, self.weight, residual)
        return (
            pointwise_op() is not None
            and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
            and not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))
            and not torch.is_autocast_enabled("cpu")
            and (residual is None or residual.shape[1] == self.weight.shape[0])
            and (residual is None or self.activation in (None, "relu"))  # oneDNN's post-ops
        )

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """``act(conv(x) + residual)`` with the folded weight and bias.

        Args:
            x: ``(N, C_in, H, W)`` input.
            residual: a tensor of the output's shape added before the activation, or None.

        Returns:
            ``(N, C_out, H', W')`` output.
        """
        geometry = self._geometry(x)
        if geometry is None:
            x, weight, padding = self._same_pad(x), self.weight, [0, 0]
        else:
            weight, padding = geometry
        args = (list(self.stride), list(self.dilation), self.groups)
        if self._fast(x, residual):
            attr, scalars = _ACTIVATIONS.get(self.activation, ("none", []))
            if residual is None:
                return pointwise_op()(x, weight, self.bias, padding, *args, attr, scalars, "")
            unary = None if self.activation is None else attr
            return pointwise_op().binary(
                x, residual, weight, self.bias, padding, *args, "add", 1.0, unary, scalars, ""
            )
        y = F.conv2d(x, weight, self.bias, self.stride, padding, self.dilation, self.groups)
        if residual is not None:
            y = y + residual
        if self.activation == "relu":
            return F.relu(y, inplace=True)
        if self.activation == "relu6":
            return F.hardtanh(y, 0.0, 6.0, inplace=True)
        return y


class _FusedMBConv(MBConv):
    """EfficientNet-Lite's block once its convolutions are ``FusedConv2d`` with the ReLU6s."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output (``MBConv.forward``, fused).

        Args:
            x: ``(N, cin, H, W)`` float input.

        Returns:
            ``(N, cout, H / stride, W / stride)`` output (rounded up).
        """
        out = self._expand_conv(x) if self.expand else x
        return self._project_conv(self._depthwise_conv(out), x if self.residual else None)


class _FusedEfficientNetLite0(EfficientNetLite0):
    """EfficientNet-Lite0 once its stem and head convolutions are ``FusedConv2d``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` float -> ``(N, classes)`` logits (``EfficientNetLite0.forward``).

        Args:
            x: ``(N, 3, H, W)`` float images scaled to [-1, 1].

        Returns:
            ``(N, classes)`` logits.
        """
        x = self._conv_stem(x)
        for block in self._blocks:
            x = block(x)
        x = self._conv_head(x)
        return self._fc(self._dropout(x.mean(dim=(2, 3))))


def _resnet_blocks() -> dict[type, tuple[type, dict[str, str]]]:
    """torchvision's ResNet blocks: their fused forms, and the activation each convolution
    absorbs (empty without torchvision)."""
    try:
        from torchvision.models.resnet import BasicBlock, Bottleneck
    except ImportError:
        return {}

    class FusedBasicBlock(BasicBlock):
        """torchvision's ``BasicBlock`` once its convolutions are ``FusedConv2d``."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            """The block's output, fused."""
            identity = x if self.downsample is None else self.downsample(x)
            return self.conv2(self.conv1(x), identity)

    class FusedBottleneck(Bottleneck):
        """torchvision's ``Bottleneck`` once its convolutions are ``FusedConv2d``."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            """The block's output, fused."""
            identity = x if self.downsample is None else self.downsample(x)
            return self.conv3(self.conv2(self.conv1(x)), identity)

    return {
        BasicBlock: (FusedBasicBlock, {"conv1": "relu", "conv2": "relu"}),
        Bottleneck: (FusedBottleneck, {"conv1": "relu", "conv2": "relu", "conv3": "relu"}),
    }


def _fused_forms() -> dict[type, tuple[type, dict[str, str]]]:
    """Each module type whose forward has a fused form: that form, and the activation each of
    its convolutions absorbs (the form's forward applies no other)."""
    forms = {
        MBConv: (_FusedMBConv, {"_expand_conv": "relu6", "_depthwise_conv": "relu6"}),
        EfficientNetLite0: (
            _FusedEfficientNetLite0,
            {"_conv_stem": "relu6", "_conv_head": "relu6"},
        ),
    }
    forms.update(_resnet_blocks())
    return forms


def _hooked(module: nn.Module) -> bool:
    """Whether anything watches the module (a hook would see a folded value, or be lost)."""
    return any(
        getattr(module, name, None)
        for name in (
            "_forward_hooks",
            "_forward_pre_hooks",
            "_backward_hooks",
            "_backward_pre_hooks",
        )
    )


def _foldable_conv(module: nn.Module) -> bool:
    """A convolution ``FusedConv2d`` can replace, nothing watching it."""
    if type(module) not in (nn.Conv2d, SameConv2d, FusedConv2d) or _hooked(module):
        return False
    if isinstance(module, FusedConv2d):
        return True
    return module.padding_mode == "zeros" and not isinstance(module.padding, str)


def _foldable_norm(conv: nn.Module, module: nn.Module) -> bool:
    """A batch norm with running statistics, of the convolution's channels, unwatched."""
    return (
        type(module) is nn.BatchNorm2d
        and module.track_running_stats
        and module.running_mean is not None
        and module.num_features == conv.weight.shape[0]
        and not _hooked(module)
    )


def _activation_of(module: nn.Module) -> str | None:
    """``"relu"`` or ``"relu6"`` for such an activation module (unwatched), else None."""
    if _hooked(module):
        return None
    if type(module) is nn.ReLU:
        return "relu"
    if type(module) in (nn.ReLU6, nn.Hardtanh) and (module.min_val, module.max_val) == (0, 6):
        return "relu6"
    return None


@contextmanager
def _hooks_set_aside(model: nn.Module):
    """The model's forward hooks taken off (and put back after), so that a probe pass does not
    reach whatever watches the model."""
    saved = [(m, m._forward_pre_hooks, m._forward_hooks) for m in model.modules()]
    for module, _, _ in saved:
        module._forward_pre_hooks, module._forward_hooks = OrderedDict(), OrderedDict()
    try:
        yield
    finally:
        for module, pre, post in saved:
            module._forward_pre_hooks, module._forward_hooks = pre, post


def _conv_norm_flows(model: nn.Module) -> set[tuple[int, int]]:
    """``(id(conv), id(norm))`` for each batch norm whose input, in a probe forward pass, was
    exactly a convolution's output."""
    outputs: dict[int, tuple[nn.Module, torch.Tensor]] = {}
    flows: set[tuple[int, int]] = set()

    def after_conv(module, _inputs, output):
        outputs[id(output)] = (module, output)  # the tensor is kept, so its id is not reused

    def before_norm(module, inputs):
        source = outputs.get(id(inputs[0]))
        if source is not None and source[1] is inputs[0]:
            flows.add((id(source[0]), id(module)))

    parameter = next(model.parameters(), None)
    like = {"device": parameter.device, "dtype": parameter.dtype} if parameter is not None else {}
    with _hooks_set_aside(model):
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                module.register_forward_hook(after_conv)
            elif isinstance(module, nn.BatchNorm2d):
                module.register_forward_pre_hook(before_norm)
        with torch.no_grad():
            model(torch.zeros(1, 3, _PROBE, _PROBE, **like))
    return flows


def _fold_norms(model: nn.Module) -> None:
    """Each batch norm into the convolution registered just before it, where that
    convolution's output is what the norm normalises: an ``nn.Sequential`` chains its
    children; elsewhere a probe pass must show it."""
    pairs = []
    for parent in model.modules():
        for first, second in pairwise(list(parent._modules)):
            conv, norm = parent._modules[first], parent._modules[second]
            if isinstance(conv, FusedConv2d) or not _foldable_conv(conv):
                continue
            if _foldable_norm(conv, norm):
                pairs.append((parent, first, second))
    probed = any(type(parent) is not nn.Sequential for parent, _, _ in pairs)
    flows = _conv_norm_flows(model) if probed else set()
    for parent, first, second in pairs:
        conv, norm = parent._modules[first], parent._modules[second]
        if type(parent) is nn.Sequential or (id(conv), id(norm)) in flows:
            setattr(parent, first, FusedConv2d(conv, norm))
            setattr(parent, second, nn.Identity())


def _fuse_sequential_activations(model: nn.Module) -> None:
    """In each ``nn.Sequential``, a ReLU (ReLU6) after a convolution goes into it."""
    for parent in list(model.modules()):
        if type(parent) is not nn.Sequential:
            continue
        names = list(parent._modules)
        for i, name in enumerate(names):
            conv = parent._modules[name]
            if not _foldable_conv(conv) or getattr(conv, "activation", None) is not None:
                continue
            j = i + 1
            while j < len(names) and type(parent._modules[names[j]]) is nn.Identity:
                if _hooked(parent._modules[names[j]]):
                    break
                j += 1
            activation = _activation_of(parent._modules[names[j]]) if j < len(names) else None
            if activation is None:
                continue
            if not isinstance(conv, FusedConv2d):
                conv = FusedConv2d(conv)
                setattr(parent, name, conv)
            conv.activation = activation
            setattr(parent, names[j], nn.Identity())


def _fuse_forwards(model: nn.Module) -> None:
    """Modules with a fused form (``_fused_forms``) take it where all its convolutions are
    ``FusedConv2d``: the object stays (with its hooks), its forward changes."""
    forms = _fused_forms()
    for module in list(model.modules()):
        form = forms.get(type(module))
        if form is None:
            continue
        fused_type, activations = form
        convs = [
            getattr(module, name)
            for name, child in module.named_children()
            if isinstance(child, (nn.Conv2d, FusedConv2d))
        ]
        if not convs or not all(isinstance(c, FusedConv2d) and c.activation is None for c in convs):
            continue
        if any(_hooked(child) for child in module.children()):
            continue  # the fused forward calls fewer children: a watched one might be skipped
        for name, activation in activations.items():
            if hasattr(module, name):
                getattr(module, name).activation = activation
        module.__class__ = fused_type


#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4


def keep_freed_memory(top_pad: int = 1 << 30) -> bool:
    """Make glibc's malloc keep freed memory for reuse rather than give it back to the system.

    Large tensors (a batch's activations) are otherwise mapped afresh on every allocation and
    their pages faulted in and zeroed by the kernel, which on a 2-core VM costs about as much
    as the convolutions of a fused EfficientNet-Lite0. This turns off ``mmap`` for large blocks,
    keeps ``top_pad`` bytes spare at the top of the heap and never trims it: the process's
    resident memory stays at its peak. Process-wide and for a scoring process (``lp-eval``,
    ``lp-predict``), so ``for_inference`` does not call it.

    Args:
        top_pad: bytes the heap grows by beyond each request, and keeps.

    Returns:
        Whether the settings took (False where the C library is not glibc).
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    largest = 2**31 - 1
    settings = ((_M_MMAP_MAX, 0), (_M_TOP_PAD, min(top_pad, largest)), (_M_TRIM_THRESHOLD, largest))
    return all(mallopt(key, value) == 1 for key, value in settings)


def for_inference(model: nn.Module) -> nn.Module:
    """The model, changed in place for scoring: eval mode, no parameter wanting a gradient,
    every batch norm folded into the convolution before it, activations, ``SAME`` padding and
    residual additions fused into the convolutions (see the module's docstring).

    The outputs stay those of the trained model (within float rounding, about 1e-6 on
    probabilities); hooks registered on the model's modules keep working. The result is for
    evaluation only: its ``state_dict`` is not a checkpoint of the architecture, and training
    it would not train batch norm.

    Args:
        model: a network of ``train.models.build.build_model`` or a ``train.models.decoder.MapModel``, with its
            trained state loaded (on any device, in any memory format).

    Returns:
        The same object, ready for inference.
    """
    model.eval()
    _fold_norms(model)
    _fuse_sequential_activations(model)
    _fuse_forwards(model)
    return model
