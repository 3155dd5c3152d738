"""What was run, per dataset and architecture: one row a block, the values its runs used.

Sizes are the sample counts the runs used (a configured 0 resolved to the dataset's own
size and split by the validation fraction, as the data loader does); every other cell
lists the values that occur in the block. Training time per run is the sum of its epoch
times, ordinary (b = 0) and flooded runs apart, so that flooding's cost shows.
"""

from __future__ import annotations

import pandas as pd

from flooding.report.settings import RQ3_COLUMNS, applies, label, sizes, value
from flooding.report.tables import Cell, Row, Table, cells


def _values(series: pd.Series, fmt: str = "{:g}") -> str:
    return ", ".join(fmt.format(v) for v in sorted(series.dropna().unique()))


def regulariser_cell(block: pd.DataFrame, column: str) -> Cell | str:
    """The values a regulariser axis took in the block, or that it does not apply."""
    if not applies(block.drop_duplicates(["dataset", "arch", "optimizer"]), column):
        return Cell("not for this data", css="muted")
    return ", ".join(value(v) for v in sorted(block[column].dropna().unique()))


def _seconds(values: pd.Series) -> str:
    return "n/a" if values.empty or values.isna().all() else f"{values.mean():.1f} s"


def accounting_table(metrics: pd.DataFrame, summary: pd.DataFrame) -> Table:
    """One row per dataset and architecture (see the module text)."""
    seconds = metrics.groupby("run_dir")["epoch_seconds"].sum(min_count=1)
    head = [
        cells(
            "dataset",
            "arch",
            "train / validation / test samples",
            "label noise",
            *(label(c) for c in RQ3_COLUMNS),
            "methods",
            "flood levels b > 0",
            "seeds",
            "epochs",
            "runs (completed of all)",
            "training time per run: b = 0 / b > 0",
        )
    ]
    body: list[Row] = []
    for (dataset, arch), block in summary.groupby(["dataset", "arch"], sort=True):
        used = sorted(
            {
                sizes(str(dataset), int(t), int(s), float(v))
                for t, s, v in zip(
                    block["train_size"], block["test_size"], block["val_fraction"], strict=True
                )
            }
        )
        flooded = block[block["flood_level"] > 0]
        time = block["run_dir"].map(seconds)
        plain = time[block["flood_level"] == 0]
        flood = time[block["flood_level"] > 0]
        done = int((block["status"] == "completed").sum())
        body.append(
            cells(
                str(dataset),
                str(arch),
                "; ".join(" / ".join(str(n) for n in u) for u in used if u) or "not known",
                _values(block["label_noise"]),
                *(regulariser_cell(block, c) for c in RQ3_COLUMNS),
                _values(flooded["flood_method"], "{}") or "none",
                _values(flooded["flood_level"]) or "none",
                str(block["seed"].nunique()),
                _values(block["epochs"]),
                f"{done} of {len(block)}",
                f"{_seconds(plain)} / {_seconds(flood)}",
            )
        )
    return Table(head, body, css="results")
