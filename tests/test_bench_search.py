"""bench/bench_search.py's settings and the figures it prints beside its gaps: the dense
grid's halves, the noise of a level's mean (on run folders written here) and the gaps'
standard errors over settings."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
from bench_scripts import load_bench

from flooding.metrics import METRICS_FILE
from flooding.search import SearchPlan


def test_each_label_noise_is_a_search_of_the_defaults_gaussians() -> None:
    bench = load_bench("bench_search")
    searches = bench.searches(SearchPlan(), 2, [0.0, 0.3])
    assert [s.name for s in searches] == [
        "gaussians-noise0/mlp/wd0-aug0",
        "gaussians-noise0.3/mlp/wd0-aug0",
    ]
    assert all(s.methods == ("flood",) and s.plan == SearchPlan() for s in searches)
    assert all(s.seeds == [0, 1] for s in searches)
    # Only the noise differs: the default's training settings for both.
    configs = {dataclasses.replace(s.baselines[0].config, label_noise=0.0) for s in searches}
    assert len(configs) == 1


def runs_with(tmp_path: Path, accuracies: dict[float, list[tuple[float, float]]]) -> list:
    """Runs of the bench's first setting at these levels, one per (val, test) pair, each
    with a metrics file whose last epoch holds the pair."""
    bench = load_bench("bench_search")
    (search,) = bench.searches(SearchPlan(), None, [0.1])
    runs = []
    for level, pairs in accuracies.items():
        for base, (val, test) in zip(search.baselines, pairs, strict=False):
            cfg = dataclasses.replace(base.config, flood_level=level)
            run = dataclasses.replace(base, path=f"{base.path}-{level}", config=cfg)
            folder = tmp_path / run.path
            folder.mkdir(parents=True)
            metrics = {"epoch": [0, 1], "val_acc": [0.5, val], "test_acc": [0.5, test]}
            pd.DataFrame(metrics).to_parquet(folder / METRICS_FILE)
            runs.append(run)
    return runs


def test_the_chosen_level_is_the_best_mean_val_and_the_noise_is_measured(tmp_path: Path) -> None:
    bench = load_bench("bench_search")
    accuracies = bench.final_accuracies(
        runs_with(
            tmp_path,
            {
                0.0: [(0.80, 0.70), (0.82, 0.72)],
                0.025: [(0.90, 0.80), (0.86, 0.76)],  # the best mean val (0.88)
                0.05: [(0.85, 0.95), (0.85, 0.95)],  # the best test, not chosen
            },
        ),
        tmp_path,
    )
    assert bench.chosen(accuracies) == pytest.approx((0.025, 0.88, 0.78))
    # Standard errors of the levels' test means: 0.01, 0.02 and 0; the deviations from
    # each level's means move together exactly.
    text = bench.noise(accuracies)
    assert f"standard error of {100 * 0.01:.2f} points" in text
    assert "correlate at 1.00" in text


def test_the_halves_of_the_dense_grid_split_its_levels_and_both_keep_b_zero() -> None:
    bench = load_bench("bench_search")
    grid = {b: [(0.5, 0.5)] for b in (0.0, 0.025, 0.05, 0.075, 0.1)}
    assert list(bench.half(grid, 0, 0.025)) == [0.0, 0.05, 0.1]
    assert list(bench.half(grid, 1, 0.025)) == [0.0, 0.025, 0.075]


def test_the_spread_over_settings_is_the_standard_error_of_the_mean_gaps() -> None:
    bench = load_bench("bench_search")
    # Test gaps 1, 3, 5: standard deviation 2, over sqrt(3) settings.
    text = bench.spread([0.0, 0.0, 0.0], [1.0, 3.0, 5.0])
    assert f"of the test gap {2 / 3**0.5:.3f} points" in text
    assert "of the val gap 0.000" in text
    assert "no standard error" in bench.spread([1.0], [2.0])
