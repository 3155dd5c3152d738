"""The per-epoch metrics schema and the run's two output files, both written atomically.

`metrics.parquet` has one row per epoch (epoch 0 = before training): the measured
columns, then every RunConfig field, `config_hash` and `bayes_error`, so that the files of
many runs concatenate into one table. `run.json` describes the run as a whole.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import socket
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from flooding.atomic import atomic_write
from flooding.config import RunConfig, config_hash
from flooding.finished import METRICS_FILE, RUN_FILE
from flooding.validation import field_type

# Relative size of the random weight perturbations of the flatness measure
# (flooding.flatness); here, torch-free, so that the report can state it.
SHARPNESS_RADIUS = 0.05

# Measured per epoch, in column order, with what each means (docs/outputs.md is generated
# from this). Everything here is a float except `epoch`.
EPOCH_COLUMN_DOCS = {
    "epoch": "epoch number; 0 is the evaluation before any training",
    "train_loss": "mean cross-entropy of an evaluation pass over the training set, on the "
    "labels trained on (noisy where there is label noise)",
    "train_acc": "accuracy of the same pass, on the labels trained on",
    "train_loss_clean": "the same pass scored on the true labels",
    "train_acc_clean": "accuracy on the true training labels",
    "val_loss": "validation loss, on the (noisy) validation labels",
    "val_acc": "validation accuracy, on the (noisy) validation labels; chooses b and the "
    "early-stopping epoch",
    "val_loss_clean": "validation loss on the true labels",
    "val_acc_clean": "validation accuracy on the true labels",
    "test_loss": "test loss; test labels are always clean",
    "test_acc": "test accuracy",
    "batch_loss": "mean unflooded mini-batch loss J during the epoch; NaN at epoch 0",
    "grad_norm": "mean global L2 gradient norm over the mini-batches; NaN at epoch 0",
    "flooded_frac": "fraction of mini-batches (flood) or samples (iflood) whose loss was "
    "below b, so that the gradient was reversed",
    # Not "lr": that column is the RunConfig field, the base rate of the schedule.
    "epoch_lr": "learning rate used during the epoch (epoch 0: the first epoch's)",
    "epoch_seconds": "wall time of the epoch, training and evaluation; not reproducible",
}
EPOCH_COLUMNS = tuple(EPOCH_COLUMN_DOCS)

STATUSES = ("completed", "diverged", "failed")

# The keys of run.json and what each means (docs/outputs.md is generated from this; a test
# checks it against a run.json that write_run_json wrote).
RUN_RECORD_DOCS = {
    "config": "the run's RunConfig, field by field",
    "config_hash": "the run's identity: sha256 of the canonical JSON of its config, 16 hex digits",
    "status": "completed, diverged (the loss became NaN or infinite) or failed (an error)",
    "error": "why the run diverged or failed; null when it completed",
    "epochs_completed": "epochs trained and recorded in metrics.parquet",
    "effective_batch_size": "the mini-batch size trained with: batch_size, or the training "
    "split's size when batch_size is larger (full-batch training); null if never loaded",
    "bayes_error": "the clean problem's Bayes error where known in closed form, else null",
    "sharpness": "mean training-loss increase under random filter-normalised weight "
    "perturbations of relative size 0.05 (flooding.flatness; smaller = flatter); null when "
    "not measured (sharpness_directions 0, or the run did not complete)",
    "sharpness_seconds": "what measuring sharpness cost, seconds",
    "peak_rss_mb": "the training process's peak resident memory when run.json was written, "
    "MB (in a pack: the pack's process, with the members trained before it); what "
    "`mem_auto` learns from (docs/cluster.md); null where the platform does not say",
    "versions": "versions of python, torch, timm and this package that produced the numbers",
    "device": "where it trained, e.g. `cpu (1 thread)` or `cuda:0 (NVIDIA H100)`",
    "host": "the machine's host name",
    "float_path": "what decides the run's floating-point arithmetic, so that `flooding "
    "reproduce` can retrain it bit for bit: `device`, `threads` (torch's CPU threads), "
    "`bf16` and `channels_last` (CUDA only), and `stack`: the flood settings "
    "(flood_method, flood_level) of the members of the stacked model it trained in, in "
    "order, with `stack_position` its own place (a run trained alone: a stack of one). "
    "The last stretch of training decides it: a run resumed from a checkpoint records the "
    "path it resumed on",
    "started": "when the run first started (UTC, ISO 8601), kept across restarts",
    "finished": "when run.json was written (UTC, ISO 8601)",
}

_ARROW_TYPES = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}


def metrics_schema() -> pa.Schema:
    """Arrow schema of metrics.parquet: fixed types, so files concatenate cleanly."""
    columns = [pa.field("epoch", pa.int64())]
    columns += [pa.field(name, pa.float64()) for name in EPOCH_COLUMNS[1:]]
    config_fields = dataclasses.fields(RunConfig)
    columns += [pa.field(f.name, _ARROW_TYPES[field_type(f)]) for f in config_fields]
    columns += [pa.field("config_hash", pa.string()), pa.field("bayes_error", pa.float64())]
    return pa.schema(columns)


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


def peak_rss_mb() -> float | None:
    """This process's peak resident memory so far (the kernel's high-water mark), in MB
    (MiB); None where there is no getrusage (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux counts it in KiB, macOS in bytes.
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


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
    sharpness: tuple[float, float] | None = None,
    float_path: dict[str, Any] | None = None,
) -> None:
    """Write run.json, the run's summary; its presence means the run has finished.

    effective_batch_size: the mini-batch size trained with (config.effective_batch_size),
    null when the run failed before its data was loaded. sharpness: (value, seconds) of
    flooding.flatness.sharpness, null when not measured. float_path: see RUN_RECORD_DOCS."""
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
        "sharpness": None if sharpness is None else sharpness[0],
        "sharpness_seconds": None if sharpness is None else sharpness[1],
        "peak_rss_mb": peak_rss_mb(),
        "versions": versions(),
        "device": device,
        "host": socket.gethostname(),
        "float_path": float_path,
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
