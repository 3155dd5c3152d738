"""The statistics behind the report: early stopping, the choice of b, the paired test.

Everything works on the summary table (one row per run) with plain pandas, so each rule
is tested on small hand-made tables. The protocol follows the paper:

- Early stopping on: a run is scored at `best_epoch` (highest validation accuracy), so its
  `best_*` columns are used; off: its last epoch, the `final_*` columns.
- "With flooding": for each seed, the flood level with the highest validation accuracy
  among the grid's levels, b = 0 included as in the authors' code; ties go to the smallest
  b, the one closest to ordinary training. "Without flooding" is the b = 0 run.
- A run with b = 0 is emitted once (method "flood") and is the baseline of every method.
- Runs of one setting that share a seed share initialisation and batch order, so the
  comparison is paired over seeds, on the seeds that have both results
  (flooding.report.inference), Holm-adjusted across all the report's comparisons.
- Only completed runs enter the statistics; the others are listed in the report instead.
"""

from __future__ import annotations

import dataclasses
import math

import pandas as pd

from flooding.config import RunConfig, regulariser_fields
from flooding.methods import METHODS, method_fields
from flooding.report.inference import holm, paired_t_test

# The RunConfig fields, as columns of both Parquet files: RunConfig is their one source.
CONFIG_COLUMNS = tuple(f.name for f in dataclasses.fields(RunConfig))
# A setting: everything but the flood level, the flooding method, the fields a method alone
# reads (AdaFlood's gamma, ...) and the seed.
SETTING_COLUMNS = tuple(
    c for c in CONFIG_COLUMNS if c not in ("flood_level", "flood_method", "seed", *method_fields())
)
BLOCK_COLUMNS = ("dataset", "arch")


def score_columns(early_stopping: bool) -> tuple[str, str]:
    """(validation, test) accuracy columns of the summary for this early-stopping choice."""
    prefix = "best" if early_stopping else "final"
    return f"{prefix}_val_acc", f"{prefix}_test_acc"


