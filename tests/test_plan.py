"""`flooding plan`: jobs, arrays and hours of a grid, timings by shape, learned runtimes."""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from test_workflow import copy_workflow, snakemake
from test_workflow_config import filled  # the config as the Snakefile sees it

from flooding.calibrate import calibrate_missing, calibration_config
from flooding.cli import main
from flooding.config import RunConfig
from flooding.grid import Grid, expand_grid
from flooding.learned import (
    SAFETY_FACTOR,
    learned_mb,
    learned_minutes,
    run_shape,
    with_learned_resources,
)
from flooding.memory import known_peaks
from flooding.plan import (
    Hours,
    grid_jobs,
    job_arrays,
    make_plan,
    makespan,
    render,
)
from flooding.schema import merge_configs
from flooding.timing import (
    Calibration,
    Shape,
    Timing,
    device_kind,
    finished_timings,
    known_timings,
    read_calibration,
    shape_of,
    write_calibration,
)

ROOT = Path(__file__).resolve().parents[1]


def config(**top: Any) -> dict[str, Any]:
    """Spiral and Gaussians, 2 levels x 3 seeds each, MLPs: 12 runs."""
    base: dict[str, Any] = {
        "training": {"train_size": 100, "test_size": 100, "batch_size": 20, "epochs": 10},
        "resources": {"threads": 2, "mem_mb": 1000, "runtime": 30, "gpu": 0},
        "archs": [{"name": "mlp"}],
        "datasets": [{"name": "spiral"}, {"name": "gaussians"}],
        "flood": {"methods": ["flood"], "levels": [0.0, 0.1]},
        "seeds": [0, 1, 2],
    }
    base.update(top)
    return filled(base)


def packed_grid() -> Grid:
    """Spiral packed by flood (3 packs of 2), the Gaussians one run a job on a GPU."""
    return expand_grid(
        config(
            datasets=[
                {"name": "spiral", "pack": {"by": ["flood"], "max_runs": 2}},
                {"name": "gaussians", "resources": {"gpu": 1, "runtime": 60}},
            ]
        )
    )


def timings_for(grid: Grid, epoch_s: float, run_s: float) -> dict[Shape, Timing]:
    return {run_shape(run): Timing(run_s, epoch_s, 1, "results") for run in grid.runs}


def test_a_pack_is_one_job_and_asks_for_its_members_runtimes() -> None:
    grid = packed_grid()
    jobs = grid_jobs(grid)
    assert len(grid.runs) == 12
    assert [job.rule for job in jobs] == ["train_pack"] * 3 + ["train"] * 6
    assert [len(job.runs) for job in jobs] == [2, 2, 2] + [1] * 6
    assert jobs[0].resources.runtime == 60
    assert jobs[0].target.startswith("results/packs/spiral-noise0/mlp/")
    assert jobs[3].target == f"results/runs/{jobs[3].runs[0].path}/run.json"


def test_arrays_group_equal_requests_and_are_cut_at_the_array_size() -> None:
    jobs = grid_jobs(packed_grid())
    # The packs and the GPU runs ask for different things: two arrays.
    assert [len(array) for array in job_arrays(jobs, 1000)] == [3, 6]
    assert [len(array) for array in job_arrays(jobs, 4)] == [3, 4, 2]


def test_requested_hours_are_runtime_times_threads_and_gpus() -> None:
    plan = make_plan(packed_grid(), {}, None, max_array_size=1000, concurrent=10)
    total = plan.total
    # Packs: 3 jobs x 60 min x 2 threads; GPU runs: 6 jobs x 60 min x (2 threads, 1 GPU).
    assert total.requested == Hours(cpu=3 * 1 * 2 + 6 * 1 * 2, gpu=6 * 1.0)
    assert (total.runs, total.jobs, total.arrays) == (12, 9, 2)
    assert total.expected == Hours(None, None)
    # Unpacked: every run its own job; a pack's request was already its members' sum.
    assert (plan.unpacked.jobs, plan.unpacked.requested) == (12, total.requested)
    assert [line.name for line in plan.lines] == ["spiral / mlp", "gaussians / mlp", "total"]


