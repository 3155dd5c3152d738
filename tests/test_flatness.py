"""The flatness measure: exact on a quadratic, deterministic, and harmless to the model."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from flooding.flatness import filter_normalised, sharpness


def squared_error(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((output - target) ** 2).mean()


def test_sharpness_of_an_isotropic_quadratic_is_known_in_closed_form():
    # Linear model without bias, n samples x = a * e_i, targets from w*: L(w*) = 0 and
    # L(w* + delta) = a^2 |delta|^2 / n. The one filter is the weight row, so every
    # direction has norm |w*| and the increase is (radius |w*| a)^2 / n for any direction.
    n, a, radius = 6, 3.0, 0.1
    model = nn.Linear(n, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.arange(1.0, n + 1, dtype=torch.float64)[None, :])
    x = a * torch.eye(n, dtype=torch.float64)
    y = model(x).detach()
    norm = float(model.weight.detach().norm())
    value, seconds = sharpness(
        model, x, y, torch.Generator().manual_seed(0), squared_error, radius, directions=5
    )
    assert value == pytest.approx((radius * norm * a) ** 2 / n, rel=1e-9)
    assert seconds >= 0


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))


def test_sharpness_is_deterministic_given_the_seed_and_leaves_the_model_as_it_was():
    model = mlp()
    model.train()
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 3, (64,), generator=torch.Generator().manual_seed(2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    first, _ = sharpness(model, x, y, torch.Generator().manual_seed(7), chunk=10)
    again, _ = sharpness(model, x, y, torch.Generator().manual_seed(7), chunk=10)
    whole, _ = sharpness(model, x, y, torch.Generator().manual_seed(7), chunk=64)
    other, _ = sharpness(model, x, y, torch.Generator().manual_seed(8))
    assert first == again
    # Chunks only change float32 rounding.
    assert whole == pytest.approx(first, rel=1e-3)
    assert first != other and math.isfinite(first)
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_directions_are_scaled_filter_by_filter_and_skip_biases():
    weight = torch.tensor([[3.0, 4.0], [0.0, 1.0], [1.0, 0.0]])
    direction = filter_normalised(weight, torch.Generator().manual_seed(0))
    assert direction.norm(dim=1).tolist() == pytest.approx([5.0, 1.0, 1.0])
    conv = torch.randn(5, 2, 3, 3, generator=torch.Generator().manual_seed(3))
    direction = filter_normalised(conv, torch.Generator().manual_seed(0))
    norms = torch.linalg.vector_norm
    assert norms(direction, dim=(1, 2, 3)).tolist() == pytest.approx(
        norms(conv, dim=(1, 2, 3)).tolist()
    )
    bias = filter_normalised(torch.ones(4), torch.Generator().manual_seed(0))
    assert torch.equal(bias, torch.zeros(4, dtype=torch.float64))


def test_at_least_one_direction_is_required():
    with pytest.raises(ValueError, match="directions"):
        sharpness(
            mlp(),
            torch.zeros(2, 4),
            torch.zeros(2, dtype=torch.long),
            torch.Generator(),
            directions=0,
        )
