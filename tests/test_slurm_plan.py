"""Before and after a cluster run, on a real SLURM: the plan, the account, the array limit.

- `flooding plan --calibrate` on config/ci.yaml, then the run: the plan's jobs and arrays
  are the array tasks and sbatch calls sacct shows, its requested CPU-hours the sum of the
  jobs' requests, and its expected hours within a factor 1.5 of the elapsed sum; the
  efficiency account exists, with used runtime and memory for every job.
- With the cluster's MaxArraySize lowered to 5, a 12-task array goes as 5 + 5 + 2,
  whatever the profile says, and every task writes its output.
- `snakemake --profile slurm calibrate` sends the calibration of config/ci.yaml's two
  shapes as one job array, and `flooding plan` then has the hours.

Opt-in, like tests/test_slurm_e2e.py (whose cluster fixture and helpers these reuse).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from test_slurm_e2e import (  # noqa: F401 (slurm_cluster is a fixture)
    REPO,
    VENV_BIN,
    slurm_cluster,
    snakemake_env,
    start_snakemake,
    write_profile,
)

from flooding.plan import hours_text
from flooding.timing import read_calibration

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

TWELVE_SNAKEFILE = """
rule all:
    input: expand("out/{i}.txt", i=range(12))

rule task:
    output: "out/{i}.txt"
    shell: "echo {wildcards.i} > {output}"
"""
EXPECTED_FACTOR = 1.5


@dataclass(frozen=True)
class Allocation:
    """One SLURM job (array task) as sacct recorded it."""

    job_id: str
    elapsed_s: int
    time_limit_min: int
    cpus: int

    @property
    def array_id(self) -> str:
        return self.job_id.split("_")[0]


def allocations(since: datetime, workdir: Path) -> list[Allocation]:
    """The jobs submitted from workdir."""
    command = ["sacct", "--allocations", "--noheader", "--parsable2", "--allusers"]
    command += ["--starttime", since.strftime("%Y-%m-%dT%H:%M:%S")]
    command += ["--format=JobID,ElapsedRaw,TimelimitRaw,AllocCPUS,WorkDir"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rows = [line.split("|") for line in output.splitlines() if line]
    return [
        Allocation(job_id, int(elapsed), int(limit), int(cpus))
        for job_id, elapsed, limit, cpus, directory in rows
        if Path(directory) == workdir
    ]


def copy_workflow(root: Path) -> Path:
    for name in ("Snakefile", "workflow", "config", "envs"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name)
        else:
            shutil.copy(source, root / name)
    # One job at a time: the calibration timed one process alone on this machine's cores,
    # which the test cluster's fake CPUs would otherwise oversubscribe.
    write_profile(root, **{"submitit-array-parallelism": 1})
    return root


@dataclass(frozen=True)
class PlannedRun:
    plan: str
    workflow: Path
    output: str
    returncode: int
    jobs: list[Allocation]


@pytest.fixture(scope="module")
def planned_run(
    slurm_cluster: datetime,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> PlannedRun:
    workflow = copy_workflow(tmp_path_factory.mktemp("planned"))
    env = snakemake_env()
    plan = subprocess.run(
        [str(VENV_BIN / "flooding"), "plan", "--configfile", "config/ci.yaml", "--calibrate"],
        cwd=workflow,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    run = start_snakemake(workflow, "run", env, "--configfile", "config/ci.yaml")
    returncode = run.wait(timeout_s=600)
    return PlannedRun(plan, workflow, run.output, returncode, allocations(slurm_cluster, workflow))


def plan_totals(plan: str) -> tuple[dict[str, str], list[str]]:
    """The last line's numbers by name, and the cells of the total line."""
    last = plan.strip().splitlines()[-1]
    numbers = dict(part.split(" ") for part in last.split(", "))
    total = next(line for line in plan.splitlines() if line.startswith("total")).split()
    return numbers, total


def test_the_plan_counts_the_jobs_and_arrays_sacct_shows(planned_run: PlannedRun) -> None:
    assert planned_run.returncode == 0, planned_run.output
    numbers, _ = plan_totals(planned_run.plan)
    jobs = planned_run.jobs
    print(f"\nplan: {planned_run.plan.strip().splitlines()[-1]}; sacct: {len(jobs)} jobs")
    assert int(numbers["jobs"]) == len(jobs) > 1
    assert int(numbers["arrays"]) == len({job.array_id for job in jobs})
    requested = sum(job.cpus * job.time_limit_min / 60 for job in jobs)
    assert numbers["cpu-hours"] == hours_text(requested)
    assert numbers["gpu-hours"] == hours_text(0.0)


