"""What changed since an earlier summary: runs added, removed, retrained; answers flipped.

A run is identified by its run path (readable and derived from its config). It was
retrained when the path is in both summaries but its config hash or its finish time
differs. A comparison's answer is "better", "worse" (Holm-adjusted p < ALPHA, by the sign
of the mean difference) or "no significant difference"; a cell flipped when the answer for
the same setting, method and early-stopping choice differs between the two summaries.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from flooding.report import stats
from flooding.report.inference import ALPHA


@dataclass(frozen=True)
class Changes:
    added: pd.DataFrame  # rows of the new summary
    removed: pd.DataFrame  # rows of the old summary
    retrained: pd.DataFrame  # rows of the new summary
    flipped: pd.DataFrame  # keys, `before`, `after`


def answer(p_holm: object, difference: float) -> str:
    if p_holm is None or pd.isna(p_holm) or p_holm >= ALPHA:
        return "no significant difference"
    return "better" if difference > 0 else "worse"


def _answers(comparison: pd.DataFrame) -> pd.DataFrame:
    tested = comparison[comparison["has_flooding"]]
    answers = [
        answer(p, d) for p, d in zip(tested["p_holm"], tested["mean_difference"], strict=True)
    ]
    keys = [*stats.SETTING_COLUMNS, "flood_method", "early_stopping"]
    return tested[keys].assign(answer=answers)


def changes(old: pd.DataFrame, new: pd.DataFrame, idle: pd.DataFrame | None = None) -> Changes:
    """The differences between an earlier summary `old` and this report's `new`: every
    run counts as added, removed or retrained; the answers compare without the `idle`
    levels (diagnostics.idle_levels), as the report's tables do."""
    old_paths, new_paths = set(old["run_dir"]), set(new["run_dir"])
    added = new[~new["run_dir"].isin(old_paths)]
    removed = old[~old["run_dir"].isin(new_paths)]
    identity = [
        c for c in ("run_dir", "config_hash", "finished", "status") if c in old and c in new
    ]
    both = new[identity].merge(old[identity], on="run_dir", suffixes=("", "_old"))
    differs = pd.Series(False, index=both.index)
    for column in identity[1:]:
        differs |= both[column].astype(str) != both[f"{column}_old"].astype(str)
    retrained = new[new["run_dir"].isin(set(both.loc[differs, "run_dir"]))]
    keys = [*stats.SETTING_COLUMNS, "flood_method", "early_stopping"]
    if idle is not None:
        old, new = stats.without_levels(old, idle), stats.without_levels(new, idle)
    before = _answers(stats.compare(old)).rename(columns={"answer": "before"})
    after = _answers(stats.compare(new)).rename(columns={"answer": "after"})
    joined = before.merge(after, on=keys, how="outer")
    joined[["before", "after"]] = joined[["before", "after"]].fillna("not compared")
    flipped = joined[joined["before"] != joined["after"]].reset_index(drop=True)
    return Changes(added, removed, retrained, flipped)
