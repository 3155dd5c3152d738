"""The flooded loss: value, the gradient's sign flip below b, and iFlood."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from flooding.config import RunConfig
from flooding.flood import flooded_loss as run_loss


def flooded_loss(logits: torch.Tensor, targets: torch.Tensor, method: str, level: float, **more):
    """The loss of a run whose config sets this method and level (and `more`)."""
    return run_loss(logits, targets, RunConfig(flood_method=method, flood_level=level, **more))


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(16, 3, generator=gen)
    targets = torch.randint(0, 3, (16,), generator=gen)
    return logits, targets


def _grad(method: str, level: float) -> tuple[torch.Tensor, torch.Tensor]:
    logits, targets = _batch()
    logits.requires_grad_(True)
    result = flooded_loss(logits, targets, method, level)
    result.loss.backward()
    return result.loss.detach(), logits.grad


def _plain_grad() -> tuple[torch.Tensor, torch.Tensor]:
    logits, targets = _batch()
    logits.requires_grad_(True)
    loss = F.cross_entropy(logits, targets, reduction="none").mean()
    loss.backward()
    return loss.detach(), logits.grad


def test_level_zero_is_ordinary_training_bit_for_bit():
    for method in ("flood", "iflood"):
        loss, grad = _grad(method, 0.0)
        plain_loss, plain_grad = _plain_grad()
        assert torch.equal(loss, plain_loss)
        assert torch.equal(grad, plain_grad)


def test_flood_gradient_is_descent_above_and_ascent_below_b():
    plain_loss, plain_grad = _plain_grad()
    j = plain_loss.item()
    loss_above, grad_above = _grad("flood", j - 0.5)  # J > b: ordinary descent
    loss_below, grad_below = _grad("flood", j + 0.5)  # J < b: sign flipped
    torch.testing.assert_close(grad_above, plain_grad)
    torch.testing.assert_close(grad_below, -plain_grad)
    assert loss_above.item() == pytest.approx(j)
    assert loss_below.item() == pytest.approx(2 * (j + 0.5) - j)  # |J - b| + b


def test_flood_reports_unflooded_loss_and_whether_the_batch_was_flooded():
    logits, targets = _batch()
    j = F.cross_entropy(logits, targets)
    above = flooded_loss(logits, targets, "flood", j.item() - 0.1)
    below = flooded_loss(logits, targets, "flood", j.item() + 0.1)
    torch.testing.assert_close(above.unflooded, j)
    torch.testing.assert_close(below.unflooded, j)
    assert above.flooded_frac.item() == 0.0 and below.flooded_frac.item() == 1.0


def test_iflood_floods_each_sample_and_differs_from_flood():
    logits, targets = _batch()
    per_sample = F.cross_entropy(logits, targets, reduction="none")
    level = per_sample.median().item()  # about half the samples below b
    iflood = flooded_loss(logits, targets, "iflood", level)
    flood = flooded_loss(logits, targets, "flood", level)
    expected = ((per_sample - level).abs() + level).mean()
    torch.testing.assert_close(iflood.loss, expected)
    assert iflood.flooded_frac.item() == pytest.approx((per_sample < level).float().mean())
    assert 0.0 < iflood.flooded_frac.item() < 1.0
    assert not torch.allclose(iflood.loss, flood.loss)


def test_iflood_flips_the_gradient_of_the_samples_below_b_only():
    logits, targets = _batch()
    per_sample = F.cross_entropy(logits, targets, reduction="none").detach()
    ordered = per_sample.sort().values
    level = ((ordered[7] + ordered[8]) / 2).item()  # half below b, none exactly at b
    logits.requires_grad_(True)
    flooded_loss(logits, targets, "iflood", level).loss.backward()
    reference = logits.detach().clone().requires_grad_(True)
    losses = F.cross_entropy(reference, targets, reduction="none")
    sign = torch.where(losses.detach() < level, -1.0, 1.0)
    (sign * losses).mean().backward()
    torch.testing.assert_close(logits.grad, reference.grad)


def test_unknown_method_fails():
    logits, targets = _batch()
    with pytest.raises(ValueError, match="flood_method: invalid value 'sflood'"):
        flooded_loss(logits, targets, "sflood", 0.1)
