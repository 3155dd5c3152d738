"""The facts at the top of the report: what was run, where, and the headline finding.

All of it is computed from the two tables; the headline is plain text that a reader can
check against the main table below it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from flooding.aggregate import ENVIRONMENT_COLUMNS, VERSION_PREFIX
from flooding.report import verdicts
from flooding.report.inference import ALPHA
from flooding.report.settings import plural
from flooding.report.stats import SETTING_COLUMNS

# The run.json facts shown one by one; started and finished are shown as one time span.
SPAN_COLUMNS = ("started", "finished")


@dataclass(frozen=True)
class Counts:
    datasets: int
    architectures: int
    settings: int
    runs: int
    by_status: tuple[tuple[str, int], ...]
    training_hours: float


def counts(metrics: pd.DataFrame, summary: pd.DataFrame) -> Counts:
    by_status = summary["status"].value_counts().sort_index()
    return Counts(
        datasets=summary["dataset"].nunique(),
        architectures=summary["arch"].nunique(),
        settings=len(summary[list(SETTING_COLUMNS)].drop_duplicates()),
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


def headline(comparison: pd.DataFrame, options: pd.DataFrame, trend: pd.DataFrame) -> list[str]:
    """Plain sentences: each comparison counted by its category (verdicts.category), with
    the baseline of every gain named; then the trend of b with label noise (RQ2)."""
    tested = comparison[comparison["has_flooding"] & (comparison["n_pairs"] > 0)]
    if tested.empty:
        return [
            "No comparison is possible: no setting has completed runs both with b = 0 "
            "and with b > 0 for the same seed."
        ]
    sentences = []
    for method, rows in tested.groupby("flood_method", sort=True):
        sentences.append(_against_ordinary(str(method), rows))
        best = options[options["flood_method"] == method]
        if len(best):
            sentences.append(_against_best(str(method), best))
    if len(trend):
        categories = [
            verdicts.category(p, d, ())
            for p, d in zip(trend["p_holm"], trend["mean_difference"], strict=True)
        ]
        sentences.append(
            f"The b chosen by validation, highest label noise against lowest (paired by seed, "
            f"early stopping off), in {plural(len(trend), 'setting')} and method: "
            f"{plural(categories.count(verdicts.GAIN), 'significant rise')}, "
            f"{plural(categories.count(verdicts.LOSS), 'significant fall')}, "
            f"{categories.count(verdicts.NO_EVIDENCE)} with no evidence either way."
        )
    return sentences


def _classes(categories: list[str]) -> str:
    return ", ".join(f"{name}: {categories.count(name)}" for name in verdicts.CATEGORIES)


def _against_ordinary(method: str, rows: pd.DataFrame) -> str:
    categories = [
        verdicts.category(p, d, b)
        for p, d, b in zip(
            rows["p_holm"], rows["mean_difference"], rows["chosen_levels"], strict=True
        )
    ]
    text = (
        f"{method} with b chosen by validation against ordinary training (b = 0, the same "
        f"early stopping), {plural(len(rows), 'comparison')} (paired t-test over seeds, Holm p < "
        f"{ALPHA:g} over the RQ1 tables): {_classes(categories)}."
    )
    gains = rows[[c == verdicts.GAIN for c in categories]]
    if len(gains):
        best = gains.loc[gains["mean_difference"].idxmax()]
        text += (
            f" Largest significant gain: {100 * best['mean_difference']:+.2f} points"
            f"{_interval(best)} over ordinary training with early stopping "
            f"{'on' if best['early_stopping'] else 'off'}, on {best['dataset']} / {best['arch']}"
            f" at label noise {best['label_noise']:g}."
        )
    return text


def _against_best(method: str, options: pd.DataFrame) -> str:
    categories = list(options["category"])
    text = (
        f"{method}'s best option against the best option without flooding (of early stopping "
        f"and the regularisers the grid varies), {plural(len(options), 'group')} of settings "
        f"(Holm over the RQ3 table): {_classes(categories)}."
    )
    gains = options[options["category"] == verdicts.GAIN]
    if len(gains):
        best = gains.loc[gains["mean_difference"].idxmax()]
        text += (
            f" Largest significant gain: {100 * best['mean_difference']:+.2f} points"
            f"{_interval(best)} of {best['flooding']} over {best['plain']}, on "
            f"{best['dataset']} / {best['arch']} at label noise {best['label_noise']:g}."
        )
    return text


def _interval(row: pd.Series) -> str:
    if pd.isna(row["ci_low"]):
        return ""
    return f" (95 % interval {100 * row['ci_low']:+.2f} to {100 * row['ci_high']:+.2f})"


def warnings(
    edges: pd.DataFrame, unfinished: pd.DataFrame, completed_runs: int, idle: pd.DataFrame
) -> list[str]:
    """Plain sentences on what the grid could not settle: edges, training length, and the
    levels left out of the choice of b."""
    sentences = []
    if len(idle):
        kinds = idle["reason"].value_counts()
        listed = ", ".join(f"{n} {reason}" for reason, n in kinds.items())
        sentences.append(
            f"Warning: {len(idle)} flood levels of some settings did nothing flooding does "
            f"({listed}); they are left out of the choice of b (see the grid warnings)."
        )
    if len(edges):
        seeds = int(edges["at_top"].sum() + edges["at_bottom"].sum())
        sentences.append(
            f"Warning: in {len(edges)} comparisons the chosen b sits on the grid's edge for "
            f"some seeds ({seeds} choices in all); those b values are bounds, and the grid "
            "needs the levels named under 'Is the grid wide and long enough?'."
        )
    if len(unfinished):
        runs = int(unfinished["at_last"].sum())
        blocks = ", ".join(
            f"{d} / {a}" for d, a in zip(unfinished["dataset"], unfinished["arch"], strict=True)
        )
        sentences.append(
            f"Warning: {runs} of all {completed_runs} completed runs ({blocks}) had their best "
            "validation accuracy at their last epoch: train longer."
        )
    return sentences