def test_expected_hours_add_each_jobs_start_up_once() -> None:
    grid = packed_grid()
    plan = make_plan(grid, timings_for(grid, epoch_s=2.0, run_s=5.0), 30.0, 1000, 10)
    run_s = 5.0 + 10 * 2.0
    packs, singles = 3 * (30 + 2 * run_s), 6 * (30 + run_s)
    assert plan.total.expected.cpu == pytest.approx(2 * (packs + singles) / 3600)
    assert plan.total.expected.gpu == pytest.approx(singles / 3600)
    # Without packs each run pays the start-up: the saving shows.
    assert plan.unpacked.expected.cpu == pytest.approx(2 * 12 * (30 + run_s) / 3600)
    # Ten slots for nine jobs: the wall time is the longest job, a pack.
    assert plan.wall_expected_s == pytest.approx(30 + 2 * run_s)
    one_at_a_time = make_plan(grid, timings_for(grid, 2.0, 5.0), 30.0, 1000, concurrent=1)
    assert one_at_a_time.wall_expected_s == pytest.approx(packs + singles)


def test_a_shape_without_a_timing_makes_the_hours_unknown() -> None:
    grid = packed_grid()
    timings = timings_for(grid, 2.0, 5.0)
    gaussians = next(run_shape(run) for run in grid.runs if run.config.dataset == "gaussians")
    del timings[gaussians]
    plan = make_plan(grid, timings, None, 1000, 10)
    assert plan.lines[0].expected.cpu is not None
    assert plan.lines[1].expected == plan.total.expected == Hours(None, None)
    text = render(plan)
    assert (
        "unknown (no finished run; flooding plan --calibrate, or on the cluster: "
        "snakemake --profile slurm calibrate)"
    ) in text
    assert text.splitlines()[-1] == "jobs 9, arrays 2, gpu-hours 6.0, cpu-hours 18.0"


def test_makespan_starts_the_longest_jobs_first() -> None:
    assert makespan([2, 3, 4, 3], slots=2) == 6  # 4 + 2 and 3 + 3
    assert makespan([5], slots=3) == 5
    assert makespan([1] * 10, slots=4) == 3


def test_configfiles_merge_as_snakemake_merges_them() -> None:
    base = {"training": {"epochs": 5, "lr": 0.1}, "seeds": [0, 1]}
    merged = merge_configs(base, {"training": {"epochs": 7}, "seeds": [3]})
    assert merged == {"training": {"epochs": 7, "lr": 0.1}, "seeds": [3]}
    assert base["training"]["epochs"] == 5


def write_tables(results: Path, runs: list[tuple[RunConfig, str, list[float], float]]) -> None:
    """Aggregated tables of finished runs: (config, device, epoch_seconds, sharpness_s)."""
    summary, metrics = [], []
    for index, (cfg, device, seconds, sharpness) in enumerate(runs):
        run_dir = f"results/runs/r{index}"
        summary.append(
            {
                **cfg.to_dict(),
                "run_dir": run_dir,
                "status": "completed",
                "device": device,
                "sharpness_seconds": sharpness,
            }
        )
        metrics += [
            {"run_dir": run_dir, "epoch": epoch, "epoch_seconds": s}
            for epoch, s in enumerate(seconds)
        ]
    results.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(summary).to_parquet(results / "summary.parquet")
    pd.DataFrame(metrics).to_parquet(results / "metrics.parquet")


def test_finished_runs_time_their_shape_whatever_their_flood_level(tmp_path: Path) -> None:
    cfg = RunConfig(dataset="spiral", epochs=2, batch_size=20)
    write_tables(
        tmp_path,
        [
            (cfg, "cpu (1 thread)", [1.0, 2.0, 4.0], 0.5),
            (
                RunConfig(dataset="spiral", epochs=2, batch_size=20, flood_level=0.3, seed=4),
                "cpu (2 threads)",
                [3.0, 6.0, 6.0],
                0.5,
            ),
            (cfg, "cuda:0 (NVIDIA H100)", [0.1, 0.2, 0.2], 0.0),
        ],
    )
    timings = finished_timings(tmp_path)
    cpu = timings[shape_of(cfg, "cpu")]
    # Medians over the two CPU runs: epochs (3 and 6 s), once (1.5 and 3.5 s).
    assert (cpu.epoch_s, cpu.run_s, cpu.runs, cpu.source) == (4.5, 2.5, 2, "results")
    assert timings[shape_of(cfg, "cuda")].epoch_s == pytest.approx(0.2)
    assert shape_of(dataclass_replace(cfg, batch_size=40), "cpu") not in timings
    assert cpu.run_seconds(10) == 2.5 + 45


