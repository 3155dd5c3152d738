"""Flatness of the loss landscape around trained weights (RQ4: does flooding find flatter
minima?), as the mean training-loss increase under random filter-normalised perturbations.

Li, Xu, Taylor, Studer, Goldstein, "Visualizing the Loss Landscape of Neural Nets"
(NeurIPS 2018): a random Gaussian direction is rescaled filter by filter (a row of a
linear layer's weight, an output channel of a convolution) to the norm of that filter, so
that the perturbation's size is relative to each filter's scale and comparisons between
networks are not fooled by rescaling (batch norm makes a layer's scale arbitrary). Biases
and other one-dimensional parameters (batch norm) are not perturbed, as in the paper.

    sharpness = mean over K directions d of  L(w + radius * d) - L(w)

L is the mean training loss over the given samples, evaluated in eval mode (batch norm
uses its running statistics), in chunks. The directions are drawn on the CPU from the
generator the caller passes, so the value depends on its seed only, not on the device. The
model is left exactly as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from flooding.metrics import SHARPNESS_RADIUS as RADIUS

DIRECTIONS = 8
CHUNK = 4096

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def mean_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: Loss, chunk: int) -> float:
    """Mean of `loss` (a per-batch mean) over all samples, weighted by chunk size."""
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(x), chunk):
            xb, yb = x[start : start + chunk], y[start : start + chunk]
            total += float(loss(model(xb), yb)) * len(xb)
    return total / len(x)


def filter_normalised(weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A Gaussian direction shaped like `weight`, each filter scaled to that filter's norm."""
    direction = torch.randn(weight.shape, generator=generator, dtype=torch.float64)
    reference = weight.detach().to("cpu", torch.float64)
    if weight.dim() <= 1:
        return torch.zeros_like(direction)
    dims = tuple(range(1, weight.dim()))
    norm = torch.linalg.vector_norm
    scale = norm(reference, dim=dims, keepdim=True) / norm(direction, dim=dims, keepdim=True)
    return direction * scale


def sharpness(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    generator: torch.Generator,
    loss: Loss = nn.functional.cross_entropy,
    radius: float = RADIUS,
    directions: int = DIRECTIONS,
    chunk: int = CHUNK,
) -> tuple[float, float]:
    """(mean loss increase over `directions` perturbations, seconds it took)."""
    if directions < 1:
        raise ValueError(f"directions must be >= 1, got {directions}")
    started = time.perf_counter()
    was_training = model.training
    model.eval()
    parameters = [p for p in model.parameters() if p.requires_grad]
    saved = [p.detach().clone() for p in parameters]
    try:
        base = mean_loss(model, x, y, loss, chunk)
        increases = []
        for _ in range(directions):
            with torch.no_grad():
                for p, w in zip(parameters, saved, strict=True):
                    step = filter_normalised(w, generator).to(w.device, w.dtype)
                    p.copy_(w + radius * step)
            increases.append(mean_loss(model, x, y, loss, chunk) - base)
    finally:
        with torch.no_grad():
            for p, w in zip(parameters, saved, strict=True):
                p.copy_(w)
        model.train(was_training)
    return sum(increases) / len(increases), time.perf_counter() - started
