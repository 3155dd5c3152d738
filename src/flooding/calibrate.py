"""Calibration: time a few epochs of each shape that has no measurement.

For each shape of the grid that neither a finished run nor an earlier calibration has
measured (flooding.timing), one short `flooding train` process trains a run of that shape
for `EPOCHS` epochs, on the device its runs ask for, with its threads (`time_shape`).
Large datasets are cut to about `BATCHES` mini-batches a epoch (test set in proportion)
and the times scaled back up by the same factor: an epoch's cost grows with the samples it
trains and evaluates. A job's start-up, paid once per job, is the training process's wall
time beyond what its run recorded (interpreter, torch, data) plus a dry run of one job of
the workflow, which is what the job's own Snakemake does before it starts training.

Two ways to run it, with the same timing of a shape:

- `flooding plan --calibrate` (`calibrate_missing`): every shape here, one after another.
  A grid whose runs want a device this machine lacks is refused before anything is timed
  (InputError).
- `snakemake calibrate` (workflow/rules/calibrate.smk), with `--profile slurm` on the
  cluster: a job per shape, with the resources of its runs, runs `flooding calibrate-shape`
  (`calibrate_shape`), which writes the shape's outcome to a file; a local job gathers the
  files (`gather_calibration`) and times the dry run on the login node.

Results are cached in results/calibration.json; a shape that could not be timed (its
dataset not downloaded, its device missing) stays unmeasured, with the reason.
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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from flooding.config import RunConfig
from flooding.data.registry import DATASETS
from flooding.grid import Grid
from flooding.jobs import Resources, Run
from flooding.learned import device_of, run_shape
from flooding.timing import (
    Calibration,
    Shape,
    Timing,
    known_timings,
    shape_of,
    write_calibration,
)
from flooding.workflow_config import InputError

EPOCHS = 3
BATCHES = 20
CALIBRATION_DIR = "calibration"
# A calibration job asks for its runs' resources but at most this many minutes: it trains
# a few short epochs, and a shorter request starts sooner in a busy queue.
JOB_RUNTIME = 30


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


@dataclass(frozen=True)
class Measured:
    """What one short run measured of its shape."""

    timing: Timing
    # The training process's wall time beyond what its run recorded.
    process_startup_s: float


def time_shape(
    cfg: RunConfig, device: str, threads: int, folder: Path, data_root: Path
) -> Measured | str:
    """Time one short run of cfg's shape on `device` ("cpu" or "cuda") in `folder`
    (removed after); or why it could not be timed."""
    run_cfg, scale = calibration_config(cfg)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        config_file = folder / "config.yaml"
        config_file.write_text(yaml.safe_dump(run_cfg.to_dict()))
        command = [sys.executable, "-m", "flooding", "train", "--config", str(config_file)]
        command += ["--out", str(folder / "run"), "--device", device]
        command += ["--threads", str(threads), "--checkpoint-every", "0"]
        command += ["--data-root", str(data_root)]
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines() or [f"exit {result.returncode}"]
            return lines[-1]
        import pandas as pd

        metrics = pd.read_parquet(folder / "run" / "metrics.parquet")
        run_record = json.loads((folder / "run" / "run.json").read_text())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if run_record["status"] != "completed":
        return f"the calibration run {run_record['status']}: {run_record.get('error')}"
    seconds = metrics.set_index("epoch")["epoch_seconds"]
    once = float(seconds[0]) + float(run_record.get("sharpness_seconds") or 0.0)
    per_epoch = float(seconds[seconds.index >= 1].mean())
    startup = max(0.0, wall - once - float(seconds[seconds.index >= 1].sum()))
    return Measured(Timing(once / scale, per_epoch / scale, 1, "calibration"), startup)


def shape_runs(runs: Iterable[Run]) -> dict[Shape, Run]:
    """The first run of each shape, in config order: the run a calibration times."""
    first: dict[Shape, Run] = {}
    for run in runs:
        first.setdefault(run_shape(run), run)
    return first


def shapes_to_calibrate(grid: Grid, results: Path) -> dict[Shape, Run]:
    """The shapes of the grid that nothing under results/ has measured, each with the run
    to time; one shape when all are measured but a job's start-up never was."""
    timings, startup_s = known_timings(results)
    missing = {s: run for s, run in shape_runs(grid.runs).items() if s not in timings}
    if not missing and startup_s is None and grid.runs:
        # Every shape is measured by finished runs, but a job's start-up never was.
        missing[run_shape(grid.runs[0])] = grid.runs[0]
    return missing


def job_resources(resources: Resources) -> Resources:
    """What the calibration job of a shape asks for: what its runs ask for, shorter."""
    return dataclasses.replace(
        resources, runtime=min(resources.runtime, JOB_RUNTIME), runtime_auto=False
    )


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
            "calibrate on a GPU node, or as jobs on the cluster: snakemake --profile slurm "
            "calibrate"
        )


