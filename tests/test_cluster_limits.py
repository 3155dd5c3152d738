"""The cluster's limits on job arrays, read from SLURM (fake scontrol and sacctmgr)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from snakemake_executor_plugin_submitit.executor import plan_arrays
from snakemake_executor_plugin_submitit.limits import (
    ClusterLimits,
    parse_max_array_size,
    parse_max_submit_jobs,
    read_cluster_limits,
)

SCONTROL_CONFIG = """Configuration data as of 2026-12-01T10:00:00
MaxArraySize            = 5
MaxJobCount             = 10000
"""


def fake_command(folder: Path, name: str, output: str, status: int = 0) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}EOF\nexit {status}\n")
    path.chmod(0o755)
    return str(path)


def test_max_array_size_and_max_submit_jobs_are_read_from_slurm(tmp_path: Path) -> None:
    assert parse_max_array_size(SCONTROL_CONFIG) == 5
    assert parse_max_array_size("MaxJobCount = 10\n") is None
    assert parse_max_submit_jobs("\n\n") is None
    assert parse_max_submit_jobs("\n50\n20\n") == 20
    scontrol = fake_command(tmp_path, "scontrol", SCONTROL_CONFIG)
    sacctmgr = fake_command(tmp_path, "sacctmgr", "8\n")
    limits = read_cluster_limits(scontrol, sacctmgr)
    assert limits == ClusterLimits(max_array_size=5, max_submit_jobs=8)
    assert limits.describe() == "MaxArraySize 5, MaxSubmitJobs 8"
    assert read_cluster_limits(str(tmp_path / "no-scontrol")) == ClusterLimits()


def test_arrays_are_cut_at_the_smallest_limit() -> None:
    assert ClusterLimits(5, None).array_size(1000) == 5
    assert ClusterLimits(1001, 3).array_size(1000) == 3
    assert ClusterLimits(None, None).array_size(1000) == 1000
    jobs = [("train", "request", i) for i in range(12)]
    sizes = [len(m) for _, _, m in plan_arrays(jobs, ClusterLimits(5, None).array_size(1000))]
    assert sizes == [5, 5, 2]


def test_a_slurm_without_sacct_stops_before_submitting(tmp_path: Path) -> None:
    """Every status check needs sacct: without it `snakemake --profile slurm` submits
    nothing and exits 2, a usage error in one line on stderr (no traceback)."""
    bin_dir = tmp_path / "bin"
    calls = tmp_path / "calls"
    bin_dir.mkdir()
    for command in ("sbatch", "scontrol", "sacctmgr", "squeue"):
        (bin_dir / command).write_text(f"#!/bin/sh\necho {command} >> {calls}\n")
        (bin_dir / command).chmod(0o755)
    (tmp_path / "Snakefile").write_text(
        'rule a:\n    output: "a.txt"\n    shell: "touch {output}"\n'
    )
    snakemake = Path(sys.executable).parent / "snakemake"
    profile = Path(__file__).resolve().parents[1] / "slurm"
    result = subprocess.run(
        [str(snakemake), "--profile", str(profile)],
        cwd=tmp_path,
        # No system folders: a machine with SLURM installed has a real sacct there.
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{snakemake.parent}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    message = (
        "--submitit-backend slurm: sacct is not on PATH (for the status checks); nothing was "
        "submitted. Run on a SLURM login node with accounting, or use --submitit-backend local"
    )
    assert result.returncode == 2, result.stdout + result.stderr
    # Snakemake's own header and "Building DAG of jobs..." come before it, nothing after.
    assert result.stderr.rstrip().splitlines()[-1] == message, result.stderr
    said = [line for line in result.stderr.splitlines() if "not on PATH" in line]
    assert said == [message] and "Error" not in result.stderr, result.stderr
    assert not calls.exists() and not (tmp_path / "a.txt").exists()
    assert not list((tmp_path / ".snakemake" / "locks").glob("*"))