def test_expected_hours_are_within_a_factor_of_the_elapsed_sum(planned_run: PlannedRun) -> None:
    _, total = plan_totals(planned_run.plan)
    # ci.yaml asks one thread a job: CPU-hours are job-hours.
    expected_s = float(total[-2]) * 3600
    elapsed_s = sum(job.elapsed_s for job in planned_run.jobs)
    print(f"\nexpected {expected_s:.1f} s, elapsed {elapsed_s} s (sum over jobs)")
    assert elapsed_s / EXPECTED_FACTOR <= expected_s <= elapsed_s * EXPECTED_FACTOR


def test_the_efficiency_account_has_every_job(planned_run: PlannedRun) -> None:
    table = pd.read_parquet(planned_run.workflow / "results" / "efficiency.parquet")
    assert sorted(table["job_id"]) == sorted(job.job_id for job in planned_run.jobs)
    assert (table["used_runtime_s"] > 0).all(), table
    assert (table["max_rss_mb"] > 0).all(), table
    assert set(table["dataset"]) == {"spiral", "gaussians"}
    assert set(table["gpu_usage"]) == {"not recorded"}  # no gres/gpuutil in this cluster
    assert "per dataset / arch:" in planned_run.output


def start_cluster(**settings: str) -> None:
    """cluster/start.sh with these settings; it restarts the daemons when they change."""
    subprocess.run(
        ["bash", str(REPO / "cluster" / "start.sh")],
        env={**os.environ, **settings},
        capture_output=True,
        check=True,
    )


@pytest.fixture
def max_array_size_5(slurm_cluster: datetime) -> Iterator[None]:  # noqa: F811
    """The cluster's MaxArraySize at 5 for one test, then back to start.sh's default
    (slurmctld reads it only when it starts: `scontrol reconfigure` shows the new value
    but does not enforce it)."""
    start_cluster(SLURM_MAX_ARRAY_SIZE="5")
    try:
        yield
    finally:
        start_cluster()


def test_arrays_are_cut_at_the_clusters_max_array_size(
    slurm_cluster: datetime,  # noqa: F811
    max_array_size_5: None,
    tmp_path: Path,
) -> None:
    # The limit is live: SLURM refuses a larger array.
    refused = subprocess.run(
        ["sbatch", "--array=0-5", "--output=/dev/null", "--wrap=true"],
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0 and "Invalid job array" in refused.stderr, refused
    (tmp_path / "Snakefile").write_text(TWELVE_SNAKEFILE)
    write_profile(tmp_path)  # the profile says 1000
    run = start_snakemake(tmp_path, "twelve", snakemake_env())
    assert run.wait(timeout_s=300) == 0, run.output
    assert "Job arrays of at most 5 tasks (MaxArraySize 5" in run.output
    jobs = allocations(slurm_cluster, tmp_path)
    sizes: dict[str, int] = {}
    for job in jobs:
        sizes[job.array_id] = sizes.get(job.array_id, 0) + 1
    assert sorted(sizes.values(), reverse=True) == [5, 5, 2], jobs
    for i in range(12):
        assert (tmp_path / "out" / f"{i}.txt").read_text() == f"{i}\n"


def test_the_calibration_goes_to_the_cluster_as_one_array(
    slurm_cluster: datetime,  # noqa: F811
    tmp_path: Path,
) -> None:
    workflow = copy_workflow(tmp_path)
    env = snakemake_env()
    run = start_snakemake(workflow, "calibrate", env, "calibrate", "--configfile", "config/ci.yaml")
    assert run.wait(timeout_s=600) == 0, run.output
    jobs = allocations(slurm_cluster, workflow)
    # Two shapes (spiral, gaussians) asking for the same: two tasks of one array, each
    # asking for the runs' 5 minutes.
    assert len(jobs) == 2 and len({job.array_id for job in jobs}) == 1, jobs
    assert {job.time_limit_min for job in jobs} == {5}
    calibration = read_calibration(workflow / "results")
    assert len(calibration.timings) == 2 and calibration.startup_s is not None
    plan = subprocess.run(
        [str(VENV_BIN / "flooding"), "plan", "--configfile", "config/ci.yaml"],
        cwd=workflow,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "unknown" not in plan, plan
    again = start_snakemake(
        workflow, "again", env, "calibrate", "--configfile", "config/ci.yaml", "--dry-run"
    )
    assert again.wait(timeout_s=120) == 0 and "Nothing to be done" in again.output
