"""Every random choice made about the data: subsets, the validation split, label noise.

Each choice draws from its own torch.Generator, seeded from (run seed, purpose), so that
changing one setting does not reshuffle the others: runs that differ only in label noise
share their inputs and their split, and the global RNG used for initialisation and batch
order is never touched.
"""

from __future__ import annotations

import hashlib

import torch

# The test subset (test_size smaller than a real test set) and the digits test split do not
# depend on the run seed, so that every run of a dataset is scored on the same samples.
FIXED_SEED = 20200708


def stream_seed(seed: int, purpose: str) -> int:
    """Seed of one random stream (a data choice, init, batch order, ...), independent of
    every other purpose and seed."""
    digest = hashlib.sha256(f"{seed}/{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def generator(seed: int, purpose: str) -> torch.Generator:
    """A CPU generator for one purpose, independent of every other purpose and seed."""
    return torch.Generator().manual_seed(stream_seed(seed, purpose))


def fixed_subset(n_available: int, n: int, purpose: str) -> torch.Tensor:
    """Indices of n of n_available samples, the same for every run, in ascending order."""
    if n == n_available:
        return torch.arange(n_available)
    chosen = torch.randperm(n_available, generator=generator(FIXED_SEED, purpose))[:n]
    return chosen.sort().values


def split_indices(
    n_available: int, n_train: int, n_val: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint (train, validation) indices drawn from n_available samples.

    One permutation gives both the seeded subset (train_size below the available size)
    and the split, so a smaller train_size is a random subset, not the first samples.
    """
    order = torch.randperm(n_available, generator=generator(seed, "split"))
    return order[n_val : n_val + n_train], order[:n_val]


def flip_labels(
    labels: torch.Tensor, fraction: float, num_classes: int, gen: torch.Generator
) -> torch.Tensor:
    """A copy of labels with exactly round(fraction * n) of them changed to another class.

    The flipped samples are chosen uniformly without replacement; each gets a class drawn
    uniformly among the num_classes - 1 others (adding a shift in 1..C-1 modulo C).
    """
    n_flip = round(fraction * len(labels))
    chosen = torch.randperm(len(labels), generator=gen)[:n_flip]
    shift = torch.randint(1, num_classes, (n_flip,), generator=gen)
    noisy = labels.clone()
    noisy[chosen] = (labels[chosen] + shift) % num_classes
    return noisy
