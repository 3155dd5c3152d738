"""Memory learned from the last run (`resources: {mem_auto: true}`): the peaks that runs
(run.json) and cluster jobs (the efficiency account) measured, per shape, times a factor."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from test_workflow_config import SCHEMA_PATH, filled

from flooding.config import RunConfig
from flooding.efficiency import account
from flooding.grid import expand_grid
from flooding.learned import (
    MEMORY_FACTOR,
    learn_resources,
    learned_mb,
    run_shape,
    with_learned_resources,
)
from flooding.memory import account_peaks, finished_peaks, known_peaks
from flooding.schema import WorkflowConfigError, validate_workflow_config
from flooding.timing import shape_of
from snakemake_executor_plugin_submitit.accounting import Submission, Usage

SPIRAL = RunConfig(dataset="spiral", train_size=100, test_size=100, batch_size=20, epochs=10)
GAUSSIANS = RunConfig.from_dict({**SPIRAL.to_dict(), "dataset": "gaussians"})


def config(**top: Any) -> dict[str, Any]:
    """Spiral and Gaussians, 2 levels x 3 seeds each, MLPs, 1000 MB a job: 12 runs."""
    base: dict[str, Any] = {
        "training": {"train_size": 100, "test_size": 100, "batch_size": 20, "epochs": 10},
        "resources": {"mem_mb": 1000, "mem_auto": True},
        "archs": [{"name": "mlp"}],
        "datasets": [{"name": "spiral"}, {"name": "gaussians"}],
        "flood": {"methods": ["flood"], "levels": [0.0, 0.1]},
        "seeds": [0, 1, 2],
    }
    base.update(top)
    return filled(base)


def test_mem_auto_asks_what_the_shape_used_times_the_factor() -> None:
    grid = expand_grid(config())
    spiral = shape_of(SPIRAL, "cpu")
    learned = with_learned_resources(grid, {}, None, {spiral: 400.2})
    assert learned_mb(400.2) == math.ceil(MEMORY_FACTOR * 400.2) == 601
    by_dataset = {
        dataset: {run.resources.mem_mb for run in learned.runs if run.config.dataset == dataset}
        for dataset in ("spiral", "gaussians")
    }
    # The Gaussians were never measured: they ask for the configured 1000 MB.
    assert by_dataset == {"spiral": {601}, "gaussians": {1000}}


def test_without_history_or_without_mem_auto_the_configured_memory() -> None:
    grid = expand_grid(config())
    assert with_learned_resources(grid, {}, None, {}).runs == grid.runs
    assert {run.resources.mem_mb for run in grid.runs} == {1000}
    off = expand_grid(config(resources={"mem_mb": 1000}))
    peaks = {run_shape(run): 400.0 for run in off.runs}
    assert {r.resources.mem_mb for r in with_learned_resources(off, {}, None, peaks).runs} == {1000}


def test_a_pack_asks_for_its_largest_member_not_the_sum() -> None:
    """One process trains a pack's members one stack after another: an augmented and a
    plain digits MLP in one pack ask for the larger of their learned requests."""
    grid = expand_grid(
        config(
            datasets=[{"name": "digits"}],
            regularisers={"weight_decay": [0.0], "augment": [False, True]},
            pack={"by": ["augment", "flood", "seed"], "max_runs": 20},
        )
    )
    (pack,) = grid.packs
    shapes = {run_shape(run) for run in pack.runs}
    peaks = {shape: 800.0 if shape.augment else 400.0 for shape in shapes}
    (learned,) = with_learned_resources(grid, {}, None, peaks).packs
    assert len(shapes) == 2 and learned.resources.mem_mb == 1200


def write_summary(results: Path, rows: list[tuple[RunConfig, str, float | None]]) -> None:
    """summary.parquet of finished runs: (config, device, peak_rss_mb)."""
    results.mkdir(parents=True, exist_ok=True)
    table = [
        {**cfg.to_dict(), "status": "completed", "device": device, "peak_rss_mb": peak}
        for cfg, device, peak in rows
    ]
    pd.DataFrame(table).to_parquet(results / "summary.parquet")


def write_account(root: Path, jobs: list[dict[str, Any]]) -> None:
    """efficiency.parquet (only the columns flooding.memory reads)."""
    (root / "results").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(jobs).to_parquet(root / "results" / "efficiency.parquet")


def test_run_json_peaks_are_the_largest_of_each_shape(tmp_path: Path) -> None:
    write_summary(
        tmp_path,
        [
            (RunConfig.from_dict({**SPIRAL.to_dict(), "seed": 3}), "cpu (2 threads)", 350.0),
            (SPIRAL, "cpu (1 thread)", 300.0),
            (SPIRAL, "cuda:0 (NVIDIA H100)", 900.0),
            (GAUSSIANS, "cpu (1 thread)", None),  # recorded before peaks were
        ],
    )
    assert finished_peaks(tmp_path) == {
        shape_of(SPIRAL, "cpu"): 350.0,
        shape_of(SPIRAL, "cuda"): 900.0,
    }
    assert finished_peaks(tmp_path / "nowhere") == {}


def test_the_efficiency_account_counts_for_each_member_of_a_job(tmp_path: Path) -> None:
    """A pack's MaxRSS counts for the shapes of its members (from its spec), a single run's
    for its own (run.json); the device is what the job was given."""
    pack = "results/packs/spiral-noise0/mlp/wd0-aug0/pack-0123456789"
    (tmp_path / pack).parent.mkdir(parents=True)
    (tmp_path / f"{pack}.json").write_text(
        json.dumps({"runs": [{"out": "results/runs/a", "config": SPIRAL.to_dict()}]})
    )
    run = tmp_path / "results/runs/gaussians-noise0/mlp/wd0-aug0/flood0/seed0"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"config": GAUSSIANS.to_dict()}))
    single = str((run / "metrics.parquet").relative_to(tmp_path))
    write_account(
        tmp_path,
        [
            {"rule": "train_pack", "output": f"{pack}.done", "gpus": 0, "max_rss_mb": 500.0},
            {"rule": "train", "output": single, "gpus": 1, "max_rss_mb": 700.0},
            {"rule": "train_pack", "output": f"{pack}.done", "gpus": 1, "max_rss_mb": 600.0},
            {"rule": "train", "output": single, "gpus": 1, "max_rss_mb": None},
            {"rule": "train", "output": single, "gpus": 1, "max_rss_mb": 650.0},  # a rerun
            {
                "rule": "aggregate",
                "output": "results/metrics.parquet",
                "gpus": 0,
                "max_rss_mb": 90.0,
            },
        ],
    )
    results = tmp_path / "results"
    assert account_peaks(results) == {
        shape_of(SPIRAL, "cpu"): 500.0,
        shape_of(SPIRAL, "cuda"): 600.0,
        shape_of(GAUSSIANS, "cuda"): 700.0,
    }
    write_summary(results, [(SPIRAL, "cpu (1 thread)", 350.0), (SPIRAL, "cuda:0", 900.0)])
    assert known_peaks(results) == {
        shape_of(SPIRAL, "cpu"): 500.0,  # the job's, Snakemake included, above run.json's
        shape_of(SPIRAL, "cuda"): 900.0,  # run.json's, above the job's
        shape_of(GAUSSIANS, "cuda"): 700.0,
    }
    # An account written before jobs were named by their output says nothing of shapes.
    write_account(tmp_path, [{"rule": "train", "gpus": 0, "max_rss_mb": 500.0}])
    assert account_peaks(results) == {}


def test_the_account_names_each_job_by_its_first_output(tmp_path: Path) -> None:
    """From the executor's ledger to a learned shape: the account's `output` column."""
    pack = "results/packs/spiral-noise0/mlp/wd0-aug0/pack-0123456789"
    (tmp_path / pack).parent.mkdir(parents=True)
    spec = {"runs": [{"out": "results/runs/a", "config": SPIRAL.to_dict()}]}
    (tmp_path / f"{pack}.json").write_text(json.dumps(spec))
    job = Submission("7", "train_pack", (f"{pack}.done",), 10, 1, 1000, 0, 0.0)
    table = account([job], {"7": Usage("COMPLETED", 60.0, 50.0, 1, 480.0, None, None)})
    assert table["output"].tolist() == [f"{pack}.done"]
    table.to_parquet(tmp_path / "results" / "efficiency.parquet")
    assert account_peaks(tmp_path / "results") == {shape_of(SPIRAL, "cpu"): 480.0}


def test_the_workflows_grid_learns_memory_from_results(tmp_path: Path) -> None:
    write_summary(tmp_path, [(SPIRAL, "cpu (1 thread)", 200.0)])
    learned = learn_resources(expand_grid(config()), tmp_path)
    spiral = {run.resources.mem_mb for run in learned.runs if run.config.dataset == "spiral"}
    assert spiral == {300}


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"mem_auto": "yes"}, "mem_auto: 'yes' is not of type 'boolean'"),
        ({"max_runtime": 0}, "max_runtime: 0 is less than the minimum of 1"),
        ({"max_runtime": 1.5}, "max_runtime: 1.5 is not of type 'integer', 'null'"),
    ],
)
def test_bad_settings_are_rejected_naming_the_key(resources: dict[str, Any], message: str) -> None:
    for config, key in (
        ({"resources": resources}, "resources"),
        ({"datasets": [{"name": "spiral", "resources": resources}]}, "datasets[0].resources"),
    ):
        with pytest.raises(WorkflowConfigError) as error:
            validate_workflow_config(config, SCHEMA_PATH)
        assert str(error.value).startswith(f"config key {key}.{message}"), error.value
