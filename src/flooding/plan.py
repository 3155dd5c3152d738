"""`flooding plan`: what a grid will cost on a cluster, before it is submitted.

    flooding plan [--configfile FILE ...] [--calibrate] [--concurrent N] [--max-array-size N]

The config is layered as the workflow layers it (config/config.yaml, then each
--configfile over it) and expanded into the same jobs: a pack is one job, every other run
one (`flooding.grid`; a pack over `max_runtime` cut into packs that fit), and runs with
`runtime_auto` or `mem_auto` ask for what their shape used last time (`flooding.learned`).
Where a SLURM answers, a job asking for more than its partition's MaxTime stops the plan.
Per dataset and architecture, and in total, it prints runs, jobs, job arrays and CPU- and
GPU-hours, both as the jobs request them (runtime x threads, runtime x GPUs) and as they
are expected to take, then the same totals with every run a job of its own (what the
packs save), and the wall time with N jobs running at once.

Expected hours come from a run's shape (flooding.timing): finished runs under results/,
then a calibration (`--calibrate`: flooding.calibrate times a few epochs of each shape on
this machine and caches them under results/), otherwise "unknown", never a guess. The
last line is `jobs J, arrays A, gpu-hours G, cpu-hours C`, as requested.
"""

from __future__ import annotations

import argparse
import heapq
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from flooding.grid import Grid
from flooding.jobs import Resources, Run
from flooding.learned import run_shape
from flooding.timing import Shape, Timing, known_timings
from flooding.workflow_config import (
    InputError,
    load_config,
    load_grid,
    profile_partition,
    profile_setting,
)

if TYPE_CHECKING:  # the plugin's package imports Snakemake: read only when asked
    from snakemake_executor_plugin_submitit.limits import PartitionTime

# The executor plugin's defaults, for when neither the profile nor the cluster says.
DEFAULT_MAX_ARRAY_SIZE = 1000
DEFAULT_CONCURRENT = 100
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Job:
    """One job the workflow submits: a pack or a single run, with what it requests."""

    rule: str  # train or train_pack
    runs: tuple[Run, ...]
    resources: Resources
    target: str  # the output that names the job to Snakemake (as the rules write it)

    @property
    def group(self) -> tuple[str, str]:
        """(dataset label, architecture label), from the first member's path."""
        dataset, arch = self.runs[0].path.split("/")[:2]
        return dataset.rsplit("-noise", 1)[0], arch

    @property
    def requested_hours(self) -> float:
        return self.resources.runtime / 60


def grid_jobs(grid: Grid) -> list[Job]:
    """The grid's jobs in config order: each pack where its first member stands."""
    pack_of = {run.path: pack for pack in grid.packs for run in pack.runs}
    jobs: list[Job] = []
    placed: set[str] = set()
    for run in grid.runs:
        pack = pack_of.get(run.path)
        if pack is None:
            jobs.append(single_job(run))
        elif pack.name not in placed:
            placed.add(pack.name)
            done = f"results/packs/{pack.name}.done"
            jobs.append(Job("train_pack", pack.runs, pack.resources, done))
    return jobs


def single_job(run: Run) -> Job:
    return Job("train", (run,), run.resources, f"results/runs/{run.path}/run.json")


def unpacked_jobs(grid: Grid) -> list[Job]:
    """The same runs with one job each, as without packs."""
    return [single_job(run) for run in grid.runs]


def job_arrays(jobs: Sequence[Job], max_array_size: int) -> list[list[Job]]:
    """How the executor submits jobs that are ready together: one array per rule and
    request, cut at max_array_size (snakemake_executor_plugin_submitit.executor)."""
    groups: dict[tuple[str, Resources], list[Job]] = {}
    for job in jobs:
        groups.setdefault((job.rule, job.resources), []).append(job)
    return [
        members[start : start + max_array_size]
        for members in groups.values()
        for start in range(0, len(members), max_array_size)
    ]


