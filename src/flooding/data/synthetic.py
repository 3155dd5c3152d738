"""The authors' three synthetic binary problems, generated from the run seed.

Classes are balanced (n // 2 of class 0, the rest class 1, class 0 first); the caller
shuffles through the validation split. Training pool and test set come from separate
generators, so the test set does not change with train_size.
"""

from __future__ import annotations

import math

import torch

from flooding.data.sampling import generator

GAUSSIANS_DIM = 10


def generate(
    name: str, n_pool: int, n_test: int, seed: int, gaussians_mean: float, spiral_noise: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_pool, y_pool, x_test, y_test) on the CPU: x float32 (N, D), y int64 in {0, 1}."""
    pool = _sample(name, n_pool, generator(seed, "synthetic/pool"), gaussians_mean, spiral_noise)
    test = _sample(name, n_test, generator(seed, "synthetic/test"), gaussians_mean, spiral_noise)
    return (*pool, *test)


def gaussians_bayes_error(mean: float, dim: int = GAUSSIANS_DIM) -> float:
    """Bayes error of N(0, I) against N(m·1, I) with equal priors: Phi(-|m| sqrt(d) / 2).

    The optimal rule thresholds the projection on the mean difference halfway; the two
    class means are |m| sqrt(d) apart along it, with unit variance.
    """
    z = -abs(mean) * math.sqrt(dim) / 2
    return 0.5 * math.erfc(-z / math.sqrt(2))


def _sample(
    name: str, n: int, gen: torch.Generator, gaussians_mean: float, spiral_noise: float
) -> tuple[torch.Tensor, torch.Tensor]:
    counts = (n // 2, n - n // 2)
    if name == "gaussians":
        x = _gaussians(counts, gaussians_mean, gen)
    elif name == "sinusoid":
        x = _sinusoid(counts, gen)
    elif name == "spiral":
        x = _spiral(counts, spiral_noise, gen)
    else:
        raise ValueError(f"not a synthetic dataset: {name!r}")
    y = torch.cat(
        [torch.zeros(counts[0], dtype=torch.int64), torch.ones(counts[1], dtype=torch.int64)]
    )
    return x, y


def _gaussians(counts: tuple[int, int], mean: float, gen: torch.Generator) -> torch.Tensor:
    x0 = torch.randn(counts[0], GAUSSIANS_DIM, generator=gen)
    x1 = torch.randn(counts[1], GAUSSIANS_DIM, generator=gen) + mean
    return torch.cat([x0, x1])


def _sinusoid_label(x: torch.Tensor) -> torch.Tensor:
    return (1.5 * x[:, 0] + torch.sin(1.5 * x[:, 1]) > 0).long()


def _sinusoid(counts: tuple[int, int], gen: torch.Generator) -> torch.Tensor:
    """Uniform points in the disk of radius 2, kept per class until both counts are met.

    The labelling function is odd and the disk symmetric, so each class has probability
    1/2; keeping the first points of each class (rejection) leaves them i.i.d. from the
    class-conditional distribution while making the classes exactly balanced.
    """
    batch = 2 * max(counts) + 64
    chunks: list[torch.Tensor] = []
    have = [0, 0]
    while have[0] < counts[0] or have[1] < counts[1]:
        # sqrt of a uniform radius makes the density uniform over the area.
        radius = 2 * torch.sqrt(torch.rand(batch, generator=gen))
        angle = 2 * math.pi * torch.rand(batch, generator=gen)
        x = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
        chunks.append(x)
        labels = _sinusoid_label(x)
        have[1] += int(labels.sum())
        have[0] += batch - int(labels.sum())
    x = torch.cat(chunks)
    labels = _sinusoid_label(x)
    return torch.cat([x[labels == 0][: counts[0]], x[labels == 1][: counts[1]]])


def _spiral(counts: tuple[int, int], noise: float, gen: torch.Generator) -> torch.Tensor:
    """Arm (a + pi)(cos a, sin a) for class 0 and a(cos a, sin a) for class 1, a in [0, 4 pi].

    As in the authors' code, a is evenly spaced along each arm; only the noise is random.
    """
    arms = []
    for label, count in enumerate(counts):
        a = torch.linspace(0, 4 * math.pi, count)
        radius = a if label == 1 else a + math.pi
        arms.append(torch.stack([radius * torch.cos(a), radius * torch.sin(a)], dim=1))
    x = torch.cat(arms)
    return x + noise * torch.randn(x.shape, generator=gen)
