"""Paired comparisons: hand-computed intervals and Holm tables, scipy where it has the test."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from flooding.report import inference


def test_paired_t_test_matches_scipy_and_the_formula():
    flooded = np.array([0.90, 0.92, 0.95])
    baseline = np.array([0.88, 0.91, 0.90])
    result = inference.paired_t_test(flooded, baseline)
    diff = flooded - baseline  # 0.02, 0.01, 0.05
    t = diff.mean() / (diff.std(ddof=1) / math.sqrt(3))
    assert result.n == 3
    assert result.mean_difference == pytest.approx(0.08 / 3)
    assert t == pytest.approx(2.2188, abs=1e-4)
    assert result.p_value == pytest.approx(scipy_stats.ttest_rel(flooded, baseline).pvalue)
    assert result.p_value == pytest.approx(2 * scipy_stats.t.sf(t, df=2))
    assert not result.significant


def test_paired_t_test_significant_on_a_consistent_gain():
    result = inference.paired_t_test(np.array([0.91, 0.93, 0.92, 0.95]), np.array([0.9] * 4))
    # Differences 0.01, 0.03, 0.02, 0.05: t = 3.2205 with 3 degrees of freedom.
    assert result.p_value == pytest.approx(0.04857, abs=1e-5) and result.significant


@pytest.mark.parametrize(
    ("flooded", "baseline", "note"),
    [
        ([0.9], [0.8], "fewer than 2 paired seeds"),
        ([], [], "fewer than 2 paired seeds"),
        ([0.9, 0.8], [0.9, 0.8], "identical results"),
        ([0.1 + 0.2, 0.5], [0.3, 0.5], "identical results"),  # 0.1 + 0.2 != 0.3 in floats
        ([0.91, 0.81], [0.90, 0.80], "the same difference for every seed"),
    ],
)
def test_paired_t_test_undefined_cases_give_no_p_value(flooded, baseline, note):
    result = inference.paired_t_test(np.array(flooded), np.array(baseline))
    assert result.p_value is None and result.note == note and not result.significant


def test_interval_matches_the_hand_computed_t_interval():
    # Differences 0.02, 0.01, 0.05: mean 0.026667, sd 0.020817, t(0.975, 2) = 4.302653,
    # half width 4.302653 * 0.020817 / sqrt(3) = 0.051711.
    result = inference.paired_t_test(np.array([0.90, 0.92, 0.95]), np.array([0.88, 0.91, 0.90]))
    assert result.ci_low == pytest.approx(0.026667 - 0.051711, abs=2e-6)
    assert result.ci_high == pytest.approx(0.026667 + 0.051711, abs=2e-6)
    interval = scipy_stats.ttest_rel([0.90, 0.92, 0.95], [0.88, 0.91, 0.90]).confidence_interval()
    assert (result.ci_low, result.ci_high) == pytest.approx((interval.low, interval.high))


def test_two_seeds_give_an_interval_but_no_p_value():
    result = inference.paired_t_test(np.array([0.90, 0.92]), np.array([0.88, 0.91]))
    assert result.p_value is None and result.note == "2 seeds: too few for a test (at least 3)"
    # Differences 0.02, 0.01: mean 0.015, sd 0.007071, t(0.975, 1) = 12.7062.
    assert result.ci_high - result.ci_low == pytest.approx(
        2 * 12.7062 * 0.007071 / 2**0.5, rel=1e-4
    )
    assert result.seeds_needed is not None and result.seeds_needed > 2


def test_holm_matches_a_hand_computed_table():
    # Sorted: 0.005 x 4 = 0.02; 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04 -> 0.06.
    adjusted = inference.holm([0.01, 0.04, None, 0.03, 0.005])
    assert adjusted[2] is None
    assert [adjusted[i] for i in (0, 1, 3, 4)] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert inference.holm([0.4, 0.9]) == pytest.approx([0.8, 0.9])
    assert inference.holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])
    assert inference.holm([]) == []


@pytest.mark.parametrize(("effect", "seeds"), [(0.5, 34), (1.0, 10)])
def test_seeds_needed_matches_the_textbook_table(effect, seeds):
    # Two-sided paired t-test, alpha 0.05, power 0.8 (Cohen 1988; G*Power gives the same n).
    assert inference.seeds_needed(effect) == seeds
    assert inference.power(seeds, effect) >= 0.8 > inference.power(seeds - 1, effect)


def test_seeds_needed_is_none_for_no_effect_or_one_past_the_cap():
    assert inference.seeds_needed(0.0) is None
    assert inference.seeds_needed(0.01) is None
    assert inference.power(3, 10.0) > 0.8 and inference.seeds_needed(10.0) == inference.MIN_SEEDS