def as_levels(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary with each run's varied value on the report's one level axis,
    `flood_level`: b for flood and iflood; for a method that varies another field
    (AdaFlood's gamma in [0, 1)), 1 - that value, its strength, so that 0 stays ordinary
    training (gamma -> 1 takes every level to 0), every run of the method counts as
    flooded, and a tie goes to the value closest to ordinary training, as for b (the
    report's "b" of an adaflood row reads as 1 - gamma, docs/adaflood.md)."""
    summary = summary.copy()
    for method in METHODS.values():
        if method.takes_level:
            continue
        rows = summary["flood_method"] == method.name
        summary.loc[rows, "flood_level"] = 1 - summary.loc[rows, method.varies]
    return summary


def completed(summary: pd.DataFrame) -> pd.DataFrame:
    return summary[summary["status"] == "completed"]


def without_levels(summary: pd.DataFrame, levels: pd.DataFrame) -> pd.DataFrame:
    """The summary less the runs of `levels` (rows of setting, method and flood level)."""
    if levels.empty:
        return summary
    keys = [*SETTING_COLUMNS, "flood_method", "flood_level"]
    marked = summary.merge(
        levels[keys].drop_duplicates().assign(_left_out=True), on=keys, how="left"
    )
    return summary[marked["_left_out"].isna().to_numpy()]


def by_method(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs once per flooding method of their setting, the b = 0 runs in every copy.

    A setting without any flooded run keeps its b = 0 runs under method "flood", so that
    its ordinary-training results still appear.
    """
    keys = list(SETTING_COLUMNS)
    flooded = runs[runs["flood_level"] > 0]
    baseline = runs[runs["flood_level"] == 0].drop_duplicates([*keys, "seed"])
    methods = flooded[[*keys, "flood_method"]].drop_duplicates()
    with_methods = baseline.drop(columns="flood_method").merge(methods, on=keys, how="inner")
    unflooded = baseline.merge(methods[keys].drop_duplicates(), on=keys, how="left", indicator=True)
    alone = unflooded[unflooded["_merge"] == "left_only"].drop(columns="_merge")
    alone = alone.assign(flood_method="flood")
    return pd.concat([with_methods, alone, flooded], ignore_index=True)


def choose_flood_level(runs: pd.DataFrame, early_stopping: bool) -> pd.DataFrame:
    """Per setting, method and seed: the flood level with the best validation accuracy.

    `runs` comes from by_method(). Returns the keys, `flood_level` (the chosen b),
    `val_acc` and `test_acc` of the chosen run.
    """
    val, test = score_columns(early_stopping)
    keys = [*SETTING_COLUMNS, "flood_method", "seed"]
    ordered = runs.sort_values(
        [val, "flood_level"], ascending=[False, True], na_position="last", kind="stable"
    )
    chosen = ordered.drop_duplicates(keys, keep="first")
    chosen = chosen[[*keys, "flood_level", val, test]]
    return chosen.rename(columns={val: "val_acc", test: "test_acc"}).reset_index(drop=True)


def chosen_levels(summary: pd.DataFrame, early_stopping: bool) -> pd.DataFrame:
    """choose_flood_level() on the completed runs of the settings that have flooded runs."""
    runs = by_method(completed(summary))
    keys = [*SETTING_COLUMNS, "flood_method"]
    flooded = runs[runs["flood_level"] > 0][keys].drop_duplicates()
    chosen = choose_flood_level(runs.merge(flooded, on=keys), early_stopping)
    return chosen.assign(early_stopping=early_stopping)


def compare(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per setting, method and early-stopping choice: b = 0 against chosen b.

    Columns: the setting columns, `flood_method`, `early_stopping`, `n_pairs`,
    `n_expected` (seeds of the dataset and architecture in the grid), `baseline_mean`,
    `baseline_std`, `flooded_mean`, `flooded_std` (test accuracy over the paired seeds),
    `chosen_levels` (the chosen b per paired seed, sorted), `has_flooding` (a level b > 0
    was a candidate), and the paired comparison: `mean_difference` with its 95 % interval
    `ci_low`, `ci_high`, `p_value` (None where no test is given), `test_note` (why),
    `p_holm` (adjusted across every row of the table) and `seeds_needed`.
    """
    expected = summary.groupby(list(BLOCK_COLUMNS))["seed"].nunique().rename("n_expected")
    runs = by_method(completed(summary))
    keys = [*SETTING_COLUMNS, "flood_method"]
    levels = runs.groupby(keys, dropna=False)["flood_level"].max().rename("top_level")
    rows = []
    for early_stopping in (False, True):
        _, test = score_columns(early_stopping)
        base = runs[runs["flood_level"] == 0][[*keys, "seed", test]]
        chosen = choose_flood_level(runs, early_stopping)
        pairs = chosen.merge(base.rename(columns={test: "baseline"}), on=[*keys, "seed"])
        for key, group in pairs.groupby(keys, dropna=False, sort=True):
            result = paired_t_test(group["test_acc"].to_numpy(), group["baseline"].to_numpy())
            rows.append(
                {
                    **dict(zip(keys, key, strict=True)),
                    "early_stopping": early_stopping,
                    "n_pairs": result.n,
                    "baseline_mean": group["baseline"].mean(),
                    "baseline_std": _std(group["baseline"]),
                    "flooded_mean": group["test_acc"].mean(),
                    "flooded_std": _std(group["test_acc"]),
                    "chosen_levels": tuple(sorted(group["flood_level"].tolist())),
                    "has_flooding": bool(levels[key] > 0),
                    "mean_difference": result.mean_difference,
                    "ci_low": result.ci_low,
                    "ci_high": result.ci_high,
                    "p_value": result.p_value,
                    "test_note": result.note,
                    "seeds_needed": result.seeds_needed,
                }
            )
    # The family: every comparison with flooding in the report (a setting without b > 0
    # compares b = 0 with itself and is no test).
    family = [r["p_value"] if r["has_flooding"] else None for r in rows]
    for row, adjusted in zip(rows, holm(family), strict=True):
        row["p_holm"] = adjusted
    table = pd.DataFrame(rows, columns=_COMPARE_COLUMNS)
    return table.merge(expected.reset_index(), on=list(BLOCK_COLUMNS), how="left")


_COMPARE_COLUMNS = [
    *SETTING_COLUMNS,
    "flood_method",
    "early_stopping",
    "n_pairs",
    "baseline_mean",
    "baseline_std",
    "flooded_mean",
    "flooded_std",
    "chosen_levels",
    "has_flooding",
    "mean_difference",
    "ci_low",
    "ci_high",
    "p_value",
    "test_note",
    "seeds_needed",
    "p_holm",
]


def _std(values: pd.Series) -> float:
    return float(values.std(ddof=1)) if len(values) > 1 else math.nan


def missing_seeds(summary: pd.DataFrame) -> pd.DataFrame:
    """Setting, method and flood level combinations lacking a completed run for some seed.

    The seeds expected are those of the dataset and architecture anywhere in the grid.
    Columns: the setting columns, `flood_method`, `flood_level`, `missing` (sorted seeds).
    """
    keys = [*SETTING_COLUMNS, "flood_method", "flood_level"]
    expected = summary.groupby(list(BLOCK_COLUMNS))["seed"].agg(lambda s: frozenset(s.tolist()))
    # b = 0 is one run per seed whatever its method label; count it under "flood".
    grid = summary.assign(
        flood_method=summary["flood_method"].where(summary["flood_level"] > 0, "flood")
    )
    done = grid[grid["status"] == "completed"]
    have = done.groupby(keys, dropna=False)["seed"].agg(lambda s: frozenset(s.tolist()))
    rows = []
    for key in grid[keys].drop_duplicates().itertuples(index=False, name=None):
        record = dict(zip(keys, key, strict=True))
        wanted = expected[tuple(record[c] for c in BLOCK_COLUMNS)]
        got = have.get(key, frozenset())
        if wanted - got:
            rows.append({**record, "missing": tuple(sorted(wanted - got))})
    return pd.DataFrame(rows, columns=[*keys, "missing"])


def curve_runs(summary: pd.DataFrame, also: pd.DataFrame | None = None) -> pd.DataFrame:
    """The runs drawn in the learning-curve figures (RQ4), with a `line` label each.

    Per dataset and architecture: at the highest label noise (where memorising noisy labels
    makes the test loss rise, so the double descent shows), the setting with the fewest
    other regularisers (smallest weight decay, no augmentation first, among settings with
    flooded runs where there are any); and every setting of `also` (rows with the setting
    columns: those where a double descent was found). For each: its b = 0 runs, and per
    method its runs at the flood level b > 0 with the best mean final validation accuracy
    over seeds (validated_levels()) and at the largest b > 0, where the flood is strongest
    (a validated b may sit below the training loss and never flood).

    Columns: the setting columns, `flood_method`, `flood_level`, `seed`, `run_dir`, `line`,
    `role` (b = 0, validated b or largest b; the validated one where both),
    `method_index` (the method's place among the setting's methods, for its shade) and
    `plain` (the block's plainest setting, not one drawn for being in `also`).
    """
    runs = completed(summary)
    keys = list(SETTING_COLUMNS)
    regularisers = [f.name for f in regulariser_fields()]
    rest = [c for c in keys if c not in ("label_noise", *regularisers)]
    flooded = runs[runs["flood_level"] > 0]
    settings = (
        runs[keys]
        .drop_duplicates()
        .merge(flooded[keys].drop_duplicates().assign(unflooded=False), on=keys, how="left")
    )
    settings["unflooded"] = settings["unflooded"].isna()
    order = ["unflooded", "label_noise", *regularisers, *rest]
    ascending = [column != "label_noise" for column in order]
    settings = settings.sort_values(order, ascending=ascending)
    picked = settings.drop_duplicates(list(BLOCK_COLUMNS))[keys].assign(plain=True)
    if also is not None and len(also):
        extra = also[keys].assign(plain=False)
        picked = pd.concat([picked, extra]).drop_duplicates(keys, keep="first")
    base = runs[runs["flood_level"] == 0].merge(picked, on=keys)
    base = base.assign(line="b = 0", flood_method="flood", role="b = 0", method_index=0)
    candidates = flooded.merge(picked, on=keys)
    level_columns = [*keys, "flood_method", "flood_level"]
    best = validated_levels(candidates).assign(role="validated b")
    largest = candidates.sort_values("flood_level").drop_duplicates(
        [*keys, "flood_method"], keep="last"
    )[level_columns]
    drawn_levels = pd.concat([best, largest.assign(role="largest b")])
    drawn_levels = drawn_levels.drop_duplicates(level_columns, keep="first")
    top = candidates.merge(drawn_levels, on=level_columns)
    methods = sorted(top["flood_method"].unique())
    top = top.assign(
        line=[
            f"{m}, b = {b:g} ({role})"
            for m, b, role in zip(top["flood_method"], top["flood_level"], top["role"], strict=True)
        ],
        method_index=[methods.index(m) for m in top["flood_method"]],
    )
    columns = [*keys, "flood_method", "flood_level", "seed", "run_dir", "line", "role"]
    columns += ["method_index", "plain"]
    return pd.concat([base[columns], top[columns]], ignore_index=True)


def validated_levels(flooded: pd.DataFrame) -> pd.DataFrame:
    """Per setting and method, the level b > 0 with the best mean final validation accuracy.

    One b for all seeds, for figures and curves that average over seeds (the per-seed
    choice is choose_flood_level()); ties go to the smallest b. Columns: the setting
    columns, `flood_method`, `flood_level`.
    """
    keys = [*SETTING_COLUMNS, "flood_method"]
    means = flooded.groupby([*keys, "flood_level"], as_index=False, dropna=False)[
        "final_val_acc"
    ].mean()
    means = means.sort_values(["final_val_acc", "flood_level"], ascending=[False, True])
    return means.drop_duplicates(keys)[[*keys, "flood_level"]].reset_index(drop=True)


def compare_measure(summary: pd.DataFrame, measure: str) -> pd.DataFrame:
    """Like compare() with early stopping off, for an end-of-run `measure` of the summary.

    The flooded run of each seed is the one whose b was chosen by final validation
    accuracy; its `measure` is paired with that of the seed's b = 0 run. Same columns as
    compare(), the means and differences in the measure's units.
    """
    present = summary[summary[measure].notna()] if measure in summary else summary.iloc[:0]
    renamed = present.drop(columns=["final_test_acc", "best_test_acc"], errors="ignore")
    renamed = renamed.assign(final_test_acc=renamed[measure], best_test_acc=renamed[measure])
    table = compare(renamed) if len(renamed) else pd.DataFrame(columns=_COMPARE_COLUMNS)
    return table[~table["early_stopping"].astype(bool)].reset_index(drop=True)


def level_trend(chosen: pd.DataFrame) -> pd.DataFrame:
    """Per setting (less its label noise) and method, early stopping off: the chosen b at
    the highest noise minus at the lowest, paired by seed, Holm over the rows.

    Columns: the group, `low`, `high` (the two noise levels), `n_pairs`, `mean_difference`,
    `ci_low`, `ci_high`, `p_value`, `p_holm`.
    """
    off = chosen[~chosen["early_stopping"].astype(bool)]
    group = [c for c in SETTING_COLUMNS if c != "label_noise"] + ["flood_method"]
    rows = []
    for key, block in off.groupby(group, dropna=False, sort=True):
        noise = sorted(block["label_noise"].unique())
        if len(noise) < 2:
            continue
        low = block[block["label_noise"] == noise[0]][["seed", "flood_level"]]
        high = block[block["label_noise"] == noise[-1]][["seed", "flood_level"]]
        pairs = high.merge(low, on="seed", suffixes=("_high", "_low"))
        result = paired_t_test(
            pairs["flood_level_high"].to_numpy(), pairs["flood_level_low"].to_numpy()
        )
        rows.append(
            {
                **dict(zip(group, key, strict=True)),
                "low": noise[0],
                "high": noise[-1],
                "n_pairs": result.n,
                "mean_difference": result.mean_difference,
                "ci_low": result.ci_low,
                "ci_high": result.ci_high,
                "p_value": result.p_value,
            }
        )
    table = pd.DataFrame(rows)
    if len(table):
        table["p_holm"] = holm(list(table["p_value"]))
    return table
