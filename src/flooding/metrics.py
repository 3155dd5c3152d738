"""The per-epoch metrics schema and the run's two output files, both written atomically.

`metrics.parquet` has one row per epoch (epoch 0 = before training): the measured
columns, then every RunConfig field, `config_hash` and `bayes_error`, so that the files of
many runs concatenate into one table. `run.json` describes the run as a whole.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import socket
import sys
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from flooding.config import RunConfig, config_hash

METRICS_FILE = "metrics.parquet"
RUN_FILE = "run.json"

# Measured per epoch, in column order. Everything here is a float except `epoch`.
EPOCH_COLUMNS = (
    "epoch",
    "train_loss",  # evaluation pass over the training set, on the labels trained on
    "train_acc",
    "train_loss_clean",  # same pass, true labels (equal to the above without label noise)
    "train_acc_clean",
    "val_loss",
    "val_acc",
    "val_loss_clean",
    "val_acc_clean",
    "test_loss",  # test labels are always clean
    "test_acc",
    "batch_loss",  # mean unflooded mini-batch loss J during the epoch; NaN at epoch 0
    "grad_norm",  # mean global L2 gradient norm over mini-batches; NaN at epoch 0
    "flooded_frac",  # fraction of mini-batches (flood) or samples (iflood) with loss < b
    # Learning rate used during the epoch (epoch 0: the first epoch's). Not "lr": that
    # column is the RunConfig field, the base rate of the schedule.
    "epoch_lr",
    "epoch_seconds",  # wall time of the epoch, training and evaluation; not reproducible
)

STATUSES = ("completed", "diverged", "failed")

_ARROW_TYPES = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}


def metrics_schema() -> pa.Schema:
    """Arrow schema of metrics.parquet: fixed types, so files concatenate cleanly."""
    columns = [pa.field("epoch", pa.int64())]
    columns += [pa.field(name, pa.float64()) for name in EPOCH_COLUMNS[1:]]
    columns += [pa.field(f.name, _ARROW_TYPES[str(f.type)]) for f in dataclasses.fields(RunConfig)]
    columns += [pa.field("config_hash", pa.string()), pa.field("bayes_error", pa.float64())]
    return pa.schema(columns)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) on a temporary file next to `path`, then rename it over `path`.

    A rename within one directory is atomic, so readers (and a run killed part-way) see
    either the old complete file or the new complete file, never a truncated one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name in the same folder (a rename across file systems is not atomic); the
    # writer creates it, so it gets the usual permissions.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_metrics(
    out: Path, rows: list[dict[str, float]], cfg: RunConfig, bayes_error: float | None
) -> None:
    """Write the epoch rows (EPOCH_COLUMNS keys) with the run's config columns appended."""
    for row in rows:
        if sorted(row) != sorted(EPOCH_COLUMNS):
            raise ValueError(f"metric row keys {sorted(row)} differ from {list(EPOCH_COLUMNS)}")
    constant = {**cfg.to_dict(), "config_hash": config_hash(cfg)}
    constant["bayes_error"] = float("nan") if bayes_error is None else bayes_error
    table = pa.Table.from_pylist([{**row, **constant} for row in rows], schema=metrics_schema())
    atomic_write(out / METRICS_FILE, lambda tmp: pq.write_table(table, tmp))


def now_iso() -> str:
    """Current time, UTC, ISO 8601 with seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def versions() -> dict[str, str | None]:
    """Versions of what produced the numbers; read from package metadata, nothing imported."""

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {
        "python": platform.python_version(),
        "torch": version("torch"),
        "timm": version("timm"),
        "flooding": version("flooding-benchmark"),
    }


def write_run_json(
    out: Path,
    cfg: RunConfig,
    *,
    status: str,
    error: str | None,
    epochs_completed: int,
    bayes_error: float | None,
    device: str,
    started: str,
    effective_batch_size: int | None = None,
) -> None:
    """Write run.json, the run's summary; its presence means the run has finished.

    effective_batch_size: the mini-batch size trained with (config.effective_batch_size),
    null when the run failed before its data was loaded."""
    if status not in STATUSES:
        raise ValueError(f"status: invalid value {status!r}; accepted: {', '.join(STATUSES)}")
    record: dict[str, Any] = {
        "config": cfg.to_dict(),
        "config_hash": config_hash(cfg),
        "status": status,
        "error": error,
        "epochs_completed": epochs_completed,
        "effective_batch_size": effective_batch_size,
        "bayes_error": bayes_error,
        "versions": versions(),
        "device": device,
        "host": socket.gethostname(),
        "started": started,
        "finished": now_iso(),
    }
    text = json.dumps(record, indent=2, allow_nan=False) + "\n"
    atomic_write(out / RUN_FILE, lambda tmp: tmp.write_text(text))


def progress_line(row: dict[str, float], epochs: int) -> str:
    """One line per epoch for stderr."""
    return (
        f"epoch {int(row['epoch'])}/{epochs}"
        f" train_loss {row['train_loss']:.4f} train_acc {row['train_acc']:.4f}"
        f" val_loss {row['val_loss']:.4f} val_acc {row['val_acc']:.4f}"
        f" test_loss {row['test_loss']:.4f} test_acc {row['test_acc']:.4f}"
        f" batch_loss {row['batch_loss']:.4f} {row['epoch_seconds']:.2f}s"
    )


def print_progress(row: dict[str, float], epochs: int) -> None:
    print(progress_line(row, epochs), file=sys.stderr, flush=True)
