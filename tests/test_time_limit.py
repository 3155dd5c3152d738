"""A job's time limit: packs cut to fit `resources: {max_runtime}`, a run too long to
split refused at once, and the partition's MaxTime read from SLURM (a fake scontrol here;
the opt-in test reads the local cluster's)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_cluster_limits import SCONTROL_CONFIG, fake_command
from test_slurm_e2e import PARTITION, slurm_cluster  # noqa: F401 (a fixture)
from test_workflow import copy_workflow, snakemake
from test_workflow_config import filled

from flooding.cli import main
from flooding.grid import Grid, GridError, expand_grid
from flooding.learned import learn_resources, run_shape, with_learned_resources
from flooding.packing import fit_time_limit
from flooding.plan import check_partition_time, grid_jobs, make_plan
from flooding.timing import Timing
from flooding.workflow_config import InputError, profile_partition
from snakemake_executor_plugin_submitit.limits import (
    PartitionTime,
    parse_partitions,
    parse_time_limit,
    read_partition_time,
)

ROOT = Path(__file__).resolve().parents[1]
LEVELS = [0.0, 0.1, 0.2, 0.3, 0.4]
SETTING = "spiral-noise0/mlp/wd0-aug0"


def config(runtime: int = 30, max_runtime: int | None = None, **top: Any) -> dict[str, Any]:
    """Spiral, five flood levels x three seeds, all in one pack of 15 runs (450 min)."""
    resources: dict[str, Any] = {"runtime": runtime, "max_runtime": max_runtime}
    base: dict[str, Any] = {
        "training": {"train_size": 100, "batch_size": 20, "epochs": 2},
        "resources": {k: v for k, v in resources.items() if v is not None},
        "pack": {"by": ["flood", "seed"], "max_runs": 20},
        "archs": [{"name": "mlp"}],
        "datasets": [{"name": "spiral"}],
        "flood": {"methods": ["flood"], "levels": LEVELS},
        "seeds": [0, 1, 2],
    }
    base.update(top)
    return filled(base)


def grid_of(cfg: dict[str, Any], tmp_path: Path) -> Grid:
    """The grid as the workflow loads it (nothing under results/ to learn from)."""
    return learn_resources(expand_grid(cfg), tmp_path / "results")


def members(grid: Grid) -> list[list[str]]:
    """Each pack's members as flood/seed, e.g. flood0.1/seed2."""
    return [[run.path.removeprefix(f"{SETTING}/") for run in pack.runs] for pack in grid.packs]


def test_a_pack_within_the_limit_is_the_pack_it_was(tmp_path: Path) -> None:
    unlimited = grid_of(config(), tmp_path)
    assert [len(pack.runs) for pack in unlimited.packs] == [15]
    assert unlimited.packs[0].resources.runtime == 450
    at_limit = grid_of(config(max_runtime=450), tmp_path)
    assert [pack.name for pack in at_limit.packs] == [pack.name for pack in unlimited.packs]
    assert len(grid_of(config(max_runtime=449), tmp_path).packs) > 1


def test_a_pack_over_the_limit_is_cut_keeping_each_stack_whole(tmp_path: Path) -> None:
    """Each seed's five levels train as one stacked model: 150 min each, so a limit of
    200 min makes a pack of each seed rather than 6 + 6 + 3 runs across seeds."""
    grid = grid_of(config(max_runtime=200), tmp_path)
    assert members(grid) == [[f"flood{b:g}/seed{s}" for b in LEVELS] for s in (0, 1, 2)]
    assert [pack.resources.runtime for pack in grid.packs] == [150, 150, 150]
    assert grid.singles == []
    assert all(pack.name.startswith(f"{SETTING}/seed") for pack in grid.packs)


def test_stacks_that_fit_share_a_pack(tmp_path: Path) -> None:
    grid = grid_of(config(max_runtime=300), tmp_path)
    assert [len(pack.runs) for pack in grid.packs] == [10, 5]
    assert {run.config.seed for run in grid.packs[0].runs} == {0, 1}


def test_a_stack_longer_than_the_limit_is_cut_evenly(tmp_path: Path) -> None:
    """150 min of a seed's stack under a 100 min limit: 3 + 2 runs (both still stacked),
    not 3 + 1 + 1 or a single run left over from 4 + 1."""
    grid = grid_of(config(max_runtime=100), tmp_path)
    assert [len(pack.runs) for pack in grid.packs] == [3, 2, 3, 2, 3, 2]
    assert all(pack.resources.runtime <= 100 for pack in grid.packs)
    assert all(len({run.config.seed for run in pack.runs}) == 1 for pack in grid.packs)
    assert sorted(run.path for pack in grid.packs for run in pack.runs) == sorted(grid.paths)


