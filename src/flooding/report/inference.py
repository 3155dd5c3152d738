"""Paired comparisons over seeds: effect with an interval, p value, Holm correction, power.

Runs that differ only in b share their seed's data, initialisation and batch order, so
each comparison is a paired one: the differences d_i = flooded_i - baseline_i over the n
seeds that have both. Reported for each comparison:

- the mean difference with a 95 % t interval, mean ± t(0.975, n-1) · sd / sqrt(n);
- the two-sided paired t-test's p value, and its Holm-adjusted value across all the
  comparisons of the report (Holm 1979: the i-th smallest of m p values is multiplied by
  m - i + 1, then made non-decreasing; it controls the family-wise error at ALPHA without
  assuming independence);
- the seeds a paired t-test would need to detect the observed mean difference with 80 %
  power at ALPHA, taking the observed sd of the differences as the truth (the noncentral t
  distribution; a rough planning figure, since the sd of a few seeds is itself uncertain).

With fewer than MIN_SEEDS seeds no p value is printed: the t-test with two seeds rests on a
spread estimated from one degree of freedom, and two differences that happen to agree give
a tiny p for any effect; the exact sign-flip test, which does not lean on that estimate,
cannot go below 1/2 with two seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05
CONFIDENCE = 0.95
POWER = 0.8
MIN_SEEDS = 3
# Planning figures past this are reported as "more than".
MAX_SEEDS_NEEDED = 1000
# Differences whose spread is below this (relative) are treated as constant: floating-point
# noise on identical results must not turn into a huge t statistic.
_ZERO_SPREAD = 1e-12


@dataclass(frozen=True)
class PairedTest:
    """Paired comparison of flooded minus baseline over seeds."""

    n: int
    mean_difference: float
    ci_low: float  # NaN where no interval exists (n < 2 or zero spread)
    ci_high: float
    p_value: float | None  # None when no p value is given; `note` says why
    note: str
    seeds_needed: int | None  # for 80 % power at the observed effect; None if undefined

    @property
    def significant(self) -> bool:
        """Unadjusted; the report's counts use holm() instead."""
        return self.p_value is not None and self.p_value < ALPHA


def paired_t_test(flooded: np.ndarray, baseline: np.ndarray) -> PairedTest:
    """Two-sided paired t-test with interval and planning figure (see the module text)."""
    diff = np.asarray(flooded, dtype=float) - np.asarray(baseline, dtype=float)
    n = int(diff.size)
    mean = float(diff.mean()) if n else math.nan
    if n < 2:
        return PairedTest(n, mean, math.nan, math.nan, None, "fewer than 2 paired seeds", None)
    spread = float(diff.std(ddof=1))
    if spread <= _ZERO_SPREAD * max(1.0, abs(mean)):
        note = (
            "identical results"
            if abs(mean) <= _ZERO_SPREAD
            else "the same difference for every seed"
        )
        return PairedTest(n, mean, math.nan, math.nan, None, note, None)
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, df=n - 1)) * spread / math.sqrt(n)
    needed = seeds_needed(abs(mean) / spread)
    if n < MIN_SEEDS:
        note = f"{n} seeds: too few for a test (at least {MIN_SEEDS})"
        return PairedTest(n, mean, mean - half, mean + half, None, note, needed)
    t = mean / (spread / math.sqrt(n))
    p = float(2.0 * stats.t.sf(abs(t), df=n - 1))
    return PairedTest(n, mean, mean - half, mean + half, p, "", needed)


def power(n: int, effect: float, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test with n pairs at effect = |mean| / sd."""
    df = n - 1
    critical = stats.t.ppf(1 - alpha / 2, df)
    shift = effect * math.sqrt(n)
    # The far tail underflows: scipy returns NaN there (older releases also warn of a
    # division by zero), and it is 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        upper = float(stats.nct.sf(critical, df, shift))
        lower = float(np.nan_to_num(stats.nct.cdf(-critical, df, shift)))
    return upper + lower


def seeds_needed(effect: float, target: float = POWER) -> int | None:
    """Smallest n >= MIN_SEEDS whose power reaches `target`; None past MAX_SEEDS_NEEDED.

    Starts from the normal approximation n = ((z(1-alpha/2) + z(power)) / effect)^2 +
    z(1-alpha/2)^2 / 2 (Guenther 1981), which is within a seed or two of the answer, and
    steps to the exact one with the noncentral t (power grows with n).
    """
    if not effect > 0:
        return None
    z = stats.norm.ppf(1 - ALPHA / 2)
    guess = ((z + stats.norm.ppf(target)) / effect) ** 2 + z**2 / 2
    if guess > 2 * MAX_SEEDS_NEEDED:
        return None
    n = min(max(MIN_SEEDS, math.ceil(guess)), MAX_SEEDS_NEEDED)
    while n > MIN_SEEDS and power(n - 1, effect) >= target:
        n -= 1
    while power(n, effect) < target:
        if n >= MAX_SEEDS_NEEDED:
            return None
        n += 1
    return n


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm-adjusted p values, in the given order; None (no test) stays None.

    The family is the tests that gave a p value.
    """
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None and not math.isnan(p))
    m = len(tested)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted
