"""`flooding report`: the benchmark's answer to the paper's questions, as one HTML file.

Built from the two aggregated Parquet tables only, so a copy of `results/` is enough to
rebuild it anywhere:

    flooding report --metrics results/metrics.parquet --summary results/summary.parquet \\
        --out reports/report.html [--compare OLD_SUMMARY | --previous KEPT_SUMMARY] \\
        [--search results/search.parquet] [--efficiency results/efficiency.parquet]

`--compare` adds what changed since an earlier summary. `--previous` does the same with the
summary kept by the last report (when there is one), then keeps this summary there for the
next: the workflow's report rule uses it so that each report says what is new.
`--efficiency`, the account of a cluster run's jobs (flooding.efficiency), adds what they
asked for against what they used.
"""

from __future__ import annotations

import argparse
import math
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from flooding.config import RunConfig
from flooding.metrics import atomic_write
from flooding.report.page import render
from flooding.report.plots import CURVE_METRICS
from flooding.report.stats import as_levels

DEFAULT_TITLE = "Flooding benchmark report"
# The metric columns the report reads; the rest of metrics.parquet is never loaded.
METRIC_COLUMNS = ("run_dir", "epoch", *CURVE_METRICS, "epoch_seconds")

__all__ = ["DEFAULT_TITLE", "METRIC_COLUMNS", "build_report", "main", "read_metrics"]


def build_report(
    metrics: pd.DataFrame,
    summary: pd.DataFrame,
    out: Path,
    title: str = DEFAULT_TITLE,
    built_at: datetime | None = None,
    previous: pd.DataFrame | None = None,
    search: pd.DataFrame | None = None,
    aux: pd.DataFrame | None = None,
    efficiency: pd.DataFrame | None = None,
) -> Path:
    """Write the report for these tables to `out` (folders created) and return `out`.

    `previous`, an earlier summary, adds a section on what changed since; `search`, the
    workflow's results/search.parquet, the rounds of each search for b; `efficiency`, a
    cluster run's account (flooding.efficiency), what its jobs used.
    """
    built_at = built_at or datetime.now(timezone.utc)
    # metrics: read by run_dir, no settings needed
    summary = as_levels(with_every_setting(summary))
    previous = None if previous is None else as_levels(with_every_setting(previous))
    if search is not None:
        search = with_every_setting(search)
    page = render(metrics, summary, title, built_at, previous, aux, search, efficiency)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    return out


def with_every_setting(table: pd.DataFrame) -> pd.DataFrame:
    """The table with a column for every RunConfig field: one that results written before
    the field existed lack takes its default, as RunConfig.from_dict gives a missing field."""
    defaults = RunConfig().to_dict()
    missing = {name: value for name, value in defaults.items() if name not in table.columns}
    return table.assign(**missing) if missing else table


def read_metrics(path: Path) -> pd.DataFrame:
    """The columns of metrics.parquet that the report uses, NaN where a column is absent.

    A grid whose runs all failed before their first epoch aggregates to a table without
    metric columns; its report still lists the failures.
    """
    present = set(pq.read_schema(path).names)
    metrics = pd.read_parquet(path, columns=[c for c in METRIC_COLUMNS if c in present])
    for column in METRIC_COLUMNS:
        if column not in present:
            metrics[column] = math.nan
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="flooding report",
        description="Build the self-contained HTML report from the aggregated results.",
    )
    parser.add_argument("--metrics", required=True, type=Path, help="results/metrics.parquet")
    parser.add_argument("--summary", required=True, type=Path, help="results/summary.parquet")
    parser.add_argument("--out", required=True, type=Path, help="the HTML file to write")
    parser.add_argument("--title", default=DEFAULT_TITLE, help="page title")
    earlier = parser.add_mutually_exclusive_group()
    earlier.add_argument(
        "--compare", type=Path, metavar="OLD_SUMMARY", help="an earlier summary.parquet to compare"
    )
    earlier.add_argument(
        "--previous",
        type=Path,
        metavar="KEPT_SUMMARY",
        help="compare with this file if it exists, then replace it with --summary",
    )
    parser.add_argument(
        "--search",
        type=Path,
        metavar="SEARCH_TABLE",
        help="results/search.parquet: the rounds of each search for b (when b was searched)",
    )
    parser.add_argument(
        "--aux-losses",
        type=Path,
        metavar="FILE",
        help="AdaFlood's held-out losses (results/aux_losses.parquet), for its levels' figure",
    )
    parser.add_argument(
        "--efficiency",
        type=Path,
        metavar="FILE",
        help="a cluster run's efficiency account (results/efficiency.parquet): what its jobs "
        "asked for against what they used",
    )
    args = parser.parse_args(argv)
    metrics = read_metrics(args.metrics)
    summary = pd.read_parquet(args.summary)
    old = args.compare or args.previous
    previous = pd.read_parquet(old) if old and (args.compare or old.exists()) else None
    search = pd.read_parquet(args.search) if args.search else None
    aux = pd.read_parquet(args.aux_losses) if args.aux_losses else None
    efficiency = pd.read_parquet(args.efficiency) if args.efficiency else None
    out = build_report(
        metrics,
        summary,
        args.out,
        title=args.title,
        previous=previous,
        aux=aux,
        search=search,
        efficiency=efficiency,
    )
    if args.previous:
        # After the report is written: a failed report keeps the older summary to compare.
        args.previous.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.previous, lambda tmp: shutil.copyfile(args.summary, tmp))
    print(f"report: {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0
