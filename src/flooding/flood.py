"""The flooded training objective (Ishida et al. 2020), its per-sample variant iFlood, and
AdaFlood's per-sample levels (Bae et al. 2024)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from flooding.config import RunConfig
from flooding.methods import METHODS


class FloodedLoss(NamedTuple):
    """`loss` is what backward() sees; the other two are detached, for logging only."""

    loss: torch.Tensor
    unflooded: torch.Tensor  # J, the ordinary mini-batch mean cross-entropy
    flooded_frac: torch.Tensor  # flood: 1.0 if J < b else 0.0; per sample: fraction of l_i < b_i


def adaflood_levels(aux_loss: torch.Tensor, cfg: RunConfig) -> torch.Tensor:
    """AdaFlood's level of each sample from its held-out auxiliary loss l_i:
    b_i = -log((1 - gamma) * exp(-(alpha * l_i + beta)) + gamma).

    gamma = 0 gives b_i = alpha * l_i + beta; as gamma grows to 1 every level falls to 0
    (ordinary training). Samples the auxiliary model found hard (high l_i: often flipped
    labels) get high levels, so the run stops fitting them sooner.
    """
    gamma = cfg.adaflood_gamma
    corrected = torch.exp(-(cfg.adaflood_alpha * aux_loss + cfg.adaflood_beta))
    return -torch.log((1 - gamma) * corrected + gamma)


def flooded_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    cfg: RunConfig,
    aux_loss: torch.Tensor | None = None,
) -> FloodedLoss:
    """The training loss of a run: cross-entropy with flooding at level b (cfg.flood_level)
    by cfg.flood_method.

    - flood:  |J - b| + b, J the mini-batch mean loss. Below b the gradient flips sign,
      so the loss floats back up to b instead of going to zero.
    - iflood: mean_i(|l_i - b| + b), the same applied to each sample's loss (Xie et al. 2022).
    - adaflood: mean_i(|l_i - b_i| + b_i), b_i from the batch's held-out auxiliary losses
      `aux_loss` (adaflood_levels; Bae et al. 2024).

    With label smoothing, the losses l_i (and J) are the smoothed cross-entropies.

    Everything stays a tensor: reading a value here would sync the device every batch.
    """
    method, level = cfg.flood_method, cfg.flood_level
    if method not in METHODS:
        raise ValueError(f"flood_method: invalid value {method!r}; accepted: {', '.join(METHODS)}")
    if not METHODS[method].per_sample:
        # The batch mean straight from cross_entropy: fewer kernels and autograd nodes
        # a batch than the per-sample losses and their mean.
        mean = F.cross_entropy(logits.float(), targets, label_smoothing=cfg.label_smoothing)
        loss = (mean - level).abs() + level
        return FloodedLoss(loss, mean.detach(), (mean.detach() < level).float())
    per_sample = F.cross_entropy(
        logits.float(), targets, reduction="none", label_smoothing=cfg.label_smoothing
    )
    levels: torch.Tensor | float = level
    if METHODS[method].auxiliary:
        if aux_loss is None:
            raise ValueError(f"flood_method {method}: needs the batch's auxiliary losses")
        levels = adaflood_levels(aux_loss.to(per_sample.dtype), cfg)
    loss = ((per_sample - levels).abs() + levels).mean()
    frac = (per_sample.detach() < levels).float().mean()
    return FloodedLoss(loss, per_sample.detach().mean(), frac)
