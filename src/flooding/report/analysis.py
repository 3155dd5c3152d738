"""Everything the report computes from the two tables, computed once."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from flooding.report import diagnostics, findings, reference, stats
from flooding.report.changes import Changes, changes

# The summary column of the engine's flatness measure (flooding.flatness), when recorded.
SHARPNESS = "sharpness"


@dataclass(frozen=True)
class Analysis:
    metrics: pd.DataFrame
    summary: pd.DataFrame
    comparison: pd.DataFrame  # stats.compare()
    chosen: pd.DataFrame  # stats.chosen_levels(), both early-stopping choices
    runs: pd.DataFrame  # stats.by_method() of the completed runs
    edges: pd.DataFrame  # diagnostics.edge_of_grid()
    unfinished: pd.DataFrame  # diagnostics.unfinished_training()
    refs: pd.DataFrame  # reference.references()
    descents: pd.DataFrame  # diagnostics.descent_table()
    sharpness: pd.DataFrame | None  # stats.compare_measure() where measured
    changes: Changes | None

    @classmethod
    def of(cls, metrics: pd.DataFrame, summary: pd.DataFrame, previous: pd.DataFrame | None):
        chosen = pd.concat(
            [stats.chosen_levels(summary, early_stopping=s) for s in (False, True)],
            ignore_index=True,
        )
        runs = stats.by_method(stats.completed(summary))
        measured = SHARPNESS in summary and summary[SHARPNESS].notna().any()
        return cls(
            metrics=metrics,
            summary=summary,
            comparison=stats.compare(summary),
            chosen=chosen,
            runs=runs,
            edges=diagnostics.edge_of_grid(runs, chosen),
            unfinished=diagnostics.unfinished_training(summary),
            refs=reference.references(summary),
            descents=diagnostics.descent_table(metrics, runs),
            sharpness=stats.compare_measure(summary, SHARPNESS) if measured else None,
            changes=None if previous is None else changes(previous, summary),
        )

    def headline(self) -> list[str]:
        return [
            *findings.headline(self.comparison, self.chosen),
            *findings.warnings(self.edges, self.unfinished, self.descents),
        ]
