"""RQ3: which combination of flooding and the other regularisers is best, and by how much.

Within a group of settings that differ only in the regularisers the grid varies (weight
decay, augmentation) the report has, per seed, one test accuracy for each option: every
combination of those regularisers, early stopping on or off, with b = 0 (no flooding) or
with b chosen by validation (flooding; b = 0 stays a candidate). Per group and method:

- the best option without flooding and the best with it: the highest mean test accuracy
  over seeds (a choice on the test set: it flatters both sides alike, and the b of the
  flooded options is still chosen on validation);
- their paired difference over the seeds they share (flooding.report.inference), Holm over
  the groups: does flooding add anything to the best one can do without it?
- the main table's row for flooding added to that best non-flooded option (same weight
  decay, augmentation and early stopping), which compares with b = 0 of the same training.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flooding.report import verdicts
from flooding.report.inference import holm, paired_t_test
from flooding.report.settings import RQ3_COLUMNS, label
from flooding.report.stats import (
    SETTING_COLUMNS,
    by_method,
    choose_flood_level,
    completed,
    score_columns,
)

# What an option is made of, beyond the group: the grid's regularisers, early stopping,
# and flooding on or off.
OPTION_COLUMNS = (*RQ3_COLUMNS, "early_stopping", "flooded")
GROUP_COLUMNS = (*(c for c in SETTING_COLUMNS if c not in RQ3_COLUMNS), "flood_method")


def seed_scores(summary: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy per group, option and seed (completed runs only).

    Columns: the setting columns, `flood_method`, `early_stopping`, `flooded`, `seed`,
    `flood_level` (0, or the b chosen for that seed), `test_acc`. Options with flooding
    exist only where the setting has a completed run with b > 0.
    """
    runs = by_method(completed(summary))
    keys = [*SETTING_COLUMNS, "flood_method"]
    with_flooding = runs[runs["flood_level"] > 0][keys].drop_duplicates()
    parts = []
    for early_stopping in (False, True):
        _, test = score_columns(early_stopping)
        base = runs[runs["flood_level"] == 0][[*keys, "seed", "flood_level", test]]
        base = base.rename(columns={test: "test_acc"})
        chosen = choose_flood_level(runs.merge(with_flooding, on=keys), early_stopping)
        parts.append(base.assign(flooded=False, early_stopping=early_stopping))
        parts.append(chosen.assign(flooded=True, early_stopping=early_stopping))
    columns = [*keys, "early_stopping", "flooded", "seed", "flood_level", "test_acc"]
    return pd.concat(parts, ignore_index=True)[columns]


def option_name(option: dict, varied: list[str]) -> str:
    """ "flooding + early stopping + weight decay 0.0005", naming only the varied regularisers."""
    parts = ["flooding" if option["flooded"] else "ordinary"]
    if option["early_stopping"]:
        parts.append("early stopping")
    for column in RQ3_COLUMNS:  # the grid's regulariser axes, in declaration order
        if column not in varied:
            continue
        if isinstance(option[column], (bool, np.bool_)):
            if option[column]:
                parts.append(label(column))  # "augment"; left out when off
        else:
            parts.append(f"{label(column)} {option[column]:g}")
    if len(parts) > 1 and not option["flooded"]:
        parts = parts[1:]  # "early stopping", not "ordinary + early stopping"
    return " + ".join(parts)