def dataclass_replace(cfg: RunConfig, **changes: Any) -> RunConfig:
    return RunConfig.from_dict({**cfg.to_dict(), **changes})


def test_finished_runs_come_before_a_calibration(tmp_path: Path) -> None:
    measured = RunConfig(dataset="spiral", epochs=2)
    calibrated_only = RunConfig(dataset="gaussians", epochs=2)
    write_tables(tmp_path, [(measured, "cpu (1 thread)", [1.0, 2.0, 2.0], 0.0)])
    write_calibration(
        tmp_path,
        Calibration(
            {
                shape_of(cfg, "cpu"): Timing(9.0, 9.0, 1, "calibration")
                for cfg in (measured, calibrated_only)
            },
            startup_s=4.0,
        ),
    )
    timings, startup_s = known_timings(tmp_path)
    assert timings[shape_of(measured, "cpu")].source == "results"
    assert timings[shape_of(calibrated_only, "cpu")].source == "calibration"
    assert startup_s == 4.0


def test_device_kind_reads_run_json() -> None:
    assert device_kind("cpu (1 thread)") == "cpu"
    assert device_kind("cuda:0 (NVIDIA H100 80GB HBM3)") == "cuda"


def test_no_tables_no_timings(tmp_path: Path) -> None:
    assert finished_timings(tmp_path) == {}
    assert known_timings(tmp_path) == ({}, None)


def test_runtime_auto_asks_what_the_shape_took_times_the_factor() -> None:
    grid = expand_grid(config(resources={"runtime": 30, "runtime_auto": True, "threads": 1}))
    learned = with_learned_resources(grid, timings_for(grid, epoch_s=30.0, run_s=60.0), 20.0, {})
    # 60 + 10 x 30 + 20 s = 380 s, x 1.5 = 9.5 min: 10 minutes.
    assert learned_minutes(380) == math.ceil(SAFETY_FACTOR * 380 / 60) == 10
    assert {run.resources.runtime for run in learned.runs} == {10}
    assert learned.by_path[learned.runs[0].path].resources.runtime == 10


def test_runtime_auto_without_history_asks_the_configured_runtime() -> None:
    grid = expand_grid(config(resources={"runtime": 30, "runtime_auto": True, "threads": 1}))
    assert with_learned_resources(grid, {}, None, {}).runs == grid.runs
    assert {run.resources.runtime for run in grid.runs} == {30}


def test_runtime_auto_is_per_entry_and_packs_sum_the_learned_requests() -> None:
    grid = expand_grid(
        config(
            datasets=[
                {
                    "name": "spiral",
                    "pack": {"by": ["flood"], "max_runs": 2},
                    "resources": {"runtime_auto": True},
                },
                {"name": "gaussians"},
            ]
        )
    )
    learned = with_learned_resources(grid, timings_for(grid, epoch_s=30.0, run_s=60.0), None, {})
    assert {pack.resources.runtime for pack in learned.packs} == {2 * learned_minutes(360)}
    gaussians = [run for run in learned.runs if run.config.dataset == "gaussians"]
    assert {run.resources.runtime for run in gaussians} == {30}


def test_learning_keeps_the_searches_and_their_rounds_ask_what_was_learned() -> None:
    grid = expand_grid(
        config(
            resources={"runtime": 30, "runtime_auto": True, "threads": 1},
            flood={"methods": ["flood"], "levels": "auto"},
        )
    )
    assert len(grid.searches) == 2
    learned = with_learned_resources(grid, timings_for(grid, epoch_s=30.0, run_s=60.0), None, {})
    assert [s.name for s in learned.searches] == [s.name for s in grid.searches]
    later = learned.searches[0].runs({"flood": [0.3]})
    assert {run.resources.runtime for run in later} == {learned_minutes(360)}


def test_calibration_scales_a_large_dataset_down_and_back_up() -> None:
    cfg = RunConfig(dataset="mnist", batch_size=200, val_fraction=0.2)
    smaller, scale = calibration_config(cfg)
    assert smaller.train_size == 5000 and smaller.epochs == 3
    assert scale == pytest.approx(5000 / 60000)
    assert smaller.test_size == math.ceil(10000 * scale)
    small, same = calibration_config(RunConfig(dataset="spiral", train_size=100))
    assert (small.train_size, same) == (100, 1.0)