def time_command(command: Sequence[str]) -> float | str:
    """Seconds the command took, or why it failed."""
    started = time.perf_counter()
    result = subprocess.run(list(command), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or [f"exit {result.returncode}"]
        return lines[-1]
    return time.perf_counter() - started


def outcome_line(shape: Shape, outcome: Measured | str) -> str:
    if isinstance(outcome, str):
        return f"  {shape.describe()}: not measured ({outcome})"
    return (
        f"  {shape.describe()}: {outcome.timing.epoch_s:.3g} s/epoch, "
        f"start-up {outcome.process_startup_s:.1f} s"
    )


def cache_outcomes(
    results: Path,
    outcomes: Mapping[Shape, Measured | str],
    workflow_load: Sequence[str],
    host: str,
) -> list[str]:
    """Cache what the shapes measured, and a job's start-up: the median of their process
    start-ups plus the workflow load timed here. Returns the account's lines."""
    lines = [outcome_line(shape, outcome) for shape, outcome in outcomes.items()]
    measured = {s: o for s, o in outcomes.items() if isinstance(o, Measured)}
    startup_s = None
    if measured:
        load = time_command(workflow_load)
        if isinstance(load, str):
            lines.append(f"  start-up of a job's Snakemake not measured ({load})")
            load = 0.0
        startup_s = statistics.median(m.process_startup_s for m in measured.values()) + load
        lines.append(f"  a job's start-up: {startup_s:.1f} s ({load:.1f} s of it Snakemake's own)")
        timings = {shape: m.timing for shape, m in measured.items()}
        write_calibration(results, Calibration(timings, startup_s, host))
    return lines


def calibrate_missing(
    grid: Grid, results: Path, data_root: Path, workflow_load: Sequence[str]
) -> str:
    """Time every unmeasured shape of the grid here, cache the timings; returns an account.

    `workflow_load` is a command that loads the workflow as a job's own Snakemake does (a
    dry run of one job): a job's start-up is that plus the training process's."""
    missing = shapes_to_calibrate(grid, results)
    check_devices(missing)
    outcomes = {
        shape: time_shape(
            run.config,
            device_of(run),
            run.resources.threads,
            results / CALIBRATION_DIR / f"shape{index}",
            data_root,
        )
        for index, (shape, run) in enumerate(missing.items())
    }
    # The folder may hold the cluster way's files too: removed only when empty.
    if (results / CALIBRATION_DIR).is_dir() and not any((results / CALIBRATION_DIR).iterdir()):
        (results / CALIBRATION_DIR).rmdir()
    lines = [f"calibrating {len(missing)} shape(s), {EPOCHS} epochs each:"]
    return "\n".join(lines + cache_outcomes(results, outcomes, workflow_load, socket.gethostname()))


# The cluster way: a job per shape writes one file, a local job gathers them.


def calibrate_shape(cfg: RunConfig, device: str, threads: int, data_root: Path, out: Path) -> str:
    """Time cfg's shape on `device` and write the outcome to `out` (JSON), whether it was
    measured or not: the gathering reports the reason. Returns the account's line."""
    shape = shape_of(cfg, device)
    outcome = time_shape(cfg, device, threads, out.with_suffix(""), data_root)
    write_shape_file(out, shape, outcome, socket.gethostname())
    return outcome_line(shape, outcome)


def write_shape_file(path: Path, shape: Shape, outcome: Measured | str, host: str) -> None:
    """One calibration job's outcome, as `read_shape_file` reads it."""
    from flooding.atomic import atomic_write

    data: dict[str, object] = {"shape": dataclasses.asdict(shape), "host": host}
    if isinstance(outcome, str):
        data["error"] = outcome
    else:
        data |= {
            "run_s": outcome.timing.run_s,
            "epoch_s": outcome.timing.epoch_s,
            "process_startup_s": outcome.process_startup_s,
        }
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1) + "\n"))


def read_shape_file(path: Path) -> tuple[Shape, Measured | str, str]:
    """(shape, its outcome, host) from a file of `calibrate_shape`."""
    data = json.loads(path.read_text())
    shape = Shape(**data["shape"])
    if "error" in data:
        return shape, data["error"], data["host"]
    timing = Timing(data["run_s"], data["epoch_s"], 1, "calibration")
    return shape, Measured(timing, data["process_startup_s"]), data["host"]


def gather_calibration(files: Sequence[Path], results: Path, workflow_load: Sequence[str]) -> str:
    """Cache the outcomes of the calibration jobs; returns an account."""
    outcomes: dict[Shape, Measured | str] = {}
    hosts: set[str] = set()
    for path in files:
        shape, outcome, host = read_shape_file(path)
        outcomes[shape] = outcome
        hosts.add(host)
    lines = [f"gathered {len(files)} calibration job(s), {EPOCHS} epochs each:"]
    host = ", ".join(sorted(hosts))
    return "\n".join(lines + cache_outcomes(results, outcomes, workflow_load, host))