def test_the_cut_is_fewest_pieces_then_even() -> None:
    """Runtimes 60, 20, 20, 60 under 100: two pieces, never three, and not 60 + 20 + 20
    then 60; each run its own stack (the runs differ in seed)."""
    runs = list(expand_grid(config(seeds=[0, 1, 2, 3], flood={"levels": [0.0]})).runs)
    runs = [
        dataclasses.replace(run, resources=dataclasses.replace(run.resources, runtime=minutes))
        for run, minutes in zip(runs, (60, 20, 20, 60), strict=True)
    ]
    pieces = fit_time_limit(runs, 100)
    assert [[run.resources.runtime for run in piece] for piece in pieces] == [[60, 20], [20, 60]]
    assert fit_time_limit(runs, None) == [runs] == fit_time_limit(runs, 160)
    # A run longer than the limit stands alone (flooding.learned refuses it).
    assert [len(piece) for piece in fit_time_limit(runs, 50)] == [1, 2, 1]


def test_the_cut_is_stable_and_a_new_seed_keeps_the_other_packs(tmp_path: Path) -> None:
    """Pack names are digests of their members: the same config cuts the same packs (so
    a rerun plans the packs that ran, and finished ones not again), and a seed added to
    a grid cut by seed leaves the other seeds' packs as they were."""
    first = [pack.name for pack in grid_of(config(max_runtime=200), tmp_path).packs]
    assert [pack.name for pack in grid_of(config(max_runtime=200), tmp_path).packs] == first
    more = grid_of(config(max_runtime=200, seeds=[0, 1, 2, 3]), tmp_path)
    assert [pack.name for pack in more.packs][:3] == first and len(more.packs) == 4


def test_learned_runtimes_that_pass_the_limit_cut_the_pack(tmp_path: Path) -> None:
    """Configured at 10 min a run the pack fits in 200 min; learned at 30 min it does not."""
    cfg = config(runtime=10, max_runtime=200)
    cfg["resources"]["runtime_auto"] = True
    grid = grid_of(cfg, tmp_path)
    assert [pack.resources.runtime for pack in grid.packs] == [150]
    timing = Timing(run_s=0.0, epoch_s=600.0, runs=1, source="results")  # 20 min: asks 30
    learned = with_learned_resources(grid, {run_shape(grid.runs[0]): timing}, None, {})
    assert [pack.resources.runtime for pack in learned.packs] == [150, 150, 150]


def test_a_run_longer_than_the_limit_fails_naming_it(tmp_path: Path) -> None:
    with pytest.raises(GridError) as error:
        grid_of(config(runtime=120, max_runtime=100), tmp_path)
    assert str(error.value) == (
        f"run {SETTING}/flood0/seed0 asks for 120 min, above resources.max_runtime 100 min; "
        "one run cannot be split: raise max_runtime or give it fewer epochs"
    )
    grid_of(config(runtime=100, max_runtime=100), tmp_path)  # at the limit: fits


def test_the_plan_counts_the_cut_packs_as_jobs(tmp_path: Path) -> None:
    grid = grid_of(config(max_runtime=100), tmp_path)
    plan = make_plan(grid, {}, None, max_array_size=1000, concurrent=10)
    assert (plan.total.runs, plan.total.jobs) == (15, 6)
    assert plan.total.requested.cpu == pytest.approx(15 * 30 / 60)
    assert plan.wall_requested_s == 90 * 60  # the longest piece, 3 runs


def test_the_dry_run_plans_a_pack_over_the_limit_as_jobs_under_it(tmp_path: Path) -> None:
    tiny = {
        "training": {"train_size": 100, "test_size": 100, "epochs": 2},
        "resources": {"runtime": 30, "max_runtime": 100},
        "pack": {"by": ["flood", "seed"], "max_runs": 20},
        "archs": [{"name": "mlp"}],
        "datasets": [{"name": "spiral"}],
        "regularisers": {"weight_decay": [0.0], "augment": [False]},
        "flood": {"methods": ["flood"], "levels": LEVELS},
        "seeds": [0],
    }
    workdir = copy_workflow(tmp_path, tiny)
    output = snakemake(workdir, "--dry-run").stdout
    runtimes = [
        int(part.removeprefix("runtime="))
        for line in output.splitlines()
        if line.strip().startswith("resources:")
        for part in line.replace(",", " ").split()
        if part.startswith("runtime=")
    ]
    assert sorted(runtimes) == [60, 90]  # one pack of 150 min: 3 + 2 runs
    assert output.count("rule train_pack:") == 2 and "rule train:" not in output
    (workdir / "long.yaml").write_text(yaml.safe_dump({"resources": {"runtime": 101}}))
    failed = snakemake(workdir, "--dry-run", "--configfile", "long.yaml", check=False)
    assert failed.returncode != 0
    assert "asks for 101 min, above resources.max_runtime 100 min" in failed.stdout + failed.stderr


