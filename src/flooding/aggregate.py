"""Gather the runs of a grid into the two tables the report reads.

- `metrics.parquet`: every epoch of every run, one table (each run's metrics.parquet plus
  `run_dir` and `status`).
- `summary.parquet`: one row per run: its config, status and, for each metric, the value at
  the last epoch (`final_<m>`) and at the epoch of best validation accuracy (`best_<m>`,
  the early-stopping choice, made here from the per-epoch metrics at no training cost).

Failed and diverged runs are kept, so they show in the summary; a failed run may have no
epoch at all, and then its metrics are missing (NaN), not invented. A run whose outputs
are damaged (a truncated metrics.parquet, an unreadable run.json or one without a key the
summary needs) is named on stderr with the command that retrains it, and counts as a
failed run with no epochs; the other runs are aggregated as usual. Snakemake would not
retrain it by itself: its files are newer than their inputs.

    flooding aggregate --runs DIR [DIR ...] --metrics OUT.parquet --summary OUT.parquet
    flooding aggregate --failed SUMMARY.parquet   # the failed runs' outputs, to retrain
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from flooding.metrics import METRICS_FILE, RUN_FILE, atomic_write

# Metrics reported at the final and at the best-validation epoch.
SUMMARY_METRICS = (
    "train_loss",
    "train_acc",
    "train_loss_clean",
    "train_acc_clean",
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
)
# Where and with what each run trained (from run.json), so that the report can say it.
ENVIRONMENT_COLUMNS = ("device", "host", "started", "finished")
# Measurements of the final model and of the process, from run.json; NaN where not measured.
MEASURE_COLUMNS = ("sharpness", "sharpness_seconds", "peak_rss_mb")
# Each package version in run.json becomes a column named with this prefix.
VERSION_PREFIX = "version_"
# What the summary takes from run.json and from metrics.parquet without a default.
RECORD_KEYS = ("config", "config_hash", "status", "epochs_completed")
METRICS_COLUMNS = ("epoch", *SUMMARY_METRICS)


class DamagedRunError(ValueError):
    """A run's outputs exist but cannot be read into the tables."""


def best_epoch(metrics: pd.DataFrame) -> int | None:
    """Epoch >= 1 with the highest validation accuracy, the earliest on ties; None if none."""
    trained = metrics[(metrics["epoch"] >= 1) & metrics["val_acc"].notna()]
    if trained.empty:
        return None
    best = trained["val_acc"].max()
    return int(trained.loc[trained["val_acc"] == best, "epoch"].min())


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def summarise(run_dir: str, metrics: pd.DataFrame, record: dict[str, Any]) -> dict[str, Any]:
    """One summary row: config, record fields, best epoch, final and best metrics."""
    row: dict[str, Any] = {
        **record["config"],
        "config_hash": record["config_hash"],
        "run_dir": run_dir,
        "status": record["status"],
        "error": record.get("error"),
        "epochs_completed": int(record["epochs_completed"]),
        "bayes_error": _number(record.get("bayes_error")),
    }
    row |= {name: record.get(name) for name in ENVIRONMENT_COLUMNS}
    row |= {name: _number(record.get(name)) for name in MEASURE_COLUMNS}
    row |= {f"{VERSION_PREFIX}{k}": v for k, v in sorted(record.get("versions", {}).items())}
    chosen = best_epoch(metrics)
    row["best_epoch"] = chosen
    ordered = metrics.sort_values("epoch")
    final = ordered.iloc[-1] if len(ordered) else None
    best = ordered.loc[ordered["epoch"] == chosen].iloc[0] if chosen is not None else None
    for name in SUMMARY_METRICS:
        row[f"final_{name}"] = math.nan if final is None else float(final[name])
    for name in SUMMARY_METRICS:
        row[f"best_{name}"] = math.nan if best is None else float(best[name])
    return row


