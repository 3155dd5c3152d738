"""Calibration of a grid's shapes: which are left to time, one job per shape and its
file, the gathering into results/calibration.json, and `snakemake calibrate` run for real
on a tiny grid through the executor plugin's local backend."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
import yaml
from test_plan import config, write_tables
from test_workflow import copy_workflow, planned_counts, snakemake
from test_workflow_config import filled

from flooding.calibrate import (
    JOB_RUNTIME,
    Measured,
    gather_calibration,
    job_resources,
    read_shape_file,
    shapes_to_calibrate,
    write_shape_file,
)
from flooding.cli import main
from flooding.config import RunConfig
from flooding.grid import expand_grid
from flooding.jobs import Resources, train_arguments
from flooding.learned import run_shape
from flooding.schema import merge_configs
from flooding.timing import (
    Calibration,
    Shape,
    Timing,
    read_calibration,
    shape_of,
    write_calibration,
)

ROOT = Path(__file__).resolve().parents[1]


def test_a_shapes_name_tells_every_field_apart() -> None:
    cfg = RunConfig(dataset="mnist", mlp_depth=2, mlp_width=1000, batch_size=200)
    assert shape_of(cfg, "cuda").name == "mnist-mlp2x1000-batch200-cuda"
    changes = [
        {"dataset": "kmnist"},
        {"train_size": 5000},
        {"test_size": 500},
        {"arch": "resnet18"},
        {"mlp_depth": 3},
        {"mlp_width": 500},
        {"batch_size": 100},
        {"augment": True},
    ]
    shapes = [shape_of(cfg, "cuda"), shape_of(cfg, "cpu")]
    shapes += [shape_of(dataclasses.replace(cfg, **change), "cuda") for change in changes]
    assert len({shape.name for shape in shapes}) == len(shapes) == len(set(shapes))
    assert shapes[3].name == "mnist-train5000-testdefault-mlp2x1000-batch200-cuda"
    assert shapes[5].name == "mnist-resnet18-batch200-cuda"


def test_only_shapes_that_nothing_measured_are_left_to_calibrate(tmp_path: Path) -> None:
    grid = expand_grid(config())
    spiral, gaussians = grid.runs[0], next(r for r in grid.runs if r.config.dataset == "gaussians")
    assert shapes_to_calibrate(grid, tmp_path) == {
        run_shape(spiral): spiral,
        run_shape(gaussians): gaussians,
    }
    # An earlier calibration measured the spiral shape, but no job's start-up.
    timing = Timing(1.0, 0.5, 1, "calibration")
    write_calibration(tmp_path, Calibration({run_shape(spiral): timing}, None))
    assert shapes_to_calibrate(grid, tmp_path) == {run_shape(gaussians): gaussians}
    # Finished runs measure the Gaussians: every shape is measured, the start-up is not,
    # so one shape is still timed for it.
    write_tables(tmp_path, [(gaussians.config, "cpu (2 threads)", [1.0, 2.0, 2.0], 0.0)])
    assert shapes_to_calibrate(grid, tmp_path) == {run_shape(spiral): spiral}
    write_calibration(tmp_path, Calibration({}, startup_s=3.0))
    assert shapes_to_calibrate(grid, tmp_path) == {}


def test_a_calibration_job_asks_for_its_runs_resources_for_a_short_time() -> None:
    runs = Resources(threads=4, mem_mb=8000, runtime=240, gpu=1, runtime_auto=True)
    assert job_resources(runs) == Resources(4, 8000, JOB_RUNTIME, 1, runtime_auto=False)
    assert job_resources(dataclasses.replace(runs, runtime=5)).runtime == 5


def tiny_shape(dataset: str) -> Shape:
    return shape_of(RunConfig(dataset=dataset, train_size=100), "cpu")


def test_the_gathering_caches_what_the_jobs_measured_and_says_what_they_did_not(
    tmp_path: Path,
) -> None:
    results = tmp_path / "results"
    earlier = {tiny_shape("sinusoid"): Timing(7.0, 7.0, 1, "calibration")}
    write_calibration(results, Calibration(earlier, None))
    outcomes: dict[Shape, Measured | str] = {
        tiny_shape("spiral"): Measured(Timing(0.5, 0.25, 1, "calibration"), 2.0),
        tiny_shape("gaussians"): Measured(Timing(0.75, 0.5, 1, "calibration"), 4.0),
        tiny_shape("digits"): "dataset digits is not in data",
    }
    files = []
    for index, (each, outcome) in enumerate(outcomes.items()):
        files.append(tmp_path / f"{each.name}.json")
        write_shape_file(files[-1], each, outcome, f"node{index % 2}")
    assert [read_shape_file(f)[:2] for f in files] == list(outcomes.items())
    # The dry run of a job fails: the start-up is the processes' alone (their median).
    account = gather_calibration(files, results, ["false"])
    calibration = read_calibration(results)
    assert calibration.timings == {
        **earlier,
        **{each: o.timing for each, o in outcomes.items() if isinstance(o, Measured)},
    }
    assert (calibration.startup_s, calibration.host) == (3.0, "node0, node1")
    assert "not measured (dataset digits is not in data)" in account
    assert "start-up of a job's Snakemake not measured" in account
    # With a dry run that works, it is added to the start-up.
    gather_calibration(files[:1], results, [sys.executable, "-c", "import time; time.sleep(0.3)"])
    assert read_calibration(results).startup_s >= 2.3


def test_calibrate_shape_needs_the_device_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibrate-shape", "--dataset", "spiral", "--out", "x.json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "device" in err and "cpu or cuda" in err, err


@pytest.mark.slow
def test_calibrate_shape_writes_the_timing_or_why_not(tmp_path: Path) -> None:
    cfg = RunConfig(dataset="spiral", train_size=100, test_size=100, epochs=50)
    out = tmp_path / "results" / "calibration" / "spiral.json"
    options = [*train_arguments(cfg), "--device", "cpu", "--threads", "1", "--out", str(out)]
    assert main(["calibrate-shape", *options, "--data-root", str(tmp_path / "data")]) == 0
    measured_shape, outcome, _ = read_shape_file(out)
    assert measured_shape == shape_of(cfg, "cpu")
    assert isinstance(outcome, Measured), outcome
    assert outcome.timing.epoch_s > 0 and outcome.timing.run_s > 0
    assert outcome.process_startup_s > 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["spiral.json"]  # no scratch left
    # A dataset that is not downloaded: written down, not raised.
    mnist = RunConfig(dataset="mnist")
    options = [*train_arguments(mnist), "--device", "cpu", "--out", str(out)]
    assert main(["calibrate-shape", *options, "--data-root", str(tmp_path / "data")]) == 0
    missing_shape, why, _ = read_shape_file(out)
    assert missing_shape == shape_of(mnist, "cpu") and isinstance(why, str) and "mnist" in why


def planned_jobs(workdir: Path, *args: str) -> dict[str, tuple[str, str]]:
    """The calibration jobs `snakemake -n calibrate` plans: shape -> (resources, command)."""
    text = snakemake(workdir, "calibrate", "--dry-run", "--printshellcmds", *args).stdout
    jobs = {}
    for block in text.split("rule calibrate_shape:")[1:]:
        lines = [line.strip() for line in block.splitlines()]
        name = next(line for line in lines if line.startswith("wildcards: shape="))
        resources = next(line for line in lines if line.startswith("resources:"))
        command = next(line for line in lines if "flooding calibrate-shape" in line)
        jobs[name.removeprefix("wildcards: shape=")] = (resources, command)
    return jobs


def test_each_calibration_job_asks_for_what_its_shapes_runs_ask(tmp_path: Path) -> None:
    datasets = [
        {"name": "spiral"},
        {"name": "gaussians", "resources": {"gpu": 1, "runtime": 240, "mem_mb": 3000}},
    ]
    workdir = copy_workflow(tmp_path, {**CI_CONFIG, "datasets": datasets})
    jobs = planned_jobs(workdir)
    cpu, gpu = (n for n in sorted(jobs, reverse=True))
    assert cpu.startswith("spiral-") and cpu.endswith("-cpu")
    assert gpu.startswith("gaussians-") and gpu.endswith("-cuda")
    assert "runtime=5, gpu=0, mem_mb=1000" in jobs[cpu][0]
    assert f"runtime={JOB_RUNTIME}, gpu=1, mem_mb=3000" in jobs[gpu][0]
    assert "--device cpu" in jobs[cpu][1] and "--device cuda" in jobs[gpu][1]
    assert "--dataset gaussians" in jobs[gpu][1] and "--threads 1" in jobs[gpu][1]


CI_CONFIG = merge_configs(
    *(yaml.safe_load((ROOT / "config" / name).read_text()) for name in ("config.yaml", "ci.yaml"))
)


@pytest.mark.slow
def test_snakemake_calibrate_sends_a_job_per_unmeasured_shape_and_plan_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three shapes, one measured by an earlier calibration: two jobs, submitted together
    (on SLURM: one array), gathered into the cache; then the plan has its hours."""
    datasets = [{"name": "spiral"}, {"name": "gaussians"}, {"name": "sinusoid"}]
    workdir = copy_workflow(tmp_path, {**CI_CONFIG, "datasets": datasets})
    grid = expand_grid(filled(yaml.safe_load((workdir / "config" / "config.yaml").read_text())))
    shapes = {run_shape(run) for run in grid.runs}
    assert len(shapes) == 3
    spiral = run_shape(grid.runs[0])
    earlier = Timing(0.25, 0.125, 1, "calibration")
    write_calibration(workdir / "results", Calibration({spiral: earlier}, None))
    assert "calibrate_shape" not in planned_counts(workdir), "not in the default target"

    executor = ["--executor", "submitit", "--submitit-backend", "local", "--jobs", "4"]
    executor += ["--submitit-status-interval", "1", "--latency-wait", "5"]
    result = snakemake(workdir, "calibrate", *executor)
    output = result.stdout + result.stderr
    calibrated = sorted(line.split("=")[1] for line in output.splitlines() if "shape=" in line)
    assert calibrated == sorted(s.name for s in shapes - {spiral}), output
    assert "Submitted rule calibrate_shape as 2 local process(es)." in output, output
    calibration = read_calibration(workdir / "results")
    assert set(calibration.timings) == shapes
    assert calibration.timings[spiral] == earlier
    assert all(t.epoch_s > 0 and t.run_s > 0 for t in calibration.timings.values())
    assert calibration.startup_s is not None and calibration.startup_s > 0
    assert not list((workdir / "results" / "calibration").glob("*.json"))  # gathered, removed

    monkeypatch.chdir(workdir)
    assert main(["plan", "--max-array-size", "1000"]) == 0
    plan = capsys.readouterr().out
    total = next(line for line in plan.splitlines() if line.startswith("total")).split()
    assert "unknown" not in plan and float(total[-2]) > 0, plan
    assert f"job start-up: {calibration.startup_s:.1f} s a job (calibration)" in plan
    again = snakemake(workdir, "calibrate", "--dry-run").stdout
    assert "Nothing to be done" in again, "a second invocation plans nothing"