def expected_seconds(
    job: Job, timings: Mapping[Shape, Timing], startup_s: float | None
) -> float | None:
    """A job's expected time: its runs', plus one process start-up when calibrated; None
    when a member's shape was never measured."""
    total = startup_s or 0.0
    for run in job.runs:
        timing = timings.get(run_shape(run))
        if timing is None:
            return None
        total += timing.run_seconds(run.config.epochs)
    return total


def makespan(durations: Iterable[float], slots: int) -> float:
    """Wall time of jobs run `slots` at a time, each started when a slot frees up, the
    longest first; a queue shared with other users takes longer."""
    finish = [0.0] * slots
    for duration in sorted(durations, reverse=True):
        heapq.heappush(finish, heapq.heappop(finish) + duration)
    return max(finish)


@dataclass(frozen=True)
class Hours:
    """CPU- and GPU-hours of some jobs; None for expected hours not all measured."""

    cpu: float | None
    gpu: float | None

    @classmethod
    def of(cls, jobs: Iterable[tuple[Job, float | None]]) -> Hours:
        """From (job, its hours); a job asks its threads and GPUs for those hours."""
        cpu: float | None = 0.0
        gpu: float | None = 0.0
        for job, hours in jobs:
            if hours is None:
                return cls(None, None)
            cpu += job.resources.threads * hours  # type: ignore[operator]
            gpu += job.resources.gpu * hours  # type: ignore[operator]
        return cls(cpu, gpu)


@dataclass(frozen=True)
class Line:
    """One line of the plan's table."""

    name: str
    runs: int
    jobs: int
    arrays: int
    requested: Hours
    expected: Hours


def hours_text(value: float | None) -> str:
    """Hours to a tenth, or two significant digits below one (a tiny grid is not 0.0)."""
    if value is None:
        return UNKNOWN
    return f"{value:,.1f}" if value >= 1 or value == 0 else f"{value:.2g}"


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return UNKNOWN
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:,.1f} h"


@dataclass(frozen=True)
class Plan:
    """Everything `flooding plan` prints, computed."""

    lines: list[Line]  # per dataset and architecture, then the total
    unpacked: Line
    wall_requested_s: float
    wall_expected_s: float | None
    concurrent: int
    max_array_size: int
    shapes: dict[Shape, tuple[int, Timing | None]]  # runs of each shape, and its timing
    startup_s: float | None
    # Searches for b: how many, and the most runs their later rounds can add (not above:
    # what they train is decided as the runs finish).
    searches: int = 0
    most_searched_runs: int = 0

    @property
    def total(self) -> Line:
        return self.lines[-1]


def _line(
    name: str,
    jobs: Sequence[Job],
    arrays: int,
    timings: Mapping[Shape, Timing],
    startup_s: float | None,
) -> Line:
    expected = [expected_seconds(job, timings, startup_s) for job in jobs]
    return Line(
        name=name,
        runs=sum(len(job.runs) for job in jobs),
        jobs=len(jobs),
        arrays=arrays,
        requested=Hours.of((job, job.requested_hours) for job in jobs),
        expected=Hours.of(
            (job, None if s is None else s / 3600) for job, s in zip(jobs, expected, strict=True)
        ),
    )


