"""RQ2's yardstick: the loss of the Bayes-optimal predictor on the noisy training labels.

The paper links b to the Bayes risk: flooding should hold the training loss near the
lowest loss any predictor can reach on the labels it is trained on. That reference, in
nats (the cross-entropy's unit):

- Two Gaussians N(0, I) against N(m·1, I), equal priors, labels flipped with rate p: only
  the projection s on the mean direction matters; s is N(0, 1) or N(D, 1) with
  D = m·sqrt(d), the clean posterior is eta(s) = sigmoid(D·s - D²/2), the noisy one
  (1-p)·eta + p·(1-eta), and the reference is E_s[H(noisy posterior)], integrated
  numerically (scipy.integrate.quad). D is read back from the recorded Bayes error,
  Phi(-D/2), so the dimension is not restated here.
- Any other dataset, taken as noise-free before the flips, with symmetric flips among C
  classes: the entropy of the noise, H(p) + p·log(C-1). It is exact when the clean
  problem's Bayes risk is 0 and a lower bound otherwise.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import integrate, special, stats

from flooding.data.registry import DATASETS

GAUSSIANS = "gaussians"


def entropy(q: np.ndarray | float) -> np.ndarray:
    """Binary entropy in nats, 0 at q = 0 and q = 1."""
    q = np.asarray(q, dtype=float)
    return special.entr(q) + special.entr(1.0 - q)


def noise_entropy(p: float, classes: int) -> float:
    """Entropy of a symmetric flip with rate p among `classes` classes, in nats."""
    extra = p * math.log(classes - 1) if classes > 2 else 0.0
    return float(entropy(p)) + extra


def gaussians_reference(p: float, bayes_error: float) -> float:
    """Expected cross-entropy of the Bayes-optimal predictor of the noisy Gaussian labels."""
    distance = -2.0 * stats.norm.ppf(bayes_error)

    def integrand(s: float) -> float:
        clean = special.expit(distance * s - distance**2 / 2)
        noisy = (1 - p) * clean + p * (1 - clean)
        density = 0.5 * (stats.norm.pdf(s) + stats.norm.pdf(s - distance))
        return float(density * entropy(noisy))

    # The density is negligible 12 sd beyond either mean.
    value, _ = integrate.quad(integrand, -12.0, distance + 12.0, points=[distance / 2], limit=200)
    return float(value)


def reference_loss(dataset: str, label_noise: float, bayes_error: float) -> tuple[float, str]:
    """(reference loss, "exact" or "lower bound"); NaN and "" for an unknown dataset."""
    if dataset == GAUSSIANS and 0 < bayes_error < 0.5:
        return gaussians_reference(label_noise, bayes_error), "exact"
    spec = DATASETS.get(dataset)
    if spec is None:
        return math.nan, ""
    # Exact only if the clean problem is separable, which the data does not tell.
    return noise_entropy(label_noise, spec.num_classes), "lower bound"


def references(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset, label noise and recorded Bayes error: `reference`, `kind`."""
    keys = ["dataset", "label_noise", "bayes_error"]
    rows = summary[keys].drop_duplicates()
    values = [
        reference_loss(d, float(p), float(e))
        for d, p, e in zip(rows["dataset"], rows["label_noise"], rows["bayes_error"], strict=True)
    ]
    return rows.assign(reference=[v for v, _ in values], kind=[k for _, k in values]).reset_index(
        drop=True
    )


def tracking_sentence(block: str, noise: pd.Series, levels: pd.Series, refs: pd.Series) -> str:
    """Does the mean chosen b follow the reference across noise levels? One sentence.

    All three series are aligned, one value per label-noise level (sorted).
    """
    pairs = ", ".join(
        f"{b:.3g} vs {r:.3g} at noise {p:g}" for p, b, r in zip(noise, levels, refs, strict=True)
    )
    if len(levels) < 2:
        return f"{block}: one label-noise level only (chosen b {pairs}); no trend to judge."
    if np.ptp(refs.to_numpy()) == 0:
        return f"{block}: the reference is the same at every noise level ({pairs})."
    slope = float(np.polyfit(refs.to_numpy(), levels.to_numpy(), 1)[0])
    if np.ptp(levels.to_numpy()) == 0:
        return f"{block}: the chosen b does not move with the reference ({pairs})."
    direction = "rises" if slope > 0 else "falls"
    if len(levels) == 2:
        # Two points always lie on a line: only the direction means anything.
        return (
            f"{block}: the mean chosen b {direction} with the reference loss between the two "
            f"noise levels (slope {slope:.2f}; {pairs}); more noise levels would test the link."
        )
    r = float(np.corrcoef(refs.to_numpy(), levels.to_numpy())[0, 1])
    return (
        f"{block}: the mean chosen b {direction} with the reference loss (slope {slope:.2f}, "
        f"correlation {r:.2f} over {len(levels)} noise levels; {pairs})."
    )
