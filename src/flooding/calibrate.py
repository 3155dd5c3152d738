"""`flooding plan --calibrate`: time a few epochs of each shape that has no measurement.

For each shape of the grid that neither a finished run nor an earlier calibration has
measured (flooding.timing), one short `flooding train` process trains a run of that shape
for `EPOCHS` epochs on this machine, on the device its runs ask for, with its threads.
Large datasets are cut to about `BATCHES` mini-batches a epoch (test set in proportion)
and the times scaled back up by the same factor: an epoch's cost grows with the samples it
trains and evaluates. A job's start-up, paid once per job, is the training process's wall
time beyond what its run recorded (interpreter, torch, data) plus a dry run of one job of
the workflow, which is what the job's own Snakemake does before it starts training.

Results are cached in results/calibration.json; a shape whose dataset is not downloaded
stays unmeasured, with the reason. A grid whose runs want a device this machine lacks is
refused before anything is timed (InputError).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from flooding.config import RunConfig
from flooding.data.registry import DATASETS
from flooding.grid import Grid
from flooding.jobs import Run
from flooding.learned import device_of, run_shape
from flooding.timing import Calibration, Shape, Timing, known_timings, write_calibration
from flooding.workflow_config import InputError

EPOCHS = 3
BATCHES = 20
CALIBRATION_DIR = "calibration"


def calibration_config(cfg: RunConfig) -> tuple[RunConfig, float]:
    """The run to time for cfg's shape, and the factor by which it is smaller."""
    spec = DATASETS[cfg.dataset]
    pool = cfg.train_size or spec.train_size
    test = cfg.test_size or spec.test_size
    wanted = math.ceil(BATCHES * cfg.batch_size / (1 - cfg.val_fraction))
    scale = min(1.0, wanted / pool)
    if scale == 1.0:
        return dataclasses.replace(cfg, epochs=EPOCHS), 1.0
    smaller = dataclasses.replace(
        cfg,
        epochs=EPOCHS,
        train_size=math.ceil(pool * scale),
        test_size=max(1, math.ceil(test * scale)),
    )
    return smaller, scale


def time_run(run: Run, folder: Path, data_root: Path) -> tuple[Timing, float] | str:
    """(timing of run's shape, process start-up seconds), or why it could not be timed."""
    cfg, scale = calibration_config(run.config)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    config_file = folder / "config.yaml"
    config_file.write_text(yaml.safe_dump(cfg.to_dict()))
    command = [sys.executable, "-m", "flooding", "train", "--config", str(config_file)]
    command += ["--out", str(folder / "run"), "--device", device_of(run)]
    command += ["--threads", str(run.resources.threads), "--checkpoint-every", "0"]
    command += ["--data-root", str(data_root)]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or [f"exit {result.returncode}"]
        return lines[-1]
    import pandas as pd

    metrics = pd.read_parquet(folder / "run" / "metrics.parquet")
    record = json.loads((folder / "run" / "run.json").read_text())
    shutil.rmtree(folder, ignore_errors=True)
    if record["status"] != "completed":
        return f"the calibration run {record['status']}: {record.get('error')}"
    seconds = metrics.set_index("epoch")["epoch_seconds"]
    once = float(seconds[0]) + float(record.get("sharpness_seconds") or 0.0)
    per_epoch = float(seconds[seconds.index >= 1].mean())
    startup = max(0.0, wall - once - float(seconds[seconds.index >= 1].sum()))
    return Timing(once / scale, per_epoch / scale, 1, "calibration"), startup


def check_devices(shapes: dict[Shape, Run]) -> None:
    """Refuse a calibration on a machine without the device some runs want."""
    wanting = sorted({shape.device for shape in shapes} - {"cpu"})
    if not wanting:
        return
    import torch

    if not torch.cuda.is_available():
        runs = sum(1 for shape in shapes if shape.device == "cuda")
        raise InputError(
            f"--calibrate: {runs} shape(s) train on cuda and this machine has no CUDA device; "
            "calibrate on a GPU node"
        )


def time_command(command: Sequence[str]) -> float | str:
    """Seconds the command took, or why it failed."""
    started = time.perf_counter()
    result = subprocess.run(list(command), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or [f"exit {result.returncode}"]
        return lines[-1]
    return time.perf_counter() - started


def calibrate_missing(
    grid: Grid, results: Path, data_root: Path, workflow_load: Sequence[str]
) -> str:
    """Time every unmeasured shape of the grid, cache the timings; returns an account.

    `workflow_load` is a command that loads the workflow as a job's own Snakemake does (a
    dry run of one job): a job's start-up is that plus the training process's."""
    timings, _ = known_timings(results)
    missing: dict[Shape, Run] = {}
    for run in grid.runs:
        shape = run_shape(run)
        if shape not in timings and shape not in missing:
            missing[shape] = run
    _, startup_s = known_timings(results)
    if not missing and startup_s is None and grid.runs:
        # Every shape is measured by finished runs, but a job's start-up never was.
        missing[run_shape(grid.runs[0])] = grid.runs[0]
    check_devices(missing)
    measured: dict[Shape, Timing] = {}
    startups: list[float] = []
    lines = [f"calibrating {len(missing)} shape(s), {EPOCHS} epochs each:"]
    for index, (shape, run) in enumerate(missing.items()):
        outcome = time_run(run, results / CALIBRATION_DIR / f"shape{index}", data_root)
        if isinstance(outcome, str):
            lines.append(f"  {shape.describe()}: not measured ({outcome})")
            continue
        timing, startup = outcome
        measured[shape], startups = timing, [*startups, startup]
        lines.append(
            f"  {shape.describe()}: {timing.epoch_s:.3g} s/epoch, start-up {startup:.1f} s"
        )
    shutil.rmtree(results / CALIBRATION_DIR, ignore_errors=True)
    startup_s = None
    if startups:
        load = time_command(workflow_load)
        if isinstance(load, str):
            lines.append(f"  start-up of a job's Snakemake not measured ({load})")
            load = 0.0
        startup_s = statistics.median(startups) + load
        lines.append(f"  a job's start-up: {startup_s:.1f} s ({load:.1f} s of it Snakemake's own)")
    if measured or startup_s is not None:
        write_calibration(results, Calibration(measured, startup_s, socket.gethostname()))
    return "\n".join(lines)