def best_options(summary: pd.DataFrame, comparison: pd.DataFrame) -> pd.DataFrame:
    """Per group and method: the best option without and with flooding, and their test.

    `comparison` is stats.compare() of the same summary. Columns: GROUP_COLUMNS, `varied`
    (the regularisers that take several values in the group), `plain` and `flooding`
    (option names), `plain_mean`, `plain_std`, `flooding_mean`, `flooding_std`,
    `best` (the name of the better of the two), `n_pairs`, `mean_difference` (flooding
    minus plain), `ci_low`, `ci_high`, `p_value`, `test_note`, `p_holm` (over this
    table), `chosen_levels` (the best flooded option's b per paired seed), `category`
    (verdicts.category), and `added_*`: the main table's row for flooding added to the
    best plain option (`added_difference`, `added_ci_low`, `added_ci_high`,
    `added_p_holm`, `added_category`; NaN where that option has no flooded runs).
    """
    scores = seed_scores(summary)
    groups = list(GROUP_COLUMNS)
    options = [*RQ3_COLUMNS, "early_stopping", "flooded"]
    rows = []
    for key, group in scores.groupby(groups, dropna=False, sort=True):
        varied = [c for c in RQ3_COLUMNS if group[c].nunique(dropna=False) > 1]
        means = group.groupby(options, dropna=False)["test_acc"].agg(["mean", "std"]).reset_index()
        # Best first; among equals the plainest option (no regulariser, no early stopping).
        means = means.sort_values(["mean", *options], ascending=[False, *[True] * len(options)])
        plain = means[~means["flooded"]]
        flooded = means[means["flooded"]]
        if plain.empty or flooded.empty:
            continue
        best_plain, best_flooded = plain.iloc[0].to_dict(), flooded.iloc[0].to_dict()
        pairs = _seeds(group, best_plain).merge(
            _seeds(group, best_flooded), on="seed", suffixes=("_plain", "_flooding")
        )
        result = paired_t_test(
            pairs["test_acc_flooding"].to_numpy(), pairs["test_acc_plain"].to_numpy()
        )
        record = dict(zip(groups, key, strict=True))
        name_plain, name_flooded = (
            option_name(best_plain, varied),
            option_name(best_flooded, varied),
        )
        rows.append(
            {
                **record,
                "varied": tuple(varied),
                "plain": name_plain,
                "flooding": name_flooded,
                "plain_mean": best_plain["mean"],
                "plain_std": best_plain["std"],
                "flooding_mean": best_flooded["mean"],
                "flooding_std": best_flooded["std"],
                "best": name_flooded if best_flooded["mean"] > best_plain["mean"] else name_plain,
                "n_pairs": result.n,
                "mean_difference": result.mean_difference,
                "ci_low": result.ci_low,
                "ci_high": result.ci_high,
                "p_value": result.p_value,
                "test_note": result.note,
                "chosen_levels": tuple(sorted(pairs["flood_level_flooding"].tolist())),
                **_added(comparison, record, best_plain),
            }
        )
    adjusted = holm([r["p_value"] for r in rows])
    for row, p in zip(rows, adjusted, strict=True):
        row["p_holm"] = p
        row["category"] = verdicts.category(p, row["mean_difference"], row["chosen_levels"])
    return pd.DataFrame(rows, columns=_COLUMNS)


def _seeds(group: pd.DataFrame, option: dict) -> pd.DataFrame:
    chosen = pd.Series(True, index=group.index)
    for column in (*RQ3_COLUMNS, "early_stopping", "flooded"):
        chosen &= group[column] == option[column]
    return group.loc[chosen, ["seed", "flood_level", "test_acc"]]


def _added(comparison: pd.DataFrame, record: dict, plain: dict) -> dict:
    """The main table's comparison for flooding added to the best plain option."""
    match = pd.Series(True, index=comparison.index)
    for column, wanted in (*record.items(), *((c, plain[c]) for c in RQ3_COLUMNS)):
        match &= comparison[column] == wanted
    match &= comparison["early_stopping"] == plain["early_stopping"]
    rows = comparison[match & comparison["has_flooding"].astype(bool)]
    if rows.empty:
        return {name: float("nan") for name in _ADDED} | {"added_category": ""}
    row = rows.iloc[0]
    return {
        "added_difference": row["mean_difference"],
        "added_ci_low": row["ci_low"],
        "added_ci_high": row["ci_high"],
        "added_p_holm": row["p_holm"],
        "added_category": verdicts.category(
            row["p_holm"], row["mean_difference"], row["chosen_levels"]
        ),
    }


_ADDED = ("added_difference", "added_ci_low", "added_ci_high", "added_p_holm")
_COLUMNS = [
    *GROUP_COLUMNS,
    "varied",
    "plain",
    "flooding",
    "plain_mean",
    "plain_std",
    "flooding_mean",
    "flooding_std",
    "best",
    "n_pairs",
    "mean_difference",
    "ci_low",
    "ci_high",
    "p_value",
    "test_note",
    "p_holm",
    "chosen_levels",
    "category",
    *_ADDED,
    "added_category",
]