def workflow_copy(tmp_path: Path) -> Path:
    for name in ("config", "workflow"):
        shutil.copytree(ROOT / name, tmp_path / name)
    return tmp_path


@pytest.mark.slow
def test_calibration_times_each_shape_and_caches_it(tmp_path: Path) -> None:
    grid = expand_grid(filled(yaml.safe_load((ROOT / "config/ci.yaml").read_text())))
    results = tmp_path / "results"
    account = calibrate_missing(grid, results, tmp_path / "data", [sys.executable, "-c", ""])
    calibration = read_calibration(results)
    shapes = {run_shape(run) for run in grid.runs}
    assert set(calibration.timings) == shapes, account
    assert all(t.epoch_s > 0 and t.run_s > 0 for t in calibration.timings.values())
    assert calibration.startup_s is not None and calibration.startup_s > 0
    assert not (results / "calibration").exists()
    # A second calibration finds nothing left to time.
    assert "calibrating 0 shape(s)" in calibrate_missing(grid, results, tmp_path, ["false"])


def test_plan_command_prints_counts_and_unknown_hours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(workflow_copy(tmp_path))
    args = ["plan", "--configfile", "config/paper.yaml", "--max-array-size", "1000"]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    # The runs of flood, iflood and adaflood (its three gammas; the plan does not count the
    # auxiliary models' jobs); the 28x28 benchmarks' MLPs in packs of a seed's 24 flood
    # settings, one GPU each.
    assert lines[-1] == "jobs 1116, arrays 4, gpu-hours 10,800.0, cpu-hours 46,080.0"
    total = next(line for line in lines if line.startswith("total"))
    assert total.split()[1:4] == ["3,168", "1,116", "4"]
    assert total.split()[-2:] == ["unknown", "unknown"]
    mnist = next(line for line in lines if line.startswith("mnist / mlp2x1000"))
    assert mnist.split()[3:6] == ["288", "12", "1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--configfile", "nowhere.yaml"], "--configfile nowhere.yaml: no such file"),
        (["--concurrent", "0"], "--concurrent 0: must be at least 1"),
        (
            ["--configfile", "config/paper.yaml", "--calibrate"],
            "this machine has no CUDA device; calibrate on a GPU node, or as jobs on the "
            "cluster: snakemake --profile slurm calibrate",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    torch = pytest.importorskip("torch")
    if "--calibrate" in args and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    monkeypatch.chdir(workflow_copy(tmp_path))
    assert main(["plan", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "results").exists()  # nothing timed, nothing cached


def dry_run_requests(workdir: Path, name: str) -> set[int]:
    """The values of resource `name` the jobs would request if all ran again now (only
    training asks for runtime and mem_mb)."""
    output = snakemake(workdir, "--dry-run", "--forceall").stdout
    return {
        int(part.removeprefix(f"{name}="))
        for line in output.splitlines()
        if line.strip().startswith("resources:")
        for part in line.replace(",", " ").split()
        if part.startswith(f"{name}=")
    }


@pytest.mark.slow
def test_a_second_run_asks_for_what_the_first_measured(tmp_path: Path) -> None:
    """Runtime and memory: both learned from the first run's runs (run.json's peak memory
    here; after a cluster run, also the efficiency account's MaxRSS)."""
    ci = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    ci["resources"] |= {"runtime": 7, "runtime_auto": True, "mem_mb": 1000, "mem_auto": True}
    workdir = copy_workflow(tmp_path, ci)
    # Nothing measured: the configured requests.
    assert dry_run_requests(workdir, "runtime") == {7}
    assert dry_run_requests(workdir, "mem_mb") == {1000}
    snakemake(workdir)
    timings, _ = known_timings(workdir / "results")
    peaks = known_peaks(workdir / "results")
    learned = with_learned_resources(expand_grid(filled(ci)), timings, None, peaks)
    expected = {run.resources.runtime for run in learned.runs}
    assert expected == {
        learned_minutes(timings[run_shape(run)].run_seconds(run.config.epochs))
        for run in learned.runs
    }
    assert dry_run_requests(workdir, "runtime") == expected != {7}
    memory = {run.resources.mem_mb for run in learned.runs}
    assert memory == {learned_mb(peaks[run_shape(run)]) for run in learned.runs}
    assert dry_run_requests(workdir, "mem_mb") == memory != {1000}
