"""The report with AdaFlood: its runs in their setting on the one level axis (1 - gamma),
the methods side by side, and its levels split by clean and flipped labels."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from flooding.config import RunConfig
from flooding.report.methods_compared import level_means, levels_table, methods_table, sample_levels
from flooding.report.stats import SETTING_COLUMNS, as_levels, compare


def summary_row(method: str, seed: int, test: float, val: float, **fields) -> dict:
    cfg = RunConfig(dataset="gaussians", label_noise=0.2, flood_method=method, seed=seed, **fields)
    row = cfg.to_dict()
    row.update(
        status="completed",
        final_val_acc=val,
        final_test_acc=test,
        best_val_acc=val,
        best_test_acc=test,
        run_dir=f"{method}-{seed}-{fields}",
    )
    return row


def summary() -> pd.DataFrame:
    rows = []
    for seed in range(3):
        rows.append(summary_row("flood", seed, 0.70 + seed / 100, 0.6))
        rows.append(summary_row("flood", seed, 0.75, 0.7, flood_level=0.2))
        rows.append(summary_row("adaflood", seed, 0.80, 0.8, adaflood_gamma=0.3))
        rows.append(summary_row("adaflood", seed, 0.90, 0.5, adaflood_gamma=0.7))
    return pd.DataFrame(rows)


def test_adaflood_shares_its_setting_and_its_gamma_is_chosen_by_validation():
    assert "adaflood_gamma" not in SETTING_COLUMNS
    levels = as_levels(summary())
    ada = levels[levels["flood_method"] == "adaflood"]
    assert sorted(ada["flood_level"].round(6).unique()) == [0.3, 0.7]  # 1 - gamma
    assert (levels.loc[levels["flood_method"] == "flood", "flood_level"].isin([0, 0.2])).all()
    comparison = compare(levels)
    rows = comparison[~comparison["early_stopping"]].set_index("flood_method")
    assert set(rows.index) == {"flood", "adaflood"}
    # gamma 0.3 (level 0.7) has the better validation accuracy every seed: its test 0.80.
    assert rows.loc["adaflood", "flooded_mean"] == pytest.approx(0.80)
    assert rows.loc["adaflood", "chosen_levels"] == (0.7, 0.7, 0.7)
    assert rows.loc["adaflood", "n_pairs"] == 3


def test_the_methods_table_puts_each_method_beside_b0_the_best_in_bold():
    table = methods_table(compare(as_levels(summary())))
    assert [c.text for c in table.head[0]][-3:] == ["b = 0", "flood", "adaflood"]
    row = table.body[0]
    assert row[-1].text.startswith("80.00") and row[-1].css == "better"
    assert row[-2].text.startswith("75.00") and row[-2].css == ""


def test_levels_split_by_clean_and_flipped_labels_at_each_gamma():
    aux = pd.DataFrame(
        {
            "dataset": "gaussians",
            "label_noise": 0.2,
            "arch": "mlp",
            "seed": 0,
            "index": [0, 1, 2, 3],
            "label": [0, 1, 1, 0],
            "clean_label": [0, 1, 0, 1],  # the last two flipped
            "loss": [0.1, 0.3, 2.0, 4.0],
            "fold": [0, 1, 0, 1],
        }
    )
    levels = sample_levels(aux, summary())
    assert sorted(levels["gamma"].unique()) == [0.3, 0.7]
    means = level_means(levels)
    for gamma in (0.3, 0.7):
        hand = [-math.log((1 - gamma) * math.exp(-loss) + gamma) for loss in (0.1, 0.3, 2.0, 4.0)]
        clean, flipped = means.loc[("gaussians", 0.2, "mlp", gamma), "mean"]
        assert clean == pytest.approx(sum(hand[:2]) / 2)
        assert flipped == pytest.approx(sum(hand[2:]) / 2)
        assert flipped > clean
    assert len(levels_table(levels).body) == 2
