"""The facts at the top of the report: what was run, where, and the headline finding.

All of it is computed from the two tables; the headline is plain text that a reader can
check against the main table below it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from flooding.aggregate import ENVIRONMENT_COLUMNS, VERSION_PREFIX
from flooding.report.inference import ALPHA
from flooding.report.stats import SETTING_COLUMNS

# The run.json facts shown one by one; started and finished are shown as one time span.
SPAN_COLUMNS = ("started", "finished")


@dataclass(frozen=True)
class Counts:
    datasets: int
    architectures: int
    settings: int
    flood_levels: int
    methods: tuple[str, ...]
    seeds: int
    runs: int
    by_status: tuple[tuple[str, int], ...]
    training_hours: float


def counts(metrics: pd.DataFrame, summary: pd.DataFrame) -> Counts:
    flooded = summary[summary["flood_level"] > 0]
    by_status = summary["status"].value_counts().sort_index()
    return Counts(
        datasets=summary["dataset"].nunique(),
        architectures=summary["arch"].nunique(),
        settings=len(summary[list(SETTING_COLUMNS)].drop_duplicates()),
        flood_levels=flooded["flood_level"].nunique(),
        methods=tuple(sorted(flooded["flood_method"].unique().tolist())),
        seeds=summary["seed"].nunique(),
        runs=len(summary),
        by_status=tuple((str(k), int(v)) for k, v in by_status.items()),
        training_hours=float(metrics["epoch_seconds"].sum(skipna=True)) / 3600.0,
    )


def environment(summary: pd.DataFrame) -> list[tuple[str, str]]:
    """(label, value) pairs: time span, devices, hosts and versions, where recorded."""
    facts = []
    if set(SPAN_COLUMNS) <= set(summary.columns):
        started = pd.to_datetime(summary["started"], utc=True, errors="coerce").min()
        finished = pd.to_datetime(summary["finished"], utc=True, errors="coerce").max()
        if not (pd.isna(started) or pd.isna(finished)):
            span = f"{started:%Y-%m-%d %H:%M} to {finished:%Y-%m-%d %H:%M} UTC"
            facts.append(("runs", span))
    columns = [c for c in ENVIRONMENT_COLUMNS if c in summary.columns and c not in SPAN_COLUMNS]
    columns += sorted(c for c in summary.columns if c.startswith(VERSION_PREFIX))
    for column in columns:
        values = summary[column].dropna().astype(str).value_counts()
        if len(values):
            label = column.removeprefix(VERSION_PREFIX)  # "version_torch" -> "torch"
            facts.append((label, ", ".join(f"{v} ({n} runs)" for v, n in values.items())))
    return facts


def headline(comparison: pd.DataFrame, chosen: pd.DataFrame) -> list[str]:
    """Plain sentences: does flooding help (RQ1), and does b grow with label noise (RQ2)."""
    sentences = []
    tested = comparison[comparison["has_flooding"] & (comparison["n_pairs"] > 0)]
    if tested.empty:
        return [
            "No comparison is possible: no setting has completed runs both with b = 0 "
            "and with b > 0 for the same seed."
        ]
    for method, rows in tested.groupby("flood_method", sort=True):
        sentences.append(_method_sentence(str(method), rows))
    trend = _noise_sentence(chosen)
    if trend:
        sentences.append(trend)
    return sentences


def _method_sentence(method: str, rows: pd.DataFrame) -> str:
    diff = rows["mean_difference"]
    adjusted = pd.to_numeric(rows["p_holm"], errors="coerce")
    significant = adjusted < ALPHA
    untested = int(adjusted.isna().sum())
    up, down = diff > 0, diff < 0
    text = (
        f"With {method} and b chosen by validation accuracy, the mean test accuracy rose in "
        f"{int(up.sum())} of {len(rows)} comparisons ({int((up & significant).sum())} "
        f"significant at p < {ALPHA:g} after Holm's correction over the report's "
        f"comparisons, paired t-test over seeds) and fell in "
        f"{int(down.sum())} ({int((down & significant).sum())} significant)"
    )
    same = int((diff == 0).sum())
    text += f"; {same} unchanged." if same else "."
    if not significant.any():
        text += " No comparison found a significant difference."
    if untested:
        text += f" {untested} had no test (too few seeds or no spread; see the table)."
    best = rows.loc[diff.idxmax()]
    if best["mean_difference"] > 0:
        text += (
            f" The largest gain, {100 * best['mean_difference']:+.2f} points"
            f"{_interval(best)}, is on {best['dataset']} with {best['arch']} (early stopping "
            f"{'on' if best['early_stopping'] else 'off'})."
        )
    return text


def _interval(row: pd.Series) -> str:
    if pd.isna(row["ci_low"]):
        return ""
    return f" (95 % interval {100 * row['ci_low']:+.2f} to {100 * row['ci_high']:+.2f})"


def _noise_sentence(chosen: pd.DataFrame) -> str:
    """Compare the mean chosen b at the lowest and highest label noise of each block."""
    rises, blocks = 0, 0
    for _, block in chosen.groupby(["dataset", "arch", "flood_method"], sort=True):
        noise = block.groupby("label_noise")["flood_level"].mean().sort_index()
        if len(noise) < 2 or math.isclose(noise.iloc[0], noise.iloc[-1]):
            blocks += len(noise) >= 2
            continue
        blocks += 1
        rises += noise.iloc[-1] > noise.iloc[0]
    if blocks == 0:
        return ""
    return (
        f"The mean chosen b was higher at the highest label noise than at the lowest in "
        f"{rises} of {blocks} dataset, architecture and method combinations with several "
        f"noise levels (early stopping off)."
    )


def warnings(edges: pd.DataFrame, unfinished: pd.DataFrame, descents: pd.DataFrame) -> list[str]:
    """Plain sentences on what the grid could not settle: edges, training length, RQ4."""
    sentences = []
    if len(edges):
        seeds = int(edges["at_top"].sum() + edges["at_bottom"].sum())
        sentences.append(
            f"Warning: in {len(edges)} comparisons the chosen b sits on the grid's edge for "
            f"some seeds ({seeds} choices in all); those b values are bounds, and the grid "
            "needs the levels named under 'Is the grid wide and long enough?'."
        )
    if len(unfinished):
        runs, total = int(unfinished["at_last"].sum()), int(unfinished["runs"].sum())
        sentences.append(
            f"Warning: {runs} of {total} completed runs had their best validation accuracy at "
            "their last epoch: train longer."
        )
    flooded = descents[descents["flood_level"] > 0]
    base = descents[descents["flood_level"] == 0]
    if len(flooded):
        found, found_base = int(flooded["found"].sum()), int(base["found"].sum())
        if found == 0:
            sentences.append(
                f"No double descent of the mean test loss was found at the validated b in any "
                f"of {len(flooded)} settings (at b = 0: {found_base} of {len(base)})."
            )
        else:
            sentences.append(
                f"A double descent of the mean test loss was found at the validated b in "
                f"{found} of {len(flooded)} settings, and at b = 0 in {found_base} of {len(base)}."
            )
    return sentences
