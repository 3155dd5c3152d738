"""Grid warnings, the double-descent detector and RQ2's reference loss, on known cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from fixtures_results import CONFIG_DEFAULTS
from scipy import integrate as scipy_integrate
from scipy import stats as scipy_stats

from flooding.report import diagnostics, reference, stats

EPOCHS = np.arange(0, 101)


def test_detector_finds_a_fall_rise_fall_and_its_turns():
    t = EPOCHS / 100
    loss = 0.3 + 0.7 * np.exp(-20 * t) + 0.4 * np.exp(-(((t - 0.5) / 0.1) ** 2))
    found = diagnostics.double_descent(EPOCHS, loss)
    assert found is not None
    assert 15 <= found.first_minimum <= 35 and 49 <= found.peak <= 51
    assert found.second_minimum == 100
    # Rise and fall are read off the smoothed curve, which differs from the raw one only at
    # the bump's top, where the median of three is the higher neighbour.
    smoothed = diagnostics.running_median(loss)
    assert found.rise == pytest.approx(smoothed[found.peak] / smoothed[found.first_minimum] - 1)
    assert found.fall == pytest.approx(1 - loss[100] / smoothed[found.peak])
    assert smoothed[found.peak] == pytest.approx(loss[49], rel=1e-12)


def test_running_median_removes_one_epoch_spikes_and_keeps_the_ends():
    values = np.array([5.0, 1.0, 9.0, 2.0, 3.0, 3.5, 0.5])
    expected = np.array([5.0, 5.0, 2.0, 3.0, 3.0, 3.0, 0.5])
    np.testing.assert_array_equal(diagnostics.running_median(values), expected)


FALLING = 0.3 + 0.7 * np.exp(-EPOCHS / 20)


def spiked(epochs: list[int], by: float = 0.3) -> np.ndarray:
    loss = FALLING.copy()
    loss[epochs] *= 1 + by
    return loss


def test_a_rise_that_lasts_two_epochs_is_a_double_descent():
    found = diagnostics.double_descent(EPOCHS, spiked([60, 61]))
    assert found is not None and found.peak in (60, 61)


@pytest.mark.parametrize(
    "loss",
    [
        1 / (1 + EPOCHS),  # falls throughout
        0.3 + 0.7 * np.exp(-EPOCHS / 5) + 0.002 * EPOCHS,  # overfits, never falls again
        0.5 + 0.01 * np.sin(EPOCHS),  # wiggles of 2 %, below the 5 % threshold
        # Overfits with dips of 10 % on the way up: it ends above every peak, so no dip
        # is a second descent (what a noisy mean curve at b = 0 looks like).
        0.3 + 0.005 * EPOCHS + 0.05 * (EPOCHS % 10 < 5),
        # A 30 % spike that lasts one epoch, mid-curve or just before the last epoch: one
        # bad step of one seed, not a second descent.
        spiked([60]),
        spiked([99]),
    ],
    ids=["monotone", "rise-only", "noise", "climbing-with-dips", "spike", "late-spike"],
)
def test_detector_finds_nothing_without_a_double_descent(loss):
    assert diagnostics.double_descent(EPOCHS, loss) is None


def test_detector_skips_missing_epochs():
    loss = np.array([1.0, 0.5, 0.5, np.nan, 0.7, 0.7, 0.4, 0.4])
    found = diagnostics.double_descent(np.arange(8), loss)
    assert (found.first_minimum, found.peak, found.second_minimum) == (1, 4, 6)


def summary_row(level: float, seed: int, val: float, **extra) -> dict:
    row = {**CONFIG_DEFAULTS, "flood_level": level, "seed": seed, **extra}
    return row | {
        "run_dir": f"runs/{level}-{seed}",
        "status": "completed",
        "final_val_acc": val,
        "final_test_acc": val,
        "best_val_acc": val,
        "best_test_acc": val,
    }


def test_edge_of_grid_flags_top_and_bottom_choices_and_names_levels_to_add():
    rows = [summary_row(0.0, s, 0.5) for s in range(3)]
    # Seeds 0 and 1 validate best at the top level 0.3, seed 2 at the bottom level 0.1.
    for s, best in ((0, 0.3), (1, 0.3), (2, 0.1)):
        rows += [summary_row(b, s, 0.9 if b == best else 0.6) for b in (0.1, 0.2, 0.3)]
    summary = pd.DataFrame(rows)
    runs = stats.by_method(stats.completed(summary))
    chosen = stats.chosen_levels(summary, early_stopping=False)
    edges = diagnostics.edge_of_grid(runs, chosen)
    assert len(edges) == 1
    cell = edges.iloc[0]
    assert (cell["at_top"], cell["at_bottom"]) == (2, 1)
    assert cell["advice"] == (
        "add b = 0.4, 0.5 above the grid; add b = 0.05 between 0 and the smallest level"
    )


def test_runs_still_improving_at_their_last_epoch_are_counted():
    rows = [summary_row(0.0, s, 0.5, epochs=10) for s in range(3)]
    summary = pd.DataFrame(rows).assign(epochs_completed=10, best_epoch=[10, 4, 10])
    table = diagnostics.unfinished_training(summary)
    assert table[["at_last", "runs", "epochs"]].values.tolist() == [[2, 3, 10]]


def test_noise_entropy_by_hand():
    # H(0.1) = -0.1 ln 0.1 - 0.9 ln 0.9 = 0.325083; plus 0.1 ln 9 = 0.219722 for 10 classes.
    assert reference.noise_entropy(0.1, 2) == pytest.approx(0.325083, abs=1e-6)
    assert reference.noise_entropy(0.1, 10) == pytest.approx(0.544805, abs=1e-6)
    assert reference.noise_entropy(0.0, 10) == 0.0


def test_gaussians_reference_matches_a_grid_integral_and_its_limits():
    bayes = scipy_stats.norm.cdf(-math.sqrt(10) / 2)  # m = 1 in 10 dimensions: 0.0569
    distance = math.sqrt(10)
    s = np.linspace(-12, distance + 12, 200_001)
    density = 0.5 * (scipy_stats.norm.pdf(s) + scipy_stats.norm.pdf(s - distance))
    for p in (0.0, 0.1, 0.3):
        eta = 1 / (1 + np.exp(-(distance * s - distance**2 / 2)))
        noisy = (1 - p) * eta + p * (1 - eta)
        noisy = np.clip(noisy, 1e-300, 1 - 1e-16)  # 0 log 0 = 0
        h = -(noisy * np.log(noisy) + (1 - noisy) * np.log1p(-noisy))
        expected = scipy_integrate.trapezoid(density * h, s)
        value = reference.gaussians_reference(p, bayes)
        assert value == pytest.approx(expected, rel=1e-6)
        # Never below the noise's own entropy; equal to it when the classes separate.
        assert value >= reference.noise_entropy(p, 2)
    assert reference.gaussians_reference(0.5, bayes) == pytest.approx(math.log(2))
    far = scipy_stats.norm.cdf(-10)  # D = 20: the clean classes barely overlap
    assert reference.gaussians_reference(0.2, far) == pytest.approx(
        reference.noise_entropy(0.2, 2), rel=1e-6
    )


def test_reference_kinds_by_dataset():
    assert reference.reference_loss("gaussians", 0.1, 0.0569)[1] == "exact"
    assert reference.reference_loss("mnist", 0.1, math.nan)[1] == "lower bound"
    assert reference.reference_loss("mnist", 0.0, math.nan) == (0.0, "lower bound")
    value, kind = reference.reference_loss("no-such-set", 0.1, math.nan)
    assert math.isnan(value) and kind == ""


def test_tracking_sentence_judges_only_what_the_noise_levels_allow():
    noise = pd.Series([0.0, 0.1, 0.2])
    refs = pd.Series([0.1, 0.3, 0.5])
    rising = reference.tracking_sentence("g", noise, pd.Series([0.05, 0.15, 0.25]), refs)
    assert "rises with the reference loss (slope 0.50, correlation 1.00 over 3" in rising
    two = reference.tracking_sentence("g", noise[:2], pd.Series([0.2, 0.1]), refs[:2])
    assert "falls" in two and "correlation" not in two and "more noise levels" in two
    flat = reference.tracking_sentence("g", noise, pd.Series([0.1, 0.1, 0.1]), refs)
    assert "does not move" in flat
    one = reference.tracking_sentence("g", noise[:1], pd.Series([0.1]), refs[:1])
    assert "one label-noise level only" in one
