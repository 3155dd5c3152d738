"""Data augmentation on device tensors: random crop with zero padding, horizontal flip.

The random choices for a whole epoch are drawn at once on the CPU from a dedicated
torch.Generator, so they depend on the seed only (not on the device, the flood level or
anything the model does), and a resumed run can redraw them exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

AUGMENTATIONS = ("none", "crop", "crop_flip")


def crop_padding(height: int) -> int:
    """Padding of the random crop: 4 px for 32 px images (CIFAR's), scaled with the size."""
    return max(1, height // 8)


@dataclass(frozen=True)
class AugmentPlan:
    """Per-sample crop offsets and flip flags for one epoch, indexed like the data."""

    dy: torch.Tensor  # (N,) int64 in [0, 2 * pad]
    dx: torch.Tensor  # (N,) int64 in [0, 2 * pad]
    flip: torch.Tensor  # (N,) bool
    pad: int


def draw_plan(
    n: int, height: int, kind: str, generator: torch.Generator, device: torch.device
) -> AugmentPlan:
    """Draw one epoch of random choices for `n` samples of `height` px images."""
    if kind not in AUGMENTATIONS[1:]:
        raise ValueError(f"augmentation: invalid value {kind!r}; accepted: crop, crop_flip")
    pad = crop_padding(height)
    offsets = torch.randint(0, 2 * pad + 1, (2, n), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    if kind == "crop":
        flip = torch.zeros(n, dtype=torch.bool)
    return AugmentPlan(
        dy=offsets[0].to(device), dx=offsets[1].to(device), flip=flip.to(device), pad=pad
    )


def apply_plan(x: torch.Tensor, plan: AugmentPlan, index: torch.Tensor) -> torch.Tensor:
    """Augment the batch `x` (B, C, H, W) whose samples are `index` in the epoch's plan."""
    batch, _, height, width = x.shape
    pad = plan.pad
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = plan.dy[index, None] + torch.arange(height, device=x.device)  # (B, H)
    cols = plan.dx[index, None] + torch.arange(width, device=x.device)  # (B, W)
    flip = plan.flip[index, None]
    cols = torch.where(flip, cols.flip(1), cols)
    samples = torch.arange(batch, device=x.device)[:, None, None]
    # Advanced indexing gathers every sample's crop in one op: result is (B, H, W, C).
    out = padded.permute(0, 2, 3, 1)[samples, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous(memory_format=_memory_format(x))


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format