def make_plan(
    grid: Grid,
    timings: Mapping[Shape, Timing],
    startup_s: float | None,
    max_array_size: int,
    concurrent: int,
) -> Plan:
    jobs = grid_jobs(grid)
    arrays = job_arrays(jobs, max_array_size)
    array_of = {id(job): index for index, array in enumerate(arrays) for job in array}
    by_group: dict[tuple[str, str], list[Job]] = {}
    for job in jobs:
        by_group.setdefault(job.group, []).append(job)
    lines = [
        _line(
            f"{dataset} / {arch}",
            members,
            len({array_of[id(job)] for job in members}),
            timings,
            startup_s,
        )
        for (dataset, arch), members in by_group.items()
    ]
    lines.append(_line("total", jobs, len(arrays), timings, startup_s))
    alone = unpacked_jobs(grid)
    unpacked = _line("unpacked", alone, len(job_arrays(alone, max_array_size)), timings, startup_s)
    expected = [expected_seconds(job, timings, startup_s) for job in jobs]
    shapes: dict[Shape, tuple[int, Timing | None]] = {}
    for run in grid.runs:
        shape = run_shape(run)
        count, timing = shapes.get(shape, (0, timings.get(shape)))
        shapes[shape] = (count + 1, timing)
    return Plan(
        lines=lines,
        unpacked=unpacked,
        wall_requested_s=makespan((job.requested_hours * 3600 for job in jobs), concurrent),
        wall_expected_s=None
        if any(s is None for s in expected)
        else makespan((s for s in expected if s is not None), concurrent),
        concurrent=concurrent,
        max_array_size=max_array_size,
        shapes=shapes,
        startup_s=startup_s,
        searches=len(grid.searches),
        most_searched_runs=sum(search.most_later_runs for search in grid.searches),
    )


