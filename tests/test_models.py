"""Models: the authors' MLP and timm ResNets with the small-image stem."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from flooding.config import RunConfig
from flooding.models import build_model


def test_default_mlp_matches_the_authors():
    model = build_model(RunConfig(), (2,), 2)
    kinds = [type(m) for m in model]
    hidden = [nn.Linear, nn.BatchNorm1d, nn.ReLU] * 4
    assert kinds == [nn.Flatten, *hidden, nn.Linear]
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (2, 500),
        (500, 500),
        (500, 500),
        (500, 500),
        (500, 2),
    ]
    # Hidden layers have no bias (batch norm shifts); the output layer has one.
    assert [m.bias is None for m in linears] == [True, True, True, True, False]


def test_mlp_without_batchnorm_has_biases_and_flattens_images():
    cfg = RunConfig(mlp_depth=2, mlp_width=16, mlp_batchnorm=False)
    model = build_model(cfg, (1, 8, 8), 10)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in model)
    assert all(m.bias is not None for m in model if isinstance(m, nn.Linear))
    assert model(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


def test_mlp_of_depth_zero_is_a_linear_model():
    model = build_model(RunConfig(mlp_depth=0), (10,), 2)
    assert [type(m) for m in model] == [nn.Flatten, nn.Linear]


def test_tiny_resnet_is_a_timm_resnet_with_the_small_image_stem():
    from timm.models.resnet import ResNet

    model = build_model(RunConfig(arch="resnet_tiny"), (1, 28, 28), 10)
    assert isinstance(model, ResNet)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert model.conv1.in_channels == 1
    assert isinstance(model.maxpool, nn.Identity)
    assert sum(p.numel() for p in model.parameters()) < 200_000
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_large_images_keep_the_imagenet_stem():
    model = build_model(RunConfig(arch="resnet_tiny"), (3, 96, 96), 5)
    assert model.conv1.kernel_size == (7, 7) and model.conv1.stride == (2, 2)
    assert isinstance(model.maxpool, nn.MaxPool2d)


def test_resnet18_takes_classes_and_channels_from_the_data():
    model = build_model(RunConfig(arch="resnet18"), (3, 32, 32), 100)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.out_channels == 64
    assert model.get_classifier().out_features == 100
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(11.2e6, rel=0.02)


def test_resnet_on_vectors_fails():
    with pytest.raises(ValueError, match="needs image inputs"):
        build_model(RunConfig(arch="resnet_tiny"), (10,), 2)


def test_an_mlp_run_does_not_import_timm():
    code = (
        "import sys; from flooding.config import RunConfig; from flooding.models import "
        "build_model; build_model(RunConfig(), (2,), 2); assert 'timm' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
