"""Model factory: the authors' MLP, or a timm ResNet with a small-image stem.

timm is imported only when a timm model is asked for, so MLP runs never pay for it.
"""

from __future__ import annotations

from torch import nn

from flooding.archs import family
from flooding.config import RunConfig

# Inputs this small (CIFAR, SVHN, MNIST) lose too much resolution to the ImageNet stem
# (7x7 stride-2 conv then a stride-2 max-pool), so CIFAR ResNets use a 3x3 stride-1 conv
# and no pool instead.
SMALL_IMAGE_PX = 64

# A timm ResNet-18 with one block per stage and few channels: fast enough for CPU tests,
# built by the same timm code path as the real ResNets.
TINY_RESNET = {"base": "resnet18", "layers": (1, 1, 1, 1), "channels": (8, 16, 32, 64)}


def build_mlp(
    in_features: int, num_classes: int, depth: int, width: int, batchnorm: bool
) -> nn.Sequential:
    """Flatten, then `depth` x [Linear -> (BatchNorm) -> ReLU], then a Linear output layer.

    With batch norm the hidden Linear layers have no bias, as in the authors' code: the
    norm's shift makes a bias redundant.
    """
    layers: list[nn.Module] = [nn.Flatten()]
    features = in_features
    for _ in range(depth):
        layers.append(nn.Linear(features, width, bias=not batchnorm))
        if batchnorm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(nn.ReLU())
        features = width
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)


def build_timm(arch: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """A timm model for images (C, H, W); ResNets get the small-image stem at <= 64 px."""
    import timm
    from timm.models.resnet import ResNet

    if len(input_shape) != 3:
        raise ValueError(f"{arch} needs image inputs (C, H, W), got shape {input_shape}")
    in_chans, height, width = input_shape
    if arch == "resnet_tiny":
        kwargs = {k: v for k, v in TINY_RESNET.items() if k != "base"}
        model = timm.create_model(
            TINY_RESNET["base"], num_classes=num_classes, in_chans=in_chans, **kwargs
        )
    else:
        model = timm.create_model(arch, num_classes=num_classes, in_chans=in_chans)
    if isinstance(model, ResNet) and max(height, width) <= SMALL_IMAGE_PX:
        use_small_image_stem(model)
    return model


def use_small_image_stem(model: nn.Module) -> None:
    """Replace a timm ResNet's 7x7 stride-2 stem conv and max-pool by a 3x3 stride-1 conv."""
    stem = model.conv1
    if not isinstance(stem, nn.Conv2d):
        raise ValueError("the small-image stem needs a ResNet with a single-conv stem")
    model.conv1 = nn.Conv2d(
        stem.in_channels, stem.out_channels, kernel_size=3, stride=1, padding=1, bias=False
    )
    model.maxpool = nn.Identity()


def build_model(cfg: RunConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The network for a run; parameters are initialised from torch's global RNG."""
    if family(cfg.arch) == "mlp":
        in_features = 1
        for size in input_shape:
            in_features *= size
        return build_mlp(in_features, num_classes, cfg.mlp_depth, cfg.mlp_width, cfg.mlp_batchnorm)
    return build_timm(cfg.arch, input_shape, num_classes)