def render(plan: Plan) -> str:
    """The plan as text; the last line sums up what the jobs request."""
    header = (
        "dataset / arch",
        "runs",
        "jobs",
        "arrays",
        "req cpu-h",
        "req gpu-h",
        "exp cpu-h",
        "exp gpu-h",
    )
    rows = [header] + [
        (
            line.name,
            f"{line.runs:,}",
            f"{line.jobs:,}",
            f"{line.arrays:,}",
            hours_text(line.requested.cpu),
            hours_text(line.requested.gpu),
            hours_text(line.expected.cpu),
            hours_text(line.expected.gpu),
        )
        for line in [*plan.lines, plan.unpacked]
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    table = [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    # A rule above the total, and the unpacked line apart: it is the same runs again.
    table.insert(len(rows) - 2, "-" * len(table[0]))
    table.insert(len(rows), "")
    total = plan.total
    out = [
        *table,
        "(unpacked: the same runs, one job each; arrays of at most "
        f"{plan.max_array_size} tasks; a group's arrays may be shared with other groups)",
        "",
        f"wall time at {plan.concurrent} concurrent jobs: requested "
        f"{duration_text(plan.wall_requested_s)}, expected {duration_text(plan.wall_expected_s)}",
        "",
        "seconds per epoch, by shape:",
    ]
    for shape, (runs, timing) in sorted(plan.shapes.items()):
        if timing is None:
            where = (
                f"{UNKNOWN} (no finished run; flooding plan --calibrate, or on the cluster: "
                "snakemake --profile slurm calibrate)"
            )
        elif timing.source == "results":
            where = f"{timing.epoch_s:.3g} s (median of {timing.runs} finished runs)"
        else:
            where = f"{timing.epoch_s:.3g} s (calibration)"
        out.append(f"  {shape.describe()}: {runs:,} runs, {where}")
    startup = (
        "not included (never calibrated: flooding plan --calibrate)"
        if plan.startup_s is None
        else f"{plan.startup_s:.1f} s a job (calibration)"
    )
    out += [f"job start-up: {startup}", ""]
    if plan.searches:
        out += [
            f"searches for b: {plan.searches} settings; the runs above are their b = 0 runs "
            "(and listed first rounds); their later rounds, decided as runs finish, add at "
            f"most {plan.most_searched_runs:,} runs (docs/search.md)",
            "",
        ]
    out.append(
        f"jobs {total.jobs}, arrays {total.arrays}, gpu-hours {hours_text(total.requested.gpu)}, "
        f"cpu-hours {hours_text(total.requested.cpu)}"
    )
    return "\n".join(out)


def cluster_limits(root: Path) -> tuple[int, PartitionTime | None]:
    """The array size the executor will use (the profile's, capped by the cluster's limits)
    and the time limit of the partition the profile submits to, where a SLURM answers
    here (login node); the partition is asked only when `scontrol show config` answered."""
    from snakemake_executor_plugin_submitit.limits import read_cluster_limits, read_partition_time

    configured = profile_setting(root, "max-array-size", DEFAULT_MAX_ARRAY_SIZE)
    limits = read_cluster_limits()
    answered = limits.max_array_size is not None
    partition = read_partition_time(profile_partition(root)) if answered else None
    return limits.array_size(configured), partition


def check_partition_time(jobs: Sequence[Job], partition: PartitionTime | None) -> None:
    """InputError when some job asks for more time than the partition allows: SLURM would
    leave it pending. The split happens in the workflow, from resources.max_runtime (the
    same on every node, with no query each time a job loads the workflow)."""
    if partition is None or partition.max_minutes is None:
        return
    limit = partition.max_minutes
    over = [job for job in jobs if job.resources.runtime > limit]
    if over:
        longest = max(over, key=lambda job: job.resources.runtime)
        raise InputError(
            f"partition {partition.partition} allows {limit} min (MaxTime), but {len(over)} "
            f"job(s) ask for more, up to {longest.resources.runtime} min ({longest.target}): "
            f"set resources: {{max_runtime: {limit}}} in the config, and packs are split to fit"
        )


def workflow_load_command(configfiles: Sequence[Path], job: Job) -> list[str]:
    """A dry run of one job: what a job's own Snakemake does before the job starts."""
    command = [sys.executable, "-m", "snakemake", job.target, "--dry-run", "--cores", "1"]
    if configfiles:
        command += ["--configfile", *map(str, configfiles)]
    return command


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="flooding plan",
        description="What the workflow's grid will cost on a cluster: runs, jobs, job arrays, "
        "CPU- and GPU-hours requested and expected, per dataset and architecture. Run from "
        "the repository root, as snakemake.",
        allow_abbrev=False,
    )
    p.add_argument(
        "--configfile",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a config merged over config/config.yaml, as snakemake --configfile; repeatable",
    )
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="first time a few epochs of each shape without a measurement on this machine "
        "(cached in results/calibration.json)",
    )
    p.add_argument(
        "--concurrent",
        type=int,
        default=None,
        metavar="N",
        help="jobs running at once, for the wall time (default: the profile's "
        f"submitit-array-parallelism, else {DEFAULT_CONCURRENT})",
    )
    p.add_argument(
        "--max-array-size",
        type=int,
        default=None,
        metavar="N",
        help="tasks per job array (default: the profile's, capped by the cluster's "
        "MaxArraySize and MaxSubmitJobs where SLURM answers)",
    )
    return p


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    root = Path(".")
    results = root / "results"
    try:
        for name in ("concurrent", "max_array_size"):
            value = getattr(args, name)
            if value is not None and value < 1:
                raise InputError(f"--{name.replace('_', '-')} {value}: must be at least 1")
        config = load_config(args.configfile, root)
        grid = load_grid(config, results)
        if args.calibrate:
            from flooding.calibrate import calibrate_missing

            load = workflow_load_command(args.configfile, grid_jobs(grid)[0])
            print(
                calibrate_missing(grid, results, Path(config["data_root"]), load),
                file=sys.stderr,
            )
            grid = load_grid(config, results)  # runtime_auto may now learn more
        timings, startup_s = known_timings(results)
        concurrent = args.concurrent or profile_setting(
            root, "array-parallelism", DEFAULT_CONCURRENT
        )
        max_size = args.max_array_size
        if max_size is None:
            max_size, partition = cluster_limits(root)
            check_partition_time(grid_jobs(grid), partition)
    except InputError as error:
        print(f"flooding plan: error: {error}", file=sys.stderr)
        return 2
    print(render(make_plan(grid, timings, startup_s, max_size, concurrent)))
    return 0
