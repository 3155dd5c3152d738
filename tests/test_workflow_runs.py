"""The workflow on real (tiny) runs: incremental reruns, failed runs, the retry command.

After a real run of config/ci.yaml, each config change is planned with Snakemake's
`--summary` (one line per output file, with its plan), and the test checks that exactly the
runs the change touches would be trained again.
"""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from test_report_efficiency import SACCT, SUBMISSIONS
from test_workflow import BIN, copy_workflow, planned_counts, snakemake, write_config

from flooding.aggregate import write_parquet
from flooding.efficiency import account
from flooding.schema import merge_configs
from flooding.stale_lock import marked_incomplete
from snakemake_executor_plugin_submitit.accounting import parse_sacct

ROOT = Path(__file__).resolve().parents[1]
CI_CONFIG = merge_configs(
    *(yaml.safe_load((ROOT / "config" / name).read_text()) for name in ("config.yaml", "ci.yaml"))
)
PIPELINE_END = {("aggregate", "results/metrics.parquet"), ("aggregate", "results/summary.parquet")}
PIPELINE_END |= {("report", "reports/report.html"), ("report", "results/summary.previous.parquet")}

pytestmark = pytest.mark.slow


def pending(workdir: Path, *args: str) -> set[tuple[str, str]]:
    """(rule, output) of every output that Snakemake would (re)create now; runs by path."""
    lines = snakemake(workdir, "--summary", *args).stdout.splitlines()
    header = lines.index("output_file\tdate\trule\tlog-file(s)\tstatus\tplan")
    planned = set()
    for line in lines[header + 1 :]:
        output, _, rule, *_, plan = line.split("\t")
        if plan == "update pending":
            if rule == "train":
                output = output.removeprefix("results/runs/").rsplit("/", 1)[0]
            planned.add((rule, output))
    return planned


def trains(*paths: str) -> set[tuple[str, str]]:
    return {("train", path) for path in paths}


def changed(**changes: Any) -> dict[str, Any]:
    config = copy.deepcopy(CI_CONFIG)
    config.update(copy.deepcopy(changes))
    return config


def test_reruns_exactly_what_a_config_change_touches(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path, CI_CONFIG)
    snakemake(workdir)
    summary = pd.read_parquet(workdir / "results" / "summary.parquet")
    assert list(summary["status"]) == ["completed"] * 4
    assert (workdir / "reports" / "report.html").stat().st_size > 0
    assert pending(workdir) == set(), "a second identical invocation plans nothing"
    # Snakemake's own report packs the HTML report (flagged with report()) for sharing.
    snakemake(workdir, "--report", "reports/snakemake-report.zip")
    with zipfile.ZipFile(workdir / "reports" / "snakemake-report.zip") as packed:
        packed_files = [n for n in packed.namelist() if "/data/raw/" in n]
        assert [Path(n).name for n in packed_files] == ["report.html"]
        packed_report = packed.read(packed_files[0])
    assert packed_report == (workdir / "reports" / "report.html").read_bytes()

    spiral = [
        "spiral-noise0/mlp/wd0-aug0/flood0/seed0",
        "spiral-noise0/mlp/wd0-aug0/flood0.1/seed0",
    ]
    gaussians = [p.replace("spiral", "gaussians") for p in spiral]
    longer = changed(
        datasets=[{"name": "spiral"}, {"name": "gaussians", "training": {"epochs": 3}}]
    )
    write_config(workdir, longer)
    assert pending(workdir) == trains(*gaussians) | PIPELINE_END

    write_config(workdir, changed(flood={"methods": ["flood"], "levels": [0.0, 0.1, 0.2]}))
    new_level = [p.replace("flood0.1", "flood0.2") for p in (spiral[1], gaussians[1])]
    assert pending(workdir) == trains(*new_level) | PIPELINE_END

    write_config(workdir, changed(seeds=[0, 1]))
    new_seed = [p.replace("seed0", "seed1") for p in spiral + gaussians]
    assert pending(workdir) == trains(*new_seed) | PIPELINE_END

    write_config(workdir, changed(flood={"methods": ["flood"], "levels": [0.0]}))
    assert pending(workdir) == PIPELINE_END, "removing a level retrains nothing"

    # Carry out the epochs change: the spiral runs stay as they were.
    write_config(workdir, longer)
    untouched = {p: (workdir / "results/runs" / p / "run.json").stat().st_mtime for p in spiral}
    snakemake(workdir)
    assert pending(workdir) == set()
    assert untouched == {
        p: (workdir / "results/runs" / p / "run.json").stat().st_mtime for p in spiral
    }
    summary = pd.read_parquet(workdir / "results" / "summary.parquet").set_index("dataset")
    assert summary.loc["gaussians", "epochs"].tolist() == [3, 3]
    assert summary.loc["gaussians", "epochs_completed"].tolist() == [3, 3]
    assert summary.loc["spiral", "epochs_completed"].tolist() == [2, 2]
    # The report says what changed since the last one, from the summary the report rule kept.
    page = (workdir / "reports" / "report.html").read_text(encoding="utf-8")
    assert "What changed since the earlier report" in page
    assert "0 runs added, 0 removed, 2 retrained" in page
    kept = pd.read_parquet(workdir / "results" / "summary.previous.parquet")
    assert kept.equals(pd.read_parquet(workdir / "results" / "summary.parquet"))


