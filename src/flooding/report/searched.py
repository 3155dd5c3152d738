"""b found by the search and b predicted without one (RQ2: how should b be chosen?).

- Predicted b: from the b = 0 runs alone, a level of every levels: auto search's first
  round (flooding.search.predicted_level: their mean training loss at the epoch of best
  validation accuracy, below the untrained loss); and the reference loss of the label
  noise (flooding.report.reference), where the dataset has one.
- Validated b: the level b > 0 with the best mean final validation accuracy over seeds
  (stats.validated_levels), among the levels a search tried or a grid listed.

Each is scored by the mean final test accuracy of the tried level nearest to it (the
predicted b is itself a level of a search's first round, so there it is exact), so that a
reader sees what skipping the search would have cost.
"""

from __future__ import annotations

import math

import pandas as pd

from flooding.data.registry import DATASETS
from flooding.methods import METHODS
from flooding.report.stats import SETTING_COLUMNS, validated_levels
from flooding.search import UPPER_END, SearchError, predicted_level, untrained_loss

KEYS = [*SETTING_COLUMNS, "flood_method"]
PREDICTION_COLUMNS = (
    *KEYS,
    "predicted_level",
    "predicted_tried",
    "predicted_test",
    "reference_level",
    "reference_tried",
    "reference_test",
    "validated_level",
    "validated_test",
    "searched",
)


def _nearest(levels: pd.Series, target: float) -> float:
    if math.isnan(target) or levels.empty:
        return math.nan
    return float(levels.iloc[(levels - target).abs().argsort().iloc[0]])


def predictions(
    metrics: pd.DataFrame, runs: pd.DataFrame, refs: pd.DataFrame, search: pd.DataFrame
) -> pd.DataFrame:
    """Per setting and method with flooded runs: predicted b, the reference loss and the
    validated b, each with the mean final test accuracy at the tried level nearest to it.

    `runs` from stats.by_method() (completed runs, b = 0 under every method), `refs` from
    reference.references(), `search` the workflow's search table (or empty).
    """
    if runs.empty or "best_train_loss" not in runs or "train_loss" not in metrics:
        return pd.DataFrame(columns=list(PREDICTION_COLUMNS))  # tables from before the search
    # Methods with a flood level b only (AdaFlood's gamma is no loss level).
    takes_level = runs["flood_method"].map(lambda m: m not in METHODS or METHODS[m].takes_level)
    runs = runs[takes_level]
    start = metrics.loc[metrics["epoch"] == 0, ["run_dir", "train_loss"]]
    start = start.rename(columns={"train_loss": "start_loss"})
    runs = runs.merge(start, on="run_dir", how="left")
    flooded = runs[runs["flood_level"] > 0]
    validated = validated_levels(flooded).rename(columns={"flood_level": "validated_level"})
    ref_of = refs.groupby(["dataset", "label_noise"])["reference"].first()
    rows = []
    for key, block in runs.groupby(KEYS, dropna=False, sort=True):
        record = dict(zip(KEYS, key, strict=True))
        base = block[block["flood_level"] == 0]
        levels = block.groupby("flood_level")["final_test_acc"].mean()
        tried = pd.Series(levels.index[levels.index > 0], dtype=float)
        if base.empty or tried.empty:
            continue
        spec = DATASETS.get(str(record["dataset"]))
        upper = untrained_loss(spec.num_classes if spec else 2, list(base["start_loss"]))
        try:
            predicted = predicted_level(list(base["best_train_loss"]), upper)
        except SearchError:
            continue
        reference = float(ref_of.get((record["dataset"], record["label_noise"]), math.nan))
        chosen = validated.merge(pd.DataFrame([record]), on=KEYS)["validated_level"]
        near_p, near_r = _nearest(tried, predicted), _nearest(tried, reference)
        b = float(chosen.iloc[0])
        rows.append(
            {
                **record,
                "predicted_level": predicted,
                "predicted_tried": near_p,
                "predicted_test": float(levels[near_p]),
                "reference_level": reference,
                "reference_tried": near_r,
                "reference_test": math.nan if math.isnan(near_r) else float(levels[near_r]),
                "validated_level": b,
                "validated_test": float(levels[b]),
            }
        )
    table = pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS[:-1]))
    searched = search[KEYS].drop_duplicates().assign(searched=True) if len(search) else None
    if searched is None or table.empty:
        return table.assign(searched=False)
    table = table.merge(searched, on=KEYS, how="left")
    return table.assign(searched=table["searched"].fillna(False).astype(bool))


def prediction_sentences(table: pd.DataFrame) -> list[str]:
    """Can a user skip the search? The gaps in words, over every setting and method."""
    if table.empty:
        return ["No setting has both b = 0 runs and flooded runs: nothing to predict from."]
    n = len(table)
    sentences = []
    for name, level, test in (
        (
            "the predicted b (the b = 0 runs' training loss at their best epoch)",
            "predicted",
            "predicted_test",
        ),
        ("the reference loss", "reference", "reference_test"),
    ):
        gaps = 100 * (table["validated_test"] - table[test])
        known = gaps.dropna()
        if known.empty:
            sentences.append(f"No setting has a known {name.split(' (')[0]}.")
            continue
        mean = known.mean()
        text = (
            f"At {name}, the test accuracy was on average {abs(mean):.2f} points "
            f"{'below' if mean >= 0 else 'above'} that at the validated b, over "
            f"{len(known)} of {n} settings and methods"
        )
        if known.max() > 0:
            worst = table.loc[known.idxmax()]
            text += (
                f"; the largest shortfall {known.max():.2f} points ({worst['dataset']}, "
                f"noise {worst['label_noise']:g}, {worst['flood_method']}: b = "
                f"{worst[f'{level}_level']:.3g} against {worst['validated_level']:.3g})"
            )
        else:
            text += "; it was below in none"
        sentences.append(text + ".")
    close = int((100 * (table["validated_test"] - table["predicted_test"]) <= 0.5).sum())
    sentences.append(
        f"In {close} of {n} the predicted b came within 0.5 points of the validated b's test "
        "accuracy: there the search could have been skipped."
    )
    return sentences


def hard_bounds(search: pd.DataFrame) -> pd.DataFrame:
    """Settings and methods whose search stopped at the upper end (the untrained loss):
    the one edge a search leaves for the reader to know of."""
    if search.empty:
        return pd.DataFrame(columns=KEYS)
    stopped = search[search["stop_reason"] == UPPER_END]
    return stopped[KEYS].drop_duplicates().reset_index(drop=True)


def without_searched_edges(edges: pd.DataFrame, search: pd.DataFrame) -> pd.DataFrame:
    """Edge-of-grid warnings less those of searched settings (a search moves past an edge
    by itself, and warns only where it stopped at a hard bound, hard_bounds) and those of
    methods without a flood level (adaflood's gamma lies in [0, 1): the advice to add
    levels b above the grid does not apply to it)."""
    if not edges.empty:
        level = edges["flood_method"].map(lambda m: m not in METHODS or METHODS[m].takes_level)
        edges = edges[level].reset_index(drop=True)
    if search.empty or edges.empty:
        return edges
    searched = search[KEYS].drop_duplicates()
    kept = searched.merge(hard_bounds(search).assign(hard=True), on=KEYS, how="left")
    soft = kept[kept["hard"].isna()][KEYS]
    marked = edges.merge(soft.assign(_soft=True), on=KEYS, how="left")
    return marked[marked["_soft"].isna()].drop(columns="_soft").reset_index(drop=True)