def test_slurm_time_limits_read_as_minutes() -> None:
    assert parse_time_limit("UNLIMITED") is None and parse_time_limit("INFINITE") is None
    assert parse_time_limit("1-00:00:00") == 1440
    assert parse_time_limit("02:30:00") == 150
    assert parse_time_limit("30:59") == 30  # minutes:seconds, rounded down
    assert parse_time_limit("45") == 45


PARTITIONS = (
    "PartitionName=debug AllowGroups=ALL Default=YES MaxTime=01:00:00 State=UP\n"
    "PartitionName=long AllowGroups=ALL Default=NO MaxTime=7-00:00:00 State=UP\n"
    "PartitionName=any Default=NO MaxTime=UNLIMITED State=UP\n"
)


def fake_scontrol(folder: Path) -> Path:
    """An scontrol answering `show config` and `show partition --oneliner`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "scontrol"
    path.write_text(
        "#!/bin/sh\n"
        f'if [ "$2" = partition ]; then cat <<EOF\n{PARTITIONS}EOF\n'
        f"else cat <<EOF\n{SCONTROL_CONFIG}EOF\nfi\n"
    )
    path.chmod(0o755)
    return path


def test_a_partitions_max_time_is_read_from_slurm(tmp_path: Path) -> None:
    assert parse_partitions(PARTITIONS) == {
        "debug": (60, True),
        "long": (10080, False),
        "any": (None, False),
    }
    scontrol = str(fake_scontrol(tmp_path / "bin"))
    assert read_partition_time(scontrol=scontrol) == PartitionTime("debug", 60)
    assert read_partition_time("long", scontrol) == PartitionTime("long", 10080)
    assert read_partition_time("gpu", scontrol) is None
    assert read_partition_time(scontrol=str(tmp_path / "no-scontrol")) is None


def test_a_job_over_the_partitions_max_time_is_refused_by_the_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = grid_jobs(grid_of(config(max_runtime=200), tmp_path))
    check_partition_time(jobs, PartitionTime("long", 10080))
    check_partition_time(jobs, PartitionTime("any", None))
    with pytest.raises(InputError, match=r"partition debug allows 60 min \(MaxTime\), but 3 job"):
        check_partition_time(jobs, PartitionTime("debug", 60))
    # flooding plan asks the SLURM that answers here; without a profile naming a
    # partition, the default one (debug, 60 min) is the limit.
    workdir = tmp_path / "workflow"
    for name in ("config", "workflow"):
        shutil.copytree(ROOT / name, workdir / name)
    monkeypatch.chdir(workdir)
    # A fake sacctmgr too, so that a SLURM installed here is never asked.
    bin_dir = fake_scontrol(tmp_path / "bin").parent
    fake_command(bin_dir, "sacctmgr", "\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    (workdir / "ci.yaml").write_text(yaml.safe_dump({"resources": {"runtime": 90}}))
    assert main(["plan", "--configfile", "ci.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "partition debug allows 60 min (MaxTime)" in err
    assert "set resources: {max_runtime: 60} in the config" in err
    (workdir / "ci.yaml").write_text(
        yaml.safe_dump({"resources": {"runtime": 90, "max_runtime": 60}})
    )
    assert main(["plan", "--configfile", "ci.yaml"]) == 2  # a single run of 90 min: no cut
    assert "above resources.max_runtime 60 min" in capsys.readouterr().err


def test_the_profiles_partition_is_the_one_checked(tmp_path: Path) -> None:
    assert profile_partition(tmp_path) is None  # no profile: the cluster's default
    (tmp_path / "slurm").mkdir()
    profile = tmp_path / "slurm" / "config.yaml"
    profile.write_text(yaml.safe_dump({"default-resources": {"runtime": 60}}))
    assert profile_partition(tmp_path) is None
    profile.write_text(yaml.safe_dump({"default-resources": {"slurm_partition": "long"}}))
    assert profile_partition(tmp_path) == "long"
    profile.write_text(
        yaml.safe_dump({"default-resources": ["mem_mb=4000", "slurm_partition='gpu'"]})
    )
    assert profile_partition(tmp_path) == "gpu"


@pytest.mark.slurm
def test_the_local_clusters_partition_time_is_read(slurm_cluster) -> None:  # noqa: F811
    """Only reads: the partition's MaxTime as scontrol reports it, against sinfo's."""
    limit = read_partition_time(PARTITION)
    assert limit is not None and limit.partition == PARTITION
    sinfo = subprocess.run(
        ["sinfo", "-h", "-p", PARTITION, "-o", "%l"], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    expected = None if sinfo.lower() in ("infinite", "unlimited") else parse_time_limit(sinfo)
    assert limit.max_minutes == expected
