"""Resources learned from the last run, and the time limit every job must fit.

`resources: {runtime_auto: true}`: a run asks for what a run of its shape took before
(flooding.timing: finished runs under results/, else a calibration), times
`SAFETY_FACTOR`, rounded up to whole minutes, plus the calibrated process start-up when
there is one. With nothing measured for its shape it asks for its configured `runtime`.
A pack asks for the sum of its members' requests, as always (flooding.packing).

The factor covers the spread between runs of one shape (the slowest of a grid's seeds and
levels, a busier node) and the evaluation of a larger test set than the one measured; a
run that still reaches its limit is checkpointed and requeued (docs/cluster.md), so a
too-short request costs a requeue, not the run.

`resources: {mem_auto: true}`: a run asks for the largest memory a job of its shape used
(flooding.memory: the efficiency account's MaxRSS, the training process's peak in
run.json), times `MEMORY_FACTOR`, in whole MB; with nothing measured, its configured
`mem_mb`. A pack asks for the largest request of its members (one process trains them
one stack after another, so their memory does not add up); what a stack of more members
adds than the stacks measured is not modelled, the factor has to cover it.

`resources: {max_runtime: N}`: packs are regrouped after learning, and group_packs cuts
a pack that would ask for more than N minutes into packs that fit; a run that asks for
more on its own cannot be split, and `check_time_limits` refuses it, naming it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path

from flooding.grid import Grid, GridError
from flooding.jobs import Run
from flooding.memory import known_peaks
from flooding.packing import group_packs
from flooding.timing import Shape, Timing, known_timings, shape_of

SAFETY_FACTOR = 1.5
MEMORY_FACTOR = 1.5


def device_of(run: Run) -> str:
    """The device kind a run trains on: the config gives it GPUs or not."""
    return "cuda" if run.resources.gpu > 0 else "cpu"


def run_shape(run: Run) -> Shape:
    return shape_of(run.config, device_of(run))


def learned_minutes(seconds: float) -> int:
    """The request for a run expected to take `seconds`: times the factor, whole minutes."""
    return max(1, math.ceil(SAFETY_FACTOR * seconds / 60))


def learned_mb(peak_mb: float) -> int:
    """The memory request for a run whose shape peaked at `peak_mb`: times the factor."""
    return max(1, math.ceil(MEMORY_FACTOR * peak_mb))


def learned_run(
    run: Run, timings: Mapping[Shape, Timing], startup_s: float | None, peaks: Mapping[Shape, float]
) -> Run:
    """The run with the requests its `runtime_auto` and `mem_auto` learn; a request
    whose shape has no measurement stays as configured."""
    resources = run.resources
    timing = timings.get(run_shape(run)) if resources.runtime_auto else None
    if timing is not None:
        seconds = timing.run_seconds(run.config.epochs) + (startup_s or 0.0)
        resources = dataclasses.replace(resources, runtime=learned_minutes(seconds))
    peak = peaks.get(run_shape(run)) if resources.mem_auto else None
    if peak is not None:
        resources = dataclasses.replace(resources, mem_mb=learned_mb(peak))
    return run if resources == run.resources else dataclasses.replace(run, resources=resources)


def with_learned_resources(
    grid: Grid,
    timings: Mapping[Shape, Timing],
    startup_s: float | None,
    peaks: Mapping[Shape, float],
) -> Grid:
    """The grid with each run's learned requests; runs without a measurement keep their
    configured ones. Packs are regrouped, so that they sum the learned runtimes (and are
    split where that passes max_runtime), and the searches' b = 0 runs are the learned
    ones, which their later rounds copy."""
    runs = tuple(learned_run(run, timings, startup_s, peaks) for run in grid.runs)
    by_path = {run.path: run for run in runs}
    packs = group_packs(runs)
    searches = tuple(
        dataclasses.replace(s, baselines=tuple(by_path[b.path] for b in s.baselines))
        for s in grid.searches
    )
    return Grid(runs, by_path, packs, {pack.name: pack for pack in packs}, searches)


def check_time_limits(grid: Grid) -> None:
    """GridError naming the first job (a run: packs are cut to fit) that asks for more
    than its max_runtime."""
    for path in grid.singles:
        resources = grid.by_path[path].resources
        limit = resources.max_runtime
        if limit is not None and resources.runtime > limit:
            auto = " (runtime_auto)" if resources.runtime_auto else ""
            raise GridError(
                f"run {path} asks for {resources.runtime} min{auto}, above "
                f"resources.max_runtime {limit} min; one run cannot be split: raise "
                "max_runtime or give it fewer epochs"
            )


def learn_resources(grid: Grid, results: Path) -> Grid:
    """The grid as the workflow submits it: `with_learned_resources` from what results/
    holds (read only when some run asks for it, so that a grid without imports no
    pandas), every job within its time limit."""
    auto = [(run.resources.runtime_auto, run.resources.mem_auto) for run in grid.runs]
    if any(runtime or mem for runtime, mem in auto):
        timings, startup_s = known_timings(results) if any(r for r, _ in auto) else ({}, None)
        peaks = known_peaks(results) if any(m for _, m in auto) else {}
        grid = with_learned_resources(grid, timings, startup_s, peaks)
    check_time_limits(grid)
    return grid