def test_the_report_shows_an_efficiency_account_once_a_cluster_run_wrote_one(
    tmp_path: Path,
) -> None:
    """A local run writes no account and, finished, plans nothing; an account that appears
    (a cluster run writes it at its end, after its report) rebuilds the report alone."""
    workdir = copy_workflow(tmp_path, CI_CONFIG)
    snakemake(workdir)
    efficiency = workdir / "results" / "efficiency.parquet"
    assert not efficiency.exists()
    assert planned_counts(workdir) == {}
    write_parquet(account(SUBMISSIONS, parse_sacct(SACCT)), str(efficiency))
    assert planned_counts(workdir) == {"report": 1, "all": 1}
    snakemake(workdir)
    page = (workdir / "reports" / "report.html").read_text(encoding="utf-8")
    assert '<section id="efficiency">' in page and "3072 MB of 8000 MB requested" in page
    assert planned_counts(workdir) == {}
    # Without the account (a copy of results/ without it), the report is rebuilt without.
    efficiency.unlink()
    assert planned_counts(workdir) == {"report": 1, "all": 1}


def test_a_failed_run_is_recorded_and_retried_on_request(tmp_path: Path) -> None:
    # A ViT for 224-pixel images fails on 8x8 digits when it first sees a batch: an
    # unexpected error, recorded as a failed run while the other runs go on.
    config = changed(
        archs=[{"name": "mlp"}, {"name": "vit_tiny_patch16_224"}],
        datasets=[
            {"name": "spiral", "archs": ["mlp"]},
            {
                "name": "digits",
                "archs": ["vit_tiny_patch16_224"],
                "training": {"train_size": 200, "test_size": 50},
                "flood": {"levels": [0.0]},
            },
        ],
    )
    workdir = copy_workflow(tmp_path, config)
    snakemake(workdir, "results/summary.parquet")
    summary = pd.read_parquet(workdir / "results" / "summary.parquet").set_index("dataset")
    assert summary.loc["spiral", "status"].tolist() == ["completed", "completed"]
    failed = summary.loc["digits"]
    assert failed["status"] == "failed" and "Input height (8)" in failed["error"]

    flooding = str(Path(sys.executable).parent / "flooding")
    retry = subprocess.run(
        [flooding, "aggregate", "--failed", "results/summary.parquet"],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    ).stdout.split()
    run = "digits-noise0/vit_tiny_patch16_224/wd0-aug0/flood0/seed0"
    assert retry == [f"results/runs/{run}/metrics.parquet"]
    assert pending(workdir, "results/summary.parquet") == set()
    assert pending(workdir, "results/summary.parquet", "--forcerun", *retry) == trains(run) | {
        ("aggregate", "results/metrics.parquet"),
        ("aggregate", "results/summary.parquet"),
    }


def finished(workdir: Path) -> dict[str, int]:
    """run.json modification time of every run folder, by run path."""
    runs = workdir / "results" / "runs"
    return {str(p.parent.relative_to(runs)): p.stat().st_mtime_ns for p in runs.glob("**/run.json")}


def test_packed_reruns_train_exactly_what_a_config_change_touches(tmp_path: Path) -> None:
    """With runs packed by flood level, what actually trains (run.json rewritten) after each
    change is what trains unpacked: packs are jobs, reruns stay per run."""
    packed = {"pack": {"by": ["flood"], "max_runs": 8}}
    workdir = copy_workflow(tmp_path, changed(**packed))
    snakemake(workdir)
    assert len(list((workdir / "results" / "packs").glob("**/*.done"))) == 2
    assert pending(workdir) == set(), "a second identical invocation plans nothing"

    def trained_after(config: dict[str, Any]) -> set[str]:
        before = finished(workdir)
        write_config(workdir, config)
        snakemake(workdir)
        assert pending(workdir) == set()
        after = finished(workdir)
        return {path for path, stamp in after.items() if before.get(path) != stamp}

    levels = {"flood": {"methods": ["flood"], "levels": [0.0, 0.1, 0.2]}}
    assert trained_after(changed(**packed, **levels)) == {
        f"{d}-noise0/mlp/wd0-aug0/flood0.2/seed0" for d in ("spiral", "gaussians")
    }
    assert trained_after(changed(**packed, **levels, seeds=[0, 1])) == {
        f"{d}-noise0/mlp/wd0-aug0/flood{b}/seed1"
        for d in ("spiral", "gaussians")
        for b in ("0", "0.1", "0.2")
    }
    longer = [{"name": "spiral"}, {"name": "gaussians", "training": {"epochs": 3}}]
    assert trained_after(changed(**packed, **levels, seeds=[0, 1], datasets=longer)) == {
        f"gaussians-noise0/mlp/wd0-aug0/flood{b}/seed{s}"
        for b in ("0", "0.1", "0.2")
        for s in (0, 1)
    }
    # Removing a level leaves smaller packs whose members are all finished: no job at all
    # (not a job that starts, loads and skips every member), only the tables and report.
    fewer = changed(**packed, flood={"methods": ["flood"], "levels": [0.0, 0.1]})
    fewer |= {"seeds": [0, 1], "datasets": longer}
    write_config(workdir, fewer)
    assert planned_counts(workdir) == {"aggregate": 1, "report": 1, "all": 1}
    assert trained_after(fewer) == set()


