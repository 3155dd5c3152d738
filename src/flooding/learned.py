"""Runtime requests learned from the last run: `resources: {runtime_auto: true}`.

A run whose resources set `runtime_auto` asks for what a run of its shape took before
(flooding.timing: finished runs under results/, else a calibration), times
`SAFETY_FACTOR`, rounded up to whole minutes, plus the calibrated process start-up when
there is one. With nothing measured for its shape it asks for its configured `runtime`.
A pack asks for the sum of its members' requests, as always (flooding.packing).

The factor covers the spread between runs of one shape (the slowest of a grid's seeds and
levels, a busier node) and the evaluation of a larger test set than the one measured; a
run that still reaches its limit is checkpointed and requeued (docs/cluster.md), so a
too-short request costs a requeue, not the run.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path

from flooding.grid import Grid
from flooding.jobs import Run
from flooding.packing import group_packs
from flooding.timing import Shape, Timing, known_timings, shape_of

SAFETY_FACTOR = 1.5


def device_of(run: Run) -> str:
    """The device kind a run trains on: the config gives it GPUs or not."""
    return "cuda" if run.resources.gpu > 0 else "cpu"


def run_shape(run: Run) -> Shape:
    return shape_of(run.config, device_of(run))


def learned_minutes(seconds: float) -> int:
    """The request for a run expected to take `seconds`: times the factor, whole minutes."""
    return max(1, math.ceil(SAFETY_FACTOR * seconds / 60))


def with_learned_runtimes(
    grid: Grid, timings: Mapping[Shape, Timing], startup_s: float | None
) -> Grid:
    """The grid with each `runtime_auto` run's runtime learned from its shape's timing;
    runs without a timing keep their configured runtime. Packs are regrouped, so that
    they sum the learned requests."""
    runs: list[Run] = []
    for run in grid.runs:
        timing = timings.get(run_shape(run)) if run.resources.runtime_auto else None
        if timing is not None:
            seconds = timing.run_seconds(run.config.epochs) + (startup_s or 0.0)
            resources = dataclasses.replace(run.resources, runtime=learned_minutes(seconds))
            run = dataclasses.replace(run, resources=resources)
        runs.append(run)
    packs = group_packs(runs)
    return Grid(
        tuple(runs), {run.path: run for run in runs}, packs, {pack.name: pack for pack in packs}
    )


def learn_runtimes(grid: Grid, results: Path) -> Grid:
    """`with_learned_runtimes` from what results/ holds; reads nothing (and so imports no
    pandas) when no run asks for it."""
    if not any(run.resources.runtime_auto for run in grid.runs):
        return grid
    timings, startup_s = known_timings(results)
    return with_learned_runtimes(grid, timings, startup_s)
