"""How long a run of a given shape takes: learned from finished runs, or from a calibration.

A run's time depends on what it computes per epoch, not on its flood level, seed or
regularisers: its *shape* is its dataset and data sizes, its architecture, its batch size,
whether it augments, and the kind of device it trains on. Two runs of one shape take the
same time per epoch, so what one measured predicts the other.

A `Timing` holds two numbers per shape, each the median over the runs measured:

- `epoch_s`: one training epoch with its evaluation (`epoch_seconds` at epochs >= 1);
- `run_s`: what a run pays once besides its epochs (the evaluation before training,
  `epoch_seconds` at epoch 0, and the final sharpness measurement).

so a run of E epochs is expected to take `run_s + E * epoch_s`. Process start-up is a
job's cost, not a run's: see `Calibration.startup_s`.

Finished runs are read from the aggregated tables (`results/summary.parquet`, with each
run's config and device, and `results/metrics.parquet`); calibrations from
`results/calibration.json` (flooding.calibrate writes it). Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flooding.config import RunConfig

SUMMARY_TABLE = "summary.parquet"
METRICS_TABLE = "metrics.parquet"
CALIBRATION_FILE = "calibration.json"
DEVICE_KINDS = ("cpu", "cuda")


@dataclass(frozen=True, order=True)
class Shape:
    """What a run's time per epoch depends on."""

    dataset: str
    train_size: int  # 0 = the dataset's default
    test_size: int
    arch: str
    # The MLP's layers; 0 for other architectures, whose size the name fixes.
    mlp_depth: int
    mlp_width: int
    batch_size: int
    augment: bool
    device: str  # "cpu" or "cuda"

    def describe(self) -> str:
        """e.g. mnist mlp 2x1000 batch 200 on cuda."""
        mlp = self.arch == "mlp"
        arch = f"{self.arch} {self.mlp_depth}x{self.mlp_width}" if mlp else self.arch
        sizes = ""
        if self.train_size or self.test_size:
            sizes = f" train {self.train_size or 'default'} test {self.test_size or 'default'}"
        augment = " augmented" if self.augment else ""
        return f"{self.dataset}{sizes} {arch} batch {self.batch_size}{augment} on {self.device}"

    @property
    def name(self) -> str:
        """Every field, readable and fit for a file name: mnist-mlp2x1000-batch200-cuda."""
        mlp = self.arch == "mlp"
        parts = [self.dataset]
        if self.train_size or self.test_size:
            parts += [f"train{self.train_size or 'default'}", f"test{self.test_size or 'default'}"]
        parts += [f"{self.arch}{self.mlp_depth}x{self.mlp_width}" if mlp else self.arch]
        parts += [f"batch{self.batch_size}", *(["augment"] if self.augment else []), self.device]
        return "-".join(parts)


def shape_of(cfg: RunConfig, device: str) -> Shape:
    mlp = cfg.arch == "mlp"
    return Shape(
        dataset=cfg.dataset,
        train_size=cfg.train_size,
        test_size=cfg.test_size,
        arch=cfg.arch,
        mlp_depth=cfg.mlp_depth if mlp else 0,
        mlp_width=cfg.mlp_width if mlp else 0,
        batch_size=cfg.batch_size,
        augment=cfg.augment,
        device=device,
    )


def device_kind(description: str) -> str:
    """'cpu (1 thread)' -> 'cpu', 'cuda:0 (NVIDIA H100)' -> 'cuda' (run.json's `device`)."""
    return description.split(" ")[0].split(":")[0]


@dataclass(frozen=True)
class Timing:
    """Seconds a run of one shape takes: once per run, and per epoch."""

    run_s: float
    epoch_s: float
    runs: int  # how many runs it was measured on
    source: str  # "results" (finished runs) or "calibration"

    def run_seconds(self, epochs: int) -> float:
        return self.run_s + epochs * self.epoch_s


def finished_timings(results: Path) -> dict[Shape, Timing]:
    """Timings of every shape with a completed run in the aggregated tables under results/;
    empty when the tables are not there."""
    summary_path, metrics_path = results / SUMMARY_TABLE, results / METRICS_TABLE
    if not (summary_path.is_file() and metrics_path.is_file()):
        return {}
    import pandas as pd

    summary = pd.read_parquet(summary_path)
    metrics = pd.read_parquet(metrics_path, columns=["run_dir", "epoch", "epoch_seconds"])
    completed = summary[(summary["status"] == "completed") & summary["device"].notna()]
    epochs = metrics[metrics["epoch"] >= 1].groupby("run_dir")["epoch_seconds"].mean()
    first = metrics[metrics["epoch"] == 0].set_index("run_dir")["epoch_seconds"]
    fields = [f.name for f in dataclasses.fields(RunConfig)]
    samples: dict[Shape, list[tuple[float, float]]] = {}
    for row in completed.to_dict("records"):
        run_dir = row["run_dir"]
        if run_dir not in epochs.index or run_dir not in first.index:
            continue
        cfg = RunConfig.from_dict({name: row[name] for name in fields})
        sharpness = row.get("sharpness_seconds")
        once = float(first[run_dir]) + (0.0 if pd.isna(sharpness) else float(sharpness))
        shape = shape_of(cfg, device_kind(str(row["device"])))
        samples.setdefault(shape, []).append((once, float(epochs[run_dir])))
    return {shape: _median(values, "results") for shape, values in samples.items()}


def _median(values: list[tuple[float, float]], source: str) -> Timing:
    return Timing(
        run_s=statistics.median(v[0] for v in values),
        epoch_s=statistics.median(v[1] for v in values),
        runs=len(values),
        source=source,
    )


@dataclass(frozen=True)
class Calibration:
    """Timings measured by short runs on one machine, and its process start-up."""

    timings: Mapping[Shape, Timing]
    # A training process's start-up (interpreter, torch, data), paid once per job.
    startup_s: float | None
    host: str = ""


def read_calibration(results: Path) -> Calibration:
    """The cached calibration under results/, or an empty one."""
    path = results / CALIBRATION_FILE
    if not path.is_file():
        return Calibration({}, None)
    data = json.loads(path.read_text())
    timings = {
        Shape(**entry["shape"]): Timing(entry["run_s"], entry["epoch_s"], 1, "calibration")
        for entry in data["shapes"]
    }
    return Calibration(timings, data.get("startup_s"), data.get("host", ""))


def write_calibration(results: Path, calibration: Calibration) -> Path:
    """Cache a calibration under results/, merged over the shapes already cached."""
    from flooding.atomic import atomic_write

    cached = read_calibration(results)
    timings = {**cached.timings, **calibration.timings}
    startup = calibration.startup_s if calibration.startup_s is not None else cached.startup_s
    data: dict[str, Any] = {
        "host": calibration.host,
        "startup_s": startup,
        "shapes": [
            {"shape": dataclasses.asdict(shape), "run_s": t.run_s, "epoch_s": t.epoch_s}
            for shape, t in sorted(timings.items())
        ],
    }
    path = results / CALIBRATION_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1) + "\n"))
    return path


def known_timings(results: Path) -> tuple[dict[Shape, Timing], float | None]:
    """Every shape's timing, finished runs first and calibrations for the others, and the
    calibrated process start-up (None when never calibrated)."""
    calibration = read_calibration(results)
    return {**calibration.timings, **finished_timings(results)}, calibration.startup_s