def test_damaged_run_outputs_are_named_and_the_report_is_still_built(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path, CI_CONFIG)
    snakemake(workdir)
    runs = sorted((workdir / "results" / "runs").glob("**/run.json"))
    truncated, garbled = runs[0].parent, runs[1].parent
    with open(truncated / "metrics.parquet", "r+b") as parquet:
        parquet.truncate(10)
    (garbled / "run.json").write_text("{")
    report = workdir / "reports" / "report.html"
    before = report.stat().st_mtime_ns

    result = snakemake(workdir)
    output = result.stdout + result.stderr
    for run in (truncated, garbled):
        retrain = f"snakemake --forcerun {run.relative_to(workdir)}/metrics.parquet"
        assert f"run {run.relative_to(workdir)} has damaged outputs" in output, output
        assert retrain in output, output
    summary = pd.read_parquet(workdir / "results" / "summary.parquet")
    assert (summary["status"] == "failed").sum() == 2
    assert (summary["status"] == "completed").sum() == len(runs) - 2
    # The damaged runs keep their place in the grid: the config columns are the grid's.
    assert summary["dataset"].notna().all()
    assert report.stat().st_mtime_ns > before


def killed_when(workdir: Path, happened: Callable[[], bool]) -> None:
    """Run `snakemake --cores 2` in its own process group and SIGKILL the whole group, as a
    power loss would, as soon as `happened()` (polled; a loaded machine only waits longer)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [str(BIN / "snakemake"), "--cores", "2"],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 600
    while not happened():
        assert process.poll() is None, "snakemake ended before the moment to kill it"
        assert time.monotonic() < deadline, "the moment to kill snakemake did not come in 600 s"
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL


def test_a_whole_run_killed_mid_pack_is_continued_by_the_same_command(tmp_path: Path) -> None:
    """The README's command, without extra flags, continues a run whose whole process tree
    was killed: mid-pack (a stale lock is left), and while re-aggregating (an older
    results/metrics.parquet is left, marked incomplete)."""
    training = {**CI_CONFIG["training"], "train_size": 2000, "batch_size": 50, "epochs": 100}
    config = changed(
        datasets=[{"name": "spiral"}],
        training=training,
        pack={"by": ["flood", "seed"], "max_runs": 8},
        seeds=[0, 1],
    )
    workdir = copy_workflow(tmp_path, config)
    runs = workdir / "results" / "runs"
    # The pack trains one stack a seed: once the first has written a run, the second is
    # about to train for 100 epochs.
    killed_when(workdir, lambda: any(runs.glob("**/run.json")))
    assert 1 <= len(list(runs.glob("**/run.json"))) < 4, "the kill did not fall mid-pack"
    assert not list((workdir / "results" / "packs").glob("**/*.done"))
    assert list((workdir / ".snakemake" / "locks").glob("*.lock")), "a lock was left behind"

    result = snakemake(workdir)  # `snakemake --cores N`, as `make report` runs it
    assert "removed the lock of a snakemake that was killed here" in result.stderr
    summary = pd.read_parquet(workdir / "results" / "summary.parquet")
    assert list(summary["status"]) == ["completed"] * 4
    assert list(summary["epochs_completed"]) == [100] * 4
    assert (workdir / "reports" / "report.html").stat().st_size > 0
    assert pending(workdir) == set()

    # One level fewer: only the tables and the report are rebuilt; kill that half-way.
    write_config(workdir, {**config, "flood": {"methods": ["flood"], "levels": [0.0]}})
    incomplete = workdir / ".snakemake" / "incomplete"
    assert not [p for p in incomplete.iterdir() if p.name != "migration_underway"]
    killed_when(workdir, lambda: any(p.name != "migration_underway" for p in incomplete.iterdir()))
    # Markers that the killed Snakemake wrote, naming the tables it was writing.
    left = [p for p in marked_incomplete(workdir / ".snakemake") if (workdir / p).is_file()]
    assert left, "nothing was left to redo"
    result = snakemake(workdir)
    for path in left:
        assert f"removed {path}, left half-written by a killed job" in result.stderr
    summary = pd.read_parquet(workdir / "results" / "summary.parquet")
    assert list(summary["flood_level"]) == [0.0, 0.0]
    assert pending(workdir) == set()
