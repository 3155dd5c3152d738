"""Everything the report computes from the two tables, computed once."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from flooding.efficiency import summarise
from flooding.metrics import SHARPNESS_RADIUS
from flooding.report import combinations, diagnostics, findings, reference, searched, stats
from flooding.report.changes import Changes, changes
from flooding.report.methods_compared import sample_levels
from flooding.search import TABLE_COLUMNS as SEARCH_COLUMNS

# The summary column of the engine's flatness measure (flooding.flatness), when recorded.
SHARPNESS = "sharpness"
SHARPNESS_MEANING = (
    "the mean increase of the training loss, in nats, under random filter-normalised weight "
    f"perturbations of relative size {SHARPNESS_RADIUS:g} (Li et al. 2018), at the end of "
    "training; lower is flatter"
)


@dataclass(frozen=True)
class Analysis:
    metrics: pd.DataFrame
    summary: pd.DataFrame  # every run, as aggregated
    idle: pd.DataFrame  # diagnostics.idle_levels(): left out of everything below
    kept: pd.DataFrame  # the summary less the runs of idle levels
    comparison: pd.DataFrame  # stats.compare()
    options: pd.DataFrame  # combinations.best_options() (RQ3)
    chosen: pd.DataFrame  # stats.chosen_levels(), both early-stopping choices
    trend: pd.DataFrame  # stats.level_trend() of `chosen` (RQ2)
    runs: pd.DataFrame  # stats.by_method() of the completed runs
    edges: pd.DataFrame  # diagnostics.edge_of_grid()
    unfinished: pd.DataFrame  # diagnostics.unfinished_training()
    refs: pd.DataFrame  # reference.references()
    descents: pd.DataFrame  # diagnostics.descent_table()
    search: pd.DataFrame  # the workflow's search table (flooding.search), empty without one
    predictions: pd.DataFrame  # searched.predictions(): predicted b against validated b
    sharpness: pd.DataFrame | None  # stats.compare_measure() where measured
    changes: Changes | None
    # AdaFlood's levels per training sample (methods_compared.sample_levels), or empty.
    levels: pd.DataFrame
    # A cluster run's account summed per rule and dataset/architecture
    # (flooding.efficiency.summarise); None without an account.
    efficiency: pd.DataFrame | None

    @classmethod
    def of(
        cls,
        metrics: pd.DataFrame,
        summary: pd.DataFrame,
        previous: pd.DataFrame | None,
        aux: pd.DataFrame | None = None,
        search: pd.DataFrame | None = None,
        efficiency: pd.DataFrame | None = None,
    ):
        search = pd.DataFrame(columns=list(SEARCH_COLUMNS)) if search is None else search
        idle = diagnostics.idle_levels(metrics, summary)
        kept = stats.without_levels(summary, idle)
        chosen = pd.concat(
            [stats.chosen_levels(kept, early_stopping=s) for s in (False, True)],
            ignore_index=True,
        )
        runs = stats.by_method(stats.completed(kept))
        comparison = stats.compare(kept)
        measured = SHARPNESS in kept and kept[SHARPNESS].notna().any()
        refs = reference.references(summary)
        return cls(
            metrics=metrics,
            summary=summary,
            idle=idle,
            kept=kept,
            comparison=comparison,
            options=combinations.best_options(kept, comparison),
            chosen=chosen,
            trend=stats.level_trend(chosen),
            runs=runs,
            edges=searched.without_searched_edges(diagnostics.edge_of_grid(runs, chosen), search),
            unfinished=diagnostics.unfinished_training(summary),
            refs=refs,
            descents=diagnostics.descent_table(metrics, runs),
            search=search,
            predictions=searched.predictions(metrics, runs, refs, search),
            sharpness=stats.compare_measure(kept, SHARPNESS) if measured else None,
            # Every run counts in what changed; idle levels only leave the answers.
            changes=None if previous is None else changes(previous, summary, idle),
            levels=sample_levels(aux if aux is not None else pd.DataFrame(), summary),
            efficiency=None if efficiency is None or efficiency.empty else summarise(efficiency),
        )

    def headline(self) -> list[str]:
        return [
            *findings.headline(self.comparison, self.options, self.trend),
            *findings.warnings(
                self.edges, self.unfinished, len(stats.completed(self.summary)), self.idle
            ),
        ]
