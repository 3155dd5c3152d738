"""The report's statistics on small hand-made summary tables with known answers."""

from __future__ import annotations

import pandas as pd
import pytest
from fixtures_results import CONFIG_DEFAULTS
from scipy import stats as scipy_stats

from flooding.report import stats


def run(level: float, seed: int, final: tuple[float, float], best=None, **config) -> dict:
    """A summary row: final (val, test) accuracy and, with early stopping, best (val, test)."""
    best = best or final
    row = {**CONFIG_DEFAULTS, "flood_level": level, "seed": seed, **config}
    row.update(
        run_dir=f"runs/{row['dataset']}/{row['flood_method']}-{level}-{seed}",
        status="completed",
        error=None,
        final_val_acc=final[0],
        final_test_acc=final[1],
        best_val_acc=best[0],
        best_test_acc=best[1],
    )
    return row


def table(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def test_config_columns_are_those_the_runs_write():
    """The report groups by the config columns that metrics.parquet actually carries."""
    from flooding.metrics import EPOCH_COLUMNS, metrics_schema

    written = [n for n in metrics_schema().names if n not in EPOCH_COLUMNS]
    assert written == [*stats.CONFIG_COLUMNS, "config_hash", "bayes_error"]


def test_flood_level_chosen_by_final_or_best_validation_accuracy():
    summary = table(
        run(0.0, 0, final=(0.80, 0.70), best=(0.85, 0.75)),
        run(0.1, 0, final=(0.82, 0.72), best=(0.84, 0.74)),
        run(0.2, 0, final=(0.81, 0.90), best=(0.90, 0.76)),
    )
    runs = stats.by_method(summary)
    off = stats.choose_flood_level(runs, early_stopping=False)
    on = stats.choose_flood_level(runs, early_stopping=True)
    # Off: the last epoch's validation accuracy picks 0.1, although 0.2 tests better.
    assert off[["flood_level", "val_acc", "test_acc"]].values.tolist() == [[0.1, 0.82, 0.72]]
    assert on[["flood_level", "val_acc", "test_acc"]].values.tolist() == [[0.2, 0.90, 0.76]]


def test_ties_go_to_the_smallest_flood_level():
    summary = table(
        run(0.0, 0, final=(0.80, 0.70)),
        run(0.2, 0, final=(0.90, 0.71)),
        run(0.1, 0, final=(0.90, 0.72)),
        run(0.0, 1, final=(0.95, 0.73)),
        run(0.1, 1, final=(0.95, 0.74)),
    )
    chosen = stats.choose_flood_level(stats.by_method(summary), early_stopping=False)
    assert dict(zip(chosen["seed"], chosen["flood_level"], strict=True)) == {0: 0.1, 1: 0.0}


def test_the_b0_run_is_the_baseline_of_every_method_where_it_was_run():
    summary = table(
        run(0.0, 0, final=(0.8, 0.8)),
        run(0.1, 0, final=(0.9, 0.9)),
        run(0.1, 0, final=(0.7, 0.7), flood_method="iflood"),
        # A second setting, flooded with "flood" only: no iflood copy of its baseline.
        run(0.0, 0, final=(0.8, 0.8), weight_decay=0.1),
        run(0.1, 0, final=(0.9, 0.9), weight_decay=0.1),
        # A third without flooded runs keeps its baseline under "flood".
        run(0.0, 0, final=(0.8, 0.8), weight_decay=0.2),
    )
    runs = stats.by_method(summary)
    baselines = runs[runs["flood_level"] == 0]
    pairs = set(zip(baselines["weight_decay"], baselines["flood_method"], strict=True))
    assert pairs == {(0.0, "flood"), (0.0, "iflood"), (0.1, "flood"), (0.2, "flood")}
    chosen = stats.choose_flood_level(runs, early_stopping=False)
    keys = zip(chosen["weight_decay"], chosen["flood_method"], strict=True)
    picked = dict(zip(keys, chosen["flood_level"], strict=True))
    # iflood at b = 0.1 validates worse than b = 0, so validation keeps b = 0 for iflood.
    assert picked == {
        (0.0, "flood"): 0.1,
        (0.0, "iflood"): 0.0,
        (0.1, "flood"): 0.1,
        (0.2, "flood"): 0.0,
    }


def test_compare_pairs_seeds_and_skips_unfinished_runs():
    rows = []
    # Seed s: b = 0 tests at 0.80 + s/100; b = 0.1 validates best and tests 0.02 + s/200 higher.
    for s in range(3):
        rows.append(run(0.0, s, final=(0.70, 0.80 + s / 100), best=(0.75, 0.81 + s / 100)))
        rows.append(run(0.1, s, final=(0.72, 0.82 + s * 0.015), best=(0.74, 0.70)))
    rows.append(run(0.2, 0, final=(0.99, 0.99)) | {"status": "diverged"})
    comparison = stats.compare(table(*rows))
    off = comparison[~comparison["early_stopping"]].iloc[0]
    on = comparison[comparison["early_stopping"]].iloc[0]
    assert off["n_pairs"] == 3 and off["n_expected"] == 3
    assert off["chosen_levels"] == (0.1, 0.1, 0.1)  # the diverged b = 0.2 run is not a candidate
    assert off["baseline_mean"] == pytest.approx(0.81)
    assert off["flooded_mean"] == pytest.approx(0.835)
    assert off["baseline_std"] == pytest.approx(0.01)
    assert off["mean_difference"] == pytest.approx(0.025)
    expected = scipy_stats.ttest_rel([0.82, 0.835, 0.85], [0.80, 0.81, 0.82]).pvalue
    assert off["p_value"] == pytest.approx(expected)
    # The only test of the table: Holm leaves it as it is.
    assert off["p_holm"] == pytest.approx(expected)
    interval = scipy_stats.ttest_rel([0.82, 0.835, 0.85], [0.80, 0.81, 0.82]).confidence_interval()
    assert (off["ci_low"], off["ci_high"]) == pytest.approx((interval.low, interval.high))
    # Early stopping on: b = 0 validates best at its best epoch for every seed.
    assert on["chosen_levels"] == (0.0, 0.0, 0.0)
    assert on["mean_difference"] == 0 and pd.isna(on["p_value"]) and pd.isna(on["p_holm"])
    assert on["test_note"] == "identical results"


def test_compare_counts_only_seeds_with_both_results():
    rows = [run(0.0, s, final=(0.7, 0.8)) for s in (0, 1)]
    rows += [run(0.1, s, final=(0.9, 0.9)) for s in (0, 1, 2)]
    row = stats.compare(table(*rows)).iloc[0]
    assert row["n_pairs"] == 2 and row["n_expected"] == 3
    assert row["test_note"] == "the same difference for every seed"


def test_missing_seeds_lists_absent_and_unfinished_runs():
    rows = [run(b, s, final=(0.7, 0.8)) for b in (0.0, 0.1, 0.2) for s in (0, 1, 2)]
    summary = table(*rows)
    summary = summary.drop(summary.index[(summary.flood_level == 0.1) & (summary.seed == 2)])
    summary.loc[(summary.flood_level == 0.2) & (summary.seed == 0), "status"] = "failed"
    missing = stats.missing_seeds(summary)
    found = sorted(zip(missing["flood_level"], missing["missing"], strict=True))
    assert found == [(0.1, (2,)), (0.2, (0,))]


def test_curve_runs_pick_the_plainest_setting_and_its_best_validated_level():
    rows = []
    for wd in (0.0, 0.1):
        for s in (0, 1):
            rows.append(run(0.0, s, final=(0.70, 0.8), weight_decay=wd))
            rows.append(run(0.1, s, final=(0.75 + s / 8, 0.8), weight_decay=wd))
            rows.append(run(0.2, s, final=(0.8125, 0.8), weight_decay=wd))
    drawn = stats.curve_runs(table(*rows))
    assert set(drawn["weight_decay"]) == {0.0}
    # Mean validation: 0.8125 at both b = 0.1 and b = 0.2 (exact in binary): the smaller wins.
    # ... and the largest b, where the flood is strongest, beside it.
    lines = drawn.drop_duplicates("line").set_index("line")["role"].to_dict()
    assert lines == {
        "b = 0": "b = 0",
        "flood, b = 0.1 (validated b)": "validated b",
        "flood, b = 0.2 (largest b)": "largest b",
    }
    assert len(drawn) == 6


def test_curve_runs_also_draw_the_settings_asked_for():
    rows = [
        run(level, seed, final=(0.7, 0.8), weight_decay=wd)
        for wd in (0.0, 0.1)
        for level in (0.0, 0.1)
        for seed in (0, 1)
    ]
    summary = table(*rows)
    also = summary[summary["weight_decay"] == 0.1].head(1)
    drawn = stats.curve_runs(summary, also=also)
    assert set(drawn["weight_decay"]) == {0.0, 0.1} and len(drawn) == 8


def test_curve_runs_prefer_the_highest_label_noise_where_double_descent_shows():
    rows = [
        run(level, seed, final=(0.7, 0.8), label_noise=noise)
        for noise in (0.0, 0.2, 0.1)
        for level in (0.0, 0.1)
        for seed in (0, 1)
    ]
    drawn = stats.curve_runs(table(*rows))
    assert set(drawn["label_noise"]) == {0.2}
    assert len(drawn) == 4