def read_run(run_dir: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A run's per-epoch metrics and its run.json record; DamagedRunError saying which
    file is damaged and how when either cannot be used."""
    directory = Path(run_dir)
    try:
        record = json.loads((directory / RUN_FILE).read_text())
    except (OSError, ValueError) as error:
        raise DamagedRunError(f"{RUN_FILE} is unreadable ({error})") from None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise DamagedRunError(f"{RUN_FILE} holds no run record")
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:
        raise DamagedRunError(f"{RUN_FILE} lacks {', '.join(missing)}")
    try:
        metrics = pd.read_parquet(directory / METRICS_FILE)
    except (OSError, ValueError, pa.ArrowException) as error:
        raise DamagedRunError(f"{METRICS_FILE} is unreadable ({error})") from None
    missing = [column for column in METRICS_COLUMNS if column not in metrics.columns]
    if missing:
        raise DamagedRunError(f"{METRICS_FILE} lacks column(s) {', '.join(missing)}")
    return metrics, record


def retrain_command(run_dir: str) -> str:
    return f"snakemake --forcerun {Path(run_dir) / METRICS_FILE}"


def damaged_row(run_dir: str, reason: str, config: dict[str, Any]) -> dict[str, Any]:
    """The summary row of a run with damaged outputs: a failed run without epochs."""
    record = {
        "config": config,
        "config_hash": None,
        "status": "failed",
        "error": f"damaged output: {reason}; retrain with: {retrain_command(run_dir)}",
        "epochs_completed": 0,
    }
    return summarise(run_dir, pd.DataFrame(columns=METRICS_COLUMNS), record)


def aggregate(
    run_dirs: Sequence[str], configs: Mapping[str, dict[str, Any]] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metrics, summary) tables of the given runs, in the given order.

    configs: each run's config (RunConfig.to_dict()) by run folder, as the workflow knows
    it: the config columns of a run whose run.json is damaged."""
    if not run_dirs:
        raise ValueError("no runs to aggregate")
    frames: list[pd.DataFrame] = []
    rows: list[dict[str, Any]] = []
    for run_dir in run_dirs:
        try:
            metrics, record = read_run(run_dir)
        except DamagedRunError as error:
            print(
                f"flooding aggregate: run {run_dir} has damaged outputs: {error}. It counts as "
                f"failed; retrain it with: {retrain_command(run_dir)}",
                file=sys.stderr,
            )
            rows.append(damaged_row(run_dir, str(error), dict((configs or {}).get(run_dir, {}))))
            continue
        rows.append(summarise(run_dir, metrics, record))
        if len(metrics):  # a run that failed before epoch 0 adds no rows
            frames.append(metrics.assign(run_dir=run_dir, status=record["status"]))
    summary = pd.DataFrame(rows)
    summary["best_epoch"] = summary["best_epoch"].astype("Int64")
    if frames:
        all_metrics = pd.concat(frames, ignore_index=True)
    else:
        all_metrics = pd.DataFrame(columns=["epoch", "run_dir", "status"])
    return all_metrics, summary


def write_parquet(table: pd.DataFrame, path: str) -> None:
    """Write next to the target, then rename: readers never see half a table."""
    atomic_write(Path(path), lambda tmp: table.to_parquet(tmp, index=False))


def aggregate_runs(
    run_dirs: Sequence[str],
    metrics_out: str,
    summary_out: str,
    configs: Mapping[str, dict[str, Any]] | None = None,
    cores: int | None = None,
) -> str:
    """Aggregate and write both tables; returns an account of the runs' statuses and,
    given the cores the runs shared, of how much of their time went into training."""
    metrics, summary = aggregate(run_dirs, configs)
    write_parquet(metrics, metrics_out)
    write_parquet(summary, summary_out)
    counts = summary["status"].value_counts().to_dict() if len(summary) else {}
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    account = f"aggregated {len(summary)} runs ({statuses}), {len(metrics)} epoch rows"
    if cores is not None and len(metrics):
        account += "\n" + training_share(metrics, summary, cores)
    return account


def training_share(metrics: pd.DataFrame, summary: pd.DataFrame, cores: int) -> str:
    """Recorded training seconds over the core-seconds between the first run's start and
    the last run's end: the rest went into start-ups, data loading and scheduling. Only
    meaningful when all runs were trained by one invocation (a fresh `make report`)."""
    trained = float(metrics["epoch_seconds"].sum())
    span = pd.to_datetime(summary["finished"]).max() - pd.to_datetime(summary["started"]).min()
    wall = max(span.total_seconds(), 1.0)
    share = trained / (wall * cores)
    return (
        f"training {trained:.0f} s of {wall:.0f} s wall x {cores} cores: "
        f"{share:.0%} of the runs' core time"
    )


def failed_outputs(summary_path: str) -> list[str]:
    """metrics.parquet of every failed run in a summary: the targets to force a rerun of."""
    summary = pd.read_parquet(summary_path, columns=["run_dir", "status"])
    failed = summary.loc[summary["status"] == "failed", "run_dir"]
    return [str(Path(run_dir) / METRICS_FILE) for run_dir in failed]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="flooding aggregate",
        description="Gather runs into an all-epochs table and a one-row-per-run summary.",
    )
    parser.add_argument("--runs", nargs="+", metavar="DIR", help="run output folders")
    parser.add_argument("--metrics", metavar="OUT", help="all epochs of all runs (Parquet)")
    parser.add_argument("--summary", metavar="OUT", help="one row per run (Parquet)")
    parser.add_argument(
        "--failed",
        metavar="SUMMARY",
        help="instead: print the metrics.parquet of each failed run in SUMMARY, one per line "
        "(for `snakemake --forcerun`)",
    )
    args = parser.parse_args(argv)
    if args.failed is not None:
        if args.runs or args.metrics or args.summary:
            parser.error("--failed takes no other option")
        print("\n".join(failed_outputs(args.failed)))
        return 0
    if not (args.runs and args.metrics and args.summary):
        parser.error("--runs, --metrics and --summary are required")
    print(aggregate_runs(args.runs, args.metrics, args.summary), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
